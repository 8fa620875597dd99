// Block devices (bdev): one async interface for everything that stores
// blocks, in the manner of SPDK's bdev layer.
//
// A bdev is shared by every reactor; I/O goes through a channel, which one
// reactor opens for itself and uses alone (the uring backend keeps its own fd
// per channel, so each reactor's ring carries that reactor's I/O).
//
//   auto dev = bdev::make_malloc_bdev("m0", 1 << 20, 512);
//   auto ch = dev->open_channel();                  // on the reactor that uses it
//   int rc = co_await ch->write(lba, n, iov, /*fua=*/false);   // 0 or -errno
//
// Lifetimes: a bdev outlives every channel opened on it; a channel is
// destroyed on its own reactor and with no I/O in flight.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "runtime/result.h"
#include "runtime/task.h"

namespace weft::bdev {

// I/O results are 0 or -errno: -EIO media error, -EINVAL bad argument (iovecs
// that do not hold exactly nblocks * block_size bytes, a null iov_base),
// -ERANGE lba + nblocks beyond num_blocks(), -ENOSPC no space left in the
// backing store, -EROFS write to a read-only bdev, -EACCES a reservation
// held by another host (a fenced remote disk), -ESTALE a mirror another one
// has superseded (use another path). A backend may pass other errnos from
// the kernel through. nblocks == 0 is a successful no-op (when lba
// is in range).
class channel {
  public:
    virtual ~channel() = default;

    // requires: `iov` (the array and the memory it points at) lives until the
    // call completes. Buffers from buffer_pool avoid any copy; others are
    // accepted too (the uring backend bounces them through aligned memory).
    virtual task<int> read(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov) = 0;
    // fua: the data is on stable media when the write completes.
    virtual task<int> write(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov,
                            bool fua) = 0;
    // Every write completed before the call is on stable media when it ends.
    virtual task<int> flush() = 0;
    virtual task<int> write_zeroes(uint64_t lba, uint64_t nblocks) = 0;
    // Deallocates; later reads return zeroes when bdev::unmap_reads_zeroes().
    virtual task<int> unmap(uint64_t lba, uint64_t nblocks) = 0;

    // Which blocks of [lba, lba + nblocks) may hold data, for copies that
    // skip what a thin backend never wrote: `runs` gets the allocated runs in
    // order ({lba, nblocks}, possibly rounded out to the backend's
    // allocation unit and clipped to the range); the blocks outside them
    // read as zeroes. -ENOTSUP (the default) when the backend cannot tell.
    struct block_run {
        uint64_t lba;
        uint64_t nblocks;
    };
    virtual task<int> allocated(uint64_t lba, uint64_t nblocks, std::vector<block_run>* runs) {
        (void)lba, (void)nblocks, (void)runs;
        co_return -ENOTSUP;
    }
};

// Called after a size change, on the thread that called resize().
using resize_listener = std::function<void(uint64_t old_num_blocks, uint64_t new_num_blocks)>;

class bdev {
  public:
    virtual ~bdev() = default;
    bdev(const bdev&) = delete;
    bdev& operator=(const bdev&) = delete;

    const std::string& name() const { return name_; }
    uint32_t block_size() const { return block_size_; }  // 512 or 4096 (or another power of 2)
    // Changes with resize(); safe to read from any reactor.
    uint64_t num_blocks() const { return num_blocks_.load(std::memory_order_acquire); }
    uint64_t size_bytes() const { return num_blocks() * block_size_; }
    // Writes may sit in a volatile cache until flush() (NVMe VWC).
    bool volatile_write_cache() const { return volatile_write_cache_; }
    // After unmap(), reads of those blocks return zeroes (NVMe DLFEAT).
    bool unmap_reads_zeroes() const { return unmap_reads_zeroes_; }
    // Writes, write_zeroes and unmap fail with -EROFS.
    bool read_only() const { return read_only_; }

    // requires: called on the reactor that will use the channel.
    virtual std::unique_ptr<channel> open_channel() = 0;

    // Grows or shrinks the bdev while channels are in use (on any reactor).
    // Fails with ENOTSUP when the backend cannot, EROFS when read-only,
    // EINVAL for 0 blocks, ENOSPC beyond what the backend can hold. Resizes
    // are serialised. I/O that passed its bounds check before a shrink may
    // still complete on the removed blocks: never unsafe, but what it wrote
    // there is not kept (a file may keep bytes past its new end).
    // Synchronous (setup-time call): do not call it on a busy reactor.
    virtual result<void> resize(uint64_t new_num_blocks) = 0;

