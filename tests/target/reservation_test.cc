// Reservations between hosts, each with its own controller and I/O queue:
// register, acquire, the conflicts they cause, preempt, report, release,
// clear (NVMe Base 2.0, 8.19; NVM command set 7.x).
#include <array>
#include <cstring>

#include "nvme/reservation.h"
#include "target/target_env.h"

namespace weft::test {
namespace {

namespace sc = nvme::sc;
using nvme::io_opcode;
using rtype = nvme::reservation_type;

constexpr uint64_t key_a = 0xaaaa0000aaaa0001ull;
constexpr uint64_t key_b = 0xbbbb0000bbbb0002ull;

// Reservation Register: RREGA 0 register, 1 unregister, 2 replace.
task<cmd_result> resv_register(host_queue& q, uint32_t nsid, unsigned rrega, uint64_t crkey,
                               uint64_t nrkey, bool iekey = false) {
    auto c = make_cmd(io_opcode::reservation_register, nsid);
    c.cdw10 = rrega | (iekey ? 1u << 3 : 0);
    std::array<uint64_t, 2> keys{crkey, nrkey};
    co_return co_await q.exec(c, {.out = std::as_bytes(std::span(keys))});
}

// Reservation Acquire: RACQA 0 acquire, 1 preempt, 2 preempt and abort.
task<cmd_result> resv_acquire(host_queue& q, uint32_t nsid, unsigned racqa, rtype type,
                              uint64_t crkey, uint64_t prkey = 0) {
    auto c = make_cmd(io_opcode::reservation_acquire, nsid);
    c.cdw10 = racqa | (uint32_t(type) << 8);
    std::array<uint64_t, 2> keys{crkey, prkey};
    co_return co_await q.exec(c, {.out = std::as_bytes(std::span(keys))});
}

// Reservation Release: RRELA 0 release, 1 clear.
task<cmd_result> resv_release(host_queue& q, uint32_t nsid, unsigned rrela, rtype type,
                              uint64_t crkey) {
    auto c = make_cmd(io_opcode::reservation_release, nsid);
    c.cdw10 = rrela | (uint32_t(type) << 8);
    std::array<uint64_t, 1> key{crkey};
    co_return co_await q.exec(c, {.out = std::as_bytes(std::span(key))});
}

task<cmd_result> resv_report(host_queue& q, uint32_t nsid, std::span<std::byte> out, bool eds) {
    auto c = make_cmd(io_opcode::reservation_report, nsid);
    c.cdw10 = uint32_t(out.size() / 4 - 1);  // NUMD, 0's based
    c.cdw11 = eds ? 1 : 0;
    co_return co_await q.exec(c, {.in = out});
}

struct report {
    nvme::reservation_status_ext_header hdr{};
    std::vector<nvme::registered_controller_ext> regs;
};

task<report> read_report(host_queue& q, uint32_t nsid) {
    report rep;
    bytes buf(4096);
    auto r = co_await resv_report(q, nsid, buf, true);
    EXPECT_TRUE(r.ok()) << "report: " << r;
    rep.hdr = load<nvme::reservation_status_ext_header>(buf);
    for (size_t i = 0; i < rep.hdr.regctl && 64 * (i + 2) <= buf.size(); ++i)
        rep.regs.push_back(load<nvme::registered_controller_ext>(buf, 64 * (i + 1)));
    co_return rep;
}

TEST(target_reservation, two_hosts_fence_each_other) {
    run_with_target([](target_env& t) -> task<void> {
        session a, b;
        CO_ASSERT_TRUE(co_await open_session(a, t.addr, t.params(host_a, allow_nqn)));
        CO_ASSERT_TRUE(co_await open_session(b, t.addr, t.params(host_b, allow_nqn)));
        bytes data = pattern(512, 1), buf(512);

        CO_ASSERT_OK(co_await resv_register(a.io, 1, 0, 0, key_a));
        CO_ASSERT_OK(co_await resv_register(b.io, 1, 0, 0, key_b));
        auto rep = co_await read_report(a.io, 1);
        EXPECT_EQ(rep.hdr.regctl, 2);
        EXPECT_EQ(rep.hdr.rtype, 0) << "registered, not reserved";
        uint32_t gen = rep.hdr.gen;

        // A takes Write Exclusive: B may read, not write; A does both.
        CO_ASSERT_OK(co_await resv_acquire(a.io, 1, 0, rtype::write_exclusive, key_a));
        auto w = co_await b.io.write(1, 0, 1, data);
        EXPECT_STATUS(w, sc::reservation_conflict);
        EXPECT_EQ(w.status().code, 0x83);
        CO_EXPECT_OK(co_await b.io.read(1, 0, 1, buf));
        CO_EXPECT_OK(co_await a.io.write(1, 0, 1, data));
        EXPECT_STATUS(co_await b.io.exec(make_cmd(io_opcode::write_zeroes, 1)),
                      sc::reservation_conflict);
        // Another namespace is not reserved.
        CO_EXPECT_OK(co_await b.io.write(2, 0, 1, data));
        // B cannot simply acquire what A holds, nor with a wrong key.
        EXPECT_STATUS(co_await resv_acquire(b.io, 1, 0, rtype::write_exclusive, key_b),
                      sc::reservation_conflict);
        EXPECT_STATUS(co_await resv_acquire(b.io, 1, 1, rtype::write_exclusive, key_a, key_a),
                      sc::reservation_conflict);

        // B preempts A: B holds, A's registration is gone.
        CO_ASSERT_OK(co_await resv_acquire(b.io, 1, 1, rtype::write_exclusive, key_b, key_a));
        rep = co_await read_report(a.io, 1);
        EXPECT_EQ(rep.hdr.rtype, uint8_t(rtype::write_exclusive));
        EXPECT_EQ(rep.hdr.regctl, 1);
        EXPECT_GT(rep.hdr.gen, gen) << "a preemption moves the generation";
        CO_ASSERT_TRUE(rep.regs.size() == 1);
        EXPECT_EQ(rep.regs[0].cntlid, b.admin.cntlid());
        EXPECT_EQ(rep.regs[0].rcsts & 1, 1) << "B holds the reservation";
        EXPECT_EQ(rep.regs[0].rkey, key_b);
        EXPECT_EQ(std::memcmp(rep.regs[0].hostid, host_b.id.data(), 16), 0);

        // Without EDS the 128-bit host IDs do not fit.
        bytes small(4096);
        EXPECT_STATUS(co_await resv_report(b.io, 1, small, false), sc::host_id_inconsistent_format);

        // Now A is fenced, and cannot release what it no longer holds.
        EXPECT_STATUS(co_await a.io.write(1, 0, 1, data), sc::reservation_conflict);
        CO_EXPECT_OK(co_await a.io.read(1, 0, 1, buf));
        EXPECT_STATUS(co_await resv_release(a.io, 1, 0, rtype::write_exclusive, key_a),
                      sc::reservation_conflict);

        // B releases: everyone writes again; B stays registered.
        EXPECT_STATUS(co_await resv_release(b.io, 1, 0, rtype::exclusive_access, key_b),
                      sc::invalid_field);
        CO_ASSERT_OK(co_await resv_release(b.io, 1, 0, rtype::write_exclusive, key_b));
        rep = co_await read_report(b.io, 1);
        EXPECT_EQ(rep.hdr.rtype, 0);
        EXPECT_EQ(rep.hdr.regctl, 1);
        CO_EXPECT_OK(co_await a.io.write(1, 0, 1, data));

        // Clear: every registration goes.
        CO_ASSERT_OK(co_await resv_register(a.io, 1, 0, 0, key_a));
        CO_ASSERT_OK(co_await resv_acquire(a.io, 1, 0, rtype::exclusive_access, key_a));
        EXPECT_STATUS(co_await b.io.read(1, 0, 1, buf), sc::reservation_conflict);
        CO_ASSERT_OK(co_await resv_release(b.io, 1, 1, rtype::none, key_b));
        rep = co_await read_report(a.io, 1);
        EXPECT_EQ(rep.hdr.rtype, 0);
        EXPECT_EQ(rep.hdr.regctl, 0);
        CO_EXPECT_OK(co_await b.io.read(1, 0, 1, buf));
        CO_EXPECT_OK(co_await b.io.write(1, 0, 1, data));
    });
}

TEST(target_reservation, register_replace_unregister) {
    run_with_target([](target_env& t) -> task<void> {
        session a;
        CO_ASSERT_TRUE(co_await open_session(a, t.addr, t.params(host_a, allow_nqn)));
        EXPECT_STATUS(co_await resv_register(a.io, 1, 0, 0, 0), sc::invalid_field);
        CO_ASSERT_OK(co_await resv_register(a.io, 1, 0, 0, key_a));
        // The same key again is fine; another one is a conflict.
        CO_EXPECT_OK(co_await resv_register(a.io, 1, 0, 0, key_a));
        EXPECT_STATUS(co_await resv_register(a.io, 1, 0, 0, key_b), sc::reservation_conflict);
        // Replace: the current key must match, unless IEKEY.
        EXPECT_STATUS(co_await resv_register(a.io, 1, 2, key_b, key_b), sc::reservation_conflict);
        CO_ASSERT_OK(co_await resv_register(a.io, 1, 2, key_a, key_b));
        CO_ASSERT_OK(co_await resv_register(a.io, 1, 2, 0x1234, key_a, /*iekey=*/true));
        auto rep = co_await read_report(a.io, 1);
        CO_ASSERT_TRUE(rep.regs.size() == 1);
        EXPECT_EQ(rep.regs[0].rkey, key_a);
        // Unregister with the wrong key, then the right one.
        EXPECT_STATUS(co_await resv_register(a.io, 1, 1, key_b, 0), sc::reservation_conflict);
        CO_ASSERT_OK(co_await resv_register(a.io, 1, 1, key_a, 0));
        rep = co_await read_report(a.io, 1);
        EXPECT_EQ(rep.hdr.regctl, 0);
        // Acquire without a registration.
        EXPECT_STATUS(co_await resv_acquire(a.io, 1, 0, rtype::write_exclusive, key_a),
                      sc::reservation_conflict);
        // Commands on a namespace that does not exist.
        EXPECT_STATUS(co_await resv_register(a.io, 9, 0, 0, key_a), sc::invalid_namespace);
    });
}

TEST(target_reservation, registrants_only_types_with_three_hosts) {
    run_with_target([](target_env& t) -> task<void> {
        // The open subsystem admits any host: A and B register, C does not.
        session a, b, c;
        CO_ASSERT_TRUE(co_await open_session(a, t.addr, t.params(host_a, open_nqn)));
        CO_ASSERT_TRUE(co_await open_session(b, t.addr, t.params(host_b, open_nqn)));
        CO_ASSERT_TRUE(co_await open_session(c, t.addr, t.params(host_c, open_nqn)));
        bytes data = pattern(512, 2), buf(512);
        CO_ASSERT_OK(co_await resv_register(a.io, 1, 0, 0, key_a));
        CO_ASSERT_OK(co_await resv_register(b.io, 1, 0, 0, key_b));

        // Write Exclusive - Registrants Only: registrants write, others read.
        CO_ASSERT_OK(
            co_await resv_acquire(a.io, 1, 0, rtype::write_exclusive_registrants_only, key_a));
        CO_EXPECT_OK(co_await b.io.write(1, 1, 1, data));
        EXPECT_STATUS(co_await c.io.write(1, 1, 1, data), sc::reservation_conflict);
        CO_EXPECT_OK(co_await c.io.read(1, 1, 1, buf));
        CO_ASSERT_OK(
            co_await resv_release(a.io, 1, 0, rtype::write_exclusive_registrants_only, key_a));

        // Exclusive Access - Registrants Only: others may not even read.
        CO_ASSERT_OK(
            co_await resv_acquire(a.io, 1, 0, rtype::exclusive_access_registrants_only, key_a));
        CO_EXPECT_OK(co_await b.io.read(1, 1, 1, buf));
        EXPECT_STATUS(co_await c.io.read(1, 1, 1, buf), sc::reservation_conflict);
        EXPECT_STATUS(co_await c.io.write(1, 1, 1, data), sc::reservation_conflict);

        // The report lists both registrants, the holder marked.
        auto rep = co_await read_report(c.io, 1);
        EXPECT_EQ(rep.hdr.rtype, uint8_t(rtype::exclusive_access_registrants_only));
        CO_ASSERT_TRUE(rep.regs.size() == 2);
        for (auto& r : rep.regs) {
            bool is_a = std::memcmp(r.hostid, host_a.id.data(), 16) == 0;
            EXPECT_EQ(r.rcsts & 1, is_a ? 1 : 0);
            EXPECT_EQ(r.rkey, is_a ? key_a : key_b);
            EXPECT_EQ(r.cntlid, is_a ? a.admin.cntlid() : b.admin.cntlid());
        }
        // The holder leaves (unregisters): the reservation goes with it.
        CO_ASSERT_OK(co_await resv_register(a.io, 1, 1, key_a, 0));
        CO_EXPECT_OK(co_await c.io.read(1, 1, 1, buf));
        CO_EXPECT_OK(co_await c.io.write(1, 1, 1, data));
    });
}

}  // namespace
}  // namespace weft::test
