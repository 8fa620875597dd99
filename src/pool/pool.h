// A pool: one bdev carved into clusters, holding thin and thick volumes,
// snapshots and clones, with crash-safe metadata (docs/pool-format.md).
//
//   auto p = co_await pool::pool::create(dev, "pool0", {.cluster_size = 1 << 20});
//   auto id = co_await p.value()->create_volume("vol", 1 << 30, /*thin=*/true);
//   auto vol = p.value()->open_volume(id.value()).value();   // a bdev::bdev
//   auto ch = vol->open_channel();   // on any reactor
//
// Threading: the pool's metadata and allocator live on its home reactor, the
// one that called create() or open(). Management calls may come from any
// reactor (they hop to home); open_volume() and the pool's destruction must
// happen on home. Volume I/O runs on the caller's reactor while the clusters
// it touches are mapped and not shared; a first write, a copy-on-write, an
// unmap of whole clusters, or I/O while a management call has the volume
// frozen, goes to home and is serialised there by one lock.
//
// Errors are errnos, with a sentence in the `why` out-parameter and the log:
//   ENODATA no pool on the device      EUCLEAN corrupt superblock or metadata
//   EEXIST  device holds a pool / name in use   ENOENT no such volume
//   ENOSPC  no free cluster, or the metadata area is full
//   ENOTEMPTY shrink would drop allocated clusters
//   EBUSY   deleting a snapshot that has clones   EROFS snapshot or read-only
//   EIO     a metadata write failed earlier: the pool refuses further changes
//           until it is opened again (the outcome of that commit is unknown).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bdev/bdev.h"
#include "pool/codec.h"
#include "pool/uuid.h"
#include "runtime/result.h"
#include "runtime/task.h"

namespace weft::pool {

struct create_options {
    uint64_t cluster_size = format::default_cluster_size;  // power of 2, 4 KiB .. 1 GiB
    // Bytes per metadata area; 0 sizes it for the pool (see pool-format.md).
    uint64_t md_area_bytes = 0;
    // Overwrite a device that already holds a pool.
    bool force = false;
};

struct volume_info {
    uuid id{};
    std::string name;
    uint64_t size_bytes = 0;       // logical
    uint64_t allocated_bytes = 0;  // mapped clusters (shared ones counted in each)
    bool thin = false;
    bool read_only = false;
    bool snapshot = false;
    std::optional<uuid> parent;  // snapshot: origin; clone: its snapshot
};

struct pool_stats {
    uint64_t cluster_size = 0;
    uint64_t total_clusters = 0;
    uint64_t used_clusters = 0;    // allocated (each shared cluster once)
    uint64_t committed_bytes = 0;  // sum of the volumes' logical sizes
    uint64_t metadata_seq = 0;     // last committed sequence number
};

struct volume_state;
class volume_bdev;
class pool_engine;

class pool : public std::enable_shared_from_this<pool> {
  public:
    // Formats `dev` (block size <= 4096). EEXIST when it holds a pool's
    // superblock (even a corrupt one) unless opt.force.
    static task<result<std::shared_ptr<pool>>> create(std::shared_ptr<bdev::bdev> dev,
                                                      std::string name, create_options opt = {},
                                                      std::string* why = nullptr);
    // Imports the pool on `dev` with all its volumes. A metadata area that
    // fails its checksum while the other is good is repaired (logged, and in
    // `why`); a bad superblock or two bad areas refuse the pool (EUCLEAN).
    static task<result<std::shared_ptr<pool>>> open(std::shared_ptr<bdev::bdev> dev,
                                                    std::string* why = nullptr);

    ~pool();
    pool(const pool&) = delete;
    pool& operator=(const pool&) = delete;

    const geometry& geo() const;
    unsigned home() const { return home_; }
    const std::shared_ptr<bdev::bdev>& device() const { return dev_; }

    task<result<uuid>> create_volume(std::string name, uint64_t size_bytes, bool thin,
                                     std::string* why = nullptr);
    // EBUSY when clones of it exist (delete them first). purge: the clusters
    // it alone holds are zeroed on the device (deallocated, for a file)
    // before the delete commits; those a snapshot or clone shares stay
    // theirs. A purge that fails leaves the volume (partly zeroed) in the
    // pool, said so: a crash or an error never frees its data unpurged.
    task<result<void>> delete_volume(uuid id, std::string* why = nullptr, bool purge = false);
    // From now on, every delete purges, and so does every unmap of a thin
    // volume's clusters (zeroed before the map drops them). Any thread.
    void set_purge(bool on);
    // Grows, or shrinks when no cluster wholly past the new end is mapped.
    task<result<void>> resize_volume(uuid id, uint64_t size_bytes, std::string* why = nullptr);
    // A read-only point-in-time copy of `id`, taken while I/O continues.
    task<result<uuid>> snapshot(uuid id, std::string name, std::string* why = nullptr);
    // A writable thin volume starting as `snapshot_id`'s contents.
    task<result<uuid>> clone(uuid snapshot_id, std::string name, std::string* why = nullptr);
    task<std::vector<volume_info>> list();
    task<pool_stats> stats();
    // requires: on home. ENOENT for an unknown volume.
    result<std::shared_ptr<bdev::bdev>> open_volume(uuid id);
    std::optional<uuid> find(const std::string& name) const;  // requires: on home

  private:
    friend class volume_bdev;
    friend class volume_channel;
    pool(std::shared_ptr<bdev::bdev> dev, unsigned home);

    std::shared_ptr<bdev::bdev> dev_;
    unsigned home_;
    std::unique_ptr<pool_engine> eng_;
};

}  // namespace weft::pool
