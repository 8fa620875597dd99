#include "nvmf/tcp/pdu_reader.h"

#include <algorithm>

#include "nvmf/tcp/crc32c.h"

namespace weft::nvmf::tcp {

namespace {

// What the spec allows of each PDU type's common header (section 3.6.2).
enum class data_rule : uint8_t {
    none,      // PDO 0, PLEN = HLEN (+ header digest)
    optional,  // CapsuleCmd: in-capsule data or not
    required,  // H2CData/C2HData
    term,      // TermReq: up to 128 bytes of the offending header follow HLEN
};

struct pdu_rule {
    uint8_t hlen;    // 0: not a PDU type
    uint8_t flags;   // flags the type may carry; HDGSTF/DDGSTF as negotiated
    bool handshake;  // ICReq/ICResp: only before the connection is up
    data_rule data;
    side receiver;
};

constexpr uint8_t hd = pdu_flags::hdgst;
constexpr uint8_t dd = pdu_flags::ddgst;
constexpr uint8_t last = pdu_flags::last_pdu;
constexpr uint8_t ok = pdu_flags::success;

constexpr pdu_rule rules[] = {
    /* 0 ic_req       */ {128, 0, true, data_rule::none, side::target},
    /* 1 ic_resp      */ {128, 0, true, data_rule::none, side::initiator},
    /* 2 h2c_term_req */ {24, 0, false, data_rule::term, side::target},
    /* 3 c2h_term_req */ {24, 0, false, data_rule::term, side::initiator},
    /* 4 capsule_cmd  */ {72, hd | dd, false, data_rule::optional, side::target},
    /* 5 capsule_resp */ {24, hd, false, data_rule::none, side::initiator},
    /* 6 h2c_data     */ {24, hd | dd | last, false, data_rule::required, side::target},
    /* 7 c2h_data     */ {24, hd | dd | last | ok, false, data_rule::required, side::initiator},
    /* 8 (reserved)   */ {0, 0, false, data_rule::none, side::target},
    /* 9 r2t          */ {24, hd, false, data_rule::none, side::initiator},
};
static_assert(std::size(rules) == size_t(pdu_type::r2t) + 1);
static_assert(rules[size_t(pdu_type::capsule_cmd)].hlen == sizeof(capsule_cmd));
static_assert(rules[size_t(pdu_type::h2c_data)].hlen == sizeof(h2c_data));
static_assert(rules[size_t(pdu_type::c2h_term_req)].hlen == sizeof(term_req));

// FEI values: the offset of the offending common header field.
constexpr uint32_t fei_type = offsetof(common_header, type);
constexpr uint32_t fei_flags = offsetof(common_header, flags);
constexpr uint32_t fei_hlen = offsetof(common_header, hlen);
constexpr uint32_t fei_pdo = offsetof(common_header, pdo);
constexpr uint32_t fei_plen = offsetof(common_header, plen);

uint32_t load_le32(const std::byte* p) {
    le32 v;
    std::copy_n(reinterpret_cast<const uint8_t*>(p), 4, v.bytes);
    return v.get();
}

uint16_t load_le16(const std::byte* p) {
    le16 v;
    std::copy_n(reinterpret_cast<const uint8_t*>(p), 2, v.bytes);
    return v.get();
}

// One parse: the checks in the order of the fields they look at, so that the
// lowest bad field is the one reported.
class header_check {
  public:
    header_check(std::span<const std::byte> buf, const reader_params& p) : buf_(buf), p_(p) {}

    parse_result run(bool header_only);

  private:
    fatal_error fail(fes status, uint32_t fei) const {
        size_t echo = rule_ ? rule_->hlen + hd_len_ : sizeof(common_header);
        return fatal_error{status, fei, std::min({buf_.size(), echo, size_t(term_req_max_data)})};
    }
    // A bad TermReq is not answered (section 3.6.2.4/5): the peer is leaving.
    fatal_error close_silently() const {
        fatal_error e = fail(fes::invalid_header_field, 0);
        e.reply = false;
        return e;
    }
    const fatal_error* check_common();
    const fatal_error* check_term_req();
    const fatal_error* check_specific();
    pdu_view view() const;

