// The connection's set-up over real sockets: ICReq/ICResp, Fabrics Connect
// and its errors, controller properties, the keep-alive timeout, discovery.
#include <array>
#include <cstring>
#include <set>

#include "nvme/auth.h"
#include "nvme/log_pages.h"
#include "nvmf/host_auth.h"
#include "runtime/uring_op.h"
#include "target/target_env.h"

namespace weft::test {
namespace {

using namespace std::chrono_literals;
namespace sc = nvme::sc;

// Connect Invalid Parameters dword 0: IATTR (bit 16) set for a field of the
// Connect data, IPO the field's byte offset (NVMe-oF 1.1, 3.3).
constexpr uint32_t ipo_data(size_t off) {
    return (1u << 16) | uint32_t(off);
}
constexpr uint32_t ipo_sqe(size_t off) {
    return uint32_t(off);
}

TEST(target_connect, ic_resp_fields) {
    run_with_target([](target_env& t) -> task<void> {
        struct ask {
            bool h, d;
        };
        const std::array<ask, 4> asks{ask{false, false}, ask{true, false}, ask{false, true},
                                      ask{true, true}};
        for (ask a : asks) {
            host_queue q;
            CO_ASSERT_TRUE(co_await q.open(t.addr, {.hdgst = a.h, .ddgst = a.d}));
            const tcp::ic_resp& r = q.ic_resp();
            EXPECT_EQ(r.ch.type, uint8_t(tcp::pdu_type::ic_resp));
            EXPECT_EQ(r.ch.hlen, 128);
            EXPECT_EQ(r.ch.plen.get(), 128u);
            EXPECT_EQ(r.pfv.get(), 0);
            EXPECT_EQ(r.cpda, 0);
            uint8_t want =
                (a.h ? tcp::digest_bits::header : 0) | (a.d ? tcp::digest_bits::data : 0);
            EXPECT_EQ(r.dgst, want) << "digests asked: header " << a.h << " data " << a.d;
            EXPECT_EQ(r.maxh2cdata.get() % 4, 0u);
            EXPECT_GE(r.maxh2cdata.get(), 4096u);
            // The negotiated digests are in force: a command goes through.
            auto c = co_await q.connect(t.params(host_a, allow_nqn));
            EXPECT_TRUE(c.ok()) << c;
        }
    });
}

TEST(target_connect, admin_queue_gets_a_controller) {
    run_with_target([](target_env& t) -> task<void> {
        host_queue a, b;
        CO_ASSERT_TRUE(co_await a.open(t.addr));
        CO_ASSERT_TRUE(co_await b.open(t.addr));
        auto ra = co_await a.connect(t.params(host_a, allow_nqn));
        auto rb = co_await b.connect(t.params(host_a, allow_nqn));
        CO_ASSERT_OK(ra);
        CO_ASSERT_OK(rb);
        uint16_t ca = ra.cpl.dw0 & 0xffff, cb = rb.cpl.dw0 & 0xffff;
        EXPECT_NE(ca, 0);
        EXPECT_LT(ca, 0xfff0);
        EXPECT_NE(ca, cb) << "two admin queues, two controllers";
        EXPECT_EQ(ra.cpl.sqid, 0);
        EXPECT_EQ(ra.cpl.cid, 1);
    });
}

TEST(target_connect, unknown_subsystem) {
    run_with_target([](target_env& t) -> task<void> {
        host_queue q;
        CO_ASSERT_TRUE(co_await q.open(t.addr));
        auto r = co_await q.connect(t.params(host_a, "nqn.2024-01.io.weft.test:nosuch"));
        EXPECT_EQ(r.cpl.dw0, ipo_data(offsetof(nvme::connect_data, subnqn)));
        EXPECT_EQ(r.status().type, nvme::sct::command_specific);
        EXPECT_EQ(r.status().code, 0x82);
        // Not DNR: a share taken away may come back, and Linux hosts since
        // 6.10 stop reconnecting on a DNR Connect status.
        EXPECT_FALSE(r.status().dnr);
    });
}

TEST(target_connect, host_not_on_the_allow_list_is_refused) {
    run_with_target([](target_env& t) -> task<void> {
        {
            host_queue q;
            CO_ASSERT_TRUE(co_await q.open(t.addr));
            auto r = co_await q.connect(t.params(host_c, allow_nqn));
            EXPECT_STATUS(r, sc::connect_invalid_host);
            EXPECT_EQ(r.status().code, 0x84);
            EXPECT_EQ(r.cpl.dw0, ipo_data(offsetof(nvme::connect_data, hostnqn)));
            // Refused: the queue has no controller.
            auto p = co_await q.property_get(nvme::reg::vs, false);
            EXPECT_STATUS(p, sc::command_sequence_error);
        }
        {
            host_queue q;
            CO_ASSERT_TRUE(co_await q.open(t.addr));
            EXPECT_STATUS(co_await q.connect(t.params(host_a, private_nqn)),
                          sc::connect_invalid_host);
        }
        {
            // The same host is welcome where it is listed, and anywhere on `open`.
            host_queue q1, q2;
            CO_ASSERT_TRUE(co_await q1.open(t.addr));
            CO_ASSERT_TRUE(co_await q2.open(t.addr));
            CO_EXPECT_OK(co_await q1.connect(t.params(host_c, private_nqn)));
            CO_EXPECT_OK(co_await q2.connect(t.params(host_c, open_nqn)));
        }
    });
}

TEST(target_connect, sqsize_zero_or_too_large) {
    run_with_target([](target_env& t) -> task<void> {
        const std::array<uint16_t, 3> sizes{0, 128, 0xffff};
        for (uint16_t sqsize : sizes) {
            host_queue q;
            CO_ASSERT_TRUE(co_await q.open(t.addr));
            auto p = t.params(host_a, allow_nqn);
            p.sqsize = sqsize;
            auto r = co_await q.connect(p);
            EXPECT_STATUS(r, sc::connect_invalid_parameters);
            EXPECT_EQ(r.cpl.dw0, ipo_sqe(offsetof(nvme::connect_command, sqsize))) << sqsize;
        }
        // MQES + 1 = 128 entries is the most a queue may have.
        host_queue q;
        CO_ASSERT_TRUE(co_await q.open(t.addr));
        auto p = t.params(host_a, allow_nqn);
        p.sqsize = 127;
        CO_EXPECT_OK(co_await q.connect(p));
    });
}

TEST(target_connect, io_queue_with_unknown_cntlid_or_another_host) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn), false));
        uint16_t cntlid = s.admin.cntlid();
        struct variant {
            const host_identity* host;
            uint16_t cntlid;
            bool other_hostid;
        };
        const std::array<variant, 3> variants{variant{&host_a, uint16_t(cntlid + 100), false},
                                              variant{&host_b, cntlid, false},
                                              variant{&host_a, cntlid, true}};
        for (variant v : variants) {
            host_queue q;
            CO_ASSERT_TRUE(co_await q.open(t.addr));
            auto p = t.params(*v.host, allow_nqn);
            p.qid = 1;
            p.cntlid = v.cntlid;
            if (v.other_hostid) p.hostid = host_b.id;
            auto r = co_await q.connect(p);
            EXPECT_STATUS(r, sc::connect_invalid_parameters);
            EXPECT_EQ(r.cpl.dw0, ipo_data(offsetof(nvme::connect_data, cntlid)));
        }
        // The right host and CNTLID get in.
        host_queue q;
        CO_ASSERT_TRUE(co_await q.open(t.addr));
        auto p = t.params(host_a, allow_nqn);
        p.qid = 1;
        p.cntlid = cntlid;
        auto r = co_await q.connect(p);
        EXPECT_TRUE(r.ok()) << r;
        EXPECT_EQ(r.cpl.dw0 & 0xffff, cntlid);
        EXPECT_EQ(r.cpl.sqid, 1);
    });
}

