// min_responder: the fastest NVMe/TCP "target" we know how to write on the
// weft runtime, as a ceiling for the real one. It speaks just enough of the
// protocol for weft's initiator (controller::connect and I/O) and does no
// I/O at all: reads get canned data, writes are acknowledged once their data
// has arrived.
//
// Per connection: one recv into a large buffer, every whole PDU in it parsed
// and answered into one send_batch, one sendmsg per loop pass. No per-command
// state except the bytes a R2T write still owes, no allocation on the data
// path, no bdev, no controller object. What the real target spends beyond
// this is its own cost; what this spends is the network's and the kernel's.
//
//   min_responder r({.num_blocks = n, .block_size = 4096});
//   auto addr = r.listen(socket_address::ipv4("127.0.0.1", 0));   // on the serving reactor
//   r.start();
//   ...
//   co_await r.stop();
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/abort.h"
#include "runtime/gate.h"
#include "runtime/net.h"
#include "runtime/result.h"
#include "runtime/task.h"

namespace weft::bench {

struct responder_options {
    uint64_t num_blocks = 1u << 16;      // the one namespace's size, for Identify
    uint32_t block_size = 4096;          // 512 or 4096
    uint32_t in_capsule_data = 8192;     // IOCCSZ: 4 KiB writes travel in the capsule
    uint32_t max_h2c_data = 128 * 1024;  // ICResp MAXH2CDATA
    uint16_t max_queue_depth = 128;      // CAP.MQES + 1
};

class min_responder {
  public:
    explicit min_responder(responder_options opt);
    ~min_responder();
    min_responder(const min_responder&) = delete;
    min_responder& operator=(const min_responder&) = delete;

    // Binds `addr` (port 0: any) on the calling reactor; returns the bound address.
    result<socket_address> listen(const socket_address& addr);
    // Accepts and serves connections on the calling reactor until stop().
    void start();
    // Stops accepting, shuts open connections down and waits for them.
    task<void> stop();

  private:
    struct connection;
    task<void> accept_loop();
    task<void> serve_connection(tcp_stream s);

    responder_options opt_;
    std::unique_ptr<tcp_listener> listener_;
    abort_source stop_;
    gate conns_;
    gate accept_gate_;
    std::vector<int> open_fds_;  // to shut down at stop()
    // Canned answers, built once: Identify Controller, the active namespace
    // list, Identify Namespace, and zeroes for reads and other admin data.
    std::vector<std::byte> id_ctrl_, ns_list_, id_ns_, canned_;
};

}  // namespace weft::bench
