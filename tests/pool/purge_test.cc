// Purge under crashes: the device stops taking writes at the n-th write of a
// purging delete (or unmap), for every n until the operation goes through,
// and the pool is then reopened from what the device holds, as after a
// power cut. Whatever n is, a volume's data is either still the volume's
// (the delete did not commit) or gone from the device: never on clusters
// that went back to the pool.
#include <algorithm>
#include <cstring>
#include <functional>

#include "bdev/error/error_bdev.h"
#include "pool_test_util.h"

namespace weft::pool::test {
namespace {

constexpr char marker[] = "WEFT-PURGE-TEST!";  // 16 bytes, repeated over the data
constexpr size_t marker_len = sizeof(marker) - 1;

// Fills [off, off + len) of `ch` with the marker.
task<int> put_marker(bdev::channel& ch, uint64_t off, uint64_t len) {
    buffer b = buffer_pool::local().get(len);
    for (uint64_t i = 0; i < len; ++i) b.data()[i] = std::byte(marker[i % marker_len]);
    iovec v{b.data(), len};
    int rc = co_await ch.write(off / 512, uint32_t(len / 512), std::span(&v, 1), false);
    if (rc == 0) rc = co_await ch.flush();
    co_return rc;
}

// How many marker copies [off, off + len) of `ch` holds (at 16-byte steps,
// as written), or an errno below 0.
task<long> markers_in(bdev::channel& ch, uint64_t off, uint64_t len) {
    constexpr uint64_t step = 1 << 20;  // within the buffer pool's sizes
    buffer b = buffer_pool::local().get(step);
    long n = 0;
    for (uint64_t at = off; at < off + len; at += step) {
        uint64_t l = std::min(step, off + len - at);
        iovec v{b.data(), l};
        int rc = co_await ch.read(at / 512, uint32_t(l / 512), std::span(&v, 1));
        if (rc != 0) co_return rc;
        for (uint64_t i = 0; i + marker_len <= l; i += marker_len)
            if (std::memcmp(b.data() + i, marker, marker_len) == 0) ++n;
    }
    co_return n;
}

task<long> markers_on_device(bdev::bdev& dev) {
    auto ch = dev.open_channel();
    co_return co_await markers_in(*ch, 0, dev.size_bytes());
}

// The volume `name` of `p` and how many markers it reads, or -1 when it is gone.
task<long> markers_in_volume(pool& p, const std::string& name, uint64_t bytes) {
    auto id = p.find(name);
    if (!id) co_return -1;
    auto vol = p.open_volume(*id).value();
    auto ch = vol->open_channel();
    co_return co_await markers_in(*ch, 0, bytes);
}

// One run of an operation with the device stopped at its n-th write (or
// flush): everything after fails, as after a power cut.
struct crash_point {
    std::shared_ptr<bdev::bdev> raw;  // the device itself: reopened and scanned after
    std::shared_ptr<bdev::fault_control> faults;
    std::shared_ptr<bdev::bdev> dev;  // what the pool runs on
    uint32_t n = 0;
    void arm() const {
        faults->inject(
            {.ops = bdev::fault_ops::write | bdev::fault_ops::flush, .err = EIO, .after = n});
    }
    bool struck() const { return faults->injected() != 0; }
    // The power is back: the pool as the device holds it.
    task<result<std::shared_ptr<pool>>> reopen() const {
        faults->clear();
        co_return co_await pool::open(raw);
    }
};

// Runs `step` for n = 0, 1, ... until the operation goes through with the
// device never stopped (`done`); returns how many runs it stopped.
int at_every_write(const std::function<task<void>(const crash_point&, bool& done)>& step) {
    for (uint32_t n = 0; n < 1000; ++n) {
        SCOPED_TRACE("device stopped at write " + std::to_string(n));
        crash_point c{make_dev(), std::make_shared<bdev::fault_control>(), nullptr, n};
        c.dev = bdev::make_error_bdev(c.raw, c.faults);
        bool done = false;
        run_reactors(1, [&]() -> task<void> { co_await step(c, done); });
        if (done) return int(n);
    }
    ADD_FAILURE() << "the operation never went through";
    return 0;
}

TEST(pool_purge, a_crash_at_any_write_of_a_purging_delete_frees_no_data) {
    constexpr uint64_t vol_bytes = 4 * small_cluster;
    int purges_failed = 0;
    int crashes = at_every_write([&](const crash_point& c, bool& done) -> task<void> {
        auto p = (co_await pool::create(c.dev, "p", small_opts())).value();
        // A thick volume and a thin one, each full of markers.
        auto thick = (co_await p->create_volume("thick", vol_bytes, false)).value();
        auto thin = (co_await p->create_volume("thin", vol_bytes, true)).value();
        for (auto id : {thick, thin}) {
            auto vol = p->open_volume(id).value();
            auto ch = vol->open_channel();
            CO_ASSERT_EQ(co_await put_marker(*ch, 0, vol_bytes), 0);
        }
        CO_ASSERT_EQ(co_await markers_on_device(*c.raw), long(2 * vol_bytes / marker_len));
        c.arm();
        std::string why;
        auto a = co_await p->delete_volume(thick, &why, true);
        auto b = a ? co_await p->delete_volume(thin, &why, true) : a;
        done = a && b && !c.struck();
        // A failed purge says the volume stays; a failed commit says why.
        if (why.find("not deleted") != std::string::npos) ++purges_failed;
        p.reset();
        auto q = co_await c.reopen();
        CO_ASSERT_TRUE(q);
        long on_device = co_await markers_on_device(*c.raw);
        long in_thick = co_await markers_in_volume(*q.value(), "thick", vol_bytes);
        long in_thin = co_await markers_in_volume(*q.value(), "thin", vol_bytes);
        EXPECT_GE(in_thick, -1);  // gone (-1), or read without an error
        EXPECT_GE(in_thin, -1);
        // Every marker on the device is one a volume still reads.
        EXPECT_EQ(on_device, std::max(in_thick, 0L) + std::max(in_thin, 0L));
        if (done) {
            EXPECT_EQ(on_device, 0);
        }
    });
    EXPECT_GT(crashes, 2);
    EXPECT_GT(purges_failed, 0);
}

TEST(pool_purge, a_crash_at_any_write_of_a_purging_unmap_frees_no_data) {
    constexpr uint64_t vol_bytes = 4 * small_cluster;
    int crashes = at_every_write([&](const crash_point& c, bool& done) -> task<void> {
        auto p = (co_await pool::create(c.dev, "p", small_opts())).value();
        p->set_purge(true);
        auto id = (co_await p->create_volume("v", vol_bytes, true)).value();
        auto vol = p->open_volume(id).value();
        auto ch = vol->open_channel();
        CO_ASSERT_EQ(co_await put_marker(*ch, 0, vol_bytes), 0);
        c.arm();
        // Clusters 1 and 2 go back to the pool.
        int rc = co_await ch->unmap(small_cluster / 512, 2 * small_cluster / 512);
        done = rc == 0 && !c.struck();
        ch.reset();
        vol.reset();
        p.reset();
        auto q = co_await c.reopen();
        CO_ASSERT_TRUE(q);
        long on_device = co_await markers_on_device(*c.raw);
        long in_v = co_await markers_in_volume(*q.value(), "v", vol_bytes);
        EXPECT_EQ(on_device, in_v);
        if (done) {
            EXPECT_EQ(on_device, long(2 * small_cluster / marker_len));
            EXPECT_EQ((co_await q.value()->stats()).used_clusters, 2u);
        }
    });
    EXPECT_GT(crashes, 1);
}

}  // namespace
}  // namespace weft::pool::test
