// Data path: many commands in flight of sizes from 512 B to 1 MiB (in-capsule
// and R2T writes, C2HData reads), with and without digests, over 2 I/O
// queues on 2 reactors; flush and FUA; write zeroes and deallocate;
// reconnect with commands in flight; the nvmf bdev.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "bdev/bdev.h"
#include "initiator/fixture.h"
#include "initiator/ns.h"
#include "initiator/nvmf_bdev.h"
#include "runtime/gate.h"
#include "runtime/reactor.h"
#include "runtime/runtime.h"
#include "runtime/uring_op.h"

namespace weft::test {
namespace {

using namespace std::chrono_literals;
using initiator::controller;
using initiator::ns;

constexpr uint32_t bs = 512;
constexpr uint32_t region_blocks = 2048;  // 1 MiB per command slot
// In-capsule (<= 8 KiB on weft's target) and R2T sizes, the largest MDTS.
constexpr uint32_t sizes[] = {512, 4096, 8192, 8704, 65536, 131072 + 512, 1u << 20};

struct io_counts {
    unsigned ok = 0, failed = 0, mismatched = 0;
};

// One write or read of command slot `i` of `first`: a distinct region each,
// the buffer split into two iovecs so the initiator slices them.
task<void> one_io(ns& d, uint64_t first, unsigned i, bool write, io_counts& n) {
    uint32_t len = sizes[i % std::size(sizes)];
    std::vector<std::byte> buf(len), want(len);
    fill(want, uint32_t(first + i));
    if (write) buf = want;
    size_t half = (len / 2) & ~size_t(511);
    iovec iov[2] = {{buf.data(), half}, {buf.data() + half, len - half}};
    uint64_t lba = first + uint64_t(i) * region_blocks;
    auto r = write ? co_await d.write(lba, len / bs, iov) : co_await d.read(lba, len / bs, iov);
    if (!r || !r->ok()) {
        ++n.failed;
        ADD_FAILURE() << (write ? "write " : "read ") << len
                      << " B: " << (r ? "status " + std::to_string(r->code) : r.err().message());
        co_return;
    }
    if (!write && buf != want) ++n.mismatched;
    ++n.ok;
}

// `count` writes at once, then `count` reads that check them.
task<io_counts> rw_burst(ns& d, uint64_t first, unsigned count) {
    io_counts n;
    for (bool write : {true, false}) {
        gate g;
        for (unsigned i = 0; i < count; ++i)
            reactor::local().spawn(g.hold(one_io(d, first, i, write, n)));
        co_await g.close();
    }
    co_return n;
}

// Not a lambda: a coroutine lambda called at once outlives its captures.
task<void> rw_into(ns& d, uint64_t first, unsigned count, io_counts& out) {
    out = co_await rw_burst(d, first, count);
}

// direct: large C2HData straight into the reads' buffers (the default), or
// all through the receive buffer.
void rw_on_two_reactors(bool digests, bool direct = true) {
    with_target([digests, direct](fixture& f) -> task<void> {
        auto o = f.options(host_a);
        o.io_queues = 2;
        o.reactors = {0, 1};
        o.queue_depth = 32;
        o.header_digest = o.data_digest = digests;
        if (!direct) o.direct_data_min = nvmf::tcp::direct_data_off;
        auto c = co_await controller::connect(o);
        CO_ASSERT_TRUE(c.ok());
        controller& ctrl = *c.value();
        CO_ASSERT_EQ(ctrl.io_queue_count(), 2u);
        CO_ASSERT_TRUE(ctrl.io(0) != nullptr);
        CO_ASSERT_TRUE(ctrl.io(1) != nullptr);
        EXPECT_EQ(ctrl.max_icd(), 8192u);
        ns d(ctrl, 1);
        EXPECT_EQ(d.block_size(), bs);
        EXPECT_EQ(d.num_blocks(), ns1_blocks);
        // QD 32 on each reactor at once, in different halves of the disk.
        constexpr unsigned per_reactor = 32;
        gate g;
        io_counts n0;
        reactor::local().spawn(g.hold(rw_into(d, 0, per_reactor, n0)));
        io_counts n1 = co_await on(1, [&]() { return rw_burst(d, ns1_blocks / 2, per_reactor); });
        co_await g.close();
        EXPECT_EQ(n0.ok, 2 * per_reactor);
        EXPECT_EQ(n1.ok, 2 * per_reactor);
        EXPECT_EQ(n0.mismatched + n1.mismatched, 0u);
        // Commands of one pass share a sendmsg: far fewer sends than PDUs.
        EXPECT_LT(ctrl.io(0)->stats().sends, ctrl.io(0)->stats().submitted * 2);
        // 1 MiB reads come in C2HData larger than the receive buffer.
        for (unsigned q = 0; q < 2; ++q) {
            if (direct)
                EXPECT_GT(ctrl.io(q)->stats().direct_data, 0u) << "queue " << q;
            else
                EXPECT_EQ(ctrl.io(q)->stats().direct_data, 0u) << "queue " << q;
        }
        co_await ctrl.disconnect();
    });
}

TEST(initiator_io, read_write_qd32_two_reactors) {
    rw_on_two_reactors(false);
}

TEST(initiator_io, read_write_qd32_with_digests) {
    rw_on_two_reactors(true);
}

TEST(initiator_io, read_write_qd32_with_digests_through_the_receive_buffer) {
    rw_on_two_reactors(true, false);
}

TEST(initiator_io, flush_fua_zeroes_deallocate) {
    with_target([](fixture& f) -> task<void> {
        auto c = co_await controller::connect(f.options(host_a));
        CO_ASSERT_TRUE(c.ok());
        ns d(*c.value(), 1);
        std::vector<std::byte> buf(8 * bs), back(8 * bs);
        fill(buf, 7);
        iovec w{buf.data(), buf.size()}, r{back.data(), back.size()};
        auto st = co_await d.write(100, 8, {&w, 1}, /*fua=*/true);
        CO_ASSERT_TRUE(st && st->ok());
        st = co_await d.flush();
        CO_ASSERT_TRUE(st && st->ok());
        st = co_await d.read(100, 8, {&r, 1});
        CO_ASSERT_TRUE(st && st->ok());
        EXPECT_EQ(buf, back);
        // Zeroes over the first 4 blocks, deallocate the last 4.
        st = co_await d.write_zeroes(100, 4);
        CO_ASSERT_TRUE(st && st->ok());
        st = co_await d.deallocate(104, 4);
        CO_ASSERT_TRUE(st && st->ok());
        st = co_await d.read(100, 8, {&r, 1});
        CO_ASSERT_TRUE(st && st->ok());
        EXPECT_EQ(back, std::vector<std::byte>(8 * bs));
        // Beyond the end: a command status, not a transport error.
        st = co_await d.read(ns1_blocks - 1, 2, {&r, 1});
        CO_ASSERT_TRUE(st.ok());
        EXPECT_EQ(*st, nvme::sc::lba_out_of_range);
        co_await c.value()->disconnect();
    });
}

TEST(initiator_io, reconnect_resubmits_commands_in_flight) {
    with_target([](fixture& f) -> task<void> {
        auto o = f.options(host_a);
        o.reconnect_attempts = 20;
        o.reconnect_delay = 20ms;
        auto c = co_await controller::connect(o);
        CO_ASSERT_TRUE(c.ok());
        controller& ctrl = *c.value();
        ns d(ctrl, 1);
        constexpr unsigned count = 32;
        // Writes in flight when the connection drops: none may be lost.
        io_counts n;
        gate g;
        for (unsigned i = 0; i < count; ++i)
            reactor::local().spawn(g.hold(one_io(d, 0, i, true, n)));
        co_await yield{};
        co_await yield{};
        ctrl.io(0)->drop_connection();
        co_await g.close();
        EXPECT_EQ(n.ok, count);
        EXPECT_EQ(n.failed, 0u);
        EXPECT_GE(ctrl.io(0)->stats().reconnects, 1u);
        EXPECT_GT(ctrl.io(0)->stats().resubmitted, 0u);
        // Reads in flight across a second drop, then every write checked.
        io_counts m;
        gate g2;
        for (unsigned i = 0; i < count; ++i)
            reactor::local().spawn(g2.hold(one_io(d, 0, i, false, m)));
        co_await yield{};
        ctrl.io(0)->drop_connection();
        co_await g2.close();
        EXPECT_EQ(m.ok, count);
        EXPECT_EQ(m.mismatched, 0u);
        EXPECT_GE(ctrl.io(0)->stats().reconnects, 2u);
        co_await ctrl.disconnect();
    });
}

TEST(initiator_io, reconnect_gives_up_with_a_clear_error) {
    with_target([](fixture& f) -> task<void> {
        auto o = f.options(host_a);
        o.reconnect_attempts = 2;
        o.reconnect_delay = 10ms;
        auto c = co_await controller::connect(o);
        CO_ASSERT_TRUE(c.ok());
        controller& ctrl = *c.value();
        ns d(ctrl, 1);
        // The host is no longer allowed: reconnects are refused.
        f.ss->allow_any_host(false);
        f.ss->set_access(false, {});
        std::vector<std::byte> buf(4096);
        iovec iov{buf.data(), buf.size()};
        ctrl.io(0)->drop_connection();
        auto st = co_await d.read(0, 8, {&iov, 1});
        CO_ASSERT_TRUE(!st.ok());
        EXPECT_EQ(st.err().code, ENOTCONN);
        EXPECT_EQ(ctrl.io(0)->current_state(), initiator::queue::state::failed);
        co_await ctrl.disconnect();
    });
}

TEST(initiator_io, nvmf_bdev_round_trip) {
    with_target([](fixture& f) -> task<void> {
        auto o = f.options(host_a);
        o.io_queues = 2;
        o.reactors = {0, 1};
        auto c = co_await controller::connect(o);
        CO_ASSERT_TRUE(c.ok());
        auto dev = initiator::make_nvmf_bdev("remote", *c.value(), 1);
        CO_ASSERT_TRUE(dev != nullptr);
        EXPECT_EQ(dev->block_size(), bs);
        EXPECT_EQ(dev->num_blocks(), ns1_blocks);
        // 3 MiB: more than MDTS, split into several commands.
        for (unsigned r : {0u, 1u}) {
            int rc = co_await on(r, [&]() -> task<int> {
                auto ch = dev->open_channel();
                std::vector<std::byte> buf(3u << 20), back(3u << 20);
                fill(buf, r + 40);
                iovec w{buf.data(), buf.size()}, rd{back.data(), back.size()};
                uint32_t n = uint32_t(buf.size() / bs);
                uint64_t lba = 8192 + r * n;
                if (int e = co_await ch->write(lba, n, {&w, 1}, false)) co_return e;
                if (int e = co_await ch->flush()) co_return e;
                if (int e = co_await ch->read(lba, n, {&rd, 1})) co_return e;
                if (buf != back) co_return -EILSEQ;
                if (int e = co_await ch->unmap(lba, 8)) co_return e;
                iovec one{back.data(), bs};
                co_return co_await ch->read(ns1_blocks, 1, {&one, 1});  // out of range
            });
            EXPECT_EQ(rc, -ERANGE) << "reactor " << r;
        }
        co_await c.value()->disconnect();
    });
}

// Not a benchmark (debug builds, shared cores): prints figures for a feel
// of the loopback path, and checks only that every command succeeded.
task<void> loop_io(ns& d, bool write, uint32_t len, unsigned slot,
                   std::chrono::steady_clock::time_point end, uint64_t& done, bool& ok) {
    std::vector<std::byte> buf(len);
    iovec iov{buf.data(), len};
    uint64_t lba = uint64_t(slot) * region_blocks;
    while (std::chrono::steady_clock::now() < end) {
        auto r = write ? co_await d.write(lba, len / bs, {&iov, 1})
                       : co_await d.read(lba, len / bs, {&iov, 1});
        if (!r || !r->ok()) ok = false;
        ++done;
    }
}

TEST(initiator_io, loopback_figures) {
    with_target([](fixture& f) -> task<void> {
        auto c = co_await controller::connect(f.options(host_a));
        CO_ASSERT_TRUE(c.ok());
        ns d(*c.value(), 1);
        struct run {
            const char* name;
            bool write;
            uint32_t len;
        };
        for (run r :
             {run{"4 KiB read", false, 4096}, run{"4 KiB write", true, 4096},
              run{"128 KiB read", false, 128 << 10}, run{"128 KiB write", true, 128 << 10}}) {
            uint64_t done = 0;
            bool ok = true;
            auto t0 = std::chrono::steady_clock::now();
            auto end = t0 + 300ms;
            gate g;
            for (unsigned i = 0; i < 32; ++i)
                reactor::local().spawn(g.hold(loop_io(d, r.write, r.len, i, end, done, ok)));
            co_await g.close();
            double secs =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            std::printf("initiator loopback QD32 %-14s %8.0f IOPS %8.1f MiB/s\n", r.name,
                        done / secs, done * double(r.len) / secs / (1 << 20));
            EXPECT_TRUE(ok) << r.name;
        }
        co_await c.value()->disconnect();
    });
}

}  // namespace
}  // namespace weft::test
