// The malloc bdev beyond the shared conformance tests: creation limits,
// growth limits, and resizes racing with I/O on another reactor.
#include <cstring>
#include <thread>

#include "bdev_test_util.h"

namespace weft::bdev::test {
namespace {

TEST(malloc_bdev, refuses_bad_parameters) {
    EXPECT_FALSE(make_malloc_bdev("m", 0, 512));
    EXPECT_FALSE(make_malloc_bdev("m", 16, 0));
    EXPECT_FALSE(make_malloc_bdev("m", 16, 1000));  // not a power of 2
    EXPECT_FALSE(make_malloc_bdev("m", 16, 256));
    EXPECT_FALSE(make_malloc_bdev("m", UINT64_MAX / 256, 512));  // overflows
    EXPECT_FALSE(make_malloc_bdev("m", 16, 512, 8));             // max below size
    EXPECT_FALSE(make_null_bdev("n", 0, 512));
    EXPECT_FALSE(make_null_bdev("n", 16, 520));
    auto m = make_malloc_bdev("m", 16, 4096);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->name(), "m");
}

TEST(malloc_bdev, grows_up_to_its_reservation) {
    auto m = make_malloc_bdev("m", 16, 512, 64);
    ASSERT_TRUE(m);
    EXPECT_TRUE(m->resize(64).ok());
    EXPECT_EQ(m->resize(65).err().code, ENOSPC);
    EXPECT_EQ(m->num_blocks(), 64u);
    // The default reservation leaves room to grow well past the first size.
    auto big = make_malloc_bdev("big", 1024, 4096);
    ASSERT_TRUE(big);
    EXPECT_TRUE(big->resize(1u << 20).ok());  // 4 GiB of address space, untouched
    EXPECT_EQ(big->num_blocks(), 1u << 20);
}

// Reactor 1 keeps reading and writing across the whole device while reactor
// 0 shrinks and grows it: every I/O ends with 0 or -ERANGE, never a fault
// (the sanitizer build checks for stray accesses).
TEST(malloc_bdev, resize_races_safely_with_io_on_another_reactor) {
    constexpr uint64_t full = 4096;  // 2 MiB of 512-byte blocks
    auto dev = make_malloc_bdev("m", full, 512, full);
    ASSERT_TRUE(dev);
    std::atomic<bool> stop{false};
    std::atomic<long> ios{0};
    long bad = 0, out_of_range = 0;
    // Resizes come from a plain thread, as from a management API; the main
    // task meanwhile waits for reactor 1's I/O loop.
    std::thread resizer([&] {
        for (int i = 0; i < 400 || ios.load() < 20000; ++i) {
            EXPECT_TRUE(dev->resize(i % 2 ? full : 64 + uint64_t(i % 500) * 7).ok());
            std::this_thread::yield();
        }
        stop = true;
    });
    run_reactors(2, [&]() -> task<void> {
        co_await on(1, [&]() -> task<void> {
            auto ch = dev->open_channel();
            buffer b = get_buffer(64 * 512);
            auto iov = one(b.span());
            uint64_t lba = 0;
            for (long n = 0; !stop.load(); n = ++ios) {
                int rc = (n % 3 == 0)   ? co_await ch->read(lba, 64, iov)
                         : (n % 3 == 1) ? co_await ch->write(lba, 64, iov, false)
                                        : co_await ch->write_zeroes(lba, 64);
                bad += rc != 0 && rc != -ERANGE;
                out_of_range += rc == -ERANGE;
                lba = (lba + 61) % (full - 64);
                // Synchronous completions nest frames where the sanitizer
                // build lacks tail calls: unwind now and then.
                if (n % 64 == 0) co_await yield{};
            }
        });
    });
    resizer.join();
    EXPECT_EQ(bad, 0);
    EXPECT_GT(out_of_range, 0);  // the sizes really changed under the I/O
    EXPECT_GT(ios.load() - out_of_range, 0);
}

TEST(malloc_bdev, data_is_shared_by_channels_on_all_reactors) {
    auto dev = make_malloc_bdev("m", 64, 4096);
    ASSERT_TRUE(dev);
    run_reactors(2, [&]() -> task<void> {
        int rc = co_await on(1, [&]() -> task<int> {
            auto ch = dev->open_channel();
            buffer b = get_buffer(4096);
            fill(b.span(), 9, 4096, 77);
            co_return co_await ch->write(9, 1, one(b.span()), false);
        });
        CO_ASSERT_EQ(rc, 0);
        auto ch = dev->open_channel();
        buffer b = get_buffer(4096);
        CO_ASSERT_EQ(co_await ch->read(9, 1, one(b.span())), 0);
        EXPECT_EQ(mismatch(b.span(), 9, 4096, 77), -1);
    });
}

}  // namespace
}  // namespace weft::bdev::test
