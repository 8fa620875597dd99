// Per-reactor pools of aligned I/O buffers (O_DIRECT needs 4 KiB alignment).
// Size classes are powers of two from 4 KiB to 4 MiB; a buffer goes back to
// the pool it came from, which must happen on that pool's thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace weft {

class buffer_pool;

// An owned buffer from a pool. Move-only; returns itself on destruction.
class buffer {
  public:
    buffer() = default;
    buffer(buffer&& o) noexcept
        : data_(std::exchange(o.data_, nullptr)),
          size_(o.size_),
          cls_(o.cls_),
          pool_(std::exchange(o.pool_, nullptr)) {}
    buffer& operator=(buffer&& o) noexcept {
        if (this != &o) {
            release();
            data_ = std::exchange(o.data_, nullptr);
            size_ = o.size_;
            cls_ = o.cls_;
            pool_ = std::exchange(o.pool_, nullptr);
        }
        return *this;
    }
    ~buffer() { release(); }

    std::byte* data() const { return data_; }
    size_t size() const { return size_; }  // what was asked for
    std::span<std::byte> span() const { return {data_, size_}; }
    explicit operator bool() const { return data_ != nullptr; }

  private:
    friend class buffer_pool;
    buffer(std::byte* d, size_t n, unsigned cls, buffer_pool* p)
        : data_(d), size_(n), cls_(cls), pool_(p) {}
    void release();

    std::byte* data_ = nullptr;
    size_t size_ = 0;
    unsigned cls_ = 0;
    buffer_pool* pool_ = nullptr;
};

class buffer_pool {
  public:
    static constexpr size_t alignment = 4096;
    static constexpr size_t min_size = 4096;
    static constexpr unsigned classes = 11;  // 4 KiB .. 4 MiB

    // Keeps at most `max_cached_bytes` of free buffers per pool.
    explicit buffer_pool(size_t max_cached_bytes = 64u << 20) : max_cached_(max_cached_bytes) {}
    ~buffer_pool();
    buffer_pool(const buffer_pool&) = delete;
    buffer_pool& operator=(const buffer_pool&) = delete;

    // The calling thread's pool.
    static buffer_pool& local();

    // requires: 0 < n <= 4 MiB. Contents are not zeroed.
    buffer get(size_t n);

    size_t cached_bytes() const { return cached_; }
    uint64_t allocations() const { return allocations_; }  // from the system

  private:
    friend class buffer;
    void put(std::byte* p, unsigned cls);
    static size_t class_size(unsigned cls) { return min_size << cls; }

    std::array<std::vector<std::byte*>, classes> free_;
    size_t cached_ = 0;
    size_t max_cached_;
    uint64_t allocations_ = 0;
};

}  // namespace weft
