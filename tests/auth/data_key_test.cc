// Keys for encryption at rest: KEK text round trip and refusals, data keys
// wrapped and unwrapped, the KEK id, and what an unwrap refuses (an unknown
// KEK, a forged id, a damaged text).
#include "auth/data_key.h"

#include <gtest/gtest.h>

#include "auth/key_text.h"

namespace weft::auth {
namespace {

TEST(DataKey, KekTextRoundTripAndRefusals) {
    auto text = generate_kek_text();
    ASSERT_FALSE(text.empty());
    EXPECT_TRUE(text.view().starts_with("weft-kek-1:00:"));
    std::string why;
    auto k = parse_kek(text.view(), &why);
    ASSERT_TRUE(k) << why;
    EXPECT_EQ(k->key.size(), kek_bytes);
    EXPECT_EQ(k->id.size(), 16u);
    // The id is a function of the key: the same text gives the same id.
    EXPECT_EQ(parse_kek(std::string(text.view()) + "\n", nullptr)->id, k->id);
    EXPECT_NE(parse_kek(generate_kek_text().view(), nullptr)->id, k->id);
    EXPECT_FALSE(parse_kek("weft-kek-1:01:AAAA:", &why));
    EXPECT_FALSE(parse_kek("NVMeTLSkey-1:01:AAAA:", &why));
    // A changed character fails the CRC.
    std::string bad(text.view());
    bad[20] = bad[20] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(parse_kek(bad, &why));
    // A 48-byte key is not a KEK.
    secret_bytes long_key(48, 7);
    EXPECT_FALSE(parse_kek(format_key_text("weft-kek-1:", 0, long_key).view(), &why));
}

TEST(DataKey, WrapUnwrapAndRefusals) {
    auto k1 = parse_kek(generate_kek_text().view(), nullptr).value();
    auto k2 = parse_kek(generate_kek_text().view(), nullptr).value();
    secret_bytes dek = generate_data_key();
    ASSERT_EQ(dek.size(), data_key_bytes);
    EXPECT_NE(std::memcmp(dek.data(), dek.data() + 32, 32), 0);
    std::string w = wrap_data_key(k1, dek);
    ASSERT_TRUE(w.starts_with("weft-dek-1:" + k1.id + ":")) << w;
    EXPECT_EQ(w.size(), 11u + 17u + 96u + 1u);
    EXPECT_EQ(wrapped_key_id(w, nullptr).value(), k1.id);
    // The wrapped form does not hold the key.
    EXPECT_EQ(w.find(base64(dek)), std::string::npos);
    std::string why;
    kek both[] = {k2, k1};
    auto back = unwrap_data_key(both, w, &why);
    ASSERT_TRUE(back) << why;
    EXPECT_EQ(*back, dek);
    // Only k2 here: ENOKEY, naming the id.
    auto no = unwrap_data_key({&k2, 1}, w, &why);
    ASSERT_FALSE(no);
    EXPECT_EQ(no.err().code, ENOKEY);
    EXPECT_NE(why.find(k1.id), std::string::npos);
    // k2 under k1's id: the integrity check fails.
    kek forged = k2;
    forged.id = k1.id;
    auto f = unwrap_data_key({&forged, 1}, w, &why);
    ASSERT_FALSE(f);
    EXPECT_EQ(f.err().code, EBADMSG);
    // A changed character of the body: refused.
    std::string d = w;
    d[40] = d[40] == 'A' ? 'B' : 'A';
    auto dd = unwrap_data_key(both, d, &why);
    ASSERT_FALSE(dd);
    EXPECT_EQ(dd.err().code, EBADMSG);
    for (std::string_view m :
         {"", "weft-dek-1:", "weft-dek-1:0123:AAAA:", "weft-dek-1:0123456789ABCDEF:AAAA:",
          "weft-dek-2:0123456789abcdef:A:"}) {
        auto r = unwrap_data_key(both, m, &why);
        ASSERT_FALSE(r) << m;
        EXPECT_EQ(r.err().code, EINVAL) << m;
    }
    // Wrapping a key of the wrong size gives nothing.
    secret_bytes shorter(32, 1);
    EXPECT_EQ(wrap_data_key(k1, shorter), "");
}

// Seeds for fuzz/data_key_fuzz.cc: its fixed KEK (bytes 1..32) and a data
// key it wrapped. Run with WEFT_WRITE_CORPUS=DIR to refresh the corpus.
TEST(DataKey, FuzzSeeds) {
    secret_bytes raw(kek_bytes);
    for (size_t i = 0; i < raw.size(); ++i) raw[i] = uint8_t(i + 1);
    auto text = format_key_text("weft-kek-1:", 0, raw);
    auto k = parse_kek(text.view(), nullptr).value();
    secret_bytes dek(data_key_bytes);
    for (size_t i = 0; i < dek.size(); ++i) dek[i] = uint8_t(0x40 + i);
    std::string w = wrap_data_key(k, dek);
    ASSERT_TRUE(unwrap_data_key({&k, 1}, w, nullptr));
    if (const char* dir = std::getenv("WEFT_WRITE_CORPUS")) {
        auto put = [&](const char* name, char mode, std::string_view body) {
            FILE* f = std::fopen((std::string(dir) + "/" + name).c_str(), "wb");
            ASSERT_TRUE(f);
            std::fputc(mode, f);
            std::fwrite(body.data(), 1, body.size(), f);
            std::fclose(f);
        };
        put("kek", 0, text.view());
        put("wrapped", 1, w);
    }
}

}  // namespace
}  // namespace weft::auth
