// The nexus over RAM children: mirroring, retirement on errors, the majority
// rule, partial and full rebuilds under I/O, re-creation from the children's
// labels after a crash, and the resync of an unclean stop.
#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "nexus/nexus.h"
#include "nexus/nexus_test_util.h"
#include "pool/pool.h"
#include "runtime/gate.h"
#include "runtime/runtime.h"
#include "runtime/uring_op.h"
#include "runtime/when_all.h"

namespace weft::nexus {
namespace {

using namespace std::chrono_literals;
using test::mem_rig;
using weft::test::run_reactors;

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t nexus_bytes = 16 * MiB;  // 256 regions of 64 KiB
constexpr uint64_t child_bytes = nexus_bytes + MiB;

// Lists without braces (a braced list inside a coroutine trips g++ 12).
template <typename... T>
std::vector<std::string> names(T... v) {
    std::vector<std::string> out;
    (out.push_back(v), ...);
    return out;
}
template <typename... T>
std::vector<std::shared_ptr<test::mem_disk>> disks(mem_rig& rig, T... v) {
    std::vector<std::shared_ptr<test::mem_disk>> out;
    (out.push_back(rig.at(v)), ...);
    return out;
}

options fast_options() {
    options o;
    o.clear_interval = 100ms;
    o.retry_interval = 50ms;
    o.rebuild_rate = 0;
    return o;
}

struct io {
    std::unique_ptr<bdev::channel> ch;
    explicit io(nexus& n) : ch(n.bdev()->open_channel()) {}
    // Writes `blocks` 512-byte blocks at `lba` with pattern `seed`.
    task<int> write(uint64_t lba, uint32_t blocks, uint8_t seed) {
        buffer b = buffer_pool::local().get(blocks * 512);
        test::fill(b.span().first(blocks * 512), lba, 512, seed);
        iovec v{b.data(), blocks * 512ul};
        co_return co_await ch->write(lba, blocks, {&v, 1}, false);
    }
    // 0 when the blocks hold the pattern, -EILSEQ when not, or the error.
    task<int> check(uint64_t lba, uint32_t blocks, uint8_t seed) {
        buffer b = buffer_pool::local().get(blocks * 512);
        iovec v{b.data(), blocks * 512ul};
        int rc = co_await ch->read(lba, blocks, {&v, 1});
        if (rc) co_return rc;
        co_return test::mismatch(b.span().first(blocks * 512), lba, 512, seed) < 0 ? 0 : -EILSEQ;
    }
};

// Whether the data areas of the given disks are byte-identical.
task<bool> same_data(std::vector<std::shared_ptr<test::mem_disk>> disks) {
    std::vector<std::unique_ptr<bdev::channel>> chs;
    for (auto& d : disks) chs.push_back(d->raw->open_channel());
    buffer a = buffer_pool::local().get(MiB), b = buffer_pool::local().get(MiB);
    for (uint64_t off = MiB; off < child_bytes; off += MiB) {
        iovec va{a.data(), MiB};
        if (co_await chs[0]->read(off / 512, MiB / 512, {&va, 1})) co_return false;
        for (size_t i = 1; i < chs.size(); ++i) {
            iovec vb{b.data(), MiB};
            if (co_await chs[i]->read(off / 512, MiB / 512, {&vb, 1})) co_return false;
            if (std::memcmp(a.data(), b.data(), MiB) != 0) co_return false;
        }
    }
    co_return true;
}

task<result<label_info>> label_of(mem_rig& rig, const std::string& name) {
    auto dev = rig.factory()(mem_rig::uri(name), nullptr);
    co_return co_await read_child_label(*dev.value(), nullptr, nullptr);
}

// Polls `pred` for up to `limit`.
template <typename P>
task<bool> eventually(P pred, std::chrono::milliseconds limit = 5000ms) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (pred()) co_return true;
        co_await sleep(5ms);
    }
    co_return pred();
}

const child_status& child_of(const nexus_status& s, const std::string& name) {
    for (auto& c : s.children)
        if (c.uri == mem_rig::uri(name)) return c;
    throw std::runtime_error("no child " + name);
}

task<std::shared_ptr<nexus>> make(mem_rig& rig, std::vector<std::string> names, uuid id = {},
                                  uint64_t size = nexus_bytes, options o = fast_options()) {
    nexus::params p;
    p.id = id;
    p.size_bytes = size;
    for (auto& n : names) p.children.push_back(mem_rig::uri(n));
    p.opt = o;
    std::string why;
    auto r = co_await nexus::open(p, rig.factory(), &why);
    EXPECT_TRUE(r) << why;
    if (!r) co_return nullptr;
    co_return r.value();
}

