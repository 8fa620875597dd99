// The host's side of one queue's DH-HMAC-CHAP transaction (NVMe Base 2.0,
// 8.13.5), as message bytes in and out: the queue sends them with
// Authentication Send and reads the controller's with Authentication
// Receive (see nvmf/dhchap_responder.h for the controller's side).
//
//   negotiate()     -> Send: the hash functions and DH groups offered
//   reply(challenge)-> Send: R1 for the controller's challenge (and C2 when
//                      a controller secret is set, to authenticate it back)
//   success1(msg)   -> checks R2 when one was asked for; true: send
//                      success2(); an error: send failure2() and give up
//
// Secure channel concatenation (sc_c NEWTLSPSK or REPLACETLSPSK; docs/
// design/secure-concatenation.md): only SHA-256/384 and DH groups are
// offered, SC_C goes into R1, a C2 is always sent (with S2 = 0 unless a
// controller secret asks the controller to prove itself too), and once
// success1() has accepted, tls_psk() is the generated TLS PSK and its
// NVMe1G identity.
//
// Pure: no I/O. Secrets live in wiped memory and are never logged.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "auth/dhchap.h"
#include "auth/tls_psk.h"
#include "nvme/auth.h"

namespace weft::initiator {

struct dhchap_host_options {
    auth::dhchap_key key;                      // the host's secret
    std::optional<auth::dhchap_key> ctrl_key;  // the controller's: bidirectional
    std::vector<auth::hash_id> digests;        // offered; empty: all three
    std::vector<auth::dh_group> dhgroups;      // offered; empty: all six
    uint8_t sc_c = nvme::auth::sc_c_none;      // secure channel concatenation
};

class dhchap_host {
  public:
    dhchap_host(dhchap_host_options opt, std::string hostnqn, std::string subnqn, uint16_t t_id);

    std::vector<uint8_t> negotiate() const;
    // A Challenge. Errors (with a sentence in `why`): the controller's
    // Failure1 as EACCES (a wrong response: the secret), ENOPROTOOPT (no
    // usable hash or DH group, or authentication not usable), EPROTO (it
    // took our message as malformed); EPROTO for a malformed challenge.
    result<std::vector<uint8_t>> reply(std::span<const uint8_t> challenge, std::string* why);
    // Success1: true when success2() must follow (the controller proved
    // itself); EACCES when its response is wrong or missing (send
    // failure2()); a Failure1 as for reply().
    result<bool> success1(std::span<const uint8_t> msg, std::string* why);
    std::vector<uint8_t> success2() const;
    std::vector<uint8_t> failure2(nvme::auth::failure why) const;

    // The TLS PSK the transaction generated (concatenation, after success1()
    // accepted). EINVAL otherwise.
    result<auth::derived_psk> tls_psk() const;

    auth::hash_id hash() const { return hash_; }
    auth::dh_group group() const { return group_; }

  private:
    dhchap_host_options opt_;
    const std::string hostnqn_, subnqn_;
    const uint16_t t_id_;
    auth::hash_id hash_ = auth::hash_id::none;
    auth::dh_group group_ = auth::dh_group::null;
    uint32_t s2_ = 0;
    auth::secret_bytes c1_, c2_, session_key_;
    bool succeeded_ = false;
};

}  // namespace weft::initiator
