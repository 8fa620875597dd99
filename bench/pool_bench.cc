// weft-pool-bench: 4 KiB random I/O of pool volumes against the raw bdev
// under them, side by side in one run (the bar: a volume keeps at
// least 95% of the raw bdev's IOPS on overwrite).
//
// QD commands in flight on each of --reactors reactors (one by default),
// each case timed for --seconds:
//   raw        the pool's base bdev itself, over the blocks of the thick
//              volume's clusters: a malloc bdev (the device costs ~nothing,
//              so the ratio shows the volume layer's own cost) or an O_DIRECT
//              file (a real device)
//   thick      a thick volume: every cluster allocated at create
//   thin-first a thin volume's first writes: allocation + metadata commit
//   thin-over  the same thin volume once its clusters are mapped
//
// The machines are shared and noisy, so the timed cases run in --rounds
// interleaved rounds (raw, thick, thin, raw, thick, thin, ...) and the table
// shows each case's median and the median of its per-round ratio to raw.
// Both files are written in full first, so that neither pays for the file
// system allocating blocks on first write.
#include <fmt/core.h>

#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <vector>

#include "bdev/bdev.h"
#include "bdev/uring/uring_bdev.h"
#include "pool/pool.h"
#include "runtime/buffer_pool.h"
#include "runtime/gate.h"
#include "runtime/runtime.h"

namespace {

using namespace weft;
using clock_type = std::chrono::steady_clock;

struct figures {
    double iops = 0;
    uint64_t errors = 0;
};

// QD workers issue 4 KiB I/Os at random block-aligned offsets for `secs`
// (or, with `sequential_once`, each block once, for first-write costs).
// `first_lba`/`span_blocks` (0: the whole bdev) restrict the I/O to a range.
task<figures> run_case(bdev::bdev& dev, bool write, unsigned qd, double secs, bool sequential_once,
                       uint64_t first_lba = 0, uint64_t span_blocks = 0) {
    auto ch = std::shared_ptr<bdev::channel>(dev.open_channel());
    const uint32_t nblocks = 4096 / dev.block_size();
    const uint64_t slots = (span_blocks ? span_blocks : dev.num_blocks()) / nblocks;
    uint64_t done = 0, errors = 0, next = 0;
    auto deadline = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(
                                            std::chrono::duration<double>(secs));
    auto t0 = clock_type::now();
    gate g;
    for (unsigned w = 0; w < qd; ++w) {
        reactor::local().spawn(g.hold(
            [](std::shared_ptr<bdev::channel> ch, bool write, uint32_t nblocks, uint64_t first,
               uint64_t slots, clock_type::time_point deadline, bool once, uint64_t* next,
               uint64_t* done, uint64_t* errors, unsigned seed) -> task<void> {
                buffer b = buffer_pool::local().get(4096);
                std::memset(b.data(), int(seed), 4096);
                iovec iov{b.data(), 4096};
                std::mt19937_64 rng(seed);
                for (;;) {
                    uint64_t slot;
                    if (once) {
                        if (*next >= slots) break;
                        slot = (*next)++;
                    } else {
                        if ((*done & 63) == 0 && clock_type::now() >= deadline) break;
                        slot = rng() % slots;
                    }
                    uint64_t lba = first + slot * nblocks;
                    int rc = write ? co_await ch->write(lba, nblocks, {&iov, 1}, false)
                                   : co_await ch->read(lba, nblocks, {&iov, 1});
                    if (rc < 0) ++*errors;
                    ++*done;
                    // Synchronous completions (malloc) would otherwise never yield.
                    if ((*done & 31) == 0) co_await yield{};
                }
            }(ch, write, nblocks, first_lba, slots, deadline, sequential_once, &next, &done,
                                                                &errors, w + 1)));
    }
    co_await g.close();
    double elapsed = std::chrono::duration<double>(clock_type::now() - t0).count();
    co_return figures{double(done) / elapsed, errors};
}

// run_case on reactors 0..n-1 at once; IOPS and errors summed.
task<figures> run_everywhere(unsigned n, bdev::bdev& dev, bool write, unsigned qd, double secs,
                             uint64_t first_lba, uint64_t span_blocks) {
    std::vector<figures> each(n);
    gate g;
    for (unsigned r = 0; r < n; ++r)
        reactor::local().spawn(
            g.hold([](unsigned r, bdev::bdev* dev, bool write, unsigned qd, double secs,
                      uint64_t first, uint64_t span, figures* out) -> task<void> {
                *out = co_await on(
                    r, [=]() { return run_case(*dev, write, qd, secs, false, first, span); });
            }(r, &dev, write, qd, secs, first_lba, span_blocks, &each[r])));
    co_await g.close();
    figures sum;
    for (auto& f : each) {
        sum.iops += f.iops;
        sum.errors += f.errors;
    }
    co_return sum;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "weft-pool-bench: 4 KiB random IOPS of thick and thin pool volumes against the raw bdev"};
    double secs = 2;
    unsigned qd = 32;
    std::string size = "256";
    int cpu = 0;
    unsigned cluster_kib = 1024;
    std::string base_kind = "malloc";
    std::string dir = "/var/tmp";
    unsigned rounds = 5;
    unsigned reactors = 1;
    app.add_option("--seconds", secs, "duration of each timed case")->capture_default_str();
    app.add_option("--qd", qd, "I/Os in flight")->capture_default_str();
    app.add_option("--size-mib", size, "size of each volume, MiB")->capture_default_str();
    app.add_option("--cpu", cpu, "CPU of the reactor")->capture_default_str();
    app.add_option("--cluster-kib", cluster_kib, "pool cluster size, KiB")->capture_default_str();
    app.add_option("--base", base_kind,
                   "what the pool and the raw case sit on: malloc (the layer's own cost) or file "
                   "(O_DIRECT files under --dir: a real device)")
        ->check(CLI::IsMember({"malloc", "file"}))
        ->capture_default_str();
    app.add_option("--dir", dir, "where --base file puts its two files")->capture_default_str();
    app.add_option("--reactors", reactors,
                   "reactors (CPUs --cpu, --cpu+1, ...) driving each timed case at once, QD each; "
                   "IOPS are their sum (shows whether the volume layer scales across cores)")
        ->check(CLI::Range(1u, 64u))
        ->capture_default_str();
    app.add_option("--rounds", rounds, "interleaved rounds of the timed cases (medians are shown)")
        ->check(CLI::Range(1u, 100u))
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    uint64_t vol_bytes = std::stoull(size) << 20;

