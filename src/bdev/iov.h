// Scatter/gather helpers shared by the backends.
#pragma once

#include <sys/uio.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

namespace weft::bdev {

// Total bytes, or nullopt when the sum overflows or an iovec with bytes has
// a null base (a caller's bug we answer with -EINVAL rather than a crash).
inline std::optional<uint64_t> iov_total(std::span<const iovec> iov) {
    uint64_t total = 0;
    for (const iovec& v : iov) {
        if (v.iov_len != 0 && v.iov_base == nullptr) return std::nullopt;
        if (__builtin_add_overflow(total, uint64_t(v.iov_len), &total)) return std::nullopt;
    }
    return total;
}

// A position inside an iovec array, for copies and partial transfers.
struct iov_cursor {
    std::span<const iovec> iov;
    size_t index = 0;   // current iovec
    size_t offset = 0;  // bytes of it already consumed

    bool done() const { return index >= iov.size(); }
    void skip_empty() {
        while (index < iov.size() && offset == iov[index].iov_len) {
            ++index;
            offset = 0;
        }
    }
    void advance(uint64_t n) {
        skip_empty();
        while (n > 0 && index < iov.size()) {
            size_t step = std::min<uint64_t>(n, iov[index].iov_len - offset);
            offset += step;
            n -= step;
            skip_empty();
        }
    }
    // Copies up to n bytes from the iovecs into dst; returns bytes copied.
    size_t gather(std::byte* dst, size_t n) {
        size_t done_bytes = 0;
        skip_empty();
        while (done_bytes < n && index < iov.size()) {
            size_t step = std::min(n - done_bytes, iov[index].iov_len - offset);
            std::memcpy(dst + done_bytes,
                        static_cast<const std::byte*>(iov[index].iov_base) + offset, step);
            done_bytes += step;
            advance(step);
        }
        return done_bytes;
    }
    // Copies up to n bytes from src into the iovecs; returns bytes copied.
    size_t scatter(const std::byte* src, size_t n) {
        size_t done_bytes = 0;
        skip_empty();
        while (done_bytes < n && index < iov.size()) {
            size_t step = std::min(n - done_bytes, iov[index].iov_len - offset);
            std::memcpy(static_cast<std::byte*>(iov[index].iov_base) + offset, src + done_bytes,
                        step);
            done_bytes += step;
            advance(step);
        }
        return done_bytes;
    }
};

// Zero-fills every iovec.
inline void iov_zero(std::span<const iovec> iov) {
    for (const iovec& v : iov)
        if (v.iov_len) std::memset(v.iov_base, 0, v.iov_len);
}

}  // namespace weft::bdev
