// NVMe/TCP TLS pre-shared keys (NVMe/TCP transport 3.6.1.3; what nvme-cli's
// gen-tls-key prints, libnvme derives and Linux keeps in its .nvme keyring).
//
// A configured PSK in the interchange format
//
//   NVMeTLSkey-1:<xx>:<base64 of key || crc32(key) little-endian>:
//
// (xx: 00 no transform, 01 HMAC-SHA-256 with a 32-byte key, 02 HMAC-SHA-384
// with a 48-byte key) becomes the key TLS uses in two steps, each an
// HKDF-Expand-Label of RFC 8446 over an HKDF-Extract with a zero salt:
//
//   retained = Expand-Label(configured, "HostNQN", <host NQN>)     (xx 00: the key)
//   tls psk  = Expand-Label(retained, "nvme-tls-psk", <context>)
//
// and is offered under an identity that names both ends:
//
//   v0  NVMe0R0<h> <hostnqn> <subnqn>             context: the identity
//   v1  NVMe1R0<h> <hostnqn> <subnqn> <digest>    context: "0<h> <digest>"
//
// with digest = base64(HMAC(retained, "<hostnqn> <subnqn> NVMe-over-Fabrics")).
// <h> is the cipher suite's hash: 1 TLS_AES_128_GCM_SHA256, 2
// TLS_AES_256_GCM_SHA384. `nvme connect --tls-key` inserts a v1 identity;
// `nvme gen-tls-key --insert` a v0 one by default.
//
// nvme-cli before 2.15 (libnvme before 1.15) wrote the labels without their
// length bytes and the output length little-endian (nvme-cli's --compat):
// derivation::compat gives those keys.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "auth/dhchap_key.h"
#include "auth/secret.h"
#include "runtime/result.h"

namespace weft::auth {

struct tls_key {
    hash_id transform = hash_id::none;  // none, sha256 or sha384
    secret_bytes key;                   // 32 or 48 bytes
};

// Parses the interchange format; EINVAL with a sentence in `why` (never the
// key) for anything else, including a CRC that does not match.
result<tls_key> parse_tls_key(std::string_view text, std::string* why);
secret_string format_tls_key(const tls_key& k);
// A new random key for `h` (sha256: 32 bytes, sha384: 48). EINVAL otherwise.
result<tls_key> generate_tls_key(hash_id h);
// The hash of the cipher suite the key is for: its transform, or by its
// length when it has none.
hash_id tls_cipher_hash(const tls_key& k);

// A TLS key from a file (see auth::read_key_file).
secret_string read_tls_key_file(const std::string& path, const char* what, std::string* why,
                                bool* exposed);

enum class derivation { rfc8446, compat };

// HKDF-Expand-Label(HKDF-Extract(0, secret), label, context, length of h).
secret_bytes hkdf_expand_label(hash_id h, std::span<const uint8_t> secret, std::string_view label,
                               std::span<const uint8_t> context, derivation d);

secret_bytes retained_psk(const tls_key& k, std::string_view hostnqn, derivation d);
// base64(HMAC(retained, "<hostnqn> <subnqn> NVMe-over-Fabrics")).
std::string psk_digest(hash_id h, std::span<const uint8_t> retained, std::string_view hostnqn,
                       std::string_view subnqn);

struct psk_identity {
    unsigned version = 1;  // 0 or 1
    char type = 'R';       // R: configured (retained); G: generated (secure concatenation)
    hash_id hash = hash_id::sha256;
    std::string hostnqn, subnqn;
    std::string digest;  // v1 only
};
std::string format_identity(const psk_identity& id);
// A well-formed identity, or nothing.
std::optional<psk_identity> parse_identity(std::string_view text);

// The PSK for TLS and the identity it goes under, from a configured key
// for the pair (hostnqn, subnqn). EINVAL for a version other than 0 or 1,
// or a v0 identity over 255 bytes (its context cannot be encoded).
struct derived_psk {
    std::string identity;
    hash_id hash = hash_id::sha256;
    secret_bytes psk;
};
result<derived_psk> derive_tls_psk(const tls_key& k, std::string_view hostnqn,
                                   std::string_view subnqn, unsigned version = 1,
                                   derivation d = derivation::rfc8446);

// Secure channel concatenation (docs/design/secure-concatenation.md): the
// PSK a DH-HMAC-CHAP exchange generates, HMAC(h, KS, C1 || C2), where KS is
// H(g^xy) (dhchap.h's session key hashed), C1 the controller's challenge and
// C2 the host's.
secret_bytes generated_psk(hash_id h, std::span<const uint8_t> ks, std::span<const uint8_t> c1,
                           std::span<const uint8_t> c2);
// The TLS PSK of a generated PSK and its identity, NVMe1G0<h> <hostnqn>
// <subnqn> <digest> (the digest and the expansion as for a configured key,
// with the generated PSK as the retained one). EINVAL unless h is SHA-256 or
// SHA-384, the hashes a PSK digest is defined for.
result<derived_psk> derive_generated_tls_psk(hash_id h, std::span<const uint8_t> psk,
                                             std::string_view hostnqn, std::string_view subnqn);

}  // namespace weft::auth
