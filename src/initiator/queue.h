// One NVMe/TCP connection of the host: a queue pair of a remote controller
// (NVMe/TCP 1.0, 3.x), on the reactor that created it.
//
//   auto q = co_await queue::connect({.address = a, .subnqn = s, .hostnqn = h, .qid = 1,
//                                     .cntlid = admin->cntlid(), .depth = 32});
//   auto cpl = co_await (*q)->submit(read_cmd, {}, iov);   // result<nvme::completion>
//
// A weft::error from submit() is the transport's (ENOTCONN, ECONNRESET,
// ETIMEDOUT, EINVAL for bad arguments); a command the controller failed
// completes normally with its NVMe status in the completion.
//
// Inside, per connection: a receive loop parses many PDUs per recv and
// completes commands by CID (CapsuleResp, C2HData with SUCCESS), copies
// C2HData into the caller's buffers and answers R2T with H2CData; a flusher
// sends every PDU queued in one reactor pass with one sendmsg. A watchdog
// times commands out.
//
// Timeouts: NVMe/TCP has no reliable way to abort one command (Abort is
// best effort and the target may still move data into our buffers later),
// so a command that outlives its timeout tears the whole connection down;
// it completes with ETIMEDOUT once nothing can touch its buffers.
//
// Reconnect (reconnect_attempts > 0, for I/O queues): when the connection
// drops, the queue reconnects with backoff (same QID and controller) and
// resubmits the commands in flight that are idempotent (read, write, flush,
// write zeroes, DSM, compare, verify: running one twice leaves the same
// state). Others (reservations, admin, fabrics) may or may not have run, so
// they fail with ECONNRESET. When every attempt fails, all fail with
// ENOTCONN. No command is ever dropped silently.
#pragma once

#include <sys/uio.h>

#include <array>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "initiator/dhchap_host.h"
#include "nvme/command.h"
#include "nvme/status.h"
#include "nvmf/tcp/direct_data.h"
#include "nvmf/tcp/pdu_reader.h"
#include "nvmf/tcp/pdu_writer.h"
#include "nvmf/tcp/rx_buffer.h"
#include "nvmf/tcp/tls.h"
#include "runtime/abort.h"
#include "runtime/gate.h"
#include "runtime/net.h"
#include "runtime/result.h"
#include "runtime/task.h"

