// Opening a file or block device as a bdev, and resizing it.
#include "bdev/uring/uring_bdev.h"

#include <linux/fs.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "runtime/buffer_pool.h"

namespace weft::bdev {
namespace uring {

std::unique_ptr<channel> uring_bdev::open_channel() {
    // A new open file description per channel (not a dup), on the very inode
    // the bdev opened even if the path has been renamed since.
    file::options o{.direct = s_.direct, .create = false, .read_only = read_only()};
    auto f = file::open("/proc/self/fd/" + std::to_string(s_.master.fd()), o);
    if (!f) f = file::open(s_.path, o);
    if (!f) {
        spdlog::error("bdev {}: cannot open a channel on {}: {}", name(), s_.path,
                      f.err().message());
        return make_failed_channel(f.err().code);
    }
    return make_uring_channel(this, std::move(f.value()));
}

result<void> uring_bdev::resize(uint64_t new_num_blocks) {
    if (s_.block_device) return error{ENOTSUP};
    return apply_resize(new_num_blocks, [&](uint64_t, uint64_t n) -> result<void> {
        // A write racing with a shrink may extend the file again; the size
        // that counts is num_blocks(), and reopening rounds the file down.
        return s_.master.truncate(n * block_size());
    });
}

}  // namespace uring

namespace {

bool valid_block_size(uint64_t v) {
    return v >= 512 && v <= 65536 && (v & (v - 1)) == 0;
}

// Direct-I/O alignment of an open file (Linux 6.1+), else `fallback` for both.
void dio_alignment(int fd, uint32_t fallback, uint32_t& mem, uint32_t& len) {
    mem = len = fallback;
    struct statx sx {};
    if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 && (sx.stx_mask & STATX_DIOALIGN) &&
        sx.stx_dio_offset_align != 0) {
        mem = std::max<uint32_t>(sx.stx_dio_mem_align, 1);
        len = sx.stx_dio_offset_align;
    }
}

result<std::unique_ptr<bdev>> open_opened(std::string name, const std::string& path,
                                          const uring_options& opt, file f, bool created) {
    struct stat st {};
    if (fstat(f.fd(), &st) != 0) return error{errno};
    bool blk = S_ISBLK(st.st_mode);
    if (created && st.st_size == 0) {
        if (auto r = f.truncate(opt.create_bytes); !r) return r.err();
    }

    uring::uring_bdev::setup s{
        .master = {}, .path = path, .block_device = blk, .direct = opt.direct, .dsync = opt.dsync};
    uint32_t lbs = 512;  // the device's logical block size
    if (blk) {
        int v = 0;
        if (ioctl(f.fd(), BLKSSZGET, &v) != 0) return error{errno};
        lbs = uint32_t(v);
    }
    dio_alignment(f.fd(), lbs, s.mem_align, s.len_align);
    uint32_t bs = opt.block_size;
    if (bs == 0) bs = blk ? lbs : std::max<uint32_t>(512, opt.direct ? s.len_align : 0);
    if (!valid_block_size(bs)) return error{EINVAL};
    // Direct I/O cannot address less than the alignment, and bounce buffers
    // come from buffer_pool with its alignment.
    if (opt.direct && (bs % s.len_align != 0 || s.mem_align > buffer_pool::alignment))
        return error{EINVAL};

    auto bytes = f.size();
    if (!bytes) return bytes.err();
    uint64_t num_blocks = bytes.value() / bs;
    if (num_blocks == 0) return error{EINVAL};
    s.master = std::move(f);
    return std::unique_ptr<bdev>(std::make_unique<uring::uring_bdev>(
        bdev::properties{.name = std::move(name),
                         .block_size = bs,
                         .num_blocks = num_blocks,
                         .volatile_write_cache = !opt.dsync,
                         // A block device's discard may leave old data behind.
                         .unmap_reads_zeroes = !blk,
                         .read_only = opt.read_only},
        std::move(s)));
}

}  // namespace

result<std::unique_ptr<bdev>> open_uring_bdev(std::string name, const std::string& path,
                                              uring_options opt) {
    struct stat st {};
    bool exists = stat(path.c_str(), &st) == 0;
    if (!exists && (errno != ENOENT || !opt.create)) return error{errno};
    if (!exists && (opt.read_only || opt.create_bytes == 0)) return error{EINVAL};
    if (exists && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) return error{EINVAL};
    if (opt.block_size != 0 && !valid_block_size(opt.block_size)) return error{EINVAL};

    auto f =
        file::open(path, {.direct = opt.direct, .create = !exists, .read_only = opt.read_only});
    if (!f) return f.err();
    auto r = open_opened(std::move(name), path, opt, std::move(f.value()), !exists);
    // Leave no file behind that was created for a bdev we then refused.
    if (!r.ok() && !exists) unlink(path.c_str());
    return r;
}

}  // namespace weft::bdev
