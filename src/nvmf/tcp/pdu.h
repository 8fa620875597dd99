// NVMe/TCP PDU wire structures (NVM Express TCP Transport Specification 1.0,
// section 3.6 "PDU Definitions"), shared by the target and the initiator.
//
// Multi-byte fields are `le16`/`le32`: little-endian integers stored as bytes.
// Every struct therefore has alignment 1 and no padding, so it can be laid
// over any offset of a receive buffer (PDUs follow each other at arbitrary
// offsets, and TermReq's 32-bit FEI sits at byte 10). Reads and writes compile
// to plain loads and stores on x86-64 and arm64.
//
// The SQE and CQE are kept as opaque bytes: their layout belongs to src/nvme.
#pragma once

#include <cstddef>
#include <cstdint>

namespace weft::nvmf::tcp {

// A little-endian unsigned integer of sizeof(T) bytes with alignment 1.
template <typename T>
struct le {
    uint8_t bytes[sizeof(T)];

    constexpr T get() const {
        T v = 0;
        for (size_t i = 0; i < sizeof(T); ++i) v = T(v | T(T(bytes[i]) << (8 * i)));
        return v;
    }
    constexpr void set(T v) {
        for (size_t i = 0; i < sizeof(T); ++i) bytes[i] = uint8_t(v >> (8 * i));
    }
    constexpr operator T() const { return get(); }
    constexpr le& operator=(T v) {
        set(v);
        return *this;
    }
};
using le16 = le<uint16_t>;
using le32 = le<uint32_t>;
static_assert(sizeof(le16) == 2 && alignof(le16) == 1);
static_assert(sizeof(le32) == 4 && alignof(le32) == 1);

// Section 3.6.2.1, PDU-Type values.
enum class pdu_type : uint8_t {
    ic_req = 0x00,
    ic_resp = 0x01,
    h2c_term_req = 0x02,
    c2h_term_req = 0x03,
    capsule_cmd = 0x04,
    capsule_resp = 0x05,
    h2c_data = 0x06,
    c2h_data = 0x07,
    r2t = 0x09,
};
constexpr const char* to_string(pdu_type t) {
    switch (t) {
        case pdu_type::ic_req:
            return "ICReq";
        case pdu_type::ic_resp:
            return "ICResp";
        case pdu_type::h2c_term_req:
            return "H2CTermReq";
        case pdu_type::c2h_term_req:
            return "C2HTermReq";
        case pdu_type::capsule_cmd:
            return "CapsuleCmd";
        case pdu_type::capsule_resp:
            return "CapsuleResp";
        case pdu_type::h2c_data:
            return "H2CData";
        case pdu_type::c2h_data:
            return "C2HData";
        case pdu_type::r2t:
            return "R2T";
    }
    return "unknown";
}

// Common header FLAGS (section 3.6.2.1); LAST_PDU and SUCCESS are PDU specific.
namespace pdu_flags {
inline constexpr uint8_t hdgst = 0x01;     // HDGSTF: a header digest follows the header
inline constexpr uint8_t ddgst = 0x02;     // DDGSTF: a data digest follows the data
inline constexpr uint8_t last_pdu = 0x04;  // H2CData/C2HData: last PDU of the transfer
inline constexpr uint8_t success = 0x08;   // C2HData: command succeeded, no CapsuleResp follows
}  // namespace pdu_flags

// ICReq/ICResp DGST field (section 3.6.2.2/3).
namespace digest_bits {
inline constexpr uint8_t header = 0x01;  // HDGST_ENABLE
inline constexpr uint8_t data = 0x02;    // DDGST_ENABLE
}  // namespace digest_bits

// H2CTermReq/C2HTermReq Fatal Error Status (section 3.6.2.4/5). 0x05 was
// "R2T Limit Exceeded" in NVMe-oF 1.1 and is "Data Transfer Limit Exceeded"
// in the TCP transport spec 1.0 (Linux and SPDK define both names as 0x05).
enum class fes : uint16_t {
    invalid_header_field = 0x01,
    pdu_sequence_error = 0x02,
    header_digest_error = 0x03,
    data_out_of_range = 0x04,
    data_limit_exceeded = 0x05,
    unsupported_parameter = 0x06,
};

inline constexpr uint32_t digest_size = 4;
inline constexpr uint16_t pfv_1_0 = 0;              // ICReq/ICResp PFV
inline constexpr uint32_t max_pda = 31;             // HPDA/CPDA are 0..31
inline constexpr uint32_t min_maxh2cdata = 4096;    // ICResp MAXH2CDATA lower bound
inline constexpr uint32_t term_req_max_data = 128;  // offending header bytes in a TermReq
inline constexpr uint32_t term_req_max_plen = 24 + term_req_max_data;

// Bytes a PDA value (0's based, in dwords) asks data to be aligned to.
constexpr uint32_t pda_bytes(uint32_t pda) {
    return (pda + 1) * 4;
}

// Section 3.6.2.1: the 8-byte header every PDU starts with.
struct common_header {
    uint8_t type;   // pdu_type; raw, since a peer may send anything
    uint8_t flags;  // pdu_flags
    uint8_t hlen;   // header length, without the header digest
    uint8_t pdo;    // PDU data offset from the start of the PDU (0: no data)
    le32 plen;      // total PDU length: header, digests, padding, data
};
static_assert(sizeof(common_header) == 8);
static_assert(offsetof(common_header, type) == 0);
static_assert(offsetof(common_header, flags) == 1);
static_assert(offsetof(common_header, hlen) == 2);
static_assert(offsetof(common_header, pdo) == 3);
static_assert(offsetof(common_header, plen) == 4);

// Section 3.6.2.2, ICReq (host to controller).
struct ic_req {
    static constexpr pdu_type kind = pdu_type::ic_req;
    common_header ch;
    le16 pfv;      // PDU format version, 0
    uint8_t hpda;  // host PDU data alignment the controller must use for C2H data
    uint8_t dgst;  // digest_bits the host asks for
    le32 maxr2t;   // 0's based maximum outstanding R2Ts per command
    uint8_t reserved[112];
};
static_assert(sizeof(ic_req) == 128);
static_assert(offsetof(ic_req, pfv) == 8);
static_assert(offsetof(ic_req, hpda) == 10);
static_assert(offsetof(ic_req, dgst) == 11);
static_assert(offsetof(ic_req, maxr2t) == 12);
static_assert(offsetof(ic_req, reserved) == 16);

// Section 3.6.2.3, ICResp (controller to host).
struct ic_resp {
    static constexpr pdu_type kind = pdu_type::ic_resp;
    common_header ch;
    le16 pfv;
    uint8_t cpda;     // controller PDU data alignment the host must use for H2C data
    uint8_t dgst;     // digest_bits enabled for the connection
    le32 maxh2cdata;  // largest H2CData payload the controller accepts
    uint8_t reserved[112];
};
static_assert(sizeof(ic_resp) == 128);
static_assert(offsetof(ic_resp, pfv) == 8);
static_assert(offsetof(ic_resp, cpda) == 10);
static_assert(offsetof(ic_resp, dgst) == 11);
static_assert(offsetof(ic_resp, maxh2cdata) == 12);
static_assert(offsetof(ic_resp, reserved) == 16);

// Section 3.6.2.4/5, H2CTermReq and C2HTermReq header; up to 128 bytes of
// the offending PDU header follow as data.
struct term_req {
    common_header ch;
    le16 fes;  // fatal error status
    le32 fei;  // fatal error information: offset of the bad header field
    uint8_t reserved[10];
};
static_assert(sizeof(term_req) == 24);
static_assert(offsetof(term_req, fes) == 8);
static_assert(offsetof(term_req, fei) == 10);
static_assert(offsetof(term_req, reserved) == 14);

// Section 3.6.2.6, CapsuleCmd: the 64-byte SQE; in-capsule data may follow.
struct capsule_cmd {
    static constexpr pdu_type kind = pdu_type::capsule_cmd;
    common_header ch;
    std::byte sqe[64];
};
static_assert(sizeof(capsule_cmd) == 72);
static_assert(offsetof(capsule_cmd, sqe) == 8);
inline constexpr size_t sqe_cid_offset = 2;  // CID, bytes 2-3 of the SQE (Dword 0)

// Section 3.6.2.7, CapsuleResp: the 16-byte CQE.
struct capsule_resp {
    static constexpr pdu_type kind = pdu_type::capsule_resp;
    common_header ch;
    std::byte cqe[16];
};
static_assert(sizeof(capsule_resp) == 24);
static_assert(offsetof(capsule_resp, cqe) == 8);

// Section 3.6.2.8, H2CData.
struct h2c_data {
    static constexpr pdu_type kind = pdu_type::h2c_data;
    common_header ch;
    le16 cccid;  // command capsule CID
    le16 ttag;   // transfer tag from the R2T
    le32 datao;  // offset of this data in the command's transfer
    le32 datal;  // data bytes in this PDU
    uint8_t reserved[4];
};
static_assert(sizeof(h2c_data) == 24);
static_assert(offsetof(h2c_data, cccid) == 8);
static_assert(offsetof(h2c_data, ttag) == 10);
static_assert(offsetof(h2c_data, datao) == 12);
static_assert(offsetof(h2c_data, datal) == 16);
static_assert(offsetof(h2c_data, reserved) == 20);

// Section 3.6.2.9, C2HData.
struct c2h_data {
    static constexpr pdu_type kind = pdu_type::c2h_data;
    common_header ch;
    le16 cccid;
    uint8_t reserved0[2];
    le32 datao;
    le32 datal;
    uint8_t reserved1[4];
};
static_assert(sizeof(c2h_data) == 24);
static_assert(offsetof(c2h_data, cccid) == 8);
static_assert(offsetof(c2h_data, reserved0) == 10);
static_assert(offsetof(c2h_data, datao) == 12);
static_assert(offsetof(c2h_data, datal) == 16);
static_assert(offsetof(c2h_data, reserved1) == 20);

// Section 3.6.2.10, R2T.
struct r2t {
    static constexpr pdu_type kind = pdu_type::r2t;
    common_header ch;
    le16 cccid;
    le16 ttag;  // chosen by the controller, echoed in the H2CData PDUs
    le32 r2to;  // offset of the requested data
    le32 r2tl;  // requested length
    uint8_t reserved[4];
};
static_assert(sizeof(r2t) == 24);
static_assert(offsetof(r2t, cccid) == 8);
static_assert(offsetof(r2t, ttag) == 10);
static_assert(offsetof(r2t, r2to) == 12);
static_assert(offsetof(r2t, r2tl) == 16);
static_assert(offsetof(r2t, reserved) == 20);

// Header length (HLEN) of each PDU type; 0 for values the spec does not define.
constexpr uint8_t header_length(uint8_t type) {
    switch (pdu_type(type)) {
        case pdu_type::ic_req:
        case pdu_type::ic_resp:
            return 128;
        case pdu_type::h2c_term_req:
        case pdu_type::c2h_term_req:
            return sizeof(term_req);
        case pdu_type::capsule_cmd:
            return sizeof(capsule_cmd);
        case pdu_type::capsule_resp:
        case pdu_type::h2c_data:
        case pdu_type::c2h_data:
        case pdu_type::r2t:
            return 24;
    }
    return 0;
}

}  // namespace weft::nvmf::tcp
