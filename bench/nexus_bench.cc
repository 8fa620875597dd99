// weft-nexus-bench: what the nexus (src/nexus/nexus.h) costs, as ratios to a
// baseline measured side by side in the same run (never pass/fail).
//
// Everything runs in this process on one runtime of --reactors reactors: a
// pool of thick volumes on a malloc bdev (the device costs ~nothing, so a
// ratio shows the layer's own cost), an NVMe/TCP target on 127.0.0.1 for the
// "remote" children, and the nexuses, all at home on reactor 0, where the I/O
// generator runs too (QD workers of 4 KiB random I/O over the whole device).
//
//   case 1  one local child vs the bare volume: `bare` is I/O straight to
//           volume A; `nexus-1` a nexus whose only child is volume B (same
//           size + 1 MiB for the nexus label and bitmap). With --file PATH
//           the same pair again on a pool on an O_DIRECT file (a real disk).
//   case 2  three children (the local one + two over loopback NVMe/TCP) vs
//           nexus-1: randwrite IOPS and latency (mean and p99 of sampled
//           I/Os), randread IOPS (reads go to the local child). The target
//           serves two more volumes as two subsystems; its connections land
//           on the reactors round robin (tcp_server), the initiator has one
//           I/O queue per reactor (nexus::make_nvmf_child).
//   case 3  rebuild rate: a plain copy of a filled source volume to another
//           volume (1 MiB read + write at QD 1, the pattern of the rebuild's
//           copy_range) vs the nexus rebuilding a newly added child from the
//           same source (add_child, then status() until it is online;
//           rebuild_rate 0 = unlimited). Bytes/s of each, from the call to
//           the end (flush included).
//   case 4  application I/O during a rebuild throttled to --rebuild-rate:
//           a 2-child nexus with both children in sync (idle) vs another
//           2-child nexus whose second child is being rebuilt (a fresh full
//           rebuild starts before each timed case and is removed after it),
//           plus the rate the rebuild achieved meanwhile.
//
// Machines are shared and noisy: the timed cases run in --rounds interleaved
// rounds (every case once per round), each after --warmup seconds of the
// same load; tables show medians and the min..max of the per-round ratio,
// and each timed case records every reactor thread's CPU time (a reactor
// below ~100% while the load is CPU-bound was waiting or preempted).
// Every volume is written in full once at setup (creating a thick volume
// deallocates its clusters, and first touches are page faults).
// The nexuses keep the engine's default options: bits of the write-intent
// bitmap are cleared after 5 s without writes to their region, and the
// first write to a region then waits for its bit to reach every child. So
// that the timed write cases show the steady state, each is preceded by a
// QD 1 pass that writes the whole device (--no-pretouch: the warm-up and
// the first part of the interval pay for the bits instead).
#include <fmt/core.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bdev/bdev.h"
#include "latency.h"
#include "nexus/child_uri.h"
#include "nexus/nexus.h"
#include "nexus/nvmf_child.h"
#include "nvmf/target.h"
#include "nvmf/tcp_server.h"
#include "pool/async_lock.h"
#include "pool/pool.h"
#include "runtime/buffer_pool.h"
#include "runtime/gate.h"
#include "runtime/net.h"
#include "runtime/runtime.h"
#include "runtime/uring_op.h"

