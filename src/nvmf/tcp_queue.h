// One NVMe/TCP connection: a queue pair of a controller (NVMe/TCP 1.0, 3.x).
//
// A connection runs as three kinds of coroutines on its reactor:
//   receive   reads many PDUs per recv, validates them, starts commands and
//             feeds H2CData to the commands waiting for it;
//   command   one per command in flight: gathers its data (in-capsule or by
//             R2T), executes it, queues its response PDUs;
//   flusher   sends every PDU queued in one loop pass with one sendmsg.
// It ends when the peer closes, on a fatal transport error (after a
// C2HTermReq), or when its controller goes away; it then waits for its
// commands before freeing anything.
#pragma once

#include <coroutine>
#include <memory>
#include <optional>
#include <vector>

#include "auth/tls_psk.h"
#include "nvmf/controller.h"
#include "nvmf/dhchap_responder.h"
#include "nvmf/io_queue.h"
#include "nvmf/target.h"
#include "nvmf/tcp/direct_data.h"
#include "nvmf/tcp/pdu_reader.h"
#include "nvmf/tcp/pdu_writer.h"
#include "nvmf/tcp/rx_buffer.h"
#include "nvmf/tcp/tls.h"
#include "runtime/abort.h"
#include "runtime/gate.h"
#include "runtime/net.h"

namespace weft::nvmf {

struct tcp_options {
    uint32_t max_h2c_data = 128 * 1024;  // ICResp MAXH2CDATA
    bool allow_header_digest = true;
    bool allow_data_digest = true;
    // Batches of at least this many bytes go out zero-copy (0: never). Not
    // to loopback peers: there the kernel copies anyway and its completion
    // notification waits for the receiver (~40 ms seen), and the flusher
    // waits for that notification before it sends the next batch.
    size_t zero_copy_threshold = 64 * 1024;
    // An H2CData with at least this many bytes still to come is received
    // straight into its command's buffer, not copied out of the receive
    // buffer (plain TCP; nvmf/tcp/direct_data.h). SIZE_MAX: never.
    size_t direct_data_min = tcp::direct_data_min;
    // After a receive that brought PDUs, the responses they lead to go to
    // the kernel before the next receive when they are queued within a pass
    // (docs/architecture.md). Off only to measure what it is worth.
    bool sends_first = true;
    // TLS on this connection (set per listener by tcp_server).
    tls_mode tls = tls_mode::off;
};

class tcp_queue : public queue_link, public std::enable_shared_from_this<tcp_queue> {
  public:
    tcp_queue(target& tgt, tcp_stream stream, tcp_options opt);
    ~tcp_queue() override;

    // The connection's whole life. requires: owned by a shared_ptr.
    task<void> run();
    void close_from_controller() override { drop("closed by its controller"); }

  private:
    struct command;  // one command in flight

    // receive side
    // TLS first, when the listener requires it or the host starts it.
    task<bool> secure();
    task<bool> handshake();
    bool handle_pdu(const tcp::pdu_view& pdu);
    bool start_command(const tcp::pdu_view& pdu, bool digest_failed = false);
    bool accept_h2c_data(const tcp::pdu_view& pdu);
    // An H2CData's command once its header checks out (else nullptr, the
    // connection being ended), and the bookkeeping once its data is in.
    command* h2c_data_command(const tcp::pdu_view& pdu);
    void h2c_data_done(command& c, uint32_t datao, uint32_t datal, bool intact);
    // A large H2CData received straight into its command's buffer; false
    // when the connection is being ended.
    task<bool> receive_h2c_data(const tcp::pdu_view& pdu, tcp::rx_buffer& rx);
    void fatal(tcp::fes status, uint32_t fei, std::span<const std::byte> header);

    // command side
    task<void> run_command(command* c);
    task<void> connect(command* c);
    task<void> dispatch(command* c);
    task<void> authenticate(request& r);  // Authentication Send / Receive
    std::unique_ptr<dhchap_responder> make_responder(std::shared_ptr<controller> ctrl,
                                                     const std::string& hostnqn,
                                                     const std::string& subnqn, uint16_t qid);
    // Queues the response; returns the send generation to wait for before
    // the command's data may be freed (0: nothing to wait for).
    task<uint64_t> respond(command* c);
    void issue_r2t(command* c);
    void release(command* c);

    // send side
    template <typename Add>
    task<bool> enqueue(Add add);
    task<void> flusher();
    void wake_flusher();
    // Resumes when every PDU queued in generation `gen` is sent (or sending failed).
    struct sent_awaiter {
        tcp_queue* q;
        uint64_t gen;
        bool await_ready() const { return q->sent_gen_ >= gen || q->send_failed_; }
        void await_suspend(std::coroutine_handle<> h) { q->send_waiters_.push_back({gen, h}); }
        void await_resume() const {}
    };
    sent_awaiter wait_sent(uint64_t gen) { return {this, gen}; }

    void close(const char* why);
    // Closes so that the host sees the connection end at once, even with
    // commands still in the bdev (they finish here without an answer). A
    // queue already closing for its own reason (e.g. a C2HTermReq still to
    // send) is left to it.
    void drop(const char* why);

    target& target_;
    tcp_stream stream_;
    tcp_options opt_;
    // Under TLS: the channel (Connect must name the host and subsystem of
    // the identity its PSK went under).
    std::unique_ptr<tcp::tls_channel> tls_;
    abort_source stop_;
    bool closed_ = false;
    const char* close_reason_ = nullptr;

    tcp::reader_params rparams_;
    uint32_t maxr2t_ = 0;  // the host's: outstanding R2Ts per command, 0's based

    // Queue state after Connect.
    uint16_t qid_ = 0;
    bool connected_ = false;
    uint16_t queue_size_ = 0;
    uint16_t sqhd_ = 0;
    bool sq_flow_disabled_ = false;
    std::shared_ptr<controller> ctrl_;
    std::unique_ptr<io_queue> io_;
    // DH-HMAC-CHAP, when the host has a secret here: until it authenticates,
    // the queue takes nothing but Authentication Send/Receive.
    std::unique_ptr<dhchap_responder> auth_;
    bool auth_busy_ = false;  // an Authentication command is executing
    // The queue runs TLS with a PSK that DH-HMAC-CHAP generated (secure
    // channel concatenation): it is authenticated by that; the admin queue
    // may replace the key (REPLACETLSPSK) without being shut out meanwhile.
    bool tls_generated_ = false;

    // Commands in flight: slot index = transfer tag.
    std::vector<std::unique_ptr<command>> slots_;
    std::vector<uint16_t> free_slots_;
    gate commands_;

    // Send side: PDUs queued into `queued_` while `sending_` is on the wire.
    std::unique_ptr<tcp::send_batch> queued_, sending_;
    uint64_t queued_gen_ = 1, sent_gen_ = 0;
    std::coroutine_handle<> flusher_wait_;
    struct send_waiter {
        uint64_t gen;
        std::coroutine_handle<> h;
    };
    std::vector<send_waiter> send_waiters_;
    bool send_failed_ = false;
    size_t zero_copy_threshold_;  // 0: this connection never sends zero-copy
};

}  // namespace weft::nvmf
