// The NVM command set over a real I/O queue: data in the capsule and by
// R2T/H2CData, with and without digests; Flush, Write Zeroes, Dataset
// Management, Compare; and the errors a command can end with.
#include <array>
#include <cstring>

#include "target/target_env.h"

namespace weft::test {
namespace {

using namespace std::chrono_literals;
namespace sc = nvme::sc;
using nvme::io_opcode;

// An NVM command on `nsid` for blocks [slba, slba + nlb).
nvme::command rw_cmd(io_opcode op, uint32_t nsid, uint64_t slba, uint32_t nlb) {
    auto c = make_cmd(op, nsid);
    c.cdw10 = uint32_t(slba);
    c.cdw11 = uint32_t(slba >> 32);
    c.cdw12 = nlb - 1;
    return c;
}

struct dsm_range {
    uint32_t cattr;
    uint32_t nlb;
    uint64_t slba;
};
static_assert(sizeof(dsm_range) == 16);

struct digests {
    bool header, data;
};

// Writes `n` bytes at `slba` of namespace 1 by `how` and reads them back.
task<void> write_read_back(session& s, uint64_t slba, size_t n, xfer how, unsigned seed) {
    bytes out = pattern(n, seed), in(n);
    uint32_t nlb = uint32_t(n / block_size);
    auto w = co_await s.io.write(1, slba, nlb, out, how);
    CO_ASSERT_OK(w);
    auto r = co_await s.io.read(1, slba, nlb, in);
    CO_ASSERT_OK(r);
    EXPECT_TRUE(in == out) << n << " bytes at LBA " << slba << " do not read back";
}

TEST(target_io, in_capsule_write_reads_back) {
    run_with_target([](target_env& t) -> task<void> {
        const std::array<digests, 4> all{digests{false, false}, digests{true, false},
                                         digests{false, true}, digests{true, true}};
        unsigned seed = 1;
        for (digests d : all) {
            session s;
            link_options opt{.hdgst = d.header, .ddgst = d.data};
            auto p = t.params(host_a, allow_nqn);
            CO_ASSERT_TRUE(co_await open_session(s, t.addr, p, true, opt));
            co_await write_read_back(s, 16 * seed, 4096, xfer::in_capsule, seed);
            EXPECT_EQ(s.io.stats().r2t, 0u) << "in-capsule data needs no R2T";
            EXPECT_GE(s.io.stats().c2h_data, 1u);
            ++seed;
        }
    });
}

TEST(target_io, r2t_write_larger_than_maxh2cdata_reads_back) {
    run_with_target([](target_env& t) -> task<void> {
        const std::array<digests, 3> all{digests{false, false}, digests{true, true},
                                         digests{false, true}};
        unsigned seed = 10;
        for (digests d : all) {
            session s;
            link_options opt{.hdgst = d.header, .ddgst = d.data};
            CO_ASSERT_TRUE(
                co_await open_session(s, t.addr, t.params(host_a, allow_nqn), true, opt));
            size_t n = 256 * 1024;
            CO_ASSERT_TRUE(n > s.io.maxh2cdata());
            co_await write_read_back(s, 1024, n, xfer::r2t, seed++);
            EXPECT_GE(s.io.stats().h2c_data, n / s.io.maxh2cdata());
            EXPECT_GE(s.io.stats().r2t, 1u);
            // A small write by R2T too (the host may choose R2T for any size).
            co_await write_read_back(s, 2000, 512, xfer::r2t, seed++);
        }
    });
}

TEST(target_io, small_maxh2cdata_and_several_r2ts_outstanding) {
    env_options o;
    o.tcp.max_h2c_data = 8192;
    run_with_target(
        [](target_env& t) -> task<void> {
            session s;
            link_options opt{.hdgst = true, .ddgst = true, .maxr2t = 3};
            CO_ASSERT_TRUE(
                co_await open_session(s, t.addr, t.params(host_a, allow_nqn), true, opt));
            EXPECT_EQ(s.io.maxh2cdata(), 8192u);
            co_await write_read_back(s, 300, 64 * 1024, xfer::r2t, 3);
            EXPECT_EQ(s.io.stats().h2c_data, 8u) << "64 KiB in 8 KiB H2CData PDUs";
            // A write just above in-capsule size goes by R2T by default.
            co_await write_read_back(s, 600, 12 * 1024, xfer::automatic, 4);
        },
        o);
}

TEST(target_io, c2h_data_honours_hpda) {
    run_with_target([](target_env& t) -> task<void> {
        // HPDA 3: PDU data at multiples of 16 bytes (the host's reader
        // refuses C2HData whose PDO is not).
        session s;
        link_options opt{.hdgst = true, .hpda = 3};
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn), true, opt));
        co_await write_read_back(s, 900, 4096, xfer::automatic, 15);
        EXPECT_GE(s.io.stats().c2h_data, 1u);
        bytes id(4096);
        CO_EXPECT_OK(co_await s.admin.identify(nvme::cns::controller, 0, id));
    });
}