TEST(target_connect, io_queue_beyond_the_number_of_queues_or_twice) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn), false));
        // One I/O queue (0's based 0 submission and completion queues).
        auto f = co_await s.admin.set_features(uint8_t(nvme::feature::number_of_queues), 0);
        CO_ASSERT_OK(f);
        EXPECT_EQ(f.cpl.dw0, 0u);
        auto p = t.params(host_a, allow_nqn);
        p.cntlid = s.admin.cntlid();
        host_queue q2, q1, dup;
        CO_ASSERT_TRUE(co_await q2.open(t.addr));
        p.qid = 2;
        auto r = co_await q2.connect(p);
        EXPECT_STATUS(r, sc::connect_invalid_parameters);
        EXPECT_EQ(r.cpl.dw0, ipo_sqe(offsetof(nvme::connect_command, qid)));
        CO_ASSERT_TRUE(co_await q1.open(t.addr));
        p.qid = 1;
        CO_ASSERT_OK(co_await q1.connect(p));
        // Queue 1 exists: a second Connect for it is refused.
        CO_ASSERT_TRUE(co_await dup.open(t.addr));
        r = co_await dup.connect(p);
        EXPECT_STATUS(r, sc::connect_invalid_parameters);
        EXPECT_EQ(r.cpl.dw0, ipo_sqe(offsetof(nvme::connect_command, qid)));
    });
}

