// Admin commands over a real connection: the state they need, Identify, Get
// Log Page, features, asynchronous events and Abort.
#include <array>
#include <cstring>

#include "nvme/identify.h"
#include "nvme/log_pages.h"
#include "runtime/uring_op.h"
#include "target/target_env.h"

namespace weft::test {
namespace {

using namespace std::chrono_literals;
namespace sc = nvme::sc;
using nvme::admin_opcode;
using nvme::feature;

constexpr uint8_t fid(feature f) {
    return uint8_t(f);
}
constexpr uint8_t lid(nvme::log_id l) {
    return uint8_t(l);
}

TEST(target_admin, commands_before_cc_en_are_sequence_errors) {
    run_with_target([](target_env& t) -> task<void> {
        host_queue q;
        CO_ASSERT_TRUE(co_await q.open(t.addr));
        CO_ASSERT_OK(co_await q.connect(t.params(host_a, allow_nqn)));
        bytes buf(4096);
        EXPECT_STATUS(co_await q.identify(nvme::cns::controller, 0, buf),
                      sc::command_sequence_error);
        EXPECT_STATUS(co_await q.get_log_page(lid(nvme::log_id::smart_health), {buf.data(), 512}),
                      sc::command_sequence_error);
        EXPECT_STATUS(co_await q.get_features(fid(feature::number_of_queues)),
                      sc::command_sequence_error);
        EXPECT_STATUS(co_await q.set_features(fid(feature::number_of_queues), 0),
                      sc::command_sequence_error);
        EXPECT_STATUS(co_await q.keep_alive(), sc::command_sequence_error);
        EXPECT_STATUS(co_await q.exec(make_cmd(admin_opcode::async_event_request)),
                      sc::command_sequence_error);
        // Properties work before CC.EN: that is how a host enables.
        CO_EXPECT_OK(co_await q.property_get(nvme::reg::cap, true));
        CO_ASSERT_TRUE(co_await q.enable());
        CO_EXPECT_OK(co_await q.identify(nvme::cns::controller, 0, buf));
    });
}

TEST(target_admin, identify_controller) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn), false));
        bytes buf(4096, std::byte{0xee});
        CO_ASSERT_OK(co_await s.admin.identify(nvme::cns::controller, 0, buf));
        auto id = load<nvme::identify_controller>(buf);
        EXPECT_EQ(id.cntlid, s.admin.cntlid()) << "CNTLID is the one Connect returned";
        EXPECT_NE(id.kas, 0) << "KAS: the Linux host refuses a controller without it";
        EXPECT_TRUE(id.sgls & (1u << 0)) << "SGLS: SGLs supported";
        EXPECT_TRUE(id.sgls & (1u << 20)) << "SGLS: offsets for in-capsule data";
        EXPECT_EQ(id.icdoff, 0);
        const auto& lim = t.tgt.limits();
        EXPECT_EQ(id.ioccsz, (64 + lim.in_capsule_data) / 16);
        EXPECT_GE(id.ioccsz, 4u) << "at least the 64-byte SQE";
        EXPECT_EQ(id.iorcsz, 1u) << "16-byte CQE";
        CO_ASSERT_TRUE(id.mdts < 20);
        EXPECT_EQ(4096u << id.mdts, lim.max_transfer) << "MDTS, 4 KiB units (CAP.MPSMIN)";
        EXPECT_EQ(id.nn, nvmf::subsystem::max_namespaces);
        EXPECT_GE(id.nn, 2u);
        const uint16_t oncs = nvme::ctrl_bits::oncs_compare | nvme::ctrl_bits::oncs_dsm |
                              nvme::ctrl_bits::oncs_write_zeroes |
                              nvme::ctrl_bits::oncs_reservations;
        EXPECT_EQ(id.oncs & oncs, oncs);
        EXPECT_TRUE(id.vwc & nvme::ctrl_bits::vwc_present);
        EXPECT_EQ(nvme::get_str(id.subnqn), allow_nqn);
        EXPECT_EQ(id.cntrltype, 1) << "I/O controller";
        EXPECT_EQ(id.sqes, 0x66);
        EXPECT_EQ(id.cqes, 0x44);
        EXPECT_EQ(id.maxcmd, lim.max_queue_depth);
        EXPECT_EQ(id.ver, 0x00010300u);
        EXPECT_TRUE(id.oaes & nvme::ctrl_bits::oaes_namespace_attribute);
        EXPECT_EQ(std::string(id.sn, 12), "WEFTTEST0001");
        EXPECT_EQ(std::string(id.mn, 15), "weft test allow");
        EXPECT_EQ(id.mn[15], ' ') << "MN is padded with spaces";
    });
}

