// The write-intent bitmap in memory: one bit per region of the nexus, readable
// and settable from any reactor (atomic 64-bit words). The nexus keeps two:
// `durable` (the bit is on the children's bitmap: a write to the region may
// go out) and `touched` (the region was written since the last lazy-clear
// pass, so clearing it now would only make the next write set it again).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace weft::nexus {

class region_bitmap {
  public:
    explicit region_bitmap(uint64_t regions)
        : regions_(regions), nwords_((regions + 63) / 64), w_(new std::atomic<uint64_t>[nwords_]) {
        for (uint64_t i = 0; i < nwords_; ++i) w_[i].store(0, std::memory_order_relaxed);
    }
    region_bitmap(const region_bitmap&) = delete;
    region_bitmap& operator=(const region_bitmap&) = delete;

    uint64_t size() const { return regions_; }

    // A copy with `regions` bits (at least size()): the nexus grew. The
    // caller makes sure nobody sets bits in this one meanwhile.
    std::unique_ptr<region_bitmap> grown(uint64_t regions) const {
        auto g = std::make_unique<region_bitmap>(regions < regions_ ? regions_ : regions);
        for (uint64_t i = 0; i < nwords_; ++i) g->w_[i].store(w_[i].load());
        return g;
    }

    bool test(uint64_t r) const {
        return (w_[r >> 6].load(std::memory_order_seq_cst) >> (r & 63)) & 1;
    }
    // Every bit of [r0, r1) set?
    bool all_set(uint64_t r0, uint64_t r1) const {
        for (uint64_t r = r0; r < r1; ++r)
            if (!test(r)) return false;
        return true;
    }
    void set(uint64_t r) { w_[r >> 6].fetch_or(uint64_t(1) << (r & 63)); }
    void clear(uint64_t r) { w_[r >> 6].fetch_and(~(uint64_t(1) << (r & 63))); }
    // Sets the bit unless it is set already (a load first: hot regions stay
    // read-shared between reactors).
    void mark(uint64_t r) {
        if (!test(r)) set(r);
    }

    uint64_t count() const {
        uint64_t n = 0;
        for (uint64_t i = 0; i < nwords_; ++i) n += uint64_t(__builtin_popcountll(w_[i].load()));
        return n;
    }
    uint64_t word(uint64_t i) const { return w_[i].load(); }
    uint64_t words() const { return nwords_; }
    void clear_all() {
        for (uint64_t i = 0; i < nwords_; ++i) w_[i].store(0);
    }

    // On-disk form (LSB first in each byte), for bitmap block `b` of 4096
    // bytes, with the extra bits of `add` and `add2` (either may be null)
    // ORed in.
    void block_bytes(uint64_t b, std::span<std::byte> out, const region_bitmap* add,
                     const region_bitmap* add2 = nullptr) const {
        for (size_t i = 0; i < out.size() / 8; ++i) {
            uint64_t wi = b * (out.size() / 8) + i;
            uint64_t v = wi < nwords_ ? w_[wi].load() : 0;
            if (add && wi < add->nwords_) v |= add->w_[wi].load();
            if (add2 && wi < add2->nwords_) v |= add2->w_[wi].load();
            for (int k = 0; k < 8; ++k) out[i * 8 + k] = std::byte(uint8_t(v >> (8 * k)));
        }
    }
    // ORs the on-disk bytes of the whole bitmap in (bits past size() ignored).
    void merge_bytes(std::span<const std::byte> in) {
        for (uint64_t wi = 0; wi < nwords_ && wi * 8 < in.size(); ++wi) {
            uint64_t v = 0;
            for (int k = 0; k < 8 && wi * 8 + k < in.size(); ++k)
                v |= uint64_t(uint8_t(in[wi * 8 + k])) << (8 * k);
            if (wi == nwords_ - 1 && (regions_ & 63)) v &= (uint64_t(1) << (regions_ & 63)) - 1;
            if (v) w_[wi].fetch_or(v);
        }
    }

  private:
    uint64_t regions_;
    uint64_t nwords_;
    std::unique_ptr<std::atomic<uint64_t>[]> w_;
};

}  // namespace weft::nexus
