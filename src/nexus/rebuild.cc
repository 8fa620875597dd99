// Rebuilding: copying to a child the regions it lacks while I/O goes on, and
// the resync of the in-sync children after a nexus stopped uncleanly.
//
// A copy of regions [r0, r1) is ordered against application writes: home
// publishes the window (writes to it wait), waits for a grace period (the
// writes already in flight there finish), copies, and closes the window. A
// target child is writable from the start of its rebuild, so every write
// after the window passes reaches it as well.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "nexus/nexus_impl.h"
#include "runtime/buffer_pool.h"
#include "runtime/uring_op.h"
#include "runtime/when_all.h"

namespace weft::nexus {

using namespace std::chrono_literals;

namespace {

int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

constexpr uint64_t copy_chunk = 1ull << 20;  // one read + write of a copy

}  // namespace

void nexus_impl::queue_rebuild(child* c) {
    std::shared_ptr<child> sp;
    if (c) {
        sp = shared(c);
        if (c == rebuild_target_) {
            c->requeue = true;  // its rebuild is ending: again once it has
            return;
        }
        if (!sp || c->queued || c->removed) return;
        c->queued = true;
        rebuild_progress p;
        p.kind = c->rebuild_from == 0 ? "full" : c->rebuild_from < size_bytes_ ? "full" : "partial";
        p.state = "waiting";
        c->progress = p;
    }
    rebuild_queue_.push_back(sp);
    if (!rebuilding_ && !closing_) {
        rebuilding_ = true;
        reactor::local().spawn(bg_.hold(rebuild_worker()));
    }
}

task<void> nexus_impl::rebuild_worker() {
    while (!rebuild_queue_.empty() && !closing_ && !superseded_) {
        std::shared_ptr<child> c = rebuild_queue_.front();
        rebuild_queue_.pop_front();
        std::string outcome;
        if (!c) {
            auto r = co_await resync(&outcome);
            if (!r) spdlog::warn("nexus {}: resync: {}", short_id(id_), outcome);
            continue;
        }
        c->queued = false;
        if (c->removed || c->state != child_state::faulted || !c->bd) {
            c->progress.reset();
            continue;
        }
        rebuild_record rec;
        rec.child = c->uri;
        rec.kind = c->rebuild_from == 0            ? "full"
                   : c->rebuild_from < size_bytes_ ? "full"
                                                   : "partial";
        rec.start_unix_ms = unix_ms();
        uint64_t before = rebuilt_bytes_;
        auto r = co_await rebuild(c.get(), &outcome);
        rec.end_unix_ms = unix_ms();
        rec.bytes = rebuilt_bytes_ - before;
        rec.outcome = r ? "done" : outcome;
        history_.push_back(rec);
        if (history_.size() > 32) history_.erase(history_.begin());
        spdlog::info("nexus {}: {} rebuild of {}: {} ({} bytes copied in {} ms)", short_id(id_),
                     rec.kind, rec.child, rec.outcome, rec.bytes,
                     rec.end_unix_ms - rec.start_unix_ms);
        if (!r && (outcome.starts_with("restarted") || c->requeue)) queue_rebuild(c.get());
        c->requeue = false;
    }
    rebuilding_ = false;
    rebuild_changed_.notify_all();
}

child* nexus_impl::pick_source(const child* except) const {
    child* best = nullptr;
    for (auto& c : children_) {
        if (c.get() == except || c->state != child_state::online || !c->ch) continue;
        if (!best || (c->local() && !best->local())) best = c.get();
    }
    return best;
}

void nexus_impl::set_window(uint64_t r0, uint64_t r1) {
    window_.store((r0 << 32) | r1);
}

void nexus_impl::clear_window() {
    window_.store(0);
    unblocked_.notify_all();
}

// At most rebuild_rate bytes/s on average since the copying began (or since
// it last paused for a second or more).
task<void> nexus_impl::throttle(uint64_t bytes) {
    if (opt_.rebuild_rate == 0) co_return;
    auto now = std::chrono::steady_clock::now();
    double due = double(throttle_bytes_) / double(opt_.rebuild_rate);
    double elapsed = std::chrono::duration<double>(now - throttle_start_).count();
    if (throttle_bytes_ == 0 || elapsed > due + 1.0) {
        throttle_start_ = now;
        throttle_bytes_ = 0;
    }
    throttle_bytes_ += bytes;
    due = double(throttle_bytes_) / double(opt_.rebuild_rate);
    elapsed = std::chrono::duration<double>(now - throttle_start_).count();
    if (due > elapsed)
        (void)co_await sleep(std::chrono::microseconds(int64_t((due - elapsed) * 1e6)))
            .abort_with(stop_);
}

task<int> nexus_impl::copy_range(child& src, std::vector<child*> dsts, uint64_t off, uint64_t len,
                                 uint64_t* copied, child** who) {
    const uint64_t bs = block_size_;
    const uint64_t lba = off / bs + data_offset_, n = len / bs;
    std::vector<bdev::channel::block_run> runs;
    int rc = co_await src.ch->allocated(lba, n, &runs);
    if (rc == -ENOTSUP) {
        runs.assign(1, {lba, n});
    } else if (rc != 0) {
        *who = &src;
        co_return rc;
    }
    buffer buf = buffer_pool::local().get(std::min<uint64_t>(len, copy_chunk));
    uint64_t pos = lba;
    auto zero = [&](uint64_t from, uint64_t to) -> task<int> {
        if (to <= from) co_return 0;
        for (child* d : dsts) {
            int r = d->bd->unmap_reads_zeroes() ? co_await d->ch->unmap(from, to - from)
                                                : co_await d->ch->write_zeroes(from, to - from);
            if (r) {
                *who = d;
                co_return r;
            }
        }
        co_return 0;
    };
    for (const auto& run : runs) {
        int zr = co_await zero(pos, run.lba);
        if (zr) co_return zr;
        for (uint64_t b = run.lba; b < run.lba + run.nblocks;) {
            uint32_t nb = uint32_t(std::min<uint64_t>(run.lba + run.nblocks - b, copy_chunk / bs));
            iovec v{buf.data(), size_t(nb) * bs};
            int r = co_await src.ch->read(b, nb, {&v, 1});
            if (r) {
                *who = &src;
                co_return r;
            }
            std::vector<task<int>> ts;
            for (child* d : dsts) ts.push_back(d->ch->write(b, nb, {&v, 1}, false));
            auto rcs = co_await when_all(std::move(ts));
            for (size_t i = 0; i < dsts.size(); ++i)
                if (rcs[i]) {
                    *who = dsts[i];
                    co_return rcs[i];
                }
            *copied += uint64_t(nb) * bs;
            b += nb;
        }
        pos = run.lba + run.nblocks;
    }
    co_return co_await zero(pos, lba + n);
}

task<result<void>> nexus_impl::rebuild(child* t, std::string* outcome) {
    auto fail = [&](std::string msg) -> result<void> {
        *outcome = std::move(msg);
        return error{EIO};
    };
    // The plan: the bitmap's regions (the nexus's, this child's own, and
    // those being set) below rebuild_from, then everything from there.
    const uint64_t from = std::min(t->rebuild_from, size_bytes_);
    const uint64_t regions = durable_->size();
    std::vector<std::pair<uint64_t, uint64_t>> plan;  // byte ranges
    auto add = [&](uint64_t a, uint64_t b) {
        if (b <= a) return;
        if (!plan.empty() && plan.back().second == a && b - plan.back().first <= opt_.copy_segment)
            plan.back().second = b;
        else
            plan.push_back({a, b});
    };
    for (uint64_t r = 0; r < regions && r * region_size_ < from; ++r) {
        bool dirty =
            durable_->test(r) || pending_->test(r) || (t->own_bits && t->own_bits->test(r));
        if (dirty) add(r * region_size_, std::min({(r + 1) * region_size_, from, size_bytes_}));
    }
    const uint64_t seg = std::max(opt_.copy_segment / region_size_, uint64_t(1)) * region_size_;
    for (uint64_t o = from; o < size_bytes_; o += seg)
        plan.push_back({o, std::min(o + seg, size_bytes_)});
    uint64_t total = 0;
    for (auto& [a, b] : plan) total += b - a;

    child* src = pick_source(t);
    if (!src) co_return fail("failed: no in-sync child to copy from");
    const std::string kind = from == 0 ? "full" : from < size_bytes_ ? "full" : "partial";
    rebuild_target_ = t;
    cancel_rebuild_ = false;
    t->state = child_state::rebuilding;
    t->reason.clear();
    rebuild_progress prog;
    prog.kind = kind;
    prog.state = "running";
    prog.source = src->uri;
    prog.bytes_total = total;
    t->progress = prog;
    publish();  // writes reach the child from now on
    spdlog::info("nexus {}: {} rebuild of {} from {}: {} bytes", short_id(id_), kind, t->uri,
                 src->uri, total);
    const uint64_t src_failures = src->failures;
    busy_hold hold_t(*this, t), hold_src(*this, src);
    auto started = std::chrono::steady_clock::now();
    auto last_ckpt = started;
    uint64_t done = 0, copied = 0;
    result<void> out;
    for (auto& [a, b] : plan) {
        if (cancel_rebuild_ || closing_ || superseded_ || t->state != child_state::rebuilding) {
            out = fail(t->state == child_state::faulted ? "failed: " + t->reason
                                                        : "cancelled: the nexus is closing or the "
                                                          "child was removed");
            break;
        }
        co_await throttle(b - a);
        set_window(a / region_size_, (b + region_size_ - 1) / region_size_);
        co_await grace();
        if (src->state != child_state::online || src->failures != src_failures) {
            clear_window();
            out = fail("restarted: the source " + src->uri + " failed");
            break;
        }
        child* who = nullptr;
        int rc = co_await copy_range(*src, just(t), a, b - a, &copied, &who);
        clear_window();
        if (rc) {
            if (who == src) {
                ++src->io_errors;
                reactor::local().spawn(bg_.hold(retire_in_background(src->slot, rc)));
                out = fail("restarted: reading " + src->uri + " failed: " + error{-rc}.message());
            } else {
                (void)co_await retire(just(t), rc == -ENOSPC ? "out of space" : "io error");
                out = fail("failed: writing " + t->uri + ": " + error{-rc}.message());
            }
            break;
        }
        done += b - a;
        auto now = std::chrono::steady_clock::now();
        double secs = std::chrono::duration<double>(now - started).count();
        t->progress->bytes_done = done;
        t->progress->rate = secs > 0 ? double(done) / secs : 0;
        t->progress->eta_seconds =
            t->progress->rate > 0 ? double(total - done) / t->progress->rate : 0;
        // Checkpoint the full part now and then: a restart resumes from here.
        if (a >= from && (now - last_ckpt > opt_.checkpoint_interval) && b < size_bytes_) {
            // What was copied must be on stable media before the label says so.
            int frc = co_await t->ch->flush();
            if (frc) {
                (void)co_await retire(just(t), reason_of(frc));
                out = fail("failed: flushing " + t->uri + ": " + error{-frc}.message());
                break;
            }
            t->rebuild_from = b;
            std::string w;
            (void)co_await commit(false, &w);
            last_ckpt = now;
        }
    }
    rebuilt_bytes_ += copied;
    if (out) {
        int rc = co_await t->ch->flush();
        if (rc) {
            (void)co_await retire(just(t), "io error");
            out = fail("failed: flushing " + t->uri + ": " + error{-rc}.message());
        }
    }
    if (out && t->state == child_state::rebuilding) {
        t->state = child_state::online;
        t->mstate = format::member_state::in_sync;
        t->rebuild_from = 0;
        std::string w;
        auto r = co_await commit(false, &w);
        if (!r) {
            t->state = child_state::faulted;
            t->mstate = format::member_state::stale;
            t->rebuild_from = size_bytes_;
            t->reason = "stale";
            out = fail("failed: " + w);
        } else {
            t->own_bits.reset();
            t->reason.clear();
        }
    } else if (t->state == child_state::rebuilding) {
        t->state = child_state::faulted;
        t->reason = "stale";
    }
    t->progress.reset();
    rebuild_target_ = nullptr;
    publish();
    rebuild_changed_.notify_all();
    co_return out;
}

// After an unclean stop the in-sync children may differ where a write was in
// flight (the bitmap's regions): copy those from one of them to the others.
task<result<void>> nexus_impl::resync(std::string* outcome) {
    std::vector<uint64_t> dirty;
    for (uint64_t r = 0; r < durable_->size(); ++r)
        if (durable_->test(r)) dirty.push_back(r);
    uint64_t copied = 0;
    size_t i = 0;
    spdlog::info("nexus {}: resyncing {} regions after an unclean stop", short_id(id_),
                 dirty.size());
    while (i < dirty.size()) {
        if (closing_ || superseded_) {
            *outcome = "cancelled";
            co_return error{ECANCELED};
        }
        child* src = at_slot(unsigned(std::max(resync_source_, 0)));
        if (!src || src->state != child_state::online) {
            src = pick_source(nullptr);
            if (!src) {
                *outcome = "no in-sync child left";
                break;
            }
            resync_source_ = int(src->slot);
            publish();
        }
        uint64_t r0 = dirty[i], r1 = r0 + 1;
        size_t j = i + 1;
        while (j < dirty.size() && dirty[j] == r1 && (r1 - r0) * region_size_ < opt_.copy_segment) {
            ++r1;
            ++j;
        }
        std::vector<child*> dsts;
        for (auto& c : children_)
            if (c.get() != src && c->state == child_state::online && c->ch) dsts.push_back(c.get());
        if (dsts.empty()) break;
        co_await throttle((r1 - r0) * region_size_);
        set_window(r0, r1);
        co_await grace();
        uint64_t a = r0 * region_size_, b = std::min(r1 * region_size_, size_bytes_);
        child* who = nullptr;
        std::vector<std::unique_ptr<busy_hold>> holds;
        holds.push_back(std::make_unique<busy_hold>(*this, src));
        for (child* d : dsts) holds.push_back(std::make_unique<busy_hold>(*this, d));
        int rc = co_await copy_range(*src, dsts, a, b - a, &copied, &who);
        holds.clear();
        clear_window();
        if (rc) {
            if (who) (void)co_await retire(just(who), "io error");
            continue;  // again with what is left (another source if it was the source)
        }
        i = j;
    }
    rebuilt_bytes_ += copied;
    // The copies on stable media before the bits that cover them may go.
    const bool flushed = co_await flush_writable();
    if (!flushed) {
        *outcome = "flushing the resynced children failed";
        co_return error{EIO};
    }
    resync_pending_ = false;
    resync_source_ = -1;
    publish();
    co_return result<void>{};
}

}  // namespace weft::nexus