TEST(target_admin, identify_namespace) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn), false));
        const std::array<std::pair<uint32_t, uint64_t>, 2> nss{{{1, ns1_blocks}, {2, ns2_blocks}}};
        for (auto [nsid, blocks] : nss) {
            bytes buf(4096);
            CO_ASSERT_OK(co_await s.admin.identify(nvme::cns::namespace_data, nsid, buf));
            auto id = load<nvme::identify_namespace>(buf);
            EXPECT_EQ(id.nsze, blocks) << nsid;
            EXPECT_EQ(id.ncap, blocks);
            EXPECT_EQ(id.nlbaf, 0) << "one LBA format";
            EXPECT_EQ(id.flbas & 0xf, 0);
            EXPECT_EQ(id.lbaf[0].lbads, 9) << "512-byte blocks";
            EXPECT_EQ(id.lbaf[0].ms, 0);
            auto ids = ids_for(nsid);
            EXPECT_EQ(std::memcmp(id.nguid, ids.nguid.data(), 16), 0);
            EXPECT_EQ(std::memcmp(id.eui64, ids.eui64.data(), 8), 0);
            EXPECT_EQ(id.rescap & 0x7e, 0x7e) << "the six reservation types";
        }
    });
}

TEST(target_admin, identify_inactive_or_invalid_namespace) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn), false));
        bytes buf(4096, std::byte{0xff});
        CO_ASSERT_OK(co_await s.admin.identify(nvme::cns::namespace_data, 7, buf));
        EXPECT_TRUE(all_zero(buf)) << "an inactive NSID answers zeroes";
        EXPECT_STATUS(co_await s.admin.identify(nvme::cns::namespace_data, 0, buf),
                      sc::invalid_namespace);
        EXPECT_STATUS(co_await s.admin.identify(nvme::cns::namespace_data, 0xfffffff0, buf),
                      sc::invalid_namespace);
        EXPECT_STATUS(co_await s.admin.identify(nvme::cns::namespace_descriptors, 7, buf),
                      sc::invalid_namespace);
        EXPECT_STATUS(co_await s.admin.identify(nvme::cns(0x1f), 0, buf), sc::invalid_field);
    });
}

TEST(target_admin, active_namespace_list) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn), false));
        bytes buf(4096, std::byte{0xff});
        CO_ASSERT_OK(co_await s.admin.identify(nvme::cns::active_namespaces, 0, buf));
        auto list = load<std::array<uint32_t, 1024>>(buf);
        EXPECT_EQ(list[0], 1u);
        EXPECT_EQ(list[1], 2u);
        EXPECT_EQ(list[2], 0u);
        // Only NSIDs greater than the one given.
        CO_ASSERT_OK(co_await s.admin.identify(nvme::cns::active_namespaces, 1, buf));
        list = load<std::array<uint32_t, 1024>>(buf);
        EXPECT_EQ(list[0], 2u);
        EXPECT_EQ(list[1], 0u);
        CO_ASSERT_OK(co_await s.admin.identify(nvme::cns::active_namespaces, 2, buf));
        EXPECT_TRUE(all_zero(buf));
        EXPECT_STATUS(co_await s.admin.identify(nvme::cns::active_namespaces, 0xfffffffe, buf),
                      sc::invalid_namespace);
    });
}

