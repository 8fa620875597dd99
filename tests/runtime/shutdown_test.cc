#include <sys/socket.h>

#include <atomic>

#include "runtime/gate.h"
#include "runtime/net.h"
#include "runtime/uring_op.h"
#include "test_util.h"

namespace weft {
namespace {

using namespace std::chrono_literals;

std::atomic<int> live{0};
struct tracker {
    tracker() { ++live; }
    tracker(const tracker&) = delete;
    ~tracker() { --live; }
};

task<void> sleeper() {
    tracker t;
    co_await sleep(1h);
    ADD_FAILURE() << "a sleeper woke up";
}

task<void> reader(int fd) {
    tracker t;
    tcp_stream s{fd_handle(fd)};
    std::byte buf[128];
    co_await s.recv(buf);  // no data ever comes
}

task<void> waits_on_other_reactor(unsigned other) {
    tracker t;
    co_await on(other, []() -> task<void> {
        tracker inner;
        co_await sleep(1h);
    });
}

TEST(shutdown, work_in_flight_is_cancelled_and_freed) {
    live = 0;
    auto t0 = test::now();
    test::run_reactors(2, []() -> task<void> {
        for (unsigned r = 0; r < 2; ++r) {
            co_await on(r, [r] {
                auto& me = reactor::local();
                for (int i = 0; i < 50; ++i) me.spawn(sleeper());
                for (int i = 0; i < 50; ++i) {
                    int sv[2];
                    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
                    me.spawn(reader(sv[0]));
                    me.spawn([](int fd) -> task<void> {
                        tracker t;
                        fd_handle keep(fd);  // the peer stays open: the read never ends
                        co_await sleep(1h);
                    }(sv[1]));
                }
                for (int i = 0; i < 20; ++i) me.spawn(waits_on_other_reactor(1 - r));
            });
        }
        co_await sleep(20ms);  // let everything start and block
        EXPECT_EQ(live.load(), 2 * (50 + 100 + 40));
        // main returns with all of that in flight
    });
    EXPECT_EQ(live.load(), 0) << "frames of in-flight work were not destroyed";
    EXPECT_LT(test::now() - t0, 5s);
}

TEST(shutdown, graceful_stop_lets_connections_finish) {
    // The engine's pattern: stop accepting, abort the connections, wait.
    int finished = 0, accepted = 0;
    test::run_reactors(1, [&]() -> task<void> {
        auto l = tcp_listener::listen(socket_address::ipv4("127.0.0.1", 0));
        CO_ASSERT_TRUE(l.ok());
        abort_source stop;
        gate conns;
        reactor::local().spawn(conns.hold([](tcp_listener& l, abort_source& stop, gate& conns,
                                             int& accepted, int& finished) -> task<void> {
            for (;;) {
                auto s = co_await l.accept(&stop);
                if (!s) break;
                ++accepted;
                reactor::local().spawn(
                    conns.hold([](tcp_stream s, abort_source& stop, int& finished) -> task<void> {
                        std::byte buf[64];
                        while (co_await s.recv(buf).abort_with(stop) > 0) {
                        }
                        ++finished;
                    }(std::move(s.value()), stop, finished)));
            }
        }(l.value(), stop, conns, accepted, finished)));
        std::vector<tcp_stream> clients;
        for (int i = 0; i < 10; ++i) {
            auto c = co_await tcp_stream::connect(l->local_address());
            CO_ASSERT_TRUE(c.ok());
            clients.push_back(std::move(c.value()));
        }
        while (accepted < 10) co_await sleep(1ms);
        stop.request_abort();
        co_await conns.close();
        EXPECT_EQ(finished, 10);
    });
    EXPECT_EQ(accepted, 10);
}

}  // namespace
}  // namespace weft
