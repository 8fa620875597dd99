#include "auth/data_key.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstring>

#include "auth/key_text.h"

namespace weft::auth {

namespace {

constexpr std::string_view kek_prefix = "weft-kek-1:";
constexpr std::string_view dek_prefix = "weft-dek-1:";
constexpr size_t wrapped_bytes = data_key_bytes + 8;  // RFC 5649: 8 bytes of integrity

std::string kek_id(std::span<const uint8_t> key) {
    static constexpr std::string_view label = "weft kek id";
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    HMAC(EVP_sha256(), key.data(), int(key.size()), reinterpret_cast<const uint8_t*>(label.data()),
         label.size(), mac, &len);
    std::string id;
    for (int i = 0; i < 8; ++i) id += fmt::format("{:02x}", mac[i]);
    return id;
}

// AES-256 key wrap with padding, one direction; false on failure.
bool key_wrap(bool wrap, std::span<const uint8_t> kek, std::span<const uint8_t> in,
              secret_bytes& out) {
    EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
    if (!c) return false;
    EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    out.assign(in.size() + 16, 0);
    int n = 0, m = 0;
    bool ok = EVP_CipherInit_ex2(c, EVP_aes_256_wrap_pad(), kek.data(), nullptr, wrap ? 1 : 0,
                                 nullptr) == 1 &&
              EVP_CipherUpdate(c, out.data(), &n, in.data(), int(in.size())) == 1 &&
              EVP_CipherFinal_ex(c, out.data() + n, &m) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok) return false;
    out.resize(size_t(n + m));
    return true;
}

struct wrapped_parts {
    std::string_view id, body;
};

result<wrapped_parts> split_wrapped(std::string_view text, std::string* why) {
    auto fail = [&](std::string s) -> result<wrapped_parts> {
        if (why) *why = std::move(s);
        return error{EINVAL};
    };
    text = trim_key_text(text);
    if (!text.starts_with(dek_prefix)) return fail("a wrapped data key starts with weft-dek-1:");
    text.remove_prefix(dek_prefix.size());
    if (text.size() < 18 || text[16] != ':')
        return fail("a wrapped data key names its KEK with 16 hex digits after weft-dek-1:");
    std::string_view id = text.substr(0, 16);
    for (char ch : id)
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return fail("a wrapped data key names its KEK with 16 lower-case hex digits");
    text.remove_prefix(17);
    if (!text.ends_with(':')) return fail("a wrapped data key ends with ':'");
    text.remove_suffix(1);
    return wrapped_parts{id, text};
}

}  // namespace

result<kek> parse_kek(std::string_view text, std::string* why) {
    auto fail = [&](std::string s) -> result<kek> {
        if (why) *why = std::move(s);
        return error{EINVAL};
    };
    text = trim_key_text(text);
    if (!text.starts_with(kek_prefix))
        return fail("a key-encryption key starts with weft-kek-1: (weft key gen-kek makes one)");
    text.remove_prefix(kek_prefix.size());
    if (!text.starts_with("00:")) return fail("a key-encryption key has 00 after weft-kek-1:");
    text.remove_prefix(3);
    if (!text.ends_with(':')) return fail("a key-encryption key ends with ':'");
    text.remove_suffix(1);
    auto key = decode_key_body(text, {kek_bytes}, why);
    if (!key) return key.err();
    kek k;
    k.id = kek_id(*key);
    k.key = std::move(*key);
    return k;
}

secret_string generate_kek_text() {
    secret_bytes k(kek_bytes);
    if (RAND_bytes(k.data(), int(k.size())) != 1) return {};
    return format_key_text(kek_prefix, 0, k);
}

secret_string read_kek_file(const std::string& path, const char* what, std::string* why,
                            bool* exposed) {
    return read_key_file(
        path, what, [](std::string_view t, std::string* w) { return parse_kek(t, w).ok(); }, why,
        exposed);
}

secret_bytes generate_data_key() {
    secret_bytes k(data_key_bytes);
    do {
        if (RAND_bytes(k.data(), int(k.size())) != 1) return {};
    } while (std::memcmp(k.data(), k.data() + 32, 32) == 0);
    return k;
}

std::string wrap_data_key(const kek& k, std::span<const uint8_t> dek) {
    secret_bytes w;
    if (dek.size() != data_key_bytes || !key_wrap(true, k.key, dek, w)) return {};
    // Not a secret once wrapped: plain memory from here.
    return fmt::format("{}{}:{}:", dek_prefix, k.id, base64(w));
}

result<std::string> wrapped_key_id(std::string_view wrapped, std::string* why) {
    auto p = split_wrapped(wrapped, why);
    if (!p) return p.err();
    return std::string(p->id);
}

result<secret_bytes> unwrap_data_key(std::span<const kek> keks, std::string_view wrapped,
                                     std::string* why) {
    auto p = split_wrapped(wrapped, why);
    if (!p) return p.err();
    const kek* k = nullptr;
    for (auto& x : keks)
        if (x.id == p->id) k = &x;
    if (!k) {
        if (why) *why = fmt::format("no key-encryption key with id {} here", p->id);
        return error{ENOKEY};
    }
    std::vector<uint8_t> raw(p->body.size() / 4 * 3 + 3);
    if (p->body.size() != (wrapped_bytes + 2) / 3 * 4) {
        if (why) *why = "a wrapped data key holds 96 base64 characters";
        return error{EINVAL};
    }
    int n = EVP_DecodeBlock(raw.data(), reinterpret_cast<const uint8_t*>(p->body.data()),
                            int(p->body.size()));
    if (n < int(wrapped_bytes)) {
        if (why) *why = "a wrapped data key is not valid base64";
        return error{EINVAL};
    }
    secret_bytes out;
    if (!key_wrap(false, k->key, {raw.data(), wrapped_bytes}, out) ||
        out.size() != data_key_bytes) {
        if (why)
            *why = fmt::format("the data key does not unwrap with key-encryption key {}", k->id);
        return error{EBADMSG};
    }
    return out;
}

}  // namespace weft::auth