TEST(Nexus, MirrorsWritesAndCreatesLabels) {
    run_reactors(2, []() -> task<void> {
        mem_rig rig;
        for (auto n : names("a", "b", "c")) rig.add(n, child_bytes);
        auto nx = co_await make(rig, names("a", "b", "c"));
        CO_ASSERT_TRUE(nx);
        EXPECT_EQ(nx->bdev()->size_bytes(), nexus_bytes);
        // Writes from both reactors.
        int rc0 = 0, rc1 = 0;
        {
            io x(*nx);
            rc0 = co_await x.write(0, 64, 1);
        }
        rc1 = co_await on(1, [&]() -> task<int> {
            io y(*nx);
            co_return co_await y.write(8192, 128, 2);
        });
        EXPECT_EQ(rc0, 0);
        EXPECT_EQ(rc1, 0);
        CO_ASSERT_TRUE(co_await same_data(disks(rig, "a", "b", "c")));
        io x(*nx);
        EXPECT_EQ(co_await x.check(0, 64, 1), 0);
        EXPECT_EQ(co_await x.check(8192, 128, 2), 0);
        auto st = nx->status();
        EXPECT_EQ(st.state, nexus_state::online);
        EXPECT_GE(st.dirty_regions, 2u);  // bits set before the writes
        x.ch.reset();
        co_await nx->close();
        for (auto n : names("a", "b", "c")) {
            auto l = co_await label_of(rig, n);
            CO_ASSERT_TRUE(l);
            EXPECT_EQ(l->nexus_id, nx->id());
            EXPECT_TRUE(l->clean);
            EXPECT_EQ(l->in_sync_count(), 3u);
        }
    });
}

// Many first writes to fresh regions at once: their bits are set in batched
// bitmap writes, and none may be answered before its bits are durable.
TEST(Nexus, ConcurrentFirstWritesToFreshRegions) {
    run_reactors(1, []() -> task<void> {
        mem_rig rig;
        rig.add("a", child_bytes);
        auto nx = co_await make(rig, names("a"));
        CO_ASSERT_TRUE(nx);
        io x(*nx);
        std::vector<task<int>> ts;
        for (uint64_t r = 0; r < 32; ++r) ts.push_back(x.write(r * 128 * 3, 8, uint8_t(r)));
        auto rcs = co_await when_all(std::move(ts));
        for (size_t i = 0; i < rcs.size(); ++i) EXPECT_EQ(rcs[i], 0) << "write " << i;
        for (uint64_t r = 0; r < 32; ++r)
            EXPECT_EQ(co_await x.check(r * 128 * 3, 8, uint8_t(r)), 0);
        EXPECT_GE(nx->status().dirty_regions, 32u);
        x.ch.reset();
        co_await nx->close();
    });
}

TEST(Nexus, AFailedChildIsRetiredAndWritesGoOn) {
    run_reactors(1, []() -> task<void> {
        mem_rig rig;
        for (auto n : names("a", "b", "c")) rig.add(n, child_bytes);
        auto nx = co_await make(rig, names("a", "b", "c"));
        CO_ASSERT_TRUE(nx);
        io x(*nx);
        CO_ASSERT_EQ(co_await x.write(0, 8, 1), 0);
        rig.at("b")->faults->inject(bdev::fault{.ops = bdev::fault_ops::write, .err = EIO});
        EXPECT_EQ(co_await x.write(100, 8, 2), 0);  // the host sees no error
        auto st = nx->status();
        EXPECT_EQ(st.state, nexus_state::degraded);
        EXPECT_EQ(child_of(st, "b").state, child_state::faulted);
        EXPECT_EQ(child_of(st, "b").reason, "io error");
        EXPECT_EQ(co_await x.check(100, 8, 2), 0);
        // The retirement is on the others' labels: b is stale there.
        auto la = co_await label_of(rig, "a");
        CO_ASSERT_TRUE(la);
        EXPECT_EQ(la->in_sync_count(), 2u);
        EXPECT_FALSE(la->find(child_of(st, "b").id)->in_sync());
        // Reads fail over too: a read error on the preferred child.
        rig.at("a")->faults->inject(
            bdev::fault{.ops = bdev::fault_ops::read, .err = EIO, .count = 1});
        EXPECT_EQ(co_await x.check(0, 8, 1), 0);
        CO_ASSERT_TRUE(co_await eventually(
            [&] { return child_of(nx->status(), "a").state == child_state::faulted; }));
        // A write waits until a's retirement is durable (on a and c): only
        // then may c start failing, or c's error would leave 1 of 2.
        EXPECT_EQ(co_await x.write(300, 8, 4), 0);
        // c is the last in-sync child: its errors go to the host, it stays.
        rig.at("c")->faults->inject(bdev::fault{.ops = bdev::fault_ops::write, .err = EIO});
        EXPECT_EQ(co_await x.write(200, 8, 3), -EIO);
        EXPECT_EQ(child_of(nx->status(), "c").state, child_state::online);
        rig.at("c")->faults->clear();
        rig.at("a")->faults->clear();
        rig.at("b")->faults->clear();
        x.ch.reset();
        co_await nx->close();
    });
}

TEST(Nexus, NoMajorityHoldsWritesUntilTheArbiterSaysYes) {
    run_reactors(1, []() -> task<void> {
        mem_rig rig;
        for (auto n : names("a", "b")) rig.add(n, child_bytes);
        auto nx = co_await make(rig, names("a", "b"));
        CO_ASSERT_TRUE(nx);
        io x(*nx);
        CO_ASSERT_EQ(co_await x.write(0, 8, 1), 0);
        // b fails everything, its label writes too: a is 1 of 2.
        rig.at("b")->faults->inject(bdev::fault{.ops = bdev::fault_ops::any, .err = EIO});
        int rc = 1;
        bool done = false;
        reactor::local().spawn([](io& x, int& rc, bool& done) -> task<void> {
            rc = co_await x.write(16, 8, 2);
            done = true;
        }(x, rc, done));
        CO_ASSERT_TRUE(
            co_await eventually([&] { return nx->status().state == nexus_state::waiting; }));
        co_await sleep(200ms);
        EXPECT_FALSE(done) << "a write was acknowledged without a majority";
        EXPECT_NE(nx->status().waiting.find("majority"), std::string::npos);
        std::string why;
        auto r = co_await nx->arbitrate(true, &why);
        EXPECT_TRUE(r) << why;
        CO_ASSERT_TRUE(co_await eventually([&] { return done; }));
        EXPECT_EQ(rc, 0);
        EXPECT_EQ(nx->status().state, nexus_state::degraded);
        EXPECT_FALSE(co_await nx->arbitrate(true, &why));  // not waiting now
        rig.at("b")->faults->clear();
        x.ch.reset();
        co_await nx->close();
    });
}

