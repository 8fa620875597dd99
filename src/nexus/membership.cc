// The membership and its commits: labels written to the children, the
// majority rule (hold writes, the arbiter, the policy), retirements of
// failed children, being superseded, and what a failed write is told.
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
        l.members.push_back({m->id, m->mstate,
                             m->mstate == format::member_state::stale
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

task<result<void>> nexus_impl::commit(bool may_wait, std::string* why, unsigned prev_total) {
    auto g = co_await md_lock_.lock();
    const uint32_t prev_in_sync = durable_in_sync_;
    const unsigned prev_n = prev_total ? prev_total : unsigned(std::popcount(prev_in_sync));
    bool holding = false;  // this commit retired someone: writes wait for it
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
        // in-sync set too (never the last one), and writes wait until that
        // is durable as well.
        bool changed = false;
        for (auto& c : children_) {
            if (c->mstate != format::member_state::in_sync || (ok & bit(c->slot))) continue;
            if (durably_in_sync() <= 1) break;
            spdlog::warn("nexus {}: child {} missed the label write: retired", short_id(id_),
                         c->uri);
            if (!holding) {
                holding = true;
                ++retiring_;
            }
            mark_retired(*c,
                         c->bd ? reason_of(c->last_error ? c->last_error : -EIO) : "unreachable");
            changed = true;
        }
        if (changed && attempt < max_slots) {
            publish();
            continue;
        }
        unsigned got = unsigned(std::popcount(ok & prev_in_sync));
        bool survivors_have_it = (ok & in_sync_mask()) != 0;
        if (2 * got > prev_n) break;
        if (survivors_have_it && opt_.minority == options::minority_policy::proceed) {
            spdlog::warn(
                "nexus {}: only {} of {} in-sync children have generation {}; going on "
                "(minority policy: proceed)",
                short_id(id_), got, prev_n, generation_);
            break;
        }
        if (survivors_have_it && arbiter_yes_) {
            arbiter_yes_ = false;
            spdlog::warn(
                "nexus {}: generation {} on {} of {} in-sync children; going on (the "
                "arbiter allowed it)",
                short_id(id_), generation_, got, prev_n);
            break;
        }
        // A request gives up (EAGAIN), and so does an open (nothing was
        // acknowledged yet); but children this commit retired itself must be
        // retired durably before writes go on: then it waits like a failure.
        if (closing_ || !opened_ || (!may_wait && !holding)) {
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
        if (waiting_ != w) {
            spdlog::error("nexus {}: {}", short_id(id_), w);
            waiting_ = w;
            publish();  // reads wait too now
        }
        // The children that did not answer are being reconnected (their
        // retirement started it); retry after a while, or at once when the
        // arbiter answers.
        auto deadline = std::chrono::steady_clock::now() + opt_.retry_interval;
        while (!arbiter_yes_ && !closing_ && !superseded_ &&
               std::chrono::steady_clock::now() < deadline)
            co_await sleep(20ms);
    }
    if (out) durable_in_sync_ = in_sync_mask();
    if (!waiting_.empty()) {
        waiting_.clear();
        publish();
    }
    if (holding) end_retiring();
    co_return out;
}

void nexus_impl::mark_retired(child& c, const std::string& reason) {
    if (c.state == child_state::online) {
        c.mstate = format::member_state::stale;
        c.rebuild_from = size_bytes_;
    }
    if (&c == rebuild_target_) cancel_rebuild_ = true;
    c.state = child_state::faulted;
    c.reason = reason;
    c.progress.reset();
    ++c.failures;
    ++retirements_;
    // A remote child is reconnected meanwhile: a commit waiting for a
    // majority may need it to answer.
    if (!c.local() && !closing_ && !superseded_ && opened_)
        if (auto sp = shared(&c)) reactor::local().spawn(bg_.hold(reopen_loop(sp)));
}

void nexus_impl::end_retiring() {
    if (--retiring_ == 0) publish();
    retired_.notify_all();
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
    struct before {
        child* c;
        child_state state;
        std::string reason;
        format::member_state mstate;
        uint64_t rebuild_from;
    };
    std::vector<before> undo;
    for (child* c : cs) {
        if (!c->writable()) continue;
        if (c->state == child_state::online && durably_in_sync() <= 1) {
            spdlog::error("nexus {}: {} failed ({}) but is the last in-sync child: kept",
                          short_id(id_), c->uri, reason);
            continue;
        }
        undo.push_back({c, c->state, c->reason, c->mstate, c->rebuild_from});
        if (undo.size() == 1) {
            // From here until the commit is durable, no write may be
            // acknowledged without the retired children (they would be
            // taken for in sync after a crash).
            ++retiring_;
        }
        mark_retired(*c, reason);
        spdlog::warn("nexus {}: child {} retired: {}", short_id(id_), c->uri, reason);
    }
    if (undo.empty()) co_return result<void>{};
    publish();
    std::string w;
    auto r = co_await commit(may_wait, &w);
    if (!r && r.err().code == EAGAIN && !may_wait) {
        // A request without a majority: put things back as they were.
        for (auto& b : undo) {
            b.c->state = b.state;
            b.c->reason = b.reason;
            b.c->mstate = b.mstate;
            b.c->rebuild_from = b.rebuild_from;
        }
        std::string w2;
        (void)co_await commit(false, &w2);
        end_retiring();
        if (why) *why = w;
        co_return r;
    }
    end_retiring();
    if (!r) spdlog::error("nexus {}: retiring: {}", short_id(id_), w);
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
        if (c->writable()) {
            auto r = co_await retire(just(c), reason_of(f.rc));
            // Not durable (the nexus is closing): the write is not
            // acknowledged without it.
            if (!r) co_return f.rc;
        }
    }
    // Another write may have started the retirement of the same children:
    // wait until every retirement under way is durable.
    while (retiring_ > 0 && !superseded_ && !closed_) co_await retired_.wait();
    if (superseded_) co_return -ESTALE;
    // Acknowledged only if every child still in sync has it (a failed child
    // kept as the last in-sync one passes its error on).
    uint32_t in_sync = 0;
    for (auto& c : children_)
        if (c->state == child_state::online) in_sync |= bit(c->slot);
    if (in_sync == 0) co_return fs.empty() ? -EIO : fs[0].rc;
    uint32_t missing = sent & in_sync & ~ok;
    if (missing) {
        for (const failure& f : fs)
            if (missing & bit(f.slot)) co_return f.rc;
        co_return -EIO;
    }
    co_return (ok & in_sync) ? 0 : -EIO;
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

}  // namespace weft::nexus
