#include <sys/socket.h>

#include <algorithm>
#include <random>
#include <vector>

#include "runtime/gate.h"
#include "runtime/net.h"
#include "runtime/uring_op.h"
#include "test_util.h"

namespace weft {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

TEST(timer, fire_in_deadline_order_and_never_early) {
    struct fired {
        int ms;
        std::chrono::nanoseconds waited;
    };
    std::vector<fired> log;
    test::run_reactors(1, [&]() -> task<void> {
        std::vector<int> delays;
        for (int i = 1; i <= 30; ++i) delays.push_back(2 * i);  // 2 ms apart
        std::shuffle(delays.begin(), delays.end(), std::mt19937(7));
        gate g;
        for (int ms : delays) {
            reactor::local().spawn(g.hold([](std::vector<fired>& log, int ms) -> task<void> {
                auto t0 = test::now();
                int rc = co_await sleep(milliseconds(ms));
                EXPECT_EQ(rc, 0);
                log.push_back({ms, test::now() - t0});
            }(log, ms)));
        }
        co_await g.close();
    });
    ASSERT_EQ(log.size(), 30u);
    for (size_t i = 0; i < log.size(); ++i) {
        EXPECT_EQ(log[i].ms, int(2 * (i + 1))) << "timer " << i << " out of order";
        EXPECT_GE(log[i].waited, milliseconds(log[i].ms))
            << "timer of " << log[i].ms << " ms fired early";
    }
}

TEST(timer, zero_and_negative_sleeps_complete) {
    test::run_reactors(1, []() -> task<void> {
        EXPECT_EQ(co_await sleep(0ms), 0);
        EXPECT_EQ(co_await sleep(-5ms), 0);
    });
}

TEST(cancellation, abort_ends_a_sleep_at_once) {
    test::run_reactors(1, []() -> task<void> {
        abort_source stop;
        auto t0 = test::now();
        reactor::local().spawn([](abort_source& s) -> task<void> {
            co_await sleep(10ms);
            s.request_abort();
        }(stop));
        int rc = co_await sleep(10s).abort_with(stop);
        EXPECT_EQ(rc, -ECANCELED);
        EXPECT_LT(test::now() - t0, 2s);
        EXPECT_EQ(reactor::local().in_flight(), 1u);  // only the wake-up read is left
    });
}

TEST(cancellation, already_aborted_source_does_not_start_the_op) {
    test::run_reactors(1, []() -> task<void> {
        abort_source stop;
        stop.request_abort();
        uint64_t before = reactor::local().in_flight();
        EXPECT_EQ(co_await sleep(10s).abort_with(stop), -ECANCELED);
        EXPECT_EQ(reactor::local().in_flight(), before);
    });
}

TEST(cancellation, abort_releases_a_pending_recv_and_its_socket) {
    test::run_reactors(1, []() -> task<void> {
        int sv[2];
        CO_ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        tcp_stream a{fd_handle(sv[0])};
        fd_handle b(sv[1]);
        abort_source stop;
        std::byte buf[16];
        reactor::local().spawn([](abort_source& s) -> task<void> {
            co_await sleep(5ms);
            s.request_abort();
        }(stop));
        int rc = co_await a.recv(buf).abort_with(stop);
        EXPECT_EQ(rc, -ECANCELED);
        EXPECT_EQ(reactor::local().in_flight(), 1u);
        // The operation is gone: data sent now stays for the next recv.
        CO_ASSERT_EQ(::send(b.get(), "hi", 2, 0), 2);
        rc = co_await a.recv(buf);
        EXPECT_EQ(rc, 2);
    });
}

TEST(cancellation, linked_timeout_ends_a_recv_with_etimedout) {
    test::run_reactors(1, []() -> task<void> {
        int sv[2];
        CO_ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        tcp_stream a{fd_handle(sv[0])};
        fd_handle b(sv[1]);
        std::byte buf[16];
        auto t0 = test::now();
        int rc = co_await a.recv(buf).timeout(20ms);
        EXPECT_EQ(rc, -ETIMEDOUT);
        EXPECT_GE(test::now() - t0, 20ms);
        // A timeout that does not expire leaves the result alone.
        CO_ASSERT_EQ(::send(b.get(), "hello", 5, 0), 5);
        rc = co_await a.recv(buf).timeout(5s);
        EXPECT_EQ(rc, 5);
        // The unfired linked timeout is cancelled by the kernel with its op.
        co_await sleep(1ms);
        EXPECT_EQ(reactor::local().in_flight(), 1u);
    });
}

TEST(cancellation, one_source_cancels_many_operations) {
    test::run_reactors(1, []() -> task<void> {
        abort_source stop;
        gate g;
        int cancelled = 0;
        for (int i = 0; i < 100; ++i) {
            reactor::local().spawn(g.hold([](abort_source& s, int& c) -> task<void> {
                if (co_await sleep(1h).abort_with(s) == -ECANCELED) ++c;
            }(stop, cancelled)));
        }
        co_await yield{};
        co_await sleep(1ms);
        stop.request_abort();
        co_await g.close();
        EXPECT_EQ(cancelled, 100);
    });
}

}  // namespace
}  // namespace weft
