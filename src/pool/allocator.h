// The cluster allocator: a bitmap of used clusters and a reference count per
// cluster (a cluster shared by a volume and its snapshots has one reference
// per map that holds it).
//
// It lives only in memory, on the pool's home reactor: pool::open rebuilds it
// from the volumes' maps, so there is no on-disk bitmap that could disagree
// with the maps after a crash (a cluster is used iff a committed map holds it).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace weft::pool {

class cluster_allocator {
  public:
    explicit cluster_allocator(uint64_t count);

    uint64_t count() const { return count_; }
    uint64_t used() const { return used_; }
    uint64_t free() const { return count_ - used_; }

    // A free cluster, now with one reference; nullopt when the pool is full.
    // Next-fit from the last allocation, so a thin volume written in order
    // gets neighbouring clusters (long extents, small metadata).
    std::optional<uint32_t> allocate();
    // requires: c < count(). Adds a reference (marking c used if it was free).
    void ref(uint32_t c);
    // requires: refs(c) > 0. Returns true when c became free.
    bool unref(uint32_t c);
    uint32_t refs(uint32_t c) const { return refs_[c]; }
    bool is_used(uint32_t c) const { return bits_[c / 64] >> (c % 64) & 1; }

  private:
    void set(uint32_t c) { bits_[c / 64] |= 1ull << (c % 64); }
    void clear(uint32_t c) { bits_[c / 64] &= ~(1ull << (c % 64)); }

    uint64_t count_;
    uint64_t used_ = 0;
    uint64_t cursor_ = 0;  // word where the next search starts
    std::vector<uint64_t> bits_;
    std::vector<uint32_t> refs_;
};

}  // namespace weft::pool