namespace {

using namespace weft;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr uint64_t MiB = 1ull << 20;
constexpr const char* hostnqn =
    "nqn.2014-08.org.nvmexpress:uuid:be0c0000-0000-4000-8000-00000000e0e1";
constexpr const char* nqn_prefix = "nqn.2026-11.io.weft:nexus-bench-r";

struct bench_options {
    double secs = 1;
    double warmup = 0.2;
    unsigned rounds = 5;
    unsigned qd = 32;
    unsigned reactors = 2;
    int cpu = 0;
    uint64_t size_mib = 256;
    uint64_t rebuild_mib = 256;
    uint64_t rebuild_rate_mib = 64;
    unsigned cluster_kib = 1024;
    unsigned sample_every = 16;
    std::string file;
    std::string cases = "1,2,3,4";
    std::string placement = "remote";
    bool verbose = false;
    bool pretouch = true;
    bool show_rounds = false;
    unsigned lat_qd = 1;
    // Filled at start: each reactor thread's CPU clock (per-case utilisation).
    std::vector<clockid_t> clocks;
    bool want(char c) const { return cases.find(c) != std::string::npos; }
};

// ---- load generator -------------------------------------------------------------

struct figures {
    double iops = 0;
    double seconds = 0;
    uint64_t ops = 0;
    uint64_t errors = 0;
    int first_error = 0;
    double mean_us = 0, p99_us = 0;  // of the sampled I/Os
    std::vector<double> cpu;         // per reactor, busy fraction of the interval
};

double clock_seconds(clockid_t c) {
    timespec ts{};
    clock_gettime(c, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// One timed case on the calling reactor. Lives in the driver's frame; the
// workers get a pointer (never a lambda capture: GCC 12 loses those).
struct load_run {
    bdev::bdev* dev = nullptr;
    bool write = false;
    unsigned qd = 32;
    unsigned sample_every = 16;
    double warmup = 0.3, secs = 1;
    uint64_t slots = 0;  // 4 KiB slots of the device
    uint32_t nblocks = 8;
    // Called on the driving reactor when the measured interval starts / ends.
    std::function<void()> at_start, at_end;
    const std::vector<clockid_t>* clocks = nullptr;

    enum class phase { warmup, measure, done } ph = phase::warmup;
    uint64_t ops = 0, errors = 0;
    int first_error = 0;
    unsigned running = 0;
    std::coroutine_handle<> drained;
    std::vector<uint32_t> lat_ns;
};

task<void> load_worker(load_run* r, bdev::channel* ch, unsigned seed) {
    buffer b = buffer_pool::local().get(4096);
    std::memset(b.data(), int(seed & 0xff), 4096);
    iovec iov{b.data(), 4096};
    std::span<const iovec> v(&iov, 1);
    uint64_t rng = 0x9e3779b97f4a7c15ull * (seed + 1);
    unsigned n = 0;
    while (r->ph != load_run::phase::done) {
        // Synchronous completions (malloc) would otherwise never let the
        // reactor reap the driver's timer.
        if ((++n & 31) == 0) {
            co_await yield{};
            if (r->ph == load_run::phase::done) break;
        }
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;  // xorshift64
        uint64_t lba = (rng % r->slots) * r->nblocks;
        bool sample = r->ph == load_run::phase::measure && n % r->sample_every == 0;
        clock_type::time_point t0;
        if (sample) t0 = clock_type::now();
        int rc = r->write ? co_await ch->write(lba, r->nblocks, v, false)
                          : co_await ch->read(lba, r->nblocks, v);
        if (rc != 0) {
            // A failed device fails every I/O at once: stop rather than spin.
            if (r->errors++ == 0) r->first_error = -rc;
            break;
        }
        if (r->ph == load_run::phase::measure) {
            ++r->ops;
            if (sample) {
                auto ns =
                    std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0);
                r->lat_ns.push_back(uint32_t(std::min<int64_t>(ns.count(), UINT32_MAX)));
            }
        }
    }
    if (--r->running == 0 && r->drained) reactor::local().schedule(r->drained);
}

using weft::bench::percentile_us;

// Runs `r` on the calling reactor: QD workers, warm-up, measured interval.
task<figures> drive(load_run* r) {
    auto ch = r->dev->open_channel();
    r->nblocks = 4096 / r->dev->block_size();
    r->slots = r->dev->num_blocks() / r->nblocks;
    r->lat_ns.reserve(1u << 16);
    r->running = r->qd;
    for (unsigned i = 0; i < r->qd; ++i) reactor::local().spawn(load_worker(r, ch.get(), i + 1));
    (void)co_await sleep(std::chrono::duration<double>(r->warmup));
    r->ph = load_run::phase::measure;
    auto t0 = clock_type::now();
    std::vector<double> c0, c1;
    for (clockid_t c : *r->clocks) c0.push_back(clock_seconds(c));
    if (r->at_start) r->at_start();
    (void)co_await sleep(std::chrono::duration<double>(r->secs));
    r->ph = load_run::phase::done;
    auto t1 = clock_type::now();
    for (clockid_t c : *r->clocks) c1.push_back(clock_seconds(c));
    if (r->at_end) r->at_end();
    struct drain_awaiter {
        load_run* r;
        bool await_ready() const { return r->running == 0; }
        void await_suspend(std::coroutine_handle<> h) { r->drained = h; }
        void await_resume() const {}
    };
    co_await drain_awaiter{r};
    ch.reset();
    figures f;
    f.seconds = std::chrono::duration<double>(t1 - t0).count();
    f.ops = r->ops;
    f.iops = double(r->ops) / f.seconds;
    f.errors = r->errors;
    f.first_error = r->first_error;
    for (size_t i = 0; i < c0.size(); ++i) f.cpu.push_back((c1[i] - c0[i]) / f.seconds);
    if (!r->lat_ns.empty()) {
        double sum = 0;
        for (uint32_t x : r->lat_ns) sum += x;
        f.mean_us = sum / double(r->lat_ns.size()) / 1000.0;
        f.p99_us = percentile_us(r->lat_ns, 0.99);
    }
    co_return f;
}

task<figures> run_load(bdev::bdev* dev, bool write, const bench_options* o,
                       std::function<void()> at_start = {}, std::function<void()> at_end = {},
                       unsigned qd = 0) {
    load_run r;
    r.dev = dev;
    r.write = write;
    r.qd = qd ? qd : o->qd;
    r.sample_every = o->sample_every;
    r.warmup = o->warmup;
    r.secs = o->secs;
    r.at_start = std::move(at_start);
    r.at_end = std::move(at_end);
    r.clocks = &o->clocks;
    co_return co_await drive(&r);
}

// Writes `pattern` over [lba, lba + nblocks) in 1 MiB writes, `qd` at a time.
task<int> fill(bdev::bdev* dev, uint64_t first, uint64_t nblocks, uint8_t pattern, unsigned qd) {
    struct state {
        uint64_t next, end;
        int rc = 0;
    } st{first, first + nblocks};
    gate g;
    for (unsigned w = 0; w < qd; ++w)
        reactor::local().spawn(g.hold([](bdev::bdev* dev, state* st,
                                         uint8_t pattern) -> task<void> {
            auto ch = dev->open_channel();
            const uint64_t bs = dev->block_size(), step = MiB / bs;
            buffer b = buffer_pool::local().get(MiB);
            std::memset(b.data(), pattern, MiB);
            while (st->next < st->end && st->rc == 0) {
                uint64_t lba = st->next;
                uint64_t n = std::min(step, st->end - lba);
                st->next += n;
                iovec v{b.data(), size_t(n * bs)};
                int rc = co_await ch->write(lba, uint32_t(n), std::span<const iovec>(&v, 1), false);
                if (rc) st->rc = rc;
            }
        }(dev, &st, pattern)));
    co_await g.close();
    if (st.rc) co_return st.rc;
    auto ch = dev->open_channel();
    co_return co_await ch->flush();
}

// Case 3's baseline: [off, off + len) of src to dst in 1 MiB reads and
// writes at QD 1, then a flush (what the rebuild's copy_range does).
task<int> plain_copy(bdev::bdev* src, bdev::bdev* dst, uint64_t off, uint64_t len) {
    auto sch = src->open_channel();
    auto dch = dst->open_channel();
    buffer buf = buffer_pool::local().get(MiB);
    const uint64_t bs = src->block_size();
    for (uint64_t p = off; p < off + len; p += MiB) {
        uint32_t nb = uint32_t(std::min(MiB, off + len - p) / bs);
        iovec v{buf.data(), size_t(nb) * bs};
        std::span<const iovec> vs(&v, 1);
        if (int rc = co_await sch->read(p / bs, nb, vs)) co_return rc;
        if (int rc = co_await dch->write(p / bs, nb, vs, false)) co_return rc;
    }
    co_return co_await dch->flush();
}

// Reads [off, off + len) of dev in 1 MiB reads at QD 1.
task<int> read_all(bdev::bdev* dev, uint64_t off, uint64_t len) {
    auto ch = dev->open_channel();
    buffer buf = buffer_pool::local().get(MiB);
    const uint64_t bs = dev->block_size();
    for (uint64_t p = off; p < off + len; p += MiB) {
        uint32_t nb = uint32_t(std::min(MiB, off + len - p) / bs);
        iovec v{buf.data(), size_t(nb) * bs};
        if (int rc = co_await ch->read(p / bs, nb, std::span<const iovec>(&v, 1))) co_return rc;
    }
    co_return 0;
}

// Writes every region of a device once, 1 MiB at a time at QD 1: a nexus's
// write-intent bits are then set (and durable) before a timed write case.
// (It first served as a workaround: concurrent first writes to regions
// whose bit was clear failed with EIO. nexus_impl::set_bits spawned a
// flush_bits per caller that came before the first one ran; the second,
// finding nothing pending, set flush_done_ = flush_round_ and woke every
// waiter while round 1 was still on the wire. Fixed in src/nexus since.)
task<int> pretouch(bdev::bdev* dev) {
    auto ch = dev->open_channel();
    buffer buf = buffer_pool::local().get(MiB);
    std::memset(buf.data(), 0x77, MiB);
    const uint64_t bs = dev->block_size(), bytes = dev->size_bytes();
    for (uint64_t p = 0; p < bytes; p += MiB) {
        uint32_t nb = uint32_t(std::min(MiB, bytes - p) / bs);
        iovec v{buf.data(), size_t(nb) * bs};
        if (int rc = co_await ch->write(p / bs, nb, std::span<const iovec>(&v, 1), false))
            co_return rc;
    }
    co_return 0;
}

// ---- children: local pool volumes and remote namespaces -----------------------

class bench_pool_child final : public nexus::child_device {
  public:
    bench_pool_child(std::string uri, std::shared_ptr<pool::pool> p, std::string volume)
        : uri_(std::move(uri)), p_(std::move(p)), volume_(std::move(volume)) {}
    const std::string& uri() const override { return uri_; }
    bool local() const override { return true; }
    task<result<std::shared_ptr<bdev::bdev>>> open(std::string* why) override {
        auto id = p_->find(volume_);
        if (!id) {
            if (why) *why = uri_ + ": no such volume";
            co_return error{ENOENT};
        }
        auto dev = p_->open_volume(*id);
        if (!dev) {
            if (why) *why = uri_ + ": " + dev.err().message();
            co_return dev.err();
        }
        co_return dev.value();
    }
    task<void> close() override { co_return; }

  private:
    std::string uri_;
    std::shared_ptr<pool::pool> p_;
    std::string volume_;
};

// Where the target end of a remote child's queues runs. tcp_server hands
// connections to the reactors round robin in the order it accepts them
// (nvmf/tcp_server.h), and a child connects its admin queue and then one I/O
// queue per reactor, in order; nexus::open connects every child at once, so
// where each queue's target end lands depends on how the connects interleave
// (--placement rr). With --placement remote, the bench connects the remote
// children one at a time and pads with idle connections so that the target
// end of each child's reactor-0 queue (the one the load uses) runs on the
// last reactor: the target's work stays off the generator's reactor, as on a
// remote node.
struct placement {
    bool on = true;
    unsigned reactors = 1;
    uint64_t made = 0;  // connections accepted by the target so far (ours)
    socket_address addr;
    pool::async_lock lock;
};

class placed_child final : public nexus::child_device {
  public:
    placed_child(std::unique_ptr<nexus::child_device> inner, placement* p)
        : inner_(std::move(inner)), p_(p) {}
    const std::string& uri() const override { return inner_->uri(); }
    bool local() const override { return inner_->local(); }
    task<result<std::shared_ptr<bdev::bdev>>> open(std::string* why) override {
        if (!p_->on || p_->reactors < 2) co_return co_await inner_->open(why);
        auto g = co_await p_->lock.lock();
        const unsigned n = p_->reactors;
        // The admin queue lands on made % n, the reactor-0 queue on (made + 1) % n.
        while ((p_->made + 1) % n != n - 1) {
            auto c = co_await tcp_stream::connect(p_->addr, std::chrono::milliseconds(2000));
            if (!c) break;
            ++p_->made;  // accepted, then it sees the end of the stream and closes
        }
        auto r = co_await inner_->open(why);
        if (r) p_->made += 1 + n;  // the admin queue and one I/O queue per reactor
        co_return r;
    }
    task<void> close() override { co_await inner_->close(); }
    task<result<void>> fence(uint64_t key, std::string* why) override {
        co_return co_await inner_->fence(key, why);
    }
    task<void> unfence(uint64_t key) override { co_await inner_->unfence(key); }

  private:
    std::unique_ptr<nexus::child_device> inner_;
    placement* p_;
};

nexus::child_factory make_factory(std::map<std::string, std::shared_ptr<pool::pool>>* pools,
                                  placement* place) {
    return [pools, place](const std::string& uri,
                          std::string* why) -> result<std::unique_ptr<nexus::child_device>> {
        auto u = nexus::parse_child_uri(uri, why);
        if (!u) return u.err();
        if (u->k == nexus::child_uri::kind::pool) {
            auto it = pools->find(u->pool);
            if (it == pools->end()) {
                if (why) *why = uri + ": no such pool";
                return error{ENOENT};
            }
            return std::unique_ptr<nexus::child_device>(
                new bench_pool_child(nexus::to_string(u.value()), it->second, u->volume));
        }
        nexus::nvmf_child_options o;
        o.hostnqn = hostnqn;
        for (size_t i = 0; i < o.hostid.size(); ++i) o.hostid[i] = uint8_t(0xb0 + i);
        return std::unique_ptr<nexus::child_device>(
            new placed_child(nexus::make_nvmf_child(u.value(), o), place));
    };
}

// ---- the bench's state -----------------------------------------------------------

// A pool on one base (malloc or a file) and the volumes opened from it.
struct rig {
    std::string name;  // the pool's name in pool:// URIs
    std::string path;  // the file, for --file
    std::shared_ptr<bdev::bdev> base;
    std::shared_ptr<pool::pool> pool;
    std::map<std::string, std::shared_ptr<bdev::bdev>> vols;
};

struct state {
    bench_options o;
    std::map<std::string, std::shared_ptr<pool::pool>> pools;
    nexus::child_factory factory;
    std::unique_ptr<rig> mem, file;
    std::unique_ptr<nvmf::target> tgt;
    std::unique_ptr<nvmf::tcp_server> server;
    std::vector<std::string> nqns;
    uint16_t port = 0;
    placement place;
    // nexus name -> nexus
    std::map<std::string, std::shared_ptr<nexus::nexus>> nx;
    std::vector<std::string> nx_order;  // opening order (closed in reverse)
};

uint64_t mib(uint64_t n) {
    return n * MiB;
}

// A pool named `name` on `base` holding thick volumes of the given sizes.
task<std::unique_ptr<rig>> make_rig(state* s, std::string name, std::string path,
                                    std::vector<std::pair<std::string, uint64_t>> vols) {
    const bench_options& o = s->o;
    uint64_t need = 0;
    const uint64_t cs = uint64_t(o.cluster_kib) << 10;
    for (auto& [n, b] : vols) need += (b + cs - 1) / cs * cs;
    // Room for the metadata areas and the superblock (generous).
    uint64_t base_bytes = (need + need / 32 + 64 * MiB + MiB - 1) / MiB * MiB;
    auto r = std::make_unique<rig>();
    r->name = name;
    r->path = path;
    if (path.empty()) {
        r->base.reset(bdev::make_malloc_bdev(name + "-base", base_bytes / 512, 512).release());
        if (!r->base) {
            fmt::print(stderr, "weft-nexus-bench: cannot make a {} MiB malloc bdev\n",
                       base_bytes >> 20);
            co_return nullptr;
        }
    } else {
        if (::access(path.c_str(), F_OK) == 0) {
            fmt::print(stderr,
                       "weft-nexus-bench: {} exists; give a path that does not (it is created "
                       "and removed)\n",
                       path);
            co_return nullptr;
        }
        auto b = bdev::open_uring_bdev(name + "-base", path,
                                       {.create = true, .create_bytes = base_bytes});
        if (!b) {
            fmt::print(stderr, "weft-nexus-bench: cannot create {}: {}\n", path, b.err().message());
            co_return nullptr;
        }
        r->base = std::move(b.value());
    }
    std::string why;
    auto p = co_await pool::pool::create(r->base, name, {.cluster_size = cs}, &why);
    if (!p) {
        fmt::print(stderr, "weft-nexus-bench: pool {}: {}\n", name, why);
        co_return nullptr;
    }
    r->pool = p.value();
    for (auto& [n, b] : vols) {
        auto id = co_await r->pool->create_volume(n, b, /*thin=*/false, &why);
        if (!id) {
            fmt::print(stderr, "weft-nexus-bench: volume {}/{}: {}\n", name, n, why);
            co_return nullptr;
        }
        auto dev = r->pool->open_volume(id.value()).value();
        // Every block written once, through the volume (creating it
        // deallocates its clusters): malloc pages are touched and a file's
        // blocks allocated, so no case pays first-touch costs (page faults
        // cost ~20 us each on some VMs).
        if (int rc = co_await fill(dev.get(), 0, dev->num_blocks(), 0xa5, 8); rc != 0) {
            fmt::print(stderr, "weft-nexus-bench: filling {}/{}: {}\n", name, n,
                       error{-rc}.message());
            co_return nullptr;
        }
        r->vols[n] = dev;
    }
    s->pools[name] = r->pool;
    co_return r;
}

std::string pool_uri(const rig& r, const std::string& vol) {
    return "pool://" + r.name + "/" + vol;
}

std::string nvmf_uri(const state& s, unsigned i) {
    return fmt::format("nvmf://127.0.0.1:{}/{}", s.port, s.nqns.at(i));
}

// Lists without braces (a braced list inside a coroutine trips g++ 12).
template <typename... T>
std::vector<std::string> names(T... v) {
    std::vector<std::string> out;
    (out.push_back(v), ...);
    return out;
}

task<bool> open_nexus(state* s, std::string key, uint64_t bytes, std::vector<std::string> children,
                      uint64_t rebuild_rate) {
    nexus::nexus::params p;
    p.size_bytes = bytes;
    p.children = std::move(children);
    p.opt.rebuild_rate = rebuild_rate;
    std::string why;
    auto r = co_await nexus::nexus::open(p, s->factory, &why);
    if (!r) {
        fmt::print(stderr, "weft-nexus-bench: nexus {}: {}\n", key, why);
        co_return false;
    }
    s->nx[key] = r.value();
    s->nx_order.push_back(key);
    auto st = r.value()->status();
    for (auto& c : st.children)
        if (c.state != nexus::child_state::online) {
            fmt::print(stderr, "weft-nexus-bench: nexus {}: child {} is {} ({})\n", key, c.uri,
                       nexus::to_string(c.state), c.reason);
            co_return false;
        }
    co_return true;
}

const nexus::child_status* child_of(const nexus::nexus_status& st, const std::string& uri) {
    for (auto& c : st.children)
        if (c.uri == uri) return &c;
    return nullptr;
}

// Adds `uri` to `nx` and waits until its rebuild is done: bytes/s of the
// nexus's data over the whole call (0 on failure, with a sentence).
task<double> timed_rebuild(nexus::nexus* nx, std::string uri, std::string* err) {
    auto t0 = clock_type::now();
    std::string why;
    auto r = co_await nx->add_child(uri, &why);
    if (!r) {
        *err = "add_child " + uri + ": " + why;
        co_return 0;
    }
    const size_t history_before = nx->status().history.size();
    for (;;) {
        auto st = nx->status();
        const auto* c = child_of(st, uri);
        if (!c) {
            *err = uri + " left the nexus during its rebuild";
            co_return 0;
        }
        if (c->state == nexus::child_state::online) break;
        if (st.history.size() > history_before && st.history.back().child == uri &&
            st.history.back().outcome != "done" && !c->rebuild) {
            *err = "rebuild of " + uri + ": " + st.history.back().outcome;
            co_return 0;
        }
        if (clock_type::now() - t0 > 600s) {
            *err = "rebuild of " + uri + " did not end within 10 minutes";
            co_return 0;
        }
        (void)co_await sleep(200us);
    }
    double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    co_return double(nx->size_bytes()) / secs;
}

task<bool> remove_child(nexus::nexus* nx, std::string uri) {
    std::string why;
    auto r = co_await nx->remove_child(uri, &why);
    if (!r) fmt::print(stderr, "weft-nexus-bench: remove_child {}: {}\n", uri, why);
    co_return bool(r);
}

// ---- figures and tables -----------------------------------------------------------

double median(std::vector<double> v) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

struct ratio_stats {
    double med = NAN, lo = NAN, hi = NAN;
};

// Per-round ratios a[k] / b[k], their median and range.
ratio_stats ratios(const std::vector<double>& a, const std::vector<double>& b) {
    std::vector<double> r;
    for (size_t k = 0; k < a.size() && k < b.size(); ++k)
        if (b[k] > 0) r.push_back(a[k] / b[k]);
    if (r.empty()) return {};
    return {median(r), *std::min_element(r.begin(), r.end()),
            *std::max_element(r.begin(), r.end())};
}

std::string fmt_ratio(const ratio_stats& r) {
    if (std::isnan(r.med)) return fmt::format("{:>8} {:>11}", "-", "");
    return fmt::format("{:>7.3f}x {:>5.2f}..{:<5.2f}", r.med, r.lo, r.hi);
}

// The figures of the timed cases, by row name, one per round.
struct results {
    std::map<std::string, std::vector<figures>> f;
    std::map<std::string, std::vector<double>> v;  // other per-round values
    std::vector<double> get(const std::string& row, double figures::*field) const {
        std::vector<double> out;
        auto it = f.find(row);
        if (it != f.end())
            for (auto& x : it->second) out.push_back(x.*field);
        return out;
    }
    // Median busy fraction of reactor i over the row's rounds.
    double cpu(const std::string& row, size_t i) const {
        std::vector<double> out;
        auto it = f.find(row);
        if (it != f.end())
            for (auto& x : it->second)
                if (i < x.cpu.size()) out.push_back(x.cpu[i]);
        return out.empty() ? NAN : median(out);
    }
    std::vector<double> values(const std::string& row) const {
        auto it = v.find(row);
        return it == v.end() ? std::vector<double>{} : it->second;
    }
    std::string errors(const std::string& row) const {
        uint64_t e = 0;
        int first = 0;
        auto it = f.find(row);
        if (it != f.end())
            for (auto& x : it->second) {
                if (x.errors && !first) first = x.first_error;
                e += x.errors;
            }
        return e ? fmt::format("  ({} errors, first: {})", e, error{first}.message()) : "";
    }
};

std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("model name", 0) == 0) {
            auto p = line.find(':');
            if (p != std::string::npos) {
                std::string m = line.substr(p + 1);
                m.erase(0, m.find_first_not_of(' '));
                return m;
            }
        }
    return "unknown";
}

