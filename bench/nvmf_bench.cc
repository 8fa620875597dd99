// weft-nvmf-bench: weft's NVMe/TCP target against two ceilings, in one run.
//
//   weft       the target (nvmf::target + tcp_server) serving a malloc (or
//              null) namespace on one reactor pinned to --target-cpu
//   responder  min_responder.h on the same core: just enough NVMe/TCP for the
//              initiator, canned data, no I/O; the network and kernel alone
//   device     the same bdev driven directly through a channel on that core,
//              no network; the device alone
//
// weft and the responder are driven by the same client: weft's initiator
// library on its own runtime pinned to --client-cpu, QD commands in flight
// on one I/O queue, random LBAs (sequential for 128 KiB), --warmup then
// --seconds per case. The device is driven by the same load generator, run
// on the target core. The three run back to back for every case, so that
// each ratio compares figures taken on the same machine minutes apart.
//
// Target CPU is the thread CPU time of the target reactor thread
// (pthread_getcpuclockid, read from the client thread) over the measured
// interval; loopback TCP does part of the peer's receive work in the
// sender's context, so each side's figure includes some of the other's.
#include <fmt/core.h>
#include <fmt/os.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bdev/bdev.h"
#include "initiator/controller.h"
#include "initiator/ns.h"
#include "latency.h"
#include "min_responder.h"
#include "nvmf/target.h"
#include "nvmf/tcp_server.h"
#include "runtime/buffer_pool.h"
#include "runtime/runtime.h"
#include "runtime/uring_op.h"