TEST(target_admin, namespace_descriptor_list) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn), false));
        bytes buf(4096, std::byte{0xff});
        CO_ASSERT_OK(co_await s.admin.identify(nvme::cns::namespace_descriptors, 2, buf));
        auto ids = ids_for(2);
        struct want {
            nvme::nidt type;
            uint8_t len;
            const uint8_t* value;
        };
        uint8_t csi = 0;
        const std::array<want, 4> wants{want{nvme::nidt::eui64, 8, ids.eui64.data()},
                                        want{nvme::nidt::nguid, 16, ids.nguid.data()},
                                        want{nvme::nidt::uuid, 16, ids.uuid.data()},
                                        want{nvme::nidt::csi, 1, &csi}};
        size_t off = 0;
        for (const want& w : wants) {
            auto h = load<nvme::ns_descriptor_header>(buf, off);
            EXPECT_EQ(h.nidt, uint8_t(w.type)) << "at " << off;
            EXPECT_EQ(h.nidl, w.len) << "at " << off;
            EXPECT_EQ(std::memcmp(buf.data() + off + 4, w.value, w.len), 0) << "at " << off;
            off += 4 + h.nidl;
        }
        // A zero NIDT ends the list.
        EXPECT_EQ(std::to_integer<int>(buf[off]), 0);
        EXPECT_TRUE(all_zero(std::span(buf).subspan(off)));
    });
}

// ---- log pages --------------------------------------------------------------

TEST(target_log_page, error_smart_firmware_and_changed_namespaces) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
        bytes err(64, std::byte{0xff});
        CO_ASSERT_OK(co_await s.admin.get_log_page(lid(nvme::log_id::error_information), err));
        EXPECT_TRUE(all_zero(err)) << "no error recorded";

        // 8 blocks written, 16 read.
        bytes data = pattern(4096, 1), back(8192);
        CO_ASSERT_OK(co_await s.io.write(1, 0, 8, data));
        CO_ASSERT_OK(co_await s.io.read(1, 0, 16, back));
        bytes smart(512);
        CO_ASSERT_OK(co_await s.admin.get_log_page(lid(nvme::log_id::smart_health), smart));
        auto sm = load<nvme::smart_log>(smart);
        uint16_t kelvin = sm.temperature;  // a packed field
        EXPECT_GT(kelvin, 0);
        EXPECT_EQ(sm.available_spare, 100);
        EXPECT_EQ(load<uint64_t>(smart, offsetof(nvme::smart_log, host_writes)), 1u);
        EXPECT_EQ(load<uint64_t>(smart, offsetof(nvme::smart_log, host_reads)), 1u);
        EXPECT_EQ(load<uint64_t>(smart, offsetof(nvme::smart_log, data_units_written)), 1u);
        EXPECT_EQ(load<uint64_t>(smart, offsetof(nvme::smart_log, data_units_read)), 1u);

        bytes fw(512);
        CO_ASSERT_OK(co_await s.admin.get_log_page(lid(nvme::log_id::firmware_slot), fw));
        auto f = load<nvme::firmware_slot_log>(fw);
        EXPECT_EQ(f.afi & 7, 1) << "slot 1 active";
        EXPECT_EQ(std::string(f.frs[0], 8), "weft0.1 ");

        bytes changed(4096, std::byte{0xff});
        CO_ASSERT_OK(co_await s.admin.get_log_page(lid(nvme::log_id::changed_namespaces), changed));
        EXPECT_TRUE(all_zero(changed)) << "nothing changed since Connect";
    });
}

TEST(target_log_page, offsets_and_invalid_requests) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn), false));
        bytes rev(8);
        CO_ASSERT_OK(co_await s.admin.get_log_page(lid(nvme::log_id::firmware_slot), rev, 8));
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(rev.data()), 8), "weft0.1 ");
        EXPECT_STATUS(co_await s.admin.get_log_page(lid(nvme::log_id::firmware_slot), rev, 2),
                      sc::invalid_field);
        EXPECT_STATUS(co_await s.admin.get_log_page(lid(nvme::log_id::firmware_slot), rev, 4096),
                      sc::invalid_field);
        bytes page(512);
        EXPECT_STATUS(co_await s.admin.get_log_page(0xc0, page), sc::invalid_log_page);
        EXPECT_EQ(sc::invalid_log_page.type, nvme::sct::command_specific);
        // NUMD asks for more than the SGL describes.
        auto c = make_cmd(admin_opcode::get_log_page, 0xffffffff);
        c.cdw10 = lid(nvme::log_id::smart_health) | (1023u << 16);
        c.sgl.type = nvme::sgl_type::transport;
        c.sgl.length = 512;
        auto r = co_await s.admin.exec(c, {.in = page, .raw_sgl = true});
        EXPECT_TRUE(r.completed()) << r;
        EXPECT_FALSE(r.status().ok()) << r;
    });
}

