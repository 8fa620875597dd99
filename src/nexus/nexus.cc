// The nexus at home: views and grace periods, closing, status, the public
// face, and the helpers its files share. The rest, by job: open.cc (opening
// or re-creating from the children), membership.cc (commits, the majority
// rule, retirements), write_intent.cc (the bitmap), children.cc (reconnects
// and management calls), rebuild.cc (copying), io.cc (the I/O path).
#include "nexus/nexus.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/random.h>

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

const char* to_string(child_state s) {
    switch (s) {
        case child_state::online:
            return "online";
        case child_state::rebuilding:
            return "rebuilding";
        case child_state::faulted:
            return "faulted";
    }
    return "?";
}

const char* to_string(nexus_state s) {
    switch (s) {
        case nexus_state::online:
            return "online";
        case nexus_state::degraded:
            return "degraded";
        case nexus_state::waiting:
            return "waiting";
        case nexus_state::superseded:
            return "superseded";
        case nexus_state::faulted:
            return "faulted";
    }
    return "?";
}

error fail(std::string* why, int code, std::string msg) {
    if (why) *why = std::move(msg);
    return error{code};
}

std::string short_id(const uuid& u) {
    return pool::to_string(u).substr(0, 8);
}

// Why a child failed, as the API shows it.
std::string reason_of(int rc) {
    switch (-rc) {
        case ETIMEDOUT:
            return "timeout";
        case ENOSPC:
            return "out of space";
        case ENOTCONN:
        case ECONNRESET:
        case ECONNREFUSED:
        case ECONNABORTED:
        case EPIPE:
        case EHOSTUNREACH:
        case ENETUNREACH:
        case ENXIO:
            return "unreachable";
        default:
            return "io error";
    }
}

uint16_t random_tag() {
    uint16_t t = 0;
    while (t == 0)
        if (::getrandom(&t, sizeof t, 0) != sizeof t) t = 1;
    return t;
}

// Reads `bytes` at byte offset `off` of `ch` (a child's first MiB) into a
// buffer_pool buffer.
task<int> read_bytes(bdev::channel& ch, uint32_t bs, uint64_t off, std::span<std::byte> out) {
    iovec v{out.data(), out.size()};
    co_return co_await ch.read(off / bs, uint32_t(out.size() / bs), {&v, 1});
}

task<int> write_bytes(bdev::channel& ch, uint32_t bs, uint64_t off, std::span<const std::byte> in) {
    iovec v{const_cast<std::byte*>(in.data()), in.size()};
    co_return co_await ch.write(off / bs, uint32_t(in.size() / bs), {&v, 1}, /*fua=*/true);
}

// ---- construction, views, grace periods --------------------------------------

nexus_impl::nexus_impl(uuid id, uint64_t size_bytes, uint32_t block_size, uint64_t region_size,
                       options opt, child_factory f)
    : id_(id),
      size_bytes_(size_bytes),
      block_size_(block_size),
      region_size_(region_size),
      region_shift_(unsigned(std::countr_zero(region_size / block_size))),
      data_offset_(format::metadata_bytes / block_size),
      opt_(opt),
      factory_(std::move(f)) {
    reactor* r = reactor::local_or_null();
    home_ = r ? r->id() : 0;
    if (r && r->rt_or_null()) nslots_ = r->rt_or_null()->size();
    channels_.resize(nslots_);
    uint64_t regions = region_count(size_bytes, region_size);
    durable_ = std::make_unique<region_bitmap>(regions);
    touched_ = std::make_unique<region_bitmap>(regions);
    pending_ = std::make_unique<region_bitmap>(regions);
    clearing_ = std::make_unique<region_bitmap>(regions);
}

nexus_impl::~nexus_impl() {
    delete view_.load();
    for (view* v : retired_views_) delete v;
}

void nexus_impl::add_channel(unsigned reactor, nexus_channel* c) {
    channels_[reactor % nslots_].push_back(c);
}

void nexus_impl::remove_channel(unsigned reactor, nexus_channel* c) {
    auto& v = channels_[reactor % nslots_];
    v.erase(std::remove(v.begin(), v.end(), c), v.end());
}

uint32_t nexus_impl::in_sync_mask() const {
    uint32_t m = 0;
    for (auto& c : children_)
        if (c->mstate == format::member_state::in_sync) m |= bit(c->slot);
    return m;
}

child* nexus_impl::at_slot(unsigned slot) {
    for (auto& c : children_)
        if (c->slot == slot) return c.get();
    return nullptr;
}

