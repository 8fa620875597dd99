#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

#include "runtime/buffer_pool.h"
#include "runtime/file.h"
#include "runtime/gate.h"
#include "test_util.h"

namespace weft {
namespace {

std::string temp_path(const char* name) {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir ? dir : "/tmp") + "/weft-" + name + "-" + std::to_string(getpid());
}

TEST(file, direct_io_round_trip_with_pooled_buffers) {
    std::string path = temp_path("file");
    test::run_reactors(1, [&]() -> task<void> {
        auto f = file::open(path, {.direct = true, .create = true});
        CO_ASSERT_TRUE(f.ok());
        CO_ASSERT_TRUE(f->truncate(1 << 20).ok());
        auto& pool = buffer_pool::local();
        // 64 concurrent 4 KiB writes of distinct patterns, then read back.
        gate g;
        for (int i = 0; i < 64; ++i) {
            reactor::local().spawn(g.hold([](file& f, int i) -> task<void> {
                buffer b = buffer_pool::local().get(4096);
                std::memset(b.data(), i + 1, 4096);
                int n = co_await f.write(uint64_t(i) * 4096, b.span());
                EXPECT_EQ(n, 4096);
            }(f.value(), i)));
        }
        co_await g.close();
        EXPECT_EQ(co_await f->fsync(), 0);
        buffer all = pool.get(64 * 4096);
        CO_ASSERT_EQ(co_await f->read(0, all.span()), 64 * 4096);
        for (int i = 0; i < 64; ++i) {
            bool same = true;
            for (int j = 0; j < 4096; ++j) same &= all.data()[i * 4096 + j] == std::byte(i + 1);
            EXPECT_TRUE(same) << "block " << i;
        }
        auto sz = f->size();
        CO_ASSERT_TRUE(sz.ok());
        EXPECT_EQ(sz.value(), 1u << 20);
        // O_DIRECT refuses a misaligned buffer with an error, not a crash.
        std::vector<std::byte> odd(4096 + 1);
        int n = co_await f->read(0, std::span<std::byte>(odd.data() + 1, 4096));
        EXPECT_EQ(n, -EINVAL);
    });
    std::filesystem::remove(path);
}

TEST(file, open_failure_is_reported) {
    auto f = file::open("/nonexistent-dir/x", {.direct = false, .create = true});
    EXPECT_FALSE(f.ok());
    EXPECT_EQ(f.err().code, ENOENT);
}

}  // namespace
}  // namespace weft
