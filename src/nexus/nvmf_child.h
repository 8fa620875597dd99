// A nexus child on another node: a namespace reached over NVMe/TCP through
// weft's initiator, with one I/O queue per reactor of this process (so the
// nexus's channel on any reactor has a queue there). Commands that take
// longer than the nexus's I/O timeout tear the connection down and fail
// (the child is then retired and reconnected by the nexus); reservations
// fence the namespace for one nexus instance (child_device::fence).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "auth/tls_psk.h"
#include "initiator/queue.h"
#include "nexus/child_device.h"
#include "nexus/child_uri.h"

namespace weft::nexus {

struct nvmf_child_options {
    std::string hostnqn;
    initiator::host_id hostid{};
    std::chrono::milliseconds io_timeout{5000};
    uint16_t queue_depth = 128;
    // DH-HMAC-CHAP secrets for a remote engine that requires them.
    std::shared_ptr<const initiator::dhchap_host_options> dhchap;
    // TLS 1.3 to the remote engine with PSKs derived from this key.
    std::shared_ptr<const auth::tls_key> tls_key;
};

std::unique_ptr<child_device> make_nvmf_child(child_uri u, nvmf_child_options o);

}  // namespace weft::nexus
