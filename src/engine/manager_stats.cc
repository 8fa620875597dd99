#include "engine/manager.h"

#include <algorithm>

#include "engine/api_status.h"
#include "runtime/runtime.h"

namespace weft::engine {

using grpc::Status;
using grpc::StatusCode;

namespace {

void fill_io(const bdev::io_totals& t, v1::IoCounters* out) {
    out->set_reads(t.reads);
    out->set_writes(t.writes);
    out->set_read_bytes(t.read_bytes);
    out->set_write_bytes(t.write_bytes);
    out->set_other_ops(t.other_ops);
    out->set_errors(t.errors);
    out->set_in_flight(uint64_t(std::max<int64_t>(0, t.in_flight)));
    auto lat = [](const bdev::io_totals::histogram& h, v1::LatencySummary* s) {
        s->set_count(h.count);
        s->set_mean_us(h.count ? double(h.sum_ns) / double(h.count) / 1000 : 0);
        s->set_p50_us(h.quantile_us(0.5));
        s->set_p99_us(h.quantile_us(0.99));
        s->set_max_us(double(h.max_ns) / 1000);
    };
    lat(t.read_latency, out->mutable_read_latency());
    lat(t.write_latency, out->mutable_write_latency());
}

}  // namespace

// ---- statistics -----------------------------------------------------------

task<stats_snapshot> manager::snapshot() {
    auto g = co_await lock_.lock();
    stats_snapshot snap;
    // Every reactor, idle ones with zeroes.
    for (unsigned c = 0; c < reactor::local().rt().size(); ++c) snap.reactors[c];
    // Namespaces no longer served still count in the reactors' counters,
    // which must never go down.
    for (auto& [core, t] : applier_.retired_io()) snap.reactors[core] += t;
    for (auto& s : applier_.served()) {
        stats_snapshot::volume_row v{s.nqn, s.nsid, "", "", {}};
        if (s.cfg.type == "volume") {
            v.pool = s.cfg.pool;
            v.name = s.cfg.volume;
        }
        if (s.stats) {
            for (auto& [core, t] : s.stats->per_reactor()) {
                v.io += t;
                snap.reactors[core] += t;
            }
        }
        snap.volumes.push_back(std::move(v));
    }
    for (auto& [id, n] : applier_.nexuses()) snap.nexuses.push_back(n->status());
    std::vector<std::pair<std::string, std::shared_ptr<pool::pool>>> pools;
    for (auto& [n, op] : applier_.pools()) pools.emplace_back(n, op.p);
    for (auto& [n, p] : pools) {
        stats_snapshot::pool_row ps;
        ps.name = n;
        ps.stats = co_await p->stats();
        auto vols = co_await p->list();
        ps.volumes = vols.size();
        snap.pools.push_back(std::move(ps));
    }
    co_return snap;
}

task<Status> manager::get_stats(v1::Stats* out) {
    stats_snapshot snap = co_await snapshot();
    for (auto& v : snap.volumes) {
        auto* o = out->add_volumes();
        o->set_nqn(v.nqn);
        o->set_nsid(v.nsid);
        o->set_pool(v.pool);
        o->set_volume(v.name);
        fill_io(v.io, o->mutable_io());
    }
    for (auto& [core, t] : snap.reactors) {
        auto* o = out->add_reactors();
        o->set_core(core);
        fill_io(t, o->mutable_io());
    }
    co_return Status::OK;
}

}  // namespace weft::engine
