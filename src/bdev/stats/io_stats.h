// I/O counters and latency histograms of one bdev, kept per reactor so the
// hot path never shares a cache line between cores: each reactor writes only
// its own slot (plain load+store of relaxed atomics, no locked instruction),
// and a reader on any thread sums the slots.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

namespace weft::bdev {

// Latency buckets: upper bounds 1, 2, 4, ... 2^20 microseconds, then +Inf.
constexpr unsigned latency_buckets = 22;
constexpr uint64_t latency_bucket_le_us(unsigned i) {
    return uint64_t(1) << i;
}

// Index of the bucket a latency falls in.
inline unsigned latency_bucket(uint64_t ns) {
    uint64_t us = (ns + 999) / 1000;
    if (us <= 1) return 0;
    unsigned b = 64 - unsigned(__builtin_clzll(us - 1));
    return b < latency_buckets - 1 ? b : latency_buckets - 1;
}

// A point-in-time copy, summed over reactors (or one reactor's).
struct io_totals {
    uint64_t reads = 0, writes = 0, read_bytes = 0, write_bytes = 0, other_ops = 0, errors = 0;
    int64_t in_flight = 0;
    struct histogram {
        std::array<uint64_t, latency_buckets> buckets{};  // not cumulative
        uint64_t count = 0;
        uint64_t sum_ns = 0;
        uint64_t max_ns = 0;
        // Upper bound of the bucket holding quantile q (0..1), in us.
        double quantile_us(double q) const;
    } read_latency, write_latency;

    io_totals& operator+=(const io_totals& o);
};

// One reactor's counters. Single writer (that reactor); readers anywhere.
struct io_slot {
    struct histogram {
        std::array<std::atomic<uint64_t>, latency_buckets> buckets{};
        std::atomic<uint64_t> count{0}, sum_ns{0}, max_ns{0};
    };
    std::atomic<uint64_t> reads{0}, writes{0}, read_bytes{0}, write_bytes{0}, other_ops{0},
        errors{0};
    std::atomic<int64_t> in_flight{0};
    histogram read_latency, write_latency;

    static void bump(std::atomic<uint64_t>& a, uint64_t by = 1) {
        a.store(a.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
    }
    static void record(histogram& h, uint64_t ns) {
        bump(h.buckets[latency_bucket(ns)]);
        bump(h.count);
        bump(h.sum_ns, ns);
        if (ns > h.max_ns.load(std::memory_order_relaxed))
            h.max_ns.store(ns, std::memory_order_relaxed);
    }
    io_totals read() const;
};

class io_stats {
  public:
    // The calling reactor's slot (made on first use). Stable for the life of
    // this object.
    io_slot& slot(unsigned reactor);
    io_totals total() const;
    std::map<unsigned, io_totals> per_reactor() const;

  private:
    mutable std::mutex mutex_;  // guards the map, not the counters
    std::map<unsigned, std::unique_ptr<io_slot>> slots_;
};

}  // namespace weft::bdev