TEST(Nexus, PauseHoldsWritesNotReadsAndLapses) {
    run_reactors(1, []() -> task<void> {
        mem_rig rig;
        for (auto n : names("a", "b")) rig.add(n, child_bytes);
        auto nx = co_await make(rig, names("a", "b"));
        CO_ASSERT_TRUE(nx);
        io x(*nx);
        CO_ASSERT_EQ(co_await x.write(0, 8, 1), 0);
        co_await nx->pause(5s);
        int rc = 1;
        bool done = false;
        reactor::local().spawn([](io& x, int& rc, bool& done) -> task<void> {
            rc = co_await x.write(16, 8, 2);
            done = true;
        }(x, rc, done));
        co_await sleep(100ms);
        EXPECT_FALSE(done) << "a write went through a paused nexus";
        EXPECT_EQ(co_await x.check(0, 8, 1), 0) << "reads go on while paused";
        // What the children hold now is the same on both (the snapshot point).
        EXPECT_TRUE(co_await same_data(disks(rig, "a", "b")));
        EXPECT_TRUE(nx->resume());
        CO_ASSERT_TRUE(co_await eventually([&] { return done; }));
        EXPECT_EQ(rc, 0);
        EXPECT_FALSE(nx->resume()) << "resumed twice";
        // A pause nobody resumes lapses by itself, and resume() then says so.
        co_await nx->pause(150ms);
        done = false;
        reactor::local().spawn([](io& x, int& rc, bool& done) -> task<void> {
            rc = co_await x.write(32, 8, 3);
            done = true;
        }(x, rc, done));
        CO_ASSERT_TRUE(co_await eventually([&] { return done; }, 2000ms));
        EXPECT_EQ(rc, 0);
        EXPECT_FALSE(nx->resume()) << "a lapsed pause was taken for a held one";
        x.ch.reset();
        co_await nx->close();
        // Blank again for a new nexus: the label goes, the data stays.
        auto dev = rig.factory()(mem_rig::uri("a"), nullptr);
        std::string why;
        auto cleared = co_await clear_child_label(*dev.value(), &why);
        EXPECT_TRUE(cleared) << why;
        CO_ASSERT_TRUE(cleared);
        auto l = co_await label_of(rig, "a");
        EXPECT_FALSE(l);
        EXPECT_EQ(l.err().code, ENODATA);
        auto fresh = co_await make(rig, names("a"), uuid{}, nexus_bytes);
        CO_ASSERT_TRUE(fresh);
        io y(*fresh);
        EXPECT_EQ(co_await y.check(16, 8, 2), 0);
        y.ch.reset();
        co_await fresh->close();
    });
}

