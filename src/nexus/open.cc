// Opening a nexus: connecting to the children, reading their labels, deciding
// from the latest one which are in sync (or making a new nexus over blank
// children), fencing the remote ones, and the first commit.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>

#include <sys/random.h>

#include "nexus/child_uri.h"
#include "nexus/nexus_impl.h"
#include "runtime/buffer_pool.h"
#include "runtime/runtime.h"
#include "runtime/uring_op.h"
#include "runtime/when_all.h"

namespace weft::nexus {

using namespace std::chrono_literals;

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
            co_return co_await refuse(
                EIO, fmt::format("{}: reading its label: {}", pr.uri, pr.label_why));
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
        if (size && size < latest->size_bytes)
            co_return co_await refuse(
                EINVAL, fmt::format("the children hold nexus {} of {} bytes, more than {}: a "
                                    "nexus does not shrink",
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
                EINVAL,
                fmt::format("{} holds {} bytes; a child of a nexus of {} bytes needs {} "
                            "(1 MiB more for the nexus label and bitmap)",
                            pr.uri, pr.bd->size_bytes(), size, format::metadata_bytes + size));

    auto impl = std::make_shared<nexus_impl>(id, size, bs, region, p.opt, f);
    nexus_impl& nx = *impl;
    // Generations only grow: start above every one seen, not only latest's.
    nx.generation_ = 0;
    for (auto& pr : probes)
        if (pr.label) nx.generation_ = std::max(nx.generation_, pr.label->generation);
    unsigned prev_total = 0;
    if (latest) prev_total = unsigned(latest->in_sync_count());

    // Closes what is open so far: the children made, and the probes from
    // `next` on that no child took yet.
    auto close_opened = [&](size_t next) -> task<void> {
        for (auto& cc : nx.children_)
            if (cc->bd) {
                cc->ch.reset();
                cc->bd.reset();
                co_await cc->dev->close();
            }
        for (size_t k = next; k < probes.size(); ++k)
            if (probes[k].bd) {
                probes[k].bd.reset();
                co_await probes[k].dev->close();
            }
    };

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
            nx.children_.push_back(c);
            co_await close_opened(i + 1);
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
            bool current = pr.label && pr.label->generation == latest->generation &&
                           pr.label->fence_key == latest->fence_key;
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
            co_await close_opened(i + 1);
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
    if (latest && !p.allow_minority &&
        2 * unsigned(std::popcount(nx.in_sync_mask())) <= prev_total) {
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
            auto read = co_await nx.read_bitmap(*c, *c->own_bits, &w);
            if (!read) c->rebuild_from = 0;
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
            co_return fail(
                why, EACCES,
                fmt::format("{} is held by a newer nexus ({}): this one is superseded", c->uri, w));
        }
        if (!r) {
            // Not fenced, not used: an older nexus might still write it. It
            // is reconnected (and fenced) once the nexus is open.
            spdlog::warn("nexus {}: fencing {}: {}; not used for now", short_id(id), c->uri, w);
            if (c->mstate == format::member_state::in_sync) c->rebuild_from = size;
            c->mstate = format::member_state::stale;
            c->state = child_state::faulted;
            c->reason = "unreachable";
            c->ch.reset();
            c->bd.reset();
            co_await c->dev->close();
        }
    }
    nx.opt_.minority = p.allow_minority ? options::minority_policy::proceed : nx.opt_.minority;
    nx.publish();
    std::string w;
    nx.durable_in_sync_ = nx.in_sync_mask();
    // No waiting while opening: a minority is refused here.
    auto committed = co_await nx.commit(false, &w, prev_total);
    nx.opt_.minority = p.opt.minority;
    if (!committed) {
        co_await undo();
        if (committed.err().code == EAGAIN)
            co_return fail(
                why, EAGAIN,
                fmt::format("too few in-sync children answered to re-create nexus {} "
                            "safely ({}): a majority of the {} in sync at generation "
                            "{} is needed, or the arbiter's yes (allow_minority)",
                            pool::to_string(id), w, prev_total, latest ? latest->generation : 0));
        co_return fail(why, committed.err().code, w);
    }
    if (p.size_bytes > nx.size_bytes_) {
        // Asked for more than the labels say (the children grew while no
        // nexus was open): grown now, before any I/O.
        std::string gw;
        auto grown = co_await nx.check_growth(p.size_bytes, &gw);
        if (grown) grown = co_await nx.grow_quiet(p.size_bytes, &gw);
        if (!grown) {
            co_await undo();
            co_return fail(why, grown.err().code, gw);
        }
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
                 short_id(id), latest ? "re-created" : "created", nx.generation_, nx.size_bytes_,
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

}  // namespace weft::nexus