TEST(target_connect, io_queue_before_the_controller_is_enabled_fails) {
    run_with_target([](target_env& t) -> task<void> {
        host_queue admin, io;
        CO_ASSERT_TRUE(co_await admin.open(t.addr));
        CO_ASSERT_OK(co_await admin.connect(t.params(host_a, allow_nqn)));
        CO_ASSERT_TRUE(co_await io.open(t.addr));
        auto p = t.params(host_a, allow_nqn);
        p.qid = 1;
        p.cntlid = admin.cntlid();
        auto r = co_await io.connect(p);
        EXPECT_TRUE(r.completed()) << r;
        EXPECT_FALSE(r.status().ok()) << r;
    });
}

TEST(target_connect, second_connect_on_a_connected_queue) {
    run_with_target([](target_env& t) -> task<void> {
        host_queue q;
        CO_ASSERT_TRUE(co_await q.open(t.addr));
        CO_ASSERT_OK(co_await q.connect(t.params(host_a, allow_nqn)));
        EXPECT_STATUS(co_await q.connect(t.params(host_a, allow_nqn)), sc::command_sequence_error);
        // The queue still works.
        CO_EXPECT_OK(co_await q.property_get(nvme::reg::vs, false));
    });
}

TEST(target_connect, record_format_must_be_zero) {
    run_with_target([](target_env& t) -> task<void> {
        host_queue q;
        CO_ASSERT_TRUE(co_await q.open(t.addr));
        auto p = t.params(host_a, allow_nqn);
        p.recfmt = 1;
        EXPECT_STATUS(co_await q.connect(p), sc::connect_incompatible_format);
    });
}

TEST(target_connect, disconnect_closes_an_io_queue) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
        auto c = make_cmd(nvme::admin_opcode::fabrics);
        c.nsid = uint8_t(nvme::fabrics_type::disconnect);  // FCTYPE at byte 4
        CO_EXPECT_OK(co_await s.io.exec(c));
        auto closed = co_await s.io.expect_closed(2000ms);
        EXPECT_EQ(closed, outcome::closed);
        // The controller lives on.
        CO_EXPECT_OK(co_await s.admin.keep_alive());
    });
}

// ---- properties -------------------------------------------------------------

