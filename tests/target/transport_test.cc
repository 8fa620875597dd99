// Malformed NVMe/TCP traffic: each fatal error is answered by a C2HTermReq
// with the right FES (and FEI), then the connection closes, and the target
// goes on serving new connections. Errors that are not fatal (a data digest)
// fail only their command.
#include <algorithm>
#include <cstring>

#include "nvmf/tcp/crc32c.h"
#include "runtime/uring_op.h"
#include "target/target_env.h"

namespace weft::test {
namespace {

using namespace std::chrono_literals;
namespace sc = nvme::sc;
using tcp::fes;

// A CapsuleCmd PDU as `p` says, with `icd` in the capsule.
bytes capsule_pdu(const tcp::writer_params& p, nvme::command cmd,
                  std::span<const std::byte> icd = {}) {
    bytes out(tcp::max_prefix);
    auto sqe = std::as_bytes(std::span<const nvme::command, 1>(&cmd, 1));
    size_t n = tcp::encode_capsule_cmd(out, p, std::span<const std::byte, 64>(sqe.data(), 64),
                                       uint32_t(icd.size()));
    out.resize(n);
    out.insert(out.end(), icd.begin(), icd.end());
    if (p.ddgst && !icd.empty()) {
        auto d = tcp::encode_digest(tcp::crc32c(icd));
        out.insert(out.end(), d.begin(), d.end());
    }
    return out;
}

// The Property Get of VS, a harmless admin command to send raw.
nvme::command vs_get() {
    nvme::property_command pc{};
    pc.opcode = uint8_t(nvme::admin_opcode::fabrics);
    pc.fctype = uint8_t(nvme::fabrics_type::property_get);
    pc.cid = 0x4242;
    pc.offset = nvme::reg::vs;
    nvme::command c;
    std::memcpy(&c, &pc, sizeof c);
    return c;
}

// Expects a C2HTermReq with `status` (and `fei` unless negative) whose data
// is the start of `sent` (the offending header), then the connection's end.
task<void> expect_term(host_queue& q, fes status, long fei, std::span<const std::byte> sent) {
    auto r = co_await q.recv_pdu();
    CO_ASSERT_EQ(r.how, outcome::completed);
    CO_ASSERT_EQ(r.pdu.type, tcp::pdu_type::c2h_term_req);
    auto& t = r.pdu.as<tcp::term_req>();
    EXPECT_EQ(t.fes.get(), uint16_t(status));
    if (fei >= 0) {
        EXPECT_EQ(t.fei.get(), uint32_t(fei));
    }
    EXPECT_EQ(t.ch.hlen, 24);
    EXPECT_EQ(t.ch.flags, 0) << "TermReqs carry no digests";
    auto echoed = r.pdu.data();
    EXPECT_LE(echoed.size(), 128u);
    EXPECT_GE(echoed.size(), std::min<size_t>(8, sent.size())) << "the offending header";
    size_t n = std::min(echoed.size(), sent.size());
    EXPECT_EQ(std::memcmp(echoed.data(), sent.data(), n), 0) << "echoes what was sent";
    auto closed = co_await q.expect_closed(3000ms);
    EXPECT_EQ(closed, outcome::closed) << "the target closes after its C2HTermReq";
}

// A fresh connection gets a controller and answers.
task<void> expect_still_serving(target_env& t) {
    session s;
    CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
    bytes buf(512);
    CO_EXPECT_OK(co_await s.io.read(1, 0, 1, buf));
}

// An admin queue with a controller, with `opt`'s digests.
task<bool> connected(host_queue& q, target_env& t, link_options opt = {}) {
    bool ok = co_await q.open(t.addr, opt);
    if (!ok) co_return false;
    auto r = co_await q.connect(t.params(host_a, allow_nqn));
    co_return r.ok();
}

TEST(target_transport, unknown_pdu_type) {
    run_with_target([](target_env& t) -> task<void> {
        const std::array<uint8_t, 3> types{0x0f, 0x08, 0xff};
        for (uint8_t type : types) {
            host_queue q;
            CO_ASSERT_TRUE(co_await connected(q, t));
            bytes pdu(24);
            pdu[0] = std::byte(type);
            pdu[2] = std::byte(24);
            pdu[4] = std::byte(24);
            CO_ASSERT_TRUE(co_await q.send_raw(pdu));
            co_await expect_term(q, fes::invalid_header_field, 0, pdu);
        }
        co_await expect_still_serving(t);
    });
}

TEST(target_transport, pdu_of_the_wrong_direction_or_phase) {
    run_with_target([](target_env& t) -> task<void> {
        {
            // A CapsuleResp is the controller's to send.
            host_queue q;
            CO_ASSERT_TRUE(co_await connected(q, t));
            bytes pdu(24);
            pdu[0] = std::byte(tcp::pdu_type::capsule_resp);
            pdu[2] = std::byte(24);
            pdu[4] = std::byte(24);
            CO_ASSERT_TRUE(co_await q.send_raw(pdu));
            co_await expect_term(q, fes::invalid_header_field, 0, pdu);
        }
        {
            // A second ICReq.
            host_queue q;
            CO_ASSERT_TRUE(co_await connected(q, t));
            bytes ic(128);
            tcp::encode_ic_req(ic, 0, 0, 0);
            CO_ASSERT_TRUE(co_await q.send_raw(ic));
            co_await expect_term(q, fes::pdu_sequence_error, 0, ic);
        }
        {
            // A command before the ICReq.
            host_queue q;
            CO_ASSERT_TRUE(co_await q.open_tcp(t.addr));
            bytes pdu = capsule_pdu({}, vs_get());
            CO_ASSERT_TRUE(co_await q.send_raw(pdu));
            co_await expect_term(q, fes::pdu_sequence_error, 0, pdu);
        }
        {
            // An ICReq of another PDU format version.
            host_queue q;
            CO_ASSERT_TRUE(co_await q.open_tcp(t.addr));
            bytes ic(128);
            tcp::encode_ic_req(ic, 0, 0, 0);
            ic[8] = std::byte{1};  // PFV
            CO_ASSERT_TRUE(co_await q.send_raw(ic));
            co_await expect_term(q, fes::unsupported_parameter, offsetof(tcp::ic_req, pfv), ic);
        }
        co_await expect_still_serving(t);
    });
}

TEST(target_transport, bad_hlen) {
    run_with_target([](target_env& t) -> task<void> {
        host_queue q;
        CO_ASSERT_TRUE(co_await connected(q, t));
        bytes pdu = capsule_pdu(q.writer(), vs_get());
        pdu[2] = std::byte(64);  // HLEN of a CapsuleCmd is 72
        CO_ASSERT_TRUE(co_await q.send_raw(pdu));
        co_await expect_term(q, fes::invalid_header_field, offsetof(tcp::common_header, hlen), pdu);
        co_await expect_still_serving(t);
    });
}

TEST(target_transport, wrong_header_digest) {
    run_with_target([](target_env& t) -> task<void> {
        host_queue q;
        CO_ASSERT_TRUE(co_await connected(q, t, {.hdgst = true, .ddgst = true}));
        CO_ASSERT_TRUE(q.writer().hdgst);
        // A good one goes through...
        bytes good = capsule_pdu(q.writer(), vs_get());
        CO_ASSERT_TRUE(co_await q.send_raw(good));
        auto resp = co_await q.recv_pdu();
        CO_ASSERT_EQ(resp.pdu.type, tcp::pdu_type::capsule_resp);
        // ...the same with one bit of its header digest flipped does not.
        bytes bad = good;
        bad[sizeof(tcp::capsule_cmd)] ^= std::byte{0x10};
        CO_ASSERT_TRUE(co_await q.send_raw(bad));
        co_await expect_term(q, fes::header_digest_error, -1, bad);
        // Digests switched on but the PDU without one: a header field error.
        host_queue q2;
        CO_ASSERT_TRUE(co_await connected(q2, t, {.hdgst = true}));
        bytes plain = capsule_pdu({}, vs_get());
        CO_ASSERT_TRUE(co_await q2.send_raw(plain));
        co_await expect_term(q2, fes::invalid_header_field, offsetof(tcp::common_header, flags),
                             plain);
        co_await expect_still_serving(t);
    });
}

TEST(target_transport, data_digest_error_fails_only_the_command) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        link_options opt{.hdgst = true, .ddgst = true};
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn), true, opt));
        bytes data = pattern(4096, 21);
        auto w = make_cmd(nvme::io_opcode::write, 1);
        w.cdw12 = 7;
        w.cid = 0x300;
        w.sgl.type = nvme::sgl_type::in_capsule;
        w.sgl.length = 4096;
        bytes pdu = capsule_pdu(s.io.writer(), w, data);
        pdu.back() ^= std::byte{0xff};  // the data digest
        CO_ASSERT_TRUE(co_await s.io.send_raw(pdu));
        auto r = co_await s.io.recv_pdu();
        CO_ASSERT_EQ(r.how, outcome::completed);
        CO_ASSERT_EQ(r.pdu.type, tcp::pdu_type::capsule_resp);
        auto cpl = load<nvme::completion>(r.pdu.raw, 8);
        EXPECT_EQ(cpl.cid, 0x300);
        EXPECT_EQ(nvme::status::from_field(cpl.status), sc::transient_transport_error);
        // The data was not written, and the queue goes on.
        bytes back(4096);
        CO_ASSERT_OK(co_await s.io.read(1, 0, 8, back));
        EXPECT_FALSE(back == data);
        CO_EXPECT_OK(co_await s.io.write(1, 0, 8, data));
    });
}

