// The uring bdev's I/O path: one fd per channel, every operation an SQE on
// the calling reactor's ring.
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "bdev/iov.h"
#include "bdev/uring/uring_bdev.h"
#include "runtime/buffer_pool.h"

namespace weft::bdev::uring {
namespace {

// Bounce buffers and zero buffers are at most this big; larger I/O loops.
constexpr size_t staging_bytes = 1u << 20;
// A transient -EINTR/-EAGAIN is retried this many times before -EIO.
constexpr int max_retries = 8;

bool unsupported(int rc) {
    return rc == -EOPNOTSUPP || rc == -EINVAL || rc == -ENOSYS;
}

auto fallocate_op(int fd, int mode, uint64_t off, uint64_t len) {
    return make_op(
        [=](io_uring_sqe* s) { io_uring_prep_fallocate(s, fd, mode, off_t(off), off_t(len)); });
}

class uring_channel final : public channel {
  public:
    uring_channel(uring_bdev* dev, file f) : dev_(dev), f_(std::move(f)) {}

    task<int> read(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov) override {
        if (int rc = dev_->check_io(lba, nblocks, iov); rc != 0) co_return rc;
        co_return co_await transfer(false, lba, nblocks, iov, 0);
    }

    task<int> write(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov, bool fua) override {
        if (int rc = dev_->check_io(lba, nblocks, iov); rc != 0) co_return rc;
        if (dev_->read_only()) co_return -EROFS;
        // FUA as a per-write O_DSYNC: the kernel writes through, then flushes
        // the device cache (or sets FUA on the bio) for this write alone.
        int flags = (fua || dev_->config().dsync) ? RWF_DSYNC : 0;
        co_return co_await transfer(true, lba, nblocks, iov, flags);
    }

    task<int> flush() override { co_return co_await f_.fsync(/*datasync=*/true); }

    task<int> write_zeroes(uint64_t lba, uint64_t nblocks) override {
        if (int rc = dev_->check_range(lba, nblocks); rc != 0) co_return rc;
        if (dev_->read_only()) co_return -EROFS;
        if (nblocks == 0) co_return 0;
        uint64_t off = lba * dev_->block_size();
        uint64_t len = nblocks * dev_->block_size();
        if (!dev_->no_zero_range.load(std::memory_order_relaxed)) {
            int rc = co_await fallocate_op(f_.fd(), FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off,
                                           len);
            if (!unsupported(rc)) co_return rc;
            dev_->no_zero_range.store(true, std::memory_order_relaxed);
        }
        co_return co_await write_zero_buffers(off, len);
    }

    task<int> unmap(uint64_t lba, uint64_t nblocks) override {
        if (int rc = dev_->check_range(lba, nblocks); rc != 0) co_return rc;
        if (dev_->read_only()) co_return -EROFS;
        if (nblocks == 0) co_return 0;
        uint64_t off = lba * dev_->block_size();
        uint64_t len = nblocks * dev_->block_size();
        // On a file a punched hole reads as zeroes; on a block device this
        // mode is "zero by unmapping", which the device may not offer.
        if (!dev_->no_punch_hole.load(std::memory_order_relaxed)) {
            int rc = co_await fallocate_op(f_.fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
                                           len);
            if (!unsupported(rc)) co_return rc;
            dev_->no_punch_hole.store(true, std::memory_order_relaxed);
        }
        if (!dev_->config().block_device) {
            // unmap_reads_zeroes() is promised for files: keep it.
            co_return co_await write_zeroes(lba, nblocks);
        }
        // A plain discard. The ioctl blocks this reactor while the device
        // works (liburing 2.3 has no async discard); deallocation is only a
        // hint, so a device without discard still succeeds.
        uint64_t range[2] = {off, len};
        if (ioctl(f_.fd(), BLKDISCARD, range) != 0 && errno != EOPNOTSUPP) co_return -errno;
        co_return 0;
    }

  private:
    // Direct I/O with a misaligned iovec goes through aligned memory.
    task<int> transfer(bool write, uint64_t lba, uint32_t nblocks, std::span<const iovec> iov,
                       int flags) {
        if (nblocks == 0) co_return 0;
        uint64_t off = lba * dev_->block_size();
        uint64_t bytes = uint64_t(nblocks) * dev_->block_size();
        const auto& cfg = dev_->config();
        if (cfg.direct && !aligned(iov, cfg.mem_align, cfg.len_align))
            co_return co_await bounce(write, off, iov, bytes, flags);
        co_return co_await rw(write, off, iov, bytes, flags);
    }

