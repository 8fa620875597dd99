// Round trips: every encoder's output parses back, with and without digests
// and alignment padding; send_batch gathers PDUs into few iovecs.
#include "nvmf/tcp/pdu_writer.h"

#include <sys/socket.h>
#include <unistd.h>

#include <tuple>

#include "nvmf/pdu_test_util.h"
#include "runtime/test_util.h"

namespace weft::nvmf::tcp {
namespace {

using namespace test;

// (header digest, data digest, PDA)
class round_trip : public ::testing::TestWithParam<std::tuple<bool, bool, uint8_t>> {
  protected:
    writer_params wp() const {
        auto [h, d, pda] = GetParam();
        return {.hdgst = h, .ddgst = d, .pda = pda};
    }
    reader_params rp(side s) const {
        auto [h, d, pda] = GetParam();
        return {.receiver = s, .connected = true, .hdgst = h, .ddgst = d, .pda = pda};
    }
    uint32_t hd() const { return wp().hdgst ? 4 : 0; }
    uint32_t dd() const { return wp().ddgst ? 4 : 0; }
    uint32_t aligned(uint32_t n) const {
        uint32_t a = pda_bytes(wp().pda);
        return (n + a - 1) / a * a;
    }

    // Parses `pdu` as its only PDU and returns the view (pointing into `pdu`).
    pdu_view parse_one(const bytes& pdu, side s) {
        auto r = parse(pdu, rp(s));
        auto* v = pick<pdu_view>(r);
        EXPECT_TRUE(v) << describe(r);
        if (!v) return {};
        EXPECT_EQ(v->size, pdu.size());
        return *v;
    }

