// The body shared by NVMe's key interchange formats (DHHC-1 secrets and
// NVMeTLSkey-1 PSKs): base64 of the key followed by zlib's CRC-32 of the
// key, little-endian. Only the body: each format checks its own prefix.
#pragma once

#include <initializer_list>
#include <string_view>

#include "auth/secret.h"
#include "runtime/result.h"

namespace weft::auth {

// The key of `body` (the base64 between the colons). EINVAL with a sentence
// in `why` (never the key) when the text is not base64, the key's length is
// not one of `lengths` or the CRC-32 does not match.
result<secret_bytes> decode_key_body(std::string_view body, std::initializer_list<size_t> lengths,
                                     std::string* why);
// base64(key || crc32(key)), in wiped memory.
secret_string encode_key_body(std::span<const uint8_t> key);
// A whole key: "<prefix><hh, two digits>:<body>:", in wiped memory.
secret_string format_key_text(std::string_view prefix, unsigned hh, std::span<const uint8_t> key);
// `text` without the white space around it (a key file's newline).
std::string_view trim_key_text(std::string_view text);

// Standard base64 with padding (digests are not secrets).
std::string base64(std::span<const uint8_t> data);

// zlib's CRC-32 (reflected 0xEDB88320, inverted in and out).
uint32_t crc32_ieee(std::span<const uint8_t> data);

}  // namespace weft::auth
