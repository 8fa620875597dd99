// DH-HMAC-CHAP between weft's initiator and weft's target over real sockets:
// every queue authenticates (admin and I/O, on both reactors), the refusals
// (no secret, a wrong one, a controller that cannot or does not prove
// itself) come back as distinct errors, and a changed secret applies to new
// connections while the ones made before keep working.
#include <gtest/gtest.h>

#include "initiator/fixture.h"
#include "initiator/ns.h"

namespace weft::test {
namespace {

using initiator::controller;
using initiator::ns;

auth::dhchap_key new_key(auth::hash_id t = auth::hash_id::sha256) {
    return auth::generate_dhchap_key(t).value();
}

std::shared_ptr<nvmf::host_auth> target_side(const auth::dhchap_key& k,
                                             std::optional<auth::dhchap_key> ck = {}) {
    auto a = std::make_shared<nvmf::host_auth>();
    a->key = k;
    a->ctrl_key = std::move(ck);
    return a;
}

std::shared_ptr<initiator::dhchap_host_options> host_side(const auth::dhchap_key& k,
                                                          std::optional<auth::dhchap_key> ck = {}) {
    auto o = std::make_shared<initiator::dhchap_host_options>();
    o->key = k;
    o->ctrl_key = std::move(ck);
    return o;
}

// A write then a read back of 64 KiB at `lba` through every I/O queue.
task<bool> round_trip(controller& ctrl, uint64_t lba) {
    ns d(ctrl, 1);
    std::vector<std::byte> out(65536), in(65536);
    fill(out, uint32_t(lba));
    iovec o{out.data(), out.size()}, i{in.data(), in.size()};
    auto w = co_await d.write(lba, 128, {&o, 1});
    auto r = co_await d.read(lba, 128, {&i, 1});
    co_return w && w->ok() && r && r->ok() && in == out;
}

TEST(initiator_auth, every_queue_authenticates_and_refusals_are_distinct) {
    with_target([](fixture& f) -> task<void> {
        auto hk = new_key(), ck = new_key(auth::hash_id::none);
        f.tgt.set_host_auth(host_a.nqn, target_side(hk, ck));
        auto o = f.options(host_a);
        o.io_queues = 2;
        o.reactors = {0, 1};
        // No secret: the target requires one.
        auto none = co_await controller::connect(o);
        CO_ASSERT_TRUE(!none.ok());
        EXPECT_EQ(none.err().code, ENOKEY);
        // A wrong secret.
        o.dhchap = host_side(new_key());
        auto wrong = co_await controller::connect(o);
        CO_ASSERT_TRUE(!wrong.ok());
        EXPECT_EQ(wrong.err().code, EKEYREJECTED);
        // The right one: the admin queue and both I/O queues authenticate.
        o.dhchap = host_side(hk);
        auto c = co_await controller::connect(o);
        CO_ASSERT_TRUE(c.ok());
        EXPECT_EQ(c.value()->io_queue_count(), 2u);
        EXPECT_TRUE(co_await round_trip(*c.value(), 0));
        co_await c.value()->disconnect();
        // Bidirectional: the controller proves it holds the controller secret.
        o.dhchap = host_side(hk, ck);
        auto b = co_await controller::connect(o);
        CO_ASSERT_TRUE(b.ok());
        EXPECT_TRUE(co_await round_trip(*b.value(), 1024));
        co_await b.value()->disconnect();
        // ... and a host expecting another controller secret refuses it.
        o.dhchap = host_side(hk, new_key());
        auto bad = co_await controller::connect(o);
        CO_ASSERT_TRUE(!bad.ok());
        EXPECT_EQ(bad.err().code, EKEYREJECTED);
    });
}

TEST(initiator_auth, controller_that_does_not_prove_itself_is_refused) {
    with_target([](fixture& f) -> task<void> {
        // Host B has no secret on the target: it does not ask to authenticate.
        auto o = f.options(host_b);
        o.dhchap = host_side(new_key());
        auto uni = co_await controller::connect(o);
        CO_ASSERT_TRUE(uni.ok());  // nothing to prove for the host
        co_await uni.value()->disconnect();
        o.dhchap = host_side(new_key(), new_key());
        auto bidi = co_await controller::connect(o);
        CO_ASSERT_TRUE(!bidi.ok());
        EXPECT_EQ(bidi.err().code, EKEYREJECTED);
        // The target wants a controller secret the target does not have.
        auto hk = new_key();
        f.tgt.set_host_auth(host_b.nqn, target_side(hk));
        o.dhchap = host_side(hk, new_key());
        auto noctrl = co_await controller::connect(o);
        CO_ASSERT_TRUE(!noctrl.ok());
        EXPECT_EQ(noctrl.err().code, EKEYREJECTED);
    });
}

TEST(initiator_auth, a_new_secret_applies_to_new_connections) {
    with_target([](fixture& f) -> task<void> {
        auto k1 = new_key(), k2 = new_key(auth::hash_id::sha512);
        f.tgt.set_host_auth(host_a.nqn, target_side(k1));
        auto o = f.options(host_a);
        o.dhchap = host_side(k1);
        auto old = co_await controller::connect(o);
        CO_ASSERT_TRUE(old.ok());
        f.tgt.set_host_auth(host_a.nqn, target_side(k2));
        // The connection made with the old secret keeps working.
        EXPECT_TRUE(co_await round_trip(*old.value(), 0));
        auto refused = co_await controller::connect(o);
        CO_ASSERT_TRUE(!refused.ok());
        EXPECT_EQ(refused.err().code, EKEYREJECTED);
        o.dhchap = host_side(k2);
        auto fresh = co_await controller::connect(o);
        CO_ASSERT_TRUE(fresh.ok());
        EXPECT_TRUE(co_await round_trip(*fresh.value(), 2048));
        co_await fresh.value()->disconnect();
        co_await old.value()->disconnect();
        // Removed: the host connects without authenticating again.
        f.tgt.set_host_auth(host_a.nqn, nullptr);
        o.dhchap = nullptr;
        auto open = co_await controller::connect(o);
        CO_ASSERT_TRUE(open.ok());
        co_await open.value()->disconnect();
    });
}

}  // namespace

// Secure channel concatenation (weft's host and target): DH-HMAC-CHAP on a
// plain admin queue makes a TLS key; every queue then runs TLS with it.
initiator::controller_options concat_options(const fixture& f, const host& h,
                                             const auth::dhchap_key& k) {
    auto o = f.options(h);
    o.dhchap = host_side(k);
    o.concat = true;
    return o;
}

TEST(initiator_auth, secure_channel_concatenation) {
    nvmf::tcp_options allowed;
    allowed.tls = nvmf::tls_mode::allowed;
    with_target(
        [](fixture& f) -> task<void> {
            auto hk = new_key(), ck = new_key();
            f.tgt.set_host_auth(host_a.nqn, target_side(hk, ck));
            auto o = concat_options(f, host_a, hk);
            o.io_queues = 2;
            o.reactors = {0, 1};
            o.connect_timeout = std::chrono::milliseconds(2000);
            auto c = co_await controller::connect(o);
            CO_ASSERT_TRUE(c.ok());
            std::string id = c.value()->tls_identity();
            EXPECT_TRUE(id.starts_with("NVMe1G01 " + host_a.nqn + " ")) << id;
            // The target holds the same key under that identity.
            EXPECT_TRUE(f.tgt.find_tls_psk(id).has_value());
            EXPECT_EQ(c.value()->io_queue_count(), 2u);
            EXPECT_TRUE(co_await round_trip(*c.value(), 0));
            // A second controller makes a key of its own; both work.
            auto c2 = co_await controller::connect(o);
            CO_ASSERT_TRUE(c2.ok());
            EXPECT_NE(c2.value()->tls_identity(), id);
            EXPECT_TRUE(co_await round_trip(*c2.value(), 1024));
            co_await c2.value()->disconnect();
            // With a controller secret: the controller proves itself on the
            // plain queue; the TLS queues need not again.
            auto ob = o;
            ob.dhchap = host_side(hk, ck);
            auto bidi = co_await controller::connect(ob);
            CO_ASSERT_TRUE(bidi.ok());
            EXPECT_TRUE(co_await round_trip(*bidi.value(), 2048));
            co_await bidi.value()->disconnect();
            co_await c.value()->disconnect();

            // A wrong secret makes no key.
            auto wrong = o;
            wrong.dhchap = host_side(new_key());
            auto w = co_await controller::connect(wrong);
            CO_ASSERT_TRUE(!w.ok());
            EXPECT_EQ(w.err().code, EKEYREJECTED);
            // A host without a secret here is not asked to authenticate.
            auto b = co_await controller::connect(concat_options(f, host_b, hk));
            CO_ASSERT_TRUE(!b.ok());
            EXPECT_EQ(b.err().code, EPROTO);
            // Concatenation needs a secret, and no TLS key of its own.
            auto no_secret = f.options(host_a);
            no_secret.concat = true;
            auto n = co_await controller::connect(no_secret);
            CO_ASSERT_TRUE(!n.ok());
            EXPECT_EQ(n.err().code, EINVAL);

            // The plain controller that made a key takes no I/O queue.
            auto queue_opts = [&](uint16_t qid, uint16_t cntlid) {
                initiator::queue_options q;
                q.address = f.addr;
                q.subnqn = nqn;
                q.hostnqn = host_a.nqn;
                q.hostid = host_a.id;
                q.qid = qid;
                q.cntlid = cntlid;
                return q;
            };
            auto aq = queue_opts(0, 0xffff);
            aq.dhchap = host_side(hk);
            std::shared_ptr<const auth::derived_psk> psk;
            aq.concat_psk = &psk;
            auto admin = co_await initiator::queue::connect(aq);
            CO_ASSERT_TRUE(admin.ok());
            CO_ASSERT_TRUE(psk != nullptr);
            auto iq = queue_opts(1, admin.value()->cntlid());
            iq.dhchap = host_side(hk);
            auto io = co_await initiator::queue::connect(iq);
            CO_ASSERT_TRUE(!io.ok());
            EXPECT_EQ(io.err().code, EINVAL);
            co_await admin.value()->close();
            // Its key connects over TLS as a new controller.
            auto tq = queue_opts(0, 0xffff);
            tq.tls = psk;
            auto t = co_await initiator::queue::connect(tq);
            CO_ASSERT_TRUE(t.ok());  // no secret given: it was not asked to authenticate
            co_await t.value()->close();

            // The same secret set again (a config reload) keeps the keys;
            // another secret drops them, and a key from an exchange that
            // began under the old one is not kept.
            auto old_cfg = f.tgt.find_host_auth(host_a.nqn);
            f.tgt.set_host_auth(host_a.nqn, target_side(hk, ck));
            EXPECT_TRUE(f.tgt.find_tls_psk(id).has_value());
            EXPECT_TRUE(f.tgt.find_tls_psk(psk->identity).has_value());
            f.tgt.set_host_auth(host_a.nqn, target_side(new_key()));
            EXPECT_FALSE(f.tgt.find_tls_psk(id).has_value());
            EXPECT_FALSE(f.tgt.find_tls_psk(psk->identity).has_value());
            EXPECT_FALSE(f.tgt.add_generated_psk(host_a.nqn, nqn, old_cfg, *psk));
            EXPECT_FALSE(f.tgt.find_tls_psk(psk->identity).has_value());
            // Removed: the same.
            EXPECT_TRUE(
                f.tgt.add_generated_psk(host_a.nqn, nqn, f.tgt.find_host_auth(host_a.nqn), *psk));
            EXPECT_TRUE(f.tgt.find_tls_psk(psk->identity).has_value());
            f.tgt.set_host_auth(host_a.nqn, nullptr);
            EXPECT_FALSE(f.tgt.find_tls_psk(psk->identity).has_value());
        },
        allowed);
    // A listener without TLS refuses to make a key (concatenation mismatch).
    with_target([](fixture& f) -> task<void> {
        auto hk = new_key();
        f.tgt.set_host_auth(host_a.nqn, target_side(hk));
        auto c = co_await controller::connect(concat_options(f, host_a, hk));
        CO_ASSERT_TRUE(!c.ok());
        EXPECT_EQ(c.err().code, ENOPROTOOPT);
    });
}

}  // namespace weft::test
