// What every `weft nvme` subcommand shares: the connection options on the
// command line, and failures printed as sentences. Connecting by address
// itself (options to controller_options, the sentences) is the initiator's
// (initiator/by_address.h), shared with the fio engine.
//
//   connection_options c;
//   add_connection_options(sub, c);        // --addr/-a, --port/-s, --nqn/-n, ...
//   auto ctrl = co_await connect(c, out);  // nullptr + message printed on failure
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "initiator/by_address.h"
#include "initiator/controller.h"

namespace weft::cli {

using connection_options = initiator::address_options;
using initiator::connect_error_sentence;
using initiator::default_hostnqn;
using initiator::host_id_for;
using initiator::hostnqn_of;
using initiator::status_sentence;
using initiator::transport_error_sentence;
using initiator::where;

// Adds -a/-s/-n/--hostnqn/--hdr-digest/--data-digest/--timeout/
// --dhchap-secret-file/--dhchap-ctrl-secret-file/--tls-key-file/
// --tls-identity (and --nsid when `with_nsid`) to `app`. `need_nqn`,
// `need_addr`: --nqn, --addr are required.
void add_connection_options(CLI::App* app, connection_options& c, bool need_nqn = true,
                            bool with_nsid = true, bool need_addr = true);

// initiator::make_controller_options, with a warning on stderr for each key
// file other users can read.
bool make_controller_options(const connection_options& c, initiator::controller_options& out,
                             std::string* why);

// Connects to c.nqn; on failure prints the sentence for it and returns null.
task<std::unique_ptr<initiator::controller>> connect(const connection_options& c,
                                                     initiator::controller_options opt);

// Prints "weft: <msg>" on stderr.
void fail(const std::string& msg);

// Exit codes: 0 ok, 1 command failed, 2 usage, 3 connection failed.
inline constexpr int exit_failed = 1;
inline constexpr int exit_usage = 2;
inline constexpr int exit_connect = 3;

}  // namespace weft::cli
