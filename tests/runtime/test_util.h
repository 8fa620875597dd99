// Helpers shared by the runtime tests.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>

#include "runtime/runtime.h"

namespace weft::test {

// Runs `body` as the main task of a fresh runtime with `n` unpinned reactors
// (tests must not depend on the machine's core count).
template <typename F>
auto run_reactors(unsigned n, F body) {
    runtime_config cfg;
    cfg.cpus.assign(n, -1);
    cfg.poll_window = std::chrono::microseconds(20);
    runtime rt(cfg);
    return rt.run(std::move(body));
}

inline auto now() {
    return std::chrono::steady_clock::now();
}

}  // namespace weft::test

// ASSERT_* returns, which a coroutine may not: these co_return instead.
#define CO_ASSERT_EQ(a, b)                \
    do {                                  \
        auto&& co_a_ = (a);               \
        auto&& co_b_ = (b);               \
        EXPECT_EQ(co_a_, co_b_);          \
        if (!(co_a_ == co_b_)) co_return; \
    } while (0)
#define CO_ASSERT_TRUE(c)         \
    do {                          \
        bool co_c_ = bool(c);     \
        EXPECT_TRUE(co_c_) << #c; \
        if (!co_c_) co_return;    \
    } while (0)
