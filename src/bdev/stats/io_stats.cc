#include "bdev/stats/io_stats.h"

#include <algorithm>

namespace weft::bdev {

namespace {
void add(io_totals::histogram& a, const io_totals::histogram& b) {
    for (unsigned i = 0; i < latency_buckets; ++i) a.buckets[i] += b.buckets[i];
    a.count += b.count;
    a.sum_ns += b.sum_ns;
    if (b.max_ns > a.max_ns) a.max_ns = b.max_ns;
}
io_totals::histogram copy(const io_slot::histogram& h) {
    io_totals::histogram out;
    // The count is the buckets' sum, read with them: a reader racing the
    // writer still sees a histogram whose +Inf bucket equals its count.
    out.count = 0;
    for (unsigned i = 0; i < latency_buckets; ++i) {
        out.buckets[i] = h.buckets[i].load(std::memory_order_relaxed);
        out.count += out.buckets[i];
    }
    out.sum_ns = h.sum_ns.load(std::memory_order_relaxed);
    out.max_ns = h.max_ns.load(std::memory_order_relaxed);
    return out;
}
}  // namespace

double io_totals::histogram::quantile_us(double q) const {
    if (count == 0) return 0;
    uint64_t want = uint64_t(q * double(count) + 0.5);
    if (want == 0) want = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < latency_buckets; ++i) {
        seen += buckets[i];
        // The last bucket is open: report the largest latency seen.
        // A bucket's upper bound, never above the largest latency seen (the
        // last bucket is open: that largest latency).
        if (seen >= want) {
            double max_us = double(max_ns) / 1000;
            return i + 1 < latency_buckets ? std::min(double(latency_bucket_le_us(i)), max_us)
                                           : max_us;
        }
    }
    return double(max_ns) / 1000;
}

io_totals& io_totals::operator+=(const io_totals& o) {
    reads += o.reads;
    writes += o.writes;
    read_bytes += o.read_bytes;
    write_bytes += o.write_bytes;
    other_ops += o.other_ops;
    errors += o.errors;
    in_flight += o.in_flight;
    add(read_latency, o.read_latency);
    add(write_latency, o.write_latency);
    return *this;
}

io_totals io_slot::read() const {
    io_totals t;
    t.reads = reads.load(std::memory_order_relaxed);
    t.writes = writes.load(std::memory_order_relaxed);
    t.read_bytes = read_bytes.load(std::memory_order_relaxed);
    t.write_bytes = write_bytes.load(std::memory_order_relaxed);
    t.other_ops = other_ops.load(std::memory_order_relaxed);
    t.errors = errors.load(std::memory_order_relaxed);
    t.in_flight = in_flight.load(std::memory_order_relaxed);
    t.read_latency = copy(read_latency);
    t.write_latency = copy(write_latency);
    return t;
}

io_slot& io_stats::slot(unsigned reactor) {
    std::lock_guard lock(mutex_);
    auto& s = slots_[reactor];
    if (!s) s = std::make_unique<io_slot>();
    return *s;
}

io_totals io_stats::total() const {
    io_totals t;
    for (auto& [r, s] : per_reactor()) t += s;
    return t;
}

std::map<unsigned, io_totals> io_stats::per_reactor() const {
    std::lock_guard lock(mutex_);
    std::map<unsigned, io_totals> out;
    for (auto& [r, s] : slots_) out[r] = s->read();
    return out;
}

}  // namespace weft::bdev