// Starts a 4 KiB write by R2T on an I/O queue and returns the R2T.
task<raw_pdu> start_r2t_write(session& s, std::span<const std::byte> data) {
    auto w = make_cmd(nvme::io_opcode::write, 1);
    w.cdw12 = uint32_t(data.size() / block_size - 1);
    w.cid = 0x77;
    w.flags = 0x40;
    w.sgl.type = nvme::sgl_type::transport;
    w.sgl.length = uint32_t(data.size());
    bytes pdu = capsule_pdu(s.io.writer(), w);
    bool sent = co_await s.io.send_raw(pdu);
    EXPECT_TRUE(sent);
    auto r = co_await s.io.recv_pdu();
    EXPECT_EQ(r.how, outcome::completed);
    EXPECT_EQ(r.pdu.type, tcp::pdu_type::r2t);
    co_return r.pdu;
}

bytes h2c_pdu(const tcp::writer_params& p, uint16_t cccid, uint16_t ttag, uint32_t datao,
              std::span<const std::byte> data) {
    bytes out(tcp::max_prefix);
    size_t n = tcp::encode_h2c_data(out, p, cccid, ttag, datao, uint32_t(data.size()), true);
    out.resize(n);
    out.insert(out.end(), data.begin(), data.end());
    if (p.ddgst) {
        auto d = tcp::encode_digest(tcp::crc32c(data));
        out.insert(out.end(), d.begin(), d.end());
    }
    return out;
}