// ---- the rounds ---------------------------------------------------------------------

// Case 4's timed case on the rebuilding nexus: a fresh full rebuild of its
// second child, the load while it runs, then the child removed again.
struct rebuild_mark {
    clock_type::time_point t;
    uint64_t done = 0;
    bool running = false;
};
struct rebuild_probe {
    nexus::nexus* nx = nullptr;
    std::string uri;
    rebuild_mark a, b;
    static rebuild_mark sample(rebuild_probe* p) {
        rebuild_mark m;
        m.t = clock_type::now();
        auto st = p->nx->status();
        if (const auto* c = child_of(st, p->uri);
            c && c->rebuild && c->rebuild->state == "running") {
            m.running = true;
            m.done = c->rebuild->bytes_done;
        }
        return m;
    }
};

task<figures> during_rebuild(state* s, bool write, results* res, std::string* err) {
    rebuild_probe probe;
    probe.nx = s->nx.at("nexus-2r").get();
    probe.uri = pool_uri(*s->mem, "m4");
    rebuild_probe* p = &probe;
    if (write && s->o.pretouch)
        if (int rc = co_await pretouch(p->nx->bdev().get()); rc != 0)
            fmt::print(stderr, "weft-nexus-bench: pre-touch of nexus-2r: {}\n",
                       error{-rc}.message());
    std::string why;
    if (auto r = co_await p->nx->add_child(p->uri, &why); !r) {
        *err = "add_child " + p->uri + ": " + why;
        co_return figures{};
    }
    figures f = co_await run_load(
        p->nx->bdev().get(), write, &s->o, [p] { p->a = rebuild_probe::sample(p); },
        [p] { p->b = rebuild_probe::sample(p); });
    double secs = std::chrono::duration<double>(p->b.t - p->a.t).count();
    std::string row = write ? "rebuild-rate randwrite" : "rebuild-rate randread";
    bool whole = p->a.running && p->b.running;
    res->v[row].push_back(whole ? double(p->b.done - p->a.done) / secs : 0);
    if (!whole)
        fmt::print(stderr,
                   "weft-nexus-bench: the throttled rebuild was not running for the whole {} "
                   "case (make --size-mib larger or --rebuild-rate smaller)\n",
                   write ? "randwrite" : "randread");
    if (!co_await remove_child(p->nx, p->uri)) *err = "cannot remove " + p->uri;
    co_return f;
}

