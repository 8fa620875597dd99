// What the engine gives a nexus to reach its children: the host identity it
// connects to remote replicas with, and the factory that turns a child URI
// into a device (pool:// volumes of this engine's pools, nvmf:// namespaces
// through the initiator).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "auth/tls_psk.h"
#include "bdev/error/error_bdev.h"
#include "initiator/dhchap_host.h"
#include "initiator/queue.h"
#include "nexus/child_device.h"
#include "pool/pool.h"

namespace weft::engine {

struct host_identity {
    std::string nqn;
    initiator::host_id id{};
    // Its DH-HMAC-CHAP secrets, for remote children that require them.
    std::shared_ptr<const initiator::dhchap_host_options> dhchap;
    // Its TLS key, for remote children: their connections run TLS.
    std::shared_ptr<const auth::tls_key> tls_key;
};

// The engine's host NQN: `flag` when given, else the one kept in
// <data_dir>/host-nqn (made on first start: nqn.2014-08.org.nvmexpress:uuid:
// with a random UUID, so every node has its own). The host ID is the UUID
// in the NQN when it has one, else a hash of the NQN.
result<host_identity> load_host_identity(const std::string& data_dir, const std::string& flag,
                                         std::string* why);

struct child_sources {
    // The open pool of that name, or null.
    std::function<std::shared_ptr<pool::pool>(const std::string&)> find_pool;
    // The fault switch of a pool volume (made on first use).
    std::function<std::shared_ptr<bdev::fault_control>(const std::string& pool,
                                                       const std::string& volume)>
        faults;
    host_identity host;
};

nexus::child_factory make_child_factory(child_sources src, std::chrono::milliseconds io_timeout);

}  // namespace weft::engine
