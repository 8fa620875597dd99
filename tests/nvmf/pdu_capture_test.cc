// The real bytes: the Linux NVMe/TCP host and Linux nvmet-tcp, captured with
// and without digests (tests/nvmf/vectors/README.md). Every TCP direction is
// reassembled and parsed from its receiver's point of view; every PDU must
// parse and verify, and re-encoding it with send_batch must reproduce the
// captured bytes exactly.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

#include "nvmf/pdu_test_util.h"

namespace weft::nvmf::tcp {
namespace {

using namespace test;

// --- a minimal classic-pcap reader and TCP reassembler ---

struct endpoint {
    uint32_t ip;
    uint16_t port;
    auto operator<=>(const endpoint&) const = default;
};

struct direction {
    endpoint src, dst;
    auto operator<=>(const direction&) const = default;
};

struct tcp_flow {
    bool have_isn = false;
    uint32_t isn = 0;                    // sequence number of the SYN
    std::map<uint32_t, bytes> segments;  // by offset from isn + 1
    size_t first_seen = 0;               // packet index, to order flows
};

uint16_t be16(const uint8_t* p) {
    return uint16_t(p[0] << 8 | p[1]);
}
uint32_t be32(const uint8_t* p) {
    return uint32_t(p[0]) << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

// Reads `path` into flows keyed by direction. Supports little/big-endian,
// micro/nanosecond pcap; link types Ethernet (1), Linux cooked (113, 276).
std::map<direction, tcp_flow> read_pcap(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::vector<uint8_t> d((std::istreambuf_iterator<char>(f)), {});
    EXPECT_GE(d.size(), 24u) << path;
    std::map<direction, tcp_flow> flows;
    if (d.size() < 24) return flows;
    uint32_t magic = uint32_t(d[0]) | d[1] << 8 | d[2] << 16 | uint32_t(d[3]) << 24;
    bool swapped = magic == 0xd4c3b2a1 || magic == 0x4d3cb2a1;
    EXPECT_TRUE(swapped || magic == 0xa1b2c3d4 || magic == 0xa1b23c4d) << "not a classic pcap";
    auto u32 = [&](size_t at) {
        uint32_t v = uint32_t(d[at]) | d[at + 1] << 8 | d[at + 2] << 16 | uint32_t(d[at + 3]) << 24;
        return swapped ? __builtin_bswap32(v) : v;
    };
    uint32_t link = u32(20);
    size_t link_header = link == 1 ? 14 : link == 113 ? 16 : link == 276 ? 20 : 0;
    EXPECT_NE(link_header, 0u) << "link type " << link;

    size_t index = 0;
    for (size_t off = 24; off + 16 <= d.size(); ++index) {
        uint32_t incl = u32(off + 8);
        const uint8_t* p = d.data() + off + 16;
        off += 16 + incl;
        if (off > d.size() || incl < link_header + 20) continue;
        uint16_t ethertype = be16(p + (link == 276 ? 0 : link_header - 2));
        if (ethertype != 0x0800) continue;  // IPv4 only: the captures are on 127.0.0.1
        const uint8_t* ip = p + link_header;
        size_t ihl = (ip[0] & 15) * 4, total = be16(ip + 2);
        if (ip[9] != 6 || total > incl - link_header || total < ihl + 20) continue;
        const uint8_t* tcp = ip + ihl;
        size_t doff = (tcp[12] >> 4) * 4;
        if (ihl + doff > total) continue;
        direction dir{{be32(ip + 12), be16(tcp)}, {be32(ip + 16), be16(tcp + 2)}};
        tcp_flow& flow = flows[dir];
        if (flow.segments.empty() && !flow.have_isn) flow.first_seen = index;
        uint32_t seq = be32(tcp + 4);
        if (tcp[13] & 0x02) {  // SYN
            flow.have_isn = true;
            flow.isn = seq;
        }
        size_t len = total - ihl - doff;
        if (len == 0) continue;
        EXPECT_TRUE(flow.have_isn) << "data before the SYN";
        uint32_t rel = seq - flow.isn - 1;  // modulo 2^32
        bytes& seg = flow.segments[rel];
        if (seg.size() < len) {
            auto* b = reinterpret_cast<const std::byte*>(tcp + doff);
            seg.assign(b, b + len);
        }
    }
    return flows;
}

// The flow's byte stream in sequence order (retransmissions and overlaps
// folded; a gap fails the test).
bytes reassemble(const tcp_flow& flow) {
    bytes out;
    for (const auto& [rel, seg] : flow.segments) {
        if (rel > out.size()) {
            ADD_FAILURE() << "gap in the stream at " << out.size();
            break;
        }
        size_t skip = out.size() - rel;
        if (skip < seg.size()) out.insert(out.end(), seg.begin() + long(skip), seg.end());
    }
    return out;
}

// --- parsing and re-encoding ---

using counts = std::map<pdu_type, int>;

// Re-encodes one parsed PDU with a send_batch and returns the bytes it sends.
bytes reencode(const pdu_view& v, const writer_params& wp) {
    send_batch b(wp);
    iovec data{const_cast<std::byte*>(v.data.data()), v.data.size()};
    std::span<const iovec> iov(&data, v.data.empty() ? 0 : 1);
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
        case pdu_type::capsule_cmd:
            b.add_capsule_cmd(std::span<const std::byte, 64>(v.as<capsule_cmd>().sqe), iov);
            break;
        case pdu_type::capsule_resp:
            b.add_capsule_resp(std::span<const std::byte, 16>(v.as<capsule_resp>().cqe));
            break;
        case pdu_type::h2c_data: {
            const auto& h = v.as<h2c_data>();
            b.add_h2c_data(h.cccid, h.ttag, h.datao, iov, h.ch.flags & pdu_flags::last_pdu);
            break;
        }
        case pdu_type::c2h_data: {
            const auto& h = v.as<c2h_data>();
            b.add_c2h_data(h.cccid, h.datao, iov, h.ch.flags & pdu_flags::last_pdu,
                           h.ch.flags & pdu_flags::success);
            break;
        }
        case pdu_type::r2t: {
            const auto& h = v.as<r2t>();
            b.add_r2t(h.cccid, h.ttag, h.r2to, h.r2tl);
            break;
        }
        default:
            ADD_FAILURE() << "unexpected " << to_string(v.type);
    }
    EXPECT_EQ(b.pdus(), 1u);
    return gather(b.iovecs());
}

// What one connection negotiated, from its ICReq and ICResp.
struct negotiated {
    uint8_t hpda = 0, cpda = 0, dgst = 0;
    uint32_t maxh2cdata = 0;
};

// Parses `stream` as `receiver` sees it; adds to `seen`.
void parse_stream(const bytes& stream, side receiver, const negotiated& n, counts& seen) {
    reader_params rp{.receiver = receiver};
    rp.max_icd = 16384;  // nvmet's default inline data size (4 pages)
    rp.max_data = receiver == side::target ? n.maxh2cdata : 1024 * 1024;
    rp.pda = receiver == side::target ? n.cpda : n.hpda;
    writer_params wp{.hdgst = bool(n.dgst & digest_bits::header),
                     .ddgst = bool(n.dgst & digest_bits::data),
                     .pda = receiver == side::target ? n.cpda : n.hpda};

    std::span<const std::byte> rest(stream);
    size_t offset = 0;
    while (!rest.empty()) {
        auto r = parse(rest, rp);
        auto* v = pick<pdu_view>(r);
        ASSERT_TRUE(v) << "at " << offset << ": " << describe(r);
        ++seen[v->type];
        bytes again = reencode(*v, wp);
        ASSERT_TRUE(std::equal(again.begin(), again.end(), rest.begin(), rest.begin() + v->size) &&
                    again.size() == v->size)
            << to_string(v->type) << " at " << offset << " re-encodes differently";
        if (v->type == pdu_type::ic_req || v->type == pdu_type::ic_resp) {
            rp.connected = true;
            rp.hdgst = wp.hdgst;
            rp.ddgst = wp.ddgst;
        }
        offset += v->size;
        rest = rest.subspan(v->size);
    }
}

counts parse_capture(const std::string& name, int* digest_connections) {
    auto flows = read_pcap(std::string(WEFT_NVMF_VECTORS) + "/" + name);
    counts seen;
    *digest_connections = 0;
    for (const auto& [dir, flow] : flows) {
        // Start from the host's side of each connection: its stream opens
        // with an ICReq; the reverse direction holds the target's answers.
        bytes h2c_stream = reassemble(flow);
        if (h2c_stream.empty() || h2c_stream[0] != std::byte(pdu_type::ic_req)) continue;
        auto back = flows.find(direction{dir.dst, dir.src});
        EXPECT_NE(back, flows.end());
        if (back == flows.end()) continue;
        bytes c2h_stream = reassemble(back->second);
        EXPECT_GE(h2c_stream.size(), 128u);
        EXPECT_GE(c2h_stream.size(), 128u);
        if (h2c_stream.size() < 128 || c2h_stream.size() < 128) continue;
        const auto& req = *reinterpret_cast<const ic_req*>(h2c_stream.data());
        const auto& resp = *reinterpret_cast<const ic_resp*>(c2h_stream.data());
        negotiated n{req.hpda, resp.cpda, resp.dgst, resp.maxh2cdata};
        // The Linux host's demands on an ICResp: CPDA 0, digests echoed.
        EXPECT_EQ(resp.cpda, 0);
        EXPECT_EQ(resp.dgst, req.dgst);
        if (n.dgst) ++*digest_connections;
        SCOPED_TRACE(name + " port " + std::to_string(dir.src.port));
        parse_stream(h2c_stream, side::target, n, seen);
        parse_stream(c2h_stream, side::initiator, n, seen);
    }
    return seen;
}

// README's table: 3 connections (discovery, admin, I/O).
const counts expected{{pdu_type::ic_req, 3},       {pdu_type::ic_resp, 3},
                      {pdu_type::capsule_cmd, 61}, {pdu_type::capsule_resp, 61},
                      {pdu_type::c2h_data, 30},    {pdu_type::h2c_data, 1},
                      {pdu_type::r2t, 1}};

TEST(capture, linux_host_and_nvmet_without_digests) {
    int digests = 0;
    EXPECT_EQ(parse_capture("linux-host-to-linux-nvmet.pcap", &digests), expected);
    EXPECT_EQ(digests, 0);
}

TEST(capture, linux_host_and_nvmet_with_digests) {
    int digests = 0;
    EXPECT_EQ(parse_capture("linux-host-to-linux-nvmet-digests.pcap", &digests), expected);
    // The discovery connection does not ask for digests even with
    // --hdr-digest --data-digest; the admin and I/O queues do.
    EXPECT_EQ(digests, 2);
}

}  // namespace
}  // namespace weft::nvmf::tcp