TEST(target_transport, h2c_data_with_a_wrong_ttag) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
        bytes data = pattern(4096, 22);
        raw_pdu r2t = co_await start_r2t_write(s, data);
        CO_ASSERT_EQ(r2t.type, tcp::pdu_type::r2t);
        auto& r = r2t.as<tcp::r2t>();
        EXPECT_EQ(r.cccid.get(), 0x77);
        EXPECT_EQ(r.r2to.get(), 0u);
        EXPECT_EQ(r.r2tl.get(), 4096u);
        bytes pdu = h2c_pdu(s.io.writer(), 0x77, uint16_t(r.ttag.get() + 1), 0, data);
        CO_ASSERT_TRUE(co_await s.io.send_raw(pdu));
        co_await expect_term(s.io, fes::invalid_header_field, offsetof(tcp::h2c_data, ttag), pdu);
        co_await expect_still_serving(t);
    });
}

TEST(target_transport, h2c_data_out_of_range_or_too_long) {
    run_with_target([](target_env& t) -> task<void> {
        {
            // DATAO past what was asked for.
            session s;
            CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
            bytes data = pattern(4096, 23);
            raw_pdu r2t = co_await start_r2t_write(s, data);
            CO_ASSERT_EQ(r2t.type, tcp::pdu_type::r2t);
            uint16_t ttag = r2t.as<tcp::r2t>().ttag.get();
            bytes pdu = h2c_pdu(s.io.writer(), 0x77, ttag, 512, data);
            CO_ASSERT_TRUE(co_await s.io.send_raw(pdu));
            co_await expect_term(s.io, fes::data_out_of_range, -1, pdu);
        }
        {
            // More data than MAXH2CDATA: refused from the header alone.
            session s;
            CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
            bytes data = pattern(4096, 24);
            raw_pdu r2t = co_await start_r2t_write(s, data);
            CO_ASSERT_EQ(r2t.type, tcp::pdu_type::r2t);
            uint32_t big = s.io.maxh2cdata() + 4;
            bytes hdr(tcp::max_prefix);
            size_t n = tcp::encode_h2c_data(hdr, s.io.writer(), 0x77, r2t.as<tcp::r2t>().ttag.get(),
                                            0, big, true);
            hdr.resize(n);
            CO_ASSERT_TRUE(co_await s.io.send_raw(hdr));
            co_await expect_term(s.io, fes::data_limit_exceeded, -1, hdr);
        }
        co_await expect_still_serving(t);
    });
}

