// The nexus at home: opening (or re-creating) it from its children, the
// membership and its commits, the write-intent bitmap, retirements, fencing,
// reconnecting remote children, and the management calls. The I/O path is
// io.cc; copying regions to children is rebuild.cc.
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

// io.cc
class nexus_channel;
std::shared_ptr<bdev::bdev> make_nexus_bdev(std::shared_ptr<nexus_impl> nx, std::string name,
                                            bool volatile_cache, bool unmap_zeroes);
void drop_child_channel(nexus_channel* c, unsigned slot);

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

namespace {

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

}  // namespace

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
    slots_ = std::make_unique<io_slot[]>(nslots_);
    channels_.resize(nslots_);
    uint64_t regions = region_count(size_bytes, region_size);
    durable_ = std::make_unique<region_bitmap>(regions);
    touched_ = std::make_unique<region_bitmap>(regions);
    pending_ = std::make_unique<region_bitmap>(regions);
}

nexus_impl::~nexus_impl() {
    delete view_.load();
    for (view* v : retired_views_) delete v;
}

io_slot& nexus_impl::slot_here() {
    reactor* r = reactor::local_or_null();
    return slots_[r ? r->id() % nslots_ : 0];
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
    v->hold_writes = hold_writes_;
    v->hold_reads = hold_writes_ && !waiting_.empty();
    if (superseded_) v->fail_all = -ESTALE;
    if (closed_) v->fail_all = -ENODEV;
    if (resync_pending_ && resync_source_ >= 0) {
        child* s = at_slot(unsigned(resync_source_));
        if (s && s->state == child_state::online) v->resync_source = resync_source_;
    }
    view* old = view_.exchange(v);
    if (old) {
        retired_views_.push_back(old);
        if (retired_views_.size() == 1 && !closing_) reactor::local().spawn(bg_.hold(reclaim_views()));
    }
    unblocked_.notify_all();
}

