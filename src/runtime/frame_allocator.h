// Per-thread pools for coroutine frames: a request's coroutine frames come
// from the reactor's own free lists, not from the global heap.
#pragma once

#include <cstddef>
#include <cstdint>

namespace weft::frame_allocator {

// Frames up to this size are pooled; larger ones go to the global heap.
inline constexpr size_t max_pooled = 4096;

void* allocate(size_t n);
void deallocate(void* p, size_t n) noexcept;

struct stats {
    uint64_t pool_hits = 0;    // served from a free list
    uint64_t heap_allocs = 0;  // new memory (pool refill or oversized frame)
};
// Counters of the calling thread.
stats thread_stats();

}  // namespace weft::frame_allocator
