// Every way the reader refuses a PDU, each proven by damaging one field of a
// valid PDU (and fixing the digests, so that only that field is wrong).
#include "nvmf/tcp/pdu_reader.h"

#include "nvmf/pdu_test_util.h"

namespace weft::nvmf::tcp {
namespace {

using namespace test;

constexpr size_t fei_flags = 1, fei_hlen = 2, fei_pdo = 3, fei_plen = 4;

class reader : public ::testing::Test {
  protected:
    // Negotiated: both digests, 4-byte alignment.
    writer_params wp{.hdgst = true, .ddgst = true};
    reader_params target{.receiver = side::target,
                         .connected = true,
                         .hdgst = true,
                         .ddgst = true,
                         .max_icd = 8192,
                         .max_data = 65536};
    reader_params initiator{.receiver = side::initiator,
                            .connected = true,
                            .hdgst = true,
                            .ddgst = true,
                            .max_icd = 8192,
                            .max_data = 65536};

    bytes capsule_cmd(uint16_t cid, size_t icd) {
        auto sqe = pattern(64);
        sqe[2] = std::byte(cid & 0xff), sqe[3] = std::byte(cid >> 8);
        std::array<std::byte, max_prefix> buf{};
        size_t n = encode_capsule_cmd(buf, wp, std::span<const std::byte, 64>(sqe), uint32_t(icd));
        return with_data(std::span(buf).first(n), wp, pattern(icd, 2));
    }
    bytes h2c(uint16_t cccid, size_t len) {
        std::array<std::byte, max_prefix> buf{};
        size_t n = encode_h2c_data(buf, wp, cccid, 3, 0, uint32_t(len), true);
        return with_data(std::span(buf).first(n), wp, pattern(len, 3));
    }
    bytes c2h(size_t len) {
        std::array<std::byte, max_prefix> buf{};
        size_t n = encode_c2h_data(buf, wp, 5, 0, uint32_t(len), true, false);
        return with_data(std::span(buf).first(n), wp, pattern(len, 4));
    }
    bytes capsule_resp() {
        std::array<std::byte, max_prefix> buf{};
        auto cqe = pattern(16);
        size_t n = encode_capsule_resp(buf, wp, std::span<const std::byte, 16>(cqe));
        return bytes(buf.begin(), buf.begin() + n);
    }
    bytes ic_req() {
        std::array<std::byte, max_prefix> buf{};
        size_t n = encode_ic_req(buf, 0, 3, 0);
        return bytes(buf.begin(), buf.begin() + n);
    }
    bytes ic_resp(uint32_t maxh2cdata = 131072) {
        std::array<std::byte, max_prefix> buf{};
        size_t n = encode_ic_resp(buf, 0, 3, maxh2cdata);
        return bytes(buf.begin(), buf.begin() + n);
    }

