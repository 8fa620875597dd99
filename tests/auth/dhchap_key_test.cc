// DH-HMAC-CHAP secrets in the NVMe interchange format.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/dh.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "auth/dhchap.h"
#include "auth/dhchap_key.h"
#include "auth/key_text.h"

using namespace weft;
using namespace weft::auth;

namespace {

// OpenSSL's own view of a group and its own derive, to check weft's against.
std::vector<uint8_t> group_prime(dh_group g) {
    EVP_PKEY_CTX* c = EVP_PKEY_CTX_new_from_name(nullptr, "DH", nullptr);
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                            const_cast<char*>(dh_group_name(g)), 0),
                           OSSL_PARAM_construct_end()};
    EVP_PKEY* k = nullptr;
    EXPECT_EQ(EVP_PKEY_keygen_init(c), 1);
    EXPECT_EQ(EVP_PKEY_CTX_set_params(c, params), 1);
    EXPECT_EQ(EVP_PKEY_generate(c, &k), 1);
    BIGNUM* p = nullptr;
    EXPECT_EQ(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_FFC_P, &p), 1);
    std::vector<uint8_t> out(dh_value_length(g));
    BN_bn2binpad(p, out.data(), int(out.size()));
    BN_free(p);
    EVP_PKEY_free(k);
    EVP_PKEY_CTX_free(c);
    return out;
}

class openssl_dh {
  public:
    explicit openssl_dh(dh_group g) : g_(g) {
        EVP_PKEY_CTX* c = EVP_PKEY_CTX_new_from_name(nullptr, "DH", nullptr);
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                             const_cast<char*>(dh_group_name(g)), 0),
            OSSL_PARAM_construct_end()};
        EXPECT_EQ(EVP_PKEY_keygen_init(c), 1);
        EXPECT_EQ(EVP_PKEY_CTX_set_params(c, params), 1);
        EXPECT_EQ(EVP_PKEY_generate(c, &key_), 1);
        EVP_PKEY_CTX_free(c);
    }
    ~openssl_dh() { EVP_PKEY_free(key_); }
    std::vector<uint8_t> public_value() const {
        BIGNUM* y = nullptr;
        EXPECT_EQ(EVP_PKEY_get_bn_param(key_, OSSL_PKEY_PARAM_PUB_KEY, &y), 1);
        std::vector<uint8_t> out(dh_value_length(g_));
        BN_bn2binpad(y, out.data(), int(out.size()));
        BN_free(y);
        return out;
    }
    // EVP_PKEY_derive against `peer` (padded), with OpenSSL's checks.
    std::vector<uint8_t> derive(std::span<const uint8_t> peer) const {
        OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
        BIGNUM* y = BN_bin2bn(peer.data(), int(peer.size()), nullptr);
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, dh_group_name(g_), 0);
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PUB_KEY, y);
        OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
        EVP_PKEY_CTX* fc = EVP_PKEY_CTX_new_from_name(nullptr, "DH", nullptr);
        EVP_PKEY* pk = nullptr;
        EXPECT_EQ(EVP_PKEY_fromdata_init(fc), 1);
        EXPECT_EQ(EVP_PKEY_fromdata(fc, &pk, EVP_PKEY_PUBLIC_KEY, params), 1);
        EVP_PKEY_CTX* dc = EVP_PKEY_CTX_new_from_pkey(nullptr, key_, nullptr);
        EXPECT_EQ(EVP_PKEY_derive_init(dc), 1);
        EXPECT_EQ(EVP_PKEY_CTX_set_dh_pad(dc, 1), 1);
        EXPECT_EQ(EVP_PKEY_derive_set_peer(dc, pk), 1);
        std::vector<uint8_t> out(dh_value_length(g_));
        size_t n = out.size();
        EXPECT_EQ(EVP_PKEY_derive(dc, out.data(), &n), 1);
        EXPECT_EQ(n, out.size());
        EVP_PKEY_CTX_free(dc);
        EVP_PKEY_free(pk);
        EVP_PKEY_CTX_free(fc);
        OSSL_PARAM_free(params);
        BN_free(y);
        OSSL_PARAM_BLD_free(bld);
        return out;
    }

  private:
    dh_group g_;
    EVP_PKEY* key_ = nullptr;
};

}  // namespace

TEST(DhchapKey, Crc32IsZlibs) {
    EXPECT_EQ(crc32_ieee(bytes_of("123456789")), 0xCBF43926u);
}

TEST(DhchapKey, FormatThenParseEveryLengthAndTransform) {
    for (hash_id t : {hash_id::none, hash_id::sha256, hash_id::sha384, hash_id::sha512}) {
        for (size_t len : {32, 48, 64}) {
            auto k = generate_dhchap_key(t, len);
            ASSERT_TRUE(k);
            secret_string text = format_dhchap_key(*k);
            EXPECT_TRUE(text.view().starts_with(fmt::format("DHHC-1:0{}:", int(t))));
            EXPECT_TRUE(text.view().ends_with(":"));
            std::string why;
            auto back = parse_dhchap_key(text.view(), &why);
            ASSERT_TRUE(back) << why;
            EXPECT_EQ(back->transform, t);
            EXPECT_EQ(back->key, k->key);
            // A key file's trailing newline is not part of the key.
            auto nl = parse_dhchap_key(std::string(text.view()) + "\n", &why);
            ASSERT_TRUE(nl) << why;
            EXPECT_EQ(nl->key, k->key);
        }
    }
}

