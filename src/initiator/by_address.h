// Connecting to a target by address, as a user names it (IP, port, NQN,
// host NQN, digests, secret files): what `weft nvme`, the fio engine and
// anything else that takes a target from a user share. It turns those into
// controller_options, and failures into sentences a user understands.
//
//   address_options a{.addr = "10.0.0.2", .nqn = "nqn...:vol"};
//   controller_options o;
//   if (!make_controller_options(a, o, &why, nullptr)) ...;  // a bad address, key file
//   auto c = co_await controller::connect(o);
//   if (!c) puts(connect_error_sentence(a, c.err(), false).c_str());
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "initiator/controller.h"
#include "nvme/status.h"

namespace weft::initiator {

struct address_options {
    std::string addr;  // IPv4 or IPv6 (host names are not resolved)
    uint16_t port = 4420;
    std::string nqn;
    std::string hostnqn;  // empty: default_hostnqn()
    bool hdr_digest = false;
    bool data_digest = false;
    double timeout_s = 10;  // connect and per-command
    uint32_t nsid = 1;
    // DH-HMAC-CHAP secret files (DHHC-1:..:), for targets that require it.
    std::string dhchap_secret_file;
    std::string dhchap_ctrl_secret_file;  // bidirectional: the controller's
    // TLS 1.3 with a PSK derived from this configured key (NVMeTLSkey-1:..:).
    std::string tls_key_file;
    unsigned tls_identity = 1;  // PSK identity version: 1 (nvme-cli connect) or 0
    bool concat = false;        // secure channel concatenation (needs the DH-HMAC-CHAP secret)
};

// The host NQN of this machine: /etc/nvme/hostnqn if present (as nvme-cli),
// else one derived from /etc/machine-id, so that it is stable across runs
// (reservations and allow-lists key on it).
std::string default_hostnqn();
// The host ID for a host NQN: the UUID inside a uuid-style NQN, else a hash
// of the NQN (stable, and distinct per NQN as the target requires).
host_id host_id_for(const std::string& hostnqn);

// The effective host NQN of `c`.
std::string hostnqn_of(const address_options& c);
std::string where(const address_options& c);  // "ADDR:PORT", "[V6]:PORT"

// Controller options for `c`: the address parsed, the secret files read
// (false + a sentence on a bad address or key file). Key files other users
// can read are used, and named in `exposed_files` for a warning.
bool make_controller_options(const address_options& c, controller_options& out, std::string* why,
                             std::vector<std::string>* exposed_files);

// The sentence for a failed connect (errno from controller::connect).
std::string connect_error_sentence(const address_options& c, error e, bool discovery);
// The sentence for a transport error on an established connection.
std::string transport_error_sentence(const address_options& c, error e);
// The sentence for a failed NVMe command status.
std::string status_sentence(const address_options& c, nvme::status s);

}  // namespace weft::initiator