TEST(Nexus, GrowsOnceItsChildrenDoAndKeepsTheSizeInItsLabels) {
    run_reactors(2, []() -> task<void> {
        mem_rig rig;
        for (auto n : names("a", "b")) rig.add(n, child_bytes);
        auto nx = co_await make(rig, names("a", "b"));
        CO_ASSERT_TRUE(nx);
        const uuid id = nx->id();
        io x(*nx);
        CO_ASSERT_EQ(co_await x.write(0, 64, 1), 0);
        uint64_t seen = 0;  // what a host would be told
        nx->bdev()->add_resize_listener([&](uint64_t, uint64_t n) { seen = n; });
        const uint64_t bigger = 2 * nexus_bytes;
        std::string why;
        auto r = co_await nx->resize(bigger, &why);
        EXPECT_FALSE(r);
        EXPECT_NE(why.find("grow the children first"), std::string::npos) << why;
        r = co_await nx->resize(nexus_bytes - MiB, &why);
        EXPECT_FALSE(r);
        EXPECT_NE(why.find("does not shrink"), std::string::npos) << why;
        EXPECT_EQ(nx->bdev()->size_bytes(), nexus_bytes);
        for (auto n : names("a", "b")) CO_ASSERT_TRUE(rig.at(n)->raw->resize((bigger + MiB) / 512));
        // Writes from the other reactor go on across the resize: held for a
        // moment, never failed.
        bool stop = false;
        int writes = 0, failed = 0;
        auto writer = [](nexus& nx, bool& stop, int& writes, int& failed) -> task<void> {
            co_await on(1, [&]() -> task<void> {
                io y(nx);
                for (uint32_t i = 0; !stop; ++i) {
                    int rc = co_await y.write(128 + (i % 64) * 8, 8, 7);
                    ++writes;
                    if (rc) ++failed;
                }
            });
        };
        gate g;
        reactor::local().spawn(g.hold(writer(*nx, stop, writes, failed)));
        CO_ASSERT_TRUE(co_await eventually([&] { return writes > 20; }));
        r = co_await nx->resize(bigger, &why);
        EXPECT_TRUE(r) << why;
        const int at_resize = writes;
        CO_ASSERT_TRUE(co_await eventually([&] { return writes > at_resize + 20; }));
        stop = true;
        co_await g.close();
        EXPECT_EQ(failed, 0);
        EXPECT_EQ(nx->bdev()->size_bytes(), bigger);
        EXPECT_EQ(seen, bigger / 512);
        EXPECT_EQ(nx->status().size_bytes, bigger);
        // Past the old end: written to both children; before it: kept.
        const uint64_t tail = bigger / 512 - 16;
        CO_ASSERT_EQ(co_await x.write(tail, 16, 9), 0);
        EXPECT_EQ(co_await x.check(tail, 16, 9), 0);
        EXPECT_EQ(co_await x.check(0, 64, 1), 0);
        // The same size again: nothing to do.
        EXPECT_TRUE(co_await nx->resize(bigger, &why)) << why;
        auto l = co_await label_of(rig, "a");
        CO_ASSERT_TRUE(l);
        EXPECT_EQ(l.value().size_bytes, bigger);
        x.ch.reset();
        co_await nx->close();
        // Re-created from the labels (size 0): the grown size; a smaller
        // size asked for is refused.
        nexus::params p;
        p.id = id;
        p.children = names(mem_rig::uri("a"), mem_rig::uri("b"));
        p.opt = fast_options();
        p.size_bytes = nexus_bytes;
        auto refused = co_await nexus::open(p, rig.factory(), &why);
        EXPECT_FALSE(refused);
        EXPECT_NE(why.find("does not shrink"), std::string::npos) << why;
        // Children grown while no nexus was open: re-created larger at once.
        const uint64_t biggest = 3 * nexus_bytes;
        for (auto n : names("a", "b"))
            CO_ASSERT_TRUE(rig.at(n)->raw->resize((biggest + MiB) / 512));
        auto again = co_await make(rig, names("a", "b"), id, biggest);
        CO_ASSERT_TRUE(again);
        EXPECT_EQ(again->bdev()->size_bytes(), biggest);
        io z(*again);
        EXPECT_EQ(co_await z.check(tail, 16, 9), 0);
        EXPECT_EQ(co_await z.check(0, 64, 1), 0);
        CO_ASSERT_EQ(co_await z.write(biggest / 512 - 8, 8, 3), 0);
        z.ch.reset();
        co_await again->close();
        EXPECT_TRUE(co_await same_data(disks(rig, "a", "b")));
        auto la = co_await label_of(rig, "b");
        CO_ASSERT_TRUE(la);
        EXPECT_EQ(la.value().size_bytes, biggest);
    });
}

TEST(Nexus, NoMajorityThenTheChildComesBack) {
    run_reactors(1, []() -> task<void> {
        mem_rig rig;
        for (auto n : names("a", "b")) rig.add(n, child_bytes);
        auto nx = co_await make(rig, names("a", "b"));
        CO_ASSERT_TRUE(nx);
        io x(*nx);
        rig.at("b")->faults->inject(bdev::fault{.ops = bdev::fault_ops::any, .err = EIO});
        int rc = 1;
        bool done = false;
        reactor::local().spawn([](io& x, int& rc, bool& done) -> task<void> {
            rc = co_await x.write(16, 8, 2);
            done = true;
        }(x, rc, done));
        CO_ASSERT_TRUE(
            co_await eventually([&] { return nx->status().state == nexus_state::waiting; }));
        EXPECT_FALSE(done);
        // b answers again (label writes work): the retirement lands on both.
        rig.at("b")->faults->clear();
        CO_ASSERT_TRUE(co_await eventually([&] { return done; }));
        EXPECT_EQ(rc, 0);
        auto lb = co_await label_of(rig, "b");
        CO_ASSERT_TRUE(lb);
        EXPECT_EQ(lb->in_sync_count(), 1u);
        EXPECT_FALSE(lb->find(lb->child_id)->in_sync()) << "b's own label must say it is stale";
        x.ch.reset();
        co_await nx->close();
    });
}

TEST(Nexus, PartialRebuildCopiesOnlyWhatWasMissed) {
    run_reactors(2, []() -> task<void> {
        mem_rig rig;
        for (auto n : names("a", "b", "c")) rig.add(n, child_bytes);
        options o = fast_options();
        o.auto_rebuild = false;
        auto nx = co_await make(rig, names("a", "b", "c"), uuid{}, nexus_bytes, o);
        CO_ASSERT_TRUE(nx);
        io x(*nx);
        for (uint64_t lba = 0; lba < nexus_bytes / 512; lba += 2048)
            CO_ASSERT_EQ(co_await x.write(lba, 16, 1), 0);
        std::string why;
        CO_ASSERT_TRUE(co_await nx->fault_child(mem_rig::uri("b"), &why));
        EXPECT_EQ(child_of(nx->status(), "b").reason, "faulted by request");
        // While b is away: 3 regions written (64 KiB each = 128 blocks).
        CO_ASSERT_EQ(co_await x.write(0, 8, 2), 0);
        CO_ASSERT_EQ(co_await x.write(128 * 10, 8, 3), 0);
        CO_ASSERT_EQ(co_await x.write(128 * 100 + 5, 200, 4), 0);  // spans 2 regions
        auto before = nx->status().rebuilt_bytes;
        auto ok = co_await nx->online_child("b", &why);
        EXPECT_FALSE(ok) << "a child is named by its URI or UUID";
        ok = co_await nx->online_child(mem_rig::uri("b"), &why);
        EXPECT_TRUE(ok) << why;
        CO_ASSERT_TRUE(co_await eventually(
            [&] { return child_of(nx->status(), "b").state == child_state::online; }));
        auto st = nx->status();
        uint64_t copied = st.rebuilt_bytes - before;
        CO_ASSERT_TRUE(!st.history.empty());
        EXPECT_EQ(st.history.back().kind, "partial");
        EXPECT_EQ(st.history.back().outcome, "done");
        // Only regions with their bit set: at most the whole set of dirty
        // regions (written before too, not cleared yet), far below 16 MiB.
        EXPECT_GT(copied, 0u);
        EXPECT_LE(copied, (st.dirty_regions + 4) * st.region_size);
        EXPECT_LT(copied, nexus_bytes / 4);
        CO_ASSERT_TRUE(co_await same_data(disks(rig, "a", "b", "c")));
        // Now every member is in sync: untouched bits are cleared lazily.
        CO_ASSERT_TRUE(co_await eventually([&] { return nx->status().dirty_regions == 0; }));
        x.ch.reset();
        co_await nx->close();
    });
}

