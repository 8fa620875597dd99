// A volume as a bdev: the state a volume's bdevs share with the pool, and the
// bdev itself. The channel (volume.cc) translates LBAs into physical offsets
// on a channel of the pool's device, splitting I/O at cluster boundaries.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "bdev/bdev.h"
#include "pool/codec.h"

namespace weft::pool {

class pool;

// A published map entry: the physical cluster, with this bit set when the
// cluster was shared (with a snapshot or clone) at publication, so a write
// must go to home for copy-on-write. `unmapped` is all ones.
constexpr uint32_t shared_bit = 1u << 31;

// The map that I/O on any reactor reads. Entries are written by home only.
struct map_array {
    explicit map_array(uint64_t n) : len(n), e(new std::atomic<uint32_t>[n]) {
        for (uint64_t i = 0; i < n; ++i) e[i].store(unmapped, std::memory_order_relaxed);
    }
    const uint64_t len;
    std::unique_ptr<std::atomic<uint32_t>[]> e;
};

struct volume_state {
    volume_meta meta;  // home only: the authoritative copy, committed as is

    // For I/O on any reactor. A resize publishes a new array; old ones stay
    // alive in `maps` (home only) until the state goes, so a reader that
    // loaded the old pointer is never left with freed memory.
    std::atomic<map_array*> map{nullptr};
    std::vector<std::unique_ptr<map_array>> maps;

    // Fast-path I/O in flight, one counter per reactor on its own cache line
    // (reactors doing I/O on one volume never share a line), and the flag
    // that turns new I/O to home while home waits for the sum to drain (a
    // snapshot, unmap, resize or delete must not race with I/O that read the
    // map before the change).
    struct alignas(64) inflight_slot {
        std::atomic<int64_t> n{0};
    };
    volume_state();
    // The calling reactor's counter (reactors beyond the runtime's size, or
    // none, share slots: the counters are atomic read-modify-writes).
    std::atomic<int64_t>& inflight_here();
    int64_t inflight() const;
    std::unique_ptr<inflight_slot[]> inflight_slots;
    unsigned inflight_count = 1;
    alignas(64) std::atomic<bool> frozen{false};
    std::atomic<bool> deleted{false};

    std::vector<std::weak_ptr<bdev::bdev>> bdevs;  // home only: open bdevs, for resizes
};

// Counts a fast-path I/O; ok() false means "go to home instead".
class fast_guard {
  public:
    // `slot`: st.inflight_here() of the reactor doing the I/O.
    fast_guard(volume_state& st, std::atomic<int64_t>& slot) : slot_(slot) {
        // seq_cst on both sides: home stores `frozen` then reads the slots;
        // we add to our slot then read `frozen`. One of us sees the other.
        slot_.fetch_add(1);
        ok_ = !st.frozen.load();
        if (!ok_) slot_.fetch_sub(1);
    }
    ~fast_guard() {
        if (ok_) slot_.fetch_sub(1);
    }
    fast_guard(const fast_guard&) = delete;
    fast_guard& operator=(const fast_guard&) = delete;
    bool ok() const { return ok_; }

  private:
    std::atomic<int64_t>& slot_;
    bool ok_;
};

// Makes the bdev of a volume. requires: on the pool's home reactor.
std::shared_ptr<bdev::bdev> make_volume_bdev(std::shared_ptr<pool> p,
                                             std::shared_ptr<volume_state> st);
// Publishes a new size to an open volume bdev (after a committed resize).
void publish_volume_size(bdev::bdev& b, uint64_t num_blocks);

}  // namespace weft::pool