child* nexus_impl::find_child(const std::string& ref) {
    for (auto& c : children_)
        if (c->uri == ref || pool::to_string(c->id) == ref) return c.get();
    // The URI as the user typed it may differ from the normalised one.
    if (auto u = parse_child_uri(ref, nullptr)) {
        std::string norm = to_string(u.value());
        for (auto& c : children_)
            if (c->uri == norm) return c.get();
    }
    return nullptr;
}

// A new view from the children's states. Home only.
void nexus_impl::publish() {
    auto* v = new view;
    v->version = next_view_++;
    for (auto& c : children_) {
        if (!c->bd || !c->writable()) continue;
        v->dev[c->slot] = c->bd;
        v->writers[v->nwriters++] = uint8_t(c->slot);
        if (c->state == child_state::online) {
            v->readers[v->nreaders++] = uint8_t(c->slot);
            if (v->preferred < 0 && c->local()) v->preferred = int(c->slot);
        }
    }
    v->hold_writes = retiring_ > 0 || paused_ || resizing_;
    v->hold_reads = !waiting_.empty() || resizing_;
    if (superseded_) v->fail_all = -ESTALE;
    if (closed_) v->fail_all = -ENODEV;
    if (resync_pending_) {
        // The source of the post-crash resync is the one copy dirty regions
        // are read from: a new one at once if it failed.
        child* s = resync_source_ >= 0 ? at_slot(unsigned(resync_source_)) : nullptr;
        if (!s || s->state != child_state::online) {
            s = pick_source(nullptr);
            resync_source_ = s ? int(s->slot) : -1;
        }
        v->resync_source = resync_source_;
    }
    view* old = view_.exchange(v);
    if (old) {
        retired_views_.push_back(old);
        if (retired_views_.size() == 1 && !closing_)
            reactor::local().spawn(bg_.hold(reclaim_views()));
    }
    unblocked_.notify_all();
}

// Waits until every I/O that started before the call has finished. I/O that
// starts meanwhile counts in the other parity and is not waited for. What
// home stored before the call (a window, a cleared bit, a new view) is seen
// by the I/O that starts on each reactor after the flip there: the message
// that flips it carries that ordering.
task<void> nexus_impl::grace() {
    co_await epochs_.grace();
}

task<void> nexus_impl::reclaim_views() {
    std::vector<view*> mine = retired_views_;
    co_await grace();
    for (view* v : mine) {
        delete v;
        retired_views_.erase(std::find(retired_views_.begin(), retired_views_.end(), v));
    }
    if (!retired_views_.empty() && !closing_) reactor::local().spawn(bg_.hold(reclaim_views()));
}

// After the slot left the view: waits for the I/O that may still use it, then
// closes its channels on every reactor.
task<void> nexus_impl::drop_channels(unsigned slot) {
    co_await grace();
    for (unsigned r = 0; r < nslots_; ++r) {
        co_await on(r, [this, r, slot] {
            for (nexus_channel* c : channels_[r]) drop_child_channel(c, slot);
        });
    }
}

// ---- close --------------------------------------------------------------------

task<void> nexus_impl::close(bool clean) {
    if (closed_) co_return;
    // No new I/O from here (fail_all), and whatever waits wakes up to see it.
    closing_ = true;
    closed_ = true;
    cancel_rebuild_ = true;
    stop_.request_abort();
    publish();
    arbiter_changed_.notify_all();
    unblocked_.notify_all();
    flushed_.notify_all();
    retired_.notify_all();
    while (reports_in_flight_.load() > 0) co_await yield{};
    // The I/O in flight finishes (a write whose child fails now is not
    // acknowledged: its retirement cannot be committed any more), then the
    // background work.
    co_await grace();
    co_await bg_.close();
    for (view* v : retired_views_) delete v;
    retired_views_.clear();
    {
        auto g = co_await md_lock_.lock();
        if (!superseded_ && clean) co_await close_cleanly();
        // Channels of the nexus may outlive it in idle host queues: they let
        // go of the children's channels now, before the children close.
        for (auto& c : children_)
            for (unsigned r = 0; r < nslots_; ++r)
                co_await on(r, [this, r, slot = c->slot] {
                    for (nexus_channel* ch : channels_[r]) drop_child_channel(ch, slot);
                });
        for (auto& c : children_) {
            if (!c->bd) continue;
            if (!superseded_ && clean) co_await c->dev->unfence(fence_key_);
            c->ch.reset();
            c->bd.reset();
            co_await c->dev->close();
        }
    }
    spdlog::info("nexus {}: closed{}", short_id(id_),
                 superseded_ ? " (superseded)"
                 : clean     ? (clean_closed_ ? " cleanly" : " (not marked clean: see above)")
                             : " without marking it clean");
}