TEST(target_io, one_mib_read_and_beyond_mdts) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
        size_t mdts = t.tgt.limits().max_transfer;
        co_await write_read_back(s, 0, mdts, xfer::r2t, 5);
        bytes big(mdts * 2);
        auto r = co_await s.io.read(1, 0, uint32_t(big.size() / block_size), big);
        EXPECT_TRUE(r.completed()) << r;
        EXPECT_FALSE(r.status().ok()) << "a transfer over MDTS: " << r;
    });
}

TEST(target_io, several_commands_outstanding) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
        std::array<bytes, 8> out, in;
        std::array<int, 8> cids{};
        for (size_t i = 0; i < out.size(); ++i) {
            out[i] = pattern(16 * 1024, unsigned(100 + i));
            auto c = rw_cmd(io_opcode::write, 1, 64 * i, 32);
            // All by R2T: the target interleaves the R2Ts of several commands.
            cids[i] = co_await s.io.submit(c, {.out = out[i], .how = xfer::r2t});
            CO_ASSERT_TRUE(cids[i] >= 0);
        }
        for (int cid : cids) CO_EXPECT_OK(co_await s.io.wait(cid));
        for (size_t i = 0; i < in.size(); ++i) {
            in[i].resize(16 * 1024);
            cids[i] = co_await s.io.submit(rw_cmd(io_opcode::read, 1, 64 * i, 32), {.in = in[i]});
            CO_ASSERT_TRUE(cids[i] >= 0);
        }
        for (size_t i = 0; i < in.size(); ++i) {
            CO_EXPECT_OK(co_await s.io.wait(cids[i]));
            EXPECT_TRUE(in[i] == out[i]) << "command " << i;
        }
    });
}

TEST(target_io, fua_write_and_flush) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
        bytes out = pattern(2048, 7), in(2048);
        CO_ASSERT_OK(co_await s.io.write(1, 40, 4, out, xfer::automatic, /*fua=*/true));
        CO_ASSERT_OK(co_await s.io.read(1, 40, 4, in));
        EXPECT_TRUE(in == out);
        CO_EXPECT_OK(co_await s.io.exec(make_cmd(io_opcode::flush, 1)));
        CO_EXPECT_OK(co_await s.io.exec(make_cmd(io_opcode::flush, 2)));
        CO_EXPECT_OK(co_await s.io.exec(make_cmd(io_opcode::flush, 0xffffffff)));
        EXPECT_STATUS(co_await s.io.exec(make_cmd(io_opcode::flush, 9)), sc::invalid_namespace);
    });
}

TEST(target_io, write_zeroes) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
        bytes out = pattern(16 * 512, 8), in(16 * 512);
        CO_ASSERT_OK(co_await s.io.write(1, 200, 16, out));
        // Blocks 204..211 zeroed; 200..203 and 212..215 keep their data.
        CO_ASSERT_OK(co_await s.io.exec(rw_cmd(io_opcode::write_zeroes, 1, 204, 8)));
        CO_ASSERT_OK(co_await s.io.read(1, 200, 16, in));
        EXPECT_TRUE(all_zero(std::span(in).subspan(4 * 512, 8 * 512)));
        EXPECT_EQ(std::memcmp(in.data(), out.data(), 4 * 512), 0);
        EXPECT_EQ(std::memcmp(in.data() + 12 * 512, out.data() + 12 * 512, 4 * 512), 0);
        // With DEAC (deallocate), the same.
        CO_ASSERT_OK(co_await s.io.write(1, 200, 16, out));
        auto c = rw_cmd(io_opcode::write_zeroes, 1, 200, 16);
        c.cdw12 |= 1u << 25;
        CO_ASSERT_OK(co_await s.io.exec(c));
        CO_ASSERT_OK(co_await s.io.read(1, 200, 16, in));
        EXPECT_TRUE(all_zero(in));
        EXPECT_STATUS(co_await s.io.exec(rw_cmd(io_opcode::write_zeroes, 1, ns1_blocks - 4, 8)),
                      sc::lba_out_of_range);
    });
}

