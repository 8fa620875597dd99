// NVMe/TCP over TLS 1.3 between weft's initiator and weft's target, real
// sockets: listeners that require TLS or allow both, every queue under TLS,
// the refusals (no key, a wrong one, a PSK made for another subsystem), the
// discovery log saying so, and the target's choice between the RFC 8446 and
// the older nvme-cli derivation.
#include <gtest/gtest.h>

#include "initiator/discovery.h"
#include "initiator/fixture.h"
#include "initiator/ns.h"

namespace weft::test {
namespace {

using initiator::controller;
using initiator::ns;

std::shared_ptr<const auth::tls_key> new_key(auth::hash_id h = auth::hash_id::sha256) {
    return std::make_shared<const auth::tls_key>(auth::generate_tls_key(h).value());
}

task<bool> round_trip(controller& ctrl, uint64_t lba) {
    ns d(ctrl, 1);
    std::vector<std::byte> out(256 * 1024), in(256 * 1024);
    fill(out, uint32_t(lba));
    iovec o{out.data(), out.size()}, i{in.data(), in.size()};
    auto w = co_await d.write(lba, 512, {&o, 1});
    auto r = co_await d.read(lba, 512, {&i, 1});
    co_return w && w->ok() && r && r->ok() && in == out;
}

nvmf::tcp_options with_tls(nvmf::tls_mode m) {
    nvmf::tcp_options o;
    o.tls = m;
    return o;
}

TEST(initiator_tls, every_queue_runs_tls_and_refusals_are_distinct) {
    with_target(
        [](fixture& f) -> task<void> {
            auto k = new_key();
            f.tgt.set_host_tls_key(host_a.nqn, k);
            auto o = f.options(host_a);
            o.io_queues = 2;
            o.reactors = {0, 1};
            o.connect_timeout = std::chrono::milliseconds(2000);
            // No TLS: the listener requires it.
            auto plain = co_await controller::connect(o);
            CO_ASSERT_TRUE(!plain.ok());
            // The target's handshake fails on the ICReq and ends the connection.
            EXPECT_EQ(plain.err().code, ECONNRESET);
            // Another key under the same identity.
            o.tls_key = new_key();
            auto wrong = co_await controller::connect(o);
            CO_ASSERT_TRUE(!wrong.ok());
            EXPECT_EQ(wrong.err().code, EKEYREJECTED);
            // The right one, v1 and v0 identities.
            for (unsigned v : {1u, 0u}) {
                o.tls_key = k;
                o.tls_identity_version = v;
                auto c = co_await controller::connect(o);
                CO_ASSERT_TRUE(c.ok());
                EXPECT_EQ(c.value()->io_queue_count(), 2u);
                EXPECT_TRUE(co_await round_trip(*c.value(), 4096 * v));
                co_await c.value()->disconnect();
            }
            // Host B has no key on the target.
            auto ob = f.options(host_b);
            ob.tls_key = k;
            auto b = co_await controller::connect(ob);
            CO_ASSERT_TRUE(!b.ok());
            EXPECT_EQ(b.err().code, EKEYREJECTED);
            // SHA-384.
            auto k384 = new_key(auth::hash_id::sha384);
            f.tgt.set_host_tls_key(host_b.nqn, k384);
            ob.tls_key = k384;
            auto b384 = co_await controller::connect(ob);
            CO_ASSERT_TRUE(b384.ok());
            EXPECT_TRUE(co_await round_trip(*b384.value(), 8192));
            co_await b384.value()->disconnect();
            // Removed: new connections are refused.
            f.tgt.set_host_tls_key(host_b.nqn, nullptr);
            auto gone = co_await controller::connect(ob);
            CO_ASSERT_TRUE(!gone.ok());
            EXPECT_EQ(gone.err().code, EKEYREJECTED);
        },
        with_tls(nvmf::tls_mode::required));
}

TEST(initiator_tls, a_psk_for_another_subsystem_does_not_connect_here) {
    with_target(
        [](fixture& f) -> task<void> {
            auto k = new_key();
            f.tgt.set_host_tls_key(host_a.nqn, k);
            // A PSK derived for another subsystem: TLS comes up (the host's
            // key is right), Connect to this one is refused.
            auto d = auth::derive_tls_psk(*k, host_a.nqn, "nqn.2024-01.io.weft.test:other");
            CO_ASSERT_TRUE(d.ok());
            initiator::queue_options q;
            q.address = f.addr;
            q.subnqn = nqn;
            q.hostnqn = host_a.nqn;
            q.hostid = host_a.id;
            q.tls = std::make_shared<const auth::derived_psk>(std::move(d.value()));
            auto r = co_await initiator::queue::connect(q);
            CO_ASSERT_TRUE(!r.ok());
            EXPECT_EQ(r.err().code, EACCES);
        },
        with_tls(nvmf::tls_mode::required));
}

TEST(initiator_tls, allowed_listener_takes_both_and_discovery_says_so) {
    with_target(
        [](fixture& f) -> task<void> {
            auto k = new_key();
            f.tgt.set_host_tls_key(host_a.nqn, k);
            auto o = f.options(host_a);
            auto plain = co_await controller::connect(o);
            CO_ASSERT_TRUE(plain.ok());
            EXPECT_TRUE(co_await round_trip(*plain.value(), 0));
            o.tls_key = k;
            auto tls = co_await controller::connect(o);
            CO_ASSERT_TRUE(tls.ok());
            EXPECT_TRUE(co_await round_trip(*tls.value(), 512));
            co_await tls.value()->disconnect();
            co_await plain.value()->disconnect();
            // Discovery, itself over TLS: TLS 1.3, not required.
            initiator::discovery_options d{
                .address = f.addr, .hostnqn = host_a.nqn, .hostid = host_a.id};
            d.tls_key = k;
            auto e = co_await initiator::discover(d);
            CO_ASSERT_TRUE(e.ok());
            CO_ASSERT_TRUE(!e.value().empty());
            for (auto& x : e.value()) {
                EXPECT_EQ(x.treq & 3, 2);
                EXPECT_EQ(x.sectype, 2);
            }
        },
        with_tls(nvmf::tls_mode::allowed));
}

TEST(initiator_tls, discovery_log_page_per_listener) {
    nvmf::target t;
    t.add_listen_address(socket_address::ipv4("127.0.0.1", 4420), nvmf::tls_mode::off);
    t.add_listen_address(socket_address::ipv4("127.0.0.1", 4421), nvmf::tls_mode::required);
    t.add_listen_address(socket_address::ipv4("127.0.0.1", 4422), nvmf::tls_mode::allowed);
    auto page = t.discovery_log_page(host_a.nqn);
    ASSERT_EQ(page.size(), 4u * 1024);
    struct {
        uint8_t treq, sectype;
    } want[] = {{0x2, 0}, {0x1, 2}, {0x2, 2}};
    for (size_t i = 0; i < 3; ++i) {
        nvme::discovery_log_entry e;
        std::memcpy(&e, page.data() + 1024 * (i + 1), sizeof e);
        EXPECT_EQ(e.treq & 3, want[i].treq) << i;
        EXPECT_EQ(e.tsas[0], want[i].sectype) << i;
    }
}

TEST(initiator_tls, target_tells_the_older_derivation_by_the_digest) {
    nvmf::target t;
    auto k = new_key();
    t.set_host_tls_key(host_a.nqn, k);
    for (auto d : {auth::derivation::rfc8446, auth::derivation::compat}) {
        auto want = auth::derive_tls_psk(*k, host_a.nqn, nqn, 1, d);
        ASSERT_TRUE(want);
        auto got = t.find_tls_psk(want->identity);
        ASSERT_TRUE(got) << want->identity;
        EXPECT_TRUE(auth::same_secret(got->psk, want->psk));
        EXPECT_EQ(got->identity, want->identity);
    }
    // Unknown host, malformed identity, the wrong hash, a generated key.
    auto v1 = auth::derive_tls_psk(*k, host_a.nqn, nqn).value();
    EXPECT_FALSE(t.find_tls_psk(auth::derive_tls_psk(*k, host_b.nqn, nqn).value().identity));
    EXPECT_FALSE(t.find_tls_psk("NVMe1R01 garbage"));
    std::string wrong_hash = v1.identity;
    wrong_hash[7] = '2';
    EXPECT_FALSE(t.find_tls_psk(wrong_hash));
    std::string generated = v1.identity;
    generated[5] = 'G';
    EXPECT_FALSE(t.find_tls_psk(generated));
    // A digest that matches neither derivation.
    std::string bad_digest = v1.identity;
    bad_digest[bad_digest.size() - 2] ^= 1;
    EXPECT_FALSE(t.find_tls_psk(bad_digest));
}

}  // namespace
}  // namespace weft::test