// ---- features ---------------------------------------------------------------

TEST(target_features, number_of_queues) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn), false));
        uint32_t most = t.tgt.limits().max_io_queues - 1u;
        auto g = co_await s.admin.get_features(fid(feature::number_of_queues));
        CO_ASSERT_OK(g);
        EXPECT_EQ(g.cpl.dw0, most | (most << 16));
        auto r = co_await s.admin.set_features(fid(feature::number_of_queues), 3 | (3u << 16));
        CO_ASSERT_OK(r);
        EXPECT_EQ(r.cpl.dw0, 3u | (3u << 16));
        g = co_await s.admin.get_features(fid(feature::number_of_queues));
        EXPECT_EQ(g.cpl.dw0, 3u | (3u << 16));
        // More than there are: the most there are.
        r = co_await s.admin.set_features(fid(feature::number_of_queues), 1000 | (1000u << 16));
        CO_ASSERT_OK(r);
        EXPECT_EQ(r.cpl.dw0, most | (most << 16));
        EXPECT_STATUS(co_await s.admin.set_features(fid(feature::number_of_queues), 0xffff),
                      sc::invalid_field);
    });
}

TEST(target_features, keep_alive_vwc_aec_and_host_identifier) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn, 30000), false));
        auto g = co_await s.admin.get_features(fid(feature::keep_alive_timer));
        EXPECT_TRUE(g.ok() && g.cpl.dw0 == 30000) << g;
        g = co_await s.admin.get_features(fid(feature::volatile_write_cache));
        EXPECT_TRUE(g.ok() && g.cpl.dw0 == 1) << g;
        CO_EXPECT_OK(co_await s.admin.set_features(fid(feature::volatile_write_cache), 0));
        g = co_await s.admin.get_features(fid(feature::volatile_write_cache));
        EXPECT_TRUE(g.ok() && g.cpl.dw0 == 0) << g;
        CO_EXPECT_OK(
            co_await s.admin.set_features(fid(feature::async_event_configuration), 1u << 8));
        g = co_await s.admin.get_features(fid(feature::async_event_configuration));
        EXPECT_TRUE(g.ok() && g.cpl.dw0 == 1u << 8) << g;
        // Host Identifier: 128-bit (EXHID) only, and it is Connect's.
        bytes id(16);
        auto c = make_cmd(admin_opcode::get_features);
        c.cdw10 = fid(feature::host_identifier);
        c.cdw11 = 1;
        CO_ASSERT_OK(co_await s.admin.exec(c, {.in = id}));
        EXPECT_EQ(std::memcmp(id.data(), host_a.id.data(), 16), 0);
        c.cdw11 = 0;
        EXPECT_STATUS(co_await s.admin.exec(c, {.in = id}), sc::invalid_field);
    });
}

TEST(target_features, invalid_fid_and_saveable) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn), false));
        EXPECT_STATUS(co_await s.admin.get_features(0x7e), sc::invalid_field);
        EXPECT_STATUS(co_await s.admin.set_features(0x7e, 0), sc::invalid_field);
        EXPECT_STATUS(co_await s.admin.get_features(0x00), sc::invalid_field);
        auto r =
            co_await s.admin.set_features(fid(feature::volatile_write_cache), 1, /*save=*/true);
        EXPECT_STATUS(r, sc::feature_not_saveable);
        EXPECT_EQ(r.status().code, 0x0d);
        // Supported capabilities (SEL 3): changeable, not saveable.
        auto g = co_await s.admin.get_features(fid(feature::volatile_write_cache), 0, 3);
        CO_ASSERT_OK(g);
        EXPECT_EQ(g.cpl.dw0 & 1, 0u) << "not saveable";
        EXPECT_EQ(g.cpl.dw0 & 4, 4u) << "changeable";
    });
}

