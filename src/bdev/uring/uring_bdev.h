// The uring bdev's internals, shared by uring_bdev.cc (opening, resizing)
// and uring_channel.cc (the I/O path).
#pragma once

#include <atomic>
#include <string>

#include "bdev/bdev.h"
#include "runtime/file.h"

namespace weft::bdev::uring {

class uring_bdev final : public bdev {
  public:
    struct setup {
        file master;  // kept open: resize truncates it, channels re-open it
        std::string path;
        bool block_device = false;
        bool direct = true;
        bool dsync = false;
        // O_DIRECT needs iovec bases aligned to mem_align and lengths to
        // len_align (statx STATX_DIOALIGN); others go through a bounce buffer.
        uint32_t mem_align = 512;
        uint32_t len_align = 512;
    };
    uring_bdev(properties p, setup s) : bdev(std::move(p)), s_(std::move(s)) {}

    std::unique_ptr<channel> open_channel() override;
    result<void> resize(uint64_t new_num_blocks) override;

    const setup& config() const { return s_; }

    // Learned once per bdev: the file system or device lacks the fallocate
    // mode, so later calls go straight to the fallback.
    std::atomic<bool> no_zero_range{false};
    std::atomic<bool> no_punch_hole{false};

  private:
    setup s_;
};

// A channel whose fd could not be opened: every I/O fails with its error.
std::unique_ptr<channel> make_failed_channel(int err);
// requires: called on the reactor that will use it.
std::unique_ptr<channel> make_uring_channel(uring_bdev* dev, file f);

}  // namespace weft::bdev::uring
