// Latency samples of the benchmarks: nanoseconds per I/O, summarised as
// percentiles in microseconds.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace weft::bench {

// The q-quantile (0..1) of `v` in microseconds; reorders `v`.
inline double percentile_us(std::vector<uint32_t>& v, double q) {
    if (v.empty()) return 0;
    size_t i = std::min(v.size() - 1, size_t(q * double(v.size())));
    std::nth_element(v.begin(), v.begin() + long(i), v.end());
    return double(v[i]) / 1000.0;
}

}  // namespace weft::bench
