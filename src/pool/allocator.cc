#include "pool/allocator.h"

#include <cassert>

namespace weft::pool {

cluster_allocator::cluster_allocator(uint64_t count)
    : count_(count), bits_((count + 63) / 64, 0), refs_(count, 0) {
    // Bits past the end are permanently "used" so a word scan never returns them.
    for (uint64_t c = count; c < bits_.size() * 64; ++c) bits_[c / 64] |= 1ull << (c % 64);
}

std::optional<uint32_t> cluster_allocator::allocate() {
    if (used_ == count_) return std::nullopt;
    size_t words = bits_.size();
    for (size_t i = 0; i < words; ++i) {
        size_t w = (cursor_ + i) % words;
        if (bits_[w] == ~0ull) continue;
        uint32_t c = uint32_t(w * 64 + __builtin_ctzll(~bits_[w]));
        cursor_ = w;
        ref(c);
        return c;
    }
    return std::nullopt;
}

void cluster_allocator::ref(uint32_t c) {
    assert(c < count_);
    if (refs_[c]++ == 0) {
        set(c);
        ++used_;
    }
}

bool cluster_allocator::unref(uint32_t c) {
    assert(c < count_ && refs_[c] > 0);
    if (--refs_[c] != 0) return false;
    clear(c);
    --used_;
    return true;
}

}  // namespace weft::pool
