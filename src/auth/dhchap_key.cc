#include "auth/dhchap_key.h"

#include <openssl/rand.h>

#include <cerrno>
#include <cstring>

#include "auth/key_text.h"

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
    text = trim_key_text(text);
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
    auto key = decode_key_body(text, {32, 48, 64}, why);
    if (!key) return key.err();
    dhchap_key k;
    k.transform = hash_id(t);
    k.key = std::move(*key);
    return k;
}

secret_string format_dhchap_key(const dhchap_key& k) {
    return format_key_text("DHHC-1:", unsigned(k.transform), {k.key.data(), k.key.size()});
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
    return read_key_file(
        path, what, [](std::string_view t, std::string* w) { return parse_dhchap_key(t, w).ok(); },
        why, exposed);
}

}  // namespace weft::auth
