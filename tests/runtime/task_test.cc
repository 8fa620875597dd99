#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/frame_allocator.h"
#include "runtime/gate.h"
#include "runtime/result.h"
#include "runtime/task.h"
#include "runtime/uring_op.h"
#include "test_util.h"

namespace weft {
namespace {

task<int> value_of(int v) {
    co_return v;
}

task<int> add_chain(int depth) {
    if (depth == 0) co_return 0;
    co_return 1 + co_await add_chain(depth - 1);
}

task<void> throws_after_yield() {
    co_await yield{};
    throw std::runtime_error("boom");
}

task<result<int>> fails_with(int err) {
    co_return error{err};
}

TEST(task, lazy_until_awaited_and_runs_in_order) {
    std::vector<std::string> log;
    test::run_reactors(1, [&]() -> task<void> {
        auto step = [&](std::string name) -> task<void> {
            log.push_back(name + ":start");
            co_await yield{};
            log.push_back(name + ":end");
        };
        auto a = step("a");
        log.push_back("created");
        co_await std::move(a);
        co_await step("b");
    });
    EXPECT_EQ(log, (std::vector<std::string>{"created", "a:start", "a:end", "b:start", "b:end"}));
}

TEST(task, values_and_exceptions_reach_the_awaiter) {
    test::run_reactors(1, [&]() -> task<void> {
        EXPECT_EQ(co_await value_of(42), 42);
        bool caught = false;
        try {
            co_await throws_after_yield();
        } catch (const std::runtime_error& e) {
            caught = std::string(e.what()) == "boom";
        }
        EXPECT_TRUE(caught);
        auto r = co_await fails_with(ENOSPC);
        EXPECT_FALSE(r.ok());
        EXPECT_EQ(r.err().code, ENOSPC);
    });
}

TEST(task, exception_from_main_propagates_out_of_run) {
    EXPECT_THROW(test::run_reactors(2, []() -> task<void> { co_await throws_after_yield(); }),
                 std::runtime_error);
}

TEST(task, deep_synchronous_chains_do_not_grow_the_stack) {
    // Symmetric transfer: a million nested awaits complete without a stack
    // overflow (an 8 MiB stack holds far fewer real calls). ASan's
    // instrumentation defeats the tail calls, so it checks a shallower chain.
#ifdef WEFT_SANITIZE
    constexpr int depth = 10'000;
#else
    constexpr int depth = 1'000'000;
#endif
    int got = test::run_reactors(1, []() -> task<int> { co_return co_await add_chain(depth); });
    EXPECT_EQ(got, depth);
}

TEST(task, spawned_tasks_interleave_fairly) {
    std::vector<int> order;
    test::run_reactors(1, [&]() -> task<void> {
        gate g;
        for (int id = 0; id < 3; ++id) {
            reactor::local().spawn(g.hold([](std::vector<int>& o, int id) -> task<void> {
                for (int i = 0; i < 3; ++i) {
                    o.push_back(id);
                    co_await yield{};
                }
            }(order, id)));
        }
        co_await g.close();
    });
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 0, 1, 2, 0, 1, 2}));
}

TEST(task, frames_come_from_the_reactor_pool) {
    uint64_t hits = 0, heap = 0;
    test::run_reactors(1, [&]() -> task<void> {
        for (int i = 0; i < 100; ++i) co_await value_of(i);  // warm up
        auto before = frame_allocator::thread_stats();
        for (int i = 0; i < 10'000; ++i) co_await value_of(i);
        auto after = frame_allocator::thread_stats();
        hits = after.pool_hits - before.pool_hits;
        heap = after.heap_allocs - before.heap_allocs;
    });
    EXPECT_EQ(hits, 10'000u);
    EXPECT_EQ(heap, 0u);
}

TEST(task, gate_waits_for_held_work) {
    test::run_reactors(1, [&]() -> task<void> {
        gate g;
        int done = 0;
        for (int i = 0; i < 5; ++i) {
            reactor::local().spawn(g.hold([](int& d, int i) -> task<void> {
                co_await sleep(std::chrono::milliseconds(5 * i));
                ++d;
            }(done, i)));
        }
        EXPECT_EQ(g.count(), 5u);
        co_await g.close();
        EXPECT_EQ(done, 5);
        EXPECT_EQ(g.count(), 0u);
    });
}

}  // namespace
}  // namespace weft