    std::span<const std::byte> buf_;
    const reader_params& p_;
    const common_header* ch_ = nullptr;
    const pdu_rule* rule_ = nullptr;
    fatal_error error_{};
    uint32_t plen_ = 0;
    uint32_t hd_len_ = 0;       // header digest bytes
    uint32_t dd_len_ = 0;       // data digest bytes
    uint32_t data_offset_ = 0;  // where the data starts
    uint32_t data_length_ = 0;  // data bytes
};

const fatal_error* header_check::check_common() {
    const common_header& ch = *ch_;
    auto bad = [&](fes status, uint32_t fei) {
        error_ = fail(status, fei);
        return &error_;
    };

    // Type (offset 0): known, sent in our direction, in the right phase.
    if (ch.type >= std::size(rules) || rules[ch.type].hlen == 0) {
        return bad(fes::invalid_header_field, fei_type);
    }
    const pdu_rule& r = rules[ch.type];
    if (r.receiver != p_.receiver) return bad(fes::invalid_header_field, fei_type);
    rule_ = &r;
    if (r.data == data_rule::term) return check_term_req();
    if (r.handshake == p_.connected) return bad(fes::pdu_sequence_error, fei_type);

    // Flags (offset 1). Digests are present exactly when negotiated; a data
    // digest only when there is data (a CapsuleCmd without data has none).
    const bool want_hd = (r.flags & hd) && p_.hdgst;
    hd_len_ = want_hd ? digest_size : 0;
    const uint32_t full_hlen = r.hlen + hd_len_;
    const bool has_data = plen_ > full_hlen;
    const bool want_dd = (r.flags & dd) && p_.ddgst && has_data;
    if ((ch.flags & ~r.flags) != 0) return bad(fes::invalid_header_field, fei_flags);
    if (bool(ch.flags & hd) != want_hd || bool(ch.flags & dd) != want_dd) {
        return bad(fes::invalid_header_field, fei_flags);
    }
    if ((ch.flags & (ok | last)) == ok) return bad(fes::invalid_header_field, fei_flags);
    dd_len_ = want_dd ? digest_size : 0;

    // HLEN (offset 2): fixed per type.
    if (ch.hlen != r.hlen) return bad(fes::invalid_header_field, fei_hlen);

    // PDO (offset 3): 0 without data (what Linux sends for a CapsuleCmd
    // without in-capsule data); else past the header digest, at a multiple of
    // the alignment we advertised, inside the PDU.
    if (r.data == data_rule::none || !has_data) {
        if (ch.pdo != 0 && (r.data == data_rule::none || ch.pdo != full_hlen)) {
            return bad(fes::invalid_header_field, fei_pdo);
        }
    } else if (ch.pdo < full_hlen || ch.pdo % pda_bytes(p_.pda) != 0 || ch.pdo > plen_) {
        return bad(fes::invalid_header_field, fei_pdo);
    }

    // PLEN (offset 4): the header, and data exactly when the type has some,
    // bounded before anyone buffers it.
    if (plen_ < full_hlen) return bad(fes::invalid_header_field, fei_plen);
    if (r.data == data_rule::none && plen_ != full_hlen) {
        return bad(fes::invalid_header_field, fei_plen);
    }
    if (!has_data) {
        if (r.data == data_rule::required) return bad(fes::invalid_header_field, fei_plen);
        return nullptr;
    }
    if (plen_ - ch.pdo <= dd_len_) return bad(fes::invalid_header_field, fei_plen);
    data_offset_ = ch.pdo;
    data_length_ = plen_ - ch.pdo - dd_len_;
    uint32_t limit = ch.type == uint8_t(pdu_type::capsule_cmd) ? p_.max_icd : p_.max_data;
    if (data_length_ > limit) return bad(fes::data_limit_exceeded, 0);
    return nullptr;
}

const fatal_error* header_check::check_term_req() {
    const common_header& ch = *ch_;
    // PDO 0 or HLEN: implementations differ, and a TermReq ends the
    // connection anyway; what matters is that PLEN stays within 152 bytes.
    if (ch.flags != 0 || ch.hlen != sizeof(term_req) || (ch.pdo != 0 && ch.pdo != ch.hlen) ||
        plen_ < sizeof(term_req) || plen_ > term_req_max_plen) {
        error_ = close_silently();
        return &error_;
    }
    data_offset_ = sizeof(term_req);
    data_length_ = plen_ - sizeof(term_req);
    return nullptr;
}

// Fields past the common header, once it and its digest are known good.
const fatal_error* header_check::check_specific() {
    const std::byte* h = buf_.data();
    auto bad = [&](fes status, uint32_t fei) {
        error_ = fail(status, fei);
        return &error_;
    };
    switch (pdu_type(ch_->type)) {
        case pdu_type::ic_req:
        case pdu_type::ic_resp: {
            // Same layout up to MAXR2T/MAXH2CDATA.
            const auto& ic = *reinterpret_cast<const ic_req*>(h);
            if (ic.pfv.get() != pfv_1_0)
                return bad(fes::unsupported_parameter, offsetof(ic_req, pfv));
            if (ic.hpda > max_pda) return bad(fes::invalid_header_field, offsetof(ic_req, hpda));
            if ((ic.dgst & ~(digest_bits::header | digest_bits::data)) != 0) {
                return bad(fes::invalid_header_field, offsetof(ic_req, dgst));
            }
            if (ch_->type == uint8_t(pdu_type::ic_resp)) {
                // Section 3.6.2.3: a multiple of 4, at least 4096.
                uint32_t m = reinterpret_cast<const ic_resp*>(h)->maxh2cdata.get();
                if (m < min_maxh2cdata || m % 4 != 0) {
                    return bad(fes::invalid_header_field, offsetof(ic_resp, maxh2cdata));
                }
            }
            return nullptr;
        }
        case pdu_type::h2c_data:
        case pdu_type::c2h_data:
            // DATAL must describe the data the PDU carries.
            if (load_le32(h + offsetof(h2c_data, datal)) != data_length_) {
                return bad(fes::invalid_header_field, offsetof(h2c_data, datal));
            }
            return nullptr;
        default:
            return nullptr;
    }
}

pdu_view header_check::view() const {
    return pdu_view{pdu_type(ch_->type), buf_.data(),  plen_, data_offset_,
                    data_length_,        dd_len_ != 0, {}};
}

parse_result header_check::run(bool header_only) {
    if (buf_.size() < sizeof(common_header)) return need_more{sizeof(common_header)};
    ch_ = reinterpret_cast<const common_header*>(buf_.data());
    plen_ = ch_->plen.get();
    if (const fatal_error* e = check_common()) return *e;

    // From here PLEN is bounded by the limits in params.
    const uint32_t full_hlen = rule_->hlen + hd_len_;
    if (buf_.size() < full_hlen) return need_more{header_only ? full_hlen : plen_};
    if (hd_len_ != 0 && crc32c(buf_.first(rule_->hlen)) != load_le32(buf_.data() + rule_->hlen)) {
        return fail(fes::header_digest_error, 0);
    }
    if (const fatal_error* e = check_specific()) return *e;

    pdu_view v = view();
    const bool term = rule_->data == data_rule::term;
    if (header_only && !term) return v;
    if (buf_.size() < plen_) return need_more{plen_};
    v.data = buf_.subspan(data_offset_, data_length_);
    if (dd_len_ != 0 && crc32c(v.data) != load_le32(buf_.data() + plen_ - digest_size)) {
        v.data = {};
        return data_digest_error{v, v.cccid()};
    }
    return v;
}

}  // namespace

uint16_t pdu_view::cccid() const {
    switch (type) {
        case pdu_type::capsule_cmd:
            return load_le16(header + offsetof(capsule_cmd, sqe) + sqe_cid_offset);
        case pdu_type::h2c_data:
        case pdu_type::c2h_data:
        case pdu_type::r2t:
            return load_le16(header + offsetof(r2t, cccid));
        default:
            return 0;
    }
}

parse_result parse(std::span<const std::byte> buf, const reader_params& params) {
    return header_check(buf, params).run(false);
}

parse_result parse_header(std::span<const std::byte> buf, const reader_params& params) {
    return header_check(buf, params).run(true);
}

}  // namespace weft::nvmf::tcp