    static bool aligned(std::span<const iovec> iov, uint64_t mem_align, uint64_t len_align) {
        for (const iovec& v : iov) {
            if ((reinterpret_cast<uintptr_t>(v.iov_base) & (mem_align - 1)) != 0 ||
                v.iov_len % len_align != 0)
                return false;
        }
        return true;
    }

    // readv/writev of `bytes` at `off`, resubmitting the rest after a short
    // transfer; more than IOV_MAX iovecs go in several submissions.
    task<int> rw(bool write, uint64_t off, std::span<const iovec> iov, uint64_t bytes, int flags) {
        iov_cursor cur{iov};
        std::vector<iovec> rest;  // the unsent part, only when the first try is short
        uint64_t done = 0;
        int retries = 0;
        while (done < bytes) {
            std::span<const iovec> now = iov;
            if (done != 0 || iov.size() > IOV_MAX) {
                rest.clear();
                cur.skip_empty();
                for (size_t i = cur.index; i < iov.size() && rest.size() < IOV_MAX; ++i) {
                    size_t skip = i == cur.index ? cur.offset : 0;
                    rest.push_back(
                        {static_cast<std::byte*>(iov[i].iov_base) + skip, iov[i].iov_len - skip});
                }
                now = rest;
            }
            int n = write ? co_await f_.writev(off + done, now, flags)
                          : co_await f_.readv(off + done, now);
            if ((n == -EINTR || n == -EAGAIN) && ++retries < max_retries) continue;
            if (n < 0) co_return n;
            // Nothing moved: the file shrank under us (reads at its end give 0).
            if (n == 0) co_return -EIO;
            done += uint64_t(n);
            cur.advance(uint64_t(n));
        }
        co_return 0;
    }

    task<int> bounce(bool write, uint64_t off, std::span<const iovec> iov, uint64_t bytes,
                     int flags) {
        buffer b = buffer_pool::local().get(std::min<uint64_t>(bytes, staging_bytes));
        iov_cursor cur{iov};
        for (uint64_t done = 0; done < bytes;) {
            size_t step = std::min<uint64_t>(bytes - done, b.size());
            iovec v{b.data(), step};
            if (write) cur.gather(b.data(), step);
            int rc = co_await rw(write, off + done, {&v, 1}, step, flags);
            if (rc != 0) co_return rc;
            if (!write) cur.scatter(b.data(), step);
            done += step;
        }
        co_return 0;
    }

    task<int> write_zero_buffers(uint64_t off, uint64_t len) {
        buffer b = buffer_pool::local().get(std::min<uint64_t>(len, staging_bytes));
        std::memset(b.data(), 0, b.size());
        for (uint64_t done = 0; done < len;) {
            size_t step = std::min<uint64_t>(len - done, b.size());
            iovec v{b.data(), step};
            int rc = co_await rw(true, off + done, {&v, 1}, step, 0);
            if (rc != 0) co_return rc;
            done += step;
        }
        co_return 0;
    }

    uring_bdev* dev_;
    file f_;
};

class failed_channel final : public channel {
  public:
    explicit failed_channel(int err) : rc_(-err) {}
    task<int> read(uint64_t, uint32_t, std::span<const iovec>) override { co_return rc_; }
    task<int> write(uint64_t, uint32_t, std::span<const iovec>, bool) override { co_return rc_; }
    task<int> flush() override { co_return rc_; }
    task<int> write_zeroes(uint64_t, uint64_t) override { co_return rc_; }
    task<int> unmap(uint64_t, uint64_t) override { co_return rc_; }

  private:
    int rc_;
};

}  // namespace

std::unique_ptr<channel> make_failed_channel(int err) {
    return std::make_unique<failed_channel>(err);
}

std::unique_ptr<channel> make_uring_channel(uring_bdev* dev, file f) {
    return std::make_unique<uring_channel>(dev, std::move(f));
}

}  // namespace weft::bdev::uring
