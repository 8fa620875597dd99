#include "auth/dhchap_key.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

namespace weft::auth {

size_t hash_length(hash_id h) {
    switch (h) {
        case hash_id::sha256:
            return 32;
        case hash_id::sha384:
            return 48;
        case hash_id::sha512:
            return 64;
        default:
            return 0;
    }
}

const char* hash_name(hash_id h) {
    switch (h) {
        case hash_id::sha256:
            return "sha256";
        case hash_id::sha384:
            return "sha384";
        case hash_id::sha512:
            return "sha512";
        default:
            return "none";
    }
}

std::optional<hash_id> parse_hash_name(std::string_view name) {
    for (hash_id h : {hash_id::sha256, hash_id::sha384, hash_id::sha512})
        if (name == hash_name(h)) return h;
    return std::nullopt;
}

uint32_t crc32_ieee(std::span<const uint8_t> data) {
    uint32_t crc = 0xffffffffu;
    for (uint8_t b : data) {
        crc ^= b;
        for (int i = 0; i < 8; ++i) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

namespace {

constexpr std::string_view prefix = "DHHC-1:";

bool valid_length(size_t n) {
    return n == 32 || n == 48 || n == 64;
}

}  // namespace

result<dhchap_key> parse_dhchap_key(std::string_view text, std::string* why) {
    auto fail = [&](std::string s) -> result<dhchap_key> {
        if (why) *why = std::move(s);
        return error{EINVAL};
    };
    // Surrounding white space (a key file's newline) is not part of the key.
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
        text.remove_suffix(1);
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    if (!text.starts_with(prefix))
        return fail("a DH-HMAC-CHAP key starts with DHHC-1: (the NVMe interchange format)");
    text.remove_prefix(prefix.size());
    if (text.size() < 4 || text[2] != ':' || text[0] < '0' || text[0] > '9' || text[1] < '0' ||
        text[1] > '9')
        return fail("a DH-HMAC-CHAP key has a two-digit transform after DHHC-1: (00 to 03)");
    unsigned t = unsigned(text[0] - '0') * 10 + unsigned(text[1] - '0');
    if (t > 3) return fail("the key's transform must be 00 (none), 01, 02 or 03 (SHA-256/384/512)");
    text.remove_prefix(3);
    if (!text.ends_with(':')) return fail("a DH-HMAC-CHAP key ends with ':'");
    text.remove_suffix(1);
    // base64 of 36, 52 or 68 bytes: 48, 72 or 92 characters.
    if (text.size() != 48 && text.size() != 72 && text.size() != 92)
        return fail(
            "the key must hold 32, 48 or 64 bytes and a CRC-32 (48, 72 or 92 base64 characters)");
    secret_bytes raw(text.size() / 4 * 3);
    int n = EVP_DecodeBlock(raw.data(), reinterpret_cast<const unsigned char*>(text.data()),
                            int(text.size()));
    if (n < 0) return fail("the key is not valid base64");
    // EVP_DecodeBlock keeps the padding's zero bytes: count them off.
    size_t len = size_t(n);
    for (size_t i = text.size(); i > 0 && text[i - 1] == '='; --i) --len;
    if (len < 4 || !valid_length(len - 4))
        return fail("the key must hold 32, 48 or 64 bytes and a CRC-32");
    len -= 4;
    uint32_t stored = uint32_t(raw[len]) | uint32_t(raw[len + 1]) << 8 |
                      uint32_t(raw[len + 2]) << 16 | uint32_t(raw[len + 3]) << 24;
    if (crc32_ieee({raw.data(), len}) != stored)
        return fail("the key's CRC-32 does not match: the key is damaged or mistyped");
    dhchap_key k;
    k.transform = hash_id(t);
    k.key.assign(raw.begin(), raw.begin() + len);
    return k;
}

secret_string format_dhchap_key(const dhchap_key& k) {
    secret_bytes raw(k.key.begin(), k.key.end());
    uint32_t crc = crc32_ieee({k.key.data(), k.key.size()});
    for (int i = 0; i < 4; ++i) raw.push_back(uint8_t(crc >> (8 * i)));
    std::basic_string<char, std::char_traits<char>, wiping_allocator<char>> b64(
        (raw.size() + 2) / 3 * 4 + 1, '\0');
    int n =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), raw.data(), int(raw.size()));
    b64.resize(size_t(n));
    std::basic_string<char, std::char_traits<char>, wiping_allocator<char>> out("DHHC-1:0");
    out.push_back(char('0' + int(k.transform)));
    out.push_back(':');
    out.append(b64);
    out.push_back(':');
    return secret_string({out.data(), out.size()});
}

result<dhchap_key> generate_dhchap_key(hash_id transform, size_t length) {
    if (length == 0) length = transform == hash_id::none ? 32 : hash_length(transform);
    if (!valid_length(length)) return error{EINVAL};
    dhchap_key k;
    k.transform = transform;
    k.key.resize(length);
    if (RAND_bytes(k.key.data(), int(length)) != 1) return error{EIO};
    return k;
}

secret_string read_dhchap_key_file(const std::string& path, const char* what, std::string* why,
                                   bool* exposed) {
    struct stat st {};
    *exposed = path != "-" && ::stat(path.c_str(), &st) == 0 && (st.st_mode & 077);
    // A secret is ~100 bytes; 4 KiB is plenty.
    auto s = read_file_wiped(path, 4096);
    if (!s) {
        *why = std::string("cannot read the ") + what + " from " + path + ": " +
               (s.err().code == EFBIG ? "too large for a secret" : s.err().message());
        return {};
    }
    std::string w;
    if (!parse_dhchap_key(s->view(), &w)) {
        *why = std::string("the ") + what + " in " + path + ": " + w;
        return {};
    }
    return std::move(s.value());
}

}  // namespace weft::auth
