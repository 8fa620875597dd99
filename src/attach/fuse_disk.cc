#include "attach/fuse_disk.h"

#define FUSE_USE_VERSION 34
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/falloc.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/abort.h"
#include "runtime/buffer_pool.h"
#include "runtime/foreign_call.h"
#include "runtime/uring_op.h"

namespace weft::attach {
namespace {

constexpr fuse_ino_t root_ino = FUSE_ROOT_ID;
constexpr fuse_ino_t disk_ino = 2;

fuse_disk* self_of(fuse_req_t req) {
    return static_cast<fuse_disk*>(fuse_req_userdata(req));
}

}  // namespace

// The request handlers libfuse calls (on the serving reactor): quick
// answers here, I/O as tasks that reply when it completes.
struct fuse_disk::ops {
    static struct stat attr_of(const fuse_disk& d, fuse_ino_t ino) {
        struct stat st {};
        st.st_ino = ino;
        st.st_uid = getuid();
        st.st_gid = getgid();
        if (ino == root_ino) {
            st.st_mode = S_IFDIR | 0755;
            st.st_nlink = 2;
        } else {
            st.st_mode = S_IFREG | 0600;
            st.st_nlink = 1;
            st.st_size = off_t(d.dev_.size_bytes());
            st.st_blksize = blksize_t(d.dev_.block_size());
            st.st_blocks = blkcnt_t(d.dev_.size_bytes() / 512);
        }
        return st;
    }

    static void init(void* ud, fuse_conn_info* conn) {
        auto* d = static_cast<fuse_disk*>(ud);
        conn->max_write = d->o_.max_io;
        conn->max_read = d->o_.max_io;
        conn->max_readahead = 0;  // direct I/O: nothing to read ahead into
        conn->max_background = d->o_.max_background;
        conn->congestion_threshold = d->o_.max_background * 3 / 4;
        // Every write reaches the bdev before it is acknowledged.
        conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
                        FUSE_CAP_SPLICE_MOVE);
        // Direct I/O from the loop device stays asynchronous (many in flight).
        if (conn->capable & FUSE_CAP_ASYNC_DIO) conn->want |= FUSE_CAP_ASYNC_DIO;
    }

    static void lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
        fuse_disk* d = self_of(req);
        if (parent != root_ino || d->o_.file_name != name) {
            fuse_reply_err(req, ENOENT);
            return;
        }
        fuse_entry_param e{};
        e.ino = disk_ino;
        e.attr = attr_of(*d, disk_ino);
        e.attr_timeout = 1.0;
        e.entry_timeout = 1.0;
        fuse_reply_entry(req, &e);
    }

    static void getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
        if (ino != root_ino && ino != disk_ino) {
            fuse_reply_err(req, ENOENT);
            return;
        }
        struct stat st = attr_of(*self_of(req), ino);
        fuse_reply_attr(req, &st, 1.0);
    }

    // Only what changes nothing: the size is the bdev's.
    static void setattr(fuse_req_t req, fuse_ino_t ino, struct stat* in, int to_set,
                        fuse_file_info*) {
        fuse_disk* d = self_of(req);
        if ((to_set & FUSE_SET_ATTR_SIZE) &&
            (ino != disk_ino || uint64_t(in->st_size) != d->dev_.size_bytes())) {
            fuse_reply_err(req, EPERM);
            return;
        }
        struct stat st = attr_of(*d, ino);
        fuse_reply_attr(req, &st, 1.0);
    }

    static void open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
        if (ino != disk_ino) {
            fuse_reply_err(req, EISDIR);
            return;
        }
        if ((fi->flags & O_ACCMODE) != O_RDONLY && self_of(req)->dev_.read_only()) {
            fuse_reply_err(req, EROFS);
            return;
        }
        fi->direct_io = 1;  // no page cache in FUSE: the loop device's is enough
        fi->keep_cache = 0;
        fuse_reply_open(req, fi);
    }

    static void read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info*) {
        fuse_disk* d = self_of(req);
        uint64_t end = d->dev_.size_bytes();
        if (off < 0) {
            fuse_reply_err(req, EINVAL);
            return;
        }
        if (uint64_t(off) >= end || size == 0) {
            fuse_reply_buf(req, nullptr, 0);
            return;
        }
        size = size_t(std::min<uint64_t>(size, end - uint64_t(off)));
        ++d->in_flight_;  // counted now: serve() waits for it even if it ends first
        reactor::local().spawn(d->read(req, uint64_t(off), size));
    }

    static void write(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off,
                      fuse_file_info*) {
        fuse_disk* d = self_of(req);
        uint64_t end = d->dev_.size_bytes();
        if (off < 0) {
            fuse_reply_err(req, EINVAL);
            return;
        }
        if (size == 0) {
            fuse_reply_write(req, 0);
            return;
        }
        if (uint64_t(off) >= end) {
            fuse_reply_err(req, ENOSPC);
            return;
        }
        size = size_t(std::min<uint64_t>(size, end - uint64_t(off)));
        // The request's buffer is libfuse's until this returns.
        buffer data = buffer_pool::local().get(size);
        std::memcpy(data.data(), buf, size);
        ++d->in_flight_;
        reactor::local().spawn(d->write(req, uint64_t(off), std::move(data), size));
    }

    static void flush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }
    static void release(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

    static void fsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) {
        ++self_of(req)->in_flight_;
        reactor::local().spawn(self_of(req)->flush(req));
    }

    static void fallocate(fuse_req_t req, fuse_ino_t, int mode, off_t off, off_t len,
                          fuse_file_info*) {
        if (off < 0 || len <= 0) {
            fuse_reply_err(req, EINVAL);
            return;
        }
        ++self_of(req)->in_flight_;
        reactor::local().spawn(self_of(req)->fallocate(req, mode, uint64_t(off), uint64_t(len)));
    }

    static void readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
        if (ino != root_ino) {
            fuse_reply_err(req, ENOTDIR);
            return;
        }
        fuse_disk* d = self_of(req);
        struct entry {
            const char* name;
            fuse_ino_t ino;
        };
        const entry entries[] = {
            {".", root_ino}, {"..", root_ino}, {d->o_.file_name.c_str(), disk_ino}};
        std::vector<char> buf(size);
        size_t used = 0;
        for (off_t i = off; i < off_t(std::size(entries)); ++i) {
            struct stat st = attr_of(*d, entries[i].ino);
            size_t n =
                fuse_add_direntry(req, buf.data() + used, size - used, entries[i].name, &st, i + 1);
            if (n > size - used) break;
            used += n;
        }
        fuse_reply_buf(req, buf.data(), used);
    }
};

