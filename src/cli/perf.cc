// `weft nvme perf`: a load generator over weft's initiator (as spdk_nvme_perf).
//
// --queues I/O queues spread over the reactors of --cores; on each queue,
// --qd coroutines each keep one command in flight for --seconds. Latency is
// measured per command from submit to completion, into a per-queue
// histogram merged at the end; counters that the live progress line reads
// from reactor 0 are relaxed atomics.
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/connection.h"
#include "cli/format.h"
#include "cli/latency_histogram.h"
#include "initiator/ns.h"
#include "runtime/cpu_list.h"
#include "runtime/gate.h"
#include "runtime/runtime.h"
#include "runtime/uring_op.h"

namespace weft::cli {

namespace {

using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct perf_opts {
    connection_options c;
    unsigned qd = 32;
    std::string io_size = "4k";
    std::string rw = "randread";
    unsigned mix = 50;  // randrw: percent reads
    double seconds = 10;
    unsigned queues = 0;  // 0: one per core
    std::string cores;    // empty: one unpinned reactor
    bool as_json = false;
};

struct worker {
    // Set before the run.
    initiator::queue* q = nullptr;
    uint32_t nsid = 1;
    uint32_t block_size = 512;
    uint32_t io_blocks = 8;
    uint64_t first_lba = 0, span_blocks = 0;  // this worker's sequential region
    uint64_t disk_blocks = 0;
    bool random = true;
    unsigned read_percent = 100;
    const std::atomic<bool>* stop = nullptr;
    // Reactor-local while running.
    uint64_t rng = 0;
    uint64_t cursor = 0;
    latency_histogram hist;
    std::string first_error;
    // Read by the progress line on reactor 0.
    std::atomic<uint64_t> ios{0}, bytes{0}, errors{0};
};

uint64_t next_random(uint64_t& s) {  // xorshift64*
    s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
    return s * 2685821657736338717ull;
}

// One command in flight at a time, until told to stop or a command fails.
task<void> slot_loop(worker* w) {
    std::vector<std::byte> buf(size_t(w->io_blocks) * w->block_size, std::byte{0x5a});
    iovec iov{buf.data(), buf.size()};
    uint64_t slots = w->random ? (w->disk_blocks / w->io_blocks) : (w->span_blocks / w->io_blocks);
    while (!w->stop->load(std::memory_order_relaxed)) {
        uint64_t lba;
        if (w->random) {
            lba = (next_random(w->rng) % slots) * w->io_blocks;
        } else {
            lba = w->first_lba + (w->cursor++ % slots) * w->io_blocks;
        }
        bool read = w->read_percent >= 100 ||
                    (w->read_percent > 0 && next_random(w->rng) % 100 < w->read_percent);
        auto cmd =
            initiator::make_io(read ? nvme::io_opcode::read : nvme::io_opcode::write, w->nsid);
        cmd.cdw10 = uint32_t(lba);
        cmd.cdw11 = uint32_t(lba >> 32);
        cmd.cdw12 = w->io_blocks - 1;
        auto start = clock::now();
        auto r = read ? co_await w->q->submit(cmd, {}, {&iov, 1})
                      : co_await w->q->submit(cmd, {&iov, 1}, {});
        auto ns = uint64_t(
            std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - start).count());
        if (!r || !nvme::status::from_field(r->status).ok()) {
            w->errors.fetch_add(1, std::memory_order_relaxed);
            if (w->first_error.empty())
                w->first_error = r ? fmt::format("status {:#06x}", r->status) : r.err().message();
            co_return;
        }
        w->hist.add(ns);
        w->ios.fetch_add(1, std::memory_order_relaxed);
        w->bytes.fetch_add(buf.size(), std::memory_order_relaxed);
    }
}

task<void> run_worker(worker* w, unsigned qd) {
    gate g;
    for (unsigned i = 0; i < qd; ++i) reactor::local().spawn(g.hold(slot_loop(w)));
    co_await g.close();
}

// Runs `w` on its queue's reactor; `qd` as a plain value (GCC 12 and
// captured coroutine locals).
task<void> run_remote(worker* w, unsigned qd) {
    co_await on(w->q->reactor_id(), [w, qd]() { return run_worker(w, qd); });
}

result<uint32_t> parse_io_size(const std::string& s) {
    auto r = parse_size(s);
    if (!r || r.value() == 0 || r.value() > UINT32_MAX) return error{EINVAL};
    return uint32_t(r.value());
}

struct totals {
    uint64_t ios = 0, bytes = 0, errors = 0;
};
totals sum(const std::vector<std::unique_ptr<worker>>& ws) {
    totals t;
    for (auto& w : ws) {
        t.ios += w->ios.load(std::memory_order_relaxed);
        t.bytes += w->bytes.load(std::memory_order_relaxed);
        t.errors += w->errors.load(std::memory_order_relaxed);
    }
    return t;
}

task<int> perf_main(perf_opts* o, unsigned reactors) {
    auto io_size = parse_io_size(o->io_size);
    initiator::controller_options co;
    std::string why;
    if (!make_controller_options(o->c, co, &why)) co_return (fail(why), 2);
    co.io_queues = o->queues ? o->queues : reactors;
    for (unsigned i = 0; i < reactors; ++i) co.reactors.push_back(i);
    co.queue_depth = uint16_t(std::min(o->qd, 1024u));
    auto ctrl = co_await connect(o->c, co);
    if (!ctrl) co_return exit_connect;
    int rc = 0;
    std::vector<std::unique_ptr<worker>> ws;
    std::atomic<bool> stop{false};
    const auto& ids = ctrl->namespace_ids();
    initiator::ns disk(*ctrl, o->c.nsid);
    uint32_t bs = disk.block_size();
    if (std::find(ids.begin(), ids.end(), o->c.nsid) == ids.end()) {
        fail(fmt::format("namespace {} does not exist on {}", o->c.nsid, o->c.nqn));
        rc = exit_failed;
    } else if (io_size.value() % bs != 0 || io_size.value() > ctrl->max_transfer()) {
        fail(
            fmt::format("--io-size {} must be a multiple of the block size ({} bytes) and at most "
                        "the controller's max transfer ({} bytes)",
                        o->io_size, bs, ctrl->max_transfer()));
        rc = 2;
    } else if (disk.num_blocks() < uint64_t(io_size.value() / bs) * ctrl->io_queue_count()) {
        fail("the namespace is too small for this --io-size and --queues");
        rc = 2;
    }
    if (rc != 0) {
        co_await ctrl->disconnect();
        co_return rc;
    }
    uint32_t io_blocks = io_size.value() / bs;
    bool random = o->rw.starts_with("rand");
    unsigned reads = o->rw == "read" || o->rw == "randread" ? 100 : o->rw == "randrw" ? o->mix : 0;
    size_t nq = ctrl->io_queue_count();
    uint64_t per = disk.num_blocks() / nq / io_blocks * io_blocks;
    for (size_t i = 0; i < nq; ++i) {
        auto w = std::make_unique<worker>();
        w->q = &ctrl->io_at(i);
        w->nsid = o->c.nsid;
        w->block_size = bs;
        w->io_blocks = io_blocks;
        w->first_lba = i * per;
        w->span_blocks = per;
        w->disk_blocks = disk.num_blocks();
        w->random = random;
        w->read_percent = reads;
        w->stop = &stop;
        w->rng = 0x9e3779b97f4a7c15ull * (i + 1);
        ws.push_back(std::move(w));
    }
    // Never more in flight than the queue holds (the initiator would park the rest).
    unsigned qd = std::min<unsigned>(o->qd, ws.front()->q->depth());
    bool tty = isatty(STDOUT_FILENO) && !o->as_json;
    gate g;
    auto start = clock::now();
    for (auto& w : ws) reactor::local().spawn(g.hold(run_remote(w.get(), qd)));
    auto end = start + std::chrono::duration_cast<clock::duration>(
                           std::chrono::duration<double>(o->seconds));
    totals last;
    auto last_t = start;
    int second = 0;
    while (clock::now() < end) {
        auto left = end - clock::now();
        co_await sleep(std::min<clock::duration>(left, 1s));
        auto t = sum(ws);
        auto now = clock::now();
        double dt = std::chrono::duration<double>(now - last_t).count();
        if (tty && dt > 0.2)
            std::printf("\r[%3d s] %10.0f IOPS %9.1f MiB/s%s", ++second,
                        double(t.ios - last.ios) / dt,
                        double(t.bytes - last.bytes) / dt / (1 << 20),
                        t.errors ? fmt::format(" {} errors", t.errors).c_str() : "");
        std::fflush(stdout);
        last = t;
        last_t = now;
        if (t.errors) break;  // a failed command ends its slot; report it now
    }
    stop.store(true, std::memory_order_relaxed);
    co_await g.close();
    double secs = std::chrono::duration<double>(clock::now() - start).count();
    if (tty) std::printf("\n");
    latency_histogram h;
    std::string first_error;
    for (auto& w : ws) {
        h.merge(w->hist);
        if (first_error.empty()) first_error = w->first_error;
    }
    auto t = sum(ws);
    co_await ctrl->disconnect();
    double iops = double(t.ios) / secs, mibs = double(t.bytes) / secs / (1 << 20);
    auto us = [](double ns) { return ns / 1000.0; };
    if (o->as_json) {
        nlohmann::json j = {{"rw", o->rw},
                            {"io_size", io_size.value()},
                            {"qd", qd},
                            {"queues", nq},
                            {"reactors", reactors},
                            {"seconds", secs},
                            {"ios", t.ios},
                            {"errors", t.errors},
                            {"iops", iops},
                            {"mib_per_s", mibs},
                            {"latency_us",
                             {{"min", us(double(h.min()))},
                              {"avg", us(h.mean())},
                              {"p50", us(double(h.percentile(0.50)))},
                              {"p99", us(double(h.percentile(0.99)))},
                              {"p99.9", us(double(h.percentile(0.999)))},
                              {"max", us(double(h.max()))}}}};
        if (!first_error.empty()) j["first_error"] = first_error;
        std::printf("%s\n", j.dump(2).c_str());
    } else {
        std::printf("%s %s, qd %u x %zu queue(s) on %u reactor(s), %.1f s\n", o->rw.c_str(),
                    o->io_size.c_str(), qd, nq, reactors, secs);
        std::printf("  IOPS %.0f   bandwidth %.1f MiB/s   ios %llu   errors %llu\n", iops, mibs,
                    (unsigned long long)t.ios, (unsigned long long)t.errors);
        std::printf(
            "  latency (us): min %.1f  avg %.1f  p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
            us(double(h.min())), us(h.mean()), us(double(h.percentile(0.5))),
            us(double(h.percentile(0.99))), us(double(h.percentile(0.999))), us(double(h.max())));
    }
    if (t.errors) {
        fail(fmt::format("{} command(s) failed; the first: {}", t.errors, first_error));
        co_return exit_failed;
    }
    co_return 0;
}

}  // namespace

