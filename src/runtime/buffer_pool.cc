#include "runtime/buffer_pool.h"

#include <cassert>
#include <cstdlib>
#include <new>

namespace weft {

void buffer::release() {
    if (data_) pool_->put(data_, cls_);
    data_ = nullptr;
    pool_ = nullptr;
}

buffer_pool::~buffer_pool() {
    for (auto& list : free_)
        for (auto* p : list) std::free(p);
}

buffer_pool& buffer_pool::local() {
    thread_local buffer_pool pool;
    return pool;
}

buffer buffer_pool::get(size_t n) {
    assert(n > 0 && n <= class_size(classes - 1));
    unsigned cls = 0;
    while (class_size(cls) < n) ++cls;
    auto& list = free_[cls];
    if (!list.empty()) {
        std::byte* p = list.back();
        list.pop_back();
        cached_ -= class_size(cls);
        return buffer(p, n, cls, this);
    }
    void* p = std::aligned_alloc(alignment, class_size(cls));
    if (!p) throw std::bad_alloc();
    ++allocations_;
    return buffer(static_cast<std::byte*>(p), n, cls, this);
}

void buffer_pool::put(std::byte* p, unsigned cls) {
    if (cached_ + class_size(cls) > max_cached_) {
        std::free(p);
        return;
    }
    free_[cls].push_back(p);
    cached_ += class_size(cls);
}

}  // namespace weft
