// Accepts NVMe/TCP connections on every reactor: one SO_REUSEPORT listener
// per reactor and address, so the kernel spreads a host's queues (one TCP
// connection each) over the cores.
#pragma once

#include <memory>
#include <vector>

#include "nvmf/target.h"
#include "nvmf/tcp_queue.h"
#include "runtime/gate.h"
#include "runtime/net.h"

namespace weft::nvmf {

class tcp_server {
public:
    tcp_server(target& tgt, tcp_options opt, unsigned reactors);
    ~tcp_server();

    // Binds `addr` on every reactor. Call on a reactor; EADDRINUSE and the
    // like come back as errors, with nothing left listening.
    task<result<void>> listen(socket_address addr);
    // Stops accepting, closes every connection, waits for them.
    task<void> stop();

    size_t connections() const;

private:
    struct per_reactor {
        abort_source stop;
        gate loops;  // accept loops
        gate conns;  // connections
        std::vector<std::weak_ptr<tcp_queue>> queues;
        std::vector<std::unique_ptr<tcp_listener>> listeners;
    };
    task<void> accept_loop(tcp_listener* l, per_reactor* me);

    target& target_;
    tcp_options opt_;
    std::vector<std::unique_ptr<per_reactor>> reactors_;
};

}  // namespace weft::nvmf