// With no I/O left and md_lock_ held: everything on stable media, the
// bitmap emptied when no member needs it, and clean labels -- unless a resync
// is still owed (the next open must do it) or a flush failed.
task<void> nexus_impl::close_cleanly() {
    const bool flushed = co_await flush_writable();
    if (!flushed) {
        spdlog::warn("nexus {}: a child could not be flushed: its labels stay unclean",
                     short_id(id_));
        co_return;
    }
    if (resync_pending_) {
        spdlog::warn(
            "nexus {}: the resync after the last unclean stop did not finish: the "
            "labels stay unclean so that the next open does it",
            short_id(id_));
        co_return;
    }
    bool all_in_sync = std::all_of(children_.begin(), children_.end(), [](auto& c) {
        return c->mstate == format::member_state::in_sync && c->ch;
    });
    if (all_in_sync && durable_->count() > 0) {
        std::vector<uint64_t> blocks;
        for (uint64_t b = 0; b * format::bitmap_block * 8 < durable_->size(); ++b)
            blocks.push_back(b);
        durable_->clear_all();
        clearing_->clear_all();
        int wr = co_await write_bitmap_blocks(blocks, nullptr, true);
        if (wr != 0) co_return;
    }
    ++generation_;
    std::vector<child*> targets;
    for (auto& c : children_)
        if (c->ch) targets.push_back(c.get());
    std::vector<task<int>> ts;
    std::vector<buffer> bufs;
    for (child* c : targets) {
        label_info l = label_for(*c);
        l.clean = true;
        buffer b = buffer_pool::local().get(format::slot_bytes);
        encode_label(l, std::span<std::byte, format::slot_bytes>(b.data(), format::slot_bytes));
        ts.push_back(write_bytes(*c->ch, block_size_, (l.seq & 1) * format::slot_bytes,
                                 b.span().first(format::slot_bytes)));
        bufs.push_back(std::move(b));
    }
    auto rcs = co_await when_all(std::move(ts));
    for (size_t i = 0; i < targets.size(); ++i)
        if (rcs[i] == 0) targets[i]->label_seq++;
    clean_closed_ = true;
}

// ---- status and management -------------------------------------------------------

nexus_status nexus_impl::status() const {
    nexus_status s;
    s.id = id_;
    s.size_bytes = size_bytes_;
    s.generation = generation_;
    s.waiting = waiting_;
    s.history = history_;
    s.dirty_regions = durable_->count();
    s.region_size = region_size_;
    s.rebuilt_bytes = rebuilt_bytes_;
    s.retirements = retirements_;
    s.opt = opt_;
    unsigned online = 0;
    for (auto& c : children_) {
        child_status cs;
        cs.uri = c->uri;
        cs.id = c->id;
        // A rebuilt child reads as online inside the nexus while its in-sync
        // label is written; outside, it is online once that is durable.
        cs.state = c.get() == rebuild_target_ && c->state == child_state::online
                       ? child_state::rebuilding
                       : c->state;
        cs.reason = c->reason;
        cs.local = c->local();
        cs.reconnecting = c->reconnecting;
        cs.rebuild = c->progress;
        cs.io_errors = c->io_errors;
        if (cs.state == child_state::online) ++online;
        s.children.push_back(std::move(cs));
    }
    if (superseded_) {
        s.state = nexus_state::superseded;
        s.waiting = superseded_why_;
    } else if (!waiting_.empty()) {
        s.state = nexus_state::waiting;
    } else if (online == 0) {
        s.state = nexus_state::faulted;
    } else if (online < children_.size()) {
        s.state = nexus_state::degraded;
    } else {
        s.state = nexus_state::online;
    }
    return s;
}

std::vector<std::string> nexus_impl::child_uris() const {
    std::vector<std::string> out;
    for (auto& c : children_) out.push_back(c->uri);
    return out;
}

std::vector<uuid> nexus_impl::child_ids() const {
    std::vector<uuid> out;
    for (auto& c : children_) out.push_back(c->id);
    return out;
}

// ---- the public face ----------------------------------------------------------------

nexus::nexus(std::shared_ptr<nexus_impl> impl, std::shared_ptr<bdev::bdev> dev)
    : impl_(std::move(impl)), bdev_(std::move(dev)) {}