    static void expect_fatal(const parse_result& r, fes status, uint32_t fei) {
        auto* f = pick<fatal_error>(r);
        ASSERT_TRUE(f) << describe(r);
        EXPECT_EQ(f->status, status) << describe(r);
        EXPECT_EQ(f->fei, fei) << describe(r);
        EXPECT_TRUE(f->reply);
        EXPECT_LE(f->header_bytes, 128u);
    }
};

TEST_F(reader, valid_pdus_parse) {
    for (size_t icd : {size_t(0), size_t(1), size_t(4096), size_t(8192)}) {
        auto pdu = capsule_cmd(77, icd);
        auto r = parse(pdu, target);
        auto* v = pick<pdu_view>(r);
        ASSERT_TRUE(v) << describe(r);
        EXPECT_EQ(v->cccid(), 77);
        EXPECT_EQ(v->data.size(), icd);
    }
    auto r = parse(capsule_resp(), initiator);
    EXPECT_TRUE(pick<pdu_view>(r)) << describe(r);
}

TEST_F(reader, truncated_input_needs_more) {
    auto pdu = capsule_cmd(1, 4096);
    EXPECT_EQ(pick<need_more>(parse({}, target))->total, 8u);
    for (size_t n = 0; n < pdu.size(); ++n) {
        auto r = parse(std::span(pdu).first(n), target);
        auto* m = pick<need_more>(r);
        ASSERT_TRUE(m) << "at " << n << ": " << describe(r);
        // Before the common header is known, just that; then the whole PDU.
        EXPECT_EQ(m->total, n < 8 ? 8 : pdu.size()) << "at " << n;
    }
}

TEST_F(reader, parse_header_stops_after_the_header) {
    auto pdu = h2c(9, 32768);
    for (size_t n = 8; n < 28; ++n) {
        auto r = parse_header(std::span(pdu).first(n), target);
        ASSERT_TRUE(pick<need_more>(r)) << describe(r);
        EXPECT_EQ(pick<need_more>(r)->total, 28u);
    }
    auto r = parse_header(std::span(pdu).first(28), target);
    auto* v = pick<pdu_view>(r);
    ASSERT_TRUE(v) << describe(r);
    EXPECT_EQ(v->data_offset, 28u);
    EXPECT_EQ(v->data_length, 32768u);
    EXPECT_TRUE(v->data_digest);
    EXPECT_TRUE(v->data.empty());
    EXPECT_EQ(v->size, pdu.size());
}

TEST_F(reader, several_pdus_in_one_buffer) {
    bytes stream;
    for (auto& p : {capsule_cmd(1, 0), capsule_cmd(2, 4096), h2c(2, 512), capsule_cmd(3, 0)}) {
        stream.insert(stream.end(), p.begin(), p.end());
    }
    stream.erase(stream.end() - 10, stream.end());  // the last one is still arriving
    std::span<const std::byte> rest(stream);
    std::vector<uint16_t> cids;
    for (;;) {
        auto r = parse(rest, target);
        if (auto* v = pick<pdu_view>(r)) {
            cids.push_back(v->cccid());
            rest = rest.subspan(v->size);
            continue;
        }
        ASSERT_TRUE(pick<need_more>(r)) << describe(r);
        EXPECT_EQ(pick<need_more>(r)->total, 76u);
        break;
    }
    EXPECT_EQ(cids, (std::vector<uint16_t>{1, 2, 2}));
}

TEST_F(reader, unknown_type) {
    for (uint8_t type : {8, 10, 0x7f, 0xff}) {
        auto pdu = capsule_resp();
        pdu[0] = std::byte(type);
        expect_fatal(parse(pdu, initiator), fes::invalid_header_field, 0);
    }
}

TEST_F(reader, type_for_the_other_side) {
    expect_fatal(parse(capsule_resp(), target), fes::invalid_header_field, 0);
    expect_fatal(parse(c2h(512), target), fes::invalid_header_field, 0);
    expect_fatal(parse(ic_resp(), target), fes::invalid_header_field, 0);
    expect_fatal(parse(capsule_cmd(1, 0), initiator), fes::invalid_header_field, 0);
    expect_fatal(parse(h2c(1, 512), initiator), fes::invalid_header_field, 0);
    expect_fatal(parse(ic_req(), initiator), fes::invalid_header_field, 0);
}

TEST_F(reader, pdu_sequence) {
    reader_params before = target;
    before.connected = false;
    before.hdgst = before.ddgst = false;
    EXPECT_TRUE(pick<pdu_view>(parse(ic_req(), before)));
    expect_fatal(parse(capsule_cmd(1, 0), before), fes::pdu_sequence_error, 0);
    expect_fatal(parse(ic_req(), target), fes::pdu_sequence_error, 0);
    reader_params ibefore = initiator;
    ibefore.connected = false;
    EXPECT_TRUE(pick<pdu_view>(parse(ic_resp(), ibefore)));
    expect_fatal(parse(ic_resp(), initiator), fes::pdu_sequence_error, 0);
}

TEST_F(reader, flags) {
    auto pdu = capsule_cmd(1, 0);
    pdu[1] |= std::byte(pdu_flags::last_pdu);  // not a CapsuleCmd flag
    expect_fatal(parse(pdu, target), fes::invalid_header_field, fei_flags);

    // Header digest negotiated but missing, or present but not negotiated.
    pdu = capsule_cmd(1, 0);
    pdu[1] &= ~std::byte(pdu_flags::hdgst);
    expect_fatal(parse(pdu, target), fes::invalid_header_field, fei_flags);
    reader_params plain = target;
    plain.hdgst = plain.ddgst = false;
    expect_fatal(parse(capsule_cmd(1, 0), plain), fes::invalid_header_field, fei_flags);

    // Data digest: missing with data; present without data.
    pdu = capsule_cmd(1, 4096);
    pdu[1] &= ~std::byte(pdu_flags::ddgst);
    expect_fatal(parse(pdu, target), fes::invalid_header_field, fei_flags);
    pdu = capsule_cmd(1, 0);
    pdu[1] |= std::byte(pdu_flags::ddgst);
    expect_fatal(parse(pdu, target), fes::invalid_header_field, fei_flags);

    // C2HData SUCCESS requires LAST_PDU.
    pdu = c2h(512);
    pdu[1] = (pdu[1] & ~std::byte(pdu_flags::last_pdu)) | std::byte(pdu_flags::success);
    expect_fatal(parse(pdu, initiator), fes::invalid_header_field, fei_flags);

    // IC PDUs never carry digests.
    pdu = ic_req();
    pdu[1] = std::byte(pdu_flags::hdgst);
    reader_params before = target;
    before.connected = false;
    expect_fatal(parse(pdu, before), fes::invalid_header_field, fei_flags);
}

TEST_F(reader, lowest_bad_field_first) {
    auto pdu = capsule_cmd(1, 0);
    pdu[1] |= std::byte(0x80);
    pdu[2] = std::byte(71);
    expect_fatal(parse(pdu, target), fes::invalid_header_field, fei_flags);
}

TEST_F(reader, hlen) {
    for (int delta : {-1, 1, 100}) {
        auto pdu = capsule_cmd(1, 4096);
        increment_byte(pdu, 2, delta);
        expect_fatal(parse(pdu, target), fes::invalid_header_field, fei_hlen);
    }
    auto pdu = capsule_resp();
    pdu[2] = std::byte(128);
    expect_fatal(parse(pdu, initiator), fes::invalid_header_field, fei_hlen);
}

TEST_F(reader, pdo) {
    auto pdu = capsule_resp();  // no data: PDO must be 0
    pdu[3] = std::byte(28);
    expect_fatal(parse(pdu, initiator), fes::invalid_header_field, fei_pdo);

    pdu = capsule_cmd(1, 4096);  // data inside the header digest
    pdu[3] = std::byte(72);
    expect_fatal(parse(pdu, target), fes::invalid_header_field, fei_pdo);
    pdu[3] = std::byte(0);
    expect_fatal(parse(pdu, target), fes::invalid_header_field, fei_pdo);

    pdu = h2c(1, 16);  // PDO past the end of the PDU
    pdu[3] = std::byte(252);
    expect_fatal(parse(pdu, target), fes::invalid_header_field, fei_pdo);

    // Not at a multiple of the CPDA we advertised (3: 16 bytes).
    reader_params aligned = target;
    aligned.pda = 3;
    expect_fatal(parse(capsule_cmd(1, 4096), aligned), fes::invalid_header_field, fei_pdo);
    writer_params wpa = wp;
    wpa.pda = 3;
    auto sqe = pattern(64);
    std::array<std::byte, max_prefix> buf{};
    size_t n = encode_capsule_cmd(buf, wpa, std::span<const std::byte, 64>(sqe), 4096);
    EXPECT_EQ(n, 80u);
    auto r = parse(with_data(std::span(buf).first(n), wpa, pattern(4096)), aligned);
    EXPECT_TRUE(pick<pdu_view>(r)) << describe(r);
}

TEST_F(reader, plen) {
    auto pdu = capsule_resp();
    set_le32(pdu, 4, 20);  // shorter than the header
    expect_fatal(parse(pdu, initiator), fes::invalid_header_field, fei_plen);
    set_le32(pdu, 4, 32);  // data on a PDU that has none
    expect_fatal(parse(pdu, initiator), fes::invalid_header_field, fei_plen);

    pdu = h2c(1, 512);  // H2CData without data
    set_le32(pdu, 4, 28);
    pdu[1] &= ~std::byte(pdu_flags::ddgst);
    pdu[3] = std::byte(0);
    expect_fatal(parse(pdu, target), fes::invalid_header_field, fei_plen);

    pdu = capsule_cmd(1, 4096);  // room for the data digest only
    set_le32(pdu, 4, 76 + 4);
    expect_fatal(parse(pdu, target), fes::invalid_header_field, fei_plen);

    pdu = ic_req();
    set_le32(pdu, 4, 129);
    reader_params before = target;
    before.connected = false;
    expect_fatal(parse(pdu, before), fes::invalid_header_field, fei_plen);
}

TEST_F(reader, data_is_bounded_before_it_is_buffered) {
    // Only the 8-byte common header has arrived: a huge PLEN is refused
    // at once instead of asking for 4 GiB.
    for (uint32_t plen : {76u + 8192 + 4 + 1, 0xffffffffu}) {
        auto pdu = capsule_cmd(1, 4096);
        set_le32(pdu, 4, plen);
        expect_fatal(parse(std::span(pdu).first(8), target), fes::data_limit_exceeded, 0);
    }
    auto pdu = h2c(1, 512);
    set_le32(pdu, 4, 28 + 65536 + 4 + 4);
    expect_fatal(parse(std::span(pdu).first(8), target), fes::data_limit_exceeded, 0);
    pdu = c2h(65536 + 4);
    expect_fatal(parse(pdu, initiator), fes::data_limit_exceeded, 0);
    // At the limit, fine.
    EXPECT_TRUE(pick<pdu_view>(parse(h2c(1, 65536), target)));
}

TEST_F(reader, header_digest) {
    auto pdu = capsule_cmd(1, 4096);
    increment_byte(pdu, 8 + 10);  // inside the SQE
    expect_fatal(parse(pdu, target), fes::header_digest_error, 0);
    fix_header_digest(pdu);
    EXPECT_TRUE(pick<pdu_view>(parse(pdu, target)));
    increment_byte(pdu, 72);  // the digest itself
    expect_fatal(parse(pdu, target), fes::header_digest_error, 0);
    // Checked once the header is there, before the data.
    expect_fatal(parse(std::span(pdu).first(76), target), fes::header_digest_error, 0);
}

TEST_F(reader, data_digest_fails_only_the_command) {
    auto bad = capsule_cmd(0x1234, 4096);
    increment_byte(bad, 76 + 100);
    auto next = capsule_cmd(0x1235, 0);
    bytes stream = bad;
    stream.insert(stream.end(), next.begin(), next.end());

    auto r = parse(stream, target);
    auto* d = pick<data_digest_error>(r);
    ASSERT_TRUE(d) << describe(r);
    EXPECT_EQ(d->cccid, 0x1234);
    EXPECT_EQ(d->pdu.type, pdu_type::capsule_cmd);
    EXPECT_EQ(d->pdu.size, bad.size());
    // The stream stays in step: the next PDU parses.
    r = parse(std::span(stream).subspan(d->pdu.size), target);
    ASSERT_TRUE(pick<pdu_view>(r)) << describe(r);
    EXPECT_EQ(pick<pdu_view>(r)->cccid(), 0x1235);
    fix_data_digest(bad);
    EXPECT_TRUE(pick<pdu_view>(parse(bad, target)));

    auto h = h2c(0x42, 1024);
    increment_byte(h, h.size() - 1);  // the digest
    r = parse(h, target);
    ASSERT_TRUE(pick<data_digest_error>(r)) << describe(r);
    EXPECT_EQ(pick<data_digest_error>(r)->cccid, 0x42);

    auto c = c2h(1024);
    increment_byte(c, 28);
    ASSERT_TRUE(pick<data_digest_error>(parse(c, initiator)));
}

TEST_F(reader, data_pdu_length_must_match_plen) {
    auto pdu = h2c(1, 512);
    set_le32(pdu, offsetof(h2c_data, datal), 511);
    fix_header_digest(pdu);
    expect_fatal(parse(pdu, target), fes::invalid_header_field, offsetof(h2c_data, datal));
    pdu = c2h(512);
    set_le32(pdu, offsetof(c2h_data, datal), 1024);
    fix_header_digest(pdu);
    expect_fatal(parse(pdu, initiator), fes::invalid_header_field, offsetof(c2h_data, datal));
}

TEST_F(reader, ic_fields) {
    reader_params t = target, i = initiator;
    t.connected = i.connected = false;
    auto pdu = ic_req();
    pdu[8] = std::byte(1);  // PFV
    expect_fatal(parse(pdu, t), fes::unsupported_parameter, offsetof(tcp::ic_req, pfv));
    pdu = ic_req();
    pdu[10] = std::byte(32);  // HPDA
    expect_fatal(parse(pdu, t), fes::invalid_header_field, offsetof(tcp::ic_req, hpda));
    pdu = ic_req();
    pdu[11] = std::byte(4);  // DGST reserved bit
    expect_fatal(parse(pdu, t), fes::invalid_header_field, offsetof(tcp::ic_req, dgst));
    for (uint32_t m : {0u, 4095u, 4098u}) {  // the writer refuses these: patch them in
        pdu = ic_resp();
        set_le32(pdu, offsetof(tcp::ic_resp, maxh2cdata), m);
        expect_fatal(parse(pdu, i), fes::invalid_header_field, offsetof(tcp::ic_resp, maxh2cdata));
    }
    EXPECT_TRUE(pick<pdu_view>(parse(ic_resp(4096), i)));
}

TEST_F(reader, bad_term_req_closes_without_reply) {
    std::array<std::byte, max_prefix> buf{};
    size_t n =
        encode_term_req(buf, pdu_type::h2c_term_req, fes::header_digest_error, 0, pattern(40));
    bytes good(buf.begin(), buf.begin() + n);
    EXPECT_TRUE(pick<pdu_view>(parse(good, target)));
    auto check = [&](bytes pdu) {
        auto r = parse(pdu, target);
        auto* f = pick<fatal_error>(r);
        ASSERT_TRUE(f) << describe(r);
        EXPECT_FALSE(f->reply);
    };
    bytes pdu = good;
    set_le32(pdu, 4, 153);
    check(pdu);
    set_le32(pdu, 4, 23);
    check(pdu);
    pdu = good;
    pdu[1] = std::byte(pdu_flags::hdgst);
    check(pdu);
    pdu = good;
    pdu[2] = std::byte(28);
    check(pdu);
}

TEST_F(reader, fatal_error_echoes_the_header) {
    auto pdu = capsule_cmd(1, 4096);
    pdu[3] = std::byte(1);
    auto r = parse(pdu, target);
    ASSERT_TRUE(pick<fatal_error>(r));
    EXPECT_EQ(pick<fatal_error>(r)->header_bytes, 76u);  // the header and its digest
    r = parse(std::span(pdu).first(10), target);
    ASSERT_TRUE(pick<fatal_error>(r));
    EXPECT_EQ(pick<fatal_error>(r)->header_bytes, 10u);  // no more than is there
}

}  // namespace
}  // namespace weft::nvmf::tcp
