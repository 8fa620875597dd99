#include "engine/metrics_text.h"

#include <fmt/format.h>

namespace weft::engine {

namespace {

// Label values escape backslash, quote and newline.
std::string esc(const std::string& v) {
    std::string o;
    for (char c : v) {
        if (c == '\\' || c == '"') o += '\\';
        if (c == '\n') {
            o += "\\n";
            continue;
        }
        o += c;
    }
    return o;
}

struct writer {
    std::string out;
    void head(const char* name, const char* type, const char* help) {
        out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    }
    void sample(const std::string& name, const std::string& labels, double v) {
        out += fmt::format("{}{{{}}} {}\n", name, labels, v);
    }
    void sample(const std::string& name, const std::string& labels, uint64_t v) {
        out += fmt::format("{}{{{}}} {}\n", name, labels, v);
    }
    void histogram(const std::string& name, const std::string& labels,
                   const bdev::io_totals::histogram& h) {
        uint64_t cum = 0;
        for (unsigned i = 0; i + 1 < bdev::latency_buckets; ++i) {
            cum += h.buckets[i];
            out += fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", name, labels,
                               double(bdev::latency_bucket_le_us(i)) / 1e6, cum);
        }
        out += fmt::format("{}_bucket{{{},le=\"+Inf\"}} {}\n", name, labels, h.count);
        out += fmt::format("{}_sum{{{}}} {}\n", name, labels, double(h.sum_ns) / 1e9);
        out += fmt::format("{}_count{{{}}} {}\n", name, labels, h.count);
    }
};

void each_io(writer& w, const char* scope,
             const std::vector<std::pair<std::string, const bdev::io_totals*>>& rows) {
    auto counter = [&](const char* what, const char* help, auto get) {
        std::string name = fmt::format("weft_{}_{}", scope, what);
        w.head(name.c_str(), "counter", help);
        for (auto& [labels, t] : rows) w.sample(name, labels, uint64_t(get(*t)));
    };
    counter("reads_total", "Read commands completed.",
            [](const bdev::io_totals& t) { return t.reads; });
    counter("writes_total", "Write commands completed.",
            [](const bdev::io_totals& t) { return t.writes; });
    counter("read_bytes_total", "Bytes read.",
            [](const bdev::io_totals& t) { return t.read_bytes; });
    counter("write_bytes_total", "Bytes written.",
            [](const bdev::io_totals& t) { return t.write_bytes; });
    counter("other_ops_total", "Flush, write zeroes and deallocate commands completed.",
            [](const bdev::io_totals& t) { return t.other_ops; });
    counter("errors_total", "Commands that failed.",
            [](const bdev::io_totals& t) { return t.errors; });
    std::string qd = fmt::format("weft_{}_queue_depth", scope);
    w.head(qd.c_str(), "gauge", "Commands in flight now.");
    for (auto& [labels, t] : rows)
        w.sample(qd, labels, uint64_t(std::max<int64_t>(0, t->in_flight)));
    std::string rl = fmt::format("weft_{}_read_latency_seconds", scope);
    w.head(rl.c_str(), "histogram", "Read latency at the block layer.");
    for (auto& [labels, t] : rows) w.histogram(rl, labels, t->read_latency);
    std::string wl = fmt::format("weft_{}_write_latency_seconds", scope);
    w.head(wl.c_str(), "histogram", "Write latency at the block layer.");
    for (auto& [labels, t] : rows) w.histogram(wl, labels, t->write_latency);
}

}  // namespace