// A child that fails the flush the bitmap's clear pass makes is retired, as
// one that fails a write is (not left showing in sync while unreachable).
TEST(Nexus, AChildFailingAFlushIsRetired) {
    run_reactors(1, []() -> task<void> {
        mem_rig rig;
        for (auto n : names("a", "b", "c")) rig.add(n, child_bytes);
        auto nx = co_await make(rig, names("a", "b", "c"));
        CO_ASSERT_TRUE(nx);
        io x(*nx);
        CO_ASSERT_EQ(co_await x.write(0, 8, 1), 0);
        rig.at("b")->faults->inject(bdev::fault{.ops = bdev::fault_ops::flush, .err = EIO});
        CO_ASSERT_TRUE(co_await eventually(
            [&] { return child_of(nx->status(), "b").state == child_state::faulted; }));
        EXPECT_EQ(child_of(nx->status(), "b").reason, "io error");
        EXPECT_EQ(child_of(nx->status(), "a").state, child_state::online);
        rig.at("b")->faults->clear();
        CO_ASSERT_EQ(co_await x.check(0, 8, 1), 0);
        x.ch.reset();
        co_await nx->close();
    });
}

// A child whose node serves it at a new address is pointed there: it keeps
// its place (UUID), and comes back with a partial rebuild; one that is
// online is retired first. What is not the same device is not used.
TEST(Nexus, RepointedChildKeepsItsPlaceAndRebuildsPartially) {
    run_reactors(1, []() -> task<void> {
        mem_rig rig;
        rig.add("a", child_bytes);
        rig.add("b", child_bytes, /*local=*/false);
        rig.add("c", child_bytes, /*local=*/false);
        rig.add("other", child_bytes, /*local=*/false);
        rig.add("o2", child_bytes);
        {
            auto labelled = co_await make(rig, names("other", "o2"));  // another nexus's child
            CO_ASSERT_TRUE(labelled);
            co_await labelled->close();
        }
        auto nx = co_await make(rig, names("a", "b", "c"));
        CO_ASSERT_TRUE(nx);
        io x(*nx);
        for (uint64_t lba = 0; lba < nexus_bytes / 512; lba += 2048)
            CO_ASSERT_EQ(co_await x.write(lba, 16, 1), 0);
        uuid b_id = child_of(nx->status(), "b").id;
        std::string why;
        // b's old address goes away: retired, reconnecting in vain.
        rig.at("b")->reachable = false;
        CO_ASSERT_TRUE(co_await nx->fault_child(mem_rig::uri("b"), &why));
        CO_ASSERT_EQ(co_await x.write(128 * 10, 8, 2), 0);
        CO_ASSERT_EQ(co_await x.write(128 * 100, 8, 3), 0);
        // Refusals: unknown child, another child's URI, a bad URI.
        auto r = co_await nx->repoint_child(mem_rig::uri("zz"), mem_rig::uri("b2"), &why);
        EXPECT_EQ(r ? 0 : r.err().code, ENOENT);
        r = co_await nx->repoint_child(mem_rig::uri("b"), mem_rig::uri("c"), &why);
        EXPECT_EQ(r ? 0 : r.err().code, EEXIST) << why;
        r = co_await nx->repoint_child(mem_rig::uri("b"), "tcp://nowhere", &why);
        EXPECT_EQ(r ? 0 : r.err().code, EINVAL);
        rig.alias("b2", "b");
        auto before = nx->status().rebuilt_bytes;
        r = co_await nx->repoint_child(mem_rig::uri("b"), mem_rig::uri("b2"), &why);
        CO_ASSERT_TRUE(r);
        CO_ASSERT_TRUE(co_await eventually(
            [&] { return child_of(nx->status(), "b2").state == child_state::online; }, 10000ms));
        auto st = nx->status();
        EXPECT_EQ(child_of(st, "b2").id, b_id);
        EXPECT_EQ(nx->child_uris().at(1), mem_rig::uri("b2"));
        EXPECT_EQ(st.history.back().kind, "partial");
        EXPECT_LT(st.rebuilt_bytes - before, nexus_bytes / 4);
        CO_ASSERT_TRUE(co_await same_data(disks(rig, "a", "b", "c")));
        // An online child is retired first, then reconnected at the new URI.
        rig.alias("c2", "c");
        CO_ASSERT_TRUE(co_await nx->repoint_child(mem_rig::uri("c"), mem_rig::uri("c2"), &why));
        EXPECT_NE(child_of(nx->status(), "c2").state, child_state::online);
        CO_ASSERT_EQ(co_await x.write(128 * 50, 8, 4), 0);
        CO_ASSERT_TRUE(co_await eventually(
            [&] { return child_of(nx->status(), "c2").state == child_state::online; }, 10000ms));
        EXPECT_EQ(nx->status().history.back().kind, "partial");
        CO_ASSERT_TRUE(co_await same_data(disks(rig, "a", "b", "c")));
        // Another nexus's child: never used.
        CO_ASSERT_TRUE(co_await nx->repoint_child(mem_rig::uri("c2"), mem_rig::uri("other"), &why));
        EXPECT_TRUE(co_await eventually([&] {
            return child_of(nx->status(), "other").reason == "not this nexus's child any more";
        }));
        EXPECT_EQ(child_of(nx->status(), "other").state, child_state::faulted);
        CO_ASSERT_EQ(co_await x.check(128 * 50, 8, 4), 0);
        x.ch.reset();
        co_await nx->close();
    });
}

