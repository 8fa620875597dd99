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

// This thread's lists, reached through a pointer in the initial-exec TLS
// model: an offset from the thread pointer, without the __tls_get_addr call
// that a shared object (libweft_fio.so, which fio dlopens) otherwise pays on
// every frame. A module with initial-exec accesses has its whole TLS block
// in the static TLS that glibc keeps for dlopen (about 1.6 KiB for all such
// modules), so the lists live on the heap and the block stays a few words.
thread_local thread_pools* current __attribute__((tls_model("initial-exec"))) = nullptr;
// Set once this thread's lists are gone (thread exit): a frame allocated or
// freed later (by another thread_local's destructor) goes to the heap.
thread_local bool exited __attribute__((tls_model("initial-exec"))) = false;

struct pools_owner {
    thread_pools* pools = new thread_pools;
    ~pools_owner() {
        delete pools;
        current = nullptr;
        exited = true;
    }
};

thread_pools* local_pools() {
    if (!current) [[unlikely]] {
        if (exited) return nullptr;
        thread_local pools_owner owner;
        current = owner.pools;
    }
    return current;
}

size_t class_of(size_t n) {
    return (n + granule - 1) / granule - 1;
}

}  // namespace

void* allocate(size_t n) {
    thread_pools* pools = local_pools();
    if (n > max_pooled) {
        if (pools) ++pools->st.heap_allocs;
        return ::operator new(n);
    }
    size_t c = class_of(n);
    if (pools) {
        if (auto* h = pools->heads[c]) {
            pools->heads[c] = h->next;
            --pools->counts[c];
            ++pools->st.pool_hits;
            return h;
        }
        ++pools->st.heap_allocs;
    }
    // The class's full size: the frame may be freed into another thread's lists.
    return ::operator new((c + 1) * granule);
}

void deallocate(void* p, size_t n) noexcept {
    thread_pools* pools = local_pools();
    size_t c = class_of(n);
    if (n > max_pooled || !pools || pools->counts[c] >= max_cached_per_class) {
        ::operator delete(p);
        return;
    }
    auto* node = static_cast<free_node*>(p);
    node->next = pools->heads[c];
    pools->heads[c] = node;
    ++pools->counts[c];
}

stats thread_stats() {
    thread_pools* pools = local_pools();
    return pools ? pools->st : stats{};
}

}  // namespace weft::frame_allocator
