// Helpers for the PDU tests: build PDUs into byte vectors, and damage them
// the way LevelDB's tests do (flip a byte, truncate, then fix a digest so
// that only the field under test is wrong).
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <span>
#include <variant>
#include <vector>

#include "nvmf/tcp/crc32c.h"
#include "nvmf/tcp/pdu.h"
#include "nvmf/tcp/pdu_reader.h"
#include "nvmf/tcp/pdu_writer.h"

namespace weft::nvmf::tcp::test {

using bytes = std::vector<std::byte>;

inline bytes pattern(size_t n, unsigned seed = 1) {
    bytes b(n);
    for (size_t i = 0; i < n; ++i) b[i] = std::byte((i * 131 + seed * 7) & 0xff);
    return b;
}

inline iovec as_iovec(bytes& b) {
    return iovec{b.data(), b.size()};
}

// A PDU: the encoder's prefix, then `data` and its digest when `p.ddgst`.
inline bytes with_data(std::span<const std::byte> prefix, const writer_params& p,
                       std::span<const std::byte> data) {
    bytes out(prefix.begin(), prefix.end());
    out.insert(out.end(), data.begin(), data.end());
    if (p.ddgst && !data.empty()) {
        auto d = encode_digest(crc32c(data));
        out.insert(out.end(), d.begin(), d.end());
    }
    return out;
}

// Concatenates what a send_batch would send.
inline bytes gather(std::span<const iovec> iov) {
    bytes out;
    for (const iovec& v : iov) {
        auto* p = static_cast<const std::byte*>(v.iov_base);
        out.insert(out.end(), p, p + v.iov_len);
    }
    return out;
}

inline void increment_byte(bytes& b, size_t at, int delta = 1) {
    b.at(at) = std::byte(uint8_t(std::to_integer<uint8_t>(b.at(at)) + delta));
}

inline void set_le32(bytes& b, size_t at, uint32_t v) {
    le32 x;
    x.set(v);
    std::memcpy(b.data() + at, x.bytes, 4);
}

inline uint32_t get_le32(std::span<const std::byte> b, size_t at) {
    le32 x;
    std::memcpy(x.bytes, b.data() + at, 4);
    return x.get();
}

// Recomputes the header digest after a header change (HLEN from the PDU).
inline void fix_header_digest(bytes& b) {
    size_t hlen = std::to_integer<size_t>(b[2]);
    set_le32(b, hlen, crc32c(std::span<const std::byte>(b).first(hlen)));
}

// Recomputes the data digest (the last 4 bytes) over [PDO, PLEN - 4).
inline void fix_data_digest(bytes& b) {
    size_t pdo = std::to_integer<size_t>(b[3]);
    size_t plen = get_le32(b, 4);
    set_le32(b, plen - 4, crc32c(std::span<const std::byte>(b).subspan(pdo, plen - 4 - pdo)));
}

template <typename T>
const T* pick(const parse_result& r) {
    return std::get_if<T>(&r);
}

// gtest-friendly description of a parse result.
inline std::string describe(const parse_result& r) {
    if (auto* m = pick<need_more>(r)) return "need_more{" + std::to_string(m->total) + "}";
    if (auto* v = pick<pdu_view>(r)) return std::string("pdu{") + to_string(v->type) + "}";
    if (auto* d = pick<data_digest_error>(r)) {
        return "data_digest_error{cccid " + std::to_string(d->cccid) + "}";
    }
    auto& f = std::get<fatal_error>(r);
    return "fatal{fes " + std::to_string(int(f.status)) + ", fei " + std::to_string(f.fei) +
           (f.reply ? "" : ", no reply") + "}";
}

}  // namespace weft::nvmf::tcp::test
