#include "auth/dhchap.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>
#include <stdexcept>

namespace weft::auth {

namespace {

const char* evp_digest_name(hash_id h) {
    switch (h) {
        case hash_id::sha256:
            return "SHA256";
        case hash_id::sha384:
            return "SHA384";
        case hash_id::sha512:
            return "SHA512";
        default:
            throw std::invalid_argument("DH-HMAC-CHAP: no hash function");
    }
}

// Owners of OpenSSL objects.
template <typename T, void (*F)(T*)>
struct ossl_ptr {
    T* p = nullptr;
    ossl_ptr() = default;
    explicit ossl_ptr(T* q) : p(q) {}
    ossl_ptr(const ossl_ptr&) = delete;
    ~ossl_ptr() {
        if (p) F(p);
    }
    T* get() const { return p; }
    T** out() { return &p; }
    explicit operator bool() const { return p != nullptr; }
};
using pkey_ctx = ossl_ptr<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using mac_ptr = ossl_ptr<EVP_MAC, EVP_MAC_free>;
using mac_ctx = ossl_ptr<EVP_MAC_CTX, EVP_MAC_CTX_free>;
using bn_ptr = ossl_ptr<BIGNUM, BN_clear_free>;
using bn_ctx = ossl_ptr<BN_CTX, BN_CTX_free>;

void le32(uint8_t* p, uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}

}  // namespace

const char* dh_group_name(dh_group g) {
    switch (g) {
        case dh_group::null:
            return "null";
        case dh_group::ffdhe2048:
            return "ffdhe2048";
        case dh_group::ffdhe3072:
            return "ffdhe3072";
        case dh_group::ffdhe4096:
            return "ffdhe4096";
        case dh_group::ffdhe6144:
            return "ffdhe6144";
        case dh_group::ffdhe8192:
            return "ffdhe8192";
    }
    return "?";
}

std::optional<dh_group> parse_dh_group(std::string_view name) {
    for (uint8_t i = 0; i <= 5; ++i)
        if (name == dh_group_name(dh_group(i))) return dh_group(i);
    return std::nullopt;
}

size_t dh_value_length(dh_group g) {
    static constexpr size_t bits[] = {0, 2048, 3072, 4096, 6144, 8192};
    return known_dh_group(uint8_t(g)) ? bits[uint8_t(g)] / 8 : 0;
}

bool known_dh_group(uint8_t id) {
    return id <= 5;
}
bool known_hash(uint8_t id) {
    return id >= 1 && id <= 3;
}

secret_bytes hmac(hash_id h, std::span<const uint8_t> key,
                  std::initializer_list<std::span<const uint8_t>> parts) {
    mac_ptr mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
    mac_ctx ctx(mac ? EVP_MAC_CTX_new(mac.get()) : nullptr);
    if (!ctx) throw std::runtime_error("OpenSSL: no HMAC");
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(
                               OSSL_MAC_PARAM_DIGEST, const_cast<char*>(evp_digest_name(h)), 0),
                           OSSL_PARAM_construct_end()};
    // HMAC with an empty key is legal; OpenSSL wants a non-null pointer.
    static const uint8_t none = 0;
    if (EVP_MAC_init(ctx.get(), key.empty() ? &none : key.data(), key.size(), params) != 1)
        throw std::runtime_error("OpenSSL: HMAC init failed");
    for (auto part : parts)
        if (!part.empty() && EVP_MAC_update(ctx.get(), part.data(), part.size()) != 1)
            throw std::runtime_error("OpenSSL: HMAC update failed");
    secret_bytes out(hash_length(h));
    size_t n = out.size();
    if (EVP_MAC_final(ctx.get(), out.data(), &n, out.size()) != 1 || n != out.size())
        throw std::runtime_error("OpenSSL: HMAC final failed");
    return out;
}

secret_bytes digest(hash_id h, std::span<const uint8_t> data) {
    secret_bytes out(hash_length(h));
    unsigned n = 0;
    const EVP_MD* md = h == hash_id::sha256   ? EVP_sha256()
                       : h == hash_id::sha384 ? EVP_sha384()
                                              : EVP_sha512();
    if (h == hash_id::none ||
        EVP_Digest(data.data(), data.size(), out.data(), &n, md, nullptr) != 1)
        throw std::runtime_error("OpenSSL: digest failed");
    return out;
}

secret_bytes transformed_key(const dhchap_key& k, std::string_view nqn) {
    if (k.transform == hash_id::none) return k.key;
    static constexpr std::string_view fabrics = "NVMe-over-Fabrics";
    return hmac(k.transform, {k.key.data(), k.key.size()}, {bytes_of(nqn), bytes_of(fabrics)});
}

