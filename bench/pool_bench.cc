// weft-pool-bench: 4 KiB random I/O of pool volumes against the raw bdev
// under them, side by side in one run (the bar: a volume keeps at
// least 95% of the raw bdev's IOPS on overwrite).
//
// One reactor, QD commands in flight, each case timed for --seconds:
//   raw        the base bdev alone (a malloc bdev: the device costs ~nothing,
//              so the ratio shows the volume layer's own cost)
//   thick      a thick volume: every cluster allocated at create
//   thin-first a thin volume's first writes: allocation + metadata commit
//   thin-over  the same thin volume once its clusters are mapped
#include <fmt/core.h>

#include <unistd.h>
#include <CLI/CLI.hpp>

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
task<figures> run_case(bdev::bdev& dev, bool write, unsigned qd, double secs,
                       bool sequential_once) {
    auto ch = std::shared_ptr<bdev::channel>(dev.open_channel());
    const uint32_t nblocks = 4096 / dev.block_size();
    const uint64_t slots = dev.num_blocks() / nblocks;
    uint64_t done = 0, errors = 0, next = 0;
    auto deadline = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(
                                            std::chrono::duration<double>(secs));
    auto t0 = clock_type::now();
    gate g;
    for (unsigned w = 0; w < qd; ++w) {
        reactor::local().spawn(
            g.hold([](std::shared_ptr<bdev::channel> ch, bool write, uint32_t nblocks,
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
                    int rc = write ? co_await ch->write(slot * nblocks, nblocks, {&iov, 1}, false)
                                   : co_await ch->read(slot * nblocks, nblocks, {&iov, 1});
                    if (rc < 0) ++*errors;
                    ++*done;
                    // Synchronous completions (malloc) would otherwise never yield.
                    if ((*done & 31) == 0) co_await yield{};
                }
            }(ch, write, nblocks, slots, deadline, sequential_once, &next, &done, &errors, w + 1)));
    }
    co_await g.close();
    double elapsed = std::chrono::duration<double>(clock_type::now() - t0).count();
    co_return figures{double(done) / elapsed, errors};
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
    app.add_option("--seconds", secs, "duration of each timed case")->capture_default_str();
    app.add_option("--qd", qd, "I/Os in flight")->capture_default_str();
    app.add_option("--size-mib", size, "size of each volume (and of the raw case), MiB")
        ->capture_default_str();
    app.add_option("--cpu", cpu, "CPU of the reactor")->capture_default_str();
    app.add_option("--cluster-kib", cluster_kib, "pool cluster size, KiB")->capture_default_str();
    app.add_option("--base", base_kind,
                   "what the pool and the raw case sit on: malloc (the layer's own cost) or file "
                   "(O_DIRECT files under --dir: a real device)")
        ->check(CLI::IsMember({"malloc", "file"}))
        ->capture_default_str();
    app.add_option("--dir", dir, "where --base file puts its two files")->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    uint64_t vol_bytes = std::stoull(size) << 20;

    runtime rt({.cpus = {cpu}});
    return rt.run([&]() -> task<int> {
        // Base: room for the two volumes plus metadata.
        std::shared_ptr<bdev::bdev> base, raw;
        std::string base_path = dir + "/weft-pool-bench-base.img",
                    raw_path = dir + "/weft-pool-bench-raw.img";
        if (base_kind == "malloc") {
            base.reset(bdev::make_malloc_bdev("base", (3 * vol_bytes) / 512, 512).release());
            raw.reset(bdev::make_malloc_bdev("raw", vol_bytes / 512, 512).release());
        } else {
            ::unlink(base_path.c_str());
            ::unlink(raw_path.c_str());
            auto b = bdev::open_uring_bdev("base", base_path,
                                           {.create = true, .create_bytes = 3 * vol_bytes});
            auto r =
                bdev::open_uring_bdev("raw", raw_path, {.create = true, .create_bytes = vol_bytes});
            if (!b || !r) {
                fmt::print(stderr, "cannot create the files under {}\n", dir);
                co_return 1;
            }
            base = std::move(b.value());
            raw = std::move(r.value());
            // Fill the raw file so its reads and overwrites hit allocated blocks,
            // like the thick volume's.
            co_await run_case(*raw, true, qd, 0, true);
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
        auto thin = p.value()->open_volume(thin_id.value()).value();

        fmt::print(
            "4 KiB random I/O, QD {}, one reactor on CPU {}, {} MiB volumes, {} KiB clusters, {} "
            "base\n",
            qd, cpu, vol_bytes >> 20, cluster_kib, base_kind);
        fmt::print("{:<24} {:>12} {:>10}\n", "case", "IOPS", "vs raw");
        auto raw_w = co_await run_case(*raw, true, qd, secs, false);
        auto raw_r = co_await run_case(*raw, false, qd, secs, false);
        auto thin_first = co_await run_case(*thin, true, qd, secs, true);
        auto thick_w = co_await run_case(*thick, true, qd, secs, false);
        auto thin_w = co_await run_case(*thin, true, qd, secs, false);
        auto thick_r = co_await run_case(*thick, false, qd, secs, false);
        auto thin_r = co_await run_case(*thin, false, qd, secs, false);
        auto row = [&](const char* name, figures f, figures base_f) {
            fmt::print("{:<24} {:>12.0f} {:>9.3f}x{}\n", name, f.iops, f.iops / base_f.iops,
                       f.errors ? fmt::format("  ({} errors)", f.errors) : std::string());
        };
        row("raw write", raw_w, raw_w);
        row("thick overwrite", thick_w, raw_w);
        row("thin first write", thin_first, raw_w);
        row("thin overwrite", thin_w, raw_w);
        row("raw read", raw_r, raw_r);
        row("thick read", thick_r, raw_r);
        row("thin read", thin_r, raw_r);
        thick.reset();
        thin.reset();
        if (base_kind == "file") {
            ::unlink(base_path.c_str());
            ::unlink(raw_path.c_str());
        }
        co_return 0;
    });
}
