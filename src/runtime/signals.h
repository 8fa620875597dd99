// Waiting for SIGINT/SIGTERM on a reactor. block_signals() must run on the
// main thread before the runtime starts its threads, so every thread inherits
// the mask and the signals are only delivered through the signalfd.
#pragma once

#include <signal.h>

#include <initializer_list>

#include "runtime/abort.h"
#include "runtime/task.h"

namespace weft {

sigset_t signal_set(std::initializer_list<int> sigs);
void block_signals(const sigset_t& set);

// Returns the signal number received, or -ECANCELED when aborted.
task<int> wait_for_signal(sigset_t set, abort_source* abort = nullptr);

}  // namespace weft
