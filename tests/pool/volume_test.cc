// Volumes: create/delete/resize/list, thin allocation and accounting, I/O
// across cluster boundaries, ENOSPC, unmap, and writes from two reactors.
#include "pool_test_util.h"

namespace weft::pool::test {
namespace {

using pool_ptr = std::shared_ptr<pool>;

task<pool_ptr> new_pool(std::shared_ptr<bdev::bdev> dev) {
    auto p = co_await pool::create(dev, "pool0", small_opts());
    if (!p) throw std::runtime_error("create failed");
    co_return std::move(p.value());
}

TEST(pool_volume, create_delete_resize_list) {
    auto dev = make_dev();
    run_reactors(1, [&]() -> task<void> {
        auto p = co_await new_pool(dev);
        auto st0 = co_await p->stats();
        EXPECT_EQ(st0.used_clusters, 0u);
        auto thin = (co_await p->create_volume("thin", 10 << 20, true)).value();
        auto thick = (co_await p->create_volume("thick", 1 << 20, false)).value();
        EXPECT_EQ((co_await p->create_volume("thin", 1 << 20, true)).err().code, EEXIST);
        EXPECT_EQ((co_await p->create_volume("odd", 1000, true)).err().code, EINVAL);
        EXPECT_EQ((co_await p->create_volume("", 4096, true)).err().code, EINVAL);
        auto st = co_await p->stats();
        EXPECT_EQ(st.used_clusters, 16u);  // thick: all at create
        EXPECT_EQ(st.committed_bytes, 11u << 20);
        // Grow both; the thick one allocates the new clusters.
        CO_ASSERT_TRUE(co_await p->resize_volume(thin, 20 << 20));
        CO_ASSERT_TRUE(co_await p->resize_volume(thick, 2 << 20));
        EXPECT_EQ((co_await p->stats()).used_clusters, 32u);
        // An open bdev sees the new size.
        auto vol = p->open_volume(thin).value();
        EXPECT_EQ(vol->size_bytes(), 20u << 20);
        CO_ASSERT_TRUE(co_await p->resize_volume(thin, 30 << 20));
        EXPECT_EQ(vol->size_bytes(), 30u << 20);
        // Shrinking an unallocated tail is fine; over data it is refused.
        auto ch = vol->open_channel();
        CO_ASSERT_EQ(co_await put(*ch, 512, 5 << 20, 4096, 3), 0);
        CO_ASSERT_TRUE(co_await p->resize_volume(thin, 6 << 20));
        auto r = co_await p->resize_volume(thin, 4 << 20);
        CO_ASSERT_TRUE(!r);
        EXPECT_EQ(r.err().code, ENOTEMPTY);
        EXPECT_EQ(vol->size_bytes(), 6u << 20);
        // A shrink into the middle of a written cluster, then a grow: the
        // part past the old end reads zeroes again.
        CO_ASSERT_TRUE(co_await p->resize_volume(thin, (5 << 20) + 2048));
        CO_ASSERT_TRUE(co_await p->resize_volume(thin, 6 << 20));
        EXPECT_EQ(co_await check(*ch, 512, 5 << 20, 2048, 3), 0);
        EXPECT_EQ(co_await check(*ch, 512, (5 << 20) + 2048, 2048, 0), 0);
        auto l = co_await p->list();
        CO_ASSERT_EQ(l.size(), 2u);
        EXPECT_EQ(l[0].allocated_bytes, small_cluster);
        EXPECT_EQ(l[1].allocated_bytes, 2u << 20);
        // Delete returns the space; the open bdev fails from then on.
        CO_ASSERT_TRUE(co_await p->delete_volume(thick));
        CO_ASSERT_TRUE(co_await p->delete_volume(thin));
        EXPECT_EQ(co_await put(*ch, 512, 0, 4096, 3), -ENODEV);
        EXPECT_EQ((co_await p->stats()).used_clusters, 0u);
        EXPECT_EQ((co_await p->delete_volume(thin)).err().code, ENOENT);
        EXPECT_TRUE((co_await p->list()).empty());
        ch.reset();
    });
}

TEST(pool_volume, thin_allocates_on_first_write_and_splits_io) {
    auto dev = make_dev();
    run_reactors(1, [&]() -> task<void> {
        auto p = co_await new_pool(dev);
        auto id = (co_await p->create_volume("v", 4 << 20, true)).value();
        auto vol = p->open_volume(id).value();
        auto ch = vol->open_channel();
        // Reads of unwritten space are zeroes and allocate nothing.
        EXPECT_EQ(co_await check(*ch, 512, 0, 1 << 20, 0), 0);
        EXPECT_EQ((co_await p->stats()).used_clusters, 0u);
        // 3 clusters touched by a write that crosses two boundaries.
        uint64_t off = small_cluster - 4096, len = small_cluster + 8192;
        CO_ASSERT_EQ(co_await put(*ch, 512, off, len, 9), 0);
        EXPECT_EQ((co_await p->stats()).used_clusters, 3u);
        EXPECT_EQ(co_await check(*ch, 512, off, len, 9), 0);
        EXPECT_EQ(co_await check(*ch, 512, 0, off, 0), 0);
        EXPECT_EQ(co_await check(*ch, 512, off + len, 3 * small_cluster - off - len, 0), 0);
        // Rewrites go in place: no new clusters.
        CO_ASSERT_EQ(co_await put(*ch, 512, off, len, 10), 0);
        EXPECT_EQ((co_await p->stats()).used_clusters, 3u);
        EXPECT_EQ(co_await check(*ch, 512, off, len, 10), 0);
        // Scattered iovecs cut across a cluster boundary.
        buffer b = buffer_pool::local().get(16384);
        for (size_t i = 0; i < 16384; ++i) b.data()[i] = pat(3 * small_cluster - 8192 + i, 11);
        std::vector<iovec> iov{{b.data(), 1000}, {b.data() + 1000, 9000}, {b.data() + 10000, 6384}};
        CO_ASSERT_EQ(co_await ch->write((3 * small_cluster - 8192) / 512, 32, iov, true), 0);
        EXPECT_EQ(co_await check(*ch, 512, 3 * small_cluster - 8192, 16384, 11), 0);
        EXPECT_EQ((co_await p->stats()).used_clusters, 4u);
        EXPECT_EQ(co_await ch->flush(), 0);
        EXPECT_EQ(co_await put(*ch, 512, 4 << 20, 512, 1), -ERANGE);
        ch.reset();
    });
}

TEST(pool_volume, enospc_fails_the_write_and_harms_no_one) {
    auto dev = make_dev(2 << 20);  // small: ~28 clusters after the metadata
    run_reactors(1, [&]() -> task<void> {
        auto p = co_await new_pool(dev);
        uint64_t total = (co_await p->stats()).total_clusters;
        auto a = (co_await p->create_volume("a", total * small_cluster, true)).value();
        auto b = (co_await p->create_volume("b", 4 * small_cluster, false)).value();
        EXPECT_EQ((co_await p->create_volume("c", total * small_cluster, false)).err().code,
                  ENOSPC);
        auto va = p->open_volume(a).value(), vb = p->open_volume(b).value();
        auto ca = va->open_channel(), cb = vb->open_channel();
        CO_ASSERT_EQ(co_await put(*cb, 512, 0, 4 * small_cluster, 1), 0);
        int rc = 0;
        uint64_t l = 0;
        for (; l < total && rc == 0; ++l) rc = co_await put(*ca, 512, l * small_cluster, 4096, 2);
        EXPECT_EQ(rc, -ENOSPC);
        EXPECT_EQ(l - 1, total - 4);  // b holds 4 clusters
        auto st = co_await p->stats();
        EXPECT_EQ(st.used_clusters, total);
        EXPECT_GT(st.committed_bytes, st.total_clusters * small_cluster);
        // b still reads and writes (its clusters are its own).
        EXPECT_EQ(co_await check(*cb, 512, 0, 4 * small_cluster, 1), 0);
        CO_ASSERT_EQ(co_await put(*cb, 512, 0, 4096, 3), 0);
        EXPECT_EQ(co_await check(*cb, 512, 0, 4096, 3), 0);
        // a's written clusters are intact; the failed one reads zeroes.
        EXPECT_EQ(co_await check(*ca, 512, 0, 4096, 2), 0);
        EXPECT_EQ(co_await check(*ca, 512, (total - 4) * small_cluster, 4096, 0), 0);
        // Freeing space makes writes work again.
        CO_ASSERT_EQ(co_await ca->unmap(0, small_cluster / 512), 0);
        CO_ASSERT_EQ(co_await put(*ca, 512, (total - 4) * small_cluster, 4096, 2), 0);
        ca.reset();
        cb.reset();
    });
}

TEST(pool_volume, unmap_returns_whole_clusters_and_zeroes_partial_ranges) {
    auto dev = make_dev();
    run_reactors(1, [&]() -> task<void> {
        auto p = co_await new_pool(dev);
        auto id = (co_await p->create_volume("v", 1 << 20, true)).value();
        auto vol = p->open_volume(id).value();
        auto ch = vol->open_channel();
        CO_ASSERT_EQ(co_await put(*ch, 512, 0, 4 * small_cluster, 4), 0);
        EXPECT_EQ((co_await p->stats()).used_clusters, 4u);
        // [half of 0, all of 1 and 2, half of 3): two clusters go back.
        uint64_t off = small_cluster / 2, len = 3 * small_cluster;
        CO_ASSERT_EQ(co_await ch->unmap(off / 512, len / 512), 0);
        EXPECT_EQ((co_await p->stats()).used_clusters, 2u);
        EXPECT_EQ(co_await check(*ch, 512, 0, off, 4), 0);
        EXPECT_EQ(co_await check(*ch, 512, off, len, 0), 0);
        EXPECT_EQ(co_await check(*ch, 512, off + len, 4 * small_cluster - off - len, 4), 0);
        CO_ASSERT_EQ(co_await ch->write_zeroes(0, 4 * small_cluster / 512), 0);
        EXPECT_EQ((co_await p->stats()).used_clusters, 0u);
        // A reopened pool agrees.
        ch.reset();
        vol.reset();
        p.reset();
        auto q = (co_await pool::open(dev)).value();
        EXPECT_EQ((co_await q->stats()).used_clusters, 0u);
        // Thick volumes keep their clusters and read zeroes.
        auto t = (co_await q->create_volume("t", 4 * small_cluster, false)).value();
        auto tv = q->open_volume(t).value();
        auto tc = tv->open_channel();
        CO_ASSERT_EQ(co_await put(*tc, 512, 0, 4 * small_cluster, 6), 0);
        CO_ASSERT_EQ(co_await tc->unmap(0, 4 * small_cluster / 512), 0);
        EXPECT_EQ(co_await check(*tc, 512, 0, 4 * small_cluster, 0), 0);
        EXPECT_EQ((co_await q->stats()).used_clusters, 4u);
        tc.reset();
    });
}

// Two reactors write the same fresh clusters at once (different blocks of
// each): every write lands, and each cluster is allocated exactly once.
TEST(pool_volume, concurrent_first_writes_from_two_reactors) {
    auto dev = make_dev(32 << 20);
    run_reactors(2, [&]() -> task<void> {
        auto p = co_await new_pool(dev);
        auto id = (co_await p->create_volume("v", 64 * small_cluster, true)).value();
        auto vol = p->open_volume(id).value();
        auto writer = [&](unsigned r) -> task<int> {
            auto ch = vol->open_channel();
            int bad = 0;
            for (uint64_t l = 0; l < 64; ++l)
                for (uint64_t k = r; k < 16; k += 2) {  // interleaved 4 KiB blocks
                    bad += co_await put(*ch, 512, l * small_cluster + k * 4096, 4096,
                                        uint8_t(1 + r)) != 0;
                    // Synchronous completions nest frames where the sanitizer
                    // build lacks tail calls: unwind now and then.
                    co_await yield{};
                }
            co_return bad;
        };
        auto other = [&]() -> task<int> { co_return co_await on(1, [&] { return writer(1); }); };
        // Reactor 1 runs while reactor 0 writes too.
        struct both {
            int a = -1, b = -1;
        } res;
        auto run1 = [&]() -> task<void> { res.b = co_await other(); };
        reactor::local().spawn(run1());
        res.a = co_await writer(0);
        while (res.b < 0) co_await sleep(std::chrono::milliseconds(1));
        EXPECT_EQ(res.a, 0);
        EXPECT_EQ(res.b, 0);
        EXPECT_EQ((co_await p->stats()).used_clusters, 64u);
        auto ch = vol->open_channel();
        for (uint64_t l = 0; l < 64; ++l) {
            for (uint64_t k = 0; k < 16; ++k)
                CO_ASSERT_EQ(co_await check(*ch, 512, l * small_cluster + k * 4096, 4096,
                                            uint8_t(1 + k % 2)),
                             0);
            co_await yield{};
        }
        ch.reset();
    });
}

}  // namespace
}  // namespace weft::pool::test
