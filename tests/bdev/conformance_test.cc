// What every backend promises, run against each of them: round trips, FUA
// and flush, write-zeroes and unmap, bounds and iovec errors, resize seen by
// channels on other reactors, and concurrent I/O from two reactors.
#include <climits>
#include <cstring>

#include "bdev/crypto/crypto_bdev.h"
#include "bdev_test_util.h"
#include "runtime/gate.h"

namespace weft::bdev::test {
namespace {

struct backend {
    enum kind_t { malloc_kind, null_kind, uring_kind, crypto_kind };
    std::string label;
    kind_t kind;
    uint32_t block_size;
    bool direct = true;
    uint32_t inner_block_size = 0;  // crypto: the block size under it
};

constexpr uint64_t blocks = 2048;

class conformance : public ::testing::TestWithParam<backend> {
  protected:
    void SetUp() override {
        const backend& b = GetParam();
        switch (b.kind) {
            case backend::malloc_kind:
                dev = make_malloc_bdev("m", blocks, b.block_size);
                break;
            case backend::null_kind:
                dev = make_null_bdev("n", blocks, b.block_size);
                break;
            case backend::crypto_kind: {
                std::array<uint8_t, crypto_key_bytes> key;
                for (size_t i = 0; i < key.size(); ++i) key[i] = uint8_t(i * 7 + 1);
                std::string why;
                dev = make_crypto_bdev(
                    make_malloc_bdev("m", blocks * b.block_size / b.inner_block_size,
                                     b.inner_block_size),
                    key, &why);
                ASSERT_TRUE(dev) << why;
                break;
            }
            case backend::uring_kind: {
                auto r = open_uring_bdev("u", file.path(),
                                         {.create = true,
                                          .create_bytes = blocks * b.block_size,
                                          .block_size = b.block_size,
                                          .direct = b.direct});
                ASSERT_TRUE(r.ok()) << r.err().message();
                dev = std::move(r.value());
                break;
            }
        }
        ASSERT_TRUE(dev);
        bs = dev->block_size();
    }
    bool stores() const { return GetParam().kind != backend::null_kind; }

