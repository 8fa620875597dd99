// A bdev served to the kernel as one file in a FUSE mount, so that a loop
// device over that file is a real block device (mkfs, mount) on a host whose
// kernel has no NVMe/TCP: userspace attach.
//
//   auto d = fuse_disk::mount(*nvmf_bdev, {.mountpoint = "/run/weft/attach/v1/mnt"});
//   reactor::local().spawn(d.value()->serve());   // requests until unmount
//   ... losetup over "<mountpoint>/disk" (loop_device.h) ...
//   co_await d.value()->unmount();                // off the reactor; serve() returns
//
// The FUSE channel runs on the reactor that mounted it: the reactor polls
// /dev/fuse, libfuse decodes each request there, and each read, write,
// fsync or fallocate becomes a task on the bdev's channel that replies when
// its I/O completes, so many requests are in flight at once. The file is
// opened in FUSE's direct-I/O mode (no page cache in FUSE, no write-back
// cache): a write is acknowledged only once the bdev has it, and fsync is
// the bdev's flush. Reads and writes not on block boundaries are served
// through a bounce (a write: read, patch, write back; such writes run one
// at a time). The loop device's I/O is always on block boundaries.
// A resize of the bdev changes the file's size (the kernel's attributes are
// invalidated); the loop device above it learns it from LOOP_SET_CAPACITY.
//
// Requires: the bdev outlives the fuse_disk; mount(), serve() and the
// destructor run on one reactor. Mounting needs CAP_SYS_ADMIN (root).
#pragma once

#include <memory>
#include <string>

#include "bdev/bdev.h"
#include "runtime/abort.h"
#include "runtime/buffer_pool.h"
#include "runtime/result.h"
#include "runtime/task.h"

struct fuse_session;

namespace weft::attach {

struct fuse_disk_options {
    std::string mountpoint;  // an existing empty directory
    std::string file_name = "disk";
    uint32_t max_io = 128 * 1024;   // the largest request FUSE sends (max_read, max_write)
    unsigned max_background = 128;  // requests the kernel keeps in flight
};

class fuse_disk {
  public:
    // Mounts (the mount is visible when it returns). ENOTDIR / ENOENT for a
    // bad mountpoint, EPERM without privilege, EIO when libfuse refuses.
    static result<std::unique_ptr<fuse_disk>> mount(bdev::bdev& dev, fuse_disk_options o);
    ~fuse_disk();
    fuse_disk(const fuse_disk&) = delete;
    fuse_disk& operator=(const fuse_disk&) = delete;

    // Serves requests until the file system is unmounted (by unmount() or
    // from outside: umount, fusermount3 -u). Waits for the I/O in flight.
    task<void> serve();
    // Unmounts, off the reactor (the kernel may ask this reactor for the
    // requests still queued); serve() then returns.
    task<void> unmount();

    std::string file_path() const { return o_.mountpoint + "/" + o_.file_name; }

  private:
    struct ops;
    friend struct ops;
    fuse_disk(bdev::bdev& dev, fuse_disk_options o);
    task<void> read(void* req, uint64_t off, size_t len);
    task<void> write(void* req, uint64_t off, buffer data, size_t len);
    task<void> flush(void* req);
    task<void> fallocate(void* req, int mode, uint64_t off, uint64_t len);
    task<int> read_blocks(uint64_t first, uint64_t count, std::byte* into);
    task<int> write_blocks(uint64_t first, uint64_t count, std::byte* from);

    bdev::bdev& dev_;
    fuse_disk_options o_;
    fuse_session* se_ = nullptr;
    std::unique_ptr<bdev::channel> ch_;
    uint64_t resize_listener_ = 0;
    size_t in_flight_ = 0;          // requests handed to tasks and not answered yet
    bool rmw_busy_ = false;         // an unaligned write's read-patch-write is running
    abort_source* stop_ = nullptr;  // serve()'s, while it runs
    bool serving_ = false;
};

}  // namespace weft::attach
