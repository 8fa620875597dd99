// weft-engine: the data-plane process of a storage node.
//
// Today it starts the per-core reactors and waits for SIGINT/SIGTERM; the
// NVMe/TCP target, pools and the management API attach to these reactors as
// they land (DESIGN.md, roadmap).
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <string>

#include "runtime/cpu_list.h"
#include "runtime/runtime.h"
#include "runtime/signals.h"
#include "runtime/uring_op.h"

namespace {

std::string join(const std::vector<int>& v) {
    std::string s;
    for (int c : v) s += (s.empty() ? "" : ",") + std::to_string(c);
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"weft-engine: serves block volumes over NVMe/TCP from this node's disks"};
    std::string cores_spec;
    unsigned poll_us = 50;
    double run_for = 0;
    std::string log_level = "info";
    app.add_option("--cores", cores_spec,
                   "CPUs to run reactors on: a list '0,1', ranges '0-3' or a mask '0x3' "
                   "(default: every CPU this process may use)");
    app.add_option("--poll-us", poll_us,
                   "how long an idle reactor keeps busy-polling before it sleeps in the "
                   "kernel, in microseconds (0 = sleep at once)")
        ->capture_default_str();
    app.add_option("--run-for", run_for,
                   "exit by itself after this many seconds (0 = until SIGINT/SIGTERM)");
    app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    spdlog::set_level(spdlog::level::from_str(log_level));
    std::vector<int> cpus;
    if (cores_spec.empty()) {
        cpus = weft::allowed_cpus();
    } else {
        std::string why;
        auto parsed = weft::parse_cpu_list(cores_spec, &why);
        if (!parsed) {
            fmt::print(stderr, "weft-engine: --cores {}: {}\n", cores_spec, why);
            return 2;
        }
        cpus = parsed.value();
    }

    const sigset_t stop_signals = weft::signal_set({SIGINT, SIGTERM});
    weft::block_signals(stop_signals);
    weft::runtime rt({.cpus = cpus, .poll_window = std::chrono::microseconds(poll_us)});
    return rt.run([&]() -> weft::task<int> {
        spdlog::info("weft-engine: {} reactor(s) on CPU(s) {}, busy-poll window {} us", rt.size(),
                     join(cpus), poll_us);
        spdlog::info(
            "weft-engine: nothing to serve yet (the NVMe/TCP target arrives with issue 3); "
            "Ctrl-C stops");
        weft::abort_source stop_wait;
        int sig = 0;
        if (run_for > 0) {
            // Whichever comes first: the signal or the deadline.
            weft::reactor::local().spawn(
                [](double secs, weft::abort_source* a) -> weft::task<void> {
                    co_await weft::sleep(std::chrono::duration<double>(secs));
                    a->request_abort();
                }(run_for, &stop_wait));
        }
        sig = co_await weft::wait_for_signal(stop_signals, &stop_wait);
        spdlog::info("weft-engine: {}, stopping", sig > 0 ? strsignal(sig) : "time is up");
        co_return 0;
    });
}
