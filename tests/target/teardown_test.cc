// A share or a listener taken away while hosts use it: their connections
// end (as with Linux nvmet), so that the host reconnects or moves to another
// path; no command is ever answered with an error because the path went.
#include "target/target_env.h"

namespace weft::test {
namespace {

using namespace std::chrono_literals;
namespace sc = nvme::sc;
using nvme::io_opcode;

nvme::command read_cmd(uint32_t nsid, uint64_t slba) {
    auto c = make_cmd(io_opcode::read, nsid);
    c.cdw10 = uint32_t(slba);
    c.cdw12 = 7;  // 8 blocks
    return c;
}

TEST(target_teardown, removing_a_subsystem_closes_its_connections) {
    run_with_target([](target_env& t) -> task<void> {
        session s, other;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
        CO_ASSERT_TRUE(co_await open_session(other, t.addr, t.params(host_a, open_nqn)));
        CO_ASSERT_TRUE(t.tgt.remove_subsystem(allow_nqn).ok());
        EXPECT_EQ(co_await s.admin.expect_closed(2000ms), outcome::closed);
        EXPECT_EQ(co_await s.io.expect_closed(2000ms), outcome::closed);
        // Another subsystem's controller is not touched.
        bytes buf(4096);
        CO_EXPECT_OK(co_await other.io.read(1, 0, 8, buf));
        // The subsystem is gone for new Connects too.
        host_queue q;
        CO_ASSERT_TRUE(co_await q.open(t.addr));
        auto r = co_await q.connect(t.params(host_a, allow_nqn));
        EXPECT_TRUE(r.status().is(sc::connect_invalid_parameters)) << r;
        EXPECT_FALSE(r.status().dnr) << "a removed share may come back: no DNR";
    });
}

TEST(target_teardown, commands_racing_the_removal_get_no_error_status) {
    run_with_target([](target_env& t) -> task<void> {
        // Every command sent around the removal (before it, between the
        // subsystem and its namespaces going, after) either succeeds or
        // ends with the connection: an error status would be read by the
        // host's file system as lost data.
        for (int round = 0; round < 8; ++round) {
            session s;
            CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
            std::vector<bytes> bufs(24, bytes(4096));
            std::vector<int> cids;
            for (int i = 0; i < 8; ++i)
                cids.push_back(co_await s.io.submit(read_cmd(1, 8 * i), {.in = bufs[i]}));
            CO_ASSERT_TRUE(t.tgt.remove_subsystem(allow_nqn).ok());
            for (int i = 8; i < 16; ++i)
                cids.push_back(co_await s.io.submit(read_cmd(1, 8 * i), {.in = bufs[i]}));
            auto table = t.allow->namespaces();
            for (auto& [nsid, n] : *table) (void)t.allow->remove_namespace(nsid);
            for (int i = 16; i < 24; ++i)
                cids.push_back(co_await s.io.submit(read_cmd(1, 8 * i), {.in = bufs[i]}));
            unsigned ok = 0, closed = 0;
            for (int cid : cids) {
                if (cid < 0) {
                    ++closed;  // the connection had already ended
                    continue;
                }
                auto r = co_await s.io.wait(cid);
                if (r.ok()) {
                    ++ok;
                } else {
                    EXPECT_EQ(r.how, outcome::closed) << "round " << round << ": " << r;
                    ++closed;
                }
            }
            EXPECT_GT(closed, 0u) << "round " << round << ": the connection outlived its subsystem";
            EXPECT_EQ(co_await s.admin.expect_closed(2000ms), outcome::closed);
            // Back for the next round, as a share made again would be.
            auto again = t.tgt.add_subsystem(allow_nqn, "WEFTTEST0001", "weft test allow");
            CO_ASSERT_TRUE(again.ok());
            t.allow = again.value();
            t.allow->allow_any_host(false);
            t.allow->allow_host(host_a.nqn);
            CO_ASSERT_TRUE(t.allow->add_namespace(1, t.devs[0], ids_for(1)).ok());
            (void)ok;
        }
    });
}

TEST(target_teardown, removing_a_listener_closes_the_connections_made_through_it) {
    run_with_target([](target_env& t) -> task<void> {
        CO_ASSERT_TRUE((co_await t.server->listen(socket_address::ipv4("127.0.0.1", 0))).ok());
        socket_address second = t.server->addresses().back();
        session kept, dropped;
        CO_ASSERT_TRUE(co_await open_session(kept, t.addr, t.params(host_a, allow_nqn)));
        CO_ASSERT_TRUE(co_await open_session(dropped, second, t.params(host_b, allow_nqn)));
        CO_ASSERT_TRUE((co_await t.server->unlisten(second)).ok());
        EXPECT_EQ(co_await dropped.admin.expect_closed(2000ms), outcome::closed);
        EXPECT_EQ(co_await dropped.io.expect_closed(2000ms), outcome::closed);
        bytes buf(4096);
        CO_EXPECT_OK(co_await kept.io.read(1, 0, 8, buf));
        host_queue q;
        EXPECT_FALSE(co_await q.open(second)) << "still accepting on " << second.to_string();
    });
}

}  // namespace
}  // namespace weft::test
