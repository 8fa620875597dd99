// The `weft nvme` subcommands. Each add_* registers one subcommand (its
// options and --help text) under `nvme`; when the user picks it, its
// callback stores in `action` what main() then runs.
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

// Runs `body` on a runtime with one reactor per entry of `cpus` (-1:
// unpinned) and returns its exit code.
int run_on_reactors(std::vector<int> cpus, std::function<task<int>()> body);

}  // namespace weft::cli
