// The two metadata areas on the device, and the atomic commit over them.
//
// Each commit writes the whole pool metadata (format.h: header, volume
// records, extents), with the next sequence number, to area (seq % 2) with
// FUA, then the same bytes to the other area with FUA. So in a quiet pool
// both areas hold the same, newest commit, and:
//   - a crash while writing the first area leaves it torn (checksum fails) or
//     unchanged, and the second still holds the previous commit: load() picks
//     that, and the commit that was cut never happened (it was not acknowledged);
//   - a crash while writing the second area leaves the first complete: load()
//     picks the newer sequence number, and the commit happened;
//   - a flipped bit in either area of a quiet pool is survived: the other area
//     holds the same commit. load() reports the bad area and asks for a repair
//     (a commit that rewrites both). Only when both fail is the pool refused.
// The commit point is the first area's FUA write completing.
#pragma once

#include <cstdlib>
#include <memory>
#include <span>
#include <string>

#include "bdev/bdev.h"
#include "pool/codec.h"

namespace weft::pool {

// An aligned byte buffer for metadata I/O (areas may exceed the 4 MiB of
// buffer_pool's largest class).
class io_buffer {
  public:
    io_buffer() = default;
    explicit io_buffer(size_t n)
        : p_(static_cast<std::byte*>(std::aligned_alloc(4096, round(n)))), n_(round(n)) {}
    std::span<std::byte> span() const { return {p_.get(), n_}; }
    std::byte* data() const { return p_.get(); }
    size_t size() const { return n_; }

  private:
    static size_t round(size_t n) { return (n + 4095) / 4096 * 4096; }
    struct deleter {
        void operator()(std::byte* p) const { std::free(p); }
    };
    std::unique_ptr<std::byte, deleter> p_;
    size_t n_ = 0;
};

// Reads or writes `buf` at byte `offset` of `dev` (both block aligned).
task<int> read_bytes(bdev::bdev& dev, bdev::channel& ch, uint64_t offset, std::span<std::byte> buf);
task<int> write_bytes(bdev::bdev& dev, bdev::channel& ch, uint64_t offset,
                      std::span<const std::byte> buf, bool fua);

struct load_report {
    std::string area_error[2];  // empty when the area decoded
    unsigned chosen = 0;        // the area whose commit was loaded
    bool needs_repair = false;  // an area is bad or older: rewrite both
};

class metadata_store {
  public:
    metadata_store(bdev::bdev& dev, geometry g) : dev_(dev), g_(std::move(g)) {}

    const geometry& geo() const { return g_; }
    uint64_t seq() const { return seq_; }
    void set_seq(uint64_t s) { seq_ = s; }

    // EUCLEAN (both areas bad; `why` names each area and what failed) or an
    // I/O error.
    task<result<pool_meta>> load(bdev::channel& ch, load_report& rep, std::string* why);

    // Commits `vols` as sequence number seq() + 1. 0, -ENOSPC (does not fit
    // in an area; nothing written), or an I/O error (the outcome on disk is
    // then unknown, and the caller must stop committing: see pool.h).
    task<int> commit(bdev::channel& ch, std::span<const volume_meta* const> vols);

  private:
    bdev::bdev& dev_;
    geometry g_;
    uint64_t seq_ = 0;
    io_buffer buf_;
};

}  // namespace weft::pool
