// The counting wrapper: counts, bytes, errors and latencies per reactor, sums
// across reactors, sizes that follow the inner bdev, and the histogram math.
#include "bdev/stats/stats_bdev.h"

#include "bdev_test_util.h"

namespace weft::bdev::test {
namespace {

TEST(io_stats, buckets_and_quantiles) {
    EXPECT_EQ(latency_bucket(0), 0u);
    EXPECT_EQ(latency_bucket(1000), 0u);  // 1 us
    EXPECT_EQ(latency_bucket(1001), 1u);  // just over: (1, 2]
    EXPECT_EQ(latency_bucket(2000), 1u);
    EXPECT_EQ(latency_bucket(3000), 2u);        // (2, 4]
    EXPECT_EQ(latency_bucket(1'000'000), 10u);  // 1 ms in (512, 1024] us
    EXPECT_EQ(latency_bucket(UINT64_MAX / 2), latency_buckets - 1);

    io_slot s;
    for (int i = 0; i < 99; ++i) io_slot::record(s.read_latency, 3000);  // 3 us
    io_slot::record(s.read_latency, 900'000);                            // 900 us
    auto t = s.read();
    EXPECT_EQ(t.read_latency.count, 100u);
    EXPECT_EQ(t.read_latency.max_ns, 900'000u);
    EXPECT_DOUBLE_EQ(t.read_latency.quantile_us(0.5), 4);
    EXPECT_DOUBLE_EQ(t.read_latency.quantile_us(0.99), 4);
    EXPECT_DOUBLE_EQ(t.read_latency.quantile_us(1.0), 900);  // capped at the max seen, not 1024
    io_totals empty;
    EXPECT_EQ(empty.read_latency.quantile_us(0.5), 0);
}

TEST(stats_bdev, counts_per_reactor_and_follows_resizes) {
    std::shared_ptr<bdev> inner(make_malloc_bdev("m", 1024, 512).release());
    auto stats = std::make_shared<io_stats>();
    auto dev = make_stats_bdev(inner, stats);
    EXPECT_EQ(dev->name(), "m");
    EXPECT_EQ(dev->num_blocks(), 1024u);
    uint64_t seen_old = 0, seen_new = 0;
    dev->add_resize_listener([&](uint64_t o, uint64_t n) {
        seen_old = o;
        seen_new = n;
    });
    run_reactors(2, [&]() -> task<void> {
        for (unsigned core : {0u, 1u}) {
            co_await on(core, [&, core]() -> task<void> {
                auto ch = dev->open_channel();
                buffer b = get_buffer(8 * 512);
                auto iov = one(b.span());
                for (unsigned i = 0; i <= core; ++i) {
                    EXPECT_EQ(co_await ch->write(0, 8, iov, false), 0);
                    EXPECT_EQ(co_await ch->read(8, 8, iov), 0);
                }
                EXPECT_EQ(co_await ch->flush(), 0);
                EXPECT_EQ(co_await ch->read(2000, 8, iov), -ERANGE);  // counted as an error
            });
        }
    });
    auto per = stats->per_reactor();
    ASSERT_EQ(per.size(), 2u);
    EXPECT_EQ(per[0].writes, 1u);
    EXPECT_EQ(per[1].writes, 2u);
    EXPECT_EQ(per[1].read_bytes, 2u * 8 * 512);
    auto t = stats->total();
    EXPECT_EQ(t.reads, 3u);
    EXPECT_EQ(t.writes, 3u);
    EXPECT_EQ(t.write_bytes, 3u * 8 * 512);
    EXPECT_EQ(t.other_ops, 2u);
    EXPECT_EQ(t.errors, 2u);
    EXPECT_EQ(t.in_flight, 0);
    EXPECT_EQ(t.read_latency.count, 3u);
    EXPECT_EQ(t.write_latency.count, 3u);

    // A resize of the inner bdev (as a pool resizes a volume) reaches the
    // wrapper's listeners; one through the wrapper reaches the inner bdev.
    ASSERT_TRUE(inner->resize(2048).ok());
    EXPECT_EQ(dev->num_blocks(), 2048u);
    EXPECT_EQ(seen_old, 1024u);
    EXPECT_EQ(seen_new, 2048u);
    ASSERT_TRUE(dev->resize(4096).ok());
    EXPECT_EQ(inner->num_blocks(), 4096u);
    EXPECT_EQ(dev->num_blocks(), 4096u);
    dev.reset();
    ASSERT_TRUE(inner->resize(100).ok());  // the wrapper's listener is gone
}

}  // namespace
}  // namespace weft::bdev::test
