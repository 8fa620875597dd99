// The `weft` subcommands. Each add_* registers one subcommand (its options
// and --help text) under `nvme`, or one group of them under `weft`; when the
// user picks one, its callback stores in `action` what main() then runs.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <vector>

#include "runtime/task.h"

namespace weft::cli {

using action_fn = std::function<int()>;

void add_discover(CLI::App& nvme, action_fn& action);
void add_identify(CLI::App& nvme, action_fn& action);
void add_io_commands(CLI::App& nvme, action_fn& action);  // read, write, verify
void add_perf(CLI::App& nvme, action_fn& action);
void add_reservation(CLI::App& nvme, action_fn& action);
void add_hostnqn(CLI::App& nvme, action_fn& action);  // prints the default host NQN

// weft attach / attached / detach / rescan: a namespace as a local block
// device through FUSE and a loop device (userspace attach).
void add_attach_commands(CLI::App& app, action_fn& action);

// weft engine volume|pool|node|events: the cluster, over weft-control's REST API
// (cli/control_client.h).
void add_cluster_commands(CLI::App& app, action_fn& action);

// The commands that manage one engine over its gRPC API (cli/api_client.h),
// registered under `weft engine`.
void add_pool_commands(CLI::App& app, action_fn& action);      // weft engine pool ...
void add_volume_commands(CLI::App& app, action_fn& action);    // weft engine volume ...
void add_snapshot_commands(CLI::App& app, action_fn& action);  // weft engine snapshot ...
void add_listener_commands(CLI::App& app, action_fn& action);  // weft engine listener ...
void add_nexus_commands(CLI::App& app, action_fn& action);     // weft engine nexus ...
void add_host_key_commands(CLI::App& app, action_fn& action);  // weft engine host-key ...
void add_volume_key_commands(CLI::App& app, action_fn& action);  // weft engine volume-key ...
// weft key gen-dhchap: a new DH-HMAC-CHAP secret (local).
void add_key_commands(CLI::App& app, action_fn& action);
// weft engine volume inject-fault (after add_volume_commands).
void add_inject_fault(CLI::App& app, action_fn& action);

// Runs `body` on a runtime with one reactor per entry of `cpus` (-1:
// unpinned) and returns its exit code.
int run_on_reactors(std::vector<int> cpus, std::function<task<int>()> body);

}  // namespace weft::cli