fuse_disk::fuse_disk(bdev::bdev& dev, fuse_disk_options o) : dev_(dev), o_(std::move(o)) {}

result<std::unique_ptr<fuse_disk>> fuse_disk::mount(bdev::bdev& dev, fuse_disk_options o) {
    struct stat st {};
    if (::stat(o.mountpoint.c_str(), &st) != 0) return error{errno};
    if (!S_ISDIR(st.st_mode)) return error{ENOTDIR};
    std::unique_ptr<fuse_disk> d(new fuse_disk(dev, std::move(o)));
    static const fuse_lowlevel_ops ops = [] {
        fuse_lowlevel_ops x{};
        x.init = &ops::init;
        x.lookup = &ops::lookup;
        x.getattr = &ops::getattr;
        x.setattr = &ops::setattr;
        x.open = &ops::open;
        x.read = &ops::read;
        x.write = &ops::write;
        x.flush = &ops::flush;
        x.release = &ops::release;
        x.fsync = &ops::fsync;
        x.readdir = &ops::readdir;
        x.fallocate = &ops::fallocate;
        return x;
    }();
    std::string max_read = fmt::format("max_read={}", d->o_.max_io);
    std::string fsname = "fsname=weft," + max_read;
    const char* argv[] = {"weft-attach", "-o", fsname.c_str()};
    fuse_args args = FUSE_ARGS_INIT(3, const_cast<char**>(argv));
    d->se_ = fuse_session_new(&args, &ops, sizeof(ops), d.get());
    fuse_opt_free_args(&args);
    if (!d->se_) return error{EIO};
    if (fuse_session_mount(d->se_, d->o_.mountpoint.c_str()) != 0) {
        fuse_session_destroy(d->se_);
        d->se_ = nullptr;
        return error{geteuid() == 0 ? EIO : EPERM};
    }
    int fd = fuse_session_fd(d->se_);
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    d->ch_ = dev.open_channel();
    // A grown bdev is a larger file: the kernel's cached attributes go
    // (offset -1: attributes only, no page to drop).
    fuse_session* se = d->se_;
    d->resize_listener_ = dev.add_resize_listener(
        [se](uint64_t, uint64_t) { fuse_lowlevel_notify_inval_inode(se, disk_ino, -1, 0); });
    return d;
}

fuse_disk::~fuse_disk() {
    dev_.remove_resize_listener(resize_listener_);
    if (se_) {
        fuse_session_unmount(se_);
        fuse_session_destroy(se_);
    }
}

