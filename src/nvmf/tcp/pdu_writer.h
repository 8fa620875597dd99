// NVMe/TCP PDU encoders, and send_batch: a connection's gather list that
// sends all the PDUs of one loop iteration with a single sendmsg.
//
// An encoder writes a PDU's prefix into caller storage: the header, its
// header digest when negotiated, and the padding up to PDO when data follows.
// The data itself stays where it is (iovecs), and its digest is crc32c()
// over those iovecs, sent after them (encode_digest()).
//
//   send_batch out(params);
//   out.add_c2h_data(cid, 0, data_iovs, /*last=*/true, /*success=*/false);
//   out.add_capsule_resp(cqe);
//   co_await out.flush(stream);   // C2HData header | data | digest + CapsuleResp
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "nvmf/tcp/pdu.h"
#include "nvmf/tcp/tls.h"
#include "runtime/net.h"
#include "runtime/result.h"
#include "runtime/task.h"

namespace weft::nvmf::tcp {

struct writer_params {
    bool hdgst = false;  // negotiated header digest
    bool ddgst = false;  // negotiated data digest
    // The receiver's PDA: HPDA from the host's ICReq for C2HData, CPDA from
    // the controller's ICResp for CapsuleCmd data and H2CData.
    uint8_t pda = 0;
};

// The longest prefix an encoder writes (a TermReq with 128 bytes of header).
inline constexpr size_t max_prefix = term_req_max_plen;

// Each encoder returns the prefix length it wrote.
// requires: out.size() >= max_prefix (or at least the prefix length).
size_t encode_ic_req(std::span<std::byte> out, uint8_t hpda, uint8_t dgst, uint32_t maxr2t);
size_t encode_ic_resp(std::span<std::byte> out, uint8_t cpda, uint8_t dgst, uint32_t maxh2cdata);
// `icd_length` bytes of in-capsule data follow (0: none, and PDO is 0).
size_t encode_capsule_cmd(std::span<std::byte> out, const writer_params& p,
                          std::span<const std::byte, 64> sqe, uint32_t icd_length);
size_t encode_capsule_resp(std::span<std::byte> out, const writer_params& p,
                           std::span<const std::byte, 16> cqe);
// requires: datal > 0.
size_t encode_h2c_data(std::span<std::byte> out, const writer_params& p, uint16_t cccid,
                       uint16_t ttag, uint32_t datao, uint32_t datal, bool last);
// `success` (no CapsuleResp follows) requires `last`, and a host that
// disabled SQ flow control.
size_t encode_c2h_data(std::span<std::byte> out, const writer_params& p, uint16_t cccid,
                       uint32_t datao, uint32_t datal, bool last, bool success);
size_t encode_r2t(std::span<std::byte> out, const writer_params& p, uint16_t cccid, uint16_t ttag,
                  uint32_t r2to, uint32_t r2tl);
// `type` is h2c_term_req or c2h_term_req; up to 128 bytes of `offending`
// (the bad PDU's header) are copied in. TermReqs never carry digests.
size_t encode_term_req(std::span<std::byte> out, pdu_type type, fes status, uint32_t fei,
                       std::span<const std::byte> offending);

// A digest as its 4 wire bytes.
inline std::array<std::byte, digest_size> encode_digest(uint32_t crc) {
    le32 v;
    v.set(crc);
    return {std::byte(v.bytes[0]), std::byte(v.bytes[1]), std::byte(v.bytes[2]),
            std::byte(v.bytes[3])};
}

// Collects PDUs (encoded headers in its own storage, data by reference) into
// one iovec array, and sends them with one tcp_stream::send_all. Adjacent
// pieces of its storage share an iovec, so a data digest and the CapsuleResp
// after it are one.
//
// Not movable: the iovecs point into the object. Every add_* returns false
// and adds nothing when the batch is out of room; flush() and add again.
class send_batch {
  public:
    static constexpr size_t max_iovecs = 256;       // well under IOV_MAX (1024)
    static constexpr size_t storage_bytes = 16384;  // ~500 CapsuleResps

    explicit send_batch(writer_params p = {}) : params_(p) {}
    send_batch(const send_batch&) = delete;
    send_batch& operator=(const send_batch&) = delete;

    // The digests and alignment negotiated by the ICReq/ICResp exchange.
    void set_params(const writer_params& p) { params_ = p; }
    const writer_params& params() const { return params_; }

    // Data iovecs are referenced, not copied. requires: their memory stays
    // valid and unchanged until flush() completes (the data digest is
    // computed here, when the PDU is added); H2CData/C2HData data not empty.
    bool add_ic_req(uint8_t hpda, uint8_t dgst, uint32_t maxr2t);
    bool add_ic_resp(uint8_t cpda, uint8_t dgst, uint32_t maxh2cdata);
    bool add_capsule_cmd(std::span<const std::byte, 64> sqe, std::span<const iovec> icd = {});
    bool add_capsule_resp(std::span<const std::byte, 16> cqe);
    bool add_h2c_data(uint16_t cccid, uint16_t ttag, uint32_t datao, std::span<const iovec> data,
                      bool last);
    bool add_c2h_data(uint16_t cccid, uint32_t datao, std::span<const iovec> data, bool last,
                      bool success);
    bool add_r2t(uint16_t cccid, uint16_t ttag, uint32_t r2to, uint32_t r2tl);
    bool add_term_req(pdu_type type, fes status, uint32_t fei,
                      std::span<const std::byte> offending);

    bool empty() const { return pdus_ == 0; }
    size_t pdus() const { return pdus_; }
    size_t bytes() const { return bytes_; }
    std::span<const iovec> iovecs() const { return {iov_, iov_count_}; }
    void clear();

    // Sends every PDU with one sendmsg (more only if the socket takes part of
    // it), or through `tls` when the connection runs TLS (zero_copy does not
    // apply there), then clears the batch, also on error. Returns the bytes
    // sent.
    task<result<size_t>> flush(tcp_stream& stream, bool zero_copy = false,
                               tls_channel* tls = nullptr);

  private:
    // Room for a prefix, `data` iovecs and a digest.
    bool has_room(size_t data_iovecs) const;
    std::span<std::byte> storage_tail() { return {storage_ + used_, storage_bytes - used_}; }
    void push_prefix(size_t n);                   // the last encoded prefix, at storage_tail()
    void push_data(std::span<const iovec> data);  // with its digest when negotiated
    void push(const void* p, size_t n);

    writer_params params_;
    size_t used_ = 0;  // bytes of storage_
    size_t iov_count_ = 0;
    size_t pdus_ = 0;
    size_t bytes_ = 0;
    std::byte storage_[storage_bytes];
    iovec iov_[max_iovecs];
};

}  // namespace weft::nvmf::tcp
