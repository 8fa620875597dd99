// Children that come and go: reconnecting a retired remote child, and the
// management calls (add, remove, fault, online, arbitrate).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>

#include "nexus/child_uri.h"
#include "nexus/nexus_impl.h"
#include "runtime/buffer_pool.h"
#include "runtime/runtime.h"
#include "runtime/uring_op.h"
#include "runtime/when_all.h"

namespace weft::nexus {

using namespace std::chrono_literals;

task<void> nexus_impl::close_child(child* c) {
    while (c->busy > 0) co_await busy_changed_.wait();
    if (c->bd) {
        publish();
        co_await drop_channels(c->slot);
    }
    auto g = co_await md_lock_.lock();  // no label or bitmap write on its channel
    c->ch.reset();
    c->bd.reset();
    if (c->dev) co_await c->dev->close();
}

// The connection a child had before it was reconnected: closed once nothing
// can use it any more (the I/O path after a grace period, labels and bitmaps
// under the metadata lock, a rebuild or resync that had it busy).
task<void> nexus_impl::close_old_device(std::shared_ptr<child> c, std::unique_ptr<child_device> dev,
                                        std::shared_ptr<bdev::bdev> bd,
                                        std::unique_ptr<bdev::channel> ch) {
    co_await grace();
    bdev::bdev* old = bd.get();
    if (old)
        for (unsigned r = 0; r < nslots_; ++r)
            co_await on(r, [this, r, slot = c->slot, old] {
                for (nexus_channel* x : channels_[r]) drop_child_channel_if(x, slot, old);
            });
    while (c->busy > 0) co_await busy_changed_.wait();
    {
        auto g = co_await md_lock_.lock();
        ch.reset();
    }
    bd.reset();
    if (dev) co_await dev->close();
}

// A retired remote child: reconnects it with backoff, on a new connection
// (the old one is closed in the background once nothing uses it); once it
// answers, still carries this nexus's label and takes our reservation, it is
// rebuilt (auto_rebuild). A child that fails again soon after coming back
// waits longer each time, so a replica that accepts connections but fails
// its writes does not cause a storm of reconnects and rebuilds.
task<void> nexus_impl::reopen_loop(std::shared_ptr<child> cp) {
    child* c = cp.get();
    if (c->reconnecting) co_return;
    c->reconnecting = true;
    auto now = std::chrono::steady_clock::now();
    if (c->back_at != std::chrono::steady_clock::time_point{} && now - c->back_at < 60s)
        c->backoff = std::min<std::chrono::milliseconds>(std::max(c->backoff * 2, 500ms), 30000ms);
    else
        c->backoff = 0ms;
    if (c->backoff > 0ms) {
        spdlog::info("nexus {}: {} failed again soon after it came back: reconnecting in {} ms",
                     short_id(id_), c->uri, c->backoff.count());
        (void)co_await sleep(c->backoff).abort_with(stop_);
    }
    auto delay = 250ms;
    while (!closing_ && !superseded_ && !c->removed && c->state == child_state::faulted) {
        std::string why;
        const std::string uri = c->uri;
        auto d = factory_(uri, &why);
        if (!d) break;
        std::unique_ptr<child_device> dev = std::move(d.value());
        auto bd = co_await dev->open(&why);
        if (bd) {
            auto ch = bd.value()->open_channel();
            buffer b = buffer_pool::local().get(2 * format::slot_bytes);
            int rc =
                co_await read_bytes(*ch, block_size_, 0, b.span().first(2 * format::slot_bytes));
            std::string lwhy;
            auto l = rc ? result<label_info>(error{-rc})
                        : pick_label(b.span().first(2 * format::slot_bytes), &lwhy);
            bool stop = false;
            result<void> fenced = error{EIO};
            if (c->uri != uri) {
                // Re-pointed meanwhile: this connection is to the old address.
                ch.reset();
                bd.value().reset();
                co_await dev->close();
                continue;
            }
            if (bd.value()->block_size() != block_size_ ||
                bd.value()->size_bytes() < format::metadata_bytes + size_bytes_) {
                c->reason = "came back too small or with another block size";
                spdlog::error("nexus {}: {} came back with {} bytes of {}-byte blocks: not used",
                              short_id(id_), c->uri, bd.value()->size_bytes(),
                              bd.value()->block_size());
                stop = true;
            } else if (l && (l->nexus_id != id_ || l->child_id != c->id)) {
                c->reason = "not this nexus's child any more";
                spdlog::error("nexus {}: {} came back with another label: not used", short_id(id_),
                              c->uri);
                stop = true;
            } else if (l && l->fence_key > fence_key_) {
                supersede(fmt::format("{} was written by a newer nexus (generation {})", c->uri,
                                      l->generation));
                stop = true;
            } else {
                fenced = co_await dev->fence(fence_key_, &why);
                if (!fenced && fenced.err().code == EACCES) {
                    supersede(why);
                    stop = true;
                }
            }
            // Re-pointed during the awaits above: this connection is to the
            // old address; the next pass connects to the new one.
            const bool moved = c->uri != uri;
            if (!stop && !moved && fenced && (l || l.err().code == ENODATA) && !c->removed &&
                !closing_) {
                auto fresh = std::make_unique<region_bitmap>(durable_->size());
                if (l) {
                    uint64_t bytes = bitmap_bytes(size_bytes_, region_size_);
                    buffer bm = buffer_pool::local().get(bytes);
                    int got = co_await read_bytes(*ch, block_size_, format::bitmap_offset,
                                                  bm.span().first(bytes));
                    if (got == 0)
                        fresh->merge_bytes(bm.span().first(bytes));
                    else
                        c->rebuild_from = 0;  // what it holds is unknown: copy it all
                } else {
                    c->rebuild_from = 0;  // its label is gone: copy it all
                }
                // The new connection takes the child's place.
                auto old_dev = std::move(c->dev);
                auto old_bd = c->bd;
                auto old_ch = std::move(c->ch);
                c->dev = std::move(dev);
                c->bd = bd.value();
                c->ch = std::move(ch);
                c->label_seq = l ? l->seq : 0;
                c->own_bits = std::move(fresh);
                c->back_at = std::chrono::steady_clock::now();
                if (old_dev || old_bd)
                    reactor::local().spawn(bg_.hold(close_old_device(
                        cp, std::move(old_dev), std::move(old_bd), std::move(old_ch))));
                spdlog::info("nexus {}: child {} is back", short_id(id_), c->uri);
                c->reconnecting = false;
                if (opt_.auto_rebuild) queue_rebuild(c);
                co_return;
            }
            if (!stop && moved) {
                ch.reset();
                bd.value().reset();
                co_await dev->close();
                continue;
            }
            if (!stop)
                spdlog::warn("nexus {}: child {} answered but {}", short_id(id_), c->uri,
                             fenced ? lwhy : why);
            ch.reset();
            bd.value().reset();
            co_await dev->close();
            if (stop) break;
        }
        int rc = co_await sleep(delay).abort_with(stop_);
        if (rc == -ECANCELED) break;
        delay = std::min<std::chrono::milliseconds>(delay * 2, 5000ms);
    }
    c->reconnecting = false;
}

task<result<void>> nexus_impl::add_child(const std::string& uri, std::string* why) {
    if (superseded_) co_return fail(why, EACCES, superseded_why_);
    auto u = parse_child_uri(uri, why);
    if (!u) co_return u.err();
    std::string norm = to_string(u.value());
    if (find_child(norm)) co_return fail(why, EEXIST, norm + " is a child of this nexus already");
    if (children_.size() >= max_slots)
        co_return fail(why, EINVAL, fmt::format("a nexus has at most {} children", max_slots));
    auto d = factory_(norm, why);
    if (!d) co_return d.err();
    probe pr;
    pr.uri = norm;
    pr.dev = std::move(d.value());
    co_await probe_child(pr);
    if (!pr.bd)
        co_return fail(why, pr.open_err == ENOENT ? ENOENT : ENODEV,
                       "cannot open the child: " + pr.open_error);
    auto give_up = [&](int code, std::string msg) -> task<error> {
        pr.bd.reset();
        co_await pr.dev->close();
        if (why) *why = std::move(msg);
        co_return error{code};
    };
    if (pr.bd->block_size() != block_size_)
        co_return co_await give_up(EINVAL, fmt::format("{} has {}-byte blocks, the nexus {}", norm,
                                                       pr.bd->block_size(), block_size_));
    if (pr.bd->size_bytes() < format::metadata_bytes + size_bytes_)
        co_return co_await give_up(
            EINVAL, fmt::format("{} holds {} bytes; a child of this nexus needs {} (its {} "
                                "bytes and 1 MiB for the label and bitmap)",
                                norm, pr.bd->size_bytes(), format::metadata_bytes + size_bytes_,
                                size_bytes_));
    if (pr.label_err == EUCLEAN)
        co_return co_await give_up(
            EINVAL, fmt::format("{} has a damaged nexus label ({}): wipe its first MiB to use it",
                                norm, pr.label_why));
    if (pr.label_err && pr.label_err != ENODATA)
        co_return co_await give_up(pr.label_err,
                                   fmt::format("{}: reading its label: {}", norm, pr.label_why));
    if (pr.label && pr.label->nexus_id != id_)
        co_return co_await give_up(
            EINVAL, fmt::format("{} belongs to nexus {}: destroy that nexus or wipe the child's "
                                "first MiB",
                                norm, pool::to_string(pr.label->nexus_id)));
    std::string w;
    auto fenced = co_await pr.dev->fence(fence_key_, &w);
    if (!fenced)
        co_return co_await give_up(
            fenced.err().code,
            fenced.err().code == EACCES
                ? fmt::format("{} is held by another nexus: {}", norm, w)
                : fmt::format("{} could not be fenced for this nexus: {}", norm, w));
    uint32_t used = 0;
    for (auto& c : children_) used |= bit(c->slot);
    auto c = std::make_shared<child>();
    c->slot = unsigned(std::countr_one(used));
    c->uri = norm;
    c->dev = std::move(pr.dev);
    c->bd = pr.bd;
    c->ch = c->bd->open_channel();
    // A new member, whatever it held before (even a label of this nexus
    // from a time it was removed): copied in full.
    c->id = pool::random_uuid();
    c->mstate = format::member_state::stale;
    c->rebuild_from = 0;
    if (pr.label) c->label_seq = pr.label->seq;
    c->state = child_state::faulted;
    c->reason = "stale";
    children_.push_back(c);
    auto r = co_await commit(false, why);
    if (!r) {
        std::erase_if(children_, [&](auto& x) { return x == c; });
        co_await c->dev->unfence(fence_key_);
        c->ch.reset();
        c->bd.reset();
        co_await c->dev->close();
        co_return r;
    }
    spdlog::info("nexus {}: child {} added; rebuilding it", short_id(id_), norm);
    queue_rebuild(c.get());
    co_return result<void>{};
}

task<result<void>> nexus_impl::remove_child(const std::string& ref, std::string* why) {
    child* c = find_child(ref);
    if (!c) co_return fail(why, ENOENT, fmt::format("{} is not a child of this nexus", ref));
    if (c->state == child_state::online && durably_in_sync() <= 1)
        co_return fail(why, EBUSY,
                       fmt::format("{} is the last in-sync child: add another and let it "
                                   "rebuild first",
                                   c->uri));
    std::shared_ptr<child> keep = shared(c);
    // An in-sync child is retired first (the majority rule applies), so that
    // its own label says it is out of sync; then it leaves the membership.
    if (c->writable()) {
        auto r = co_await retire(just(c), "removed", /*may_wait=*/false, why);
        if (!r) co_return r;
    }
    c->removed = true;
    c->reason = "removed";
    if (c == rebuild_target_) cancel_rebuild_ = true;
    while (rebuild_target_ == c) co_await rebuild_changed_.wait();
    std::erase_if(rebuild_queue_, [&](auto& q) { return q.get() == c; });
    std::erase_if(children_, [&](auto& sp) { return sp.get() == c; });
    std::string w;
    if (c->ch) {
        // Its last label lists the others without it: never a member again.
        int conflict = 0;
        ++generation_;
        (void)co_await write_labels(just(c), &conflict);
    }
    auto r = co_await commit(false, &w);
    if (!r) spdlog::warn("nexus {}: removing {}: {}", short_id(id_), c->uri, w);
    co_await close_child(c);
    spdlog::info("nexus {}: child {} removed", short_id(id_), c->uri);
    co_return result<void>{};
}

task<result<void>> nexus_impl::fault_child(const std::string& ref, std::string* why) {
    child* c = find_child(ref);
    if (!c) co_return fail(why, ENOENT, fmt::format("{} is not a child of this nexus", ref));
    if (c->state == child_state::faulted)
        co_return fail(why, EINVAL, fmt::format("{} is faulted already ({})", c->uri, c->reason));
    if (c->state == child_state::online && durably_in_sync() <= 1)
        co_return fail(why, EBUSY, fmt::format("{} is the last in-sync child", c->uri));
    auto r = co_await retire(just(c), "faulted by request", /*may_wait=*/false, why);
    if (!r) co_return r;
    if (superseded_) co_return fail(why, EACCES, superseded_why_);
    co_return result<void>{};
}

task<result<void>> nexus_impl::online_child(const std::string& ref, std::string* why) {
    if (superseded_) co_return fail(why, EACCES, superseded_why_);
    child* c = find_child(ref);
    if (!c) co_return fail(why, ENOENT, fmt::format("{} is not a child of this nexus", ref));
    if (c->state != child_state::faulted)
        co_return fail(why, EINVAL, fmt::format("{} is {} already", c->uri, to_string(c->state)));
    if (c->queued) co_return result<void>{};
    if (!c->bd) {
        if (c->reconnecting)
            co_return fail(why, EAGAIN,
                           fmt::format("{} does not answer yet; it is being reconnected and will "
                                       "be rebuilt when it answers",
                                       c->uri));
        auto bd = co_await c->dev->open(why);
        if (!bd) co_return bd.err();
        auto fenced = co_await c->dev->fence(fence_key_, why);
        if (!fenced && fenced.err().code == EACCES) {
            co_await c->dev->close();
            co_return fenced.err();
        }
        c->bd = bd.value();
        c->ch = c->bd->open_channel();
    }
    if (!c->own_bits && c->rebuild_from > 0) {
        c->own_bits = std::make_unique<region_bitmap>(durable_->size());
        std::string w;
        auto read = co_await read_bitmap(*c, *c->own_bits, &w);
        if (!read) c->rebuild_from = 0;
    }
    c->reason = "stale";
    queue_rebuild(c);
    co_return result<void>{};
}

task<result<void>> nexus_impl::repoint_child(const std::string& ref, const std::string& uri,
                                             std::string* why) {
    if (superseded_) co_return fail(why, EACCES, superseded_why_);
    child* c = find_child(ref);
    if (!c) co_return fail(why, ENOENT, fmt::format("{} is not a child of this nexus", ref));
    auto u = parse_child_uri(uri, why);
    if (!u) co_return u.err();
    std::string norm = to_string(u.value());
    if (norm == c->uri) co_return result<void>{};
    if (child* o = find_child(norm); o && o != c)
        co_return fail(why, EEXIST, norm + " is another child of this nexus");
    if (c->state == child_state::online && durably_in_sync() <= 1)
        co_return fail(
            why, EBUSY,
            fmt::format("{} is the last in-sync child: it cannot be retired to move it", c->uri));
    std::shared_ptr<child> keep = shared(c);
    std::string old = std::exchange(c->uri, norm);
    c->back_at = {};  // a move, not a failure: no reconnect backoff
    spdlog::info("nexus {}: child {} re-pointed to {}", short_id(id_), old, norm);
    if (c->writable()) {
        // Retired first, so that its label says what it misses from now on;
        // its reconnect (started by the retirement) goes to the new URI.
        auto r = co_await retire(just(c), "re-pointed", /*may_wait=*/false, why);
        if (!r && c->writable()) {
            c->uri = old;  // refused (no majority): nothing changed
            co_return r;
        }
        if (!r) co_return r;  // retired, but not durably: said so (it reconnects there)
    }
    if (c->state == child_state::faulted && !c->removed && !closing_)
        reactor::local().spawn(bg_.hold(reopen_loop(keep)));
    co_return result<void>{};
}

task<result<void>> nexus_impl::arbitrate(bool allow, std::string* why) {
    if (waiting_.empty()) co_return fail(why, EINVAL, "the nexus is not waiting for an arbiter");
    if (allow) {
        arbiter_yes_ = true;
        arbiter_changed_.notify_all();
        spdlog::warn("nexus {}: the arbiter allows going on without a majority", short_id(id_));
    }
    co_return result<void>{};
}

}  // namespace weft::nexus
