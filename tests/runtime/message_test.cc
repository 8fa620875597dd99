#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "runtime/gate.h"
#include "runtime/uring_op.h"
#include "test_util.h"

namespace weft {
namespace {

using namespace std::chrono_literals;

// Consumer-side state, touched only by the consumer reactor's thread.
struct tally {
    std::vector<uint64_t> next;  // next expected sequence number per producer
    uint64_t received = 0;
    uint64_t out_of_order = 0;
};
tally* g_tally = nullptr;

void on_message(void* arg) {
    auto v = reinterpret_cast<uintptr_t>(arg);
    unsigned producer = unsigned(v >> 40);
    uint64_t seq = v & ((uint64_t(1) << 40) - 1);
    auto& t = *g_tally;
    if (t.next[producer] != seq) ++t.out_of_order;
    t.next[producer] = seq + 1;
    ++t.received;
}

TEST(messages, many_producers_millions_of_messages_exactly_once_in_order) {
    constexpr unsigned producers = 3;
    constexpr uint64_t per_producer = 1'000'000;
    tally t;
    t.next.assign(producers + 1, 0);
    g_tally = &t;
    // Reactor 0 consumes; reactors 1..3 produce as fast as they can (their
    // rings fill up and spill into their backlogs, which must keep order).
    test::run_reactors(producers + 1, [&]() -> task<void> {
        gate g;
        for (unsigned p = 1; p <= producers; ++p) {
            reactor::local().spawn(g.hold([](unsigned p) -> task<void> {
                co_await on(p, [p]() -> task<void> {
                    for (uint64_t seq = 0; seq < per_producer; ++seq) {
                        uintptr_t v = (uintptr_t(p) << 40) | seq;
                        reactor::local().send(0, {&on_message, reinterpret_cast<void*>(v)});
                        if (seq % 4096 == 0) co_await yield{};  // let the loop flush
                    }
                });
            }(p)));
        }
        co_await g.close();
        // Every producer's loop is done; its last sends may still be in
        // flight behind the call's reply, so wait for the count.
        while (t.received < producers * per_producer) co_await sleep(1ms);
    });
    EXPECT_EQ(t.received, producers * per_producer);
    EXPECT_EQ(t.out_of_order, 0u);
    for (unsigned p = 1; p <= producers; ++p) EXPECT_EQ(t.next[p], per_producer);
    g_tally = nullptr;
}

TEST(messages, on_runs_on_the_target_and_resumes_on_the_caller) {
    test::run_reactors(3, []() -> task<void> {
        EXPECT_EQ(reactor::local().id(), 0u);
        unsigned ran_on = co_await on(2, [] { return reactor::local().id(); });
        EXPECT_EQ(ran_on, 2u);
        EXPECT_EQ(reactor::local().id(), 0u);
        // A task on the target, which itself calls a third reactor (0 -> 1 -> 2).
        int v = co_await on(1, []() -> task<int> {
            int inner = co_await on(2, [] { return 20; });
            EXPECT_EQ(reactor::local().id(), 1u);
            co_await sleep(1ms);
            co_return inner + 1;
        });
        EXPECT_EQ(v, 21);
        // void work, and a call to self.
        bool touched = false;
        co_await on(0, [&] { touched = true; });
        EXPECT_TRUE(touched);
    });
}

TEST(messages, exceptions_cross_reactors) {
    test::run_reactors(2, []() -> task<void> {
        bool caught = false;
        try {
            co_await on(1, []() -> task<void> {
                co_await yield{};
                throw std::logic_error("remote");
            });
        } catch (const std::logic_error&) {
            caught = true;
        }
        EXPECT_TRUE(caught);
        EXPECT_THROW(co_await on(1, []() -> int { throw std::out_of_range("x"); }),
                     std::out_of_range);
    });
}

// Each of 4 reactors makes 20k calls to every other one: 240k round trips.
constexpr unsigned n = 4;
constexpr int calls = 20'000;

TEST(messages, concurrent_round_trips_from_every_reactor) {
    std::atomic<uint64_t> sum{0};
    test::run_reactors(n, [&]() -> task<void> {
        gate g;
        for (unsigned from = 0; from < n; ++from) {
            reactor::local().spawn(
                g.hold([](unsigned from, std::atomic<uint64_t>& sum) -> task<void> {
                    co_await on(from, [&sum]() -> task<void> {
                        gate inner;
                        for (unsigned to = 0; to < n; ++to) {
                            if (to == reactor::local().id()) continue;
                            reactor::local().spawn(inner.hold(
                                [](unsigned to, std::atomic<uint64_t>& sum) -> task<void> {
                                    uint64_t local = 0;
                                    for (int i = 0; i < calls; ++i)
                                        local += co_await on(to, [i] { return uint64_t(i); });
                                    sum += local;
                                }(to, sum)));
                        }
                        co_await inner.close();
                    });
                }(from, sum)));
        }
        co_await g.close();
    });
    EXPECT_EQ(sum.load(), uint64_t(n) * (n - 1) * (uint64_t(calls) * (calls - 1) / 2));
}

}  // namespace
}  // namespace weft