// Sends `pdu` in three pieces with pauses between them: the target sees the
// header with a little data first, and takes the rest straight into the
// command's buffer (nvmf/tcp/direct_data.h).
task<bool> send_in_pieces(host_queue& q, std::span<const std::byte> pdu) {
    const size_t cut[] = {0, 1024, 60 * 1024, pdu.size()};
    for (size_t i = 0; i + 1 < std::size(cut); ++i) {
        bool sent = co_await q.send_raw(pdu.subspan(cut[i], cut[i + 1] - cut[i]));
        if (!sent) co_return false;
        co_await sleep(20ms);
    }
    co_return true;
}

TEST(target_transport, large_h2c_data_in_pieces_with_a_data_digest) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        link_options opt{.hdgst = true, .ddgst = true};
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn), true, opt));
        CO_ASSERT_EQ(s.io.maxh2cdata(), 128u * 1024);
        for (bool corrupt : {false, true}) {
            bytes data = pattern(128 * 1024, corrupt ? 31 : 30);
            raw_pdu r2t = co_await start_r2t_write(s, data);
            CO_ASSERT_EQ(r2t.type, tcp::pdu_type::r2t);
            CO_ASSERT_EQ(r2t.as<tcp::r2t>().r2tl.get(), data.size());
            bytes pdu = h2c_pdu(s.io.writer(), 0x77, r2t.as<tcp::r2t>().ttag.get(), 0, data);
            if (corrupt) pdu.back() ^= std::byte{0x01};  // the data digest
            CO_ASSERT_TRUE(co_await send_in_pieces(s.io, pdu));
            auto r = co_await s.io.recv_pdu();
            CO_ASSERT_EQ(r.how, outcome::completed);
            CO_ASSERT_EQ(r.pdu.type, tcp::pdu_type::capsule_resp);
            auto cpl = load<nvme::completion>(r.pdu.raw, 8);
            EXPECT_EQ(cpl.cid, 0x77);
            bytes back(data.size());
            CO_ASSERT_OK(co_await s.io.read(1, 0, uint32_t(back.size() / block_size), back));
            if (corrupt) {
                // Failed with a transient error, not written; the queue goes on.
                EXPECT_EQ(nvme::status::from_field(cpl.status), sc::transient_transport_error);
                EXPECT_FALSE(back == data);
            } else {
                EXPECT_TRUE(nvme::status::from_field(cpl.status).ok());
                EXPECT_TRUE(back == data) << "128 KiB received in pieces do not read back";
            }
        }
        co_await expect_still_serving(t);
    });
}

TEST(target_transport, host_term_req_and_abrupt_closes) {
    run_with_target([](target_env& t) -> task<void> {
        {
            // An H2CTermReq: the target closes without answering.
            host_queue q;
            CO_ASSERT_TRUE(co_await connected(q, t));
            bytes term(tcp::max_prefix);
            size_t n = tcp::encode_term_req(term, tcp::pdu_type::h2c_term_req,
                                            fes::invalid_header_field, 0, {});
            term.resize(n);
            CO_ASSERT_TRUE(co_await q.send_raw(term));
            auto closed = co_await q.expect_closed(3000ms);
            EXPECT_EQ(closed, outcome::closed);
        }
        {
            // Half a capsule, then the host goes.
            host_queue q;
            CO_ASSERT_TRUE(co_await connected(q, t));
            bytes pdu = capsule_pdu({}, vs_get());
            pdu.resize(40);
            CO_ASSERT_TRUE(co_await q.send_raw(pdu));
            q.close();
        }
        {
            // A write waiting for its data when the host resets the connection.
            session s;
            CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
            bytes data = pattern(64 * 1024, 25);
            raw_pdu r2t = co_await start_r2t_write(s, data);
            CO_ASSERT_EQ(r2t.type, tcp::pdu_type::r2t);
            s.io.close();
            s.admin.close();
        }
        co_await expect_still_serving(t);
    });
}

