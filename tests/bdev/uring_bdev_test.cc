// The uring bdev beyond the shared conformance tests: opening options,
// persistence across reopen, misaligned and numerous iovecs under O_DIRECT,
// read-only mode, and a loop block device when the machine allows one.
#include <sys/stat.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "bdev_test_util.h"

namespace weft::bdev::test {
namespace {

result<std::unique_ptr<bdev>> create(const temp_file& f, uint64_t bytes, uint32_t bs = 0,
                                     bool direct = true) {
    return open_uring_bdev(
        "u", f.path(), {.create = true, .create_bytes = bytes, .block_size = bs, .direct = direct});
}

TEST(uring_bdev, opening_options) {
    temp_file f("open");
    // Missing without `create`, or with nothing to create.
    EXPECT_EQ(open_uring_bdev("u", f.path()).err().code, ENOENT);
    EXPECT_EQ(create(f, 0).err().code, EINVAL);
    EXPECT_FALSE(std::filesystem::exists(f.path()));
    // A refused block size leaves no file behind.
    EXPECT_EQ(create(f, 1 << 20, 1000).err().code, EINVAL);
    EXPECT_EQ(create(f, 1 << 20, 256).err().code, EINVAL);
    EXPECT_FALSE(std::filesystem::exists(f.path()));

    auto d = create(f, (1 << 20) + 100);  // a partial block at the end is not used
    ASSERT_TRUE(d.ok()) << d.err().message();
    EXPECT_EQ(d.value()->block_size(), 512u);
    EXPECT_EQ(d.value()->num_blocks(), 2048u);
    EXPECT_TRUE(d.value()->volatile_write_cache());
    EXPECT_TRUE(d.value()->unmap_reads_zeroes());
    d.value().reset();

    // An existing file keeps its size; create_bytes only applies to a new one.
    auto d4 =
        open_uring_bdev("u", f.path(), {.create = true, .create_bytes = 4096, .block_size = 4096});
    ASSERT_TRUE(d4.ok());
    EXPECT_EQ(d4.value()->num_blocks(), 256u);
    auto sync = open_uring_bdev("u", f.path(), {.dsync = true});
    ASSERT_TRUE(sync.ok());
    EXPECT_FALSE(sync.value()->volatile_write_cache());

    temp_file empty("empty");
    std::fclose(std::fopen(empty.path().c_str(), "w"));
    EXPECT_EQ(open_uring_bdev("u", empty.path()).err().code, EINVAL);
    EXPECT_EQ(open_uring_bdev("u", "/tmp").err().code, EINVAL);  // a directory
}

TEST(uring_bdev, data_persists_across_reopen) {
    temp_file f("persist");
    for (bool direct : {true, false}) {
        SCOPED_TRACE(direct ? "direct" : "buffered");
        {
            auto d = create(f, 4 << 20, 4096, direct);
            ASSERT_TRUE(d.ok()) << d.err().message();
            run_reactors(1, [&]() -> task<void> {
                auto ch = d.value()->open_channel();
                buffer b = get_buffer(64 * 4096);
                fill(b.span(), 100, 4096, direct ? 61 : 62);
                CO_ASSERT_EQ(co_await ch->write(100, 64, one(b.span()), false), 0);
                CO_ASSERT_EQ(co_await ch->flush(), 0);
            });
        }
        auto d = open_uring_bdev("again", f.path(), {.block_size = 4096, .direct = direct});
        ASSERT_TRUE(d.ok());
        EXPECT_EQ(d.value()->num_blocks(), 1024u);
        run_reactors(1, [&]() -> task<void> {
            auto ch = d.value()->open_channel();
            buffer b = get_buffer(64 * 4096);
            CO_ASSERT_EQ(co_await ch->read(100, 64, one(b.span())), 0);
            EXPECT_EQ(mismatch(b.span(), 100, 4096, direct ? 61 : 62), -1);
        });
        ::unlink(f.path().c_str());
    }
}

TEST(uring_bdev, resize_changes_the_file_and_survives_reopen) {
    temp_file f("resize");
    {
        auto d = create(f, 1 << 20);
        ASSERT_TRUE(d.ok());
        ASSERT_TRUE(d.value()->resize(4096).ok());
        struct stat st {};
        ASSERT_EQ(stat(f.path().c_str(), &st), 0);
        EXPECT_EQ(st.st_size, 4096 * 512);
        ASSERT_TRUE(d.value()->resize(100).ok());
        ASSERT_EQ(stat(f.path().c_str(), &st), 0);
        EXPECT_EQ(st.st_size, 100 * 512);
    }
    auto d = open_uring_bdev("u", f.path());
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d.value()->num_blocks(), 100u);
}

// O_DIRECT wants aligned memory; iovecs that are not go through a bounce
// buffer instead of failing with EINVAL.
TEST(uring_bdev, misaligned_iovecs_with_direct_io) {
    temp_file f("unaligned");
    auto d = create(f, 8 << 20, 4096);
    ASSERT_TRUE(d.ok());
    run_reactors(1, [&]() -> task<void> {
        auto ch = d.value()->open_channel();
        constexpr uint32_t bs = 4096;
        // Heap memory at odd offsets, cut at odd sizes, a block split in two.
        std::vector<std::byte> heap(16 * bs + 64);
        std::span<std::byte> odd(heap.data() + 3, 16 * bs);
        fill(odd, 40, bs, 71);
        auto w = split(odd, sizes(100, 4000, 5000, 3 * bs));
        CO_ASSERT_EQ(co_await ch->write(40, 16, w, /*fua=*/true), 0);
        std::vector<std::byte> back(16 * bs + 64);
        std::span<std::byte> odd_back(back.data() + 7, 16 * bs);
        auto r = split(odd_back, sizes(777, bs, 1));
        CO_ASSERT_EQ(co_await ch->read(40, 16, r), 0);
        EXPECT_EQ(mismatch(odd_back, 40, bs, 71), -1);
        // Aligned buffer, misaligned lengths (512-byte pieces of 4 KiB blocks
        // are still aligned for the file system; 100-byte ones are not).
        buffer b = get_buffer(2 * bs);
        fill(b.span(), 0, bs, 72);
        CO_ASSERT_EQ(co_await ch->write(0, 2, split(b.span(), sizes(100, 412)), false), 0);
        buffer c = get_buffer(2 * bs);
        CO_ASSERT_EQ(co_await ch->read(0, 2, split(c.span(), sizes(512))), 0);
        EXPECT_EQ(mismatch(c.span(), 0, bs, 72), -1);
        // Larger than one bounce buffer (1 MiB): the copy loops.
        std::vector<std::byte> big(512 * bs + 1);
        std::span<std::byte> big_odd(big.data() + 1, 512 * bs);
        fill(big_odd, 1000, bs, 73);
        CO_ASSERT_EQ(co_await ch->write(1000, 512, one(big_odd), false), 0);
        buffer e = get_buffer(512 * bs);
        CO_ASSERT_EQ(co_await ch->read(1000, 512, one(e.span())), 0);
        EXPECT_EQ(mismatch(e.span(), 1000, bs, 73), -1);
    });
}

// More iovecs than one readv/writev takes (IOV_MAX) go in several.
TEST(uring_bdev, more_iovecs_than_iov_max) {
    temp_file f("iovmax");
    auto d = create(f, 4 << 20);
    ASSERT_TRUE(d.ok());
    run_reactors(1, [&]() -> task<void> {
        auto ch = d.value()->open_channel();
        constexpr uint32_t n = IOV_MAX + 500;
        buffer b = get_buffer(n * 512);
        fill(b.span(), 3, 512, 81);
        CO_ASSERT_EQ(co_await ch->write(3, n, split(b.span(), sizes(512)), false), 0);
        buffer c = get_buffer(n * 512);
        CO_ASSERT_EQ(co_await ch->read(3, n, split(c.span(), sizes(512))), 0);
        EXPECT_EQ(mismatch(c.span(), 3, 512, 81), -1);
    });
}

TEST(uring_bdev, read_only_refuses_changes) {
    temp_file f("ro");
    ASSERT_TRUE(create(f, 1 << 20).ok());
    auto d = open_uring_bdev("u", f.path(), {.read_only = true});
    ASSERT_TRUE(d.ok()) << d.err().message();
    EXPECT_TRUE(d.value()->read_only());
    EXPECT_EQ(d.value()->resize(10).err().code, EROFS);
    run_reactors(1, [&]() -> task<void> {
        auto ch = d.value()->open_channel();
        buffer b = get_buffer(512);
        EXPECT_EQ(co_await ch->read(0, 1, one(b.span())), 0);
        EXPECT_EQ(co_await ch->write(0, 1, one(b.span()), false), -EROFS);
        EXPECT_EQ(co_await ch->write_zeroes(0, 1), -EROFS);
        EXPECT_EQ(co_await ch->unmap(0, 1), -EROFS);
        EXPECT_EQ(co_await ch->write(2048, 1, one(b.span()), false), -ERANGE);
    });
}

// Runs a shell command, returns its first output line ("" on failure).
std::string shell(const std::string& cmd) {
    FILE* p = popen((cmd + " 2>/dev/null").c_str(), "r");
    if (!p) return "";
    char line[256] = {};
    bool got = std::fgets(line, sizeof line, p) != nullptr;
    int status = pclose(p);
    if (!got || status != 0) return "";
    std::string s(line);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
}

// A loop device over a sparse file stands in for a disk: needs root and
// losetup, skipped without them.
TEST(uring_bdev, loop_block_device) {
    temp_file backing("loop");
    std::fclose(std::fopen(backing.path().c_str(), "w"));
    ASSERT_EQ(truncate(backing.path().c_str(), 16 << 20), 0);
    std::string dev_path = shell("losetup --find --show --sector-size 4096 " + backing.path());
    if (dev_path.empty()) GTEST_SKIP() << "no loop device (needs root and losetup)";
    struct detach {
        std::string p;
        ~detach() { shell("losetup -d " + p); }
    } guard{dev_path};

    auto d = open_uring_bdev("loop", dev_path);
    ASSERT_TRUE(d.ok()) << d.err().message();
    bdev& dev = *d.value();
    EXPECT_EQ(dev.block_size(), 4096u);  // the device's logical block size
    EXPECT_EQ(dev.num_blocks(), 4096u);
    EXPECT_FALSE(dev.unmap_reads_zeroes());
    EXPECT_EQ(dev.resize(8192).err().code, ENOTSUP);
    EXPECT_EQ(open_uring_bdev("loop512", dev_path, {.block_size = 512}).err().code, EINVAL);
    run_reactors(2, [&]() -> task<void> {
        auto ch = dev.open_channel();
        buffer b = get_buffer(8 * 4096);
        fill(b.span(), 10, 4096, 91);
        CO_ASSERT_EQ(co_await ch->write(10, 8, one(b.span()), true), 0);
        CO_ASSERT_EQ(co_await ch->flush(), 0);
        long bad = co_await on(1, [&]() -> task<long> {
            auto ch1 = dev.open_channel();
            buffer c = get_buffer(8 * 4096);
            if (int rc = co_await ch1->read(10, 8, one(c.span())); rc != 0) co_return rc;
            co_return mismatch(c.span(), 10, 4096, 91);
        });
        EXPECT_EQ(bad, -1);
        EXPECT_EQ(co_await ch->write_zeroes(12, 2), 0);
        buffer c = get_buffer(8 * 4096);
        CO_ASSERT_EQ(co_await ch->read(10, 8, one(c.span())), 0);
        EXPECT_TRUE(all_zero(c.span().subspan(2 * 4096, 2 * 4096)));
        EXPECT_EQ(mismatch(c.span().subspan(0, 2 * 4096), 10, 4096, 91), -1);
        EXPECT_EQ(co_await ch->unmap(0, 64), 0);
        EXPECT_EQ(co_await ch->read(4096, 1, one(c.span().subspan(0, 4096))), -ERANGE);
    });
}

}  // namespace
}  // namespace weft::bdev::test
