#include "runtime/frame_allocator.h"

#include <array>
#include <new>

namespace weft::frame_allocator {
namespace {

constexpr size_t granule = 64;
constexpr size_t classes = max_pooled / granule;
constexpr size_t max_cached_per_class = 4096;

struct free_node {
    free_node* next;
};

// One per thread. The lists are released when the thread exits; a frame freed
// on a thread other than its allocator simply joins that thread's lists.
struct thread_pools {
    std::array<free_node*, classes> heads{};
    std::array<uint32_t, classes> counts{};
    stats st;
    ~thread_pools() {
        for (auto*& h : heads) {
            while (h) {
                auto* n = h->next;
                ::operator delete(h);
                h = n;
            }
        }
    }
};

thread_local thread_pools pools;

size_t class_of(size_t n) {
    return (n + granule - 1) / granule - 1;
}

}  // namespace

void* allocate(size_t n) {
    if (n > max_pooled) {
        ++pools.st.heap_allocs;
        return ::operator new(n);
    }
    size_t c = class_of(n);
    if (auto* h = pools.heads[c]) {
        pools.heads[c] = h->next;
        --pools.counts[c];
        ++pools.st.pool_hits;
        return h;
    }
    ++pools.st.heap_allocs;
    return ::operator new((c + 1) * granule);
}

void deallocate(void* p, size_t n) noexcept {
    if (n > max_pooled) {
        ::operator delete(p);
        return;
    }
    size_t c = class_of(n);
    if (pools.counts[c] >= max_cached_per_class) {
        ::operator delete(p);
        return;
    }
    auto* node = static_cast<free_node*>(p);
    node->next = pools.heads[c];
    pools.heads[c] = node;
    ++pools.counts[c];
}

stats thread_stats() {
    return pools.st;
}

}  // namespace weft::frame_allocator