struct writers {
    nexus* nx = nullptr;
    bool stop = false;
    int errors = 0, writes = 0, done = 0;
};

// Writes random 8 KiB pieces with a pattern and reads each back, on `core`,
// until w.stop (counters on the caller's reactor). Each core has its own half
// of the nexus: concurrent overlapping writes may land in either order on
// each child, as with any mirror (NVMe leaves their outcome undefined).
task<void> writer(writers& w, unsigned core, uint8_t seed) {
    int errors = 0, writes = 0;
    co_await on(core, [&]() -> task<void> {
        io x(*w.nx);
        uint64_t v = seed * 7919;
        while (!w.stop) {
            v = v * 6364136223846793005ull + 1442695040888963407ull;
            const uint64_t half = nexus_bytes / 512 / 2;
            uint64_t lba = core * half + (v >> 20) % (half - 64);
            uint8_t s = uint8_t(v >> 8);
            int wrc = co_await x.write(lba, 16, s);
            int crc = co_await x.check(lba, 16, s);
            if (wrc != 0 || crc != 0) {
                ++errors;
                ADD_FAILURE() << "core " << core << " lba " << lba << ": write " << wrc
                              << ", check " << crc;
            }
            ++writes;
        }
    });
    w.errors += errors;
    w.writes += writes;
    ++w.done;
}

// Writers keep writing and verifying on two reactors while a new child is
// added and fully rebuilt; afterwards every child holds the same bytes.
TEST(Nexus, FullRebuildUnderConcurrentWrites) {
    run_reactors(2, []() -> task<void> {
        mem_rig rig;
        for (auto n : names("a", "b", "n")) rig.add(n, child_bytes);
        options o = fast_options();
        o.copy_segment = 256 << 10;
        o.rebuild_rate = 64ull << 20;  // ~0.25 s of copying under the writers
        auto nx = co_await make(rig, names("a", "b"), uuid{}, nexus_bytes, o);
        CO_ASSERT_TRUE(nx);
        {
            io x(*nx);
            for (uint64_t lba = 0; lba < nexus_bytes / 512; lba += 256)
                CO_ASSERT_EQ(co_await x.write(lba, 256, 7), 0);
        }
        writers w;
        w.nx = nx.get();
        reactor::local().spawn(writer(w, 0, 1));
        reactor::local().spawn(writer(w, 1, 2));
        co_await sleep(20ms);
        std::string why;
        auto r = co_await nx->add_child(mem_rig::uri("n"), &why);
        EXPECT_TRUE(r) << why;
        CO_ASSERT_TRUE(co_await eventually(
            [&] { return child_of(nx->status(), "n").state == child_state::online; }, 20000ms));
        co_await sleep(20ms);
        w.stop = true;
        CO_ASSERT_TRUE(co_await eventually([&] { return w.done == 2; }));
        EXPECT_EQ(w.errors, 0);
        EXPECT_GT(w.writes, 10);
        auto st = nx->status();
        EXPECT_EQ(st.history.back().kind, "full");
        EXPECT_EQ(st.state, nexus_state::online);
        CO_ASSERT_TRUE(co_await same_data(disks(rig, "a", "b", "n")));
        co_await nx->close();
    });
}