nexus::~nexus() = default;
task<void> nexus::close(bool clean) {
    co_await impl_->close(clean);
}
const uuid& nexus::id() const {
    return impl_->id_;
}
uint64_t nexus::size_bytes() const {
    return impl_->size_bytes_;
}
unsigned nexus::home() const {
    return impl_->home_;
}
std::shared_ptr<bdev::bdev> nexus::bdev() const {
    return bdev_;
}
std::vector<std::string> nexus::child_uris() const {
    return impl_->child_uris();
}
std::vector<uuid> nexus::child_ids() const {
    return impl_->child_ids();
}
nexus_status nexus::status() const {
    return impl_->status();
}
task<result<void>> nexus::add_child(const std::string& uri, std::string* why) {
    return impl_->add_child(uri, why);
}
task<result<void>> nexus::remove_child(const std::string& ref, std::string* why) {
    return impl_->remove_child(ref, why);
}
task<result<void>> nexus::fault_child(const std::string& ref, std::string* why) {
    return impl_->fault_child(ref, why);
}
task<result<void>> nexus::online_child(const std::string& ref, std::string* why) {
    return impl_->online_child(ref, why);
}
task<result<void>> nexus::repoint_child(const std::string& ref, const std::string& uri,
                                        std::string* why) {
    return impl_->repoint_child(ref, uri, why);
}
task<result<void>> nexus::arbitrate(bool allow, std::string* why) {
    return impl_->arbitrate(allow, why);
}

task<void> nexus::pause(std::chrono::milliseconds timeout) {
    nexus_impl& nx = *impl_;
    uint64_t seq = ++nx.pause_seq_;
    if (!nx.paused_) {
        nx.paused_ = true;
        nx.publish();
    }
    // The lapse, on home, unless a resume or a later pause came first.
    reactor::local().spawn(
        nx.bg_.hold([](nexus_impl* nx, uint64_t seq, std::chrono::milliseconds t) -> task<void> {
            int rc = co_await sleep(t).abort_with(nx->stop_);
            if (rc == -ECANCELED || nx->pause_seq_ != seq || !nx->paused_) co_return;
            nx->paused_ = false;
            nx->publish();
            spdlog::warn("nexus {}: the pause lapsed after {} ms without a resume: writes go on",
                         short_id(nx->id_), t.count());
        }(&nx, seq, timeout)));
    // Writes that started before the pause are done once a grace period is.
    co_await nx.grace();
}

bool nexus::resume() {
    nexus_impl& nx = *impl_;
    ++nx.pause_seq_;
    if (!nx.paused_) return false;
    nx.paused_ = false;
    nx.publish();
    return true;
}

task<result<label_info>> read_child_label(child_device& d, uint64_t* dirty_regions,
                                          std::string* why) {
    auto bd = co_await d.open(why);
    if (!bd) co_return bd.err();
    result<label_info> out = error{ENODATA};
    {
        auto ch = bd.value()->open_channel();
        uint32_t bs = bd.value()->block_size();
        buffer b = buffer_pool::local().get(2 * format::slot_bytes);
        int rc = bd.value()->size_bytes() < format::metadata_bytes
                     ? -ENODATA
                     : co_await read_bytes(*ch, bs, 0, b.span().first(2 * format::slot_bytes));
        if (rc) {
            out = fail(why, -rc, rc == -ENODATA ? "no nexus label" : error{-rc}.message());
        } else {
            out = pick_label(b.span().first(2 * format::slot_bytes), why);
            if (out && dirty_regions) {
                uint64_t bytes = bitmap_bytes(out->size_bytes, out->region_size);
                buffer bm = buffer_pool::local().get(bytes);
                rc = co_await read_bytes(*ch, bs, format::bitmap_offset, bm.span().first(bytes));
                region_bitmap bits(region_count(out->size_bytes, out->region_size));
                if (rc == 0) bits.merge_bytes(bm.span().first(bytes));
                *dirty_regions = bits.count();
            }
        }
    }
    bd.value().reset();
    co_await d.close();
    co_return out;
}

task<result<void>> clear_child_label(child_device& d, std::string* why) {
    auto bd = co_await d.open(why);
    if (!bd) co_return bd.err();
    int rc = 0;
    {
        auto ch = bd.value()->open_channel();
        uint32_t bs = bd.value()->block_size();
        if (bd.value()->size_bytes() < format::metadata_bytes) {
            rc = -EINVAL;
            if (why) *why = fmt::format("{} is smaller than a nexus label and bitmap", d.uri());
        } else {
            rc = co_await ch->write_zeroes(0, format::metadata_bytes / bs);
            if (rc == 0) rc = co_await ch->flush();
            if (rc && why) *why = fmt::format("{}: {}", d.uri(), error{-rc}.message());
        }
    }
    bd.value().reset();
    co_await d.close();
    if (rc) co_return error{-rc};
    co_return result<void>{};
}

}  // namespace weft::nexus
