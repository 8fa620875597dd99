// Formatting and importing pools, and the public calls, which hop to home.
#include "pool/pool.h"

#include <spdlog/spdlog.h>

#include <cstring>

#include "pool/engine.h"
#include "pool/volume.h"
#include "runtime/runtime.h"

namespace weft::pool {
namespace {

error fail(std::string* why, int code, std::string msg) {
    // A blank device is what a caller probes before creating a pool: not an error yet.
    if (code == ENODATA)
        spdlog::info("pool: {}", msg);
    else
        spdlog::error("pool: {}", msg);
    if (why) *why = std::move(msg);
    return error{code};
}

bool is_pow2(uint64_t v) {
    return v && (v & (v - 1)) == 0;
}

uint64_t round_up(uint64_t v, uint64_t a) {
    return (v + a - 1) / a * a;
}

// Room for 1024 volume records and two extents per cluster (fragmented maps
// and snapshots sharing them), at least 64 KiB.
uint64_t default_md_area_bytes(uint64_t device_bytes, uint64_t cluster_size) {
    uint64_t clusters = device_bytes / cluster_size;
    uint64_t want = sizeof(format::md_header) + 1024 * sizeof(format::volume_record) +
                    2 * clusters * sizeof(format::extent);
    return std::clamp(round_up(want, format::io_unit), format::min_md_area_bytes,
                      format::max_md_area_bytes);
}

}  // namespace

pool::pool(std::shared_ptr<bdev::bdev> dev, unsigned home) : dev_(std::move(dev)), home_(home) {}

// requires: on home (the engine's channel belongs to it).
pool::~pool() = default;

const geometry& pool::geo() const {
    return eng_->geo();
}

task<result<std::shared_ptr<pool>>> pool::create(std::shared_ptr<bdev::bdev> dev, std::string name,
                                                 create_options opt, std::string* why) {
    const uint32_t bs = dev->block_size();
    if (bs > format::max_block_size)
        co_return fail(why, EINVAL, "block size " + std::to_string(bs) + " above 4096");
    if (name.empty() || name.size() >= format::name_bytes)
        co_return fail(why, EINVAL, "bad pool name '" + name + "'");
    if (!is_pow2(opt.cluster_size) || opt.cluster_size < format::min_cluster_size ||
        opt.cluster_size > format::max_cluster_size)
        co_return fail(why, EINVAL, "cluster size must be a power of 2 in [4 KiB, 1 GiB]");
    if (dev->read_only()) co_return fail(why, EROFS, "device is read-only");
    auto ch = dev->open_channel();
    io_buffer sbuf(format::superblock_region);
    int got = co_await read_bytes(*dev, *ch, 0, sbuf.span());
    if (got != 0) co_return fail(why, -got, "cannot read the superblock");
    if (std::memcmp(sbuf.data(), format::superblock_magic, 8) == 0 && !opt.force) {
        std::string detail;
        auto old = decode_superblock(sbuf.span(), &detail);
        co_return fail(why, EEXIST,
                       "device " + dev->name() + " already holds a pool" +
                           (old ? " '" + old->name + "' (" + to_string(old->pool_id) + ")"
                                : " (" + detail + ")") +
                           "; use force to overwrite");
    }

    geometry g;
    g.pool_id = random_uuid();
    g.name = name;
    g.block_size = bs;
    g.cluster_size = opt.cluster_size;
    g.device_bytes = dev->size_bytes();
    g.md_area_bytes = opt.md_area_bytes ? round_up(opt.md_area_bytes, format::io_unit)
                                        : default_md_area_bytes(g.device_bytes, g.cluster_size);
    if (g.md_area_bytes < format::min_md_area_bytes || g.md_area_bytes > format::max_md_area_bytes)
        co_return fail(why, EINVAL, "bad metadata area size");
    g.data_offset = round_up(format::md_offset + 2 * g.md_area_bytes,
                             std::min<uint64_t>(g.cluster_size, 1 << 20));
    if (g.device_bytes < g.data_offset + g.cluster_size)
        co_return fail(why, ENOSPC, "device too small for one cluster after the metadata");
    g.cluster_count = std::min<uint64_t>((g.device_bytes - g.data_offset) / g.cluster_size,
                                         format::max_cluster_count);

    auto p = std::shared_ptr<pool>(new pool(dev, reactor::local().id()));
    p->eng_ = std::make_unique<pool_engine>(*dev, g, std::move(ch));
    pool_engine& e = *p->eng_;
    int rc = 0;
    // Order: (forced) kill the old superblock, write both empty metadata
    // areas, then the superblock. A crash before the superblock is durable
    // leaves a device that holds no pool, never a pool with stale metadata.
    if (opt.force) {
        std::memset(sbuf.data(), 0, sbuf.size());
        rc = co_await write_bytes(*dev, *e.ch, 0, sbuf.span(), true);
    }
    if (rc == 0) rc = co_await e.commit();
    if (rc == 0) {
        std::memset(sbuf.data(), 0, sbuf.size());
        encode_superblock(g, sbuf.span().first<sizeof(format::superblock)>());
        rc = co_await write_bytes(*dev, *e.ch, 0, sbuf.span(), true);
    }
    if (rc != 0)
        co_return fail(why, -rc, "formatting " + dev->name() + ": " + error{-rc}.message());
    spdlog::info("pool {} ({}) created on {}: {} clusters of {} bytes", g.name,
                 to_string(g.pool_id), dev->name(), g.cluster_count, g.cluster_size);
    co_return p;
}

task<result<std::shared_ptr<pool>>> pool::open(std::shared_ptr<bdev::bdev> dev, std::string* why) {
    auto ch = dev->open_channel();
    io_buffer sbuf(format::superblock_region);
    int rc = co_await read_bytes(*dev, *ch, 0, sbuf.span());
    if (rc != 0) co_return fail(why, -rc, "cannot read the superblock of " + dev->name());
    std::string detail;
    auto g = decode_superblock(sbuf.span(), &detail);
    if (!g) co_return fail(why, g.err().code, dev->name() + ": " + detail);
    if (g->block_size != dev->block_size())
        co_return fail(why, EUCLEAN, dev->name() + ": superblock block size differs from device's");
    if (g->data_offset + g->cluster_count * g->cluster_size > dev->size_bytes())
        co_return fail(why, EUCLEAN, dev->name() + ": device smaller than the pool it holds");

    auto p = std::shared_ptr<pool>(new pool(dev, reactor::local().id()));
    p->eng_ = std::make_unique<pool_engine>(*dev, g.value(), std::move(ch));
    pool_engine& e = *p->eng_;
    load_report rep;
    auto m = co_await e.store.load(*e.ch, rep, &detail);
    if (!m) co_return fail(why, m.err().code, dev->name() + ": " + detail);
    e.adopt(std::move(m.value()));
    if (rep.needs_repair) {
        // One area is torn (a crash mid-commit), corrupt, or older: rewrite
        // both from the one we trust, so the next failure has a mirror again.
        std::string note = "metadata repaired from area " + std::to_string(rep.chosen);
        for (unsigned a = 0; a < 2; ++a)
            if (!rep.area_error[a].empty())
                note += "; area " + std::to_string(a) + " was bad: " + rep.area_error[a];
        spdlog::warn("pool {}: {}", g->name, note);
        if (why) *why = note;
        int committed = co_await e.commit();
        if (committed != 0)
            co_return fail(why, -committed, dev->name() + ": metadata repair failed");
    }
    co_return p;
}

// Public calls: run on home, whatever reactor calls (a self-send on home).
task<result<uuid>> pool::create_volume(std::string name, uint64_t size_bytes, bool thin,
                                       std::string* why) {
    co_return co_await on(home_, [&] { return eng_->create_volume(name, size_bytes, thin, why); });
}
task<result<void>> pool::delete_volume(uuid id, std::string* why, bool purge) {
    co_return co_await on(home_, [&] { return eng_->delete_volume(id, why, purge); });
}
void pool::set_purge(bool on) {
    eng_->purge_frees.store(on, std::memory_order_relaxed);
}
task<result<void>> pool::resize_volume(uuid id, uint64_t size_bytes, std::string* why) {
    co_return co_await on(home_, [&] { return eng_->resize_volume(id, size_bytes, why); });
}
task<result<uuid>> pool::snapshot(uuid id, std::string name, std::string* why) {
    co_return co_await on(home_, [&] { return eng_->snapshot(id, name, why); });
}
task<result<uuid>> pool::clone(uuid snapshot_id, std::string name, std::string* why) {
    co_return co_await on(home_, [&] { return eng_->clone(snapshot_id, name, why); });
}

task<std::vector<volume_info>> pool::list() {
    co_return co_await on(home_, [&] {
        std::vector<volume_info> out;
        for (auto& st : eng_->vols) out.push_back(eng_->info(*st));
        return out;
    });
}

task<pool_stats> pool::stats() {
    co_return co_await on(home_, [&] {
        pool_stats s;
        s.cluster_size = eng_->cluster_size();
        s.total_clusters = eng_->alloc.count();
        s.used_clusters = eng_->alloc.used();
        for (auto& st : eng_->vols) s.committed_bytes += st->meta.size_bytes;
        s.metadata_seq = eng_->store.seq();
        return s;
    });
}

result<std::shared_ptr<bdev::bdev>> pool::open_volume(uuid id) {
    auto st = eng_->find(id);
    if (!st) return error{ENOENT};
    return make_volume_bdev(shared_from_this(), std::move(st));
}

std::optional<uuid> pool::find(const std::string& name) const {
    if (auto st = eng_->find_name(name)) return st->meta.id;
    return std::nullopt;
}

}  // namespace weft::pool