TEST(target_admin, keep_alive_and_unknown_opcode) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn), false));
        CO_EXPECT_OK(co_await s.admin.keep_alive());
        EXPECT_STATUS(co_await s.admin.exec(make_cmd(uint8_t(0x3e))), sc::invalid_opcode);
        EXPECT_STATUS(co_await s.admin.exec(make_cmd(admin_opcode::create_sq)), sc::invalid_opcode);
        // Fabrics commands the admin queue does not know.
        auto c = make_cmd(admin_opcode::fabrics);
        c.nsid = 0x07;  // a reserved fabrics type
        EXPECT_STATUS(co_await s.admin.exec(c), sc::invalid_opcode);
        // Authentication Send without a security protocol it knows (DH-HMAC-CHAP).
        c.nsid = 0x05;
        EXPECT_STATUS(co_await s.admin.exec(c), sc::invalid_field);
    });
}

// ---- asynchronous events ----------------------------------------------------

TEST(target_aer, namespace_added_and_resized) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
        CO_ASSERT_OK(
            co_await s.admin.set_features(fid(feature::async_event_configuration), 1u << 8));
        int aer = co_await s.admin.submit(make_cmd(admin_opcode::async_event_request));
        CO_ASSERT_TRUE(aer >= 0);

        // Namespace 3 appears while the host is connected.
        std::shared_ptr<bdev::bdev> dev(bdev::make_malloc_bdev("ns3", 512, block_size, 2048));
        t.devs.push_back(dev);
        auto added = t.allow->add_namespace(3, dev, ids_for(3));
        CO_ASSERT_TRUE(added.ok());
        auto ev = co_await s.admin.wait(aer);
        CO_ASSERT_OK(ev);
        EXPECT_EQ(ev.cpl.dw0 & 7, 2u) << "type: notice";
        EXPECT_EQ((ev.cpl.dw0 >> 8) & 0xff, 0u) << "info: namespace attribute changed";
        EXPECT_EQ((ev.cpl.dw0 >> 16) & 0xff, 0x04u) << "log page: changed namespace list";
        bytes log(4096);
        CO_ASSERT_OK(co_await s.admin.get_log_page(lid(nvme::log_id::changed_namespaces), log));
        auto l = load<nvme::changed_namespace_log>(log);
        EXPECT_EQ(l.nsid[0], 3u);
        EXPECT_EQ(l.nsid[1], 0u);
        // Read without RAE: the list starts again empty.
        CO_ASSERT_OK(co_await s.admin.get_log_page(lid(nvme::log_id::changed_namespaces), log));
        EXPECT_TRUE(all_zero(log));
        bytes id(4096);
        CO_ASSERT_OK(co_await s.admin.identify(nvme::cns::namespace_data, 3, id));
        EXPECT_EQ(load<nvme::identify_namespace>(id).nsze, 512u);
        bytes buf(512);
        CO_EXPECT_OK(co_await s.io.read(3, 511, 1, buf));

        // Namespace 2 grows: another notice.
        aer = co_await s.admin.submit(make_cmd(admin_opcode::async_event_request));
        CO_ASSERT_TRUE(aer >= 0);
        auto resized = t.devs[1]->resize(ns2_blocks * 2);
        CO_ASSERT_TRUE(resized.ok());
        ev = co_await s.admin.wait(aer);
        CO_ASSERT_OK(ev);
        EXPECT_EQ(ev.cpl.dw0, nvme::aen_namespace_changed);
        CO_ASSERT_OK(co_await s.admin.get_log_page(lid(nvme::log_id::changed_namespaces), log));
        l = load<nvme::changed_namespace_log>(log);
        EXPECT_EQ(l.nsid[0], 2u);
        EXPECT_EQ(l.nsid[1], 0u);
        CO_ASSERT_OK(co_await s.admin.identify(nvme::cns::namespace_data, 2, id));
        EXPECT_EQ(load<nvme::identify_namespace>(id).nsze, ns2_blocks * 2);
        CO_EXPECT_OK(co_await s.io.read(2, ns2_blocks * 2 - 1, 1, buf));
    });
}

