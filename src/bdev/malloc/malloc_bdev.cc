// The malloc bdev: blocks in RAM.
//
// Storage is one anonymous mapping reserved at creation for the largest size
// the bdev may grow to (PROT_NONE costs address space, not memory). The used
// part is read-write; pages are backed lazily by the kernel and given back on
// unmap/write_zeroes (MADV_DONTNEED, which also makes them read as zeroes).
// Because the mapping never moves and a shrink only drops pages (it never
// unmaps), a channel on another reactor that passed its bounds check just
// before a shrink touches memory that is still mapped: resize() is safe with
// I/O in flight, without locks or counters on the I/O path.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "bdev/bdev.h"
#include "bdev/iov.h"

namespace weft::bdev {
namespace {

constexpr uint64_t default_reserve = 64ull << 30;  // grows to 64 GiB without a new size cap
constexpr uint64_t max_reserve = 1ull << 46;       // 64 TiB: well inside a 47-bit user space
// Below this, memset beats a madvise system call and the page faults after it.
constexpr uint64_t madvise_threshold = 256u << 10;

uint64_t page_size() {
    static const uint64_t p = uint64_t(sysconf(_SC_PAGESIZE));
    return p;
}
uint64_t round_up(uint64_t v, uint64_t a) {
    return (v + a - 1) / a * a;
}
uint64_t round_down(uint64_t v, uint64_t a) {
    return v / a * a;
}

class malloc_bdev final : public bdev {
  public:
    malloc_bdev(properties p, std::byte* base, uint64_t reserved, uint64_t committed)
        : bdev(std::move(p)), base_(base), reserved_(reserved), committed_(committed) {}
    ~malloc_bdev() override { munmap(base_, reserved_); }

    std::unique_ptr<channel> open_channel() override;

    result<void> resize(uint64_t new_num_blocks) override {
        return apply_resize(new_num_blocks, [&](uint64_t old_n, uint64_t new_n) -> result<void> {
            uint64_t old_bytes = old_n * block_size();
            uint64_t new_bytes = 0;
            if (__builtin_mul_overflow(new_n, uint64_t(block_size()), &new_bytes) ||
                new_bytes > reserved_)
                return error{ENOSPC};
            if (new_bytes < old_bytes) {
                // Give the memory back; what lies beyond the end reads as zero
                // if the bdev grows again.
                zero(new_bytes, old_bytes - new_bytes);
                return {};
            }
            uint64_t want = round_up(new_bytes, page_size());
            if (want > committed_) {
                if (mprotect(base_ + committed_, want - committed_, PROT_READ | PROT_WRITE) != 0)
                    return error{errno};
                committed_ = want;
            }
            // A write racing with an earlier shrink may have landed here.
            zero(old_bytes, new_bytes - old_bytes);
            return {};
        });
    }

    std::byte* at(uint64_t lba) const { return base_ + lba * block_size(); }

    // Zeroes [off, off + len): whole pages are dropped, partial ones cleared.
    void zero(uint64_t off, uint64_t len) const {
        uint64_t first = round_up(off, page_size());
        uint64_t last = round_down(off + len, page_size());
        if (len < madvise_threshold || first >= last) {
            std::memset(base_ + off, 0, len);
            return;
        }
        std::memset(base_ + off, 0, first - off);
        if (madvise(base_ + first, last - first, MADV_DONTNEED) != 0)
            std::memset(base_ + first, 0, last - first);
        std::memset(base_ + last, 0, off + len - last);
    }

  private:
    std::byte* const base_;
    const uint64_t reserved_;
    uint64_t committed_;  // bytes mapped read-write; under the resize lock
};

// Every operation completes without suspending: a memcpy is the I/O.
class malloc_channel final : public channel {
  public:
    explicit malloc_channel(malloc_bdev* dev) : dev_(dev) {}

    task<int> read(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov) override {
        if (int rc = dev_->check_io(lba, nblocks, iov); rc != 0) co_return rc;
        iov_cursor c{iov};
        c.scatter(dev_->at(lba), uint64_t(nblocks) * dev_->block_size());
        co_return 0;
    }
    task<int> write(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov, bool) override {
        if (int rc = dev_->check_io(lba, nblocks, iov); rc != 0) co_return rc;
        iov_cursor c{iov};
        c.gather(dev_->at(lba), uint64_t(nblocks) * dev_->block_size());
        co_return 0;
    }
    task<int> flush() override { co_return 0; }
    task<int> write_zeroes(uint64_t lba, uint64_t nblocks) override {
        if (int rc = dev_->check_range(lba, nblocks); rc != 0) co_return rc;
        dev_->zero(lba * dev_->block_size(), nblocks * dev_->block_size());
        co_return 0;
    }
    task<int> unmap(uint64_t lba, uint64_t nblocks) override { return write_zeroes(lba, nblocks); }

  private:
    malloc_bdev* dev_;
};

std::unique_ptr<channel> malloc_bdev::open_channel() {
    return std::make_unique<malloc_channel>(this);
}

bool valid_block_size(uint32_t bs) {
    return bs >= 512 && bs <= 65536 && (bs & (bs - 1)) == 0;
}

}  // namespace

std::unique_ptr<bdev> make_malloc_bdev(std::string name, uint64_t num_blocks, uint32_t block_size,
                                       uint64_t max_num_blocks) {
    uint64_t bytes = 0;
    uint64_t max_bytes = 0;
    if (!valid_block_size(block_size) || num_blocks == 0 || max_num_blocks < num_blocks ||
        __builtin_mul_overflow(num_blocks, uint64_t(block_size), &bytes) ||
        __builtin_mul_overflow(max_num_blocks, uint64_t(block_size), &max_bytes) ||
        max_bytes > max_reserve)
        return nullptr;
    uint64_t reserved = round_up(max_bytes, page_size());
    uint64_t committed = round_up(bytes, page_size());
    void* p =
        mmap(nullptr, reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    auto* base = static_cast<std::byte*>(p);
    if (mprotect(base, committed, PROT_READ | PROT_WRITE) != 0) {
        munmap(base, reserved);
        return nullptr;
    }
    return std::make_unique<malloc_bdev>(bdev::properties{.name = std::move(name),
                                                          .block_size = block_size,
                                                          .num_blocks = num_blocks,
                                                          .volatile_write_cache = false,
                                                          .unmap_reads_zeroes = true},
                                         base, reserved, committed);
}

std::unique_ptr<bdev> make_malloc_bdev(std::string name, uint64_t num_blocks, uint32_t block_size) {
    uint64_t max_blocks = std::max(default_reserve / std::max<uint32_t>(block_size, 1),
                                   num_blocks > UINT64_MAX / 4 ? num_blocks : num_blocks * 4);
    if (valid_block_size(block_size)) max_blocks = std::min(max_blocks, max_reserve / block_size);
    return make_malloc_bdev(std::move(name), num_blocks, block_size,
                            std::max(max_blocks, num_blocks));
}

}  // namespace weft::bdev