TEST(target_properties, cap_vs_cc_csts) {
    run_with_target([](target_env& t) -> task<void> {
        host_queue q;
        CO_ASSERT_TRUE(co_await q.open(t.addr));
        CO_ASSERT_OK(co_await q.connect(t.params(host_a, allow_nqn)));
        auto cap = co_await q.property_get(nvme::reg::cap, true);
        CO_ASSERT_OK(cap);
        uint64_t v = cap.value();
        EXPECT_EQ(v & 0xffff, t.tgt.limits().max_queue_depth - 1u) << "MQES";
        EXPECT_TRUE(v & (1ull << 16)) << "CQR";
        EXPECT_NE((v >> 24) & 0xff, 0u) << "TO";
        EXPECT_TRUE(v & (1ull << 37)) << "CSS: NVM command set";
        EXPECT_EQ((v >> 48) & 0xf, 0u) << "MPSMIN 4 KiB";
        auto vs = co_await q.property_get(nvme::reg::vs, false);
        CO_ASSERT_OK(vs);
        EXPECT_EQ(vs.cpl.dw0, 0x00010300u);
        auto cc = co_await q.property_get(nvme::reg::cc, false);
        EXPECT_TRUE(cc.ok() && cc.cpl.dw0 == 0) << cc;
        auto csts = co_await q.property_get(nvme::reg::csts, false);
        EXPECT_TRUE(csts.ok() && (csts.cpl.dw0 & nvme::csts_bits::rdy) == 0) << csts;

        CO_ASSERT_TRUE(co_await q.enable());
        cc = co_await q.property_get(nvme::reg::cc, false);
        EXPECT_EQ(cc.cpl.dw0, 1u | (6u << 16) | (4u << 20));
        csts = co_await q.property_get(nvme::reg::csts, false);
        EXPECT_EQ(csts.cpl.dw0 & (nvme::csts_bits::rdy | nvme::csts_bits::cfs),
                  nvme::csts_bits::rdy);

        // Normal shutdown (SHN 01b): SHST becomes "complete" (10b).
        CO_ASSERT_OK(co_await q.property_set(nvme::reg::cc, cc.cpl.dw0 | (1u << 14)));
        csts = co_await q.property_get(nvme::reg::csts, false);
        CO_ASSERT_OK(csts);
        EXPECT_EQ((csts.cpl.dw0 >> 2) & 3, 2u) << "SHST";
    });
}

TEST(target_properties, shutdown_then_reset_and_enable_again) {
    run_with_target([](target_env& t) -> task<void> {
        host_queue q;
        CO_ASSERT_TRUE(co_await q.open(t.addr));
        CO_ASSERT_OK(co_await q.connect(t.params(host_a, allow_nqn)));
        CO_ASSERT_TRUE(co_await q.enable());
        uint32_t cc = 1u | (6u << 16) | (4u << 20);
        CO_ASSERT_OK(co_await q.property_set(nvme::reg::cc, cc | (1u << 14)));
        auto csts = co_await q.property_get(nvme::reg::csts, false);
        CO_ASSERT_OK(csts);
        EXPECT_EQ((csts.cpl.dw0 >> 2) & 3, 2u) << "SHST: shutdown complete";
        // A reset (CC.EN 1 -> 0, SHN cleared, as Linux writes it) brings CSTS
        // back to its reset value, and the controller can be enabled again.
        CO_ASSERT_OK(co_await q.property_set(nvme::reg::cc, 0));
        csts = co_await q.property_get(nvme::reg::csts, false);
        CO_ASSERT_OK(csts);
        EXPECT_EQ(csts.cpl.dw0, 0u) << "RDY and SHST after the reset";
        CO_ASSERT_TRUE(co_await q.enable());
        csts = co_await q.property_get(nvme::reg::csts, false);
        EXPECT_EQ(csts.cpl.dw0, nvme::csts_bits::rdy) << "a running controller reports no shutdown";
        bytes id(4096);
        CO_EXPECT_OK(co_await q.identify(nvme::cns::controller, 0, id));
    });
}

TEST(target_properties, invalid_offset_size_or_read_only) {
    run_with_target([](target_env& t) -> task<void> {
        host_queue q;
        CO_ASSERT_TRUE(co_await q.open(t.addr));
        CO_ASSERT_OK(co_await q.connect(t.params(host_a, allow_nqn)));
        EXPECT_STATUS(co_await q.property_get(0x30, false), sc::invalid_field);
        EXPECT_STATUS(co_await q.property_get(0x1000, true), sc::invalid_field);
        EXPECT_STATUS(co_await q.property_get(nvme::reg::cap, false), sc::invalid_field);
        EXPECT_STATUS(co_await q.property_get(nvme::reg::vs, true), sc::invalid_field);
        EXPECT_STATUS(co_await q.property_set(nvme::reg::vs, 0), sc::invalid_field);
        EXPECT_STATUS(co_await q.property_set(0x30, 1), sc::invalid_field);
    });
}

