// The controller's side of one queue's DH-HMAC-CHAP transaction (NVMe Base
// 2.0, 8.13.5): executes the Authentication Send and Receive commands a host
// sends on a queue that its Connect answer marked "authentication required".
//
//   host                          controller (this class)
//   Send Negotiate         ->     picks a hash and a DH group from the
//                                 host's lists, in host_auth's preference
//   Receive                <-     Challenge: C1, S1, g^x
//   Send Reply             ->     checks R1 (and takes C2, S2, g^y)
//   Receive                <-     Success1 (with R2 when the host sent C2)
//   [Send Success2         ->     the host accepted R2]
//
// The queue is authenticated after a good Reply (or after Success2 when the
// host asked for R2). A bad message ends the transaction: a Failure1 for the
// host's next Receive (any other message meanwhile ends it at once), or at
// once for a message out of order (Failure2, as Linux nvmet does); either
// way failed() turns true and the transport ends the connection once this
// command's answer is out. A new Negotiate on a queue whose transaction
// ended well starts another (re-authentication on a live queue).
//
// Secure channel concatenation (NVMe Base 2.1; docs/design/
// secure-concatenation.md): on an admin queue whose connection could run TLS,
// a Negotiate with SC_C NEWTLSPSK (plain queue) or REPLACETLSPSK (TLS queue)
// makes the exchange generate a TLS PSK: SHA-256 or SHA-384 and a DH group
// only, SC_C in R1, the host's C2 kept though it asks no controller
// authentication. The key, with its NVMe1G identity, goes to `on_psk` when
// the transaction ends authenticated. Any other SC_C, or one on an I/O
// queue, fails it (CONCAT_MISMATCH).
//
// Pure: no I/O; one command at a time (any thread). Secrets live in wiped
// memory and are never logged.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "auth/dhchap.h"
#include "auth/tls_psk.h"
#include "nvme/auth.h"
#include "nvmf/host_auth.h"
#include "nvmf/request.h"

namespace weft::nvmf {

// What a queue's connection allows for secure channel concatenation.
struct dhchap_channel {
    bool tls_possible = false;  // its listener allows TLS (a plain first connection)
    bool tls = false;           // it runs TLS now
};

class dhchap_responder {
  public:
    // Where a transaction's secrets come from: called when a Negotiate starts
    // one (the first, or re-authentication with the host's secret as it is
    // then), on the calling thread. Null: the host has no secret here; the
    // transaction fails (not usable).
    using config_source = std::function<std::shared_ptr<const host_auth>()>;
    // Where a generated TLS PSK goes (secure channel concatenation), with
    // the secrets of the transaction that made it. False: not kept (the
    // host's secret changed meanwhile); the transaction fails.
    using psk_sink =
        std::function<bool(const std::shared_ptr<const host_auth>&, auth::derived_psk)>;
    using channel = dhchap_channel;
    dhchap_responder(config_source source, std::string hostnqn, std::string subnqn, uint16_t qid,
                     channel ch = {}, psk_sink on_psk = nullptr);

    // An Authentication Send (its payload in r.data) or Receive (the answer
    // written to r.data); sets r's status.
    void execute(request& r);
    // Whether the next message costs a Diffie-Hellman computation (up to
    // ~0.1 s for ffdhe8192): the transport then runs execute() off its
    // reactor. execute() is not reentrant: one command at a time.
    bool next_is_costly() const {
        return group_ != auth::dh_group::null && (step_ == step::challenge || step_ == step::reply);
    }

    // Any thread (the transport reads them while a costly message runs).
    bool authenticated() const { return authenticated_.load(std::memory_order_acquire); }
    bool failed() const { return failed_.load(std::memory_order_acquire); }
    // Transactions that ended authenticated (re-authentication counts).
    unsigned successes() const { return successes_; }
    // The SC_C of the last transaction that ended authenticated.
    uint8_t concatenation() const { return done_sc_c_; }
    // For the log: "sha256, ffdhe2048, bidirectional".
    std::string describe() const;

  private:
    enum class step : uint8_t {
        negotiate,
        challenge,  // the host's Receive gets the Challenge
        reply,
        success1,  // the host's Receive gets Success1
        success2,  // the host may send Success2
        failure1,  // the host's Receive gets Failure1
        done,
    };
    void send(std::span<const uint8_t> p);
    void receive(request& r);
    nvme::auth::failure negotiate(std::span<const uint8_t> p);
    nvme::auth::failure reply(std::span<const uint8_t> p);
    void fail_next(nvme::auth::failure why);  // Failure1 on the next Receive
    void fail_now(nvme::auth::failure why);   // Failure2: the transaction is over
    void end_failed();                        // the queue is to end
    void reset();
    void succeed();  // the transaction ended authenticated

    config_source source_;
    std::shared_ptr<const host_auth> cfg_;  // the transaction's
    const std::string hostnqn_, subnqn_;
    const uint16_t qid_;
    const channel channel_;
    const psk_sink on_psk_;
    uint8_t sc_c_ = 0, done_sc_c_ = 0;

    step step_ = step::negotiate;
    uint16_t t_id_ = 0;
    auth::hash_id hash_ = auth::hash_id::none;
    auth::dh_group group_ = auth::dh_group::null;
    uint32_t s1_ = 0, s2_ = 0;
    auth::secret_bytes c1_, c2_, session_key_;
    std::optional<auth::dh_key> dh_;
    nvme::auth::failure why_ = nvme::auth::failure::failed;
    std::atomic<bool> authenticated_{false};
    unsigned successes_ = 0;
    std::atomic<bool> failed_{false};
    bool bidirectional_ = false;
};

}  // namespace weft::nvmf