namespace weft::initiator {

using host_id = std::array<uint8_t, 16>;

struct queue_options {
    socket_address address;
    std::string subnqn;
    std::string hostnqn;
    host_id hostid{};
    uint16_t qid = 0;
    uint16_t cntlid = 0xffff;  // I/O queues: the controller the admin queue got
    uint16_t depth = 32;       // commands in flight; Connect SQSIZE is depth - 1
    uint32_t kato_ms = 0;      // admin queue only
    bool header_digest = false;
    bool data_digest = false;
    // Writes up to this size go in the capsule (IOCCSZ * 16 - 64 of the
    // controller for I/O queues; 8 KiB holds the admin queue's Connect data).
    uint32_t max_icd = 8192;
    uint32_t max_c2h_data = 1u << 20;  // largest C2HData we buffer (>= MDTS)
    // A C2HData with at least this many bytes still to come is received
    // straight into the read's buffers, not copied out of the receive
    // buffer (plain TCP; nvmf/tcp/direct_data.h). SIZE_MAX: never.
    size_t direct_data_min = nvmf::tcp::direct_data_min;
    // After a receive that brought PDUs (completions, R2Ts), what they lead
    // to (a caller's next command, H2CData) goes to the kernel before the
    // next receive when it is queued within a pass (nvmf/tcp_queue.cc).
    // Off only to measure what it is worth.
    bool sends_first = true;
    std::chrono::milliseconds command_timeout{30000};
    std::chrono::milliseconds connect_timeout{5000};  // ICResp and Connect
    unsigned reconnect_attempts = 0;                  // 0: no reconnect
    std::chrono::milliseconds reconnect_delay{50};    // doubles per attempt, at most 2 s
    // DH-HMAC-CHAP secrets: used when the controller requires authentication
    // (every queue that asks, on each (re)connect). With a controller
    // secret, a plain admin queue whose controller does not authenticate
    // itself is refused (I/O queues may go without: Linux 7.x nvmet asks
    // only on the admin queue; so may TLS queues: the PSK proves the target).
    std::shared_ptr<const dhchap_host_options> dhchap;
    // TLS 1.3 with this PSK (derived for hostnqn and subnqn, see
    // auth/tls_psk.h) on every (re)connect, before ICReq.
    std::shared_ptr<const auth::derived_psk> tls;
    // Secure channel concatenation (a plain admin queue): authenticate with
    // SC_C NEWTLSPSK and put the TLS PSK it generates here. The controller
    // must ask to authenticate (ATR or ASCR); EPROTO otherwise.
    std::shared_ptr<const auth::derived_psk>* concat_psk = nullptr;
    // Set when connect() failed because the TLS handshake refused the PSK
    // (the target said so, or ended the connection during the handshake):
    // for a caller that tries another derivation.
    bool* tls_refused = nullptr;
};

struct queue_stats {
    uint64_t submitted = 0;
    uint64_t timeouts = 0;
    uint64_t reconnects = 0;
    uint64_t resubmitted = 0;
    uint64_t failed_on_drop = 0;  // commands failed because the connection dropped
    uint64_t sends = 0;           // sendmsg batches
    uint64_t direct_data = 0;     // C2HData PDUs received straight into a read's buffers
};

class queue {
  public:
    enum class state { connecting, live, recovering, closing, failed, closed };

    // Opens TCP, exchanges ICReq/ICResp, sends Fabrics Connect and, when the
    // controller requires it, authenticates (DH-HMAC-CHAP). The queue
    // belongs to the calling reactor from then on. Errors: the connect's
    // errno, EACCES (host not allowed), ENOKEY (authentication required and
    // no secret), EKEYREJECTED (authentication failed either way: a wrong
    // secret, or a controller that did not prove itself), ENOPROTOOPT (no
    // hash function or DH group in common), EPROTONOSUPPORT (a
    // secure channel required), EKEYREJECTED also when the TLS handshake
    // refused the PSK (see tls_refused), EPROTO when the target does not
    // speak TLS, EINVAL (Connect Invalid Parameters: unknown
    // subsystem, controller or queue), EBUSY, EPROTO, ETIMEDOUT.
    static task<result<std::unique_ptr<queue>>> connect(queue_options opt);

    // requires: close() has completed.
    ~queue();
    queue(const queue&) = delete;
    queue& operator=(const queue&) = delete;

    // requires: called on the queue's reactor; the iovecs (array and memory)
    // live until it completes. At most one of data_out / data_in.
    task<result<nvme::completion>> submit(const nvme::command& cmd,
                                          std::span<const iovec> data_out = {},
                                          std::span<const iovec> data_in = {});

    // Refuses new commands, waits for those in flight (bounded by their
    // timeouts), sends Disconnect on an I/O queue, and closes the socket.
    task<void> close();

    // As if the network failed: shuts the socket down under the queue (tests).
    void drop_connection() { lost("connection dropped on request"); }

    // Set after Identify Controller (IOCCSZ, MDTS).
    void set_max_icd(uint32_t bytes) { opt_.max_icd = bytes; }
    void set_max_c2h_data(uint32_t bytes);

    uint16_t qid() const { return opt_.qid; }
    uint16_t cntlid() const { return cntlid_; }
    uint16_t depth() const { return opt_.depth; }
    unsigned reactor_id() const { return reactor_; }
    state current_state() const { return state_; }
    // Connect's status when the last connect was refused.
    nvme::status connect_status() const { return connect_status_; }
    const queue_stats& stats() const { return stats_; }

