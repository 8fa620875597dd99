// A validating NVMe/TCP PDU parser over a contiguous receive buffer that may
// hold several PDUs, for the target and the initiator alike.
//
//   for (;;) {
//       auto r = parse(buf, params);
//       if (auto* p = std::get_if<pdu_view>(&r)) { handle(*p); buf = buf.subspan(p->size); }
//       else if (auto* m = std::get_if<need_more>(&r)) { recv until buf.size() >= m->total; }
//       else if (auto* d = std::get_if<data_digest_error>(&r)) { fail d->cccid; skip d->pdu.size; }
//       else { send TermReq(fatal.status, fatal.fei, buf.first(fatal.header_bytes)); close; }
//   }
//
// As Linux nvmet does, the 8-byte common header is checked first against a
// per-type table (type valid for the receiving side and the connection's
// state, flags, HLEN, PDO, PLEN) and the data length is bounded by the
// negotiated limits before need_more ever asks for the rest, so a peer cannot
// make us buffer 4 GiB. Errors are reported for the lowest bad field first,
// with the FES and FEI a TermReq carries (TCP transport spec 1.0, 3.6.2.4/5).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>

#include "nvmf/tcp/pdu.h"

namespace weft::nvmf::tcp {

enum class side : uint8_t {
    target,     // receives ICReq, CapsuleCmd, H2CData, H2CTermReq
    initiator,  // receives ICResp, CapsuleResp, C2HData, R2T, C2HTermReq
};

struct reader_params {
    side receiver = side::target;
    // The ICReq/ICResp exchange is over: before, only ICReq (ICResp) and a
    // TermReq are expected; after, an ICReq (ICResp) is a sequence error.
    bool connected = false;
    bool hdgst = false;  // negotiated header digest (never on IC PDUs)
    bool ddgst = false;  // negotiated data digest
    // The PDA we advertised (CPDA in our ICResp, HPDA in our ICReq): PDU data
    // starts at a multiple of pda_bytes(pda).
    uint8_t pda = 0;
    // Largest in-capsule data of a CapsuleCmd (the target's IOCCSZ * 16 - 64).
    uint32_t max_icd = 8192;
    // Largest data of one H2CData (our MAXH2CDATA) or C2HData PDU.
    uint32_t max_data = 128 * 1024;
};

// The PDU at the start of the buffer needs `total` bytes in all, more than the
// buffer holds. `total` is bounded by the params' limits.
struct need_more {
    size_t total;
};

// A validated PDU: header (and header digest) checked; from parse() also the
// data and its digest.
struct pdu_view {
    pdu_type type;
    const std::byte* header;          // hlen bytes, see as<T>()
    uint32_t size;                    // PLEN: bytes the whole PDU takes in the stream
    uint32_t data_offset;             // PDO of the data (0 when there is none)
    uint32_t data_length;             // data bytes, without padding or data digest
    bool data_digest;                 // a data digest follows the data
    std::span<const std::byte> data;  // parse(): the data; parse_header(): empty

    // requires: T::kind == type (or T is term_req for either TermReq).
    template <typename T>
    const T& as() const {
        return *reinterpret_cast<const T*>(header);
    }
    // The command the PDU is about: the SQE's CID for a CapsuleCmd, CCCID for
    // data and R2T PDUs, 0 for the others.
    uint16_t cccid() const;
};

// The data digest of a CapsuleCmd or data PDU did not match. The PDU itself
// is intact and consumed (skip pdu.size bytes). We follow the spec's "PDU
// Header and Data Digests" rule as SPDK does: a data digest error is not a
// fatal transport error but fails that command with a Transient Transport
// Error status (SCT 0h, SC 22h). Linux nvmet instead drops the connection;
// a caller wanting that may treat this like fatal_error.
struct data_digest_error {
    pdu_view pdu;  // data left empty
    uint16_t cccid;
};

// A fatal transport error: answer with a TermReq carrying `status` and `fei`
// and the first `header_bytes` bytes of the buffer, then close. When `reply`
// is false the bad PDU was itself a TermReq, answered by closing at once.
struct fatal_error {
    fes status;
    uint32_t fei;         // FEI: offset of the bad header field, or 0
    size_t header_bytes;  // offending header bytes to echo (<= 128)
    bool reply = true;
};

using parse_result = std::variant<need_more, pdu_view, data_digest_error, fatal_error>;

// Parses the PDU at the start of `buf`: need_more until all its bytes are
// there, then the PDU (data digest checked), or an error.
parse_result parse(std::span<const std::byte> buf, const reader_params& params);

// Parses only the PDU's header: need_more until hlen (+ header digest) bytes
// are there, then a pdu_view with empty data, so a caller may receive large
// data directly into its own buffers and check the digest with crc32c().
parse_result parse_header(std::span<const std::byte> buf, const reader_params& params);

}  // namespace weft::nvmf::tcp
