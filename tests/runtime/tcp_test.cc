#include <sys/resource.h>

#include <atomic>
#include <random>
#include <vector>

#include "runtime/gate.h"
#include "runtime/net.h"
#include "runtime/uring_op.h"
#include "test_util.h"

namespace weft {
namespace {

using namespace std::chrono_literals;

// An echo server with one SO_REUSEPORT listener per reactor, so the kernel
// spreads connections over the reactors.
struct echo_server {
    uint16_t port = 0;
    std::vector<abort_source*> stops;  // per reactor, owned by its accept loop
    std::atomic<int> accepted{0};
    std::atomic<int> finished{0};
    std::atomic<int> errors{0};
    std::atomic<uint64_t> bytes{0};
    std::vector<int> per_reactor;

    static task<void> serve(tcp_stream s, echo_server* srv) {
        std::vector<std::byte> buf(16 * 1024);
        for (;;) {
            int n = co_await s.recv(buf);
            if (n <= 0) {
                if (n < 0) srv->errors++;
                break;
            }
            auto sent = co_await s.send_all(std::span<const std::byte>(buf.data(), size_t(n)));
            if (!sent) {
                srv->errors++;
                break;
            }
            srv->bytes += size_t(n);
        }
        srv->finished++;
    }

    // Runs on reactor `r` until stop is requested; waits for its connections.
    static task<void> accept_loop(tcp_listener l, echo_server* srv, abort_source* stop) {
        gate conns;
        for (;;) {
            auto s = co_await l.accept(stop);
            if (!s) break;
            srv->accepted++;
            srv->per_reactor[reactor::local().id()]++;
            reactor::local().spawn(conns.hold(serve(std::move(s.value()), srv)));
        }
        co_await conns.close();
    }

