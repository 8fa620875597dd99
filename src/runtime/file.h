// Files and block devices through the reactor's io_uring. Opened with
// O_DIRECT by default, so buffers, offsets and lengths must be aligned to the
// device's logical block size (buffer_pool hands out 4 KiB-aligned buffers).
#pragma once

#include <fcntl.h>

#include <span>
#include <string>

#include "runtime/net.h"
#include "runtime/result.h"
#include "runtime/uring_op.h"

namespace weft {

class file {
  public:
    struct options {
        bool direct = true;  // O_DIRECT: no page cache
        bool create = false;
        bool read_only = false;
    };

    // Opening is a setup-time call and stays synchronous.
    static result<file> open(const std::string& path, options opt);

    int fd() const { return fd_.get(); }
    bool direct() const { return direct_; }
    // Size in bytes (regular file or block device).
    result<uint64_t> size() const;
    // Grows or shrinks a regular file.
    result<void> truncate(uint64_t bytes);

    // Each returns the bytes moved or -errno. A short read at end of file is
    // a result, not an error.
    auto read(uint64_t offset, std::span<std::byte> buf) {
        return make_op([=, fd = fd()](io_uring_sqe* s) {
            io_uring_prep_read(s, fd, buf.data(), unsigned(buf.size()), offset);
        });
    }
    auto write(uint64_t offset, std::span<const std::byte> buf) {
        return make_op([=, fd = fd()](io_uring_sqe* s) {
            io_uring_prep_write(s, fd, buf.data(), unsigned(buf.size()), offset);
        });
    }
    // requires: `iov` lives until the op completes.
    auto readv(uint64_t offset, std::span<const iovec> iov) {
        return make_op([=, fd = fd()](io_uring_sqe* s) {
            io_uring_prep_readv(s, fd, iov.data(), unsigned(iov.size()), offset);
        });
    }
    auto writev(uint64_t offset, std::span<const iovec> iov, int rw_flags = 0) {
        return make_op([=, fd = fd()](io_uring_sqe* s) {
            io_uring_prep_writev2(s, fd, iov.data(), unsigned(iov.size()), offset, rw_flags);
        });
    }
    auto fsync(bool datasync = true) {
        return make_op([=, fd = fd()](io_uring_sqe* s) {
            io_uring_prep_fsync(s, fd, datasync ? IORING_FSYNC_DATASYNC : 0);
        });
    }

  private:
    fd_handle fd_;
    bool direct_ = false;
};

}  // namespace weft
