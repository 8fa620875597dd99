// weft: the command line of a weft cluster. Its `nvme` commands talk
// NVMe/TCP to a target through weft's initiator library (no kernel host,
// no root needed): discover, identify, read/write/verify, perf, reservations.
// Its `pool`, `volume`, `snapshot`, `listener` and `nexus` commands manage a
// weft-engine over its gRPC management API (--api, default 127.0.0.1:10124).
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.h"
#include "runtime/runtime.h"

namespace weft::cli {

int run_on_reactors(std::vector<int> cpus, std::function<task<int>()> body) {
    runtime_config cfg;
    cfg.cpus = std::move(cpus);
    runtime rt(cfg);
    return rt.run([&]() -> task<int> { co_return co_await body(); });
}

}  // namespace weft::cli

int main(int argc, char** argv) {
    using namespace weft::cli;
    CLI::App app{"weft: block volumes over NVMe/TCP"};
    app.name("weft");
    app.require_subcommand(1);
    app.footer(
        "pool, volume, snapshot, listener and nexus talk to a weft-engine's management API: --api "
        "HOST:PORT,\nor the WEFT_API environment variable (default 127.0.0.1:10124).\n");
    bool verbose = false;
    app.add_flag("-v,--verbose", verbose,
                 "log what the initiator does (connects, refusals); with the management commands, "
                 "the engine's gRPC status");
    auto* nvme = app.add_subcommand(
        "nvme", "talk to an NVMe/TCP target with weft's own host (no kernel module, no root)");
    nvme->require_subcommand(1);
    action_fn action;
    add_discover(*nvme, action);
    add_identify(*nvme, action);
    add_io_commands(*nvme, action);
    add_perf(*nvme, action);
    add_reservation(*nvme, action);
    add_pool_commands(app, action);
    add_volume_commands(app, action);
    add_snapshot_commands(app, action);
    add_listener_commands(app, action);
    add_nexus_commands(app, action);
    add_inject_fault(app, action);
    CLI11_PARSE(app, argc, argv);
    // The library logs refusals and drops as warnings; the CLI says them as
    // sentences itself, so its log stays quiet unless asked.
    spdlog::set_level(verbose ? spdlog::level::info : spdlog::level::off);
    if (!action) return 2;
    try {
        return action();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "weft: internal error: %s\n", e.what());
        return 1;
    }
}
