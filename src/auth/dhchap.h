// The DH-HMAC-CHAP computations (NVMe Base 2.0, 8.13.5), shared by the
// target (which checks a host's response and answers a host's challenge)
// and the initiator (the other way round). No I/O, no state: a transaction's
// state machine lives with its queue (nvmf/dhchap_responder.h).
//
//   Kx'      = HMAC(H(x), K, NQN || "NVMe-over-Fabrics")  for a key with a
//              transform x (its owner's NQN: the host's for the host key,
//              the subsystem's for the controller key); K itself for none
//   C'       = C with the null DH group, else HMAC(H, H(g^xy mod p), C)
//   host R1  = HMAC(H, Kh', C1' || S1 || T || SC_C || "HostHost" || NQNh || 00h || NQNc)
//   ctrl R2  = HMAC(H, Kc', C2' || S2 || T || 00h || "Controller" || NQNc || 00h || NQNh)
//
// S (sequence number, 32 bits) and T (transaction ID, 16 bits) are little-
// endian; SC_C is the secure channel concatenation byte the host negotiated
// (00h without concatenation; Linux hashes it since 6.18, 00h before); H is the hash function
// negotiated for the transaction, which may differ from the keys' transforms. These are the
// computations of Linux's nvme-auth (drivers/nvme/common/auth.c), which the kernel host and nvmet
// use.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "auth/dhchap_key.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace weft::auth {

// DH group identifiers (DH-HMAC-CHAP DhGroupID): RFC 7919 groups.
enum class dh_group : uint8_t {
    null = 0,
    ffdhe2048 = 1,
    ffdhe3072 = 2,
    ffdhe4096 = 3,
    ffdhe6144 = 4,
    ffdhe8192 = 5,
};
const char* dh_group_name(dh_group g);  // "null", "ffdhe2048"...
std::optional<dh_group> parse_dh_group(std::string_view name);
size_t dh_value_length(dh_group g);  // bytes of a public value; 0 for null
bool known_dh_group(uint8_t id);
bool known_hash(uint8_t id);  // sha256..sha512

// HMAC(h, key, parts...) and H(h, data): h must not be none.
secret_bytes hmac(hash_id h, std::span<const uint8_t> key,
                  std::initializer_list<std::span<const uint8_t>> parts);
secret_bytes digest(hash_id h, std::span<const uint8_t> data);

// The key as used in responses, for its owner `nqn` (see above).
secret_bytes transformed_key(const dhchap_key& k, std::string_view nqn);

enum class role { host, controller };
// R1 (role host: key = host key, nqn1 = host NQN, nqn2 = subsystem NQN) or
// R2 (role controller: key = controller key, nqn1 = subsystem, nqn2 = host).
// `session_key` is g^xy mod p (empty for the null group); `sc_c` goes into
// R1 only (R2 keeps 00h).
secret_bytes dhchap_response(hash_id h, const dhchap_key& key, role r, std::string_view nqn1,
                             std::string_view nqn2, std::span<const uint8_t> challenge,
                             std::span<const uint8_t> session_key, uint32_t seqnum, uint16_t t_id,
                             uint8_t sc_c = 0);

// Equal contents, in time that does not depend on where they differ.
bool same_secret(std::span<const uint8_t> a, std::span<const uint8_t> b);

// One side's ephemeral Diffie-Hellman key for a group other than null.
class dh_key {
  public:
    // A new random private key; EINVAL for the null group.
    static result<dh_key> generate(dh_group g);
    dh_key(dh_key&&) noexcept;
    dh_key& operator=(dh_key&&) noexcept;
    ~dh_key();

    dh_group group() const { return group_; }
    // g^x mod p, big-endian, padded to dh_value_length().
    const std::vector<uint8_t>& public_value() const { return public_; }
    // g^xy mod p from the peer's public value, padded to the group's length.
    // EINVAL for a value of the wrong length or one that fails the group's
    // checks (1 < y < p-1, in the prime-order subgroup).
    result<secret_bytes> shared_secret(std::span<const uint8_t> peer) const;

  private:
    dh_key() = default;
    dh_group group_ = dh_group::null;
    EVP_PKEY* pkey_ = nullptr;
    std::vector<uint8_t> public_;
};

// Random bytes (challenges).
void random_bytes(std::span<uint8_t> out);

}  // namespace weft::auth