TEST(target_io, dataset_management_deallocate_reads_zeroes) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
        bytes out = pattern(32 * 512, 9), in(32 * 512);
        CO_ASSERT_OK(co_await s.io.write(1, 500, 32, out));
        std::array<dsm_range, 2> ranges{dsm_range{0, 4, 502}, dsm_range{0, 8, 520}};
        auto dsm = make_cmd(io_opcode::dataset_management, 1);
        dsm.cdw10 = uint32_t(ranges.size() - 1);  // NR, 0's based
        // Attributes alone (no AD) are hints: nothing changes.
        CO_ASSERT_OK(co_await s.io.exec(dsm, {.out = std::as_bytes(std::span(ranges))}));
        CO_ASSERT_OK(co_await s.io.read(1, 500, 32, in));
        EXPECT_TRUE(in == out);
        dsm.cdw11 = 1u << 2;  // AD: deallocate
        CO_ASSERT_OK(co_await s.io.exec(dsm, {.out = std::as_bytes(std::span(ranges))}));
        CO_ASSERT_OK(co_await s.io.read(1, 500, 32, in));
        for (size_t b = 0; b < 32; ++b) {
            uint64_t lba = 500 + b;
            bool gone = (lba >= 502 && lba < 506) || (lba >= 520 && lba < 528);
            auto blk = std::span(in).subspan(b * 512, 512);
            if (gone) {
                EXPECT_TRUE(all_zero(blk)) << "LBA " << lba << " deallocated";
            } else {
                EXPECT_EQ(std::memcmp(blk.data(), out.data() + b * 512, 512), 0) << "LBA " << lba;
            }
        }
        // A range beyond the namespace.
        std::array<dsm_range, 1> bad{dsm_range{0, 16, ns1_blocks - 8}};
        dsm.cdw10 = 0;
        EXPECT_STATUS(co_await s.io.exec(dsm, {.out = std::as_bytes(std::span(bad))}),
                      sc::lba_out_of_range);
    });
}

TEST(target_io, compare_match_and_mismatch) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
        bytes out = pattern(4096, 11);
        CO_ASSERT_OK(co_await s.io.write(1, 700, 8, out));
        auto cmp = rw_cmd(io_opcode::compare, 1, 700, 8);
        CO_EXPECT_OK(co_await s.io.exec(cmp, {.out = out}));
        bytes other = out;
        other[4095] ^= std::byte{1};
        auto r = co_await s.io.exec(cmp, {.out = other});
        EXPECT_STATUS(r, sc::compare_failure);
        EXPECT_EQ(r.status().type, nvme::sct::media);
        EXPECT_EQ(r.status().code, 0x85);
        // By R2T as well.
        CO_EXPECT_OK(co_await s.io.exec(cmp, {.out = out, .how = xfer::r2t}));
        EXPECT_STATUS(
            co_await s.io.exec(rw_cmd(io_opcode::compare, 1, ns1_blocks - 1, 8), {.out = out}),
            sc::lba_out_of_range);
    });
}

TEST(target_io, lba_out_of_range) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
        bytes buf(1024);
        auto r = co_await s.io.read(1, ns1_blocks - 1, 2, buf);
        EXPECT_STATUS(r, sc::lba_out_of_range);
        EXPECT_EQ(r.status().code, 0x80);
        EXPECT_STATUS(co_await s.io.write(1, ns1_blocks, 2, buf), sc::lba_out_of_range);
        EXPECT_STATUS(co_await s.io.read(2, ns2_blocks, 2, buf), sc::lba_out_of_range);
        EXPECT_STATUS(co_await s.io.read(1, uint64_t(1) << 40, 2, buf), sc::lba_out_of_range);
        // The last blocks are in range.
        CO_EXPECT_OK(co_await s.io.read(1, ns1_blocks - 2, 2, buf));
    });
}

TEST(target_io, invalid_namespace) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
        bytes buf(512);
        auto r = co_await s.io.read(9, 0, 1, buf);
        EXPECT_STATUS(r, sc::invalid_namespace);
        EXPECT_EQ(r.status().code, 0x0b);
        EXPECT_STATUS(co_await s.io.read(0, 0, 1, buf), sc::invalid_namespace);
        EXPECT_STATUS(co_await s.io.write(0xffffffff, 0, 1, buf), sc::invalid_namespace);
        EXPECT_STATUS(co_await s.io.exec(rw_cmd(io_opcode::write_zeroes, 3, 0, 1)),
                      sc::invalid_namespace);
    });
}