secret_bytes dhchap_response(hash_id h, const dhchap_key& key, role r, std::string_view nqn1,
                             std::string_view nqn2, std::span<const uint8_t> challenge,
                             std::span<const uint8_t> session_key, uint32_t seqnum, uint16_t t_id,
                             uint8_t sc_c) {
    secret_bytes k = transformed_key(key, nqn1);
    secret_bytes augmented;
    if (!session_key.empty()) {
        secret_bytes hk = digest(h, session_key);
        augmented = hmac(h, {hk.data(), hk.size()}, {challenge});
        challenge = {augmented.data(), augmented.size()};
    }
    uint8_t st[7];
    le32(st, seqnum);
    st[4] = uint8_t(t_id);
    st[5] = uint8_t(t_id >> 8);
    st[6] = r == role::host ? sc_c : 0;
    static const uint8_t zero = 0;
    std::string_view label = r == role::host ? "HostHost" : "Controller";
    return hmac(h, {k.data(), k.size()},
                {challenge, {st, 7}, bytes_of(label), bytes_of(nqn1), {&zero, 1}, bytes_of(nqn2)});
}

bool same_secret(std::span<const uint8_t> a, std::span<const uint8_t> b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void random_bytes(std::span<uint8_t> out) {
    if (RAND_bytes(out.data(), int(out.size())) != 1)
        throw std::runtime_error("OpenSSL: no random bytes");
}

// ---- dh_key -------------------------------------------------------------------

result<dh_key> dh_key::generate(dh_group g) {
    if (g == dh_group::null || !known_dh_group(uint8_t(g))) return error{EINVAL};
    pkey_ctx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "DH", nullptr));
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                            const_cast<char*>(dh_group_name(g)), 0),
                           OSSL_PARAM_construct_end()};
    EVP_PKEY* raw = nullptr;
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_params(ctx.get(), params) != 1 || EVP_PKEY_generate(ctx.get(), &raw) != 1)
        return error{EIO};
    dh_key k;
    k.group_ = g;
    k.pkey_ = raw;
    bn_ptr pub;
    if (EVP_PKEY_get_bn_param(raw, OSSL_PKEY_PARAM_PUB_KEY, pub.out()) != 1) return error{EIO};
    k.public_.resize(dh_value_length(g));
    if (BN_bn2binpad(pub.get(), k.public_.data(), int(k.public_.size())) < 0) return error{EIO};
    return k;
}

dh_key::dh_key(dh_key&& o) noexcept
    : group_(o.group_), pkey_(std::exchange(o.pkey_, nullptr)), public_(std::move(o.public_)) {}

dh_key& dh_key::operator=(dh_key&& o) noexcept {
    if (this != &o) {
        if (pkey_) EVP_PKEY_free(pkey_);
        group_ = o.group_;
        pkey_ = std::exchange(o.pkey_, nullptr);
        public_ = std::move(o.public_);
    }
    return *this;
}

dh_key::~dh_key() {
    if (pkey_) EVP_PKEY_free(pkey_);  // OpenSSL wipes the private key
}

result<secret_bytes> dh_key::shared_secret(std::span<const uint8_t> peer) const {
    if (!pkey_ || peer.size() != public_.size()) return error{EINVAL};
    bn_ptr y(BN_bin2bn(peer.data(), int(peer.size()), nullptr));
    // The private key and the result are secrets: secure BIGNUMs, cleared
    // when freed (bn_ptr frees with BN_clear_free; get_bn fills x in place).
    bn_ptr p, x(BN_secure_new()), z(BN_secure_new()), p_minus_1(BN_new());
    bn_ctx ctx(BN_CTX_secure_new());
    if (!y || !x || !z || !p_minus_1 || !ctx ||
        EVP_PKEY_get_bn_param(pkey_, OSSL_PKEY_PARAM_FFC_P, p.out()) != 1 ||
        EVP_PKEY_get_bn_param(pkey_, OSSL_PKEY_PARAM_PRIV_KEY, x.out()) != 1 ||
        !BN_sub(p_minus_1.get(), p.get(), BN_value_one()))
        return error{EIO};
    // The partial check of SP 800-56A 5.6.2.3.2, as Linux's host and nvmet
    // do (its full check, y^q = 1, runs only in FIPS mode): 1 < y < p - 1.
    // In a safe-prime group anything else has order q or 2q, and confining
    // the result to the order-2q coset tells at most the parity of a key
    // that lives for one exchange. The full check was a modular
    // exponentiation by the 8191-bit q: ~100 ms per side with ffdhe8192,
    // and OpenSSL's derive repeats it (~200 ms per side in all).
    if (BN_cmp(y.get(), BN_value_one()) <= 0 || BN_cmp(y.get(), p_minus_1.get()) >= 0)
        return error{EINVAL};
    BN_set_flags(x.get(), BN_FLG_CONSTTIME);
    if (BN_mod_exp_mont_consttime(z.get(), y.get(), x.get(), p.get(), ctx.get(), nullptr) != 1)
        return error{EIO};
    secret_bytes out(public_.size());
    // Zero-padded to the length of p, as OpenSSL's DH_compute_key_padded.
    if (BN_bn2binpad(z.get(), out.data(), int(out.size())) != int(out.size())) return error{EIO};
    return out;
}

}  // namespace weft::auth