TEST(target_properties, enable_with_wrong_queue_entry_sizes_is_a_fatal_status) {
    run_with_target([](target_env& t) -> task<void> {
        host_queue q;
        CO_ASSERT_TRUE(co_await q.open(t.addr));
        CO_ASSERT_OK(co_await q.connect(t.params(host_a, allow_nqn)));
        CO_ASSERT_OK(co_await q.property_set(nvme::reg::cc, 1u | (5u << 16) | (4u << 20)));
        auto csts = co_await q.property_get(nvme::reg::csts, false);
        CO_ASSERT_OK(csts);
        EXPECT_EQ(csts.cpl.dw0 & (nvme::csts_bits::rdy | nvme::csts_bits::cfs),
                  nvme::csts_bits::cfs);
        // Not enabled: admin commands are refused.
        std::vector<std::byte> id(4096);
        EXPECT_STATUS(co_await q.identify(nvme::cns::controller, 0, id),
                      sc::command_sequence_error);
    });
}

// ---- keep-alive -------------------------------------------------------------

TEST(target_keep_alive, timeout_ends_the_controller) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(
            co_await open_session(s, t.addr, t.params(host_a, allow_nqn, /*kato=*/1000)));
        uint16_t cntlid = s.admin.cntlid();
        auto start = now();
        // Nothing sent: the target ends the controller after KATO (at most
        // 2 KATO plus slack, never before KATO), closing all its queues.
        auto closed = co_await s.admin.expect_closed(4000ms);
        EXPECT_EQ(closed, outcome::closed);
        auto took = now() - start;
        EXPECT_GE(took, 900ms);
        EXPECT_LT(took, 3500ms);
        closed = co_await s.io.expect_closed(1000ms);
        EXPECT_EQ(closed, outcome::closed) << "the I/O queue outlived its controller";
        // The controller is gone: its CNTLID takes no I/O queue.
        host_queue io;
        CO_ASSERT_TRUE(co_await io.open(t.addr));
        auto p = t.params(host_a, allow_nqn);
        p.qid = 2;
        p.cntlid = cntlid;
        auto r = co_await io.connect(p);
        EXPECT_STATUS(r, sc::connect_invalid_parameters);
        EXPECT_EQ(r.cpl.dw0, ipo_data(offsetof(nvme::connect_data, cntlid)));
    });
}

TEST(target_connect, closing_the_admin_queue_ends_the_controller) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
        uint16_t cntlid = s.admin.cntlid();
        s.admin.close();
        auto closed = co_await s.io.expect_closed(2000ms);
        EXPECT_EQ(closed, outcome::closed);
        host_queue io;
        CO_ASSERT_TRUE(co_await io.open(t.addr));
        auto p = t.params(host_a, allow_nqn);
        p.qid = 1;
        p.cntlid = cntlid;
        EXPECT_STATUS(co_await io.connect(p), sc::connect_invalid_parameters);
    });
}

TEST(target_keep_alive, commands_keep_the_controller_alive) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn, 1000)));
        for (int i = 0; i < 5; ++i) {
            co_await sleep(400ms);
            CO_ASSERT_OK(co_await s.admin.keep_alive());
        }
        // 2 s after Connect, 2 KATO: alive thanks to the Keep Alives.
        std::vector<std::byte> buf(512);
        CO_EXPECT_OK(co_await s.io.read(1, 0, 1, buf));
    });
}

TEST(target_keep_alive, feature_zero_disables_the_timer) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn, 1000)));
        CO_ASSERT_OK(co_await s.admin.set_features(uint8_t(nvme::feature::keep_alive_timer), 0));
        auto g = co_await s.admin.get_features(uint8_t(nvme::feature::keep_alive_timer));
        EXPECT_TRUE(g.ok() && g.cpl.dw0 == 0) << g;
        // KATO 0: no timeout, however long the host stays silent.
        co_await sleep(1800ms);
        CO_EXPECT_OK(co_await s.admin.keep_alive());
        std::vector<std::byte> buf(512);
        CO_EXPECT_OK(co_await s.io.read(1, 0, 1, buf));
    });
}

TEST(target_keep_alive, feature_starts_a_timer_on_a_controller_without_one) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn, 0), false));
        CO_ASSERT_OK(co_await s.admin.set_features(uint8_t(nvme::feature::keep_alive_timer), 1000));
        auto start = now();
        auto closed = co_await s.admin.expect_closed(4000ms);
        EXPECT_EQ(closed, outcome::closed) << "KATO set to 1 s by Set Features is not enforced";
        EXPECT_GE(now() - start, 900ms);
    });
}