TEST(target_aer, namespace_removed) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
        CO_ASSERT_OK(
            co_await s.admin.set_features(fid(feature::async_event_configuration), 1u << 8));
        bytes buf(512);
        CO_ASSERT_OK(co_await s.io.read(2, 0, 1, buf));
        int aer = co_await s.admin.submit(make_cmd(admin_opcode::async_event_request));
        CO_ASSERT_TRUE(aer >= 0);
        CO_ASSERT_TRUE(t.allow->remove_namespace(2).ok());
        auto ev = co_await s.admin.wait(aer);
        CO_ASSERT_OK(ev);
        EXPECT_EQ(ev.cpl.dw0, nvme::aen_namespace_changed);
        bytes log(4096);
        CO_ASSERT_OK(co_await s.admin.get_log_page(lid(nvme::log_id::changed_namespaces), log));
        EXPECT_EQ(load<uint32_t>(log), 2u);
        // Gone for I/O, Identify and the active list.
        EXPECT_STATUS(co_await s.io.read(2, 0, 1, buf), sc::invalid_namespace);
        bytes id(4096, std::byte{0xff});
        CO_ASSERT_OK(co_await s.admin.identify(nvme::cns::namespace_data, 2, id));
        EXPECT_TRUE(all_zero(id));
        CO_ASSERT_OK(co_await s.admin.identify(nvme::cns::active_namespaces, 0, id));
        EXPECT_EQ(load<uint32_t>(id, 0), 1u);
        EXPECT_EQ(load<uint32_t>(id, 4), 0u);
        CO_EXPECT_OK(co_await s.io.read(1, 0, 1, buf));
    });
}

TEST(target_aer, not_reported_unless_enabled_and_limited_to_four) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn), false));
        std::array<int, 4> aers{};
        for (int& a : aers) {
            a = co_await s.admin.submit(make_cmd(admin_opcode::async_event_request));
            CO_ASSERT_TRUE(a >= 0);
        }
        auto fifth = co_await s.admin.exec(make_cmd(admin_opcode::async_event_request));
        EXPECT_STATUS(fifth, sc::async_event_limit_exceeded);
        // AEC has no namespace notices: a new namespace raises no event.
        std::shared_ptr<bdev::bdev> dev(bdev::make_malloc_bdev("ns4", 64, block_size, 64));
        t.devs.push_back(dev);
        CO_ASSERT_TRUE(t.allow->add_namespace(4, dev, ids_for(4)).ok());
        co_await sleep(50ms);
        CO_EXPECT_OK(co_await s.admin.keep_alive());
        for (int a : aers) EXPECT_FALSE(s.admin.completed(a)) << "AER " << a << " completed";
        // The change is still in the log.
        bytes log(4096);
        CO_ASSERT_OK(co_await s.admin.get_log_page(lid(nvme::log_id::changed_namespaces), log));
        EXPECT_EQ(load<uint32_t>(log), 4u);
    });
}

TEST(target_admin, abort) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn), false));
        int aer = co_await s.admin.submit(make_cmd(admin_opcode::async_event_request));
        CO_ASSERT_TRUE(aer >= 0);
        auto c = make_cmd(admin_opcode::abort);
        c.cdw10 = 0 | (uint32_t(aer) << 16);  // SQID 0, the AER's CID
        auto r = co_await s.admin.exec(c);
        CO_ASSERT_OK(r);
        // Bit 0 of dword 0: 1 = not aborted (allowed: an Abort is best effort).
        if (r.cpl.dw0 & 1) {
            CO_EXPECT_OK(co_await s.admin.keep_alive());
            EXPECT_FALSE(s.admin.completed(aer)) << "reported not aborted, yet completed";
        } else {
            auto a = co_await s.admin.wait(aer);
            EXPECT_STATUS(a, sc::abort_requested);
        }
        // An unknown CID is not aborted either way.
        c.cdw10 = 0 | (0x7777u << 16);
        r = co_await s.admin.exec(c);
        CO_ASSERT_OK(r);
        EXPECT_EQ(r.cpl.dw0 & 1, 1u);
    });
}

}  // namespace
// ---- asymmetric namespace access ---------------------------------------------