// Waits until every I/O that started before the call has finished. I/O that
// starts meanwhile counts in the other parity and is not waited for.
task<void> nexus_impl::grace() {
    auto g = co_await grace_lock_.lock();
    uint64_t old = epoch_.fetch_add(1);
    for (unsigned spins = 0;; ++spins) {
        int64_t sum = 0;
        for (unsigned i = 0; i < nslots_; ++i) sum += slots_[i].n[old & 1].load();
        if (sum == 0) break;
        co_await sleep(spins < 50 ? 20us : 1ms);
    }
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

// ---- labels and membership ---------------------------------------------------

label_info nexus_impl::label_for(const child& c) const {
    label_info l;
    l.seq = c.label_seq + 1;
    l.nexus_id = id_;
    l.child_id = c.id;
    l.generation = generation_;
    l.size_bytes = size_bytes_;
    l.region_size = region_size_;
    l.block_size = block_size_;
    l.clean = false;
    l.fence_key = fence_key_;
    for (auto& m : children_)
        l.members.push_back({m->id, m->mstate, m->mstate == format::member_state::stale
                                                    ? std::min(m->rebuild_from, size_bytes_)
                                                    : 0});
    return l;
}

// Writes the current membership to `targets` (each its own label); the
// slots that have it. *conflict is set when a child answered with a
// reservation conflict (another nexus holds it).
task<uint32_t> nexus_impl::write_labels(std::vector<child*> targets, int* conflict) {
    std::vector<task<int>> ts;
    std::vector<buffer> bufs;
    for (child* c : targets) {
        label_info l = label_for(*c);
        buffer b = buffer_pool::local().get(format::slot_bytes);
        encode_label(l, std::span<std::byte, format::slot_bytes>(b.data(), format::slot_bytes));
        uint64_t off = (l.seq & 1) * format::slot_bytes;
        ts.push_back(write_bytes(*c->ch, block_size_, off, b.span().first(format::slot_bytes)));
        bufs.push_back(std::move(b));
    }
    std::vector<int> rcs = co_await when_all(std::move(ts));
    uint32_t ok = 0;
    for (size_t i = 0; i < targets.size(); ++i) {
        if (rcs[i] == 0) {
            ok |= bit(targets[i]->slot);
            targets[i]->label_seq += 1;
        } else {
            targets[i]->last_error = rcs[i];
            if (rcs[i] == -EACCES && conflict) *conflict = 1;
            spdlog::warn("nexus {}: label write to {} failed: {}", short_id(id_), targets[i]->uri,
                         error{-rcs[i]}.message());
        }
    }
    co_return ok;
}

task<result<void>> nexus_impl::commit(uint32_t prev_in_sync, bool hold, bool may_wait,
                                      std::string* why, unsigned prev_total) {
    auto g = co_await md_lock_.lock();
    if (hold && !hold_writes_) {
        hold_writes_ = true;
        publish();
    }
    const unsigned prev_n = prev_total ? prev_total : unsigned(std::popcount(prev_in_sync));
    result<void> out;
    for (unsigned attempt = 0;; ++attempt) {
        if (superseded_) {
            out = fail(why, EACCES, superseded_why_);
            break;
        }
        ++generation_;
        std::vector<child*> targets;
        for (auto& c : children_)
            if (c->ch) targets.push_back(c.get());
        int conflict = 0;
        uint32_t ok = co_await write_labels(targets, &conflict);
        if (conflict) {
            supersede("a child answered the label write with a reservation conflict");
            out = fail(why, EACCES, superseded_why_);
            break;
        }
        // An in-sync child that missed the new label failed: it leaves the
        // in-sync set too (never the last one).
        bool changed = false;
        for (auto& c : children_) {
            if (c->mstate != format::member_state::in_sync || (ok & bit(c->slot))) continue;
            if (std::popcount(in_sync_mask()) <= 1) break;
            spdlog::warn("nexus {}: child {} missed the label write: retired", short_id(id_),
                         c->uri);
            c->mstate = format::member_state::stale;
            c->rebuild_from = size_bytes_;
            c->state = child_state::faulted;
            c->reason = c->bd ? reason_of(c->last_error ? c->last_error : -EIO) : "unreachable";
            ++c->failures;
            ++retirements_;
            changed = true;
            if (!c->local() && !closing_ && opened_)
                reactor::local().spawn(bg_.hold(reopen_loop(c)));
        }
        if (changed && attempt < max_slots) {
            publish();
            continue;
        }
        unsigned got = unsigned(std::popcount(ok & prev_in_sync));
        bool survivors_have_it = (ok & in_sync_mask()) != 0;
        if (2 * got > prev_n) break;
        if (survivors_have_it && opt_.minority == options::minority_policy::proceed) {
            spdlog::warn("nexus {}: only {} of {} in-sync children have generation {}; going on "
                         "(minority policy: proceed)",
                         short_id(id_), got, prev_n, generation_);
            break;
        }
        if (survivors_have_it && arbiter_yes_) {
            arbiter_yes_ = false;
            spdlog::warn("nexus {}: generation {} on {} of {} in-sync children; going on (the "
                         "arbiter allowed it)",
                         short_id(id_), generation_, got, prev_n);
            break;
        }
        if (closing_ || !may_wait) {
            out = fail(why, EAGAIN,
                       fmt::format("only {} of the {} children in sync before the change "
                                   "answered; a majority is needed",
                                   got, prev_n));
            break;
        }
        std::string w = fmt::format(
            "only {} of the {} children in sync before the change answered; a majority is "
            "needed before writes go on: waiting for the children to answer or for an arbiter",
            got, prev_n);
        bool first = waiting_.empty();
        if (waiting_ != w) spdlog::error("nexus {}: {}", short_id(id_), w);
        waiting_ = w;
        if (!hold_writes_ || first) {
            hold_writes_ = true;
            publish();
        }
        // Retry after a while, or at once when the arbiter answers.
        auto deadline = std::chrono::steady_clock::now() + opt_.retry_interval;
        while (!arbiter_yes_ && !closing_ && std::chrono::steady_clock::now() < deadline)
            co_await sleep(20ms);
    }
    waiting_.clear();
    if (hold_writes_) {
        hold_writes_ = false;
        publish();
    }
    co_return out;
}

void nexus_impl::supersede(const std::string& why) {
    if (superseded_) return;
    superseded_ = true;
    superseded_why_ =
        "superseded: another nexus has taken the children (" + why + "); this one serves no I/O";
    spdlog::error("nexus {}: {}", short_id(id_), superseded_why_);
    cancel_rebuild_ = true;
    publish();
}

std::shared_ptr<child> nexus_impl::shared(child* c) const {
    for (auto& sp : children_)
        if (sp.get() == c) return sp;
    return nullptr;
}

task<result<void>> nexus_impl::retire(std::vector<child*> cs, std::string reason, bool may_wait,
                                      std::string* why) {
    uint32_t prev = in_sync_mask();
    struct before {
        child* c;
        child_state state;
        std::string reason;
        format::member_state mstate;
        uint64_t rebuild_from;
    };
    std::vector<before> undo;
    std::vector<child*> now;
    for (child* c : cs) {
        if (!c->writable()) continue;
        if (c->state == child_state::online) {
            if (std::popcount(in_sync_mask()) <= 1) {
                spdlog::error("nexus {}: {} failed ({}) but is the last in-sync child: kept",
                              short_id(id_), c->uri, reason);
                continue;
            }
            c->mstate = format::member_state::stale;
            c->rebuild_from = size_bytes_;
        }
        undo.push_back({c, c->state, c->reason, c->mstate, c->rebuild_from});
        if (c->state == child_state::online) {
            c->mstate = format::member_state::stale;
            c->rebuild_from = size_bytes_;
        }
        if (c == rebuild_target_) cancel_rebuild_ = true;
        c->state = child_state::faulted;
        c->reason = reason;
        c->progress.reset();
        ++c->failures;
        ++retirements_;
        now.push_back(c);
        spdlog::warn("nexus {}: child {} retired: {}", short_id(id_), c->uri, reason);
    }
    if (now.empty()) co_return result<void>{};
    std::string w;
    auto r = co_await commit(prev, /*hold=*/true, may_wait, &w);
    if (!r && r.err().code == EAGAIN && !may_wait) {
        // A request without a majority: put things back as they were.
        for (auto& b : undo) {
            b.c->state = b.state;
            b.c->reason = b.reason;
            b.c->mstate = b.mstate;
            b.c->rebuild_from = b.rebuild_from;
        }
        std::string w2;
        (void)co_await commit(in_sync_mask(), false, false, &w2);
        publish();
        if (why) *why = w;
        co_return r;
    }
    if (!r) spdlog::error("nexus {}: retiring: {}", short_id(id_), w);
    for (child* c : now)
        if (!c->local() && !closing_ && !superseded_)
            if (auto sp = shared(c)) reactor::local().spawn(bg_.hold(reopen_loop(sp)));
    if (!r && why) *why = w;
    co_return r;
}

task<void> nexus_impl::retire_in_background(unsigned slot, int rc) {
    child* c = at_slot(slot);
    if (!c) co_return;
    ++c->io_errors;
    if (rc == -EACCES) {
        supersede(fmt::format("child {} answered with a reservation conflict", c->uri));
        co_return;
    }
    if (!c->writable()) co_return;
    (void)co_await retire(just(c), reason_of(rc));
}

void nexus_impl::read_failed(unsigned slot, int rc) {
    struct msg {
        nexus_impl* nx;
        unsigned slot;
        int rc;
    };
    reports_in_flight_.fetch_add(1);
    reactor::local().send(home_, {[](void* p) {
                                      auto* m = static_cast<msg*>(p);
                                      nexus_impl* nx = m->nx;
                                      if (!nx->closing_)
                                          reactor::local().spawn(nx->bg_.hold(
                                              nx->retire_in_background(m->slot, m->rc)));
                                      nx->reports_in_flight_.fetch_sub(1);
                                      delete m;
                                  },
                                  new msg{this, slot, rc}});
}

task<int> nexus_impl::resolve_write(uint32_t sent, uint32_t ok, std::span<const failure> failed) {
    std::vector<failure> fs(failed.begin(), failed.end());
    for (const failure& f : fs) {
        child* c = at_slot(f.slot);
        if (!c) continue;
        ++c->io_errors;
        if (f.rc == -EACCES) {
            supersede(fmt::format("child {} answered a write with a reservation conflict", c->uri));
            continue;
        }
        if (c->writable()) (void)co_await retire(just(c), reason_of(f.rc));
    }
    // Wait for retirements other writes started (this write's failures may
    // be theirs too): holding writes means not durable yet.
    while (hold_writes_ && !superseded_) co_await unblocked_.wait();
    const view* v = view_.load();
    if (v->fail_all) co_return v->fail_all;
    if (v->nreaders == 0) co_return fs.empty() ? -EIO : fs[0].rc;
    for (unsigned i = 0; i < v->nreaders; ++i) {
        unsigned s = v->readers[i];
        if ((sent & bit(s)) && !(ok & bit(s))) {
            for (const failure& f : fs)
                if (f.slot == s) co_return f.rc;
            co_return -EIO;
        }
    }
    co_return 0;
}

task<void> nexus_impl::wait_unblocked(uint64_t r0, uint64_t r1, bool read) {
    for (;;) {
        const view* v = view_.load();
        if (v->fail_all || closing_) co_return;
        if (read ? !v->hold_reads : !v->hold_writes && !(r1 > r0 && window_overlaps(r0, r1)))
            co_return;
        co_await unblocked_.wait();
    }
}

// ---- the write-intent bitmap ---------------------------------------------------

// Writes bitmap blocks (the durable bits, with `add`'s ORed in) to every
// writable child; retires those that fail. 0 when at least one in-sync
// child has them. requires: md_lock_ held.
task<int> nexus_impl::write_bitmap_blocks(std::vector<uint64_t> blocks, const region_bitmap* add) {
    std::vector<child*> targets;
    for (auto& c : children_)
        if (c->ch && c->writable()) targets.push_back(c.get());
    if (targets.empty()) co_return -EIO;
    buffer b = buffer_pool::local().get(format::bitmap_block * blocks.size());
    for (size_t i = 0; i < blocks.size(); ++i)
        durable_->block_bytes(
            blocks[i], b.span().subspan(i * format::bitmap_block, format::bitmap_block), add);
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
        // retire() commits under md_lock_ (held by our caller): later.
        reactor::local().spawn(bg_.hold(
            [](nexus_impl* nx, child* c, int rc) -> task<void> {
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
        if (!all_in_sync || rebuilding_ || resync_pending_ || superseded_ || hold_writes_) continue;
        std::vector<uint64_t> cleared;
        for (uint64_t w = 0; w < durable_->words(); ++w) {
            uint64_t v = durable_->word(w) & ~touched_->word(w);
            for (int k = 0; v && k < 64; ++k)
                if (v >> k & 1) cleared.push_back(w * 64 + uint64_t(k));
        }
        touched_->clear_all();
        if (cleared.empty()) continue;
        for (uint64_t r : cleared) durable_->clear(r);
        // A write that saw the bit set may still be in flight: wait for it.
        co_await grace();
        std::vector<uint64_t> blocks;
        for (uint64_t r : cleared) {
            uint64_t blk = r / (format::bitmap_block * 8);
            if (blocks.empty() || blocks.back() != blk) blocks.push_back(blk);
        }
        auto g = co_await md_lock_.lock();
        (void)co_await write_bitmap_blocks(blocks, nullptr);
    }
}

task<result<void>> nexus_impl::read_bitmap(child& c, region_bitmap& into, std::string* why) {
    uint64_t bytes = bitmap_bytes(size_bytes_, region_size_);
    buffer b = buffer_pool::local().get(bytes);
    int rc = co_await read_bytes(*c.ch, block_size_, format::bitmap_offset, b.span().first(bytes));
    if (rc) co_return fail(why, -rc, fmt::format("{}: reading the bitmap: {}", c.uri, error{-rc}.message()));
    into.merge_bytes(b.span().first(bytes));
    co_return result<void>{};
}

// ---- children that come and go ---------------------------------------------------

task<void> nexus_impl::close_child(child* c) {
    if (c->bd) {
        publish();
        co_await drop_channels(c->slot);
    }
    c->ch.reset();
    c->bd.reset();
    if (c->dev) co_await c->dev->close();
}

// A retired remote child: closes its connection and reconnects with backoff;
// once it answers and is still ours, it is rebuilt (auto_rebuild).
task<void> nexus_impl::reopen_loop(std::shared_ptr<child> cp) {
    child* c = cp.get();
    if (c->reconnecting) co_return;
    c->reconnecting = true;
    co_await close_child(c);
    auto delay = 250ms;
    while (!closing_ && !superseded_ && !c->removed && c->state == child_state::faulted) {
        std::string why;
        auto bd = co_await c->dev->open(&why);
        if (bd) {
            auto ch = bd.value()->open_channel();
            buffer b = buffer_pool::local().get(2 * format::slot_bytes);
            int rc = co_await read_bytes(*ch, block_size_, 0, b.span().first(2 * format::slot_bytes));
            std::string lwhy;
            auto l = rc ? result<label_info>(error{-rc}) : pick_label(b.span().first(2 * format::slot_bytes), &lwhy);
            if (l && (l->nexus_id != id_ || l->child_id != c->id)) {
                c->reason = "not this nexus's child any more";
                spdlog::error("nexus {}: {} came back with another label: not used", short_id(id_), c->uri);
                ch.reset();
                co_await c->dev->close();
                break;
            }
            if (l && fence_generation(l->fence_key) > fence_generation(fence_key_)) {
                supersede(fmt::format("{} was written by a newer nexus (generation {})", c->uri,
                                      l->generation));
                ch.reset();
                co_await c->dev->close();
                break;
            }
            auto fenced = co_await c->dev->fence(fence_key_, &why);
            if (!fenced && fenced.err().code == EACCES) {
                supersede(why);
                ch.reset();
                co_await c->dev->close();
                break;
            }
            if (fenced && (l || l.err().code == ENODATA)) {
                c->bd = bd.value();
                c->ch = std::move(ch);
                c->label_seq = l ? l->seq : 0;
                c->own_bits = std::make_unique<region_bitmap>(durable_->size());
                if (l)
                    (void)co_await read_bitmap(*c, *c->own_bits, &why);
                else
                    c->rebuild_from = 0;  // its label is gone: copy it all
                spdlog::info("nexus {}: child {} is back", short_id(id_), c->uri);
                c->reconnecting = false;
                if (opt_.auto_rebuild) queue_rebuild(c);
                co_return;
            }
            spdlog::warn("nexus {}: child {} answered but {}", short_id(id_), c->uri,
                         fenced ? lwhy : why);
            ch.reset();
            co_await c->dev->close();
        }
        int rc = co_await sleep(delay).abort_with(stop_);
        if (rc == -ECANCELED) break;
        delay = std::min<std::chrono::milliseconds>(delay * 2, 5000ms);
    }
    c->reconnecting = false;
}

// ---- open -----------------------------------------------------------------------

namespace {

struct probe {
    std::string uri;
    uuid known{};
    std::unique_ptr<child_device> dev;
    std::shared_ptr<bdev::bdev> bd;
    std::string open_error;
    int open_err = 0;
    std::optional<label_info> label;
    int label_err = 0;  // ENODATA: blank; EUCLEAN: damaged; other: read error
    std::string label_why;
};

task<void> probe_child(probe& pr) {
    auto bd = co_await pr.dev->open(&pr.open_error);
    if (!bd) {
        pr.open_err = bd.err().code;
        co_return;
    }
    pr.bd = bd.value();
    auto ch = pr.bd->open_channel();
    uint32_t bs = pr.bd->block_size();
    buffer b = buffer_pool::local().get(2 * format::slot_bytes);
    if (pr.bd->size_bytes() < format::metadata_bytes) {
        pr.label_err = ENODATA;
        co_return;
    }
    int rc = co_await read_bytes(*ch, bs, 0, b.span().first(2 * format::slot_bytes));
    if (rc) {
        pr.label_err = -rc;
        pr.label_why = error{-rc}.message();
        co_return;
    }
    auto l = pick_label(b.span().first(2 * format::slot_bytes), &pr.label_why);
    if (l)
        pr.label = l.value();
    else
        pr.label_err = l.err().code;
}

}  // namespace

task<result<std::shared_ptr<nexus>>> nexus::open(params p, child_factory f, std::string* why) {
    if (p.children.empty()) co_return fail(why, EINVAL, "a nexus needs at least one child");
    if (p.children.size() > max_slots)
        co_return fail(why, EINVAL, fmt::format("a nexus has at most {} children", max_slots));
    std::vector<probe> probes(p.children.size());
    for (size_t i = 0; i < p.children.size(); ++i) {
        auto u = parse_child_uri(p.children[i], why);
        if (!u) co_return u.err();
        probes[i].uri = to_string(u.value());
        if (i < p.known_ids.size()) probes[i].known = p.known_ids[i];
        for (size_t j = 0; j < i; ++j)
            if (probes[j].uri == probes[i].uri)
                co_return fail(why, EEXIST, fmt::format("{} is given twice", probes[i].uri));
    }
    for (auto& pr : probes) {
        auto d = f(pr.uri, why);
        if (!d) co_return d.err();
        pr.dev = std::move(d.value());
    }
    // Connect to every child at once: a slow one must not add up.
    {
        std::vector<task<int>> ts;
        for (auto& pr : probes)
            ts.push_back([](probe& pr) -> task<int> {
                co_await probe_child(pr);
                co_return 0;
            }(pr));
        (void)co_await when_all(std::move(ts));
    }
    auto close_all = [&]() -> task<void> {
        for (auto& pr : probes)
            if (pr.bd) {
                pr.bd.reset();
                co_await pr.dev->close();
            }
    };
    auto refuse = [&](int code, std::string msg) -> task<error> {
        co_await close_all();
        if (why) *why = std::move(msg);
        co_return error{code};
    };

    // Which nexus do the labels speak of?
    const bool id_given = !pool::is_nil(p.id);
    const label_info* latest = nullptr;
    for (auto& pr : probes) {
        if (pr.bd && pr.label_err == EUCLEAN)
            co_return co_await refuse(
                EINVAL, fmt::format("{} has a damaged nexus label ({}): remove it from the list, "
                                    "or wipe its first MiB to use it as a new child",
                                    pr.uri, pr.label_why));
        if (pr.bd && pr.label_err && pr.label_err != ENODATA)
            co_return co_await refuse(EIO, fmt::format("{}: reading its label: {}", pr.uri,
                                                       pr.label_why));
        if (!pr.label) continue;
        if (!id_given || pr.label->nexus_id != p.id)
            co_return co_await refuse(
                EINVAL,
                fmt::format("{} belongs to nexus {}{}", pr.uri, pool::to_string(pr.label->nexus_id),
                            id_given ? "" : " (give that UUID to re-create it)"));
        if (!latest || pr.label->newer_than(*latest)) latest = &*pr.label;
    }
    const uuid id = id_given ? p.id : pool::random_uuid();

    uint32_t bs = 0;
    for (auto& pr : probes)
        if (pr.bd) {
            if (bs && pr.bd->block_size() != bs)
                co_return co_await refuse(
                    EINVAL, fmt::format("{} has {}-byte blocks, other children {}: children of "
                                        "a nexus share one block size",
                                        pr.uri, pr.bd->block_size(), bs));
            bs = pr.bd->block_size();
        }
    uint64_t size = p.size_bytes;
    uint64_t region = 0;
    if (latest) {
        if (size && size != latest->size_bytes)
            co_return co_await refuse(
                EINVAL, fmt::format("the children hold nexus {} of {} bytes, not {}",
                                    pool::to_string(id), latest->size_bytes, size));
        size = latest->size_bytes;
        region = latest->region_size;
        if (bs && bs != latest->block_size)
            co_return co_await refuse(EINVAL,
                                      fmt::format("the children have {}-byte blocks, the nexus "
                                                  "label says {}",
                                                  bs, latest->block_size));
        bs = latest->block_size;
    } else {
        for (auto& pr : probes)
            if (!pr.bd)
                co_return co_await refuse(pr.open_err == ENOENT ? ENOENT : ENODEV,
                                          "cannot open a child: " + pr.open_error);
        if (size == 0) co_return co_await refuse(EINVAL, "a new nexus needs a size");
        if (size % bs != 0)
            co_return co_await refuse(
                EINVAL, fmt::format("size {} is not a multiple of the children's {}-byte blocks",
                                    size, bs));
        region = region_size_for(size);
    }
    for (auto& pr : probes)
        if (pr.bd && pr.bd->size_bytes() < format::metadata_bytes + size)
            co_return co_await refuse(
                EINVAL, fmt::format("{} holds {} bytes; a child of a nexus of {} bytes needs {} "
                                    "(1 MiB more for the nexus label and bitmap)",
                                    pr.uri, pr.bd->size_bytes(), size,
                                    format::metadata_bytes + size));

    auto impl = std::make_shared<nexus_impl>(id, size, bs, region, p.opt, f);
    nexus_impl& nx = *impl;
    // Generations only grow: start above every one seen, not only latest's.
    nx.generation_ = 0;
    for (auto& pr : probes)
        if (pr.label) nx.generation_ = std::max(nx.generation_, pr.label->generation);
    unsigned prev_total = 0;
    if (latest) prev_total = unsigned(latest->in_sync_count());

    // Members: each child gets its place from its label (or the known id).
    std::vector<uuid> seen;
    for (size_t i = 0; i < probes.size(); ++i) {
        probe& pr = probes[i];
        auto c = std::make_shared<child>();
        c->slot = unsigned(i);
        c->uri = pr.uri;
        c->dev = std::move(pr.dev);
        c->bd = pr.bd;
        if (c->bd) c->ch = c->bd->open_channel();
        const member_info* m = nullptr;
        if (latest && pr.label && pr.label->nexus_id == id) {
            m = latest->find(pr.label->child_id);
            c->label_seq = pr.label->seq;
        } else if (latest && !pr.bd && !pool::is_nil(pr.known)) {
            m = latest->find(pr.known);
        }
        if (!c->bd && !m && latest) {
            nx.children_.push_back(c);  // so close_all below sees its device
            for (auto& cc : nx.children_)
                if (cc->bd) {
                    cc->ch.reset();
                    cc->bd.reset();
                    co_await cc->dev->close();
                }
            co_return fail(why, ENODEV,
                           fmt::format("cannot open {} ({}), and its place in nexus {} is "
                                       "unknown: give its UUID, or leave it out",
                                       pr.uri, pr.open_error, pool::to_string(id)));
        }
        if (!latest) {
            c->id = pool::random_uuid();
            c->mstate = format::member_state::in_sync;
            c->state = child_state::online;
        } else if (m) {
            c->id = m->id;
            bool current = pr.label && pr.label->generation == latest->generation;
            if (m->in_sync() && current && c->bd) {
                c->mstate = format::member_state::in_sync;
                c->state = child_state::online;
            } else {
                c->mstate = format::member_state::stale;
                c->rebuild_from = m->in_sync() ? size : m->rebuild_from;
                c->state = child_state::faulted;
                c->reason = c->bd ? "stale" : "unreachable";
            }
        } else {
            // New to this nexus (blank, or a member removed earlier): all of it.
            c->id = pool::random_uuid();
            c->mstate = format::member_state::stale;
            c->rebuild_from = 0;
            c->state = child_state::faulted;
            c->reason = "stale";
        }
        if (std::find(seen.begin(), seen.end(), c->id) != seen.end()) {
            nx.children_.push_back(c);
            for (auto& cc : nx.children_)
                if (cc->bd) {
                    cc->ch.reset();
                    cc->bd.reset();
                    co_await cc->dev->close();
                }
            co_return fail(why, EEXIST,
                           fmt::format("{} is the same child as another one given", pr.uri));
        }
        seen.push_back(c->id);
        nx.children_.push_back(c);
    }
    auto undo = [&]() -> task<void> {
        // Background work a failed commit may have started ends first.
        nx.closing_ = true;
        nx.stop_.request_abort();
        co_await nx.bg_.close();
        for (auto& c : nx.children_)
            if (c->bd) {
                c->ch.reset();
                c->bd.reset();
                co_await c->dev->close();
            }
    };
    if (std::popcount(nx.in_sync_mask()) == 0) {
        std::string members;
        for (auto& m : latest->members)
            if (m.in_sync()) members += (members.empty() ? "" : ", ") + pool::to_string(m.id);
        co_await undo();
        co_return fail(why, ENODEV,
                       fmt::format("none of the children given is in sync: at generation {} the "
                                   "in-sync children are {}",
                                   latest->generation, members));
    }

    // A re-creation that would not reach a majority of the children in sync
    // at the latest generation is refused before anything is written.
    if (latest && !p.allow_minority && 2 * unsigned(std::popcount(nx.in_sync_mask())) <= prev_total) {
        unsigned got = unsigned(std::popcount(nx.in_sync_mask()));
        co_await undo();
        co_return fail(why, EAGAIN,
                       fmt::format("only {} of the {} children in sync at generation {} of nexus "
                                   "{} were given and answer: a majority is needed to re-create "
                                   "it safely, or the arbiter's yes (allow_minority)",
                                   got, prev_total, latest->generation, pool::to_string(id)));
    }

    // The write-intent bitmap: what the in-sync children have (their union),
    // and each stale child's own (regions it may hold that others lack).
    for (auto& c : nx.children_) {
        if (!c->ch || !latest) continue;
        std::string w;
        if (c->state == child_state::online) {
            auto r = co_await nx.read_bitmap(*c, *nx.durable_, &w);
            if (!r) {
                co_await undo();
                co_return fail(why, EIO, w);
            }
        } else if (c->rebuild_from > 0) {
            c->own_bits = std::make_unique<region_bitmap>(nx.durable_->size());
            (void)co_await nx.read_bitmap(*c, *c->own_bits, &w);
        }
    }
    bool unclean = latest && !latest->clean;

    // Fence the remote children for this instance, then commit.
    nx.fence_key_ = fence_key(nx.generation_ + 1, random_tag());
    for (auto& c : nx.children_) {
        if (!c->bd) continue;
        std::string w;
        auto r = co_await c->dev->fence(nx.fence_key_, &w);
        if (!r && r.err().code == EACCES) {
            co_await undo();
            co_return fail(why, EACCES,
                           fmt::format("{} is held by a newer nexus ({}): this one is superseded",
                                       c->uri, w));
        }
        if (!r) spdlog::warn("nexus {}: fencing {}: {}", short_id(id), c->uri, w);
    }
    nx.opt_.minority = p.allow_minority ? options::minority_policy::proceed : nx.opt_.minority;
    nx.publish();
    std::string w;
    uint32_t prev_mask = nx.in_sync_mask();
    // No waiting while opening: a minority is refused here.
    auto committed = co_await nx.commit(prev_mask, false, false, &w, prev_total);
    nx.opt_.minority = p.opt.minority;
    if (!committed) {
        co_await undo();
        if (committed.err().code == EAGAIN)
            co_return fail(why, EAGAIN,
                           fmt::format("too few in-sync children answered to re-create nexus {} "
                                       "safely ({}): a majority of the {} in sync at generation "
                                       "{} is needed, or the arbiter's yes (allow_minority)",
                                       pool::to_string(id), w, prev_total,
                                       latest ? latest->generation : 0));
        co_return fail(why, committed.err().code, w);
    }
    bool vwc = false, unmap_zeroes = true;
    for (auto& c : nx.children_)
        if (c->bd) {
            vwc = vwc || c->bd->volatile_write_cache();
            unmap_zeroes = unmap_zeroes && c->bd->unmap_reads_zeroes();
        }
    auto dev = make_nexus_bdev(impl, "nexus-" + pool::to_string(id), vwc, unmap_zeroes);
    if (unclean && nx.durable_->count() > 0 && std::popcount(nx.in_sync_mask()) > 1) {
        nx.resync_pending_ = true;
        child* src = nx.pick_source(nullptr);
        nx.resync_source_ = src ? int(src->slot) : -1;
    }
    nx.publish();
    spdlog::info("nexus {}: {} at generation {} ({} bytes, {} children, {} in sync{})",
                 short_id(id), latest ? "re-created" : "created", nx.generation_, size,
                 nx.children_.size(), std::popcount(nx.in_sync_mask()),
                 nx.resync_pending_ ? ", resyncing after an unclean stop" : "");
    reactor::local().spawn(nx.bg_.hold(nx.clear_loop()));
    if (nx.resync_pending_) nx.queue_rebuild(nullptr);
    nx.opened_ = true;
    for (auto& c : nx.children_) {
        if (c->state != child_state::faulted) continue;
        bool failed_now = !c->bd || c->reason != "stale";  // unreachable, or failed the commit
        if (failed_now && !c->local())
            reactor::local().spawn(nx.bg_.hold(nx.reopen_loop(c)));
        else if (c->bd && nx.opt_.auto_rebuild)
            nx.queue_rebuild(c.get());
    }
    co_return std::shared_ptr<nexus>(new nexus(std::move(impl), std::move(dev)));
}

// ---- close --------------------------------------------------------------------

task<void> nexus_impl::close(bool clean) {
    if (closed_) co_return;
    closing_ = true;
    cancel_rebuild_ = true;
    stop_.request_abort();
    arbiter_changed_.notify_all();
    unblocked_.notify_all();
    flushed_.notify_all();
    while (reports_in_flight_.load() > 0) co_await yield{};
    co_await bg_.close();
    {
        auto g = co_await md_lock_.lock();
        bool all_in_sync = std::all_of(children_.begin(), children_.end(), [](auto& c) {
            return c->mstate == format::member_state::in_sync && c->ch;
        });
        if (!superseded_ && clean) {
            // No I/O is left: the in-sync children are identical, and with no
            // stale member the bitmap has nothing left to say.
            if (all_in_sync && durable_->count() > 0) {
                std::vector<uint64_t> blocks;
                for (uint64_t b = 0; b * format::bitmap_block * 8 < durable_->size(); ++b)
                    blocks.push_back(b);
                durable_->clear_all();
                (void)co_await write_bitmap_blocks(blocks, nullptr);
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
        }
    }
    closed_ = true;
    publish();
    co_await grace();
    for (view* v : retired_views_) delete v;
    retired_views_.clear();
    // Channels of the nexus may outlive it in idle host queues: they let go
    // of the children's channels now, before the children close.
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
    spdlog::info("nexus {}: closed{}", short_id(id_),
                 superseded_ ? " (superseded)" : clean ? " cleanly" : " without marking it clean");
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
        cs.state = c->state;
        cs.reason = c->reason;
        cs.local = c->local();
        cs.reconnecting = c->reconnecting;
        cs.rebuild = c->progress;
        cs.io_errors = c->io_errors;
        if (c->state == child_state::online) ++online;
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
        co_return co_await give_up(EINVAL, fmt::format("{} has {}-byte blocks, the nexus {}",
                                                       norm, pr.bd->block_size(), block_size_));
    if (pr.bd->size_bytes() < format::metadata_bytes + size_bytes_)
        co_return co_await give_up(
            EINVAL, fmt::format("{} holds {} bytes; a child of this nexus needs {} (its {} "
                                "bytes and 1 MiB for the label and bitmap)",
                                norm, pr.bd->size_bytes(), format::metadata_bytes + size_bytes_,
                                size_bytes_));
    if (pr.label && pr.label->nexus_id != id_)
        co_return co_await give_up(
            EINVAL, fmt::format("{} belongs to nexus {}: destroy that nexus or wipe the child's "
                                "first MiB",
                                norm, pool::to_string(pr.label->nexus_id)));
    std::string w;
    auto fenced = co_await pr.dev->fence(fence_key_, &w);
    if (!fenced && fenced.err().code == EACCES)
        co_return co_await give_up(EACCES, fmt::format("{} is held by another nexus: {}", norm, w));
    uint32_t used = 0;
    for (auto& c : children_) used |= bit(c->slot);
    auto c = std::make_shared<child>();
    c->slot = unsigned(std::countr_one(used));
    c->uri = norm;
    c->dev = std::move(pr.dev);
    c->bd = pr.bd;
    c->ch = c->bd->open_channel();
    c->id = pool::random_uuid();
    // A child that was a member before gets a partial rebuild if it still
    // holds its place; anything else is copied in full.
    c->mstate = format::member_state::stale;
    c->rebuild_from = 0;
    if (pr.label) {
        c->label_seq = pr.label->seq;
    }
    c->state = child_state::faulted;
    c->reason = "stale";
    children_.push_back(c);
    auto r = co_await commit(in_sync_mask(), false, false, why);
    if (!r) {
        children_.pop_back();
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
    if (c->state == child_state::online && std::popcount(in_sync_mask()) <= 1)
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
    auto r = co_await commit(in_sync_mask(), false, false, &w);
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
    if (c->state == child_state::online && std::popcount(in_sync_mask()) <= 1)
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
        (void)co_await read_bitmap(*c, *c->own_bits, &w);
    }
    c->reason = "stale";
    queue_rebuild(c);
    co_return result<void>{};
}

task<result<void>> nexus_impl::arbitrate(bool allow, std::string* why) {
    if (waiting_.empty())
        co_return fail(why, EINVAL, "the nexus is not waiting for an arbiter");
    if (allow) {
        arbiter_yes_ = true;
        arbiter_changed_.notify_all();
        spdlog::warn("nexus {}: the arbiter allows going on without a majority", short_id(id_));
    }
    co_return result<void>{};
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
task<result<void>> nexus::arbitrate(bool allow, std::string* why) {
    return impl_->arbitrate(allow, why);
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

}  // namespace weft::nexus
