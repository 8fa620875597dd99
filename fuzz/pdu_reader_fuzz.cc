// Fuzzes the NVMe/TCP PDU reader with a receive buffer of arbitrary bytes.
//
// Input: one configuration byte, then the stream.
//   bit 0: receiver (0 target, 1 initiator)    bit 1: connected (IC exchange done)
//   bit 2: header digest                        bit 3: data digest
//   bits 4-5: PDA 0, 1, 3 or 31                 bit 6: small limits (4 KiB)
//
// Beyond "no crash, no sanitizer report", it checks the reader's promises:
// views stay inside the buffer, need_more asks for more than is there and no
// more than the limits allow, parse_header agrees with parse, and every PDU
// the reader accepts, re-encoded by the writer, is accepted again with the
// same type, command and data.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <variant>
#include <vector>

#include "nvmf/tcp/pdu_reader.h"
#include "nvmf/tcp/pdu_writer.h"

using namespace weft::nvmf::tcp;

namespace {

#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                                 \
        }                                                                                 \
    } while (0)

reader_params params_from(uint8_t c) {
    static constexpr uint8_t pdas[] = {0, 1, 3, 31};
    reader_params p;
    p.receiver = (c & 1) ? side::initiator : side::target;
    p.connected = c & 2;
    p.hdgst = c & 4;
    p.ddgst = c & 8;
    p.pda = pdas[(c >> 4) & 3];
    p.max_icd = (c & 64) ? 4096 : 16384;
    p.max_data = (c & 64) ? 4096 : 131072;
    return p;
}

// Re-encodes an accepted PDU with the writer (minimal padding, reserved
// fields zero) and returns the bytes.
std::vector<std::byte> reencode(const pdu_view& v, const reader_params& rp) {
    send_batch b({.hdgst = rp.hdgst, .ddgst = rp.ddgst, .pda = rp.pda});
    iovec data{const_cast<std::byte*>(v.data.data()), v.data.size()};
    std::span<const iovec> iov(&data, v.data.empty() ? 0 : 1);
    uint8_t flags = v.as<common_header>().flags;
    bool last = flags & pdu_flags::last_pdu;
    switch (v.type) {
        case pdu_type::ic_req: {
            const auto& h = v.as<ic_req>();
            b.add_ic_req(h.hpda, h.dgst, h.maxr2t);
            break;
        }
        case pdu_type::ic_resp: {
            const auto& h = v.as<ic_resp>();
            b.add_ic_resp(h.cpda, h.dgst, h.maxh2cdata);
            break;
        }
        case pdu_type::h2c_term_req:
        case pdu_type::c2h_term_req: {
            const auto& h = v.as<term_req>();
            b.add_term_req(v.type, fes(h.fes.get()), h.fei, v.data);
            break;
        }
        case pdu_type::capsule_cmd:
            b.add_capsule_cmd(std::span<const std::byte, 64>(v.as<capsule_cmd>().sqe), iov);
            break;
        case pdu_type::capsule_resp:
            b.add_capsule_resp(std::span<const std::byte, 16>(v.as<capsule_resp>().cqe));
            break;
        case pdu_type::h2c_data: {
            const auto& h = v.as<h2c_data>();
            b.add_h2c_data(h.cccid, h.ttag, h.datao, iov, last);
            break;
        }
        case pdu_type::c2h_data: {
            const auto& h = v.as<c2h_data>();
            b.add_c2h_data(h.cccid, h.datao, iov, last, flags & pdu_flags::success);
            break;
        }
        case pdu_type::r2t: {
            const auto& h = v.as<r2t>();
            b.add_r2t(h.cccid, h.ttag, h.r2to, h.r2tl);
            break;
        }
    }
    FUZZ_CHECK(b.pdus() == 1);
    std::vector<std::byte> out;
    for (const iovec& x : b.iovecs()) {
        auto* p = static_cast<const std::byte*>(x.iov_base);
        out.insert(out.end(), p, p + x.iov_len);
    }
    return out;
}

void check_view(const pdu_view& v, std::span<const std::byte> buf, const reader_params& rp) {
    FUZZ_CHECK(v.header == buf.data());
    FUZZ_CHECK(v.size <= buf.size());
    FUZZ_CHECK(v.data.size() == v.data_length);
    FUZZ_CHECK(v.data.empty() || (v.data.data() >= buf.data() &&
                                  v.data.data() + v.data.size() <= buf.data() + v.size));
    (void)v.cccid();

    // parse_header agrees on the PDU's shape.
    auto h = parse_header(buf, rp);
    const auto* hv = std::get_if<pdu_view>(&h);
    FUZZ_CHECK(hv && hv->type == v.type && hv->size == v.size && hv->data_length == v.data_length);

    // What the writer makes of it parses back to the same PDU.
    auto again = reencode(v, rp);
    FUZZ_CHECK(again.size() <= v.size);
    auto r = parse(again, rp);
    const auto* av = std::get_if<pdu_view>(&r);
    FUZZ_CHECK(av && av->type == v.type && av->size == again.size());
    FUZZ_CHECK(av->data.size() == v.data.size() &&
               (v.data.empty() || std::memcmp(av->data.data(), v.data.data(), v.data.size()) == 0));
    FUZZ_CHECK(av->cccid() == v.cccid());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    reader_params rp = params_from(data[0]);
    // A copy, so ASan sees reads past the exact end of the stream.
    std::vector<std::byte> copy(reinterpret_cast<const std::byte*>(data + 1),
                                reinterpret_cast<const std::byte*>(data + size));
    std::span<const std::byte> rest(copy);
    const size_t bound = 255 + std::max(rp.max_icd, rp.max_data) + digest_size;

    // Several PDUs, as one receive would hold; bounded like the real loop.
    for (int budget = 0; budget < 64; ++budget) {
        auto r = parse(rest, rp);
        if (const auto* v = std::get_if<pdu_view>(&r)) {
            check_view(*v, rest, rp);
            if (v->type == pdu_type::ic_req || v->type == pdu_type::ic_resp) {
                rp.connected = true;
            }
            rest = rest.subspan(v->size);
        } else if (const auto* d = std::get_if<data_digest_error>(&r)) {
            FUZZ_CHECK(d->pdu.size <= rest.size() && d->pdu.data_digest);
            rest = rest.subspan(d->pdu.size);
        } else if (const auto* m = std::get_if<need_more>(&r)) {
            FUZZ_CHECK(m->total > rest.size() && m->total <= bound);
            return 0;
        } else {
            const auto& f = std::get<fatal_error>(r);
            FUZZ_CHECK(f.header_bytes <= rest.size() && f.header_bytes <= term_req_max_data);
            // The TermReq we would answer with encodes.
            std::byte out[max_prefix];
            FUZZ_CHECK(encode_term_req(out, pdu_type::c2h_term_req, f.status, f.fei,
                                       rest.first(f.header_bytes)) <= max_prefix);
            return 0;
        }
    }
    return 0;
}
