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
}  // namespace weft::test
