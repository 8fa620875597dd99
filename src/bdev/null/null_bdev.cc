// The null bdev: writes vanish, reads return zeroes. It measures everything
// above the storage (the target, the transport) at no storage cost.
#include <cerrno>

#include "bdev/bdev.h"
#include "bdev/iov.h"

namespace weft::bdev {
namespace {

class null_bdev final : public bdev {
  public:
    explicit null_bdev(properties p) : bdev(std::move(p)) {}
    std::unique_ptr<channel> open_channel() override;
    // Nothing is stored, so any size will do.
    result<void> resize(uint64_t new_num_blocks) override {
        return apply_resize(new_num_blocks, [](uint64_t, uint64_t) -> result<void> { return {}; });
    }
};

class null_channel final : public channel {
  public:
    explicit null_channel(null_bdev* dev) : dev_(dev) {}

    task<int> read(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov) override {
        if (int rc = dev_->check_io(lba, nblocks, iov); rc != 0) co_return rc;
        iov_zero(iov);
        co_return 0;
    }
    task<int> write(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov, bool) override {
        co_return dev_->check_io(lba, nblocks, iov);
    }
    task<int> flush() override { co_return 0; }
    task<int> write_zeroes(uint64_t lba, uint64_t nblocks) override {
        co_return dev_->check_range(lba, nblocks);
    }
    task<int> unmap(uint64_t lba, uint64_t nblocks) override {
        co_return dev_->check_range(lba, nblocks);
    }

  private:
    null_bdev* dev_;
};

std::unique_ptr<channel> null_bdev::open_channel() {
    return std::make_unique<null_channel>(this);
}

}  // namespace

std::unique_ptr<bdev> make_null_bdev(std::string name, uint64_t num_blocks, uint32_t block_size) {
    if (block_size < 512 || block_size > 65536 || (block_size & (block_size - 1)) != 0 ||
        num_blocks == 0 || num_blocks > UINT64_MAX / block_size)
        return nullptr;
    return std::make_unique<null_bdev>(bdev::properties{.name = std::move(name),
                                                        .block_size = block_size,
                                                        .num_blocks = num_blocks,
                                                        .volatile_write_cache = false,
                                                        .unmap_reads_zeroes = true});
}

}  // namespace weft::bdev
