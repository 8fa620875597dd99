// Growing a nexus once its children grew: the new size is checked against
// every open child, the in-memory bitmaps grow while no I/O is inside the
// nexus, and a label commit makes the size durable before hosts are told
// (a nexus re-created from the labels has it; one that crashed half-way is
// re-created at the old size, and growing again is safe).
//
// The region size stays what the nexus was created with, so a nexus can grow
// to what its bitmap covers with those regions (8 M regions: 508 GiB with
// 64 KiB regions, twice that per doubling): re-mapping the bitmap to coarser
// regions while writes go on is left for when a user needs it.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "nexus/nexus_impl.h"

namespace weft::nexus {

task<result<void>> nexus_impl::check_growth(uint64_t size, std::string* why) {
    if (size < size_bytes_)
        co_return fail(why, EINVAL,
                       fmt::format("nexus {} holds {} bytes: a nexus grows, it does not shrink "
                                   "(to {} bytes)",
                                   pool::to_string(id_), size_bytes_, size));
    if (size % block_size_ != 0)
        co_return fail(why, EINVAL,
                       fmt::format("{} bytes is not a multiple of the nexus's {}-byte blocks", size,
                                   block_size_));
    const uint64_t most = region_size_ * format::bitmap_max_bytes * 8;
    if (size > most)
        co_return fail(why, EINVAL,
                       fmt::format("nexus {} has {} KiB regions (set by its size when it was "
                                   "made), whose bitmap covers at most {} bytes, less than {}",
                                   pool::to_string(id_), region_size_ >> 10, most, size));
    for (auto& c : children_) {
        if (!c->bd) continue;
        std::string w;
        auto r = co_await c->dev->refresh(&w);
        if (!r) co_return fail(why, r.err().code, w);
        if (c->bd->size_bytes() < format::metadata_bytes + size)
            co_return fail(why, EINVAL,
                           fmt::format("{} holds {} bytes; nexus {} of {} bytes needs {} on every "
                                       "child (1 MiB more for its label and bitmap): grow the "
                                       "children first",
                                       c->uri, c->bd->size_bytes(), pool::to_string(id_), size,
                                       format::metadata_bytes + size));
    }
    co_return result<void>{};
}

task<result<void>> nexus_impl::grow_quiet(uint64_t size, std::string* why) {
    const uint64_t old = size_bytes_;
    int rc = 0;
    {
        auto g = co_await md_lock_.lock();
        const uint64_t old_blocks = bitmap_bytes(old, region_size_) / format::bitmap_block;
        const uint64_t regions = region_count(size, region_size_);
        durable_ = durable_->grown(regions);
        touched_ = touched_->grown(regions);
        pending_ = pending_->grown(regions);
        clearing_ = clearing_->grown(regions);
        for (auto& c : children_)
            if (c->own_bits) c->own_bits = c->own_bits->grown(regions);
        size_bytes_ = size;
        // The new bitmap blocks: whatever an earlier user of the device left
        // there must not read as dirty regions.
        std::vector<uint64_t> blocks;
        for (uint64_t b = old_blocks; b < bitmap_bytes(size, region_size_) / format::bitmap_block;
             ++b)
            blocks.push_back(b);
        if (!blocks.empty()) rc = co_await write_bitmap_blocks(blocks, nullptr);
    }
    if (rc) {
        size_bytes_ = old;
        co_return fail(why, -rc,
                       fmt::format("writing the grown bitmap of nexus {}: {}", pool::to_string(id_),
                                   error{-rc}.message()));
    }
    // The bigger bitmaps stay (their extra bits are clear): only the size
    // goes back when the commit fails.
    auto committed = co_await commit(false, why);
    if (!committed) size_bytes_ = old;
    co_return committed;
}

task<result<void>> nexus_impl::grow(uint64_t size, std::string* why) {
    if (closing_) co_return fail(why, ENODEV, "the nexus is closing");
    if (superseded_) co_return fail(why, ESTALE, superseded_why_);
    if (size == size_bytes_) co_return result<void>{};
    auto busy = [&]() -> std::string {
        if (resizing_) return "another resize is running";
        if (rebuilding_ || resync_pending_ || !rebuild_queue_.empty())
            return "a rebuild is running: grow it once the rebuild is done";
        if (!waiting_.empty() || retiring_ > 0)
            return "its writes are held while its membership changes";
        return {};
    };
    if (std::string b = busy(); !b.empty())
        co_return fail(why, EBUSY, fmt::format("nexus {}: {}", pool::to_string(id_), b));
    resizing_ = true;
    auto checked = co_await check_growth(size, why);
    if (!checked) {
        resizing_ = false;
        co_return checked;
    }
    // Hold every I/O, and wait for those inside the nexus: the bitmaps they
    // touch are about to be replaced.
    publish();
    co_await grace();
    result<void> out;
    resizing_ = false;  // so that busy() sees only the others
    if (std::string b = busy(); !b.empty()) {
        out = fail(why, EBUSY, fmt::format("nexus {}: {}", pool::to_string(id_), b));
    } else {
        resizing_ = true;
        const uint64_t old = size_bytes_;
        out = co_await grow_quiet(size, why);
        if (out)
            spdlog::info("nexus {}: grown from {} to {} bytes at generation {}", short_id(id_), old,
                         size, generation_);
    }
    resizing_ = false;
    publish();
    co_return out;
}

task<result<void>> nexus::resize(uint64_t size_bytes, std::string* why) {
    auto r = co_await impl_->grow(size_bytes, why);
    if (!r) co_return r;
    // Durable in the labels: hosts may see it now.
    publish_size(*bdev_, impl_->size_bytes_ / impl_->block_size_);
    co_return result<void>{};
}

}  // namespace weft::nexus
