// The write-intent bitmap on the children: bits made durable before the
// first write to a region (batched), cleared lazily once every member is in
// sync, and read back when a nexus opens or a child returns.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>

#include "nexus/nexus_impl.h"
#include "runtime/buffer_pool.h"
#include "runtime/runtime.h"
#include "runtime/uring_op.h"
#include "runtime/when_all.h"

namespace weft::nexus {

using namespace std::chrono_literals;

// Writes bitmap blocks (the durable bits, with `add`'s ORed in, and the bits
// a clear pass is waiting to clear unless this is its write) to every
// writable child; retires those that fail. 0 when at least one in-sync
// child has them. requires: md_lock_ held.
task<int> nexus_impl::write_bitmap_blocks(std::vector<uint64_t> blocks, const region_bitmap* add,
                                          bool clearing) {
    std::vector<child*> targets;
    for (auto& c : children_)
        if (c->ch && c->writable()) targets.push_back(c.get());
    if (targets.empty()) co_return -EIO;
    buffer b = buffer_pool::local().get(format::bitmap_block * blocks.size());
    for (size_t i = 0; i < blocks.size(); ++i)
        durable_->block_bytes(blocks[i],
                              b.span().subspan(i * format::bitmap_block, format::bitmap_block), add,
                              clearing ? nullptr : clearing_.get());
    std::vector<task<int>> ts;
    for (child* c : targets) {
        ts.push_back([](nexus_impl* nx, child* c, std::vector<uint64_t> blocks,
                        std::span<const std::byte> data) -> task<int> {
            for (size_t i = 0; i < blocks.size(); ++i) {
                int rc = co_await write_bytes(
                    *c->ch, nx->block_size_,
                    format::bitmap_offset + blocks[i] * format::bitmap_block,
                    data.subspan(i * format::bitmap_block, format::bitmap_block));
                if (rc) co_return rc;
            }
            co_return 0;
        }(this, c, blocks, b.span().first(format::bitmap_block * blocks.size())));
    }
    std::vector<int> rcs = co_await when_all(std::move(ts));
    bool in_sync_ok = false;
    for (size_t i = 0; i < targets.size(); ++i) {
        if (rcs[i] == 0) {
            if (targets[i]->state == child_state::online) in_sync_ok = true;
            continue;
        }
        if (rcs[i] == -EACCES) {
            supersede(fmt::format("child {} answered a bitmap write with a reservation conflict",
                                  targets[i]->uri));
            co_return -ESTALE;
        }
        // retire() commits under md_lock_ (held by our caller): later. A
        // closing nexus writes its own last labels (retired in memory).
        if (closing_) {
            mark_retired(*targets[i], reason_of(rcs[i]));
            continue;
        }
        reactor::local().spawn(bg_.hold([](nexus_impl* nx, child* c, int rc) -> task<void> {
            (void)co_await nx->retire(just(c), reason_of(rc));
        }(this, targets[i], rcs[i])));
    }
    co_return in_sync_ok ? 0 : -EIO;
}

task<int> nexus_impl::set_bits(uint64_t r0, uint64_t r1) {
    if (durable_->all_set(r0, r1)) co_return 0;
    for (uint64_t r = r0; r < r1; ++r) pending_->mark(r);
    pending_any_ = true;
    uint64_t want = flush_round_ + 1;
    if (closing_) co_return -ENODEV;
    if (!flushing_) {
        // Set here, not when the task starts: two callers in one pass must
        // not start two flushers.
        flushing_ = true;
        reactor::local().spawn(bg_.hold(flush_bits()));
    }
    while (flush_done_ < want && !superseded_ && !closed_) co_await flushed_.wait();
    if (superseded_) co_return -ESTALE;
    co_return durable_->all_set(r0, r1) ? 0 : -EIO;
}

// Writes what set_bits() asked for, in rounds: the callers that came while
// a round was on the wire go in the next one.
task<void> nexus_impl::flush_bits() {
    while (pending_any_ && !superseded_) {
        uint64_t round = ++flush_round_;
        auto adding = std::make_unique<region_bitmap>(pending_->size());
        std::vector<uint64_t> blocks;
        const uint64_t words_per_block = format::bitmap_block / 8;
        for (uint64_t w = 0; w < pending_->words(); ++w) {
            uint64_t v = pending_->word(w);
            if (!v) continue;
            for (int k = 0; k < 64; ++k)
                if (v >> k & 1) adding->set(w * 64 + uint64_t(k));
            uint64_t blk = w / words_per_block;
            if (blocks.empty() || blocks.back() != blk) blocks.push_back(blk);
        }
        pending_->clear_all();
        pending_any_ = false;
        int rc;
        {
            auto g = co_await md_lock_.lock();
            rc = co_await write_bitmap_blocks(blocks, adding.get());
        }
        if (rc == 0)
            for (uint64_t w = 0; w < adding->words(); ++w)
                if (uint64_t v = adding->word(w))
                    for (int k = 0; k < 64; ++k)
                        if (v >> k & 1) durable_->set(w * 64 + uint64_t(k));
        flush_done_ = round;
        flushed_.notify_all();
    }
    flushing_ = false;
    flushed_.notify_all();
}

// Clears, every clear_interval, the bits of regions nobody wrote since the
// last pass, once every member is in sync (a stale member needs them).
task<void> nexus_impl::clear_loop() {
    while (!closing_) {
        int rc = co_await sleep(opt_.clear_interval).abort_with(stop_);
        if (rc == -ECANCELED || closing_) break;
        bool all_in_sync = std::all_of(children_.begin(), children_.end(), [](auto& c) {
            return c->mstate == format::member_state::in_sync && c->state == child_state::online;
        });
        if (!all_in_sync || rebuilding_ || resync_pending_ || superseded_ || retiring_ > 0)
            continue;
        std::vector<uint64_t> cleared;
        for (uint64_t w = 0; w < durable_->words(); ++w) {
            uint64_t v = durable_->word(w) & ~touched_->word(w);
            for (int k = 0; v && k < 64; ++k)
                if (v >> k & 1) cleared.push_back(w * 64 + uint64_t(k));
        }
        touched_->clear_all();
        if (cleared.empty()) continue;
        const uint64_t retirements = retirements_;
        for (uint64_t r : cleared) {
            durable_->clear(r);
            clearing_->set(r);  // bitmap writes meanwhile keep them set on disk
        }
        // A write that saw the bit set may still be in flight: wait for it.
        co_await grace();
        auto g = co_await md_lock_.lock();
        auto put_back = [&] {
            for (uint64_t r : cleared) durable_->set(r);
            clearing_->clear_all();
        };
        // A child that failed meanwhile needs those regions: keep them.
        bool still = std::all_of(children_.begin(), children_.end(), [](auto& c) {
            return c->mstate == format::member_state::in_sync && c->state == child_state::online;
        });
        if (!still || retirements_ != retirements || rebuilding_ || resync_pending_ ||
            superseded_ || retiring_ > 0 || closing_) {
            put_back();
            continue;
        }
        // What the cleared regions got must be on stable media everywhere
        // before the bits that cover it go.
        const bool flushed = co_await flush_writable();
        if (!flushed) {
            put_back();
            continue;
        }
        std::vector<uint64_t> blocks;
        for (uint64_t r : cleared) {
            uint64_t blk = r / (format::bitmap_block * 8);
            if (blocks.empty() || blocks.back() != blk) blocks.push_back(blk);
        }
        int wrc = co_await write_bitmap_blocks(blocks, nullptr, /*clearing=*/true);
        clearing_->clear_all();
        if (wrc) put_back();
    }
}

// Flushes every writable child (volatile caches): true when all succeeded.
task<bool> nexus_impl::flush_writable() {
    std::vector<child*> targets;
    for (auto& c : children_)
        if (c->ch && c->writable()) targets.push_back(c.get());
    std::vector<task<int>> ts;
    for (child* c : targets) ts.push_back(c->ch->flush());
    auto rcs = co_await when_all(std::move(ts));
    bool ok = true;
    for (size_t i = 0; i < targets.size(); ++i)
        if (rcs[i]) {
            ok = false;
            spdlog::warn("nexus {}: flushing {} failed: {}", short_id(id_), targets[i]->uri,
                         error{-rcs[i]}.message());
            // A child that fails a flush fails like one that fails a write:
            // retired (it would otherwise show in sync while unreachable).
            if (!closing_)
                reactor::local().spawn(bg_.hold(retire_in_background(targets[i]->slot, rcs[i])));
        }
    co_return ok;
}

task<result<void>> nexus_impl::read_bitmap(child& c, region_bitmap& into, std::string* why) {
    uint64_t bytes = bitmap_bytes(size_bytes_, region_size_);
    buffer b = buffer_pool::local().get(bytes);
    int rc = co_await read_bytes(*c.ch, block_size_, format::bitmap_offset, b.span().first(bytes));
    if (rc)
        co_return fail(why, -rc,
                       fmt::format("{}: reading the bitmap: {}", c.uri, error{-rc}.message()));
    into.merge_bytes(b.span().first(bytes));
    co_return result<void>{};
}

}  // namespace weft::nexus
