// TLS 1.3 with a PSK under NVMe/TCP (nvmf/tcp/tls.h): weft's client and
// server over a real loopback socket, with the keys of tls_psk.h.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "auth/tls_psk.h"
#include "nvmf/tcp/tls.h"
#include "runtime/net.h"
#include "runtime/test_util.h"
#include "runtime/when_all.h"

namespace weft::nvmf::tcp {
namespace {

using namespace std::chrono_literals;

constexpr const char* hostnqn =
    "nqn.2014-08.org.nvmexpress:uuid:f0e1d2c3-0000-4000-8000-000000000001";
constexpr const char* subnqn = "nqn.2026-11.io.weft:tls-test";

using auth::derived_psk;

derived_psk psk_for(const auth::tls_key& k, const char* host = hostnqn, const char* sub = subnqn) {
    auto d = auth::derive_tls_psk(k, host, sub);
    EXPECT_TRUE(d);
    return std::move(d.value());
}

// One connection: the server's and the client's ends, connected.
struct pair_result {
    int server_rc = 1, client_rc = 1;
    std::string server_identity, server_failure, client_failure;
    bool echoed = false;
};

std::vector<std::byte> pattern(size_t n, unsigned seed) {
    std::vector<std::byte> v(n);
    std::mt19937 g(seed);
    for (auto& b : v) b = std::byte(g());
    return v;
}

task<int> serve(tcp_listener* l, tls_channel* t, pair_result* r, size_t echo) {
    auto s = co_await l->accept();
    if (!s) co_return -1;
    r->server_rc = co_await t->handshake(*s, 5s, nullptr);
    r->server_identity = t->identity();
    r->server_failure = t->failure();
    if (r->server_rc != 0) co_return r->server_rc;
    // Echo `echo` bytes back, in whatever pieces they come.
    std::vector<std::byte> buf(echo);
    size_t have = 0;
    while (have < echo) {
        int n = co_await t->recv(*s, std::span(buf).subspan(have), nullptr, 5s);
        if (n <= 0) co_return n == 0 ? -ECONNRESET : n;
        have += size_t(n);
    }
    iovec v{buf.data(), buf.size()};
    auto sent = co_await t->send_all(*s, std::span<const iovec>(&v, 1));
    co_return sent ? 0 : -sent.err().code;
}

task<int> client(socket_address a, tls_channel* t, pair_result* r, size_t echo) {
    auto s = co_await tcp_stream::connect(a);
    if (!s) co_return -1;
    r->client_rc = co_await t->handshake(*s, 5s, nullptr);
    r->client_failure = t->failure();
    if (r->client_rc != 0) co_return r->client_rc;
    if (echo == 0) co_return 0;
    // Many iovecs of odd sizes: records are cut across them.
    auto data = pattern(echo, 7);
    std::vector<iovec> iov;
    for (size_t off = 0, i = 0; off < echo; ++i) {
        size_t n = std::min(echo - off, size_t(1 + (i * 7919) % 40000));
        iov.push_back({data.data() + off, n});
        off += n;
    }
    auto sent = co_await t->send_all(*s, iov);
    if (!sent || *sent != echo) co_return -2;
    std::vector<std::byte> back(echo);
    size_t have = 0;
    while (have < echo) {
        int n = co_await t->recv(*s, std::span(back).subspan(have), nullptr, 5s);
        if (n <= 0) co_return -3;
        have += size_t(n);
    }
    r->echoed = back == data;
    co_return 0;
}

pair_result run_pair(tls_psk_finder find, const derived_psk& offer, size_t echo = 0,
                     const char* server_groups = nullptr) {
    pair_result r;
    test::run_reactors(1, [&]() -> task<void> {
        auto l = tcp_listener::listen(socket_address::ipv4("127.0.0.1", 0));
        CO_ASSERT_TRUE(l.ok());
        auto server = tls_channel::server(find);
        if (server_groups) CO_ASSERT_TRUE(server->set_groups(server_groups));
        auto cl = tls_channel::client(std::make_shared<const derived_psk>(offer));
        std::vector<task<int>> ts;
        ts.push_back(serve(&*l, server.get(), &r, echo));
        ts.push_back(client(l->local_address(), cl.get(), &r, echo));
        co_await when_all(std::move(ts));
    });
    return r;
}

tls_psk_finder finder_of(derived_psk p) {
    return [p](std::string_view id) -> std::optional<derived_psk> {
        if (id == p.identity) return p;
        return std::nullopt;
    };
}

TEST(Tls, HandshakeAndDataBothHashes) {
    for (auth::hash_id h : {auth::hash_id::sha256, auth::hash_id::sha384}) {
        auto k = auth::generate_tls_key(h);
        ASSERT_TRUE(k);
        derived_psk p = psk_for(*k);
        auto r = run_pair(finder_of(p), p, 3 << 20);
        EXPECT_EQ(r.server_rc, 0) << r.server_failure;
        EXPECT_EQ(r.client_rc, 0) << r.client_failure;
        EXPECT_EQ(r.server_identity, p.identity);
        EXPECT_TRUE(r.echoed) << auth::hash_name(h);
    }
}

TEST(Tls, HelloRetryRequestKeepsThePsk) {
    // The client's first key share (X25519) is not the server's group: the
    // server asks again (HelloRetryRequest) and the PSK must be offered again.
    for (auth::hash_id h : {auth::hash_id::sha256, auth::hash_id::sha384}) {
        auto k = auth::generate_tls_key(h);
        ASSERT_TRUE(k);
        derived_psk p = psk_for(*k);
        auto r = run_pair(finder_of(p), p, 100000, "P-256");
        EXPECT_EQ(r.server_rc, 0) << r.server_failure;
        EXPECT_EQ(r.client_rc, 0) << r.client_failure;
        EXPECT_TRUE(r.echoed) << auth::hash_name(h);
    }
}

TEST(Tls, UnknownIdentityIsRefused) {
    auto k = auth::generate_tls_key(auth::hash_id::sha256);
    ASSERT_TRUE(k);
    derived_psk mine = psk_for(*k);
    derived_psk other = psk_for(*k, hostnqn, "nqn.2026-11.io.weft:another");
    auto r = run_pair(finder_of(other), mine);
    EXPECT_EQ(r.server_rc, -EACCES);
    EXPECT_EQ(r.server_identity, mine.identity);
    EXPECT_EQ(r.client_rc, -EACCES) << r.client_failure;
}

TEST(Tls, DifferentKeysUnderOneIdentityAreRefused) {
    auto a = auth::generate_tls_key(auth::hash_id::sha256);
    auto b = auth::generate_tls_key(auth::hash_id::sha256);
    ASSERT_TRUE(a && b);
    derived_psk server = psk_for(*a), offer = psk_for(*b);
    offer.identity = server.identity;  // same name, another key
    auto r = run_pair(finder_of(server), offer);
    EXPECT_EQ(r.server_rc, -EACCES) << r.server_failure;
    EXPECT_EQ(r.client_rc, -EACCES) << r.client_failure;
}

// The server's handshake against a raw client that sends `first` (if
// any) and then nothing: its result.
int server_handshake_against(std::span<const std::byte> first, std::chrono::milliseconds timeout) {
    int rc = 1;
    test::run_reactors(1, [&]() -> task<void> {
        auto l = tcp_listener::listen(socket_address::ipv4("127.0.0.1", 0));
        CO_ASSERT_TRUE(l.ok());
        auto c = co_await tcp_stream::connect(l->local_address());
        CO_ASSERT_TRUE(c.ok());
        auto s = co_await l->accept();
        CO_ASSERT_TRUE(s.ok());
        if (!first.empty()) {
            auto sent = co_await c->send_all(first);
            CO_ASSERT_TRUE(sent.ok());
        }
        auto t = tls_channel::server(nullptr);
        rc = co_await t->handshake(*s, timeout, nullptr);
    });
    return rc;
}

TEST(Tls, APlainPeerFailsTheHandshake) {
    // An ICReq where a ClientHello should be.
    std::byte icreq[128]{};
    icreq[2] = std::byte(128);
    icreq[4] = std::byte(128);
    EXPECT_EQ(server_handshake_against(icreq, 5s), -EPROTO);
}

TEST(Tls, SilentPeerTimesOut) {
    EXPECT_EQ(server_handshake_against({}, 200ms), -ETIMEDOUT);
}

}  // namespace
}  // namespace weft::nvmf::tcp
