// Volume management on the pool's home reactor: create, delete, resize,
// snapshot, clone. Each takes the lock, changes the in-memory table, commits,
// and on a failed commit puts the table back as it was. Clusters are freed
// only after the commit that drops them, and a volume with I/O in flight is
// frozen around any change that could pull a cluster from under that I/O.
#include <spdlog/spdlog.h>

#include "pool/engine.h"
#include "runtime/reactor.h"

namespace weft::pool {
namespace {

error fail(std::string* why, int code, std::string msg) {
    spdlog::warn("pool: {}", msg);
    if (why) *why = std::move(msg);
    return error{code};
}

bool valid_name(const std::string& n) {
    return !n.empty() && n.size() < format::name_bytes && n.find('\0') == std::string::npos;
}

}  // namespace

volume_info pool_engine::info(const volume_state& st) const {
    volume_info i;
    const volume_meta& m = st.meta;
    i.id = m.id;
    i.name = m.name;
    i.size_bytes = m.size_bytes;
    for (uint32_t p : m.map) i.allocated_bytes += p != unmapped ? cluster_size() : 0;
    i.thin = m.thin();
    i.read_only = m.read_only();
    i.snapshot = m.snapshot();
    if (!is_nil(m.parent)) i.parent = m.parent;
    return i;
}

task<result<uuid>> pool_engine::create_volume(std::string name, uint64_t size, bool thin,
                                              std::string* why) {
    auto g = co_await lock.lock();
    if (!valid_name(name)) co_return fail(why, EINVAL, "bad volume name '" + name + "'");
    if (find_name(name)) co_return fail(why, EEXIST, "volume '" + name + "' exists");
    const uint64_t cs = cluster_size();
    if (size == 0 || size % dev.block_size())
        co_return fail(why, EINVAL, "volume size must be a non-zero multiple of the block size");
    uint64_t n = clusters_for(size, cs);
    if (n > geo().cluster_count * format::max_overcommit)
        co_return fail(why, EFBIG, "volume larger than the over-commit bound");
    if (!thin && n > alloc.free())
        co_return fail(why, ENOSPC,
                       "thick volume '" + name + "' needs " + std::to_string(n) +
                           " clusters, pool has " + std::to_string(alloc.free()) + " free");
    if (failed) co_return fail(why, EIO, "pool metadata failed earlier; reopen the pool");

    auto st = std::make_shared<volume_state>();
    volume_meta& m = st->meta;
    m.id = random_uuid();
    m.name = name;
    m.size_bytes = size;
    m.flags = thin ? uint32_t(format::vol_thin) : 0u;
    m.created_seq = store.seq() + 1;
    m.map.assign(n, unmapped);
    int rc = 0;
    if (!thin) {
        // Allocate and zero every cluster before the commit that maps them.
        for (uint64_t l = 0; l < n; ++l) m.map[l] = *alloc.allocate();
        for (uint64_t l = 0; l < n && rc == 0;) {
            uint64_t e = l + 1;
            while (e < n && m.map[e] == m.map[e - 1] + 1) ++e;
            rc = co_await zero_physical(m.map[l], 0, (e - l) * cs);
            l = e;
            // See engine.cc: unwind synchronous completions now and then.
            co_await yield{};
        }
        if (rc == 0 && dev.volatile_write_cache()) rc = co_await ch->flush();
    }
    if (rc == 0) {
        vols.push_back(st);
        rc = co_await commit();
        if (rc != 0) vols.pop_back();
    }
    if (rc != 0) {
        for (uint32_t p : m.map)
            if (p != unmapped) alloc.unref(p);
        co_return fail(why, -rc, "create volume '" + name + "': " + error{-rc}.message());
    }
    publish_all(*st);
    co_return m.id;
}

task<result<void>> pool_engine::delete_volume(uuid id, std::string* why, bool purge) {
    auto g = co_await lock.lock();
    auto st = find(id);
    if (!st) co_return fail(why, ENOENT, "no volume " + to_string(id));
    for (auto& o : vols)
        if (o != st && o->meta.parent == id && !o->meta.snapshot())
            co_return fail(why, EBUSY,
                           "'" + st->meta.name + "' has clones (e.g. '" + o->meta.name +
                               "'); delete them first");
    if (failed) co_return fail(why, EIO, "pool metadata failed earlier; reopen the pool");
    co_await freeze(*st);
    purge = purge || purge_frees.load(std::memory_order_relaxed);
    // Purged before the delete commits: a crash or an error on the way
    // leaves the volume there (partly zeroed) to be deleted again, never
    // its clusters free with its data on them.
    uint64_t purged = 0;
    if (purge) {
        int rc = co_await purge_clusters(st->meta.map, &purged);
        if (rc != 0) {
            thaw(*st);
            co_return fail(why, -rc,
                           "purging '" + st->meta.name + "' failed, so it is not deleted (" +
                               std::to_string(purged) + " of its clusters are zeroed already): " +
                               error{-rc}.message() + "; delete it again");
        }
    }
    auto it = std::find(vols.begin(), vols.end(), st);
    size_t pos = size_t(it - vols.begin());
    vols.erase(it);
    int rc = co_await commit();
    if (rc != 0) {
        vols.insert(vols.begin() + long(pos), st);
        thaw(*st);
        co_return fail(why, -rc, "delete '" + st->meta.name + "': " + error{-rc}.message());
    }
    st->deleted.store(true);
    for (uint32_t p : st->meta.map)
        if (p != unmapped) alloc.unref(p);
    // Sharers may now own their clusters alone; they find out on their next
    // write (write_cluster), which then goes in place.
    thaw(*st);
    if (purge) spdlog::info("pool: volume {} purged ({} clusters zeroed)", st->meta.name, purged);
    co_return result<void>{};
}

task<result<void>> pool_engine::resize_volume(uuid id, uint64_t size, std::string* why) {
    auto g = co_await lock.lock();
    auto st = find(id);
    if (!st) co_return fail(why, ENOENT, "no volume " + to_string(id));
    volume_meta& m = st->meta;
    const uint64_t cs = cluster_size();
    if (m.read_only()) co_return fail(why, EROFS, "'" + m.name + "' is read-only");
    if (size == 0 || size % dev.block_size())
        co_return fail(why, EINVAL, "volume size must be a non-zero multiple of the block size");
    uint64_t n = clusters_for(size, cs), old_n = m.map.size(), old_size = m.size_bytes;
    if (n > geo().cluster_count * format::max_overcommit)
        co_return fail(why, EFBIG, "volume larger than the over-commit bound");
    if (size == old_size) co_return result<void>{};
    for (uint64_t l = n; l < old_n; ++l)
        if (m.map[l] != unmapped)
            co_return fail(why, ENOTEMPTY,
                           "shrinking '" + m.name + "' to " + std::to_string(size) +
                               " bytes would drop allocated cluster " + std::to_string(l) +
                               "; unmap the tail first");
    if (!m.thin() && n > old_n && n - old_n > alloc.free())
        co_return fail(why, ENOSPC, "not enough free clusters to grow thick '" + m.name + "'");
    if (failed) co_return fail(why, EIO, "pool metadata failed earlier; reopen the pool");

    int rc = 0;
    // Bytes past the old end inside its last cluster may hold data from
    // before an earlier shrink: they must read as zeroes once exposed.
    if (size > old_size && old_size % cs && m.map[old_n - 1] != unmapped) {
        uint64_t off = old_size % cs;
        rc = co_await write_cluster(*st, old_n - 1, off,
                                    std::min(cs, size - (old_n - 1) * cs) - off, {}, false);
    }
    if (rc != 0) co_return fail(why, -rc, "resize '" + m.name + "': " + error{-rc}.message());

    co_await freeze(*st);
    std::vector<uint32_t> old_map = m.map;
    m.map.resize(n, unmapped);
    m.size_bytes = size;
    if (!m.thin()) {
        for (uint64_t l = old_n; l < n; ++l) m.map[l] = *alloc.allocate();
        for (uint64_t l = old_n; l < n && rc == 0; ++l) {
            rc = co_await zero_physical(m.map[l], 0, cs);
            co_await yield{};
        }
        if (rc == 0 && dev.volatile_write_cache()) rc = co_await ch->flush();
    }
    if (rc == 0) rc = co_await commit();
    if (rc != 0) {
        for (uint64_t l = old_n; l < n; ++l)
            if (m.map[l] != unmapped) alloc.unref(m.map[l]);
        m.map = std::move(old_map);
        m.size_bytes = old_size;
        thaw(*st);
        co_return fail(why, -rc, "resize '" + m.name + "': " + error{-rc}.message());
    }
    publish_all(*st);
    uint64_t blocks = size / dev.block_size();
    for (auto& w : st->bdevs)
        if (auto b = w.lock()) publish_volume_size(*b, blocks);
    thaw(*st);
    co_return result<void>{};
}

task<result<uuid>> pool_engine::snapshot(uuid id, std::string name, std::string* why) {
    auto g = co_await lock.lock();
    auto origin = find(id);
    if (!origin) co_return fail(why, ENOENT, "no volume " + to_string(id));
    if (!valid_name(name)) co_return fail(why, EINVAL, "bad snapshot name '" + name + "'");
    if (find_name(name)) co_return fail(why, EEXIST, "volume '" + name + "' exists");
    if (failed) co_return fail(why, EIO, "pool metadata failed earlier; reopen the pool");
    // Point in time: every write acknowledged before this call is in the
    // snapshot, and no write still in flight can land in a shared cluster.
    co_await freeze(*origin);
    auto st = std::make_shared<volume_state>();
    volume_meta& m = st->meta;
    m = origin->meta;
    m.id = random_uuid();
    m.parent = id;
    m.name = name;
    m.flags =
        (origin->meta.flags & format::vol_thin) | format::vol_snapshot | format::vol_read_only;
    m.created_seq = store.seq() + 1;
    for (uint32_t p : m.map)
        if (p != unmapped) alloc.ref(p);
    vols.push_back(st);
    int rc = co_await commit();
    if (rc != 0) {
        vols.pop_back();
        for (uint32_t p : m.map)
            if (p != unmapped) alloc.unref(p);
        thaw(*origin);
        co_return fail(why, -rc, "snapshot '" + name + "': " + error{-rc}.message());
    }
    publish_all(*st);
    publish_all(*origin);  // its clusters are shared now: writes copy first
    thaw(*origin);
    co_return m.id;
}

task<result<uuid>> pool_engine::clone(uuid id, std::string name, std::string* why) {
    auto g = co_await lock.lock();
    auto snap = find(id);
    if (!snap) co_return fail(why, ENOENT, "no snapshot " + to_string(id));
    if (!snap->meta.snapshot())
        co_return fail(why, EINVAL, "'" + snap->meta.name + "' is not a snapshot");
    if (!valid_name(name)) co_return fail(why, EINVAL, "bad clone name '" + name + "'");
    if (find_name(name)) co_return fail(why, EEXIST, "volume '" + name + "' exists");
    if (failed) co_return fail(why, EIO, "pool metadata failed earlier; reopen the pool");
    auto st = std::make_shared<volume_state>();
    volume_meta& m = st->meta;
    m = snap->meta;
    m.id = random_uuid();
    m.parent = id;
    m.name = name;
    m.flags = format::vol_thin;  // a clone allocates on write, whatever its origin
    m.created_seq = store.seq() + 1;
    for (uint32_t p : m.map)
        if (p != unmapped) alloc.ref(p);
    vols.push_back(st);
    int rc = co_await commit();
    if (rc != 0) {
        vols.pop_back();
        for (uint32_t p : m.map)
            if (p != unmapped) alloc.unref(p);
        co_return fail(why, -rc, "clone '" + name + "': " + error{-rc}.message());
    }
    publish_all(*st);
    co_return m.id;
}

}  // namespace weft::pool
