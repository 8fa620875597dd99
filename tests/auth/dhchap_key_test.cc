// DH-HMAC-CHAP secrets in the NVMe interchange format.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "auth/dhchap.h"
#include "auth/dhchap_key.h"
#include "auth/key_text.h"

using namespace weft;
using namespace weft::auth;

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
    }
    EXPECT_FALSE(dh_key::generate(dh_group::null));
}