void add_perf(CLI::App& nvme, action_fn& action) {
    auto o = std::make_shared<perf_opts>();
    auto* sub = nvme.add_subcommand(
        "perf", "measure IOPS, bandwidth and latency (random or sequential load at a queue depth)");
    add_connection_options(sub, o->c);
    sub->add_option("--qd,-q", o->qd, "commands in flight per queue")
        ->capture_default_str()
        ->check(CLI::Range(1u, 1024u));
    sub->add_option("--io-size,-o", o->io_size, "bytes per command (512, 4k, 128k, 1m)")
        ->capture_default_str()
        ->check([](const std::string& s) {
            return parse_io_size(s) ? std::string() : "a size such as 4k or 131072";
        });
    sub->add_option("--rw,-w", o->rw, "read, write, randread, randwrite or randrw")
        ->capture_default_str()
        ->check(CLI::IsMember({"read", "write", "randread", "randwrite", "randrw"}));
    sub->add_option("--mix,-M", o->mix, "randrw: percent of reads")
        ->capture_default_str()
        ->check(CLI::Range(0u, 100u));
    sub->add_option("--seconds,-t", o->seconds, "run time")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    sub->add_option("--queues", o->queues, "I/O queues (default: one per core)");
    sub->add_option("--cores", o->cores,
                    "CPUs to run reactors on: 0,1 or 0-3 (default: one, unpinned)");
    sub->add_flag("--json", o->as_json, "print the summary as JSON (no progress line)");
    sub->callback([o, &action] {
        action = [o]() -> int {
            std::vector<int> cpus{-1};
            if (!o->cores.empty()) {
                std::string why;
                auto parsed = parse_cpu_list(o->cores, &why);
                if (!parsed) {
                    fail("--cores: " + why);
                    return 2;
                }
                cpus = parsed.value();
            }
            unsigned n = unsigned(cpus.size());
            return run_on_reactors(cpus, [o, n] { return perf_main(o.get(), n); });
        };
    });
}

}  // namespace weft::cli
