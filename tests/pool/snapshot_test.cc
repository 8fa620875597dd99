// Snapshots and clones: copy-on-write at cluster granularity.
#include "pool_test_util.h"

namespace weft::pool::test {
namespace {

TEST(pool_snapshot, cow_keeps_old_data_in_the_snapshot_and_clones_diverge) {
    auto dev = make_dev();
    run_reactors(1, [&]() -> task<void> {
        auto p = (co_await pool::create(dev, "pool0", small_opts())).value();
        auto id = (co_await p->create_volume("v", 8 * small_cluster, true)).value();
        auto vol = p->open_volume(id).value();
        auto ch = vol->open_channel();
        CO_ASSERT_EQ(co_await put(*ch, 512, 0, 4 * small_cluster, 1), 0);
        auto snap = (co_await p->snapshot(id, "v-snap")).value();
        EXPECT_EQ((co_await p->stats()).used_clusters, 4u);  // shared, not copied
        // A partial write to a shared cluster copies it and merges.
        CO_ASSERT_EQ(co_await put(*ch, 512, small_cluster + 4096, 4096, 2), 0);
        EXPECT_EQ((co_await p->stats()).used_clusters, 5u);
        EXPECT_EQ(co_await check(*ch, 512, small_cluster, 4096, 1), 0);
        EXPECT_EQ(co_await check(*ch, 512, small_cluster + 4096, 4096, 2), 0);
        EXPECT_EQ(co_await check(*ch, 512, small_cluster + 8192, small_cluster - 8192, 1), 0);
        // The second write to that cluster goes in place.
        CO_ASSERT_EQ(co_await put(*ch, 512, small_cluster, 4096, 3), 0);
        EXPECT_EQ((co_await p->stats()).used_clusters, 5u);

        auto sv = p->open_volume(snap).value();
        EXPECT_TRUE(sv->read_only());
        auto sc = sv->open_channel();
        EXPECT_EQ(co_await check(*sc, 512, 0, 4 * small_cluster, 1), 0);
        EXPECT_EQ(co_await check(*sc, 512, 4 * small_cluster, 4 * small_cluster, 0), 0);
        EXPECT_EQ(co_await put(*sc, 512, 0, 4096, 9), -EROFS);

        // A clone starts as the snapshot and diverges on its own clusters.
        auto cl = (co_await p->clone(snap, "v-clone")).value();
        auto cv = p->open_volume(cl).value();
        auto cc = cv->open_channel();
        EXPECT_EQ(co_await check(*cc, 512, 0, 4 * small_cluster, 1), 0);
        CO_ASSERT_EQ(co_await put(*cc, 512, 0, 4096, 4), 0);
        CO_ASSERT_EQ(co_await put(*cc, 512, 6 * small_cluster, 4096, 4), 0);
        EXPECT_EQ(co_await check(*cc, 512, 0, 4096, 4), 0);
        EXPECT_EQ(co_await check(*sc, 512, 0, 4096, 1), 0);
        EXPECT_EQ(co_await check(*ch, 512, 0, 4096, 1), 0);
        EXPECT_EQ(co_await check(*ch, 512, 6 * small_cluster, 4096, 0), 0);
        EXPECT_EQ((co_await p->stats()).used_clusters, 7u);

        // The snapshot has a clone: it cannot go.
        auto del = co_await p->delete_volume(snap);
        CO_ASSERT_TRUE(!del);
        EXPECT_EQ(del.err().code, EBUSY);
        EXPECT_EQ((co_await p->clone(id, "not-from-a-volume")).err().code, EINVAL);
        EXPECT_EQ((co_await p->resize_volume(snap, 16 * small_cluster)).err().code, EROFS);

        // All of it survives an import.
        cc.reset();
        sc.reset();
        ch.reset();
        cv.reset();
        sv.reset();
        vol.reset();
        p.reset();
        p = (co_await pool::open(dev)).value();
        auto l = co_await p->list();
        CO_ASSERT_EQ(l.size(), 3u);
        EXPECT_TRUE(l[1].snapshot && l[1].read_only);
        EXPECT_EQ(l[1].parent, id);
        EXPECT_EQ(l[2].parent, snap);
        EXPECT_EQ((co_await p->stats()).used_clusters, 7u);
        auto sv2 = p->open_volume(snap).value();
        auto sc2 = sv2->open_channel();
        EXPECT_EQ(co_await check(*sc2, 512, 0, 4 * small_cluster, 1), 0);
        sc2.reset();

        // Clone gone, then the snapshot may go; its unshared clusters return.
        CO_ASSERT_TRUE(co_await p->delete_volume(cl));
        CO_ASSERT_TRUE(co_await p->delete_volume(snap));
        EXPECT_EQ((co_await p->stats()).used_clusters, 4u);
        // The volume now owns its clusters alone: writes go in place.
        auto v2 = p->open_volume(id).value();
        auto ch2 = v2->open_channel();
        CO_ASSERT_EQ(co_await put(*ch2, 512, 0, 4096, 5), 0);
        EXPECT_EQ((co_await p->stats()).used_clusters, 4u);
        EXPECT_EQ(co_await check(*ch2, 512, 0, 4096, 5), 0);
        ch2.reset();
    });
}

// A snapshot taken while another reactor writes: it holds, for each block,
// either the old or the new data, never a mix inside a 4 KiB write, and it
// does not change afterwards.
TEST(pool_snapshot, snapshot_while_writes_run_on_another_reactor) {
    auto dev = make_dev(32 << 20);
    run_reactors(2, [&]() -> task<void> {
        auto p = (co_await pool::create(dev, "pool0", small_opts())).value();
        auto id = (co_await p->create_volume("v", 16 * small_cluster, false)).value();
        auto vol = p->open_volume(id).value();
        std::atomic<bool> stop{false};
        std::atomic<int> errors{0}, rounds{0};
        auto writer = [&]() -> task<void> {
            auto ch = vol->open_channel();
            for (uint8_t seed = 1; !stop.load(); seed = uint8_t(seed % 200 + 1)) {
                for (uint64_t k = 0; k < 16 * small_cluster / 4096; ++k) {
                    errors += co_await put(*ch, 512, k * 4096, 4096, seed) != 0;
                    co_await yield{};  // unwind synchronous completions (sanitizer build)
                }
                ++rounds;
            }
        };
        bool done = false;
        auto run1 = [&]() -> task<void> {
            co_await on(1, [&] { return writer(); });
            done = true;
        };
        reactor::local().spawn(run1());
        while (rounds.load() < 2) co_await sleep(std::chrono::milliseconds(1));
        auto snap = (co_await p->snapshot(id, "s")).value();
        auto sv = p->open_volume(snap).value();
        auto sc = sv->open_channel();
        std::vector<std::byte> first(16 * small_cluster);
        iovec v{first.data(), first.size()};
        CO_ASSERT_EQ(co_await sc->read(0, uint32_t(first.size() / 512), std::span(&v, 1)), 0);
        int r = rounds.load();
        while (rounds.load() < r + 2) co_await sleep(std::chrono::milliseconds(1));
        stop = true;
        while (!done) co_await sleep(std::chrono::milliseconds(1));
        EXPECT_EQ(errors.load(), 0);
        for (uint64_t k = 0; k < first.size() / 4096; ++k) {
            uint8_t seed = 0;
            for (int s = 1; s <= 200 && !seed; ++s)
                if (first[k * 4096] == pat(k * 4096, uint8_t(s)) &&
                    first[k * 4096 + 4095] == pat(k * 4096 + 4095, uint8_t(s)))
                    seed = uint8_t(s);
            CO_ASSERT_TRUE(seed != 0);
            CO_ASSERT_EQ(co_await check(*sc, 512, k * 4096, 4096, seed), 0);
            co_await yield{};
        }
        sc.reset();
    });
}

}  // namespace
}  // namespace weft::pool::test