TEST(target_io, sgl_length_and_descriptor_errors) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
        // Read of 8 blocks (4 KiB) into a 2 KiB SGL.
        bytes half(2048);
        auto r = co_await s.io.read(1, 0, 8, half);
        EXPECT_STATUS(r, sc::sgl_data_length_invalid);
        EXPECT_EQ(r.status().code, 0x0f);
        // Write of 8 blocks with 2 KiB by R2T, and in the capsule.
        EXPECT_STATUS(co_await s.io.write(1, 0, 8, half, xfer::r2t), sc::sgl_data_length_invalid);
        EXPECT_STATUS(co_await s.io.write(1, 0, 8, half, xfer::in_capsule),
                      sc::sgl_data_length_invalid);
        // In-capsule data whose SGL says another length, offset, or type.
        bytes data = pattern(4096, 12);
        auto w = rw_cmd(io_opcode::write, 1, 0, 8);
        w.sgl = {};
        w.sgl.type = nvme::sgl_type::in_capsule;
        w.sgl.length = 2048;
        EXPECT_STATUS(co_await s.io.exec(w, {.out = data, .raw_sgl = true}),
                      sc::sgl_data_length_invalid);
        w.sgl.length = 4096;
        w.sgl.address = 512;
        EXPECT_STATUS(co_await s.io.exec(w, {.out = data, .raw_sgl = true}),
                      sc::sgl_offset_invalid);
        w.sgl.address = 0;
        w.sgl.type = nvme::sgl_type::transport;
        EXPECT_STATUS(co_await s.io.exec(w, {.out = data, .raw_sgl = true}),
                      sc::sgl_descriptor_type_invalid);
        // The queue is fine afterwards.
        co_await write_read_back(s, 0, 4096, xfer::automatic, 13);
    });
}

TEST(target_io, unimplemented_opcodes) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
        EXPECT_STATUS(co_await s.io.exec(rw_cmd(io_opcode::write_uncorrectable, 1, 0, 1)),
                      sc::invalid_opcode);
        EXPECT_STATUS(co_await s.io.exec(make_cmd(uint8_t(0x90), 1)), sc::invalid_opcode);
        // Admin-only fabrics commands on an I/O queue.
        auto pg = make_cmd(io_opcode::fabrics);
        pg.nsid = uint8_t(nvme::fabrics_type::property_get);
        EXPECT_STATUS(co_await s.io.exec(pg), sc::invalid_opcode);
        bytes buf(512);
        CO_EXPECT_OK(co_await s.io.read(1, 0, 1, buf));
    });
}

TEST(target_io, disabled_controller_refuses_io) {
    run_with_target([](target_env& t) -> task<void> {
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
        CO_ASSERT_OK(co_await s.admin.property_set(nvme::reg::cc, 0));
        bytes buf(512);
        EXPECT_STATUS(co_await s.io.read(1, 0, 1, buf), sc::command_sequence_error);
    });
}

TEST(target_io, sq_flow_control_disabled_reads_end_with_c2h_success) {
    run_with_target([](target_env& t) -> task<void> {
        // Queue 1 with SQ flow control on, queue 2 with it off.
        session s;
        CO_ASSERT_TRUE(co_await open_session(s, t.addr, t.params(host_a, allow_nqn)));
        host_queue q2;
        CO_ASSERT_TRUE(co_await q2.open(t.addr));
        auto p = t.params(host_a, allow_nqn);
        p.qid = 2;
        p.cntlid = s.admin.cntlid();
        p.cattr = 1u << 2;
        CO_ASSERT_OK(co_await q2.connect(p));
        bytes out = pattern(4096, 14), in(4096);
        CO_ASSERT_OK(co_await s.io.write(1, 800, 8, out));
        auto r = co_await s.io.read(1, 800, 8, in);
        CO_ASSERT_OK(r);
        EXPECT_NE(r.cpl.sqhd, 0xffff);
        EXPECT_EQ(r.detail, "") << "a CapsuleResp, not the SUCCESS flag";
        std::fill(in.begin(), in.end(), std::byte{0});
        r = co_await q2.read(1, 800, 8, in);
        CO_ASSERT_OK(r);
        EXPECT_EQ(r.detail, "SUCCESS flag");
        EXPECT_EQ(q2.stats().capsule_resp, 1u) << "only the Connect's";
        EXPECT_TRUE(in == out);
        // A failed read still gets its CapsuleResp, with SQHD FFFFh.
        r = co_await q2.read(1, ns1_blocks, 8, in);
        EXPECT_STATUS(r, sc::lba_out_of_range);
        EXPECT_EQ(r.cpl.sqhd, 0xffff);
    });
}

}  // namespace
}  // namespace weft::test