void show(const bench_options* o, const std::string& row, const figures& f) {
    if (!o->show_rounds) return;
    std::string cpu;
    for (double c : f.cpu) cpu += fmt::format(" {:.0f}%", 100 * c);
    fmt::print(stderr, "  {:<36} {:>10.0f} IOPS  mean {:>8.1f} us  p99 {:>8.1f} us  CPU{}{}\n", row,
               f.iops, f.mean_us, f.p99_us, cpu,
               f.errors ? fmt::format("  {} errors", f.errors) : "");
}

task<void> timed(results* res, std::string row, bdev::bdev* dev, bool write, const bench_options* o,
                 unsigned qd = 0) {
    // The bare volumes get the same pass: both sides of a ratio start alike.
    if (write && o->pretouch)
        if (int rc = co_await pretouch(dev); rc != 0)
            fmt::print(stderr, "weft-nexus-bench: pre-touch of {}: {}\n", row,
                       error{-rc}.message());
    figures f = co_await run_load(dev, write, o, {}, {}, qd);
    row += write ? " randwrite" : " randread";
    if (qd) row += fmt::format(" qd{}", qd);
    show(o, row, f);
    res->f[row].push_back(f);
}

task<int> rounds(state* s, results* res) {
    const bench_options& o = s->o;
    rig* rigs[2] = {s->mem.get(), s->file.get()};
    for (unsigned k = 0; k < o.rounds; ++k) {
        for (int wi = 0; wi < 2; ++wi) {
            const bool write = wi == 0;
            if (o.want('1') || o.want('2')) {
                if (o.want('1'))
                    co_await timed(res, "bare", s->mem->vols.at("bare").get(), write, &o);
                co_await timed(res, "nexus-1", s->nx.at("nexus-1")->bdev().get(), write, &o);
            }
            if (o.want('2')) {
                co_await timed(res, "nexus-3", s->nx.at("nexus-3")->bdev().get(), write, &o);
                if (write && o.lat_qd != o.qd) {
                    co_await timed(res, "nexus-1", s->nx.at("nexus-1")->bdev().get(), write, &o,
                                   o.lat_qd);
                    co_await timed(res, "nexus-3", s->nx.at("nexus-3")->bdev().get(), write, &o,
                                   o.lat_qd);
                }
            }
            if (o.want('4')) {
                co_await timed(res, "nexus-2 idle", s->nx.at("nexus-2")->bdev().get(), write, &o);
                std::string err;
                figures f = co_await during_rebuild(s, write, res, &err);
                if (!err.empty()) {
                    fmt::print(stderr, "weft-nexus-bench: {}\n", err);
                    co_return 1;
                }
                std::string row =
                    std::string("nexus-2 rebuilding") + (write ? " randwrite" : " randread");
                show(&o, row, f);
                res->f[row].push_back(f);
            }
            if (s->file && o.want('1')) {
                co_await timed(res, "file bare", s->file->vols.at("bare").get(), write, &o);
                co_await timed(res, "file nexus-1", s->nx.at("file nexus-1")->bdev().get(), write,
                               &o);
            }
        }
        if (o.want('3')) {
            for (rig* r : rigs) {
                if (!r) continue;
                const std::string pre = r == s->file.get() ? "file " : "";
                const uint64_t len = mib(o.rebuild_mib);
                auto* nx = s->nx.at(pre + "nexus-r").get();
                // Alternate which goes first, and read the source before
                // each (untimed): both then start with the same caches (a
                // VM's disk may be cached by its host).
                for (int j = 0; j < 2; ++j) {
                    const bool copy = (j == 0) == (k % 2 == 0);
                    if (int rc = co_await read_all(r->vols.at("src").get(), MiB, len); rc != 0) {
                        fmt::print(stderr, "weft-nexus-bench: reading src: {}\n",
                                   error{-rc}.message());
                        co_return 1;
                    }
                    if (copy) {
                        auto t0 = clock_type::now();
                        int rc = co_await plain_copy(r->vols.at("src").get(),
                                                     r->vols.at("copy").get(), MiB, len);
                        double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
                        if (rc) {
                            fmt::print(stderr, "weft-nexus-bench: plain copy: {}\n",
                                       error{-rc}.message());
                            co_return 1;
                        }
                        res->v[pre + "plain copy"].push_back(double(len) / secs);
                        if (o.show_rounds)
                            fmt::print(stderr, "  {:<36} {:>10.0f} MiB/s\n", pre + "plain copy",
                                       double(len) / secs / MiB);
                    } else {
                        std::string err;
                        double rate = co_await timed_rebuild(nx, pool_uri(*r, "target"), &err);
                        if (rate == 0) {
                            fmt::print(stderr, "weft-nexus-bench: {}\n", err);
                            co_return 1;
                        }
                        res->v[pre + "rebuild"].push_back(rate);
                        if (o.show_rounds)
                            fmt::print(stderr, "  {:<36} {:>10.0f} MiB/s\n", pre + "rebuild",
                                       rate / MiB);
                    }
                }
                if (!co_await remove_child(nx, pool_uri(*r, "target"))) co_return 1;
            }
        }
        fmt::print(stderr, "round {}/{} done\n", k + 1, o.rounds);
    }
    co_return 0;
}