// The nexus's engine "crashes" while b is away; a new nexus over the same
// children takes b for stale (the labels say so) and rebuilds it partially.
TEST(Nexus, RecreatedFromLabelsNeverTrustsAStaleChild) {
    run_reactors(1, []() -> task<void> {
        mem_rig rig;
        for (auto n : names("a", "b", "c")) rig.add(n, child_bytes);
        options o = fast_options();
        o.auto_rebuild = false;
        auto nx = co_await make(rig, names("a", "b", "c"), uuid{}, nexus_bytes, o);
        CO_ASSERT_TRUE(nx);
        uuid id = nx->id();
        {
            io x(*nx);
            CO_ASSERT_EQ(co_await x.write(0, 64, 1), 0);
            std::string why;
            CO_ASSERT_TRUE(co_await nx->fault_child(mem_rig::uri("b"), &why));
            CO_ASSERT_EQ(co_await x.write(0, 64, 2), 0);  // b misses this
        }
        co_await nx->close(/*clean=*/false);
        // A nexus with a different UUID refuses the children.
        nexus::params bad;
        bad.children = names(mem_rig::uri("a"));
        bad.size_bytes = nexus_bytes;
        std::string why;
        auto r = co_await nexus::open(bad, rig.factory(), &why);
        EXPECT_FALSE(r);
        EXPECT_NE(why.find("belongs to nexus"), std::string::npos) << why;
        // Re-create: b is stale by the labels, a and c in sync.
        auto nx2 = co_await make(rig, names("b", "a", "c"), id, 0, fast_options());
        CO_ASSERT_TRUE(nx2);
        auto st = nx2->status();
        EXPECT_EQ(child_of(st, "a").state, child_state::online);
        EXPECT_EQ(child_of(st, "c").state, child_state::online);
        CO_ASSERT_TRUE(co_await eventually(
            [&] { return child_of(nx2->status(), "b").state == child_state::online; }));
        st = nx2->status();
        EXPECT_EQ(st.history.back().kind, "partial");
        {
            io x(*nx2);
            EXPECT_EQ(co_await x.check(0, 64, 2), 0);
        }
        CO_ASSERT_TRUE(co_await same_data(disks(rig, "a", "b", "c")));
        co_await nx2->close();
        // Only b (stale at the highest generation it has seen) cannot make a
        // nexus: it has no in-sync child.
        auto l = co_await label_of(rig, "b");
        CO_ASSERT_TRUE(l);
        EXPECT_TRUE(l->clean);
    });
}

// A full rebuild cut short by a crash resumes from its last checkpoint.
TEST(Nexus, FullRebuildResumesFromItsCheckpoint) {
    run_reactors(1, []() -> task<void> {
        mem_rig rig;
        for (auto n : names("a", "n")) rig.add(n, child_bytes);
        options o = fast_options();
        o.rebuild_rate = 8ull << 20;  // 2 s for the 16 MiB
        o.checkpoint_interval = 100ms;
        auto nx = co_await make(rig, names("a"), uuid{}, nexus_bytes, o);
        CO_ASSERT_TRUE(nx);
        uuid id = nx->id();
        std::string why;
        CO_ASSERT_TRUE(co_await nx->add_child(mem_rig::uri("n"), &why));
        CO_ASSERT_TRUE(co_await eventually([&] {
            auto st = nx->status();
            auto& c = child_of(st, "n");
            return c.rebuild && c.rebuild->bytes_done > nexus_bytes / 2;
        }));
        co_await nx->close(/*clean=*/false);
        auto l = co_await label_of(rig, "a");
        CO_ASSERT_TRUE(l);
        const member_info* m = nullptr;
        for (auto& x : l->members)
            if (!x.in_sync()) m = &x;
        CO_ASSERT_TRUE(m != nullptr);
        EXPECT_GT(m->rebuild_from, 0u) << "no checkpoint recorded";
        uint64_t resumed_at = m->rebuild_from;
        o.rebuild_rate = 0;
        auto nx2 = co_await make(rig, names("a", "n"), id, 0, o);
        CO_ASSERT_TRUE(nx2);
        CO_ASSERT_TRUE(co_await eventually(
            [&] { return child_of(nx2->status(), "n").state == child_state::online; }));
        auto st = nx2->status();
        CO_ASSERT_TRUE(!st.history.empty());
        EXPECT_EQ(st.history.back().outcome, "done");
        EXPECT_LE(st.history.back().bytes,
                  nexus_bytes - resumed_at + (st.dirty_regions + 1) * st.region_size);
        CO_ASSERT_TRUE(co_await same_data(disks(rig, "a", "n")));
        co_await nx2->close();
    });
}

// A full rebuild from a thin pool volume copies what it holds, not its size.
TEST(Nexus, FullRebuildFromAThinSourceCopiesOnlyWhatItHolds) {
    run_reactors(1, []() -> task<void> {
        auto dev =
            std::shared_ptr<bdev::bdev>(bdev::make_malloc_bdev("pooldev", (64 * MiB) / 512, 512));
        pool::create_options co;
        co.cluster_size = 256 << 10;
        auto p = co_await pool::pool::create(dev, "t", co);
        CO_ASSERT_TRUE(p);
        auto id = co_await p.value()->create_volume("src", child_bytes, /*thin=*/true);
        CO_ASSERT_TRUE(id);
        auto vol = p.value()->open_volume(id.value());
        CO_ASSERT_TRUE(vol);
        mem_rig rig;
        rig.add_volume("src", vol.value());
        rig.add("n", child_bytes);
        auto nx = co_await make(rig, names("src"));
        CO_ASSERT_TRUE(nx);
        {
            io x(*nx);  // 3 x 8 KiB: at most 3 clusters (plus the label's) allocated
            CO_ASSERT_EQ(co_await x.write(0, 16, 1), 0);
            CO_ASSERT_EQ(co_await x.write(10000, 16, 2), 0);
            CO_ASSERT_EQ(co_await x.write(30000, 16, 3), 0);
        }
        std::string why;
        CO_ASSERT_TRUE(co_await nx->add_child(mem_rig::uri("n"), &why));
        CO_ASSERT_TRUE(co_await eventually(
            [&] { return child_of(nx->status(), "n").state == child_state::online; }));
        auto st = nx->status();
        EXPECT_EQ(st.history.back().kind, "full");
        EXPECT_LE(st.history.back().bytes, 4u * (256 << 10)) << "copied the unallocated space";
        EXPECT_GT(st.history.back().bytes, 0u);
        CO_ASSERT_TRUE(co_await same_data(disks(rig, "src", "n")));
        co_await nx->close();
    });
}