    temp_file file{"conformance"};
    std::shared_ptr<bdev> dev;
    uint32_t bs = 0;
};

// Writes `n` blocks of pattern `seed` at `lba`, in iovecs of `pieces` bytes.
task<int> write_pattern(channel& ch, uint64_t lba, uint32_t n, uint32_t bs, uint8_t seed,
                        std::vector<size_t> pieces = {}, bool fua = false) {
    buffer b = get_buffer(size_t(n) * bs);
    fill(b.span(), lba, bs, seed);
    auto iov = pieces.empty() ? one(b.span()) : split(b.span(), pieces);
    co_return co_await ch.write(lba, n, iov, fua);
}

// Reads `n` blocks at `lba`; returns -errno, or the first mismatching byte
// index + 1 against `seed` (seed 0: against zeroes), or 0 when all match.
// Past 1 MiB, reads in pieces (pool buffers stop at 4 MiB).
task<long> check(channel& ch, uint64_t lba, uint32_t n, uint32_t bs, uint8_t seed,
                 std::vector<size_t> pieces = {}) {
    uint32_t most = std::max<uint32_t>(1, (1u << 20) / bs);
    if (n > most) {
        for (uint32_t done = 0; done < n; done += most) {
            long rc = co_await check(ch, lba + done, std::min(most, n - done), bs, seed, pieces);
            if (rc != 0) co_return rc < 0 ? rc : rc + long(done) * bs;
        }
        co_return 0;
    }
    buffer b = get_buffer(size_t(n) * bs);
    std::memset(b.data(), 0xA5, b.size());
    auto iov = pieces.empty() ? one(b.span()) : split(b.span(), pieces);
    int rc = co_await ch.read(lba, n, iov);
    if (rc != 0) co_return rc;
    if (seed == 0) co_return all_zero(b.span()) ? 0 : 1;
    co_return mismatch(b.span(), lba, bs, seed) + 1;
}

TEST_P(conformance, properties) {
    EXPECT_EQ(dev->num_blocks(), blocks);
    EXPECT_EQ(dev->block_size(), GetParam().block_size);
    EXPECT_EQ(dev->size_bytes(), blocks * GetParam().block_size);
    EXPECT_FALSE(dev->read_only());
    EXPECT_TRUE(dev->unmap_reads_zeroes());
    // Only the page cache or a drive's cache (behind a file) is volatile.
    EXPECT_EQ(dev->volatile_write_cache(), GetParam().kind == backend::uring_kind);
}

struct io {
    uint64_t lba;
    uint32_t n;
    std::vector<size_t> pieces;
    uint8_t seed;
};

// Built outside the coroutine: GCC 12 rejects this braced list inside one.
std::vector<io> sample_ios(uint32_t bs) {
    return {{0, 1, {}, 1},
            {1, 8, {bs}, 2},
            {20, 16, {bs, 3 * bs, 12 * bs}, 3},
            {blocks - 4, 4, {2 * bs}, 4},
            {100, 256, {}, 5}};
}

TEST_P(conformance, round_trip_patterns) {
    run_reactors(1, [&]() -> task<void> {
        auto ch = dev->open_channel();
        std::vector<io> ios = sample_ios(bs);
        for (auto& w : ios)
            EXPECT_EQ(co_await write_pattern(*ch, w.lba, w.n, bs, w.seed, w.pieces), 0);
        for (auto& w : ios) {
            // Read back in differently cut iovecs.
            long rc = co_await check(*ch, w.lba, w.n, bs, stores() ? w.seed : 0, sizes(bs, 2 * bs));
            EXPECT_EQ(rc, 0) << "lba " << w.lba;
        }
        // An overwrite of part of a range.
        EXPECT_EQ(co_await write_pattern(*ch, 104, 8, bs, 6), 0);
        if (stores()) {
            EXPECT_EQ(co_await check(*ch, 100, 4, bs, 5), 0);
            EXPECT_EQ(co_await check(*ch, 104, 8, bs, 6), 0);
            EXPECT_EQ(co_await check(*ch, 112, 244, bs, 5), 0);
        }
    });
}

TEST_P(conformance, fua_write_and_flush) {
    run_reactors(1, [&]() -> task<void> {
        auto ch = dev->open_channel();
        EXPECT_EQ(co_await ch->flush(), 0);  // nothing pending
        EXPECT_EQ(co_await write_pattern(*ch, 7, 3, bs, 11, {}, /*fua=*/true), 0);
        EXPECT_EQ(co_await check(*ch, 7, 3, bs, stores() ? 11 : 0), 0);
        EXPECT_EQ(co_await write_pattern(*ch, 30, 2, bs, 12), 0);
        EXPECT_EQ(co_await ch->flush(), 0);
        EXPECT_EQ(co_await check(*ch, 30, 2, bs, stores() ? 12 : 0), 0);
    });
}

TEST_P(conformance, write_zeroes_reads_zeroes) {
    run_reactors(1, [&]() -> task<void> {
        auto ch = dev->open_channel();
        EXPECT_EQ(co_await write_pattern(*ch, 10, 64, bs, 21), 0);
        EXPECT_EQ(co_await ch->write_zeroes(20, 30), 0);
        EXPECT_EQ(co_await check(*ch, 20, 30, bs, 0), 0);
        if (stores()) {
            EXPECT_EQ(co_await check(*ch, 10, 10, bs, 21), 0);
            EXPECT_EQ(co_await check(*ch, 50, 24, bs, 21), 0);
        }
        // Most of the device at once (whole pages dropped, in malloc).
        for (uint64_t lba = 0; lba < blocks; lba += 256)  // pool buffers stop at 4 MiB
            EXPECT_EQ(co_await write_pattern(*ch, lba, 256, bs, 22), 0);
        EXPECT_EQ(co_await ch->write_zeroes(1, blocks - 2), 0);
        EXPECT_EQ(co_await check(*ch, 1, blocks - 2, bs, 0), 0);
        if (stores()) {
            EXPECT_EQ(co_await check(*ch, 0, 1, bs, 22), 0);
            EXPECT_EQ(co_await check(*ch, blocks - 1, 1, bs, 22), 0);
        }
        EXPECT_EQ(co_await ch->write_zeroes(5, 0), 0);
    });
}

TEST_P(conformance, unmap_reads_zeroes_where_promised) {
    run_reactors(1, [&]() -> task<void> {
        auto ch = dev->open_channel();
        EXPECT_EQ(co_await write_pattern(*ch, 0, 512, bs, 31), 0);
        EXPECT_EQ(co_await ch->unmap(8, 256), 0);
        EXPECT_EQ(co_await ch->unmap(300, 1), 0);
        if (dev->unmap_reads_zeroes()) {
            EXPECT_EQ(co_await check(*ch, 8, 256, bs, 0), 0);
            EXPECT_EQ(co_await check(*ch, 300, 1, bs, 0), 0);
        }
        if (stores()) {
            EXPECT_EQ(co_await check(*ch, 0, 8, bs, 31), 0);
            EXPECT_EQ(co_await check(*ch, 264, 36, bs, 31), 0);
            EXPECT_EQ(co_await check(*ch, 301, 211, bs, 31), 0);
        }
        // Writing again after an unmap stores data again.
        EXPECT_EQ(co_await write_pattern(*ch, 16, 4, bs, 32), 0);
        EXPECT_EQ(co_await check(*ch, 16, 4, bs, stores() ? 32 : 0), 0);
    });
}

TEST_P(conformance, out_of_range_is_erange) {
    run_reactors(1, [&]() -> task<void> {
        auto ch = dev->open_channel();
        buffer b = get_buffer(2 * bs);
        auto iov1 = one({b.data(), bs});
        auto iov2 = one(b.span());
        EXPECT_EQ(co_await ch->read(blocks - 1, 1, iov1), 0);
        EXPECT_EQ(co_await ch->read(blocks, 1, iov1), -ERANGE);
        EXPECT_EQ(co_await ch->read(blocks - 1, 2, iov2), -ERANGE);
        EXPECT_EQ(co_await ch->write(blocks, 1, iov1, false), -ERANGE);
        EXPECT_EQ(co_await ch->write(UINT64_MAX, 1, iov1, false), -ERANGE);
        EXPECT_EQ(co_await ch->write(UINT64_MAX - 1, 2, iov2, true), -ERANGE);
        EXPECT_EQ(co_await ch->write_zeroes(blocks - 1, 2), -ERANGE);
        EXPECT_EQ(co_await ch->write_zeroes(UINT64_MAX - 1, 4), -ERANGE);
        EXPECT_EQ(co_await ch->unmap(0, blocks + 1), -ERANGE);
        EXPECT_EQ(co_await ch->unmap(1, UINT64_MAX), -ERANGE);
        // Zero blocks at the very end is in range, and does nothing.
        EXPECT_EQ(co_await ch->write_zeroes(blocks, 0), 0);
        EXPECT_EQ(co_await ch->unmap(blocks, 0), 0);
        EXPECT_EQ(co_await ch->write_zeroes(blocks + 1, 0), -ERANGE);
    });
}

TEST_P(conformance, iovecs_of_the_wrong_size_are_einval) {
    run_reactors(1, [&]() -> task<void> {
        auto ch = dev->open_channel();
        buffer b = get_buffer(4 * bs);
        auto iov1 = one({b.data(), bs});
        auto iov2 = one({b.data(), 2 * size_t(bs)});
        EXPECT_EQ(co_await ch->read(0, 2, iov1), -EINVAL);
        EXPECT_EQ(co_await ch->write(0, 1, iov2, false), -EINVAL);
        EXPECT_EQ(co_await ch->read(0, 1, std::span<const iovec>{}), -EINVAL);
        std::vector<iovec> short_by_one = {{b.data(), bs - 1}};
        EXPECT_EQ(co_await ch->write(0, 1, short_by_one, false), -EINVAL);
        std::vector<iovec> null_base = {{nullptr, bs}};
        EXPECT_EQ(co_await ch->read(0, 1, null_base), -EINVAL);
        EXPECT_EQ(co_await ch->write(0, 1, null_base, false), -EINVAL);
        // Lengths whose sum wraps around to exactly one block.
        std::vector<iovec> wrap = {{b.data(), SIZE_MAX}, {b.data(), size_t(bs) + 1}};
        EXPECT_EQ(co_await ch->read(0, 1, wrap), -EINVAL);
        EXPECT_EQ(co_await ch->write(0, 1, wrap, false), -EINVAL);
        // Empty iovecs among real ones are fine.
        std::vector<iovec> with_empty = {{b.data(), 0}, {b.data(), bs}, {nullptr, 0}};
        EXPECT_EQ(co_await ch->write(3, 1, with_empty, false), 0);
        EXPECT_EQ(co_await ch->read(3, 1, with_empty), 0);
        EXPECT_EQ(co_await ch->read(0, 0, std::span<const iovec>{}), 0);
    });
}

TEST_P(conformance, resize_is_seen_by_channels_on_other_reactors) {
    run_reactors(2, [&]() -> task<void> {
        std::vector<std::pair<uint64_t, uint64_t>> seen;
        uint64_t id = dev->add_resize_listener([&](uint64_t o, uint64_t n) {
            seen.push_back({o, n});
        });
        auto ch = dev->open_channel();
        std::unique_ptr<channel> remote;  // reactor 1's, open across the resizes
        co_await on(1, [&] { remote = dev->open_channel(); });
        auto remote_write = [&](uint64_t lba, uint8_t seed) {
            return on(1, [&, lba, seed]() { return write_pattern(*remote, lba, 1, bs, seed); });
        };
        auto remote_check = [&](uint64_t lba, uint8_t seed) {
            return on(1, [&, lba, seed]() { return check(*remote, lba, 1, bs, seed); });
        };

        CO_ASSERT_TRUE(dev->resize(2 * blocks).ok());
        EXPECT_EQ(dev->num_blocks(), 2 * blocks);
        EXPECT_EQ(co_await remote_write(2 * blocks - 1, 41), 0);
        EXPECT_EQ(co_await check(*ch, 2 * blocks - 1, 1, bs, stores() ? 41 : 0), 0);
        EXPECT_EQ(co_await write_pattern(*ch, blocks, 1, bs, 42), 0);
        EXPECT_EQ(co_await remote_check(blocks, stores() ? 42 : 0), 0);

        CO_ASSERT_TRUE(dev->resize(blocks / 2).ok());
        EXPECT_EQ(co_await remote_check(blocks / 2, 0), -ERANGE);
        EXPECT_EQ(co_await remote_write(blocks / 2 - 1, 43), 0);
        EXPECT_EQ(co_await write_pattern(*ch, blocks - 1, 1, bs, 44), -ERANGE);
        EXPECT_EQ(co_await ch->write_zeroes(blocks / 2, 1), -ERANGE);

        // Growing again shows zeroes where the old data was.
        CO_ASSERT_TRUE(dev->resize(2 * blocks).ok());
        EXPECT_EQ(co_await remote_check(2 * blocks - 1, 0), 0);
        EXPECT_EQ(co_await check(*ch, blocks / 2, 1, bs, 0), 0);
        EXPECT_EQ(co_await check(*ch, blocks / 2 - 1, 1, bs, stores() ? 43 : 0), 0);

        std::vector<std::pair<uint64_t, uint64_t>> want = {
            {blocks, 2 * blocks}, {2 * blocks, blocks / 2}, {blocks / 2, 2 * blocks}};
        EXPECT_EQ(seen, want);
        dev->remove_resize_listener(id);
        CO_ASSERT_TRUE(dev->resize(blocks).ok());
        EXPECT_EQ(seen.size(), 3u);
        CO_ASSERT_TRUE(dev->resize(blocks).ok());  // same size: nothing happens
        EXPECT_EQ(dev->resize(0).err().code, EINVAL);
        EXPECT_EQ(dev->num_blocks(), blocks);
        co_await on(1, [&] { remote.reset(); });
    });
}

// Runs `t` and stores its result.
task<void> store(long* out, task<long> t) {
    *out = co_await std::move(t);
}

// Writes every `stride`-th run of `io_blocks` in [first, end); returns failures.
task<long> writer(channel* ch, uint64_t first, uint64_t end, uint32_t io_blocks, uint64_t stride,
                  uint32_t bs, uint8_t seed) {
    long bad = 0;
    for (uint64_t lba = first; lba + io_blocks <= end; lba += stride) {
        bad += co_await write_pattern(*ch, lba, io_blocks, bs, seed) != 0;
        co_await yield{};
    }
    co_return bad;
}

// `qd` concurrent writers over [base, base + count); returns failures.
task<long> hammer(bdev* dev, uint64_t base, uint64_t count, uint8_t seed) {
    auto ch = dev->open_channel();
    constexpr unsigned qd = 4;
    constexpr uint32_t io_blocks = 8;
    std::vector<long> failures(qd, -1);
    gate g;
    for (unsigned k = 0; k < qd; ++k) {
        reactor::local().spawn(g.hold(
            store(&failures[k], writer(ch.get(), base + k * io_blocks, base + count, io_blocks,
                                       qd * io_blocks, dev->block_size(), seed))));
    }
    co_await g.close();
    long bad = 0;
    for (long f : failures) bad += f;
    co_return bad;
}

TEST_P(conformance, concurrent_io_from_two_reactors) {
    uint8_t seed0 = 51, seed1 = 52;
    run_reactors(2, [&]() -> task<void> {
        uint64_t half = blocks / 2;
        long bad0 = -1;
        gate g;
        reactor::local().spawn(g.hold(store(&bad0, hammer(dev.get(), 0, half, seed0))));
        long bad1 = co_await on(1, [&] { return hammer(dev.get(), half, half, seed1); });
        co_await g.close();
        EXPECT_EQ(bad0, 0);
        EXPECT_EQ(bad1, 0);
        // Each reactor reads what the other wrote.
        auto ch = dev->open_channel();
        EXPECT_EQ(co_await check(*ch, half, uint32_t(half), bs, stores() ? seed1 : 0), 0);
        long r = co_await on(1, [&]() -> task<long> {
            auto ch1 = dev->open_channel();
            co_return co_await check(*ch1, 0, uint32_t(half), bs, stores() ? seed0 : 0);
        });
        EXPECT_EQ(r, 0);
    });
}

INSTANTIATE_TEST_SUITE_P(
    backends, conformance,
    ::testing::Values(backend{"malloc_512", backend::malloc_kind, 512},
                      backend{"malloc_4096", backend::malloc_kind, 4096},
                      backend{"null_512", backend::null_kind, 512},
                      backend{"null_4096", backend::null_kind, 4096},
                      backend{"uring_direct_512", backend::uring_kind, 512},
                      backend{"uring_direct_4096", backend::uring_kind, 4096},
                      backend{"uring_buffered_512", backend::uring_kind, 512, false},
                      backend{"crypto_over_512", backend::crypto_kind, 4096, true, 512},
                      backend{"crypto_over_4096", backend::crypto_kind, 4096, true, 4096}),
    [](const auto& info) { return info.param.label; });

}  // namespace
}  // namespace weft::bdev::test
