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
// host's next Receive, or at once for a message out of order (Failure2, as
// Linux nvmet does); either way failed() turns true and the transport ends
// the connection once this command's answer is out. A new Negotiate starts
// the transaction over (re-authentication on a live queue).
//
// Pure: no I/O, one reactor. Secrets live in wiped memory and are never
// logged.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "auth/dhchap.h"
#include "nvme/auth.h"
#include "nvmf/host_auth.h"
#include "nvmf/request.h"

namespace weft::nvmf {

class dhchap_responder {
  public:
    // `cfg` null: the host has no secret here; any transaction it starts
    // fails (not usable).
    dhchap_responder(std::shared_ptr<const host_auth> cfg, std::string hostnqn, std::string subnqn,
                     uint16_t qid);

    // An Authentication Send (its payload in r.data) or Receive (the answer
    // written to r.data); sets r's status.
    void execute(request& r);
    // The secrets for transactions started from now on (re-authentication
    // after the host's secret changed).
    void set_config(std::shared_ptr<const host_auth> cfg) { cfg_ = std::move(cfg); }
    // Whether `r` is an Authentication Send of a Negotiate: a transaction starts.
    static bool starts_transaction(const request& r);

    bool authenticated() const { return authenticated_; }
    // Transactions that ended authenticated (re-authentication counts).
    unsigned successes() const { return successes_; }
    bool failed() const { return failed_; }
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
    void reset();

    std::shared_ptr<const host_auth> cfg_;
    const std::string hostnqn_, subnqn_;
    const uint16_t qid_;

    step step_ = step::negotiate;
    uint16_t t_id_ = 0;
    auth::hash_id hash_ = auth::hash_id::none;
    auth::dh_group group_ = auth::dh_group::null;
    uint32_t s1_ = 0, s2_ = 0;
    auth::secret_bytes c1_, c2_, session_key_;
    std::optional<auth::dh_key> dh_;
    nvme::auth::failure why_ = nvme::auth::failure::failed;
    bool authenticated_ = false;
    unsigned successes_ = 0;
    bool failed_ = false;
    bool bidirectional_ = false;
};

}  // namespace weft::nvmf
