// Single-producer single-consumer ring of work items between two reactors.
// One ring per ordered pair of reactors (a mesh, as in Seastar); the consumer
// drains in batches. Lock-free: each side owns one index and caches the other.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace weft {

struct work_item {
    void (*fn)(void*) = nullptr;
    void* arg = nullptr;
};

class message_ring {
  public:
    static constexpr size_t capacity = 4096;  // power of two

    // Producer side. Returns false when full (the caller keeps the item).
    bool push(work_item w) {
        size_t t = tail_.load(std::memory_order_relaxed);
        if (t - head_cache_ == capacity) {
            head_cache_ = head_.load(std::memory_order_acquire);
            if (t - head_cache_ == capacity) return false;
        }
        slots_[t & (capacity - 1)] = w;
        tail_.store(t + 1, std::memory_order_release);
        return true;
    }

    // Consumer side: runs up to `budget` items, returns how many ran.
    template <typename F>
    size_t drain(size_t budget, F&& run) {
        size_t h = head_.load(std::memory_order_relaxed);
        if (h == tail_cache_) {
            tail_cache_ = tail_.load(std::memory_order_acquire);
            if (h == tail_cache_) return 0;
        }
        size_t n = tail_cache_ - h;
        if (n > budget) n = budget;
        for (size_t i = 0; i < n; ++i) run(slots_[(h + i) & (capacity - 1)]);
        head_.store(h + n, std::memory_order_release);
        return n;
    }

    // Consumer side, before sleeping: is anything waiting?
    bool empty_for_consumer() const {
        return head_.load(std::memory_order_relaxed) == tail_.load(std::memory_order_acquire);
    }

  private:
    alignas(64) std::atomic<size_t> head_{0};  // written by the consumer
    size_t tail_cache_ = 0;                    // consumer's view of tail_
    alignas(64) std::atomic<size_t> tail_{0};  // written by the producer
    size_t head_cache_ = 0;                    // producer's view of head_
    alignas(64) work_item slots_[capacity];
};

}  // namespace weft