  private:
    struct pending;  // one command in flight, in its submit() frame

    explicit queue(queue_options opt);
    static task<result<std::unique_ptr<queue>>> start(queue* q);
    void set_state(state s, const char* why);

    // connection
    task<result<void>> establish();
    task<result<void>> ic_exchange();
    task<result<void>> authenticate();  // after Connect, when the controller asks
    // One Authentication Send (out) or Receive (in) on the reserved CID.
    task<result<void>> auth_command(bool send, std::span<uint8_t> data);
    void lost(const char* why);
    task<void> recover();
    task<void> receiver(uint64_t gen);
    bool handle_pdu(const nvmf::tcp::pdu_view& pdu);
    // A C2HData's read (nullptr: the connection is being dropped), and what
    // follows once its data is in.
    pending* c2h_data_command(const nvmf::tcp::pdu_view& pdu);
    void c2h_data_done(pending& p, uint8_t flags);
    // A large C2HData received straight into the read's buffers; false when
    // the connection is being dropped.
    task<bool> receive_c2h_data(const nvmf::tcp::pdu_view& pdu, nvmf::tcp::rx_buffer& rx);
    task<bool> answer_r2t(uint16_t cid, uint16_t ttag, uint32_t off, uint32_t len);
    task<void> fatal(nvmf::tcp::fes status, uint32_t fei, std::span<const std::byte> header);

    // commands
    task<result<nvme::completion>> run(pending& p);
    task<void> send_command(pending& p);
    void complete(pending& p, result<nvme::completion> r);
    void fail_where(bool (*pred)(const pending&), error e);
    void fail_timed_out();
    pending* find(uint16_t cid);
    task<void> watchdog();

    // send side
    template <typename Add>
    task<bool> enqueue(Add add);
    task<void> flusher(uint64_t gen);
    void wake_flusher();
    struct sent_awaiter;
    sent_awaiter wait_sent(uint64_t gen);

    queue_options opt_;
    unsigned reactor_ = 0;
    state state_ = state::connecting;
    uint16_t cntlid_ = 0xffff;
    nvme::status connect_status_{};
    queue_stats stats_;

    // The current connection (a new one after each reconnect).
    tcp_stream stream_;
    std::unique_ptr<nvmf::tcp::tls_channel> tls_;  // this connection's, under TLS
    uint64_t conn_gen_ = 0;
    bool conn_down_ = true;
    std::unique_ptr<abort_source> conn_stop_;
    std::unique_ptr<gate> conn_loops_;  // receiver and flusher
    nvmf::tcp::reader_params rparams_;
    uint32_t maxh2cdata_ = 0;

    // Commands: slots by CID; the last CID is reserved for Connect/Disconnect.
    std::vector<pending*> slots_;
    std::vector<uint16_t> free_cids_;
    std::deque<std::coroutine_handle<>> cid_waiters_;
    size_t inflight_ = 0;  // submit() calls not yet returned
    std::coroutine_handle<> idle_waiter_;
    bool closing_ = false;

    // Send side: PDUs queued into `queued_` while `sending_` is on the wire.
    std::unique_ptr<nvmf::tcp::send_batch> queued_, sending_;
    uint64_t queued_gen_ = 1, sent_gen_ = 0;
    bool send_failed_ = false;
    std::coroutine_handle<> flusher_wait_;
    struct send_waiter {
        uint64_t gen;
        std::coroutine_handle<> h;
    };
    std::vector<send_waiter> send_waiters_;

    abort_source bg_stop_;         // the watchdog
    abort_source reconnect_stop_;  // the reconnect backoff
    gate watchdog_gate_;
    gate recovery_gate_;
};

const char* to_string(queue::state s);

// True for commands that leave the same state when run twice.
bool idempotent(const nvme::command& cmd, uint16_t qid);

}  // namespace weft::initiator
