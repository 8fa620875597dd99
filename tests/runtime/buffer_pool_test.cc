#include "runtime/buffer_pool.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace weft {
namespace {

TEST(buffer_pool, aligned_and_reused) {
    buffer_pool pool;
    std::byte* first = nullptr;
    {
        buffer b = pool.get(4096);
        ASSERT_TRUE(b);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % 4096, 0u);
        EXPECT_EQ(b.size(), 4096u);
        first = b.data();
    }
    buffer again = pool.get(100);  // same class: the same memory comes back
    EXPECT_EQ(again.data(), first);
    EXPECT_EQ(pool.allocations(), 1u);
    buffer big = pool.get(128 * 1024 + 1);  // rounds up to 256 KiB
    EXPECT_EQ(reinterpret_cast<uintptr_t>(big.data()) % 4096, 0u);
    EXPECT_EQ(pool.allocations(), 2u);
}

TEST(buffer_pool, cache_is_bounded) {
    buffer_pool pool(8192);
    { buffer a = pool.get(4096), b = pool.get(4096), c = pool.get(4096); }
    EXPECT_LE(pool.cached_bytes(), 8192u);
}

TEST(buffer_pool, move_transfers_ownership) {
    buffer_pool pool;
    buffer a = pool.get(4096);
    std::byte* p = a.data();
    buffer b = std::move(a);
    EXPECT_FALSE(a);
    EXPECT_EQ(b.data(), p);
    b = pool.get(8192);
    EXPECT_EQ(pool.cached_bytes(), 4096u);  // p went back
}

}  // namespace
}  // namespace weft