// ---- discovery --------------------------------------------------------------

struct discovered {
    uint64_t genctr = 0;
    uint64_t numrec = 0;
    std::vector<nvme::discovery_log_entry> entries;
};

task<discovered> discover(target_env& t, const host_identity& h) {
    discovered d;
    session s;
    auto p = t.params(h, std::string(nvme::discovery_nqn));
    bool opened = co_await open_session(s, t.addr, p, false);
    if (!opened) co_return d;
    std::vector<std::byte> page(8192);
    auto r = co_await s.admin.get_log_page(uint8_t(nvme::log_id::discovery), page);
    EXPECT_TRUE(r.ok()) << r;
    nvme::discovery_log_header hdr;
    std::memcpy(&hdr, page.data(), sizeof hdr);
    d.genctr = hdr.genctr;
    d.numrec = hdr.numrec;
    EXPECT_EQ(hdr.recfmt, 0);
    for (uint64_t i = 0; i < hdr.numrec && (i + 2) * 1024 <= page.size(); ++i) {
        nvme::discovery_log_entry e;
        std::memcpy(&e, page.data() + 1024 * (i + 1), sizeof e);
        d.entries.push_back(e);
    }
    co_return d;
}

TEST(target_discovery, log_page_lists_what_the_host_may_see) {
    run_with_target([](target_env& t) -> task<void> {
        auto seen = [](const discovered& d) {
            std::set<std::string> s;
            for (auto& e : d.entries) s.insert(std::string(nvme::get_str(e.subnqn)));
            return s;
        };
        auto a = co_await discover(t, host_a);
        EXPECT_NE(a.genctr, 0u);
        EXPECT_EQ(a.numrec, a.entries.size());
        EXPECT_EQ(seen(a),
                  (std::set<std::string>{allow_nqn, open_nqn, std::string(nvme::discovery_nqn)}));
        auto c = co_await discover(t, host_c);
        EXPECT_EQ(seen(c),
                  (std::set<std::string>{private_nqn, open_nqn, std::string(nvme::discovery_nqn)}));
        for (auto& e : a.entries) {
            std::string nqn(nvme::get_str(e.subnqn));
            EXPECT_EQ(e.trtype, 3) << "TCP";
            EXPECT_EQ(e.adrfam, 1) << "IPv4";
            EXPECT_EQ(e.subtype, nqn == nvme::discovery_nqn ? 3 : 2) << nqn;
            EXPECT_EQ(e.cntlid, 0xffff);
            EXPECT_EQ(e.treq & 3, 2) << "TREQ: secure channel not required";
            EXPECT_EQ(e.treq & 4, 4) << "TREQ: SQ flow control disable supported";
            EXPECT_EQ(nvme::get_str(e.traddr), "127.0.0.1");
            EXPECT_EQ(nvme::get_str(e.trsvcid), std::to_string(t.addr.port()));
        }
    });
}

TEST(target_discovery, controller_identity_offsets_and_other_logs) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(
            s, t.addr, t.params(host_a, std::string(nvme::discovery_nqn)), false));
        std::vector<std::byte> buf(4096);
        CO_ASSERT_OK(co_await s.admin.identify(nvme::cns::controller, 0, buf));
        nvme::identify_controller id;
        std::memcpy(&id, buf.data(), sizeof id);
        EXPECT_EQ(id.cntrltype, 2) << "discovery controller";
        EXPECT_EQ(nvme::get_str(id.subnqn), nvme::discovery_nqn);
        EXPECT_EQ(id.cntlid, s.admin.cntlid());
        // The first entry, read alone at offset 1024, is the full page's.
        std::vector<std::byte> full(4096), one(1024);
        CO_ASSERT_OK(co_await s.admin.get_log_page(uint8_t(nvme::log_id::discovery), full));
        CO_ASSERT_OK(co_await s.admin.get_log_page(uint8_t(nvme::log_id::discovery), one, 1024));
        EXPECT_EQ(std::memcmp(one.data(), full.data() + 1024, 1024), 0);
        // A discovery controller has no SMART log and no namespaces.
        std::vector<std::byte> smart(512);
        EXPECT_STATUS(co_await s.admin.get_log_page(uint8_t(nvme::log_id::smart_health), smart),
                      sc::invalid_log_page);
        EXPECT_STATUS(co_await s.admin.identify(nvme::cns::namespace_data, 1, buf),
                      sc::invalid_field);
    });
}