TEST(Nexus, RecreationNeedsAMajorityOfTheInSyncChildren) {
    run_reactors(1, []() -> task<void> {
        mem_rig rig;
        for (auto n : names("a", "b", "c")) rig.add(n, child_bytes);
        auto nx = co_await make(rig, names("a", "b", "c"));
        CO_ASSERT_TRUE(nx);
        uuid id = nx->id();
        co_await nx->close();
        nexus::params p;
        p.id = id;
        p.children = names(mem_rig::uri("a"));
        p.opt = fast_options();
        std::string why;
        auto r = co_await nexus::open(p, rig.factory(), &why);
        EXPECT_FALSE(r);
        if (!r) {
            EXPECT_EQ(r.err().code, EAGAIN);
        }
        EXPECT_NE(why.find("majority"), std::string::npos) << why;
        // a's label must not have changed to a generation that drops b and c.
        auto l = co_await label_of(rig, "a");
        CO_ASSERT_TRUE(l);
        EXPECT_EQ(l->in_sync_count(), 3u);
        p.allow_minority = true;
        r = co_await nexus::open(p, rig.factory(), &why);
        CO_ASSERT_TRUE(r);
        EXPECT_EQ(r.value()->status().children.size(), 1u);
        co_await r.value()->close();
        // With the arbiter's yes, a went on alone at a newer generation: given
        // all three again, b and c are not taken for in sync.
        options o = fast_options();
        o.auto_rebuild = false;
        auto nx3 = co_await make(rig, names("a", "b", "c"), id, 0, o);
        CO_ASSERT_TRUE(nx3);
        auto st = nx3->status();
        EXPECT_EQ(child_of(st, "a").state, child_state::online);
        EXPECT_EQ(child_of(st, "b").state, child_state::faulted);
        EXPECT_EQ(child_of(st, "c").state, child_state::faulted);
        co_await nx3->close();
    });
}

TEST(Nexus, UncleanStopIsResynced) {
    run_reactors(1, []() -> task<void> {
        mem_rig rig;
        for (auto n : names("a", "b")) rig.add(n, child_bytes);
        auto nx = co_await make(rig, names("a", "b"));
        CO_ASSERT_TRUE(nx);
        uuid id = nx->id();
        {
            io x(*nx);
            CO_ASSERT_EQ(co_await x.write(0, 8, 1), 0);
        }
        co_await nx->close(false);
        // A write that reached only b before the crash (never acknowledged).
        {
            auto ch = rig.at("b")->raw->open_channel();
            buffer buf = buffer_pool::local().get(4096);
            test::fill(buf.span().first(4096), 0, 512, 9);
            iovec v{buf.data(), 4096};
            CO_ASSERT_EQ(co_await ch->write(MiB / 512, 8, {&v, 1}, false), 0);
        }
        auto nx2 = co_await make(rig, names("a", "b"), id, 0);
        CO_ASSERT_TRUE(nx2);
        CO_ASSERT_TRUE(co_await eventually([&] { return nx2->status().rebuilt_bytes > 0; }));
        CO_ASSERT_TRUE(co_await same_data(disks(rig, "a", "b")));
        co_await nx2->close();
    });
}

TEST(Nexus, ManagementRefusesWhatWouldLoseData) {
    run_reactors(1, []() -> task<void> {
        mem_rig rig;
        for (auto n : names("a", "b")) rig.add(n, child_bytes);
        rig.add("small", nexus_bytes);
        auto nx = co_await make(rig, names("a", "b"));
        CO_ASSERT_TRUE(nx);
        std::string why;
        auto r = co_await nx->add_child(mem_rig::uri("a"), &why);
        EXPECT_EQ(r.err().code, EEXIST);
        r = co_await nx->add_child(mem_rig::uri("small"), &why);
        EXPECT_EQ(r.err().code, EINVAL);
        EXPECT_NE(why.find("1 MiB"), std::string::npos) << why;
        r = co_await nx->add_child("pool://t/none", &why);
        EXPECT_FALSE(r);
        r = co_await nx->add_child("bogus", &why);
        EXPECT_EQ(r.err().code, EINVAL);
        r = co_await nx->remove_child("pool://t/zz", &why);
        EXPECT_EQ(r.err().code, ENOENT);
        r = co_await nx->remove_child(mem_rig::uri("b"), &why);
        EXPECT_TRUE(r) << why;
        r = co_await nx->remove_child(mem_rig::uri("a"), &why);
        EXPECT_EQ(r.err().code, EBUSY);
        r = co_await nx->fault_child(mem_rig::uri("a"), &why);
        EXPECT_EQ(r.err().code, EBUSY);
        EXPECT_EQ(nx->status().children.size(), 1u);
        // b's own label says it is not a member any more.
        auto lb = co_await label_of(rig, "b");
        CO_ASSERT_TRUE(lb);
        EXPECT_EQ(lb->find(lb->child_id), nullptr);
        co_await nx->close();
        // Create refusals.
        nexus::params p;
        p.size_bytes = nexus_bytes;
        r = (co_await nexus::open(p, rig.factory(), &why)).err();
        EXPECT_EQ(r.err().code, EINVAL);
        p.children = names(mem_rig::uri("a"), mem_rig::uri("a"));
        auto o = co_await nexus::open(p, rig.factory(), &why);
        EXPECT_FALSE(o);
    });
}

}  // namespace
}  // namespace weft::nexus