task<void> fuse_disk::serve() {
    int fd = fuse_session_fd(se_);
    fuse_buf buf{};
    abort_source stop;
    stop_ = &stop;
    serving_ = true;
    for (;;) {
        int ev = co_await make_op([fd](io_uring_sqe* s) {
                     io_uring_prep_poll_add(s, fd, POLLIN);
                 }).abort_with(stop);
        if (ev == -EINTR) continue;
        if (ev < 0) break;  // cancelled by unmount()
        bool gone = false;
        for (;;) {
            int n = fuse_session_receive_buf(se_, &buf);
            if (n == -EAGAIN) break;
            if (n == -EINTR) continue;
            if (n <= 0 || fuse_session_exited(se_)) {  // unmounted from outside
                gone = true;
                break;
            }
            fuse_session_process_buf(se_, &buf);
        }
        if (gone || (ev & (POLLERR | POLLHUP))) break;
    }
    stop_ = nullptr;
    free(buf.mem);
    while (in_flight_) co_await sleep(std::chrono::milliseconds(1));
    serving_ = false;
}

task<void> fuse_disk::unmount() {
    if (stop_) stop_->request_abort();
    while (serving_) co_await sleep(std::chrono::milliseconds(1));
    // Off the reactor: unmounting may wait on the file system.
    fuse_session* se = se_;
    co_await in_thread([se] { fuse_session_unmount(se); });
}

task<int> fuse_disk::read_blocks(uint64_t first, uint64_t count, std::byte* into) {
    iovec iov{into, size_t(count * dev_.block_size())};
    co_return co_await ch_->read(first, uint32_t(count), {&iov, 1});
}

task<int> fuse_disk::write_blocks(uint64_t first, uint64_t count, std::byte* from) {
    iovec iov{from, size_t(count * dev_.block_size())};
    co_return co_await ch_->write(first, uint32_t(count), {&iov, 1}, false);
}

task<void> fuse_disk::read(void* r, uint64_t off, size_t len) {
    auto* req = static_cast<fuse_req_t>(r);
    uint64_t bs = dev_.block_size();
    uint64_t first = off / bs, last = (off + len + bs - 1) / bs;
    buffer buf = buffer_pool::local().get((last - first) * bs);
    int rc = co_await read_blocks(first, last - first, buf.data());
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_buf(req, reinterpret_cast<const char*>(buf.data()) + (off - first * bs), len);
    --in_flight_;
}

task<void> fuse_disk::write(void* r, uint64_t off, buffer data, size_t len) {
    auto* req = static_cast<fuse_req_t>(r);
    uint64_t bs = dev_.block_size();
    int rc = 0;
    if (off % bs == 0 && len % bs == 0) {
        rc = co_await write_blocks(off / bs, len / bs, data.data());
    } else {
        // Not on block boundaries: read the blocks it touches, patch them,
        // write them back; one at a time, or two that share a block would
        // each write back the other's old bytes.
        while (rmw_busy_) co_await sleep(std::chrono::microseconds(50));
        rmw_busy_ = true;
        uint64_t first = off / bs, last = (off + len + bs - 1) / bs;
        buffer blocks = buffer_pool::local().get((last - first) * bs);
        rc = co_await read_blocks(first, last - first, blocks.data());
        if (rc >= 0) {
            std::memcpy(blocks.data() + (off - first * bs), data.data(), len);
            rc = co_await write_blocks(first, last - first, blocks.data());
        }
        rmw_busy_ = false;
    }
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_write(req, len);
    --in_flight_;
}

task<void> fuse_disk::flush(void* r) {
    auto* req = static_cast<fuse_req_t>(r);
    int rc = co_await ch_->flush();
    fuse_reply_err(req, rc < 0 ? -rc : 0);
    --in_flight_;
}

task<void> fuse_disk::fallocate(void* r, int mode, uint64_t off, uint64_t len) {
    auto* req = static_cast<fuse_req_t>(r);
    uint64_t bs = dev_.block_size(), size = dev_.size_bytes();
    int rc = 0;
    int range = mode & ~FALLOC_FL_KEEP_SIZE;
    if (off + len > size) {
        rc = mode & FALLOC_FL_KEEP_SIZE ? 0 : -EFBIG;  // the file cannot grow
        len = off < size ? size - off : 0;
    }
    if (rc == 0 && len && range != 0) {
        if (range != FALLOC_FL_PUNCH_HOLE && range != FALLOC_FL_ZERO_RANGE)
            rc = -EOPNOTSUPP;
        else if (off % bs || len % bs)
            rc = -EINVAL;  // a loop device sends whole blocks
        else if (range == FALLOC_FL_PUNCH_HOLE && dev_.unmap_reads_zeroes())
            rc = co_await ch_->unmap(off / bs, len / bs);
        else
            rc = co_await ch_->write_zeroes(off / bs, len / bs);
    }
    fuse_reply_err(req, rc < 0 ? -rc : 0);
    --in_flight_;
}

}  // namespace weft::attach