    std::array<std::byte, max_prefix> buf_{};
};

TEST_P(round_trip, capsule_cmd_without_data) {
    auto sqe = pattern(64);
    sqe[2] = std::byte(0x34), sqe[3] = std::byte(0x12);  // CID
    size_t n = encode_capsule_cmd(buf_, wp(), std::span<const std::byte, 64>(sqe), 0);
    EXPECT_EQ(n, 72 + hd());
    bytes pdu(buf_.begin(), buf_.begin() + n);
    EXPECT_EQ(pdu[3], std::byte(0)) << "PDO is 0 without data, as Linux sends it";
    auto v = parse_one(pdu, side::target);
    EXPECT_EQ(v.type, pdu_type::capsule_cmd);
    EXPECT_EQ(v.cccid(), 0x1234);
    EXPECT_EQ(v.data_length, 0u);
    EXPECT_EQ(0, std::memcmp(v.as<capsule_cmd>().sqe, sqe.data(), 64));
}

TEST_P(round_trip, capsule_cmd_with_in_capsule_data) {
    auto sqe = pattern(64, 2);
    auto icd = pattern(4096, 3);
    size_t n = encode_capsule_cmd(buf_, wp(), std::span<const std::byte, 64>(sqe), 4096);
    EXPECT_EQ(n, aligned(72 + hd()));
    bytes pdu = with_data(std::span(buf_).first(n), wp(), icd);
    auto v = parse_one(pdu, side::target);
    EXPECT_EQ(v.data_offset, n);
    EXPECT_EQ(v.data_digest, wp().ddgst);
    EXPECT_TRUE(std::equal(v.data.begin(), v.data.end(), icd.begin(), icd.end()));
}

TEST_P(round_trip, capsule_resp) {
    auto cqe = pattern(16, 4);
    size_t n = encode_capsule_resp(buf_, wp(), std::span<const std::byte, 16>(cqe));
    EXPECT_EQ(n, 24 + hd());
    bytes pdu(buf_.begin(), buf_.begin() + n);
    auto v = parse_one(pdu, side::initiator);
    EXPECT_EQ(v.type, pdu_type::capsule_resp);
    EXPECT_EQ(0, std::memcmp(v.as<capsule_resp>().cqe, cqe.data(), 16));
}

TEST_P(round_trip, h2c_data) {
    auto data = pattern(8192, 5);
    size_t n = encode_h2c_data(buf_, wp(), 7, 11, 4096, 8192, true);
    bytes pdu = with_data(std::span(buf_).first(n), wp(), data);
    auto v = parse_one(pdu, side::target);
    const auto& h = v.as<h2c_data>();
    EXPECT_EQ(h.ch.flags & pdu_flags::last_pdu, pdu_flags::last_pdu);
    EXPECT_EQ(h.cccid.get(), 7);
    EXPECT_EQ(h.ttag.get(), 11);
    EXPECT_EQ(h.datao.get(), 4096u);
    EXPECT_EQ(h.datal.get(), 8192u);
    EXPECT_EQ(v.size, aligned(24 + hd()) + 8192 + dd());
    EXPECT_TRUE(std::equal(v.data.begin(), v.data.end(), data.begin(), data.end()));
}

TEST_P(round_trip, c2h_data_flags) {
    auto data = pattern(512, 6);
    for (auto [last, success] : {std::pair{false, false}, {true, false}, {true, true}}) {
        size_t n = encode_c2h_data(buf_, wp(), 9, 0, 512, last, success);
        bytes pdu = with_data(std::span(buf_).first(n), wp(), data);
        auto v = parse_one(pdu, side::initiator);
        const auto& h = v.as<c2h_data>();
        EXPECT_EQ(bool(h.ch.flags & pdu_flags::last_pdu), last);
        EXPECT_EQ(bool(h.ch.flags & pdu_flags::success), success);
        EXPECT_EQ(v.cccid(), 9);
        EXPECT_EQ(h.datal.get(), 512u);
    }
}

TEST_P(round_trip, r2t) {
    size_t n = encode_r2t(buf_, wp(), 92, 11, 0, 65536);
    EXPECT_EQ(n, 24 + hd());
    bytes pdu(buf_.begin(), buf_.begin() + n);
    auto v = parse_one(pdu, side::initiator);
    const auto& r = v.as<tcp::r2t>();
    EXPECT_EQ(v.cccid(), 92);
    EXPECT_EQ(r.ttag.get(), 11);
    EXPECT_EQ(r.r2to.get(), 0u);
    EXPECT_EQ(r.r2tl.get(), 65536u);
}

INSTANTIATE_TEST_SUITE_P(digests_and_alignment, round_trip,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool(),
                                            ::testing::Values(uint8_t(0), uint8_t(3),
                                                              uint8_t(31))));

TEST(writer, ic_req_and_ic_resp) {
    std::array<std::byte, max_prefix> buf{};
    size_t n = encode_ic_req(buf, 2, digest_bits::header | digest_bits::data, 0);
    ASSERT_EQ(n, 128u);
    auto r = parse(std::span(buf).first(n), {.receiver = side::target});
    auto* v = pick<pdu_view>(r);
    ASSERT_TRUE(v) << describe(r);
    EXPECT_EQ(v->as<ic_req>().hpda, 2);
    EXPECT_EQ(v->as<ic_req>().dgst, 3);
    EXPECT_EQ(v->as<ic_req>().maxr2t.get(), 0u);

    n = encode_ic_resp(buf, 0, digest_bits::data, 131072);
    r = parse(std::span(buf).first(n), {.receiver = side::initiator});
    v = pick<pdu_view>(r);
    ASSERT_TRUE(v) << describe(r);
    EXPECT_EQ(v->as<ic_resp>().pfv.get(), 0);
    EXPECT_EQ(v->as<ic_resp>().cpda, 0);
    EXPECT_EQ(v->as<ic_resp>().dgst, digest_bits::data);
    EXPECT_EQ(v->as<ic_resp>().maxh2cdata.get(), 131072u);
}

TEST(writer, term_req_carries_the_offending_header) {
    std::array<std::byte, max_prefix> buf{};
    auto offending = pattern(200);
    for (auto type : {pdu_type::h2c_term_req, pdu_type::c2h_term_req}) {
        size_t n = encode_term_req(buf, type, fes::invalid_header_field, 3, offending);
        ASSERT_EQ(n, 152u) << "header data is capped at 128 bytes";
        side s = type == pdu_type::h2c_term_req ? side::target : side::initiator;
        // A TermReq is accepted before and after the IC exchange, with or
        // without digests, and never carries any.
        for (bool connected : {false, true}) {
            auto r = parse(std::span(buf).first(n),
                           {.receiver = s, .connected = connected, .hdgst = true, .ddgst = true});
            auto* v = pick<pdu_view>(r);
            ASSERT_TRUE(v) << describe(r);
            const auto& t = v->as<term_req>();
            EXPECT_EQ(t.fes.get(), 1);
            EXPECT_EQ(t.fei.get(), 3u);
            EXPECT_EQ(v->data.size(), 128u);
            EXPECT_TRUE(std::equal(v->data.begin(), v->data.end(), offending.begin()));
        }
    }
}

TEST(send_batch, gathers_a_loop_iteration_into_few_iovecs) {
    for (bool digests : {false, true}) {
        writer_params p{.hdgst = digests, .ddgst = digests};
        send_batch b(p);
        auto d1 = pattern(4096, 1), d2a = pattern(1000, 2), d2b = pattern(3096, 3);
        auto cqe = pattern(16, 4);
        iovec one[] = {as_iovec(d1)};
        iovec two[] = {as_iovec(d2a), as_iovec(d2b)};
        ASSERT_TRUE(b.add_c2h_data(1, 0, one, true, false));
        ASSERT_TRUE(b.add_capsule_resp(std::span<const std::byte, 16>(cqe)));
        ASSERT_TRUE(b.add_r2t(2, 5, 0, 65536));
        ASSERT_TRUE(b.add_c2h_data(3, 0, two, true, false));
        ASSERT_TRUE(b.add_capsule_resp(std::span<const std::byte, 16>(cqe)));
        EXPECT_EQ(b.pdus(), 5u);
        // hdr | d1 | (digest) resp r2t hdr | d2a | d2b | (digest) resp
        EXPECT_EQ(b.iovecs().size(), 6u);

        bytes wire = gather(b.iovecs());
        EXPECT_EQ(wire.size(), b.bytes());
        reader_params rp{
            .receiver = side::initiator, .connected = true, .hdgst = digests, .ddgst = digests};
        std::span<const std::byte> rest(wire);
        std::vector<pdu_type> types;
        std::vector<size_t> data_sizes;
        while (!rest.empty()) {
            auto r = parse(rest, rp);
            auto* v = pick<pdu_view>(r);
            ASSERT_TRUE(v) << describe(r);
            types.push_back(v->type);
            data_sizes.push_back(v->data.size());
            rest = rest.subspan(v->size);
        }
        EXPECT_EQ(types, (std::vector{pdu_type::c2h_data, pdu_type::capsule_resp, pdu_type::r2t,
                                      pdu_type::c2h_data, pdu_type::capsule_resp}));
        EXPECT_EQ(data_sizes, (std::vector<size_t>{4096, 0, 0, 4096, 0}));
        b.clear();
        EXPECT_TRUE(b.empty());
        EXPECT_TRUE(b.iovecs().empty());
    }
}

TEST(send_batch, reports_when_full_and_recovers_after_clear) {
    send_batch b({.hdgst = true});
    auto cqe = pattern(16);
    size_t added = 0;
    while (b.add_capsule_resp(std::span<const std::byte, 16>(cqe))) ++added;
    // Limited by storage (28 bytes each, room for a worst-case PDU kept).
    EXPECT_GT(added, 500u);
    EXPECT_EQ(b.pdus(), added);
    EXPECT_EQ(b.iovecs().size(), 1u) << "consecutive headers share one iovec";
    EXPECT_EQ(b.bytes(), added * 28);

    b.clear();
    std::vector<bytes> bufs(send_batch::max_iovecs);
    std::vector<iovec> iov;
    for (auto& x : bufs) {
        x = pattern(16);
        iov.push_back(as_iovec(x));
    }
    EXPECT_FALSE(b.add_c2h_data(1, 0, iov, true, false)) << "more iovecs than the batch holds";
    EXPECT_TRUE(b.empty());
    EXPECT_TRUE(b.add_c2h_data(1, 0, std::span(iov).first(100), true, false));
}

TEST(send_batch, flush_sends_everything_with_one_call) {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    auto data = pattern(8192, 9);
    auto cqe = pattern(16, 10);
    bytes expected;
    size_t sent = weft::test::run_reactors(1, [&]() -> task<size_t> {
        tcp_stream s{fd_handle(sv[0])};
        send_batch b({.hdgst = true, .ddgst = true});
        iovec iov[] = {as_iovec(data)};
        b.add_c2h_data(4, 0, iov, true, false);
        b.add_capsule_resp(std::span<const std::byte, 16>(cqe));
        expected = gather(b.iovecs());
        auto r = co_await b.flush(s);
        EXPECT_TRUE(b.empty());
        co_return r ? r.value() : 0;
    });
    EXPECT_EQ(sent, expected.size());
    bytes got(expected.size());
    size_t off = 0;
    while (off < got.size()) {
        ssize_t n = ::read(sv[1], got.data() + off, got.size() - off);
        ASSERT_GT(n, 0);
        off += size_t(n);
    }
    EXPECT_EQ(got, expected);
    ::close(sv[1]);
}

}  // namespace
}  // namespace weft::nvmf::tcp