// Outstanding R2Ts of one command stay within the host's MAXR2T + 1.
task<void> check_r2t_window(target_env& t, uint32_t maxr2t) {
    session s;
    link_options opt{.maxr2t = maxr2t};
    CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn), true, opt));
    const size_t n = 32 * 1024;
    bytes data = pattern(n, 26);
    auto w = make_cmd(nvme::io_opcode::write, 1);
    w.cdw10 = 1000;
    w.cdw12 = uint32_t(n / block_size - 1);
    w.cid = 0x99;
    w.sgl.type = nvme::sgl_type::transport;
    w.sgl.length = uint32_t(n);
    CO_ASSERT_TRUE(co_await s.io.send_raw(capsule_pdu(s.io.writer(), w)));
    s.io.set_timeout(200ms);
    uint32_t asked = 0;
    size_t most = 0;
    for (int round = 0; round < 64 && asked < n; ++round) {
        std::vector<raw_pdu> r2ts;
        for (;;) {
            auto r = co_await s.io.recv_pdu();
            if (r.how == outcome::timed_out) break;
            CO_ASSERT_EQ(r.how, outcome::completed);
            CO_ASSERT_EQ(r.pdu.type, tcp::pdu_type::r2t);
            auto& x = r.pdu.as<tcp::r2t>();
            EXPECT_EQ(x.r2to.get(), asked) << "R2Ts ask for the data in order";
            EXPECT_LE(x.r2tl.get(), 8192u) << "each at most MAXH2CDATA";
            asked += x.r2tl.get();
            r2ts.push_back(std::move(r.pdu));
        }
        CO_ASSERT_TRUE(!r2ts.empty());
        EXPECT_LE(r2ts.size(), maxr2t + 1u) << "outstanding R2Ts beyond MAXR2T + 1";
        most = std::max(most, r2ts.size());
        for (auto& p : r2ts) {
            auto& x = p.as<tcp::r2t>();
            auto part = std::span<const std::byte>(data).subspan(x.r2to.get(), x.r2tl.get());
            CO_ASSERT_TRUE(co_await s.io.send_raw(
                h2c_pdu(s.io.writer(), 0x99, x.ttag.get(), x.r2to.get(), part)));
        }
    }
    EXPECT_EQ(asked, n);
    EXPECT_EQ(most, maxr2t + 1u) << "the target may use the whole window";
    s.io.set_timeout(5000ms);
    auto r = co_await s.io.recv_pdu();
    CO_ASSERT_EQ(r.pdu.type, tcp::pdu_type::capsule_resp);
    auto cpl = load<nvme::completion>(r.pdu.raw, 8);
    EXPECT_EQ(cpl.cid, 0x99);
    EXPECT_EQ(nvme::status::from_field(cpl.status), sc::success);
    bytes back(n);
    CO_ASSERT_OK(co_await s.io.read(1, 1000, uint32_t(n / block_size), back));
    EXPECT_TRUE(back == data);
}

TEST(target_transport, outstanding_r2ts_within_maxr2t) {
    env_options o;
    o.tcp.max_h2c_data = 8192;
    run_with_target(
        [](target_env& t) -> task<void> {
            co_await check_r2t_window(t, 0);
            co_await check_r2t_window(t, 1);
            co_await check_r2t_window(t, 3);
        },
        o);
}

TEST(target_transport, more_commands_than_the_queue_holds) {
    run_with_target([](target_env& t) -> task<void> {
        // An I/O queue of 2 entries (SQSIZE 1) holding 2 writes waiting for data.
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn), false));
        host_queue& q = s.io;
        CO_ASSERT_TRUE(co_await q.open(t.addr));
        auto p = t.params(host_a, allow_nqn);
        p.qid = 1;
        p.cntlid = s.admin.cntlid();
        p.sqsize = 1;
        CO_ASSERT_OK(co_await q.connect(p));
        auto write = [&](uint16_t cid) {
            auto w = make_cmd(nvme::io_opcode::write, 1);
            w.cid = cid;
            w.sgl.type = nvme::sgl_type::transport;
            w.sgl.length = 512;
            return capsule_pdu(q.writer(), w);
        };
        // Two writes wait for their data: the queue is full.
        for (uint16_t cid = 1; cid <= 2; ++cid) {
            CO_ASSERT_TRUE(co_await q.send_raw(write(cid)));
            auto r = co_await q.recv_pdu();
            CO_ASSERT_EQ(r.how, outcome::completed);
            CO_ASSERT_EQ(r.pdu.type, tcp::pdu_type::r2t);
        }
        // A third command breaks the queue's flow control.
        bytes third = write(3);
        CO_ASSERT_TRUE(co_await q.send_raw(third));
        co_await expect_term(q, fes::pdu_sequence_error, -1, third);
        co_await expect_still_serving(t);
    });
}

}  // namespace
}  // namespace weft::test
