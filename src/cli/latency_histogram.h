// A log-linear latency histogram (HdrHistogram's idea, small): 16 linear
// sub-buckets per power of two of nanoseconds, so percentiles are within
// ~6% of the true value at any scale, in 1 KiB of counters per queue.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <limits>

namespace weft::cli {

class latency_histogram {
  public:
    static constexpr unsigned sub_bits = 4;
    static constexpr unsigned sub = 1u << sub_bits;

    void add(uint64_t ns) {
        ++counts_[index(ns)];
        ++total_;
        sum_ += ns;
        min_ = std::min(min_, ns);
        max_ = std::max(max_, ns);
    }
    void merge(const latency_histogram& o) {
        for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
        total_ += o.total_;
        sum_ += o.sum_;
        min_ = std::min(min_, o.min_);
        max_ = std::max(max_, o.max_);
    }
    uint64_t count() const { return total_; }
    uint64_t min() const { return total_ ? min_ : 0; }
    uint64_t max() const { return max_; }
    double mean() const { return total_ ? double(sum_) / double(total_) : 0; }
    // The upper bound of the bucket holding the q-quantile (0 < q <= 1),
    // clamped to the largest value seen.
    uint64_t percentile(double q) const {
        if (total_ == 0) return 0;
        auto want = uint64_t(q * double(total_) + 0.5);
        want = std::clamp<uint64_t>(want, 1, total_);
        uint64_t seen = 0;
        for (size_t i = 0; i < counts_.size(); ++i) {
            seen += counts_[i];
            if (seen >= want) return std::min(upper(i), max_);
        }
        return max_;
    }

  private:
    // Values below `sub` are exact; above, the top sub_bits after the
    // leading one pick the sub-bucket.
    static size_t index(uint64_t v) {
        if (v < sub) return size_t(v);
        unsigned msb = 63u - unsigned(std::countl_zero(v));
        unsigned shift = msb - sub_bits;
        return size_t((msb - sub_bits + 1) * sub + ((v >> shift) & (sub - 1)));
    }
    static uint64_t upper(size_t i) {
        if (i < sub) return i;
        unsigned group = unsigned(i / sub);  // msb - sub_bits + 1
        unsigned shift = group - 1;
        uint64_t base = (uint64_t(sub) + (i % sub)) << shift;
        return base + ((uint64_t(1) << shift) - 1);
    }

    std::array<uint64_t, (64 - sub_bits + 1) * sub> counts_{};
    uint64_t total_ = 0;
    uint64_t sum_ = 0;
    uint64_t min_ = std::numeric_limits<uint64_t>::max();
    uint64_t max_ = 0;
};

}  // namespace weft::cli