namespace {

using steady = std::chrono::steady_clock;
using namespace weft;

constexpr const char* subnqn = "nqn.2026-11.io.weft:bench";
constexpr const char* hostnqn =
    "nqn.2014-08.org.nvmexpress:uuid:be0c0000-0000-4000-8000-000000000001";
constexpr uint32_t block_size = 4096;

[[noreturn]] void die(const std::string& what) {
    fmt::print(stderr, "weft-nvmf-bench: {}\n", what);
    std::fflush(stderr);
    std::_Exit(1);  // reactors may be blocked in the kernel: do not unwind
}

double clock_seconds(clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// ---- what is measured --------------------------------------------------------

enum class system_kind { weft, responder, device };
constexpr system_kind all_systems[] = {system_kind::weft, system_kind::responder,
                                       system_kind::device};
const char* name_of(system_kind s) {
    switch (s) {
        case system_kind::weft:
            return "weft";
        case system_kind::responder:
            return "responder";
        case system_kind::device:
            return "device";
    }
    return "?";
}

struct case_spec {
    std::string name;  // "4k-randread-qd8"
    bool write = false;
    bool sequential = false;
    uint32_t io_bytes = 4096;
    unsigned qd = 1;
};

struct figures {
    double seconds = 0;
    uint64_t ops = 0;
    uint64_t errors = 0;
    int first_error = 0;
    double iops = 0, mib_s = 0;
    double p50_us = 0, p99_us = 0;
    double target_cpu = 0, client_cpu = 0;  // seconds over the interval
    double target_cpu_pct() const { return seconds > 0 ? 100 * target_cpu / seconds : 0; }
    double client_cpu_pct() const { return seconds > 0 ? 100 * client_cpu / seconds : 0; }
    double cpu_per_mio() const { return ops ? target_cpu / double(ops) * 1e6 : 0; }
};

// ---- I/O paths: the initiator's namespace, or a bdev channel -------------------

class io_path {
  public:
    virtual ~io_path() = default;
    // 0 or -errno (-EIO for an NVMe error status).
    virtual task<int> read(uint64_t lba, uint32_t nblocks, const iovec* iov) = 0;
    virtual task<int> write(uint64_t lba, uint32_t nblocks, const iovec* iov) = 0;
};

class ns_path final : public io_path {
  public:
    explicit ns_path(initiator::ns* disk) : disk_(disk) {}
    task<int> read(uint64_t lba, uint32_t nblocks, const iovec* iov) override {
        std::span<const iovec> v(iov, 1);
        auto r = co_await disk_->read(lba, nblocks, v);
        co_return !r ? -r.err().code : (r->ok() ? 0 : -EIO);
    }
    task<int> write(uint64_t lba, uint32_t nblocks, const iovec* iov) override {
        std::span<const iovec> v(iov, 1);
        auto r = co_await disk_->write(lba, nblocks, v);
        co_return !r ? -r.err().code : (r->ok() ? 0 : -EIO);
    }

  private:
    initiator::ns* disk_;
};

class bdev_path final : public io_path {
  public:
    explicit bdev_path(bdev::channel* ch) : ch_(ch) {}
    task<int> read(uint64_t lba, uint32_t nblocks, const iovec* iov) override {
        std::span<const iovec> v(iov, 1);
        co_return co_await ch_->read(lba, nblocks, v);
    }
    task<int> write(uint64_t lba, uint32_t nblocks, const iovec* iov) override {
        std::span<const iovec> v(iov, 1);
        co_return co_await ch_->write(lba, nblocks, v, false);
    }

  private:
    bdev::channel* ch_;
};

// ---- the load generator ---------------------------------------------------------

// One case on one system. Lives in the client's frame; the workers and the
// driver get a pointer (never a lambda capture: GCC 12 loses those).
struct load_run {
    case_spec spec;
    io_path* path = nullptr;
    uint64_t num_blocks = 0;
    double warmup = 0.5, seconds = 3;
    clockid_t target_clock{};  // the target reactor thread's CPU clock
    // The malloc and null bdevs complete without suspending: without a yield
    // now and then the workers would never let the reactor reap the timer.
    unsigned yield_every = 0;

    enum class phase { warmup, measure, done } ph = phase::warmup;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    uint64_t seq_next = 0;
    unsigned running = 0;
    std::coroutine_handle<> drained;
    std::vector<uint32_t> lat_ns;
    figures fig;

    uint64_t next_lba(uint32_t nblocks) {
        uint64_t slots = num_blocks / nblocks;
        if (spec.sequential) return (seq_next++ % slots) * nblocks;
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;  // xorshift64
        return (rng % slots) * nblocks;
    }
};

task<void> load_worker(load_run* r) {
    buffer buf = buffer_pool::local().get(r->spec.io_bytes);
    std::fill_n(buf.data(), buf.size(), std::byte{0x5a});
    iovec iov{buf.data(), buf.size()};
    uint32_t nblocks = r->spec.io_bytes / block_size;
    unsigned since_yield = 0;
    while (r->ph != load_run::phase::done) {
        if (r->yield_every && ++since_yield == r->yield_every) {
            since_yield = 0;
            co_await yield{};
        }
        uint64_t lba = r->next_lba(nblocks);
        auto t0 = steady::now();
        int rc = r->spec.write ? co_await r->path->write(lba, nblocks, &iov)
                               : co_await r->path->read(lba, nblocks, &iov);
        if (rc != 0) {
            // A failed queue fails every command at once: stop rather than spin.
            if (r->fig.errors++ == 0) r->fig.first_error = -rc;
            break;
        }
        if (r->ph == load_run::phase::measure) {
            auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now() - t0);
            r->lat_ns.push_back(uint32_t(std::min<int64_t>(ns.count(), UINT32_MAX)));
        }
    }
    if (--r->running == 0 && r->drained) reactor::local().schedule(r->drained);
}

using weft::bench::percentile_us;

// Runs a case on the calling reactor: QD workers, warm-up, measured interval.
task<void> drive(load_run* r) {
    r->lat_ns.reserve(1u << 20);
    r->running = r->spec.qd;
    for (unsigned i = 0; i < r->spec.qd; ++i) reactor::local().spawn(load_worker(r));
    co_await sleep(std::chrono::duration<double>(r->warmup));
    auto t0 = steady::now();
    double c0 = clock_seconds(CLOCK_THREAD_CPUTIME_ID);
    double s0 = clock_seconds(r->target_clock);
    r->ph = load_run::phase::measure;
    co_await sleep(std::chrono::duration<double>(r->seconds));
    r->ph = load_run::phase::done;
    figures& f = r->fig;
    f.seconds = std::chrono::duration<double>(steady::now() - t0).count();
    f.client_cpu = clock_seconds(CLOCK_THREAD_CPUTIME_ID) - c0;
    f.target_cpu = clock_seconds(r->target_clock) - s0;
    struct drain_awaiter {
        load_run* r;
        bool await_ready() const { return r->running == 0; }
        void await_suspend(std::coroutine_handle<> h) { r->drained = h; }
        void await_resume() const {}
    };
    co_await drain_awaiter{r};
    f.ops = r->lat_ns.size();
    f.iops = double(f.ops) / f.seconds;
    f.mib_s = f.iops * r->spec.io_bytes / double(1 << 20);
    f.p50_us = percentile_us(r->lat_ns, 0.50);
    f.p99_us = percentile_us(r->lat_ns, 0.99);
    r->lat_ns = {};
}

// ---- a call from the client runtime into the target runtime ----------------------

// The two runtimes share no message rings (on() works within one), so a
// device case travels to the target reactor through an eventfd each way.
auto read_eventfd(int fd, uint64_t* v) {
    return make_op([fd, v](io_uring_sqe* s) { io_uring_prep_read(s, fd, v, sizeof *v, 0); });
}

class mailbox {
  public:
    mailbox() : request_(eventfd(0, EFD_CLOEXEC)), reply_(eventfd(0, EFD_CLOEXEC)) {
        if (request_ < 0 || reply_ < 0) die("eventfd failed");
    }
    ~mailbox() {
        ::close(request_);
        ::close(reply_);
    }
    // Client side: the target reactor runs `r` with its device path; nullptr
    // ends serve().
    task<void> call(load_run* r) {
        job_ = r;
        signal(request_);
        if (!r) co_return;
        uint64_t v = 0;
        co_await read_eventfd(reply_, &v);
    }
    // Target side.
    task<void> serve(io_path* device) {
        for (;;) {
            uint64_t v = 0;
            co_await read_eventfd(request_, &v);
            load_run* r = job_;
            if (!r) break;
            r->path = device;
            r->yield_every = 16;
            co_await drive(r);
            signal(reply_);
        }
    }