std::string render_prometheus(const stats_snapshot& s) {
    writer w;
    std::vector<std::pair<std::string, const bdev::io_totals*>> vols;
    for (auto& v : s.volumes)
        vols.emplace_back(fmt::format("nqn=\"{}\",nsid=\"{}\",pool=\"{}\",volume=\"{}\"",
                                      esc(v.nqn), v.nsid, esc(v.pool), esc(v.name)),
                          &v.io);
    each_io(w, "volume", vols);
    std::vector<std::pair<std::string, const bdev::io_totals*>> cores;
    for (auto& [core, t] : s.reactors) cores.emplace_back(fmt::format("reactor=\"{}\"", core), &t);
    each_io(w, "reactor", cores);

    auto pool_gauge = [&](const char* name, const char* help, auto get) {
        w.head(name, "gauge", help);
        for (auto& p : s.pools)
            w.sample(name, fmt::format("pool=\"{}\"", esc(p.name)), uint64_t(get(p)));
    };
    using P = stats_snapshot::pool_row;
    pool_gauge("weft_pool_capacity_bytes", "Bytes of data clusters in the pool.",
               [](const P& p) { return p.stats.total_clusters * p.stats.cluster_size; });
    pool_gauge("weft_pool_used_bytes", "Bytes of allocated clusters.",
               [](const P& p) { return p.stats.used_clusters * p.stats.cluster_size; });
    pool_gauge("weft_pool_committed_bytes",
               "Sum of the volumes' sizes (thin volumes may overcommit).",
               [](const P& p) { return p.stats.committed_bytes; });
    pool_gauge("weft_pool_volumes", "Volumes, snapshots and clones in the pool.",
               [](const P& p) { return p.volumes; });

    // Nexuses: one series per state (1 for the current one), as Prometheus
    // state sets go, so an alert can say "degraded for 5 minutes".
    using nexus::nexus_state;
    w.head("weft_nexus_state", "gauge", "1 for the nexus's current state.");
    for (auto& n : s.nexuses)
        for (auto st : {nexus_state::online, nexus_state::degraded, nexus_state::waiting,
                        nexus_state::superseded, nexus_state::faulted})
            w.sample("weft_nexus_state",
                     fmt::format("nexus=\"{}\",state=\"{}\"", pool::to_string(n.id),
                                 nexus::to_string(st)),
                     uint64_t(n.state == st));
    auto nexus_value = [&](const char* name, const char* type, const char* help, auto get) {
        w.head(name, type, help);
        for (auto& n : s.nexuses)
            w.sample(name, fmt::format("nexus=\"{}\"", pool::to_string(n.id)), uint64_t(get(n)));
    };
    using N = nexus::nexus_status;
    nexus_value("weft_nexus_generation", "gauge", "Membership generation on the children.",
                [](const N& n) { return n.generation; });
    nexus_value("weft_nexus_dirty_regions", "gauge",
                "Write-intent bitmap regions set (regions that may differ between children).",
                [](const N& n) { return n.dirty_regions; });
    nexus_value("weft_nexus_rebuilt_bytes_total", "counter", "Bytes copied by rebuilds.",
                [](const N& n) { return n.rebuilt_bytes; });
    nexus_value("weft_nexus_retirements_total", "counter", "Children retired after failures.",
                [](const N& n) { return n.retirements; });
    w.head("weft_nexus_child_state", "gauge", "1 for each child's current state.");
    for (auto& n : s.nexuses)
        for (auto& c : n.children)
            for (auto st : {nexus::child_state::online, nexus::child_state::rebuilding,
                            nexus::child_state::faulted})
                w.sample("weft_nexus_child_state",
                         fmt::format("nexus=\"{}\",child=\"{}\",state=\"{}\"",
                                     pool::to_string(n.id), esc(c.uri), nexus::to_string(st)),
                         uint64_t(c.state == st));
    w.head("weft_nexus_child_io_errors_total", "counter", "I/O errors of each child.");
    for (auto& n : s.nexuses)
        for (auto& c : n.children)
            w.sample("weft_nexus_child_io_errors_total",
                     fmt::format("nexus=\"{}\",child=\"{}\"", pool::to_string(n.id), esc(c.uri)),
                     c.io_errors);
    auto rebuild_gauge = [&](const char* name, const char* help, bool done) {
        w.head(name, "gauge", help);
        for (auto& n : s.nexuses)
            for (auto& c : n.children)
                if (c.rebuild)
                    w.sample(name,
                             fmt::format("nexus=\"{}\",child=\"{}\",kind=\"{}\"",
                                         pool::to_string(n.id), esc(c.uri), c.rebuild->kind),
                             done ? c.rebuild->bytes_done : c.rebuild->bytes_total);
    };
    rebuild_gauge("weft_nexus_rebuild_done_bytes", "Bytes copied by the running rebuild.", true);
    rebuild_gauge("weft_nexus_rebuild_total_bytes", "Bytes the running rebuild copies in all.",
                  false);
    return w.out;
}

}  // namespace weft::engine
