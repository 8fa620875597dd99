// Bring-up and admin: discovery, identify, log pages and features, the
// allow-list, reservations between two hosts, a command timeout.
#include <gtest/gtest.h>

#include <cstring>

#include "initiator/discovery.h"
#include "initiator/fixture.h"
#include "initiator/ns.h"
#include "nvme/fabrics.h"
#include "nvme/log_pages.h"
#include "nvme/reservation.h"
#include "runtime/uring_op.h"

namespace weft::test {
namespace {

using namespace std::chrono_literals;
using initiator::controller;
using initiator::ns;

TEST(initiator_admin, discovery_lists_the_subsystem) {
    with_target([](fixture& f) -> task<void> {
        // Named, not a braced temporary: GCC 12 destroys aggregate temporaries
        // of a co_await expression twice.
        initiator::discovery_options oa{
            .address = f.addr, .hostnqn = host_a.nqn, .hostid = host_a.id};
        auto e = co_await initiator::discover(oa);
        CO_ASSERT_TRUE(e.ok());
        bool found = false;
        for (auto& d : e.value()) {
            if (d.subnqn != nqn) continue;
            found = true;
            EXPECT_EQ(d.trtype, 3);  // TCP
            EXPECT_EQ(d.traddr, "127.0.0.1");
            EXPECT_EQ(d.trsvcid, std::to_string(f.addr.port()));
        }
        EXPECT_TRUE(found);
        // Host C is not allowed there: the subsystem is not listed for it.
        initiator::discovery_options oc{
            .address = f.addr, .hostnqn = host_c.nqn, .hostid = host_c.id};
        auto c = co_await initiator::discover(oc);
        CO_ASSERT_TRUE(c.ok());
        for (auto& d : c.value()) EXPECT_NE(d.subnqn, nqn);
    });
}

TEST(initiator_admin, identify_log_pages_features) {
    with_target([](fixture& f) -> task<void> {
        auto c = co_await controller::connect(f.options(host_a));
        CO_ASSERT_TRUE(c.ok());
        controller& ctrl = *c.value();
        EXPECT_EQ(nvme::get_str(ctrl.identity().subnqn), std::string(nqn));
        EXPECT_EQ(ctrl.identity().cntlid, ctrl.cntlid());
        EXPECT_EQ(ctrl.max_transfer(), 1u << 20);
        EXPECT_EQ(ctrl.namespace_ids(), std::vector<uint32_t>{1});
        CO_ASSERT_TRUE(ctrl.namespace_data(1) != nullptr);
        EXPECT_EQ(ctrl.namespace_data(1)->nsze, ns1_blocks);
        // CC.EN and CSTS.RDY as the bring-up left them.
        auto csts = co_await ctrl.get_property(nvme::reg::csts, false);
        CO_ASSERT_TRUE(csts.ok());
        EXPECT_TRUE(csts.value() & nvme::csts_bits::rdy);
        // SMART log with an offset, and a feature round trip.
        std::vector<std::byte> smart(512);
        auto lp = co_await ctrl.get_log_page(uint8_t(nvme::log_id::smart_health), 0, smart);
        CO_ASSERT_TRUE(lp.ok());
        EXPECT_TRUE(nvme::status::from_field(lp->status).ok());
        auto ka = co_await ctrl.get_features(nvme::feature::keep_alive_timer);
        CO_ASSERT_TRUE(ka.ok());
        EXPECT_EQ(ka->dw0, 10000u);
        auto bad = co_await ctrl.get_log_page(0xee, 0, smart);
        CO_ASSERT_TRUE(bad.ok());
        EXPECT_FALSE(nvme::status::from_field(bad->status).ok());
        co_await ctrl.disconnect();
    });
}

TEST(initiator_admin, host_not_allowed_gets_eacces) {
    with_target([](fixture& f) -> task<void> {
        auto c = co_await controller::connect(f.options(host_c));
        CO_ASSERT_TRUE(!c.ok());
        EXPECT_EQ(c.err().code, EACCES);
        // No such subsystem: Connect Invalid Parameters.
        auto o = f.options(host_a);
        o.subnqn = "nqn.2024-01.io.weft.test:nope";
        auto d = co_await controller::connect(o);
        CO_ASSERT_TRUE(!d.ok());
        EXPECT_EQ(d.err().code, EINVAL);
        // Nothing listening.
        o = f.options(host_a);
        o.address = socket_address::ipv4("127.0.0.1", 1);
        auto e = co_await controller::connect(o);
        CO_ASSERT_TRUE(!e.ok());
        EXPECT_EQ(e.err().code, ECONNREFUSED);
    });
}

TEST(initiator_admin, reservations_between_two_hosts) {
    with_target([](fixture& f) -> task<void> {
        auto ca = co_await controller::connect(f.options(host_a));
        auto cb = co_await controller::connect(f.options(host_b));
        CO_ASSERT_TRUE(ca.ok() && cb.ok());
        ns a(*ca.value(), 1), b(*cb.value(), 1);
        using initiator::reservation_acquire_action;
        using initiator::reservation_register_action;
        using initiator::reservation_release_action;
        constexpr auto we = nvme::reservation_type::write_exclusive;
        auto ok = [](result<nvme::status> r) { return r.ok() && r.value().ok(); };
        EXPECT_TRUE(
            ok(co_await a.reservation_register(reservation_register_action::register_key, 0, 0xa)));
        EXPECT_TRUE(
            ok(co_await b.reservation_register(reservation_register_action::register_key, 0, 0xb)));
        EXPECT_TRUE(
            ok(co_await a.reservation_acquire(reservation_acquire_action::acquire, we, 0xa)));
        // B may read, not write.
        std::vector<std::byte> buf(512);
        iovec iov{buf.data(), buf.size()};
        auto w = co_await b.write(0, 1, {&iov, 1});
        CO_ASSERT_TRUE(w.ok());
        EXPECT_EQ(*w, nvme::sc::reservation_conflict);
        EXPECT_TRUE(ok(co_await b.read(0, 1, {&iov, 1})));
        EXPECT_TRUE(ok(co_await a.write(0, 1, {&iov, 1})));
        // The report (EDS) shows both registrants and A as the holder.
        std::vector<std::byte> rep(4096);
        CO_ASSERT_TRUE(ok(co_await a.reservation_report(rep)));
        nvme::reservation_status_ext_header h;
        std::memcpy(&h, rep.data(), sizeof h);
        EXPECT_EQ(h.rtype, uint8_t(we));
        EXPECT_EQ(h.regctl, 2);
        int holders = 0;
        for (int i = 0; i < h.regctl; ++i) {
            nvme::registered_controller_ext e;
            std::memcpy(&e, rep.data() + 64 + i * sizeof e, sizeof e);
            if (e.rcsts & 1) {
                ++holders;
                EXPECT_EQ(e.rkey, 0xau);
                EXPECT_EQ(0, std::memcmp(e.hostid, host_a.id.data(), 16));
            }
        }
        EXPECT_EQ(holders, 1);
        // Released: B writes again.
        EXPECT_TRUE(
            ok(co_await a.reservation_release(reservation_release_action::release, we, 0xa)));
        EXPECT_TRUE(ok(co_await b.write(0, 1, {&iov, 1})));
        co_await ca.value()->disconnect();
        co_await cb.value()->disconnect();
    });
}

TEST(initiator_admin, command_timeout_tears_the_connection_down) {
    with_target([](fixture& f) -> task<void> {
        auto o = f.options(host_a);
        o.command_timeout = 200ms;
        o.kato_ms = 0;
        o.io_queues = 0;
        auto c = co_await controller::connect(o);
        CO_ASSERT_TRUE(c.ok());
        controller& ctrl = *c.value();
        auto& admin = ctrl.admin();
        // An Asynchronous Event Request stays outstanding until an event:
        // the target never answers it here.
        auto t0 = std::chrono::steady_clock::now();
        auto aer =
            co_await admin.submit(initiator::make_admin(nvme::admin_opcode::async_event_request));
        auto waited = std::chrono::steady_clock::now() - t0;
        EXPECT_FALSE(aer.ok());
        EXPECT_EQ(aer.err().code, ETIMEDOUT);
        EXPECT_GE(waited, 200ms);
        EXPECT_LT(waited, 2s);
        EXPECT_EQ(admin.stats().timeouts, 1u);
        EXPECT_EQ(admin.current_state(), initiator::queue::state::failed);
        auto after = co_await ctrl.keep_alive();
        EXPECT_FALSE(after.ok());
        EXPECT_EQ(after.err().code, ENOTCONN);
        co_await ctrl.disconnect();
    });
}

}  // namespace
}  // namespace weft::test
