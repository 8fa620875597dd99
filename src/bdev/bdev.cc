#include "bdev/bdev.h"

#include <algorithm>
#include <cerrno>

#include "bdev/iov.h"

namespace weft::bdev {

bdev::bdev(properties p)
    : name_(std::move(p.name)),
      block_size_(p.block_size),
      num_blocks_(p.num_blocks),
      volatile_write_cache_(p.volatile_write_cache),
      unmap_reads_zeroes_(p.unmap_reads_zeroes),
      read_only_(p.read_only) {}

uint64_t bdev::add_resize_listener(resize_listener fn) {
    std::lock_guard lock(resize_mutex_);
    uint64_t id = next_listener_id_++;
    listeners_.push_back({id, std::move(fn)});
    return id;
}

void bdev::remove_resize_listener(uint64_t id) {
    std::lock_guard lock(resize_mutex_);
    std::erase_if(listeners_, [id](const listener& l) { return l.id == id; });
}

int bdev::check_range(uint64_t lba, uint64_t nblocks) const {
    uint64_t n = num_blocks();
    // Written so that lba + nblocks cannot overflow.
    if (lba > n || nblocks > n - lba) return -ERANGE;
    return 0;
}

int bdev::check_io(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov) const {
    if (int rc = check_range(lba, nblocks); rc != 0) return rc;
    auto total = iov_total(iov);
    if (!total || *total != uint64_t(nblocks) * block_size_) return -EINVAL;
    return 0;
}

wrapper_bdev::wrapper_bdev(std::shared_ptr<bdev> inner)
    : bdev(properties{.name = inner->name(),
                      .block_size = inner->block_size(),
                      .num_blocks = inner->num_blocks(),
                      .volatile_write_cache = inner->volatile_write_cache(),
                      .unmap_reads_zeroes = inner->unmap_reads_zeroes(),
                      .read_only = inner->read_only()}),
      inner_(std::move(inner)) {
    listener_ = inner_->add_resize_listener([this](uint64_t, uint64_t n) {
        (void)apply_resize(n, [](uint64_t, uint64_t) { return result<void>{}; });
    });
}

wrapper_bdev::~wrapper_bdev() {
    inner_->remove_resize_listener(listener_);
}

}  // namespace weft::bdev
