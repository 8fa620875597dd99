#include "auth/tls_psk.h"

#include <fmt/format.h>
#include <openssl/rand.h>

#include <cerrno>

#include "auth/dhchap.h"
#include "auth/key_text.h"

namespace weft::auth {

namespace {

constexpr std::string_view prefix = "NVMeTLSkey-1:";
constexpr size_t max_nqn = 223;

}  // namespace

result<tls_key> parse_tls_key(std::string_view text, std::string* why) {
    auto fail = [&](std::string s) -> result<tls_key> {
        if (why) *why = std::move(s);
        return error{EINVAL};
    };
    text = trim_key_text(text);
    if (!text.starts_with(prefix))
        return fail("a TLS PSK starts with NVMeTLSkey-1: (the NVMe interchange format)");
    text.remove_prefix(prefix.size());
    if (text.size() < 4 || text[0] != '0' || text[1] < '0' || text[1] > '2' || text[2] != ':')
        return fail("a TLS PSK has 00, 01 or 02 after NVMeTLSkey-1: (none, SHA-256, SHA-384)");
    const auto t = hash_id(text[1] - '0');
    text.remove_prefix(3);
    if (!text.ends_with(':')) return fail("a TLS PSK ends with ':'");
    text.remove_suffix(1);
    auto key = t == hash_id::none     ? decode_key_body(text, {32, 48}, why)
               : t == hash_id::sha256 ? decode_key_body(text, {32}, why)
                                      : decode_key_body(text, {48}, why);
    if (!key) {
        if (why && t != hash_id::none) *why += fmt::format(" (for {})", hash_name(t));
        return key.err();
    }
    tls_key k;
    k.transform = t;
    k.key = std::move(*key);
    return k;
}

secret_string format_tls_key(const tls_key& k) {
    return format_key_text(prefix, unsigned(k.transform), {k.key.data(), k.key.size()});
}

result<tls_key> generate_tls_key(hash_id h) {
    if (h != hash_id::sha256 && h != hash_id::sha384) return error{EINVAL};
    tls_key k;
    k.transform = h;
    k.key.resize(hash_length(h));
    if (RAND_bytes(k.key.data(), int(k.key.size())) != 1) return error{EIO};
    return k;
}

secret_string read_tls_key_file(const std::string& path, const char* what, std::string* why,
                                bool* exposed) {
    return read_key_file(
        path, what, [](std::string_view t, std::string* w) { return parse_tls_key(t, w).ok(); },
        why, exposed);
}

hash_id tls_cipher_hash(const tls_key& k) {
    if (k.transform != hash_id::none) return k.transform;
    return k.key.size() == 48 ? hash_id::sha384 : hash_id::sha256;
}

secret_bytes hkdf_expand_label(hash_id h, std::span<const uint8_t> secret, std::string_view label,
                               std::span<const uint8_t> context, derivation d) {
    const size_t len = hash_length(h);
    // Extract with no salt: HMAC keyed with a hash length of zeros.
    const secret_bytes zeros(len, 0);
    const secret_bytes prk = hmac(h, zeros, {secret});
    // HkdfLabel (RFC 8446 7.1): length, "tls13 " label, context. The
    // compat form has no length bytes and the length little-endian.
    std::string full = "tls13 " + std::string(label);
    secret_bytes info;
    if (d == derivation::rfc8446) {
        info = {uint8_t(len >> 8), uint8_t(len), uint8_t(full.size())};
        info.insert(info.end(), full.begin(), full.end());
        info.push_back(uint8_t(context.size()));
    } else {
        info = {uint8_t(len), uint8_t(len >> 8)};
        info.insert(info.end(), full.begin(), full.end());
    }
    info.insert(info.end(), context.begin(), context.end());
    // Expand: the output is one hash long, so one block, T(1).
    static const uint8_t one = 1;
    return hmac(h, prk, {info, {&one, 1}});
}

secret_bytes retained_psk(const tls_key& k, std::string_view hostnqn, derivation d) {
    if (k.transform == hash_id::none) return k.key;
    return hkdf_expand_label(k.transform, k.key, "HostNQN", bytes_of(hostnqn), d);
}

std::string psk_digest(hash_id h, std::span<const uint8_t> retained, std::string_view hostnqn,
                       std::string_view subnqn) {
    const secret_bytes mac =
        hmac(h, retained,
             {bytes_of(hostnqn), bytes_of(" "), bytes_of(subnqn), bytes_of(" NVMe-over-Fabrics")});
    return base64(mac);
}

std::string format_identity(const psk_identity& id) {
    std::string s = fmt::format("NVMe{}{}{:02d} {} {}", id.version, id.type, int(id.hash),
                                id.hostnqn, id.subnqn);
    if (id.version == 1) s += " " + id.digest;
    return s;
}

std::optional<psk_identity> parse_identity(std::string_view text) {
    // NVMe<v><t><hh> <hostnqn> <subnqn>[ <digest>]
    if (text.size() < 9 || !text.starts_with("NVMe") || text[8] != ' ') return std::nullopt;
    psk_identity id;
    if (text[4] != '0' && text[4] != '1') return std::nullopt;
    id.version = unsigned(text[4] - '0');
    if (text[5] != 'R' && text[5] != 'G') return std::nullopt;
    id.type = text[5];
    if (text[6] != '0' || (text[7] != '1' && text[7] != '2')) return std::nullopt;
    id.hash = hash_id(text[7] - '0');
    text.remove_prefix(9);
    std::string_view parts[3];
    size_t n = 0;
    while (!text.empty()) {
        if (n == 3) return std::nullopt;
        size_t sp = text.find(' ');
        parts[n++] = text.substr(0, sp);
        text = sp == std::string_view::npos ? std::string_view{} : text.substr(sp + 1);
        if (sp != std::string_view::npos && text.empty()) return std::nullopt;  // a trailing space
    }
    if (n != (id.version == 1 ? 3u : 2u)) return std::nullopt;
    for (size_t i = 0; i < 2; ++i)
        if (parts[i].empty() || parts[i].size() > max_nqn) return std::nullopt;
    id.hostnqn = parts[0];
    id.subnqn = parts[1];
    if (id.version == 1) {
        // base64 of one hash, padded.
        if (parts[2].size() != (hash_length(id.hash) + 2) / 3 * 4) return std::nullopt;
        id.digest = parts[2];
    }
    return id;
}

result<derived_psk> derive_tls_psk(const tls_key& k, std::string_view hostnqn,
                                   std::string_view subnqn, unsigned version, derivation d) {
    if (version > 1) return error{EINVAL};
    derived_psk out;
    out.hash = tls_cipher_hash(k);
    const secret_bytes retained = retained_psk(k, hostnqn, d);
    psk_identity id;
    id.version = version;
    id.hash = out.hash;
    id.hostnqn = hostnqn;
    id.subnqn = subnqn;
    std::string context;
    if (version == 1) {
        id.digest = psk_digest(out.hash, retained, hostnqn, subnqn);
        context = fmt::format("{:02d} {}", int(out.hash), id.digest);
    }
    out.identity = format_identity(id);
    if (version == 0) {
        if (out.identity.size() > 255) return error{EINVAL};
        context = out.identity;
    }
    out.psk = hkdf_expand_label(out.hash, retained, "nvme-tls-psk", bytes_of(context), d);
    return out;
}

secret_bytes generated_psk(hash_id h, std::span<const uint8_t> ks, std::span<const uint8_t> c1,
                           std::span<const uint8_t> c2) {
    return hmac(h, ks, {c1, c2});
}

result<derived_psk> derive_generated_tls_psk(hash_id h, std::span<const uint8_t> psk,
                                             std::string_view hostnqn, std::string_view subnqn) {
    if (h != hash_id::sha256 && h != hash_id::sha384) return error{EINVAL};
    derived_psk out;
    out.hash = h;
    psk_identity id;
    id.version = 1;
    id.type = 'G';
    id.hash = h;
    id.hostnqn = hostnqn;
    id.subnqn = subnqn;
    id.digest = psk_digest(h, psk, hostnqn, subnqn);
    out.identity = format_identity(id);
    const std::string context = fmt::format("{:02d} {}", int(h), id.digest);
    out.psk = hkdf_expand_label(h, psk, "nvme-tls-psk", bytes_of(context), derivation::rfc8446);
    return out;
}

}  // namespace weft::auth