void print_tables(const state& s, const results& res) {
    const bench_options& o = s.o;
    auto iops_row = [&](const std::string& label, const std::string& row, const std::string& base,
                        const std::string& note = "") {
        auto v = res.get(row, &figures::iops);
        if (v.empty()) return;
        fmt::print("  {:<30} {:>10.0f} {}{}{}\n", label, median(v),
                   fmt_ratio(ratios(v, res.get(base, &figures::iops))), note, res.errors(row));
    };
    auto header = [](const char* base) {
        fmt::print("  {:<30} {:>10} {:>8} {:>11}\n", "", "IOPS", base, "min..max");
    };
    if (o.want('1')) {
        fmt::print("\ncase 1: one local child vs the bare volume ({} MiB, malloc pool)\n",
                   o.size_mib);
        header("vs bare");
        for (const char* d : {" randwrite", " randread"}) {
            iops_row(std::string("bare") + d, std::string("bare") + d, std::string("bare") + d);
            iops_row(std::string("nexus-1") + d, std::string("nexus-1") + d,
                     std::string("bare") + d, "  (goal >= 0.97)");
        }
        if (s.file) {
            fmt::print("  on an O_DIRECT file ({}):\n", s.file->path);
            for (const char* d : {" randwrite", " randread"}) {
                iops_row(std::string("bare") + d, std::string("file bare") + d,
                         std::string("file bare") + d);
                iops_row(std::string("nexus-1") + d, std::string("file nexus-1") + d,
                         std::string("file bare") + d, "  (goal >= 0.97)");
            }
        }
    }
    if (o.want('2')) {
        fmt::print(
            "\ncase 2: three children (local + 2 over loopback NVMe/TCP) vs one child; latency: "
            "1 I/O in {} timed\n",
            o.sample_every);
        fmt::print("  {:<26} {:>9} {:>8} {:>11} {:>9} {:>9} {:>8} {:>8}  {}\n", "", "IOPS",
                   "vs n-1", "min..max", "mean us", "p99 us", "mean", "p99", "CPU per reactor");
        auto row2 = [&](const std::string& row, const std::string& base) {
            auto iops = res.get(row, &figures::iops);
            if (iops.empty()) return;
            auto mean = res.get(row, &figures::mean_us), p99 = res.get(row, &figures::p99_us);
            auto rm = ratios(mean, res.get(base, &figures::mean_us));
            auto rp = ratios(p99, res.get(base, &figures::p99_us));
            std::string cpu;
            for (size_t i = 0; i < o.reactors; ++i)
                cpu += fmt::format(" {:>4.0f}%", 100 * res.cpu(row, i));
            fmt::print("  {:<26} {:>9.0f} {} {:>9.1f} {:>9.1f} {:>7.2f}x {:>7.2f}x {}{}\n", row,
                       median(iops), fmt_ratio(ratios(iops, res.get(base, &figures::iops))),
                       median(mean), median(p99), rm.med, rp.med, cpu, res.errors(row));
        };
        const std::string lq = fmt::format(" qd{}", o.lat_qd);
        for (std::string d :
             {std::string(" randwrite"), " randwrite" + lq, std::string(" randread")})
            for (const char* n : {"nexus-1", "nexus-3"}) row2(n + d, "nexus-1" + d);
        fmt::print(
            "  (at QD {} a malloc-backed nexus-1 completes without suspending: its latency is its "
            "service time, not what a host queueing {} commands sees, ~QD/IOPS = {:.1f} us{}; CPU: "
            "each reactor thread's CPU time over the interval; target placement: {})\n",
            o.qd, o.qd, o.qd / median(res.get("nexus-1 randwrite", &figures::iops)) * 1e6,
            o.lat_qd != o.qd ? fmt::format("; the QD {} rows compare per-I/O latency", o.lat_qd)
                             : "",
            o.placement);
    }
    if (o.want('3')) {
        fmt::print(
            "\ncase 3: rebuild rate, {} MiB, 1 MiB copies at QD 1, rebuild_rate 0 (unlimited)\n",
            o.rebuild_mib);
        fmt::print("  {:<30} {:>10} {:>8} {:>11}\n", "", "MiB/s", "vs copy", "min..max");
        for (std::string pre : {"", "file "}) {
            auto c = res.values(pre + "plain copy"), r = res.values(pre + "rebuild");
            if (c.empty()) continue;
            if (!pre.empty()) fmt::print("  on an O_DIRECT file ({}):\n", s.file->path);
            fmt::print("  {:<30} {:>10.0f} {}\n", "plain copy", median(c) / MiB,
                       fmt_ratio(ratios(c, c)));
            fmt::print("  {:<30} {:>10.0f} {}  (goal >= 0.8)\n", "nexus rebuild", median(r) / MiB,
                       fmt_ratio(ratios(r, c)));
        }
    }
    if (o.want('4')) {
        fmt::print("\ncase 4: a 2-child nexus idle vs during a rebuild throttled to {} MiB/s\n",
                   o.rebuild_rate_mib);
        fmt::print("  {:<30} {:>10} {:>8} {:>11}  {}\n", "", "IOPS", "vs idle", "min..max",
                   "rebuild MiB/s meanwhile");
        for (const char* d : {" randwrite", " randread"}) {
            iops_row(std::string("nexus-2 idle") + d, std::string("nexus-2 idle") + d,
                     std::string("nexus-2 idle") + d);
            auto rate = res.values(std::string("rebuild-rate") + d);
            iops_row(std::string("nexus-2 rebuilding") + d, std::string("nexus-2 rebuilding") + d,
                     std::string("nexus-2 idle") + d, fmt::format("  {:.1f}", median(rate) / MiB));
        }
    }

    fmt::print("\nsummary (medians of per-round ratios):\n");
    auto r_of = [&](const std::string& a, const std::string& b, double figures::*f) {
        return ratios(res.get(a, f), res.get(b, f)).med;
    };
    if (o.want('1'))
        fmt::print("  nexus-1 / bare: randwrite {:.3f}x, randread {:.3f}x (goal >= 0.97)\n",
                   r_of("nexus-1 randwrite", "bare randwrite", &figures::iops),
                   r_of("nexus-1 randread", "bare randread", &figures::iops));
    if (o.want('1') && s.file)
        fmt::print("  on the file: randwrite {:.3f}x, randread {:.3f}x\n",
                   r_of("file nexus-1 randwrite", "file bare randwrite", &figures::iops),
                   r_of("file nexus-1 randread", "file bare randread", &figures::iops));
    if (o.want('2')) {
        const std::string lq = o.lat_qd != o.qd ? fmt::format(" qd{}", o.lat_qd) : "";
        fmt::print(
            "  nexus-3 / nexus-1: randwrite {:.3f}x IOPS at QD {}; at QD {} latency mean {:.1f} vs "
            "{:.1f} us ({:.2f}x), p99 {:.1f} vs {:.1f} us ({:.2f}x); randread {:.3f}x IOPS\n",
            r_of("nexus-3 randwrite", "nexus-1 randwrite", &figures::iops), o.qd, o.lat_qd,
            median(res.get("nexus-3 randwrite" + lq, &figures::mean_us)),
            median(res.get("nexus-1 randwrite" + lq, &figures::mean_us)),
            r_of("nexus-3 randwrite" + lq, "nexus-1 randwrite" + lq, &figures::mean_us),
            median(res.get("nexus-3 randwrite" + lq, &figures::p99_us)),
            median(res.get("nexus-1 randwrite" + lq, &figures::p99_us)),
            r_of("nexus-3 randwrite" + lq, "nexus-1 randwrite" + lq, &figures::p99_us),
            r_of("nexus-3 randread", "nexus-1 randread", &figures::iops));
    }
    if (o.want('3')) {
        auto c = res.values("plain copy"), r = res.values("rebuild");
        fmt::print("  rebuild / plain copy: {:.3f}x ({:.0f} vs {:.0f} MiB/s; goal >= 0.8)\n",
                   ratios(r, c).med, median(r) / MiB, median(c) / MiB);
        if (s.file) {
            auto fc = res.values("file plain copy"), fr = res.values("file rebuild");
            fmt::print("  on the file: {:.3f}x ({:.0f} vs {:.0f} MiB/s)\n", ratios(fr, fc).med,
                       median(fr) / MiB, median(fc) / MiB);
        }
    }
    if (o.want('4')) {
        auto rw = res.values("rebuild-rate randwrite"), rr = res.values("rebuild-rate randread");
        fmt::print(
            "  during a {} MiB/s rebuild / idle: randwrite {:.3f}x, randread {:.3f}x; the rebuild "
            "copied {:.1f} MiB/s under writes, {:.1f} MiB/s under reads\n",
            o.rebuild_rate_mib,
            r_of("nexus-2 rebuilding randwrite", "nexus-2 idle randwrite", &figures::iops),
            r_of("nexus-2 rebuilding randread", "nexus-2 idle randread", &figures::iops),
            median(rw) / MiB, median(rr) / MiB);
    }
}