    // Listeners run in registration order with the resize lock held: they
    // must not call resize() or add/remove listeners. Returns an id.
    uint64_t add_resize_listener(resize_listener fn);
    void remove_resize_listener(uint64_t id);

    // 0, -ERANGE or -EINVAL for an I/O of `nblocks` at `lba` (and iovecs, for
    // read/write), checked against the current size. Backends call these.
    int check_range(uint64_t lba, uint64_t nblocks) const;
    int check_io(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov) const;

    // What a backend passes to the constructor.
    struct properties {
        std::string name;
        uint32_t block_size = 512;
        uint64_t num_blocks = 0;
        bool volatile_write_cache = false;
        bool unmap_reads_zeroes = true;
        bool read_only = false;
    };

  protected:
    explicit bdev(properties p);

    // For resize(): under the resize lock, runs `change(old, new)` (the
    // backend's storage change, returning result<void>); on success publishes
    // the new size and calls the listeners.
    template <typename F>
    result<void> apply_resize(uint64_t new_num_blocks, F change) {
        if (new_num_blocks == 0 || new_num_blocks > UINT64_MAX / block_size_) return error{EINVAL};
        if (read_only_) return error{EROFS};
        std::lock_guard lock(resize_mutex_);
        uint64_t old = num_blocks();
        if (old == new_num_blocks) return {};
        result<void> r = change(old, new_num_blocks);
        if (!r) return r;
        num_blocks_.store(new_num_blocks, std::memory_order_release);
        for (auto& l : listeners_) l.fn(old, new_num_blocks);
        return {};
    }

  private:
    struct listener {
        uint64_t id;
        resize_listener fn;
    };

    std::string name_;
    uint32_t block_size_;
    std::atomic<uint64_t> num_blocks_;
    bool volatile_write_cache_;
    bool unmap_reads_zeroes_;
    bool read_only_;
    std::mutex resize_mutex_;  // serialises resizes and guards listeners_
    std::vector<listener> listeners_;
    uint64_t next_listener_id_ = 1;
};

// A layer over another bdev (stats/, error/): the same block size, size,
// cache and deallocation behaviour, following the inner bdev's resizes.
class wrapper_bdev : public bdev {
  public:
    explicit wrapper_bdev(std::shared_ptr<bdev> inner);
    ~wrapper_bdev() override;
    // The inner bdev's listener publishes the new size here.
    result<void> resize(uint64_t new_num_blocks) override { return inner_->resize(new_num_blocks); }

  protected:
    const std::shared_ptr<bdev>& inner() const { return inner_; }

  private:
    std::shared_ptr<bdev> inner_;
    uint64_t listener_ = 0;
};

// RAM. Data is shared by every channel; concurrent I/O to different blocks
// from several reactors is safe, and so is resize() while I/O runs (the
// memory is one reserved address range that never moves; see malloc/).
// Returns nullptr for a block size that is not a power of 2 in [512, 64 KiB],
// 0 blocks, or memory that cannot be reserved.
std::unique_ptr<bdev> make_malloc_bdev(std::string name, uint64_t num_blocks, uint32_t block_size);
// As above, with room to grow up to `max_num_blocks` (by default the larger
// of 4x the size and 64 GiB of address space, reserved but not committed).
std::unique_ptr<bdev> make_malloc_bdev(std::string name, uint64_t num_blocks, uint32_t block_size,
                                       uint64_t max_num_blocks);

// Discards writes; reads return zeroes. For throughput tests.
std::unique_ptr<bdev> make_null_bdev(std::string name, uint64_t num_blocks, uint32_t block_size);

struct uring_options {
    // Create a regular file of `create_bytes` when `path` does not exist.
    bool create = false;
    uint64_t create_bytes = 0;
    // 0: 512 for files (or the file system's direct-I/O alignment when it is
    // larger), the device's logical block size for block devices.
    uint32_t block_size = 0;
    bool direct = true;  // O_DIRECT: no page cache
    // Every write is durable when it completes (RWF_DSYNC), so
    // volatile_write_cache() is false. Otherwise it is true even with O_DIRECT:
    // the drive's cache and the file system's block allocations need a flush.
    bool dsync = false;
    bool read_only = false;
};

// A file or a block device through each reactor's io_uring. Each channel
// opens its own fd on the same file. The size is the file's (or device's)
// size rounded down to whole blocks; an empty file is refused (EINVAL).
result<std::unique_ptr<bdev>> open_uring_bdev(std::string name, const std::string& path,
                                              uring_options opt = {});

}  // namespace weft::bdev
