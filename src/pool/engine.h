// The home-reactor side of a pool: the allocator, the metadata store, the
// volume table, the lock that serialises metadata changes, and the slow I/O
// paths (first write, copy-on-write, unmap of whole clusters).
//
// Everything here runs on the pool's home reactor, one coroutine at a time
// for any change (under `lock`).
#pragma once

#include <atomic>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "pool/allocator.h"
#include "pool/async_lock.h"
#include "pool/metadata_store.h"
#include "pool/pool.h"
#include "pool/volume.h"

namespace weft::pool {

class pool_engine {
  public:
    pool_engine(bdev::bdev& dev, geometry g, std::unique_ptr<bdev::channel> ch)
        : dev(dev), store(dev, g), alloc(g.cluster_count), ch(std::move(ch)) {}

    const geometry& geo() const { return store.geo(); }
    uint64_t cluster_size() const { return geo().cluster_size; }
    // The device LBA of byte `off` of physical cluster `p`.
    uint64_t lba_of(uint32_t p, uint64_t off) const {
        return (geo().data_offset + uint64_t(p) * cluster_size() + off) / dev.block_size();
    }

    // Loads committed volumes (pool::open): builds states and references.
    void adopt(pool_meta m);
    std::shared_ptr<volume_state> find(const uuid& id) const;
    std::shared_ptr<volume_state> find_name(const std::string& name) const;

    // Commits the whole volume table. After an I/O error, `failed` is set and
    // every later commit fails with -EIO (the disk may hold either state).
    task<int> commit();

    // Publishes entry l (or every entry, in a new array when the length
    // changed) of st.meta.map to the map that I/O reads.
    void publish(volume_state& st, uint64_t l);
    void publish_all(volume_state& st);
    // Stops fast-path I/O on `st` and waits for what is in flight.
    task<void> freeze(volume_state& st);
    void thaw(volume_state& st) { st.frozen.store(false); }

    // The slow paths, each taking the lock. `iov` empty on a write means zeroes.
    enum class io_kind { read, write };
    task<int> slow_io(volume_state& st, io_kind k, uint64_t l, uint64_t off, uint64_t len,
                      std::span<const iovec> iov, bool fua);
    // Deallocates logical clusters [l0, l1) (thick volumes: zeroes them).
    task<int> unmap_clusters(volume_state& st, uint64_t l0, uint64_t l1);
    // With the lock held: unmaps `dropped` ({logical, physical}) in one
    // commit, purging them first when `purge`.
    task<int> drop_clusters(volume_state& st,
                            std::span<const std::pair<uint64_t, uint32_t>> dropped, bool purge);
    // A cluster allocated for a write that did not commit goes back (zeroed
    // first in a purging pool).
    task<void> drop_unused(uint32_t q);

    // With the lock held: makes cluster l of `st` writable (allocating or
    // copying as needed) and writes `len` bytes at `off` (zeroes if iov empty).
    task<int> write_cluster(volume_state& st, uint64_t l, uint64_t off, uint64_t len,
                            std::span<const iovec> iov, bool fua);
    // Zeroes [off, off + len) of physical clusters; runs of clusters at once.
    task<int> zero_physical(uint32_t p, uint64_t off, uint64_t len);
    // With the lock held: zeroes (and flushes) the clusters of `physical`
    // that nothing else references; *zeroed counts them.
    task<int> purge_clusters(std::span<const uint32_t> physical, uint64_t* zeroed);

    // Management, each with the lock taken inside (manage.cc).
    task<result<uuid>> create_volume(std::string name, uint64_t size, bool thin, std::string* why);
    task<result<void>> delete_volume(uuid id, std::string* why, bool purge);
    task<result<void>> resize_volume(uuid id, uint64_t size, std::string* why);
    task<result<uuid>> snapshot(uuid id, std::string name, std::string* why);
    task<result<uuid>> clone(uuid id, std::string name, std::string* why);
    volume_info info(const volume_state& st) const;

    bdev::bdev& dev;
    metadata_store store;
    cluster_allocator alloc;
    std::unique_ptr<bdev::channel> ch;  // on home
    async_lock lock;
    bool failed = false;
    // Every cluster freed (deleted or unmapped) is zeroed first (pool::set_purge).
    std::atomic<bool> purge_frees{false};
    std::vector<std::shared_ptr<volume_state>> vols;
};

}  // namespace weft::pool
