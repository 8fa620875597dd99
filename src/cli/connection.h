// What every `weft nvme` subcommand shares: the connection options, the
// host's identity, and turning failures into sentences a user understands.
//
//   connection_options c;
//   add_connection_options(sub, c);        // --addr/-a, --port/-s, --nqn/-n, ...
//   auto ctrl = co_await connect(c, out);  // nullptr + message printed on failure
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "initiator/controller.h"
#include "nvme/status.h"

namespace weft::cli {

struct connection_options {
    std::string addr;
    uint16_t port = 4420;
    std::string nqn;
    std::string hostnqn;  // empty: default_hostnqn()
    bool hdr_digest = false;
    bool data_digest = false;
    double timeout_s = 10;
    uint32_t nsid = 1;
    // DH-HMAC-CHAP secret files (DHHC-1:..:), for targets that require it.
    std::string dhchap_secret_file;
    std::string dhchap_ctrl_secret_file;  // bidirectional: the controller's
    // TLS 1.3 with a PSK derived from this configured key (NVMeTLSkey-1:..:).
    std::string tls_key_file;
    unsigned tls_identity = 1;  // PSK identity version: 1 (nvme-cli connect) or 0
};

// Adds -a/-s/-n/--hostnqn/--hdr-digest/--data-digest/--timeout/
// --dhchap-secret-file/--dhchap-ctrl-secret-file/--tls-key-file/
// --tls-identity (and
// --nsid when `with_nsid`) to `app`. `need_nqn`, `need_addr`: --nqn,
// --addr are required.
void add_connection_options(CLI::App* app, connection_options& c, bool need_nqn = true,
                            bool with_nsid = true, bool need_addr = true);

// The host NQN of this machine: /etc/nvme/hostnqn if present (as nvme-cli),
// else one derived from /etc/machine-id, so that it is stable across runs
// (reservations and allow-lists key on it).
std::string default_hostnqn();
// The host ID for a host NQN: the UUID inside a uuid-style NQN, else a hash
// of the NQN (stable, and distinct per NQN as the target requires).
initiator::host_id host_id_for(const std::string& hostnqn);

// The effective host NQN of `c`.
std::string hostnqn_of(const connection_options& c);
std::string where(const connection_options& c);  // "ADDR:PORT"

// Controller options for `c` (address parsed; false + message on a bad one).
bool make_controller_options(const connection_options& c, initiator::controller_options& out,
                             std::string* why);

// Connects to c.nqn; on failure prints the sentence for it and returns null.
task<std::unique_ptr<initiator::controller>> connect(const connection_options& c,
                                                     initiator::controller_options opt);

// The sentence for a failed connect (errno from controller::connect).
std::string connect_error_sentence(const connection_options& c, error e, bool discovery);
// The sentence for a transport error on an established connection.
std::string transport_error_sentence(const connection_options& c, error e);
// The sentence for a failed NVMe command status.
std::string status_sentence(const connection_options& c, nvme::status s);

// Prints "weft: <msg>" on stderr.
void fail(const std::string& msg);

// Exit codes: 0 ok, 1 command failed, 2 usage, 3 connection failed.
inline constexpr int exit_failed = 1;
inline constexpr int exit_usage = 2;
inline constexpr int exit_connect = 3;

}  // namespace weft::cli
