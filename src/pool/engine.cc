// The pool's home side: commits, publication of maps, and the slow I/O paths.
//
// Crash safety of a first write (or copy-on-write) to cluster l:
//   1. allocate physical cluster q in memory only (on disk q is still free:
//      the allocator is rebuilt from committed maps at import);
//   2. write all of q: zeroes (first write) or the old cluster's bytes (COW),
//      then the new data over them;
//   3. flush the device, so q's bytes are stable before anything points at q;
//   4. commit the metadata with l -> q (metadata_store.h: two FUA writes);
//   5. publish l -> q to the I/O path, and acknowledge the write.
// A crash before 4's first write completes leaves l unmapped (or on the old,
// still intact cluster): the write was not acknowledged, and q is free again.
// A crash after it leaves l -> q with q fully written. Never does a committed
// map point at a cluster whose bytes are not on stable media.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "bdev/iov.h"
#include "pool/engine.h"
#include "runtime/buffer_pool.h"
#include "runtime/uring_op.h"

namespace weft::pool {

void pool_engine::adopt(pool_meta m) {
    store.set_seq(m.seq);
    for (auto& v : m.volumes) {
        auto st = std::make_shared<volume_state>();
        st->meta = std::move(v);
        for (uint32_t p : st->meta.map)
            if (p != unmapped) alloc.ref(p);
        vols.push_back(std::move(st));
    }
    // Shared bits need every reference counted first.
    for (auto& st : vols) publish_all(*st);
}

std::shared_ptr<volume_state> pool_engine::find(const uuid& id) const {
    for (auto& st : vols)
        if (st->meta.id == id) return st;
    return nullptr;
}

std::shared_ptr<volume_state> pool_engine::find_name(const std::string& name) const {
    for (auto& st : vols)
        if (st->meta.name == name) return st;
    return nullptr;
}

task<int> pool_engine::commit() {
    if (failed) co_return -EIO;
    std::vector<const volume_meta*> v;
    v.reserve(vols.size());
    for (auto& st : vols) v.push_back(&st->meta);
    int rc = co_await store.commit(*ch, v);
    if (rc != 0 && rc != -ENOSPC) {
        failed = true;
        spdlog::error("pool {}: metadata commit {} failed ({}); refusing further changes",
                      geo().name, store.seq(), -rc);
    }
    co_return rc;
}

void pool_engine::publish(volume_state& st, uint64_t l) {
    map_array* a = st.map.load(std::memory_order_relaxed);
    uint32_t p = st.meta.map[l];
    uint32_t e = p == unmapped ? unmapped : p | (alloc.refs(p) > 1 ? shared_bit : 0);
    a->e[l].store(e, std::memory_order_release);
}

void pool_engine::publish_all(volume_state& st) {
    map_array* a = st.map.load(std::memory_order_relaxed);
    if (!a || a->len != st.meta.map.size()) {
        st.maps.push_back(std::make_unique<map_array>(st.meta.map.size()));
        a = st.maps.back().get();
        for (uint64_t l = 0; l < a->len; ++l) {
            uint32_t p = st.meta.map[l];
            a->e[l].store(p == unmapped ? unmapped : p | (alloc.refs(p) > 1 ? shared_bit : 0),
                          std::memory_order_relaxed);
        }
        st.map.store(a, std::memory_order_release);
        return;
    }
    for (uint64_t l = 0; l < a->len; ++l) publish(st, l);
}

task<void> pool_engine::freeze(volume_state& st) {
    st.frozen.store(true);
    while (st.inflight() != 0) co_await sleep(std::chrono::microseconds(20));
}

task<int> pool_engine::zero_physical(uint32_t p, uint64_t off, uint64_t len) {
    if (len == 0) co_return 0;
    uint32_t bs = dev.block_size();
    co_return co_await ch->write_zeroes(lba_of(p, off), len / bs);
}

task<void> pool_engine::drop_unused(uint32_t q) {
    // What was written to it goes too in a purging pool (best effort: the
    // device failed already, most likely).
    if (purge_frees.load(std::memory_order_relaxed))
        (void)co_await zero_physical(q, 0, cluster_size());
    alloc.unref(q);
}

task<int> pool_engine::purge_clusters(std::span<const uint32_t> physical, uint64_t* zeroed) {
    *zeroed = 0;
    for (uint32_t p : physical) {
        if (p == unmapped || alloc.refs(p) != 1) continue;
        int rc = co_await zero_physical(p, 0, cluster_size());
        if (rc != 0) co_return rc;
        ++*zeroed;
        co_await yield{};  // as in the copy loop: other reactors' I/O goes on
    }
    co_return *zeroed ? co_await ch->flush() : 0;
}

task<int> pool_engine::slow_io(volume_state& st, io_kind k, uint64_t l, uint64_t off, uint64_t len,
                               std::span<const iovec> iov, bool fua) {
    auto g = co_await lock.lock();
    if (st.deleted.load()) co_return -ENODEV;
    if (l >= st.meta.map.size()) co_return -ERANGE;
    if (k == io_kind::read) {
        uint32_t p = st.meta.map[l];
        if (p == unmapped) {
            bdev::iov_zero(iov);
            co_return 0;
        }
        co_return co_await ch->read(lba_of(p, off), uint32_t(len / dev.block_size()), iov);
    }
    co_return co_await write_cluster(st, l, off, len, iov, fua);
}

task<int> pool_engine::write_cluster(volume_state& st, uint64_t l, uint64_t off, uint64_t len,
                                     std::span<const iovec> iov, bool fua) {
    const uint64_t cs = cluster_size();
    const uint32_t bs = dev.block_size();
    const bool zeroes = iov.empty();
    if (st.meta.read_only()) co_return -EROFS;
    uint32_t p = st.meta.map[l];
    if (p == unmapped && zeroes) co_return 0;  // already reads as zeroes
    if (p != unmapped && alloc.refs(p) == 1) {
        // Ours alone (a snapshot that shared it is gone): write in place.
        publish(st, l);
        if (zeroes) co_return co_await zero_physical(p, off, len);
        co_return co_await ch->write(lba_of(p, off), uint32_t(len / bs), iov, fua);
    }
    if (failed) co_return -EIO;
    auto q = alloc.allocate();
    if (!q) co_return -ENOSPC;
    int rc = 0;
    if (p == unmapped) {
        // The rest of a new cluster must read as zeroes, whatever it held.
        rc = co_await zero_physical(*q, 0, off);
        if (rc == 0) rc = co_await zero_physical(*q, off + len, cs - off - len);
    } else {
        // Copy-on-write: the old cluster in chunks of at most 1 MiB.
        const uint64_t chunk = std::min<uint64_t>(cs, 1 << 20);
        buffer b = buffer_pool::local().get(chunk);
        iovec v{b.data(), chunk};
        for (uint64_t o = 0; o < cs && rc == 0; o += chunk) {
            if (o >= off && o + chunk <= off + len) continue;  // overwritten below
            // A backend that completes without suspending (malloc) nests one
            // frame per await where tail calls are off (sanitizer builds):
            // give the stack back now and then.
            co_await yield{};
            rc = co_await ch->read(lba_of(p, o), uint32_t(chunk / bs), std::span(&v, 1));
            if (rc == 0)
                rc = co_await ch->write(lba_of(*q, o), uint32_t(chunk / bs), std::span(&v, 1),
                                        false);
        }
    }
    if (rc == 0)
        rc = zeroes ? co_await zero_physical(*q, off, len)
                    : co_await ch->write(lba_of(*q, off), uint32_t(len / bs), iov, false);
    if (rc == 0 && dev.volatile_write_cache()) rc = co_await ch->flush();
    if (rc != 0) {
        co_await drop_unused(*q);
        co_return rc;
    }
    st.meta.map[l] = *q;
    if (p != unmapped) alloc.unref(p);  // still referenced by the snapshot(s)
    rc = co_await commit();
    if (rc != 0) {
        st.meta.map[l] = p;
        if (p != unmapped) alloc.ref(p);
        co_await drop_unused(*q);
        co_return rc;
    }
    publish(st, l);
    co_return 0;
}

task<int> pool_engine::unmap_clusters(volume_state& st, uint64_t l0, uint64_t l1) {
    auto g = co_await lock.lock();
    if (st.deleted.load()) co_return -ENODEV;
    if (st.meta.read_only()) co_return -EROFS;
    l1 = std::min<uint64_t>(l1, st.meta.map.size());
    if (!st.meta.thin()) {
        // A thick volume keeps its clusters: zero them (copying shared ones).
        for (uint64_t l = l0; l < l1; ++l) {
            int rc = co_await write_cluster(st, l, 0, cluster_size(), {}, false);
            if (rc != 0) co_return rc;
            co_await yield{};  // as in the copy loop above
        }
        co_return 0;
    }
    std::vector<std::pair<uint64_t, uint32_t>> dropped;
    for (uint64_t l = l0; l < l1; ++l)
        if (st.meta.map[l] != unmapped) dropped.push_back({l, st.meta.map[l]});
    if (dropped.empty()) co_return 0;
    if (failed) co_return -EIO;
    const bool purge = purge_frees.load(std::memory_order_relaxed);
    // Purged a batch at a time, each committed on its own, so that the
    // volume's I/O is not held for the zeroing of a whole large range.
    const size_t batch = purge ? 64 : dropped.size();
    for (size_t i = 0; i < dropped.size(); i += batch) {
        std::span<const std::pair<uint64_t, uint32_t>> some(dropped.data() + i,
                                                            std::min(batch, dropped.size() - i));
        if (int rc = co_await drop_clusters(st, some, purge); rc != 0) co_return rc;
    }
    co_return 0;
}

task<int> pool_engine::drop_clusters(volume_state& st,
                                     std::span<const std::pair<uint64_t, uint32_t>> dropped,
                                     bool purge) {
    // No fast-path I/O may still hold a cluster we are about to free.
    co_await freeze(st);
    int rc = 0;
    if (purge) {
        // Zeroed while still mapped: a crash before the commit leaves the
        // range reading zeroes, which an unmap allows.
        std::vector<uint32_t> physical;
        for (auto [l, p] : dropped) physical.push_back(p);
        uint64_t n = 0;
        rc = co_await purge_clusters(physical, &n);
        if (rc != 0) {
            thaw(st);
            co_return rc;
        }
    }
    for (auto [l, p] : dropped) st.meta.map[l] = unmapped;
    rc = co_await commit();
    if (rc != 0) {
        for (auto [l, p] : dropped) st.meta.map[l] = p;
    } else {
        // Free only after the commit: until then the old map may be the
        // one a crash brings back, and it points at these clusters.
        for (auto [l, p] : dropped) {
            alloc.unref(p);
            publish(st, l);
        }
    }
    thaw(st);
    co_return rc;
}

}  // namespace weft::pool