    // Starts a listener on every reactor (call from reactor 0).
    task<void> start(unsigned reactors, gate& g) {
        per_reactor.assign(reactors, 0);
        stops.assign(reactors, nullptr);
        for (unsigned r = 0; r < reactors; ++r) {
            auto addr = socket_address::ipv4("127.0.0.1", port);
            auto l = tcp_listener::listen(addr, {.backlog = 2048, .reuse_port = true});
            EXPECT_TRUE(l.ok()) << l.err().message();
            if (!l) co_return;
            if (port == 0) port = l->local_address().port();
            auto* stop = new abort_source;
            stops[r] = stop;
            reactor::local().spawn(g.hold(
                [](unsigned r, tcp_listener l, echo_server* srv, abort_source* stop) -> task<void> {
                    co_await on(
                        r, [&]() -> task<void> { co_await accept_loop(std::move(l), srv, stop); });
                    delete stop;
                }(r, std::move(l.value()), this, stop)));
        }
    }
    task<void> stop() {
        for (unsigned r = 0; r < stops.size(); ++r) {
            abort_source* s = stops[r];
            co_await on(r, [s] { s->request_abort(); });
        }
    }
};

std::vector<std::byte> pattern(unsigned id, size_t n) {
    std::vector<std::byte> v(n);
    std::mt19937 rng(id);
    for (auto& b : v) b = std::byte(rng());
    return v;
}

// Sends `data` in random-sized pieces while the caller reads the echo back.
task<bool> echo_client(uint16_t port, unsigned id, size_t total) {
    auto c = co_await tcp_stream::connect(socket_address::ipv4("127.0.0.1", port));
    if (!c) {
        ADD_FAILURE() << "client " << id << " connect: " << c.err().message();
        co_return false;
    }
    tcp_stream s = std::move(c.value());
    auto data = pattern(id, total);
    bool send_ok = true;
    gate sender;
    reactor::local().spawn(sender.hold(
        [](tcp_stream& s, std::vector<std::byte>& data, unsigned id, bool& ok) -> task<void> {
            std::mt19937 rng(id * 31 + 1);
            size_t off = 0;
            while (off < data.size()) {
                size_t n = std::min<size_t>(data.size() - off, 1 + rng() % 8192);
                auto r = co_await s.send_all(std::span<const std::byte>(data.data() + off, n));
                if (!r) {
                    ok = false;
                    co_return;
                }
                off += n;
            }
        }(s, data, id, send_ok)));
    std::vector<std::byte> got(total);
    auto r = co_await s.recv_exact(got);
    co_await sender.close();
    bool same = r && r.value() == total && got == data && send_ok;
    if (!same) ADD_FAILURE() << "client " << id << ": echo differs or is short";
    co_return same;
}

constexpr unsigned reactors = 2;
constexpr unsigned connections = 1000;
constexpr size_t per_connection = 24 * 1024;

TEST(tcp, thousand_concurrent_connections_echo_on_two_reactors) {
    std::atomic<unsigned> good{0};
    echo_server srv;
    test::run_reactors(reactors, [&]() -> task<void> {
        gate listeners;
        co_await srv.start(reactors, listeners);
        CO_ASSERT_TRUE(srv.port != 0);
        // Clients on both reactors, all connected at once.
        gate clients;
        for (unsigned r = 0; r < reactors; ++r) {
            reactor::local().spawn(clients.hold(
                [](unsigned r, uint16_t port, std::atomic<unsigned>& good) -> task<void> {
                    co_await on(r, [&]() -> task<void> {
                        gate mine;
                        for (unsigned i = r; i < connections; i += reactors) {
                            reactor::local().spawn(
                                mine.hold([](uint16_t port, unsigned id,
                                             std::atomic<unsigned>& good) -> task<void> {
                                    if (co_await echo_client(port, id, per_connection)) good++;
                                }(port, i, good)));
                        }
                        co_await mine.close();
                    });
                }(r, srv.port, good)));
        }
        co_await clients.close();
        co_await srv.stop();
        co_await listeners.close();
    });
    EXPECT_EQ(good.load(), connections);
    EXPECT_EQ(srv.accepted.load(), int(connections));
    EXPECT_EQ(srv.finished.load(), int(connections));
    EXPECT_EQ(srv.errors.load(), 0);
    EXPECT_EQ(srv.bytes.load(), uint64_t(connections) * per_connection);
    // Both reactors served (SO_REUSEPORT spreads by hash; 1000 never all land on one).
    for (unsigned r = 0; r < reactors; ++r) EXPECT_GT(srv.per_reactor[r], 0) << "reactor " << r;
}

TEST(tcp, peer_reset_mid_stream_is_handled) {
    echo_server srv;
    test::run_reactors(1, [&]() -> task<void> {
        gate listeners;
        co_await srv.start(1, listeners);
        for (int round = 0; round < 20; ++round) {
            auto c = co_await tcp_stream::connect(socket_address::ipv4("127.0.0.1", srv.port));
            CO_ASSERT_TRUE(c.ok());
            auto data = pattern(round, 256 * 1024);
            // Send a lot without reading the echo, so the server is blocked
            // mid-send when the RST arrives; then reset.
            (void)co_await c->send(std::span<const std::byte>(data.data(), data.size()));
            co_await sleep(1ms);
            c->reset();
        }
        // The server is still healthy: a normal client gets its echo.
        EXPECT_TRUE(co_await echo_client(srv.port, 99, 64 * 1024));
        while (srv.finished.load() < 21) co_await sleep(1ms);
        co_await srv.stop();
        co_await listeners.close();
    });
    EXPECT_EQ(srv.accepted.load(), 21);
    EXPECT_EQ(srv.finished.load(), 21);
    EXPECT_GT(srv.errors.load(), 0);  // the resets were seen as errors, not hangs
}

TEST(tcp, client_sees_reset_from_the_server_as_an_error) {
    test::run_reactors(1, []() -> task<void> {
        auto l = tcp_listener::listen(socket_address::ipv4("127.0.0.1", 0));
        CO_ASSERT_TRUE(l.ok());
        auto c = co_await tcp_stream::connect(l->local_address());
        CO_ASSERT_TRUE(c.ok());
        auto s = co_await l->accept();
        CO_ASSERT_TRUE(s.ok());
        std::byte buf[64];
        s->reset();
        int n = co_await c->recv(buf);
        EXPECT_EQ(n, -ECONNRESET);
    });
}

TEST(tcp, connect_refused_is_an_error_not_a_crash) {
    test::run_reactors(1, []() -> task<void> {
        // Bind a port, close it: nothing listens there now.
        auto l = tcp_listener::listen(socket_address::ipv4("127.0.0.1", 0));
        CO_ASSERT_TRUE(l.ok());
        auto addr = l->local_address();
        l->close();
        auto c = co_await tcp_stream::connect(addr);
        EXPECT_FALSE(c.ok());
        EXPECT_EQ(c.err().code, ECONNREFUSED);
    });
}

TEST(tcp, sendmsg_and_zero_copy_send_deliver_every_byte) {
    test::run_reactors(1, []() -> task<void> {
        auto l = tcp_listener::listen(socket_address::ipv4("127.0.0.1", 0));
        CO_ASSERT_TRUE(l.ok());
        auto c = co_await tcp_stream::connect(l->local_address());
        CO_ASSERT_TRUE(c.ok());
        auto s = co_await l->accept();
        CO_ASSERT_TRUE(s.ok());
        auto head = pattern(1, 24), body = pattern(2, 4096), big = pattern(3, 1 << 20);
        iovec iov[2] = {{head.data(), head.size()}, {body.data(), body.size()}};
        auto sent = co_await s->send_all(iov);
        CO_ASSERT_TRUE(sent.ok());
        EXPECT_EQ(sent.value(), 24u + 4096u);
        std::vector<std::byte> got(24 + 4096);
        auto r = co_await c->recv_exact(got);
        CO_ASSERT_TRUE(r.ok());
        EXPECT_TRUE(std::equal(head.begin(), head.end(), got.begin()));
        EXPECT_TRUE(std::equal(body.begin(), body.end(), got.begin() + 24));
        // Zero-copy: the op returns only once the kernel released the buffer.
        gate g;
        std::vector<std::byte> got_big(big.size());
        reactor::local().spawn(g.hold([](tcp_stream& c, std::vector<std::byte>& out) -> task<void> {
            auto r = co_await c.recv_exact(out);
            EXPECT_TRUE(r.ok());
        }(c.value(), got_big)));
        size_t off = 0;
        while (off < big.size()) {
            int n =
                co_await s->send_zc(std::span<const std::byte>(big.data() + off, big.size() - off));
            CO_ASSERT_TRUE(n > 0);
            off += size_t(n);
        }
        co_await g.close();
        EXPECT_EQ(got_big, big);
    });
}

}  // namespace
}  // namespace weft
