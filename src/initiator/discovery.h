// Discovery (NVMe-oF 1.1, 5.3): connects to the discovery controller at an
// address and returns the discovery log page's entries.
//
//   discovery_options o{.address = a, .hostnqn = h};
//   auto entries = co_await discover(o);
//
// (A named options object: GCC 12 destroys a braced temporary inside a
// co_await expression twice.)
#pragma once

#include <string>
#include <vector>

#include "initiator/controller.h"

namespace weft::initiator {

struct discovery_options {
    socket_address address;
    std::string hostnqn;
    host_id hostid{};
    std::chrono::milliseconds timeout{5000};
    // TLS to the discovery controller (a listener that requires it).
    std::shared_ptr<const auth::tls_key> tls_key{};
};

struct discovery_entry {
    uint8_t trtype = 0;   // 3: TCP
    uint8_t adrfam = 0;   // 1: IPv4, 2: IPv6
    uint8_t subtype = 0;  // nvme::discovery_subtype
    uint16_t portid = 0;
    uint16_t cntlid = 0;
    std::string traddr;
    std::string trsvcid;
    std::string subnqn;
    uint8_t treq = 0;     // bits 1:0 secure channel: 1 required, 2 not required
    uint8_t sectype = 0;  // TCP TSAS: 0 none, 2 TLS 1.3
};

// Reads the header, then every record, then the header again: a changed
// GENCTR means the log changed under us, and the read starts over (at most
// a few times, then EAGAIN).
task<result<std::vector<discovery_entry>>> discover(discovery_options opt);

}  // namespace weft::initiator