    std::vector<int> cpus;
    for (unsigned i = 0; i < reactors; ++i) cpus.push_back(cpu + int(i));
    runtime rt({.cpus = cpus});
    return rt.run([&]() -> task<int> {
        // Base: room for the two volumes plus metadata.
        std::shared_ptr<bdev::bdev> base;
        std::string base_path = dir + "/weft-pool-bench-base.img";
        if (base_kind == "malloc") {
            base.reset(bdev::make_malloc_bdev("base", (3 * vol_bytes) / 512, 512).release());
        } else {
            ::unlink(base_path.c_str());
            auto b = bdev::open_uring_bdev("base", base_path,
                                           {.create = true, .create_bytes = 3 * vol_bytes});
            if (!b) {
                fmt::print(stderr, "cannot create {}\n", base_path);
                co_return 1;
            }
            base = std::move(b.value());
            // Fill the file: every case then hits blocks the file system has
            // allocated, and the comparison is of the layers alone.
            co_await run_case(*base, true, qd, 0, true);
        }
        std::string why;
        auto p = co_await pool::pool::create(base, "bench",
                                             {.cluster_size = uint64_t(cluster_kib) << 10}, &why);
        if (!p) {
            fmt::print(stderr, "pool: {}\n", why);
            co_return 1;
        }
        auto thick_id = co_await p.value()->create_volume("thick", vol_bytes, false);
        auto thin_id = co_await p.value()->create_volume("thin", vol_bytes, true);
        if (!thick_id || !thin_id) {
            fmt::print(stderr, "volume create failed\n");
            co_return 1;
        }
        auto thick = p.value()->open_volume(thick_id.value()).value();
        // Raw: the base bdev itself, over the clusters the thick volume got
        // (created first in an empty pool, it has the first ones, in order).
        // Same device, same blocks: only the volume layer differs.
        const uint64_t raw_first = p.value()->geo().data_offset / base->block_size();
        const uint64_t raw_span = vol_bytes / base->block_size();
        auto thin = p.value()->open_volume(thin_id.value()).value();

        fmt::print(
            "4 KiB random I/O, QD {} per reactor, {} reactor(s) from CPU {}, {} MiB volumes, {} "
            "KiB clusters, {} "
            "base\n",
            qd, reactors, cpu, vol_bytes >> 20, cluster_kib, base_kind);
        auto thin_first = co_await run_case(*thin, true, qd, secs, true);
        // w[i], r[i]: per round, for raw, thick, thin; writes then reads.
        std::vector<figures> w[3], r[3];
        bdev::bdev* devs[3] = {base.get(), thick.get(), thin.get()};
        for (unsigned k = 0; k < rounds; ++k) {
            for (int i = 0; i < 3; ++i) {
                uint64_t first = i == 0 ? raw_first : 0, span = i == 0 ? raw_span : 0;
                w[i].push_back(
                    co_await run_everywhere(reactors, *devs[i], true, qd, secs, first, span));
            }
            for (int i = 0; i < 3; ++i) {
                uint64_t first = i == 0 ? raw_first : 0, span = i == 0 ? raw_span : 0;
                r[i].push_back(
                    co_await run_everywhere(reactors, *devs[i], false, qd, secs, first, span));
            }
        }
        auto median = [](std::vector<double> v) {
            std::sort(v.begin(), v.end());
            return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
        };
        fmt::print("{} interleaved rounds of {} s per case; medians\n", rounds, secs);
        fmt::print("{:<24} {:>12} {:>14} {:>10}\n", "case", "IOPS", "vs raw", "min..max");
        auto row = [&](const char* name, const std::vector<figures>& f,
                       const std::vector<figures>& base_f) {
            std::vector<double> iops, ratio;
            uint64_t errors = 0;
            for (size_t k = 0; k < f.size(); ++k) {
                iops.push_back(f[k].iops);
                ratio.push_back(f[k].iops / base_f[std::min(k, base_f.size() - 1)].iops);
                errors += f[k].errors;
            }
            fmt::print("{:<24} {:>12.0f} {:>13.3f}x {:>5.2f}..{:.2f}{}\n", name, median(iops),
                       median(ratio), *std::min_element(ratio.begin(), ratio.end()),
                       *std::max_element(ratio.begin(), ratio.end()),
                       errors ? fmt::format("  ({} errors)", errors) : std::string());
        };
        row("raw write", w[0], w[0]);
        row("thick overwrite", w[1], w[0]);
        row("thin first write", {thin_first}, w[0]);
        row("thin overwrite", w[2], w[0]);
        row("raw read", r[0], r[0]);
        row("thick read", r[1], r[0]);
        row("thin read", r[2], r[0]);
        thick.reset();
        thin.reset();
        if (base_kind == "file") ::unlink(base_path.c_str());
        co_return 0;
    });
}
