// weft: the command line of a weft cluster. Its `nvme` commands talk
// NVMe/TCP to a target through weft's initiator library (no kernel host,
// no root needed): discover, identify, read/write/verify, perf, reservations.
// Its `volume`, `pool`, `node` and `events` commands ask the control plane
// (weft-control's REST API); `engine pool|volume|snapshot|listener|nexus|
// host-key` manage one weft-engine directly over its gRPC API (--api);
// `key gen-dhchap` makes an authentication secret.
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
        "volume, pool, node and events talk to the control plane (weft-control): --control URL,\n"
        "or the WEFT_CONTROL environment variable (default http://127.0.0.1:10130).\n"
        "engine ... talks to one weft-engine's management API: --api HOST:PORT, or the WEFT_API\n"
        "environment variable (default 127.0.0.1:10124).\n");
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
    add_hostnqn(*nvme, action);
    // A namespace as a block device of this machine, through FUSE.
    add_attach_commands(app, action);
    add_key_commands(app, action);
    // The cluster, through weft-control's REST API.
    add_cluster_commands(app, action);
    // One engine, directly through its gRPC API: kept apart under `engine`.
    auto* engine = app.add_subcommand(
        "engine",
        "manage one weft-engine directly over its gRPC API (--api): its pools, volumes, "
        "snapshots, listeners and nexuses, below what the control plane does");
    engine->require_subcommand(1);
    add_pool_commands(*engine, action);
    add_volume_commands(*engine, action);
    add_snapshot_commands(*engine, action);
    add_listener_commands(*engine, action);
    add_nexus_commands(*engine, action);
    add_host_key_commands(*engine, action);
    add_volume_key_commands(*engine, action);
    add_inject_fault(*engine, action);
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