// ---- setup and teardown ----------------------------------------------------------------

task<bool> start_target(state* s) {
    s->tgt = std::make_unique<nvmf::target>();
    for (unsigned i = 1; i <= 2; ++i) {
        std::string nqn = nqn_prefix + std::to_string(i);
        auto ss =
            s->tgt->add_subsystem(nqn, fmt::format("WEFTNXBENCH{:04}", i), "weft nexus bench");
        if (!ss) {
            fmt::print(stderr, "weft-nexus-bench: add_subsystem {} failed\n", nqn);
            co_return false;
        }
        ss.value()->allow_any_host(true);
        if (!ss.value()->add_namespace(1, s->mem->vols.at("r" + std::to_string(i)), {})) {
            fmt::print(stderr, "weft-nexus-bench: add_namespace to {} failed\n", nqn);
            co_return false;
        }
        s->nqns.push_back(nqn);
    }
    s->server = std::make_unique<nvmf::tcp_server>(*s->tgt, nvmf::tcp_options{}, s->o.reactors);
    auto r = co_await s->server->listen(socket_address::ipv4("127.0.0.1", 0));
    if (!r) {
        fmt::print(stderr, "weft-nexus-bench: listen: {}\n", r.err().message());
        co_return false;
    }
    s->port = s->server->addresses().front().port();
    s->place.addr = s->server->addresses().front();
    co_return true;
}

