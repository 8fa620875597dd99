// NVMe/TCP TLS PSKs: the interchange format, the derivations and the
// identities, against the vectors of libnvme's test/psk.c and Linux's
// drivers/nvme/common/tests/auth_kunit.c.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "auth/dhchap.h"
#include "auth/key_text.h"
#include "auth/tls_psk.h"

using namespace weft;
using namespace weft::auth;

namespace {

secret_bytes unhex(std::string_view h) {
    secret_bytes out;
    for (size_t i = 0; i + 1 < h.size(); i += 2)
        out.push_back(uint8_t(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
    return out;
}

std::string hex(std::span<const uint8_t> b) {
    static const char* d = "0123456789abcdef";
    std::string s;
    for (uint8_t c : b) s += {d[c >> 4], d[c & 15]};
    return s;
}

constexpr const char* key32 = "5512DBB6737D0106F65975B773DFB011FFC344BCF442E2DD6D8BC4870B5D5B03";
constexpr const char* host = "nqn.psk-test-host";
constexpr const char* subsys = "nqn.psk-test-subsys";

tls_key key(hash_id t, std::string_view hexkey) {
    tls_key k;
    k.transform = t;
    k.key = unhex(hexkey);
    return k;
}

}  // namespace

TEST(TlsPsk, InterchangeFormatMatchesLibnvme) {
    const std::string k48 = std::string(key32) + "FFC344BCF442E2DD6D8BC4870B5D5B03";
    EXPECT_EQ(format_tls_key(key(hash_id::sha256, key32)).view(),
              "NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:");
    EXPECT_EQ(format_tls_key(key(hash_id::sha384, k48)).view(),
              "NVMeTLSkey-1:02:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwP/w0S89ELi3W2LxIcLXVsDn8kX"
              "ZQ==:");
    EXPECT_EQ(format_tls_key(key(hash_id::sha256, std::string(64, '0'))).view(),
              "NVMeTLSkey-1:01:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACtVQoZ:");

    std::string why;
    auto p = parse_tls_key(
        "NVMeTLSkey-1:02:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwP/w0S89ELi3W2"
        "LxIcLXVsDn8kXZQ==:\n",
        &why);
    ASSERT_TRUE(p) << why;
    EXPECT_EQ(p->transform, hash_id::sha384);
    EXPECT_EQ(hex(p->key), hex(unhex(k48)));
    // 00: no transform, either length.
    p = parse_tls_key("NVMeTLSkey-1:00:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:", &why);
    ASSERT_TRUE(p) << why;
    EXPECT_EQ(p->transform, hash_id::none);
    EXPECT_EQ(tls_cipher_hash(*p), hash_id::sha256);

    for (hash_id h : {hash_id::sha256, hash_id::sha384}) {
        auto g = generate_tls_key(h);
        ASSERT_TRUE(g);
        auto back = parse_tls_key(format_tls_key(*g).view(), &why);
        ASSERT_TRUE(back) << why;
        EXPECT_EQ(back->transform, h);
        EXPECT_EQ(hex(back->key), hex(g->key));
    }
    EXPECT_FALSE(generate_tls_key(hash_id::sha512));
}

TEST(TlsPsk, BadKeysAreRefusedWithASentence) {
    const std::string good = "NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:";
    struct bad {
        std::string text;
        const char* says;
    } cases[] = {
        {"DHHC-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:", "NVMeTLSkey-1:"},
        {"NVMeTLSkey-2:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:", "NVMeTLSkey-1:"},
        {"NVMeTLSkey-1:03:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:", "00, 01 or 02"},
        {"NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ", "ends with"},
        // A SHA-384 key must be 48 bytes.
        {"NVMeTLSkey-1:02:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:", "48 bytes"},
        // One character changed: the CRC catches it.
        {"NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrA:", "CRC-32"},
        {"NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9Lr!:", "base64"},
        {"NVMeTLSkey-1:01:::", "32 bytes"},
    };
    std::string why;
    ASSERT_TRUE(parse_tls_key(good, &why)) << why;
    for (const auto& c : cases) {
        why.clear();
        EXPECT_FALSE(parse_tls_key(c.text, &why)) << c.text;
        EXPECT_NE(why.find(c.says), std::string::npos) << c.text << ": " << why;
        // The sentence never quotes the key.
        EXPECT_EQ(why.find("VRLbtnN9"), std::string::npos) << why;
    }
}

TEST(TlsPsk, IdentitiesMatchLibnvme) {
    const std::string k48 = std::string(key32) + "FFC344BCF442E2DD6D8BC4870B5D5B03";
    struct vec {
        hash_id h;
        std::string k;
        derivation d;
        const char* identity;
    } vecs[] = {
        {hash_id::sha256, key32, derivation::rfc8446,
         "NVMe1R01 nqn.psk-test-host nqn.psk-test-subsys "
         "iSbjiStwJ/1TrTvDlt2fjFmzvsytOJelidNnA+X5lEU="},
        {hash_id::sha384, k48, derivation::rfc8446,
         "NVMe1R02 nqn.psk-test-host nqn.psk-test-subsys "
         "QhW2+Rp6RzHlNtCslyRxMnwJ11tKKhz8JCAQpQ+XUD8f9td1VeH5h53yz2wKJG1a"},
        {hash_id::sha256, key32, derivation::compat,
         "NVMe1R01 nqn.psk-test-host nqn.psk-test-subsys "
         "66GuqV08TsAGII39teWUfwQwizjv06Jy8jOcX3NAAzM="},
        {hash_id::sha384, k48, derivation::compat,
         "NVMe1R02 nqn.psk-test-host nqn.psk-test-subsys "
         "RsKmYJ3nAn1ApjjMloJFbAkLPivONDAX/xW327YBUsn2eGShXSjCZvBaOxscLqmz"},
    };
    for (const auto& v : vecs) {
        auto d = derive_tls_psk(key(v.h, v.k), host, subsys, 1, v.d);
        ASSERT_TRUE(d);
        EXPECT_EQ(d->identity, v.identity);
        EXPECT_EQ(d->hash, v.h);
        EXPECT_EQ(d->psk.size(), hash_length(v.h));
        auto parsed = parse_identity(d->identity);
        ASSERT_TRUE(parsed) << d->identity;
        EXPECT_EQ(parsed->version, 1u);
        EXPECT_EQ(parsed->type, 'R');
        EXPECT_EQ(parsed->hash, v.h);
        EXPECT_EQ(parsed->hostnqn, host);
        EXPECT_EQ(parsed->subnqn, subsys);
        EXPECT_EQ(format_identity(*parsed), d->identity);
    }
}

TEST(TlsPsk, DerivedKeys) {
    // The retained and TLS PSKs under the identities above (a model that
    // reproduces libnvme's identities byte for byte), v0 included.
    auto k = key(hash_id::sha256, key32);
    EXPECT_EQ(hex(retained_psk(k, host, derivation::rfc8446)),
              "073311dec37e219ff3acd43f130130c5bdd443c066e1cc3424e49030234ff7d5");
    EXPECT_EQ(hex(retained_psk(k, host, derivation::compat)),
              "ad4cdadfcbaf4e353fcbd09aac891c4d75c5300fe5ee7bb04ae87726a312eddc");
    auto v1 = derive_tls_psk(k, host, subsys, 1);
    ASSERT_TRUE(v1);
    EXPECT_EQ(hex(v1->psk), "8fc3c0badfd4c0c66fa3ca33aadd0314f85536cc9bc47338b60f3e6e563786ca");
    auto v0 = derive_tls_psk(k, host, subsys, 0);
    ASSERT_TRUE(v0);
    EXPECT_EQ(v0->identity, "NVMe0R01 nqn.psk-test-host nqn.psk-test-subsys");
    EXPECT_EQ(hex(v0->psk), "05c6503551ad136e6ee32e6eeb3f6d500b69701d84ec71e328f65c7f51566f68");
    auto c0 = derive_tls_psk(k, host, subsys, 0, derivation::compat);
    ASSERT_TRUE(c0);
    EXPECT_EQ(hex(c0->psk), "09fb1983ac6d6d0353e7cae4f23daddd651c367fa347c59d9cf6936f5a83eafb");
    auto k48 = key(hash_id::sha384, std::string(key32) + "FFC344BCF442E2DD6D8BC4870B5D5B03");
    auto v1b = derive_tls_psk(k48, host, subsys, 1);
    ASSERT_TRUE(v1b);
    EXPECT_EQ(hex(v1b->psk),
              "a2b2f943f479fc682555cec89857c80ed004ce92f32a973d5764155bb7e36b17a85368a0666d250afac9"
              "282dda2e62ca");
    // 00: the configured key is the retained one.
    auto none = key(hash_id::none, key32);
    EXPECT_EQ(hex(retained_psk(none, host, derivation::rfc8446)), hex(none.key));
    EXPECT_FALSE(derive_tls_psk(k, host, subsys, 2));
    // A v0 identity's context is one length byte: over 255 bytes, no key.
    EXPECT_FALSE(derive_tls_psk(k, std::string(200, 'h'), std::string(60, 's'), 0));
    EXPECT_TRUE(derive_tls_psk(k, std::string(200, 'h'), std::string(60, 's'), 1));
}

TEST(TlsPsk, DigestAndTlsPskMatchLinux) {
    // auth_kunit.c's concatenation vectors: a generated PSK, its digest
    // and the TLS PSK derived from it (the same two steps as for v1).
    struct vec {
        hash_id h;
        const char* psk;
        const char* digest;
        const char* tls;
    } vecs[] = {
        {hash_id::sha256, "1733c59fa7f48fcf37f5f26fc4ff0268ad4f78e030f4f3b0bfd1d47e7bb1447a",
         "OldoKuTfKddMuyCznAZojkWD7P4D9/AtzDzLimtOxqI=",
         "3c17da628474a04d2247c4cab47968c915388193f7c071bd9489cc3666cd7cc8"},
        {hash_id::sha384,
         "f14b2dd3234c459694d3bc63f8968bd6b37c2c6de849e22e118749001ce4bbe8640b9e3a748cb11ce4b1d71d"
         "359cce39",
         "cffMWk8TSS7HOQebjgYEIkrPrjWPV4JE5cdPB8WhEvY4JBW5YynKyv66XscN4A9n",
         "2774753233537b3fa50eb7d16a8e43457d85f4906c005b2236616c5d80939d0898fff15bb8b77119d2be0aac"
         "423e7590"},
    };
    for (const auto& v : vecs) {
        auto psk = unhex(v.psk);
        // Linux hashes "<hostnqn> <subnqn> NVMe-over-Fabrics" for the digest.
        std::string digest = psk_digest(v.h, psk, "hostnqn", "subsysnqn");
        EXPECT_EQ(digest, v.digest);
        std::string ctx = (v.h == hash_id::sha256 ? "01 " : "02 ") + digest;
        EXPECT_EQ(
            hex(hkdf_expand_label(v.h, psk, "nvme-tls-psk", bytes_of(ctx), derivation::rfc8446)),
            v.tls);
        // The generated PSK itself (KS[i] = 'A' + i, C1[i] = i, C2[i] =
        // 0xff - i), and the identity and TLS PSK made from it in one call.
        const size_t l = hash_length(v.h);
        std::vector<uint8_t> ks(l), c1(l), c2(l);
        for (size_t i = 0; i < l; ++i) {
            ks[i] = uint8_t('A' + i);
            c1[i] = uint8_t(i);
            c2[i] = uint8_t(0xff - i);
        }
        EXPECT_EQ(hex(generated_psk(v.h, ks, c1, c2)), v.psk);
        auto d = derive_generated_tls_psk(v.h, psk, "hostnqn", "subsysnqn");
        ASSERT_TRUE(d);
        EXPECT_EQ(d->identity,
                  fmt::format("NVMe1G{:02d} hostnqn subsysnqn {}", int(v.h), v.digest));
        EXPECT_EQ(hex(d->psk), v.tls);
        EXPECT_EQ(d->hash, v.h);
        ASSERT_TRUE(parse_identity(d->identity));
        EXPECT_EQ(parse_identity(d->identity)->type, 'G');
    }
    // The digest is defined for SHA-256 and SHA-384 only.
    std::vector<uint8_t> psk64(64, 1);
    EXPECT_FALSE(derive_generated_tls_psk(hash_id::sha512, psk64, "hostnqn", "subsysnqn"));
}

TEST(TlsPsk, IdentityParsing) {
    EXPECT_TRUE(parse_identity("NVMe0R01 nqn.a nqn.b"));
    EXPECT_TRUE(parse_identity("NVMe1G02 nqn.a nqn.b " + std::string(64, 'A')));
    const char* bad[] = {
        "",
        "NVMe0R01",
        "NVMe0R01 nqn.a",
        "NVMe0R01 nqn.a nqn.b ",
        "NVMe0R01  nqn.b",
        "NVMe2R01 nqn.a nqn.b",
        "NVMe0X01 nqn.a nqn.b",
        "NVMe0R03 nqn.a nqn.b",
        "NVMe0R00 nqn.a nqn.b",
        "NVMe0R01 nqn.a nqn.b extra",
        "NVMe1R01 nqn.a nqn.b",
        "NVMe1R01 nqn.a nqn.b short=",
        "nvme0R01 nqn.a nqn.b",
    };
    for (const char* b : bad) EXPECT_FALSE(parse_identity(b)) << b;
    EXPECT_FALSE(parse_identity("NVMe0R01 " + std::string(224, 'h') + " nqn.b"));
}

// With concatenation the host's response hashes the negotiated SC_C byte
// after T (00h otherwise); the controller's keeps 00h.
TEST(TlsPsk, ConcatenationResponseHashesScC) {
    auto key = generate_dhchap_key(hash_id::none, 32);
    ASSERT_TRUE(key);
    std::vector<uint8_t> c(32, 7);
    auto r1 = [&](uint8_t sc_c, role r) {
        return hex(
            dhchap_response(hash_id::sha256, *key, r, "nqn.h", "nqn.c", c, {}, 5, 0x0102, sc_c));
    };
    const uint8_t st[7] = {5, 0, 0, 0, 0x02, 0x01, 0x02};
    const uint8_t zero = 0;
    auto bytes = [](std::string_view s) {
        return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    };
    std::string want =
        hex(hmac(hash_id::sha256, key->key,
                 {c, {st, 7}, bytes("HostHost"), bytes("nqn.h"), {&zero, 1}, bytes("nqn.c")}));
    EXPECT_EQ(r1(2, role::host), want);
    EXPECT_NE(r1(0, role::host), want);
    EXPECT_EQ(r1(2, role::controller), r1(0, role::controller));
}
