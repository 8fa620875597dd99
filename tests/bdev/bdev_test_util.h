// Helpers shared by the bdev tests: temporary files, patterns, iovecs.
#pragma once

#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "bdev/bdev.h"
#include "runtime/buffer_pool.h"
#include "runtime/test_util.h"

namespace weft::bdev::test {

using weft::test::run_reactors;

// A unique path under $TMPDIR (or /tmp), removed when the object goes.
class temp_file {
  public:
    explicit temp_file(const std::string& tag) {
        static std::atomic<int> seq{0};
        const char* dir = std::getenv("TMPDIR");
        path_ = std::string(dir && *dir ? dir : "/tmp") + "/weft-bdev-" + tag + "-" +
                std::to_string(getpid()) + "-" + std::to_string(seq++);
        ::unlink(path_.c_str());
    }
    ~temp_file() { ::unlink(path_.c_str()); }
    temp_file(const temp_file&) = delete;
    temp_file& operator=(const temp_file&) = delete;
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

// The byte at `offset` within block `lba` under pattern `seed`: distinct per
// block, per offset and per seed, so a misplaced or stale block shows.
inline std::byte pattern_byte(uint64_t lba, uint32_t offset, uint8_t seed) {
    uint64_t x = (lba + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t(offset) * 0x100000001B3ull) ^ seed;
    x ^= x >> 29;
    return std::byte(uint8_t(x ^ (x >> 8)));
}

inline void fill(std::span<std::byte> buf, uint64_t lba, uint32_t block_size, uint8_t seed) {
    for (size_t i = 0; i < buf.size(); ++i)
        buf[i] = pattern_byte(lba + i / block_size, uint32_t(i % block_size), seed);
}

// Index of the first byte that differs from the pattern, or -1.
inline long mismatch(std::span<const std::byte> buf, uint64_t lba, uint32_t block_size,
                     uint8_t seed) {
    for (size_t i = 0; i < buf.size(); ++i)
        if (buf[i] != pattern_byte(lba + i / block_size, uint32_t(i % block_size), seed))
            return long(i);
    return -1;
}

inline bool all_zero(std::span<const std::byte> buf) {
    for (std::byte b : buf)
        if (b != std::byte{0}) return false;
    return true;
}

// Cuts `buf` into iovecs of the given sizes (cycled until `buf` is covered).
inline std::vector<iovec> split(std::span<std::byte> buf, std::vector<size_t> sizes) {
    std::vector<iovec> out;
    size_t off = 0;
    for (size_t k = 0; off < buf.size(); ++k) {
        size_t n = std::min(sizes[k % sizes.size()], buf.size() - off);
        out.push_back({buf.data() + off, n});
        off += n;
    }
    return out;
}

// Piece sizes for split(). (A braced list inside a coroutine trips GCC 12.)
template <typename... T>
std::vector<size_t> sizes(T... v) {
    std::vector<size_t> out;
    (out.push_back(size_t(v)), ...);
    return out;
}

inline std::vector<iovec> one(std::span<std::byte> buf) {
    return {{buf.data(), buf.size()}};
}

// A buffer_pool buffer (4 KiB aligned) of n bytes, for the calling reactor.
inline buffer get_buffer(size_t n) {
    return buffer_pool::local().get(n);
}

}  // namespace weft::bdev::test