task<void> teardown(state* s) {
    // Nexuses first (each closes its children: remote ones disconnect),
    // then the target they were connected to, then the pools.
    for (auto it = s->nx_order.rbegin(); it != s->nx_order.rend(); ++it)
        co_await s->nx.at(*it)->close();
    s->nx.clear();
    if (s->server) co_await s->server->stop();
    if (s->tgt)
        for (auto& n : s->nqns) {
            if (auto ss = s->tgt->find(n)) (void)ss->remove_namespace(1);
            (void)s->tgt->remove_subsystem(n);
        }
    s->server.reset();
    s->tgt.reset();
    s->pools.clear();
    rig* rigs[2] = {s->mem.get(), s->file.get()};
    for (rig* r : rigs) {
        if (!r) continue;
        r->vols.clear();
        r->pool.reset();
        r->base.reset();
        if (!r->path.empty()) ::unlink(r->path.c_str());
    }
}

task<int> setup(state* s) {
    const bench_options& o = s->o;
    s->factory = make_factory(&s->pools, &s->place);
    s->place.on = o.placement == "remote";
    s->place.reactors = o.reactors;
    const uint64_t S = mib(o.size_mib), C = S + MiB, R = mib(o.rebuild_mib) + MiB;
    std::vector<std::pair<std::string, uint64_t>> vols;
    if (o.want('1')) vols.push_back(std::make_pair(std::string("bare"), S));
    if (o.want('1') || o.want('2')) vols.push_back(std::make_pair(std::string("n1"), C));
    if (o.want('2')) {
        for (std::string v : names("n3", "r1", "r2")) vols.push_back(std::make_pair(v, C));
    }
    if (o.want('3')) {
        for (std::string v : names("src", "copy", "target")) vols.push_back(std::make_pair(v, R));
    }
    if (o.want('4'))
        for (std::string v : names("m1", "m2", "m3", "m4")) vols.push_back(std::make_pair(v, C));
    s->mem = co_await make_rig(s, "mem", "", vols);
    if (!s->mem) co_return 1;
    if (!o.file.empty() && (o.want('1') || o.want('3'))) {
        std::vector<std::pair<std::string, uint64_t>> fv;
        if (o.want('1')) {
            fv.push_back(std::make_pair(std::string("bare"), S));
            fv.push_back(std::make_pair(std::string("n1"), C));
        }
        if (o.want('3')) {
            for (std::string v : names("src", "copy", "target")) fv.push_back(std::make_pair(v, R));
        }
        s->file = co_await make_rig(s, "file", o.file, fv);
        if (!s->file) co_return 1;
    }
    // Case 3's sources: every byte written through the volume.
    rig* rigs[2] = {s->mem.get(), s->file.get()};
    for (rig* r : rigs) {
        if (!r || !o.want('3')) continue;
        auto* src = r->vols.at("src").get();
        if (int rc = co_await fill(src, 0, src->num_blocks(), 0x3c, 4); rc != 0) {
            fmt::print(stderr, "weft-nexus-bench: filling src: {}\n", error{-rc}.message());
            co_return 1;
        }
    }
    if (o.want('2') && !co_await start_target(s)) co_return 1;

    rig& m = *s->mem;
    if ((o.want('1') || o.want('2')) &&
        !co_await open_nexus(s, "nexus-1", S, names(pool_uri(m, "n1")), 0))
        co_return 1;
    if (o.want('2') &&
        !co_await open_nexus(s, "nexus-3", S,
                             names(pool_uri(m, "n3"), nvmf_uri(*s, 0), nvmf_uri(*s, 1)), 0))
        co_return 1;
    const uint64_t rate = mib(o.rebuild_rate_mib);
    if (o.want('3') &&
        !co_await open_nexus(s, "nexus-r", mib(o.rebuild_mib), names(pool_uri(m, "src")), 0))
        co_return 1;
    if (o.want('4')) {
        if (!co_await open_nexus(s, "nexus-2", S, names(pool_uri(m, "m1"), pool_uri(m, "m2")),
                                 rate))
            co_return 1;
        if (!co_await open_nexus(s, "nexus-2r", S, names(pool_uri(m, "m3")), rate)) co_return 1;
    }
    if (s->file) {
        rig& f = *s->file;
        if (o.want('1') && !co_await open_nexus(s, "file nexus-1", S, names(pool_uri(f, "n1")), 0))
            co_return 1;
        if (o.want('3') && !co_await open_nexus(s, "file nexus-r", mib(o.rebuild_mib),
                                                names(pool_uri(f, "src")), 0))
            co_return 1;
    }
    co_return 0;
}

task<int> bench_main(state* s) {
    s->o.clocks.resize(s->o.reactors);
    for (unsigned r = 0; r < s->o.reactors; ++r) {
        clockid_t* out = &s->o.clocks[r];
        co_await on(r, [out] { pthread_getcpuclockid(pthread_self(), out); });
    }
    auto t0 = clock_type::now();
    int rc = co_await setup(s);
    fmt::print(stderr, "setup took {:.1f} s\n",
               std::chrono::duration<double>(clock_type::now() - t0).count());
    results res;
    if (rc == 0) rc = co_await rounds(s, &res);
    if (rc == 0) print_tables(*s, res);
    co_await teardown(s);
    co_return rc;
}