TEST(target_discovery, no_io_queues_on_a_discovery_controller) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        auto p = t.params(host_a, std::string(nvme::discovery_nqn));
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, p, false));
        host_queue io;
        CO_ASSERT_TRUE(co_await io.open(t.addr));
        p.qid = 1;
        p.cntlid = s.admin.cntlid();
        auto r = co_await io.connect(p);
        EXPECT_STATUS(r, sc::connect_invalid_parameters);
        EXPECT_EQ(r.cpl.dw0, ipo_sqe(offsetof(nvme::connect_command, qid)));
    });
}

}  // namespace
}  // namespace weft::test

namespace weft::test {
namespace {

TEST(target_auth, queue_gets_nothing_but_authentication_until_it_authenticates) {
    run_with_target([](target_env& t) -> task<void> {
        auto k = std::make_shared<nvmf::host_auth>();
        k->key = auth::generate_dhchap_key(auth::hash_id::sha256).value();
        t.tgt.set_host_auth(host_a.nqn, k);
        host_queue q;
        CO_ASSERT_TRUE(co_await q.open(t.addr));
        auto c = co_await q.connect(t.params(host_a, allow_nqn));
        CO_ASSERT_TRUE(c.ok());
        EXPECT_TRUE(c.cpl.dw0 & nvme::auth::connect_authreq_atr);
        // Properties, Identify: refused until authenticated.
        EXPECT_STATUS(co_await q.property_get(nvme::reg::cap, true), sc::authentication_required);
        std::vector<std::byte> buf(4096);
        EXPECT_STATUS(co_await q.identify(nvme::cns::controller, 0, buf),
                      sc::authentication_required);
        // A Receive with no transaction: Failure1, and the connection ends.
        std::vector<std::byte> in(4096);
        auto r = co_await q.exec(nvme::auth::make_command(false, uint32_t(in.size())), {.in = in});
        CO_ASSERT_TRUE(r.ok());
        EXPECT_EQ(uint8_t(in[1]), uint8_t(nvme::auth::message::failure1));
        EXPECT_EQ(co_await q.expect_closed(), outcome::closed);
        // Another host, and discovery, are not asked to authenticate.
        host_queue b;
        CO_ASSERT_TRUE(co_await b.open(t.addr));
        auto cb = co_await b.connect(t.params(host_b, allow_nqn));
        CO_ASSERT_TRUE(cb.ok());
        EXPECT_FALSE(cb.cpl.dw0 & nvme::auth::connect_authreq_atr);
        host_queue d;
        CO_ASSERT_TRUE(co_await d.open(t.addr));
        auto cd = co_await d.connect(t.params(host_a, std::string(nvme::discovery_nqn)));
        CO_ASSERT_TRUE(cd.ok());
        EXPECT_FALSE(cd.cpl.dw0 & nvme::auth::connect_authreq_atr);
    });
}

TEST(target_auth, a_failed_authentication_ends_the_connection_after_its_answer) {
    run_with_target([](target_env& t) -> task<void> {
        auto k = std::make_shared<nvmf::host_auth>();
        k->key = auth::generate_dhchap_key(auth::hash_id::none).value();
        t.tgt.set_host_auth(host_a.nqn, k);
        host_queue q;
        CO_ASSERT_TRUE(co_await q.open(t.addr));
        CO_ASSERT_TRUE((co_await q.connect(t.params(host_a, allow_nqn))).ok());
        // A Send out of order (a Success2 first): the command completes, then
        // the connection closes.
        std::vector<std::byte> s2(16);
        s2[0] = std::byte(nvme::auth::auth_type::dhchap);
        s2[1] = std::byte(nvme::auth::message::success2);
        auto r = co_await q.exec(nvme::auth::make_command(true, uint32_t(s2.size())), {.out = s2});
        EXPECT_TRUE(r.ok()) << r;
        EXPECT_EQ(co_await q.expect_closed(), outcome::closed);
    });
}

}  // namespace
}  // namespace weft::test
