// DH-HMAC-CHAP secrets in the NVMe interchange format (NVMe Base 2.0,
// 8.13.5.8; what `nvme gen-dhchap-key` prints and Linux reads):
//
//   DHHC-1:<hh>:<base64 of key || crc32(key) little-endian>:
//
// <hh> says how the key is transformed before use: 00 as is, 01/02/03
// through HMAC-SHA-256/384/512 with the NQN of its owner (see
// dhchap::transformed_key). The key is 32, 48 or 64 bytes; the CRC-32 is
// zlib's (IEEE 802.3).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "auth/secret.h"
#include "runtime/result.h"

namespace weft::auth {

// Hash function identifiers (DH-HMAC-CHAP HashID; 0: none, for a key).
enum class hash_id : uint8_t { none = 0, sha256 = 1, sha384 = 2, sha512 = 3 };
size_t hash_length(hash_id h);     // 32, 48, 64; 0 for none
const char* hash_name(hash_id h);  // "sha256"...; "none"
std::optional<hash_id> parse_hash_name(std::string_view name);

struct dhchap_key {
    hash_id transform = hash_id::none;
    secret_bytes key;
};

// Parses the interchange format; EINVAL with a sentence in `why` (never the
// key itself) for anything else, including a CRC that does not match.
result<dhchap_key> parse_dhchap_key(std::string_view text, std::string* why);
secret_string format_dhchap_key(const dhchap_key& k);
// A new random key of `length` bytes (32, 48 or 64; 0: the transform's hash
// length, 32 for none).
result<dhchap_key> generate_dhchap_key(hash_id transform, size_t length = 0);

// A secret from a file ("-": standard input) read into wiped memory and
// checked; empty with a sentence in `why` (naming `what`, never the secret)
// on failure. `exposed`: set when the file can be read by other users.
secret_string read_dhchap_key_file(const std::string& path, const char* what, std::string* why,
                                   bool* exposed);

}  // namespace weft::auth
