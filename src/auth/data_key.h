// Keys for encryption at rest: each volume's data key (64 bytes, AES-256-XTS)
// is kept only wrapped by a key-encryption key (KEK), AES-256 key wrap with
// padding (RFC 5649), so that what is stored (engine state, the control
// plane's store) is useless without the KEK, and a new KEK re-wraps every
// data key without touching the data. Erasing a volume's wrapped key makes
// its data unrecoverable (crypto-erase).
//
//   kek k = parse_kek(read_kek_file(path, ...).view(), &why).value();
//   secret_bytes dek = generate_data_key();
//   std::string w = wrap_data_key(k, dek);        // "weft-dek-1:<kek id>:<base64>:"
//   auto back = unwrap_data_key({k}, w, &why);    // ENOKEY: no KEK with that id
//
// Text forms (both parsed by the fuzzer):
//   KEK:         weft-kek-1:00:<base64(key32 || crc32)>:
//   wrapped key: weft-dek-1:<kek id, 16 hex>:<base64(72 bytes)>:
// A KEK's id is the first 8 bytes of HMAC-SHA-256(kek, "weft kek id"): it
// names which KEK wrapped a key without revealing anything of it.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "auth/secret.h"
#include "runtime/result.h"

namespace weft::auth {

inline constexpr size_t kek_bytes = 32;
inline constexpr size_t data_key_bytes = 64;

struct kek {
    secret_bytes key;  // kek_bytes
    std::string id;    // 16 hex digits
};

// EINVAL with a sentence (never the key) for a malformed KEK text.
result<kek> parse_kek(std::string_view text, std::string* why);
// A new random KEK in its text form (weft key gen-kek).
secret_string generate_kek_text();
// A KEK file ("-": standard input) read into wiped memory and checked;
// empty with a sentence on failure, `exposed` when others can read it.
secret_string read_kek_file(const std::string& path, const char* what, std::string* why,
                            bool* exposed);

// 64 random bytes whose two halves differ (XTS refuses equal halves).
secret_bytes generate_data_key();
// The wrapped form of `dek` (data_key_bytes) under `k`.
std::string wrap_data_key(const kek& k, std::span<const uint8_t> dek);
// The KEK id a wrapped key names (EINVAL when it is malformed).
result<std::string> wrapped_key_id(std::string_view wrapped, std::string* why);
// The data key, unwrapped with the KEK of `keks` its text names. EINVAL
// malformed, ENOKEY no such KEK here, EBADMSG the unwrap's integrity check
// failed (another KEK with a clashing id, or a damaged text).
result<secret_bytes> unwrap_data_key(std::span<const kek> keks, std::string_view wrapped,
                                     std::string* why);

}  // namespace weft::auth