constexpr const char* help_text = R"(
Cases (4 KiB random I/O at --qd from reactor 0, each timed case --warmup then
--seconds, all cases once per round for --rounds interleaved rounds; tables
show medians and the min..max of the per-round ratio to the baseline):

  1  nexus-1 vs bare. A pool of thick volumes on a malloc bdev: `bare` is I/O
     straight to volume A, `nexus-1` I/O to a nexus whose only child is volume
     B (--size-mib + 1 MiB). randwrite and randread. The project's goal is
     nexus-1 >= 0.97 of bare. With --file PATH, the same pair again on a pool
     on an O_DIRECT file at PATH (created, written in full first, removed).
  2  nexus-3 vs nexus-1. nexus-3's children are a local volume and two volumes
     served by an in-process NVMe/TCP target on 127.0.0.1 (two subsystems),
     reached through weft's initiator (one I/O queue per reactor). randwrite
     IOPS, mean and p99 latency (1 I/O in --sample-every is timed), and
     randread IOPS (reads go to the local child: ~1x expected), plus
     randwrite at --lat-qd (1: per-I/O latency without queueing). The
     target's connections are spread over the reactors round robin by
     tcp_server; --placement remote (default) connects the two children one
     at a time, padding with idle connections, so that the target end of the
     queues the load uses runs on the last reactor (as on another node);
     --placement rr leaves it to how nexus::open's parallel connects fall.
     Each row shows each reactor thread's CPU time over the interval.
  3  rebuild rate. A source volume of --rebuild-mib (+1 MiB) is written in
     full; then a plain copy of the same bytes to another volume (1 MiB read
     + write at QD 1, then a flush: the rebuild's own copy pattern) vs the
     nexus (its only child: the source) rebuilding a newly added child
     (add_child, status() polled until it is online; rebuild_rate 0 =
     unlimited). Bytes/s of each; the child is removed again after each round.
     The goal: rebuild >= 0.8 of the plain copy. With --file, also on the file.
  4  application I/O during a throttled rebuild. `idle`: a nexus with two
     in-sync children; `rebuilding`: a nexus of the same shape whose second
     child is being fully rebuilt at --rebuild-rate (added before each timed
     case, removed after it). randwrite and randread IOPS, and the rate the
     rebuild reached during the timed interval.

Every volume is written in full at setup (no case pays first-touch page
faults). Every nexus uses the engine's default options (5 s write-intent
bitmap clear interval, 5 s I/O timeout) apart from rebuild_rate; a bit left
clear for 5 s costs the next write to its region a bitmap write to every
child, so each timed write case is preceded by a QD 1 pass over the whole
device (--no-pretouch skips it). Progress and per-case figures
(--show-rounds) go to stderr; the tables to stdout.
)";

}  // namespace

int main(int argc, char** argv) {
    state s;
    bench_options& o = s.o;
    unsigned ncpu = std::max(1u, std::thread::hardware_concurrency());
    o.reactors = std::min(2u, ncpu);
    CLI::App app{
        "weft-nexus-bench: the nexus's cost as ratios to baselines measured in the same run"};
    app.footer(help_text);
    app.add_option("--seconds", o.secs, "measured duration of each timed case")
        ->capture_default_str();
    app.add_option("--warmup", o.warmup, "seconds of load before each measured interval")
        ->capture_default_str();
    app.add_option("--rounds", o.rounds, "interleaved rounds (medians are shown)")
        ->check(CLI::Range(1u, 100u))
        ->capture_default_str();
    app.add_option("--qd", o.qd, "I/Os in flight (reactor 0)")
        ->check(CLI::Range(1u, 1024u))
        ->capture_default_str();
    app.add_option(
           "--reactors", o.reactors,
           "reactors (CPUs --cpu, --cpu+1, ...); the load and the nexuses run on the first, "
           "the target's connections on all of them (default: 2 when the machine has 2 "
           "CPUs or more)")
        ->check(CLI::Range(1u, 64u))
        ->capture_default_str();
    app.add_option("--cpu", o.cpu, "CPU of reactor 0 (-1: unpinned)")->capture_default_str();
    app.add_option("--size-mib", o.size_mib,
                   "size of the nexuses and the bare volume, MiB (cases 1, 2, 4)")
        ->check(CLI::Range(16u, 1u << 20))
        ->capture_default_str();
    app.add_option("--rebuild-mib", o.rebuild_mib, "bytes copied by case 3, MiB")
        ->check(CLI::Range(1u, 1u << 20))
        ->capture_default_str();
    app.add_option("--rebuild-rate", o.rebuild_rate_mib, "case 4's rebuild throttle, MiB/s")
        ->check(CLI::Range(1u, 1u << 20))
        ->capture_default_str();
    app.add_option("--cluster-kib", o.cluster_kib, "pool cluster size, KiB")->capture_default_str();
    app.add_option("--lat-qd", o.lat_qd, "case 2 also measures randwrite at this QD (latency)")
        ->check(CLI::Range(1u, 1024u))
        ->capture_default_str();
    app.add_flag("--show-rounds", o.show_rounds,
                 "print every timed case's figures as it ends (stderr)");
    app.add_option("--sample-every", o.sample_every, "time 1 I/O in this many (latency figures)")
        ->check(CLI::Range(1u, 1u << 20))
        ->capture_default_str();
    app.add_option("--file", o.file,
                   "also run cases 1 and 3 on a pool on an O_DIRECT file at this path (must not "
                   "exist; removed at the end)");
    app.add_option("--placement", o.placement,
                   "where the target end of the remote children's queues runs: remote (the queues "
                   "the load uses on the last reactor, off the generator's) or rr (wherever "
                   "tcp_server's round robin puts the connects of nexus::open)")
        ->check(CLI::IsMember({"remote", "rr"}))
        ->capture_default_str();
    app.add_option("--cases", o.cases, "which cases to run, e.g. 1,3")->capture_default_str();
    app.add_flag("--verbose", o.verbose,
                 "log at info level (nexus and target events; by default only errors)");
    app.add_flag("!--no-pretouch", o.pretouch,
                 "skip the QD 1 pass that writes the whole device before each timed write case "
                 "(the nexuses' write-intent bits are then set by the timed load itself)");
    CLI11_PARSE(app, argc, argv);
    // Removing a child logs a warning by design (case 3 and 4 do it every round).
    spdlog::set_level(o.verbose ? spdlog::level::info : spdlog::level::err);

    std::string cmdline;
    for (int i = 0; i < argc; ++i) cmdline += (i ? " " : "") + std::string(argv[i]);
    std::vector<int> cpus;
    for (unsigned i = 0; i < o.reactors; ++i) cpus.push_back(o.cpu < 0 ? -1 : o.cpu + int(i));
    fmt::print("weft-nexus-bench\n");
    fmt::print("command: {}\n", cmdline);
    fmt::print("machine: {} CPUs online, {}\n", ncpu, cpu_model());
    fmt::print(
        "4 KiB random I/O, QD {} on reactor 0 of {} (CPUs {}), {} MiB nexuses on a malloc pool "
        "({} KiB clusters); {} interleaved rounds of {} s warm-up + {} s per case; medians\n",
        o.qd, o.reactors,
        o.cpu < 0 ? std::string("unpinned")
                  : fmt::format("{}..{}", o.cpu, o.cpu + int(o.reactors) - 1),
        o.size_mib, o.cluster_kib, o.rounds, o.warmup, o.secs);
    std::fflush(stdout);

    runtime rt({.cpus = cpus});
    return rt.run([&s]() { return bench_main(&s); });
}