TEST(DhchapKey, DefaultLengthFollowsTheTransform) {
    EXPECT_EQ(generate_dhchap_key(hash_id::none)->key.size(), 32u);
    EXPECT_EQ(generate_dhchap_key(hash_id::sha384)->key.size(), 48u);
    EXPECT_EQ(generate_dhchap_key(hash_id::sha512)->key.size(), 64u);
    EXPECT_FALSE(generate_dhchap_key(hash_id::sha256, 40));
}

TEST(DhchapKey, DamagedOrMalformedKeysAreRefusedWithASentence) {
    auto k = generate_dhchap_key(hash_id::sha256);
    std::string good(format_dhchap_key(*k).view());
    std::string flipped = good;
    flipped[12] = flipped[12] == 'A' ? 'B' : 'A';  // inside the base64
    const std::string bad[] = {
        "",
        "DHHC-2:01:" + good.substr(10),
        "DHHC-1:04:" + good.substr(10),
        "DHHC-1:1:" + good.substr(10),
        good.substr(0, good.size() - 1),            // no final ':'
        good.substr(0, good.size() - 5) + ":",      // short
        "DHHC-1:01:" + std::string(48, '*') + ":",  // not base64
        flipped,
    };
    for (const auto& b : bad) {
        std::string why;
        auto r = parse_dhchap_key(b, &why);
        EXPECT_FALSE(r) << b;
        EXPECT_FALSE(why.empty()) << b;
        // The sentence never repeats the key.
        EXPECT_EQ(why.find(good.substr(10, 20)), std::string::npos) << why;
    }
}

TEST(DhchapKey, TransformIsHmacOfTheNqn) {
    auto k = generate_dhchap_key(hash_id::none);
    // No transform: the key itself.
    EXPECT_EQ(transformed_key(*k, "nqn.x"), k->key);
    k->transform = hash_id::sha384;
    auto t1 = transformed_key(*k, "nqn.a");
    auto t2 = transformed_key(*k, "nqn.b");
    EXPECT_EQ(t1.size(), 48u);
    EXPECT_NE(t1, t2);
    std::string fabrics = "NVMe-over-Fabrics";
    EXPECT_EQ(t1, hmac(hash_id::sha384, {k->key.data(), k->key.size()},
                       {bytes_of("nqn.a"), bytes_of(fabrics)}));
}

TEST(DhchapKey, HmacMatchesRfc4231) {
    // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    auto mac = hmac(hash_id::sha256, bytes_of("Jefe"),
                    {bytes_of("what do ya want "), bytes_of("for nothing?")});
    static const uint8_t want[] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24,
                                   0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27,
                                   0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    EXPECT_TRUE(same_secret({mac.data(), mac.size()}, want));
}

TEST(DhchapKey, DiffieHellmanAgreesAndRefusesBadValues) {
    for (dh_group g : {dh_group::ffdhe2048, dh_group::ffdhe3072}) {
        auto a = dh_key::generate(g);
        auto b = dh_key::generate(g);
        ASSERT_TRUE(a && b);
        EXPECT_EQ(a->public_value().size(), dh_value_length(g));
        auto s1 = a->shared_secret(b->public_value());
        auto s2 = b->shared_secret(a->public_value());
        ASSERT_TRUE(s1 && s2);
        EXPECT_EQ(*s1, *s2);
        EXPECT_EQ(s1->size(), dh_value_length(g));
        std::vector<uint8_t> one(dh_value_length(g), 0);
        one.back() = 1;  // y = 1: outside the group
        EXPECT_FALSE(a->shared_secret(one));
        std::vector<uint8_t> ff(dh_value_length(g), 0xff);  // y > p
        EXPECT_FALSE(a->shared_secret(ff));
        EXPECT_FALSE(a->shared_secret({b->public_value().data(), 10}));  // wrong length
        // 0 and p - 1 (the element of order 2) are refused; 2, the
        // generator, is not.
        auto p = group_prime(g);
        EXPECT_FALSE(a->shared_secret(std::vector<uint8_t>(dh_value_length(g), 0)));
        auto p_minus_1 = p;
        p_minus_1.back() -= 1;  // p is odd
        EXPECT_FALSE(a->shared_secret(p_minus_1));
        EXPECT_FALSE(a->shared_secret(p));
        auto two = one;
        two.back() = 2;
        EXPECT_TRUE(a->shared_secret(two));
    }
    EXPECT_FALSE(dh_key::generate(dh_group::null));
}

// The shared secret weft computes (a constant-time modular exponentiation
// after the partial public-value check) is what OpenSSL's own derive, with
// its full check, computes from the other side, in every group.
TEST(DhchapKey, SharedSecretMatchesOpenSslDerive) {
    for (dh_group g : {dh_group::ffdhe2048, dh_group::ffdhe3072, dh_group::ffdhe4096,
                       dh_group::ffdhe6144, dh_group::ffdhe8192}) {
        SCOPED_TRACE(dh_group_name(g));
        auto ours = dh_key::generate(g);
        ASSERT_TRUE(ours);
        openssl_dh theirs(g);
        auto s1 = ours->shared_secret(theirs.public_value());
        ASSERT_TRUE(s1);
        EXPECT_EQ(std::vector<uint8_t>(s1->begin(), s1->end()),
                  theirs.derive(ours->public_value()));
    }
}