TEST(target_ana, identify_and_log_page) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
        bytes buf(4096);
        CO_ASSERT_OK(co_await s.admin.identify(nvme::cns::controller, 0, buf));
        auto id = load<nvme::identify_controller>(buf);
        EXPECT_TRUE(id.cmic & nvme::ctrl_bits::cmic_ana);
        EXPECT_TRUE(id.cmic & nvme::ctrl_bits::cmic_multi_controller);
        EXPECT_TRUE(id.oaes & nvme::ctrl_bits::oaes_ana_change);
        EXPECT_EQ(id.anacap & 0x07, 0x07) << "optimized, non-optimized and inaccessible";
        EXPECT_GT(id.anatt, 0);
        EXPECT_EQ(id.anagrpmax, 1u);
        EXPECT_EQ(id.nanagrpid, 1u);
        // Linux needs MNAN (0 < MNAN <= NN) to size its ANA log buffer.
        EXPECT_GT(id.mnan, 0u);
        EXPECT_LE(id.mnan, id.nn);
        CO_ASSERT_OK(co_await s.admin.identify(nvme::cns::namespace_data, 2, buf));
        EXPECT_EQ(load<nvme::identify_namespace>(buf).anagrpid, 1u);
        EXPECT_EQ(load<nvme::identify_namespace>(buf).nmic & 1, 1) << "shared namespace";

        CO_ASSERT_OK(
            co_await s.admin.get_log_page(lid(nvme::log_id::asymmetric_namespace_access), buf));
        auto h = load<nvme::ana_log_header>(buf);
        EXPECT_EQ(h.ngrps, 1u);
        auto d = load<nvme::ana_group_descriptor>(buf, sizeof h);
        EXPECT_EQ(d.grpid, 1u);
        EXPECT_EQ(d.state, uint8_t(nvme::ana_state::optimized));
        EXPECT_EQ(d.nnsids, 2u);
        EXPECT_EQ(load<uint32_t>(buf, sizeof h + sizeof d), 1u);
        EXPECT_EQ(load<uint32_t>(buf, sizeof h + sizeof d + 4), 2u);
        // Return Groups Only (LSP bit 0): no NSIDs.
        auto c = make_cmd(nvme::admin_opcode::get_log_page, 0xffffffff);
        c.cdw10 = uint32_t(nvme::log_id::asymmetric_namespace_access) | (1u << 8) |
                  ((4096 / 4 - 1) << 16);
        std::fill(buf.begin(), buf.end(), std::byte{0xee});
        CO_ASSERT_OK(co_await s.admin.exec(c, host_queue::data{.in = buf}));
        EXPECT_EQ(load<nvme::ana_group_descriptor>(buf, sizeof h).nnsids, 0u);
        // A log page offset past the page is refused.
        EXPECT_STATUS(co_await s.admin.get_log_page(lid(nvme::log_id::asymmetric_namespace_access),
                                                    buf, 4096),
                      sc::invalid_field);
    });
}

