#include "nvmf/tcp/pdu_writer.h"

#include <algorithm>
#include <cassert>
#include <cstring>

#include "nvmf/tcp/crc32c.h"

namespace weft::nvmf::tcp {

namespace {

// Zeroes `n` bytes of `out` (reserved fields, padding) and fills the common
// header. Returns the header, laid over `out`.
template <typename T>
T& start(std::span<std::byte> out, size_t n, pdu_type type, uint8_t flags, uint8_t pdo,
         uint32_t plen) {
    assert(out.size() >= n && n >= sizeof(T));
    std::memset(out.data(), 0, n);
    auto& h = *reinterpret_cast<T*>(out.data());
    common_header& ch = *reinterpret_cast<common_header*>(out.data());
    ch.type = uint8_t(type);
    ch.flags = flags;
    ch.hlen = uint8_t(sizeof(T));
    ch.pdo = pdo;
    ch.plen = plen;
    return h;
}

// The shape of a PDU with digests and padding as negotiated.
struct layout {
    uint8_t flags = 0;
    uint32_t prefix = 0;  // header + header digest + padding: PDO when data follows
    uint32_t plen = 0;

    layout(const writer_params& p, uint32_t hlen, uint32_t data_length) {
        uint32_t header_end = hlen + (p.hdgst ? digest_size : 0);
        if (p.hdgst) flags |= pdu_flags::hdgst;
        prefix = header_end;
        plen = header_end;
        if (data_length > 0) {
            uint32_t align = pda_bytes(p.pda);
            prefix = (header_end + align - 1) / align * align;
            plen = prefix + data_length;
            if (p.ddgst) {
                flags |= pdu_flags::ddgst;
                plen += digest_size;
            }
        }
    }
    uint8_t pdo(uint32_t data_length) const { return data_length ? uint8_t(prefix) : 0; }
};

// Writes the header digest after the first `hlen` bytes when negotiated.
void seal(std::span<std::byte> out, const writer_params& p, size_t hlen) {
    if (!p.hdgst) return;
    auto d = encode_digest(crc32c(out.first(hlen)));
    std::memcpy(out.data() + hlen, d.data(), d.size());
}

size_t encode_ic(std::span<std::byte> out, pdu_type type, uint8_t pda, uint8_t dgst,
                 uint32_t last_field) {
    // ICReq and ICResp share their layout; neither carries digests.
    auto& ic = start<ic_req>(out, sizeof(ic_req), type, 0, 0, sizeof(ic_req));
    ic.pfv = pfv_1_0;
    ic.hpda = pda;
    ic.dgst = dgst;
    ic.maxr2t = last_field;
    return sizeof(ic_req);
}

}  // namespace

size_t encode_ic_req(std::span<std::byte> out, uint8_t hpda, uint8_t dgst, uint32_t maxr2t) {
    assert(hpda <= max_pda);
    return encode_ic(out, pdu_type::ic_req, hpda, dgst, maxr2t);
}

size_t encode_ic_resp(std::span<std::byte> out, uint8_t cpda, uint8_t dgst, uint32_t maxh2cdata) {
    // Section 3.6.2.3; the Linux host refuses anything else.
    assert(cpda <= max_pda && maxh2cdata >= min_maxh2cdata && maxh2cdata % 4 == 0);
    return encode_ic(out, pdu_type::ic_resp, cpda, dgst, maxh2cdata);
}

size_t encode_capsule_cmd(std::span<std::byte> out, const writer_params& p,
                          std::span<const std::byte, 64> sqe, uint32_t icd_length) {
    layout l(p, sizeof(capsule_cmd), icd_length);
    auto& c = start<capsule_cmd>(out, l.prefix, pdu_type::capsule_cmd, l.flags, l.pdo(icd_length),
                                 l.plen);
    std::memcpy(c.sqe, sqe.data(), sizeof c.sqe);
    seal(out, p, sizeof(capsule_cmd));
    return l.prefix;
}

size_t encode_capsule_resp(std::span<std::byte> out, const writer_params& p,
                           std::span<const std::byte, 16> cqe) {
    layout l(p, sizeof(capsule_resp), 0);
    auto& r = start<capsule_resp>(out, l.prefix, pdu_type::capsule_resp, l.flags, 0, l.plen);
    std::memcpy(r.cqe, cqe.data(), sizeof r.cqe);
    seal(out, p, sizeof(capsule_resp));
    return l.prefix;
}

size_t encode_h2c_data(std::span<std::byte> out, const writer_params& p, uint16_t cccid,
                       uint16_t ttag, uint32_t datao, uint32_t datal, bool last) {
    assert(datal > 0);
    layout l(p, sizeof(h2c_data), datal);
    uint8_t flags = l.flags | (last ? pdu_flags::last_pdu : 0);
    auto& d = start<h2c_data>(out, l.prefix, pdu_type::h2c_data, flags, l.pdo(datal), l.plen);
    d.cccid = cccid;
    d.ttag = ttag;
    d.datao = datao;
    d.datal = datal;
    seal(out, p, sizeof(h2c_data));
    return l.prefix;
}

size_t encode_c2h_data(std::span<std::byte> out, const writer_params& p, uint16_t cccid,
                       uint32_t datao, uint32_t datal, bool last, bool success) {
    assert(datal > 0 && (last || !success));
    layout l(p, sizeof(c2h_data), datal);
    uint8_t flags = l.flags | (last ? pdu_flags::last_pdu : 0) | (success ? pdu_flags::success : 0);
    auto& d = start<c2h_data>(out, l.prefix, pdu_type::c2h_data, flags, l.pdo(datal), l.plen);
    d.cccid = cccid;
    d.datao = datao;
    d.datal = datal;
    seal(out, p, sizeof(c2h_data));
    return l.prefix;
}

size_t encode_r2t(std::span<std::byte> out, const writer_params& p, uint16_t cccid, uint16_t ttag,
                  uint32_t r2to, uint32_t r2tl) {
    layout l(p, sizeof(r2t), 0);
    auto& r = start<r2t>(out, l.prefix, pdu_type::r2t, l.flags, 0, l.plen);
    r.cccid = cccid;
    r.ttag = ttag;
    r.r2to = r2to;
    r.r2tl = r2tl;
    seal(out, p, sizeof(r2t));
    return l.prefix;
}

size_t encode_term_req(std::span<std::byte> out, pdu_type type, fes status, uint32_t fei,
                       std::span<const std::byte> offending) {
    assert(type == pdu_type::h2c_term_req || type == pdu_type::c2h_term_req);
    size_t n = std::min(offending.size(), size_t(term_req_max_data));
    uint32_t plen = uint32_t(sizeof(term_req) + n);
    auto& t = start<term_req>(out, plen, type, 0, 0, plen);
    t.fes = uint16_t(status);
    t.fei = fei;
    if (n) std::memcpy(out.data() + sizeof(term_req), offending.data(), n);
    return plen;
}

// --- send_batch ---

void send_batch::clear() {
    used_ = iov_count_ = pdus_ = bytes_ = 0;
}

bool send_batch::has_room(size_t data_iovecs) const {
    // A prefix, the data, and a digest (which may share the next iovec).
    return storage_bytes - used_ >= max_prefix + digest_size &&
           max_iovecs - iov_count_ >= data_iovecs + 2;
}

void send_batch::push(const void* p, size_t n) {
    if (n == 0) return;
    bytes_ += n;
    if (iov_count_ > 0) {
        iovec& prev = iov_[iov_count_ - 1];
        if (static_cast<const char*>(prev.iov_base) + prev.iov_len == p) {
            prev.iov_len += n;
            return;
        }
    }
    assert(iov_count_ < max_iovecs);
    iov_[iov_count_++] = iovec{const_cast<void*>(p), n};
}

void send_batch::push_prefix(size_t n) {
    push(storage_ + used_, n);
    used_ += n;
    ++pdus_;
}

void send_batch::push_data(std::span<const iovec> data) {
    for (const iovec& v : data) push(v.iov_base, v.iov_len);
    if (!params_.ddgst) return;
    auto d = encode_digest(crc32c(data));
    std::memcpy(storage_ + used_, d.data(), d.size());
    push(storage_ + used_, d.size());
    used_ += d.size();
}

namespace {
uint32_t total_length(std::span<const iovec> data) {
    size_t n = 0;
    for (const iovec& v : data) n += v.iov_len;
    assert(n <= UINT32_MAX);
    return uint32_t(n);
}
}  // namespace

bool send_batch::add_ic_req(uint8_t hpda, uint8_t dgst, uint32_t maxr2t) {
    if (!has_room(0)) return false;
    push_prefix(encode_ic_req(storage_tail(), hpda, dgst, maxr2t));
    return true;
}

bool send_batch::add_ic_resp(uint8_t cpda, uint8_t dgst, uint32_t maxh2cdata) {
    if (!has_room(0)) return false;
    push_prefix(encode_ic_resp(storage_tail(), cpda, dgst, maxh2cdata));
    return true;
}

bool send_batch::add_capsule_cmd(std::span<const std::byte, 64> sqe, std::span<const iovec> icd) {
    if (!has_room(icd.size())) return false;
    uint32_t n = total_length(icd);
    push_prefix(encode_capsule_cmd(storage_tail(), params_, sqe, n));
    if (n) push_data(icd);
    return true;
}

bool send_batch::add_capsule_resp(std::span<const std::byte, 16> cqe) {
    if (!has_room(0)) return false;
    push_prefix(encode_capsule_resp(storage_tail(), params_, cqe));
    return true;
}

bool send_batch::add_h2c_data(uint16_t cccid, uint16_t ttag, uint32_t datao,
                              std::span<const iovec> data, bool last) {
    if (!has_room(data.size())) return false;
    push_prefix(
        encode_h2c_data(storage_tail(), params_, cccid, ttag, datao, total_length(data), last));
    push_data(data);
    return true;
}

bool send_batch::add_c2h_data(uint16_t cccid, uint32_t datao, std::span<const iovec> data,
                              bool last, bool success) {
    if (!has_room(data.size())) return false;
    push_prefix(
        encode_c2h_data(storage_tail(), params_, cccid, datao, total_length(data), last, success));
    push_data(data);
    return true;
}

bool send_batch::add_r2t(uint16_t cccid, uint16_t ttag, uint32_t r2to, uint32_t r2tl) {
    if (!has_room(0)) return false;
    push_prefix(encode_r2t(storage_tail(), params_, cccid, ttag, r2to, r2tl));
    return true;
}

bool send_batch::add_term_req(pdu_type type, fes status, uint32_t fei,
                              std::span<const std::byte> offending) {
    if (!has_room(0)) return false;
    push_prefix(encode_term_req(storage_tail(), type, status, fei, offending));
    return true;
}

task<result<size_t>> send_batch::flush(tcp_stream& stream, bool zero_copy, tls_channel* tls) {
    if (iov_count_ == 0) {
        clear();
        co_return size_t(0);
    }
    // send_all consumes the iovecs it is given; they are ours, and reset here.
    result<size_t> sent = size_t(0);
    if (tls)
        sent = co_await tls->send_all(stream, iovecs());
    else
        sent = co_await stream.send_all(std::span<iovec>(iov_, iov_count_), zero_copy);
    clear();
    co_return sent;
}

}  // namespace weft::nvmf::tcp
