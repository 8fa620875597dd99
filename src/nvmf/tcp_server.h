// Accepts NVMe/TCP connections and spreads them over the reactors, round
// robin: a host opens one TCP connection per queue (admin, then I/O queues
// 1..n in turn), so its queues land on different cores, and each stays on
// its core for its life. Accepting is rare; it runs on reactor 0.
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

    // Binds `addr`, its connections with or without TLS as `tls` says
    // (tls_mode). Call on reactor 0; EADDRINUSE and the like come back as
    // errors, with nothing left listening.
    task<result<void>> listen(socket_address addr, tls_mode tls = tls_mode::off);
    // Stops accepting on `addr` (as addresses() gives it) and closes the
    // connections made through it, as Linux nvmet does when a port goes: their
    // hosts reconnect elsewhere. ENOENT when nothing listens there. Call on
    // reactor 0.
    task<result<void>> unlisten(socket_address addr);
    // Stops accepting, closes every connection, waits for them.
    task<void> stop();

    size_t connections() const;
    // The addresses listen() bound, with the port the kernel picked for port 0.
    const std::vector<socket_address>& addresses() const { return addresses_; }

  private:
    struct listening {
        std::unique_ptr<tcp_listener> l;
        std::string addr;  // l's address as addresses() gives it
        tls_mode tls = tls_mode::off;
        abort_source stop;  // this listener's accept loop
        gate loop;
    };
    struct per_reactor {
        abort_source stop;
        gate conns;  // connections
        struct connection {
            std::weak_ptr<tcp_queue> q;
            std::string via;  // the listening address it came through
        };
        std::vector<connection> queues;
        std::vector<std::unique_ptr<listening>> listeners;
    };
    task<void> accept_loop(listening* x);
    // Runs a connection on the calling reactor.
    void start_queue(tcp_stream s, std::string via, tls_mode tls);
    unsigned next_reactor_ = 0;

    target& target_;
    tcp_options opt_;
    std::vector<std::unique_ptr<per_reactor>> reactors_;
    std::vector<socket_address> addresses_;
};

}  // namespace weft::nvmf