TEST(target_ana, state_change_is_announced_and_gates_io) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
        CO_ASSERT_OK(co_await s.admin.set_features(fid(feature::async_event_configuration),
                                                   nvme::aec_ana_change));
        bytes buf(512);
        CO_ASSERT_OK(co_await s.io.write(1, 0, 1, buf));
        bytes log(4096);
        CO_ASSERT_OK(
            co_await s.admin.get_log_page(lid(nvme::log_id::asymmetric_namespace_access), log));
        const uint64_t chg0 = load<nvme::ana_log_header>(log).chgcnt;
        int aer = co_await s.admin.submit(make_cmd(admin_opcode::async_event_request));
        CO_ASSERT_TRUE(aer >= 0);

        t.allow->set_ana_state(nvme::ana_state::inaccessible);
        auto ev = co_await s.admin.wait(aer);
        CO_ASSERT_OK(ev);
        EXPECT_EQ(ev.cpl.dw0, nvme::aen_ana_change);
        CO_ASSERT_OK(
            co_await s.admin.get_log_page(lid(nvme::log_id::asymmetric_namespace_access), log));
        EXPECT_EQ(load<nvme::ana_log_header>(log).chgcnt, chg0 + 1);
        auto d = load<nvme::ana_group_descriptor>(log, sizeof(nvme::ana_log_header));
        EXPECT_EQ(d.state, uint8_t(nvme::ana_state::inaccessible));
        EXPECT_EQ(d.chgcnt, chg0 + 1);
        // Every I/O command fails with a path status the host may retry
        // elsewhere (not DNR); admin commands go on.
        auto r = co_await s.io.read(1, 0, 1, buf);
        EXPECT_STATUS(r, sc::ana_inaccessible);
        EXPECT_FALSE(r.status().dnr);
        EXPECT_STATUS(co_await s.io.write(1, 0, 1, buf), sc::ana_inaccessible);
        EXPECT_STATUS(co_await s.io.exec(make_cmd(nvme::io_opcode::flush, 0xffffffff)),
                      sc::ana_inaccessible);
        CO_EXPECT_OK(co_await s.admin.keep_alive());
        // "change" (in transition) and persistent loss have their own status.
        aer = co_await s.admin.submit(make_cmd(admin_opcode::async_event_request));
        CO_ASSERT_TRUE(aer >= 0);
        t.allow->set_ana_state(nvme::ana_state::change);
        ev = co_await s.admin.wait(aer);
        CO_ASSERT_OK(ev);
        EXPECT_STATUS(co_await s.io.read(1, 0, 1, buf), sc::ana_transition);
        // Not read yet: no second notice until the host reads the log.
        aer = co_await s.admin.submit(make_cmd(admin_opcode::async_event_request));
        CO_ASSERT_TRUE(aer >= 0);
        t.allow->set_ana_state(nvme::ana_state::persistent_loss);
        EXPECT_STATUS(co_await s.io.read(1, 0, 1, buf), sc::ana_persistent_loss);
        CO_ASSERT_OK(
            co_await s.admin.get_log_page(lid(nvme::log_id::asymmetric_namespace_access), log));
        ev = co_await s.admin.wait(aer);
        CO_ASSERT_OK(ev);
        EXPECT_EQ(ev.cpl.dw0, nvme::aen_ana_change) << "the masked notice, once the log was read";
        // Optimized again: I/O goes on; setting the same state is no change.
        t.allow->set_ana_state(nvme::ana_state::optimized);
        const uint64_t chg = t.allow->ana_change_count();
        t.allow->set_ana_state(nvme::ana_state::optimized);
        EXPECT_EQ(t.allow->ana_change_count(), chg);
        CO_EXPECT_OK(co_await s.io.read(1, 0, 1, buf));
        // Another subsystem's path is its own.
        EXPECT_EQ(t.open->ana_state(), nvme::ana_state::optimized);
    });
}

TEST(target_ana, controller_ids_come_from_the_targets_range) {
    env_options opt;
    opt.limits.min_cntlid = 0x100;
    opt.limits.max_cntlid = 0x101;
    run_with_target(
        [](target_env& t) -> task<void> {
            session a, b;
            CO_ASSERT_TRUE(co_await open_session(a, t.addr, t.params(host_a, allow_nqn)));
            CO_ASSERT_TRUE(co_await open_session(b, t.addr, t.params(host_b, allow_nqn)));
            EXPECT_EQ(a.admin.cntlid(), 0x100);
            EXPECT_EQ(b.admin.cntlid(), 0x101);
            // The range is full: a third controller is refused (busy).
            host_queue q;
            CO_ASSERT_TRUE(co_await q.open(t.addr));
            auto p = t.params(host_a, allow_nqn);
            p.qid = 0;
            p.cntlid = 0xffff;
            EXPECT_STATUS(co_await q.connect(p), sc::connect_controller_busy);
        },
        opt);
}

}  // namespace weft::test