  private:
    static void signal(int fd) {
        uint64_t one = 1;
        if (::write(fd, &one, sizeof one) != sizeof one) die("eventfd write failed");
    }
    int request_, reply_;
    load_run* job_ = nullptr;  // published by the eventfd write, read after its read
};

// ---- the target side ----------------------------------------------------------

struct options {
    int target_cpu = 0;
    int client_cpu = 1;
    double seconds = 3;
    double warmup = 0.5;
    std::vector<unsigned> qds{1, 8, 32, 128};
    unsigned seq_qd = 8;
    unsigned rounds = 2;
    unsigned direct_rounds = 5;   // the direct-receive A/B (0: skipped)
    unsigned latency_rounds = 7;  // the interleaved QD1 latency comparison (0: skipped)
    std::string bdev_kind = "malloc";
    uint64_t ns_mib = 256;
    std::string json_path, markdown_path, plot_path;
};

struct target_env {
    const options* opt;
    mailbox mb;
    std::promise<void> ready;
    clockid_t clock{};
    socket_address weft_addr, responder_addr;
    socket_address weft_copy_addr;  // the same target, large data PDUs copied
    socket_address weft_late_addr;  // the same target, receives armed before sends
};

task<int> target_main(target_env* env) {
    const options& o = *env->opt;
    uint64_t blocks = o.ns_mib * (1u << 20) / block_size;
    std::shared_ptr<bdev::bdev> dev = o.bdev_kind == "null"
                                          ? bdev::make_null_bdev("bench0", blocks, block_size)
                                          : bdev::make_malloc_bdev("bench0", blocks, block_size);
    if (!dev) die("cannot make the bdev");
    auto ch = dev->open_channel();
    bdev_path device(ch.get());
    {
        // Touch every page now, so that no case pays the malloc bdev's first-touch faults.
        buffer b = buffer_pool::local().get(1u << 20);
        std::fill_n(b.data(), b.size(), std::byte{0xa5});
        iovec iov{b.data(), b.size()};
        uint32_t n = uint32_t(b.size() / block_size);
        for (uint64_t lba = 0; lba + n <= blocks; lba += n)
            if (int rc = co_await device.write(lba, n, &iov); rc != 0) die("prefill failed");
    }

    auto tgt = std::make_unique<nvmf::target>();
    auto ss = tgt->add_subsystem(subnqn, "WEFTBENCH0001", "weft bench");
    if (!ss) die("add_subsystem failed");
    ss.value()->allow_any_host(true);
    if (!ss.value()->add_namespace(1, dev, {})) die("add_namespace failed");
    auto server = std::make_unique<nvmf::tcp_server>(*tgt, nvmf::tcp_options{}, 1);
    socket_address any = socket_address::ipv4("127.0.0.1", 0);
    if (auto r = co_await server->listen(any); !r) die("target listen: " + r.err().message());
    env->weft_addr = server->addresses().front();
    tgt->add_listen_address(env->weft_addr);
    nvmf::tcp_options copying;
    copying.direct_data_min = nvmf::tcp::direct_data_off;
    auto copy_server = std::make_unique<nvmf::tcp_server>(*tgt, copying, 1);
    if (auto r = co_await copy_server->listen(any); !r) die("target listen: " + r.err().message());
    env->weft_copy_addr = copy_server->addresses().front();
    tgt->add_listen_address(env->weft_copy_addr);
    nvmf::tcp_options late;
    late.sends_first = false;
    auto late_server = std::make_unique<nvmf::tcp_server>(*tgt, late, 1);
    if (auto r = co_await late_server->listen(any); !r) die("target listen: " + r.err().message());
    env->weft_late_addr = late_server->addresses().front();
    tgt->add_listen_address(env->weft_late_addr);

    auto responder = std::make_unique<bench::min_responder>(
        bench::responder_options{.num_blocks = blocks, .block_size = block_size});
    auto raddr = responder->listen(any);
    if (!raddr) die("responder listen: " + raddr.err().message());
    env->responder_addr = raddr.value();
    responder->start();

    if (pthread_getcpuclockid(pthread_self(), &env->clock) != 0) die("pthread_getcpuclockid");
    env->ready.set_value();
    co_await env->mb.serve(&device);

    co_await responder->stop();
    co_await copy_server->stop();
    co_await late_server->stop();
    co_await server->stop();
    (void)ss.value()->remove_namespace(1);
    ch.reset();
    co_return 0;
}

// ---- the client side ------------------------------------------------------------

struct row {
    case_spec spec;
    figures fig[3];  // by system_kind
};

task<std::unique_ptr<initiator::controller>> connect_to(socket_address addr,
                                                        bool direct_data = true,
                                                        bool sends_first = true) {
    initiator::controller_options o;
    if (!direct_data) o.direct_data_min = nvmf::tcp::direct_data_off;
    o.sends_first = sends_first;
    o.address = addr;
    o.subnqn = subnqn;
    o.hostnqn = hostnqn;
    o.io_queues = 1;
    o.queue_depth = 128;
    o.kato_ms = 0;  // nothing but the measured I/O on the wire
    auto c = co_await initiator::controller::connect(o);
    if (!c) die(fmt::format("cannot connect to {}: {}", addr.to_string(), c.err().message()));
    co_return std::move(c.value());
}

void print_figures(const case_spec& c, system_kind s, const figures& f) {
    fmt::print(
        "{:<18} {:<9} {:>9.0f} {:>8.1f} {:>8.1f} {:>8.1f} {:>7.0f} {:>7.0f} {:>8.2f}{}\n", c.name,
        name_of(s), f.iops, f.mib_s, f.p50_us, f.p99_us, f.target_cpu_pct(), f.client_cpu_pct(),
        f.cpu_per_mio(),
        f.errors ? fmt::format("  {} errors (first: {})", f.errors, strerror(f.first_error)) : "");
    std::fflush(stdout);
}

double ratio(double a, double b) {
    return b > 0 ? a / b : NAN;
}

// ---- direct data receive against copying out of the receive buffer -------------

// One 128 KiB case, interleaved rounds of the two ways; the CPU compared is
// the side whose receive path differs (the client's for reads, the
// target's for writes).
struct ab_row {
    std::string name;
    bool client_side = true;
    std::vector<double> iops_ratio, cpu_ratio;  // direct / copying, per round
    uint64_t errors = 0;
};

// The median of the figures that are numbers (NAN: none).
double median(std::vector<double> v) {
    std::erase_if(v, [](double x) { return std::isnan(x); });
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

double cpu_per_io(const figures& f, bool client_side) {
    return f.ops ? (client_side ? f.client_cpu : f.target_cpu) / double(f.ops) : NAN;
}

// One measured run of `spec` through a connection. g++ 12 destroys a
// temporary argument of a co_awaited call twice: callers pass a named spec.
task<figures> run_path(target_env* env, const case_spec& spec, uint64_t blocks, io_path* path,
                       double warmup, double seconds) {
    auto r = std::make_unique<load_run>();
    r->spec = spec;
    r->num_blocks = blocks;
    r->warmup = warmup;
    r->seconds = seconds;
    r->target_clock = env->clock;
    r->path = path;
    co_await drive(r.get());
    co_return r->fig;
}

task<void> direct_ab(target_env* env, io_path* direct[2], io_path* copying[2], uint64_t blocks,
                     std::vector<ab_row>* out) {
    const options& o = *env->opt;
    struct ab_case {
        const char* name;
        bool write;
        int path;  // 0: weft, 1: responder
    };
    const ab_case cases[] = {{"128k-seqread weft", false, 0},
                             {"128k-seqwrite weft", true, 0},
                             {"128k-seqread responder", false, 1}};
    fmt::print("\nDirect data receive vs copying out of the receive buffer (128 KiB, QD{}):\n",
               o.seq_qd);
    for (const ab_case& c : cases) {
        ab_row row{c.name, !c.write, {}, {}};
        const case_spec spec{c.name, c.write, true, 128 * 1024, o.seq_qd};
        for (unsigned round = 0; round < o.direct_rounds; ++round) {
            figures f[2];
            for (int k = 0; k < 2; ++k) {
                int way = round % 2 == 0 ? k : 1 - k;  // alternate which runs first
                f[way] = co_await run_path(env, spec, blocks,
                                           way == 0 ? direct[c.path] : copying[c.path], o.warmup,
                                           o.seconds);
                row.errors += f[way].errors;
            }
            row.iops_ratio.push_back(ratio(f[0].iops, f[1].iops));
            row.cpu_ratio.push_back(
                ratio(cpu_per_io(f[0], row.client_side), cpu_per_io(f[1], row.client_side)));
        }
        fmt::print(
            "  {:<24} IOPS direct/copying x{:.2f}   {} CPU per I/O x{:.2f}   (median of {}){}\n",
            row.name, median(row.iops_ratio), row.client_side ? "client" : "target",
            median(row.cpu_ratio), row.iops_ratio.size(),
            row.errors ? fmt::format("  {} I/O errors: figures not valid", row.errors) : "");
        std::fflush(stdout);
        out->push_back(std::move(row));
    }
}

// ---- QD1 latency, weft against the responder, interleaved -------------------------

// A p50 from one run swings by several microseconds with the machine's state
// (a VM's neighbours), more than the differences looked for: so short runs,
// alternating, and the medians of the per-round differences. Besides weft
// against the responder, what sends_first (tcp_options, controller_options) is
// worth on each side: the target with it off (same client), and the client
// with it off (against the responder).
struct latency_row {
    std::string name;
    // per round, us
    std::vector<double> weft_p50, responder_p50, p50_diff, p99_diff, target_sf, client_sf;
    uint64_t errors = 0;
};

enum latency_path { lp_weft, lp_responder, lp_weft_late, lp_responder_late_client, lp_count };

task<void> qd1_latency(target_env* env, io_path* paths[lp_count], uint64_t blocks,
                       std::vector<latency_row>* out) {
    const options& o = *env->opt;
    const double seconds = std::min(o.seconds, 0.5);
    fmt::print("\nQD1 latency ({} interleaved rounds of {} s per system):\n", o.latency_rounds,
               seconds);
    for (bool write : {false, true}) {
        latency_row row;
        row.name = write ? "4k-randwrite-qd1" : "4k-randread-qd1";
        const case_spec spec{row.name, write, false, 4096, 1};
        for (unsigned round = 0; round < o.latency_rounds; ++round) {
            figures f[lp_count];
            for (int k = 0; k < lp_count; ++k) {
                // Rotate which runs first, and reverse the order on odd
                // rounds, so that no system always follows the same one.
                int who = round % 2 ? (lp_count - 1 - k + int(round)) % lp_count
                                    : (k + int(round)) % lp_count;
                f[who] = co_await run_path(env, spec, blocks, paths[who], std::min(o.warmup, 0.2),
                                           seconds);
                row.errors += f[who].errors;
            }
            // A run without I/O or with errors has no latency to compare: NAN,
            // which the medians skip.
            auto p50 = [&](int who) { return f[who].ops && !f[who].errors ? f[who].p50_us : NAN; };
            auto p99 = [&](int who) { return f[who].ops && !f[who].errors ? f[who].p99_us : NAN; };
            row.weft_p50.push_back(p50(lp_weft));
            row.responder_p50.push_back(p50(lp_responder));
            row.p50_diff.push_back(p50(lp_weft) - p50(lp_responder));
            row.p99_diff.push_back(p99(lp_weft) - p99(lp_responder));
            row.target_sf.push_back(p50(lp_weft) - p50(lp_weft_late));
            row.client_sf.push_back(p50(lp_responder) - p50(lp_responder_late_client));
        }
        fmt::print(
            "  {:<18} p50 weft {:.1f} us, responder {:.1f} us; weft-responder p50 {:+.2f} us, "
            "p99 {:+.2f} us; sends first, target {:+.2f} us, client {:+.2f} us (p50, medians "
            "of {}){}\n",
            row.name, median(row.weft_p50), median(row.responder_p50), median(row.p50_diff),
            median(row.p99_diff), median(row.target_sf), median(row.client_sf), row.p50_diff.size(),
            row.errors ? fmt::format("  {} I/O errors: figures not valid", row.errors) : "");
        std::fflush(stdout);
        out->push_back(std::move(row));
    }
}

task<int> client_main(target_env* env, std::vector<case_spec>* cases, std::vector<row>* rows,
                      std::vector<ab_row>* ab, std::vector<latency_row>* lat) {
    const options& o = *env->opt;
    auto weft_ctrl = co_await connect_to(env->weft_addr);
    auto resp_ctrl = co_await connect_to(env->responder_addr);
    initiator::ns weft_ns(*weft_ctrl, weft_ctrl->namespace_ids().front());
    initiator::ns resp_ns(*resp_ctrl, resp_ctrl->namespace_ids().front());
    ns_path weft_path(&weft_ns), resp_path(&resp_ns);

    fmt::print("{:<18} {:<9} {:>9} {:>8} {:>8} {:>8} {:>7} {:>7} {:>8}\n", "case", "system", "IOPS",
               "MiB/s", "p50 us", "p99 us", "tgt%", "cli%", "CPUs/1M");
    for (const case_spec& c : *cases) {
        row rw{c, {}};
        for (unsigned round = 0; round < o.rounds; ++round) {
            // Odd rounds swap weft and the responder, so neither always runs first.
            for (system_kind s : all_systems) {
                if (round % 2 == 1 && s != system_kind::device)
                    s = s == system_kind::weft ? system_kind::responder : system_kind::weft;
                auto r = std::make_unique<load_run>();
                r->spec = c;
                r->num_blocks = weft_ns.num_blocks();
                r->warmup = o.warmup;
                r->seconds = o.seconds;
                r->target_clock = env->clock;
                if (s == system_kind::device) {
                    co_await env->mb.call(r.get());
                } else {
                    r->path =
                        s == system_kind::weft ? static_cast<io_path*>(&weft_path) : &resp_path;
                    co_await drive(r.get());
                }
                // Other work on a shared machine only ever slows a run down: keep the best.
                if (r->fig.iops > rw.fig[int(s)].iops) rw.fig[int(s)] = r->fig;
                print_figures(c, s, r->fig);
            }
        }
        const figures* f = rw.fig;
        fmt::print(
            "{:<18} weft/responder x{:.2f}  weft/device x{:.2f}  CPU per I/O vs responder "
            "x{:.2f}\n",
            "", ratio(f[0].iops, f[1].iops), ratio(f[0].iops, f[2].iops),
            ratio(f[0].cpu_per_mio(), f[1].cpu_per_mio()));
        rows->push_back(rw);
    }
    if (o.direct_rounds > 0) {
        auto weft_copy = co_await connect_to(env->weft_copy_addr, false);
        auto resp_copy = co_await connect_to(env->responder_addr, false);
        initiator::ns weft_copy_ns(*weft_copy, weft_copy->namespace_ids().front());
        initiator::ns resp_copy_ns(*resp_copy, resp_copy->namespace_ids().front());
        ns_path weft_copy_path(&weft_copy_ns), resp_copy_path(&resp_copy_ns);
        io_path* direct[2] = {&weft_path, &resp_path};
        io_path* copying[2] = {&weft_copy_path, &resp_copy_path};
        co_await direct_ab(env, direct, copying, weft_ns.num_blocks(), ab);
        co_await weft_copy->disconnect();
        co_await resp_copy->disconnect();
    }
    if (o.latency_rounds > 0) {
        auto weft_late = co_await connect_to(env->weft_late_addr);
        auto resp_late = co_await connect_to(env->responder_addr, true, false);
        initiator::ns weft_late_ns(*weft_late, weft_late->namespace_ids().front());
        initiator::ns resp_late_ns(*resp_late, resp_late->namespace_ids().front());
        ns_path weft_late_path(&weft_late_ns), resp_late_path(&resp_late_ns);
        io_path* paths[lp_count] = {&weft_path, &resp_path, &weft_late_path, &resp_late_path};
        co_await qd1_latency(env, paths, weft_ns.num_blocks(), lat);
        co_await weft_late->disconnect();
        co_await resp_late->disconnect();
    }
    co_await weft_ctrl->disconnect();
    co_await resp_ctrl->disconnect();
    co_await env->mb.call(nullptr);
    co_return 0;
}

// ---- reports ------------------------------------------------------------------------

std::string fmt_num(double v) {
    if (std::isnan(v)) return "-";
    return v >= 100 ? fmt::format("{:.0f}", v) : fmt::format("{:.2f}", v);
}

void write_json(const std::string& path, const options& o, const std::vector<row>& rows) {
    auto out = fmt::output_file(path);
    out.print(
        "{{\n  \"options\": {{\"target_cpu\": {}, \"client_cpu\": {}, \"seconds\": {}, "
        "\"warmup\": {}, \"rounds\": {}, \"bdev\": \"{}\", \"ns_mib\": {}, \"block_size\": "
        "{}}},\n",
        o.target_cpu, o.client_cpu, o.seconds, o.warmup, o.rounds, o.bdev_kind, o.ns_mib,
        block_size);
    out.print("  \"results\": [\n");
    bool first = true;
    for (const row& r : rows) {
        for (system_kind s : all_systems) {
            const figures& f = r.fig[int(s)];
            out.print(
                "{}    {{\"case\": \"{}\", \"system\": \"{}\", \"rw\": \"{}\", \"pattern\": "
                "\"{}\", "
                "\"io_bytes\": {}, \"qd\": {}, \"seconds\": {:.3f}, \"ios\": {}, \"iops\": {:.1f}, "
                "\"mib_s\": {:.2f}, \"p50_us\": {:.2f}, \"p99_us\": {:.2f}, "
                "\"target_cpu_pct\": {:.1f}, \"client_cpu_pct\": {:.1f}, "
                "\"target_cpu_s_per_mio\": {:.3f}, \"errors\": {}}}",
                first ? "" : ",\n", r.spec.name, name_of(s), r.spec.write ? "write" : "read",
                r.spec.sequential ? "seq" : "rand", r.spec.io_bytes, r.spec.qd, f.seconds, f.ops,
                f.iops, f.mib_s, f.p50_us, f.p99_us, f.target_cpu_pct(), f.client_cpu_pct(),
                f.cpu_per_mio(), f.errors);
            first = false;
        }
    }
    out.print("\n  ]\n}}\n");
}

void write_markdown(const std::string& path, const options& o, const std::vector<row>& rows,
                    const std::vector<ab_row>& ab, const std::vector<latency_row>& lat) {
    auto out = fmt::output_file(path);
    out.print(
        "## Throughput\n\n{} namespace of {} MiB ({} B blocks); target on CPU {}, client on "
        "CPU {}; {} s per case after {} s warm-up, best of {} rounds. 4 KiB cases in IOPS, "
        "128 KiB cases in MiB/s.\n\n",
        o.bdev_kind, o.ns_mib, block_size, o.target_cpu, o.client_cpu, o.seconds, o.warmup,
        o.rounds);
    out.print(
        "| case | weft | responder | device | weft/responder | weft/device |\n"
        "|---|--:|--:|--:|--:|--:|\n");
    for (const row& r : rows) {
        auto v = [&](int s) { return r.spec.io_bytes > 4096 ? r.fig[s].mib_s : r.fig[s].iops; };
        out.print("| {}{} | {} | {} | {} | x{:.2f} | x{:.2f} |\n", r.spec.name,
                  r.spec.io_bytes > 4096 ? " (MiB/s)" : "", fmt_num(v(0)), fmt_num(v(1)),
                  fmt_num(v(2)), ratio(v(0), v(1)), ratio(v(0), v(2)));
    }
    out.print(
        "\n## CPU of the target core\n\nThread CPU of the serving reactor over the measured "
        "interval: CPU seconds per million I/Os (and % of the core busy). A reactor busy-polls "
        "50 us after its last work, so at low QD the core reads 100% busy and the figure is "
        "time per I/O rather than work per I/O. For `device` the load generator runs on that "
        "thread too.\n\n"
        "| case | weft | responder | device | weft/responder | weft/device |\n"
        "|---|--:|--:|--:|--:|--:|\n");
    for (const row& r : rows) {
        const figures* f = r.fig;
        out.print(
            "| {} | {:.2f} ({:.0f}%) | {:.2f} ({:.0f}%) | {:.2f} ({:.0f}%) | x{:.2f} | x{:.2f} |\n",
            r.spec.name, f[0].cpu_per_mio(), f[0].target_cpu_pct(), f[1].cpu_per_mio(),
            f[1].target_cpu_pct(), f[2].cpu_per_mio(), f[2].target_cpu_pct(),
            ratio(f[0].cpu_per_mio(), f[1].cpu_per_mio()),
            ratio(f[0].cpu_per_mio(), f[2].cpu_per_mio()));
    }
    out.print(
        "\n## Latency (µs)\n\n| case | weft p50 | weft p99 | responder p50 | responder p99 "
        "| device p50 | device p99 | weft/responder p50 |\n|---|--:|--:|--:|--:|--:|--:|--:|\n");
    for (const row& r : rows) {
        if (r.spec.qd != 1) continue;
        const figures* f = r.fig;
        out.print("| {} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.2f} | {:.2f} | x{:.2f} |\n",
                  r.spec.name, f[0].p50_us, f[0].p99_us, f[1].p50_us, f[1].p99_us, f[2].p50_us,
                  f[2].p99_us, ratio(f[0].p50_us, f[1].p50_us));
    }
    out.print(
        "\n## Is the client the bottleneck?\n\nOne initiator core drives both weft and the "
        "responder. If it drives more I/O against the responder, weft is what limits the "
        "weft figures, not the client.\n\n"
        "| case | client vs responder | client vs weft | responder/weft | client CPU vs "
        "responder | verdict |\n|---|--:|--:|--:|--:|---|\n");
    for (const row& r : rows) {
        const figures* f = r.fig;
        double k = ratio(f[1].iops, f[0].iops);
        out.print("| {} | {} IOPS | {} IOPS | x{:.2f} | {:.0f}% | {} |\n", r.spec.name,
                  fmt_num(f[1].iops), fmt_num(f[0].iops), k, f[1].client_cpu_pct(),
                  k > 1.05   ? "client not the limit"
                  : k < 0.95 ? "**client drives less against the responder**"
                             : "inconclusive (within 5%)");
    }
    bool any_errors = false;
    for (const row& r : rows)
        for (const figures& f : r.fig) any_errors |= f.errors > 0;
    if (any_errors) out.print("\n**Some cases had I/O errors: see the JSON.**\n");
    if (!lat.empty()) {
        out.print(
            "\n## QD1 latency, interleaved\n\nweft and the responder in alternating runs of "
            "{} s, {} rounds: medians of each round's p50 and of the per-round differences "
            "(one run's p50 moves by more than the difference with the machine's state). "
            "Sends first: the p50 with the next receive armed after the sends it led to, "
            "minus the p50 with it armed at once; on the target (weft, same client) and on "
            "the client (against the responder).\n\n"
            "| case | weft p50 | responder p50 | weft-responder p50 | weft-responder p99 "
            "| sends first, target | sends first, client |\n|---|--:|--:|--:|--:|--:|--:|\n",
            std::min(o.seconds, 0.5), o.latency_rounds);
        for (const latency_row& r : lat)
            out.print("| {} | {:.1f} | {:.1f} | {:+.2f} | {:+.2f} | {:+.2f} | {:+.2f}{} |\n",
                      r.name, median(r.weft_p50), median(r.responder_p50), median(r.p50_diff),
                      median(r.p99_diff), median(r.target_sf), median(r.client_sf),
                      r.errors ? " **I/O errors**" : "");
    }
    if (ab.empty()) return;
    out.print(
        "\n## Direct data receive\n\nLarge C2HData (client) and H2CData (target) received "
        "straight into the command's buffers against copied out of the connection's receive "
        "buffer: 128 KiB, QD{}, medians of {} interleaved rounds of direct/copying ratios. "
        "The CPU is the side whose receive path differs.\n\n"
        "| case | IOPS direct/copying | CPU per I/O direct/copying |\n|---|--:|--:|\n",
        o.seq_qd, o.direct_rounds);
    for (const ab_row& r : ab)
        out.print("| {} | x{:.2f} | x{:.2f} ({}){} |\n", r.name, median(r.iops_ratio),
                  median(r.cpu_ratio), r.client_side ? "client" : "target",
                  r.errors ? " **I/O errors**" : "");
}

// Columns: QD, then 4k random read IOPS of weft, responder, device, then writes.
void write_plot_data(const std::string& path, const options& o, const std::vector<row>& rows) {
    auto out = fmt::output_file(path);
    out.print(
        "# qd weft_read responder_read device_read weft_write responder_write device_write\n");
    for (unsigned qd : o.qds) {
        const row *rd = nullptr, *wr = nullptr;
        for (const row& r : rows) {
            if (r.spec.qd != qd || r.spec.sequential) continue;
            (r.spec.write ? wr : rd) = &r;
        }
        if (!rd || !wr) continue;
        out.print("{} {:.0f} {:.0f} {:.0f} {:.0f} {:.0f} {:.0f}\n", qd, rd->fig[0].iops,
                  rd->fig[1].iops, rd->fig[2].iops, wr->fig[0].iops, wr->fig[1].iops,
                  wr->fig[2].iops);
    }
}

void print_summary(const std::vector<row>& rows) {
    fmt::print("\nsummary (ratios from this run):\n");
    for (const row& r : rows) {
        const figures* f = r.fig;
        fmt::print(
            "  {:<18} weft/responder IOPS x{:.2f}   weft/device IOPS x{:.2f}   "
            "weft/responder CPU per I/O x{:.2f}\n",
            r.spec.name, ratio(f[0].iops, f[1].iops), ratio(f[0].iops, f[2].iops),
            ratio(f[0].cpu_per_mio(), f[1].cpu_per_mio()));
    }
    fmt::print("\nclient check: one initiator core against the responder vs against weft:\n");
    for (const row& r : rows) {
        const figures* f = r.fig;
        double k = ratio(f[1].iops, f[0].iops);
        fmt::print("  {:<18} {:>9.0f} vs {:>9.0f} IOPS  x{:.2f}  {}\n", r.spec.name, f[1].iops,
                   f[0].iops, k,
                   k > 1.05   ? "client not the limit"
                   : k < 0.95 ? "CLIENT DRIVES LESS AGAINST THE RESPONDER: no ceiling here"
                              : "inconclusive: within 5%");
    }
}

std::vector<case_spec> make_cases(const options& o) {
    std::vector<case_spec> v;
    for (bool w : {false, true})
        for (unsigned qd : o.qds)
            v.push_back(
                {fmt::format("4k-rand{}-qd{}", w ? "write" : "read", qd), w, false, 4096, qd});
    for (bool w : {false, true})
        v.push_back({fmt::format("128k-seq{}-qd{}", w ? "write" : "read", o.seq_qd), w, true,
                     128 * 1024, o.seq_qd});
    return v;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "weft-nvmf-bench: weft's NVMe/TCP target (one core) against a minimal NVMe/TCP responder\n"
        "on the same core (network and kernel alone) and against its bdev driven directly (the\n"
        "device alone), with weft's initiator as the client on another core."};
    options o;
    app.add_option("--target-cpu", o.target_cpu,
                   "CPU the target, the responder and the device "
                   "cases run on")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    app.add_option("--client-cpu", o.client_cpu, "CPU the initiator client runs on")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    app.add_option("--seconds", o.seconds, "measured duration of each case")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--warmup", o.warmup, "unmeasured run before each case, seconds")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    app.add_option("--qd", o.qds, "queue depths of the 4 KiB random cases")
        ->capture_default_str()
        ->delimiter(',')
        ->check(CLI::Range(1, 128));
    app.add_option("--seq-qd", o.seq_qd, "queue depth of the 128 KiB sequential cases")
        ->capture_default_str()
        ->check(CLI::Range(1, 128));
    app.add_option("--rounds", o.rounds,
                   "runs of every case and system; the best of them is kept (noise only slows)")
        ->capture_default_str()
        ->check(CLI::Range(1, 10));
    app.add_option("--direct-rounds", o.direct_rounds,
                   "interleaved rounds of the 128 KiB direct-receive vs copying comparison "
                   "(0: skip it)")
        ->capture_default_str()
        ->check(CLI::Range(0, 21));
    app.add_option("--latency-rounds", o.latency_rounds,
                   "interleaved rounds of the QD1 latency comparison with the responder "
                   "(0: skip it; odd numbers have a true median)")
        ->capture_default_str()
        ->check(CLI::Range(0u, 31u));
    app.add_option("--bdev", o.bdev_kind, "namespace backend")
        ->capture_default_str()
        ->check(CLI::IsMember({"malloc", "null"}));
    app.add_option("--ns-mib", o.ns_mib, "namespace size, MiB")
        ->capture_default_str()
        ->check(CLI::Range(16, 1 << 16));
    app.add_option("--json", o.json_path, "write every figure as JSON here");
    app.add_option("--markdown", o.markdown_path, "write the tables as Markdown here");
    app.add_option("--plot-data", o.plot_path, "write 4k IOPS vs QD as gnuplot data here");
    CLI11_PARSE(app, argc, argv);

    std::signal(SIGPIPE, SIG_IGN);
    spdlog::set_level(spdlog::level::warn);
    if (o.target_cpu == o.client_cpu)
        fmt::print("warning: target and client share CPU {}; figures will not mean much\n",
                   o.target_cpu);
    auto cases = make_cases(o);
    fmt::print(
        "weft-nvmf-bench: {} namespace {} MiB, target CPU {}, client CPU {}, {} s + {} s "
        "warm-up per case, {} cases x 3 systems x {} rounds (the best round is kept)\n",
        o.bdev_kind, o.ns_mib, o.target_cpu, o.client_cpu, o.seconds, o.warmup, cases.size(),
        o.rounds);
    fmt::print(
        "tgt% / cli%: busy share of the target / client reactor thread; CPUs/1M: target "
        "CPU seconds per million I/Os\n\n");

    target_env env;
    env.opt = &o;
    auto ready = env.ready.get_future();
    std::thread target_thread([&env] {
        runtime rt({.cpus = {env.opt->target_cpu}});
        rt.run([&env]() { return target_main(&env); });
    });
    ready.wait();

    std::vector<row> rows;
    std::vector<ab_row> ab;
    std::vector<latency_row> lat;
    {
        runtime rt({.cpus = {o.client_cpu}});
        rt.run([&]() { return client_main(&env, &cases, &rows, &ab, &lat); });
    }
    target_thread.join();

    print_summary(rows);
    if (!o.json_path.empty()) write_json(o.json_path, o, rows);
    if (!o.markdown_path.empty()) write_markdown(o.markdown_path, o, rows, ab, lat);
    if (!o.plot_path.empty()) write_plot_data(o.plot_path, o, rows);
    return 0;
}
