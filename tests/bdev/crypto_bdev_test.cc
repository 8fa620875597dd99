// The encrypting layer: 4 KiB blocks over 512-byte ones; what lands below is
// ciphertext (no plaintext block, the same data differs per LBA, the tweak
// is the 4 KiB block's LBA as dm-crypt's plain64 with sector_size 4096 takes
// it), another key reads something else, untouched blocks stay zero below
// and read as zeroes above, and bad keys are refused. The conformance
// suite covers the rest (round trips, zeroes, bounds, resize, concurrency).
#include "bdev/crypto/crypto_bdev.h"

#include <openssl/evp.h>

#include <array>
#include <cstring>

#include "bdev_test_util.h"

namespace weft::bdev::test {
namespace {

using key_t = std::array<uint8_t, crypto_key_bytes>;

key_t make_key(uint8_t seed) {
    key_t k;
    for (size_t i = 0; i < k.size(); ++i) k[i] = uint8_t(seed + i * 13);
    return k;
}

// The block at `lba` encrypted by a one-shot OpenSSL call, tweak = LBA
// little-endian (dm-crypt plain64), to compare with what the layer wrote.
std::vector<uint8_t> reference(const key_t& key, uint64_t lba, std::span<const std::byte> plain) {
    uint8_t iv[16] = {};
    for (int i = 0; i < 8; ++i) iv[i] = uint8_t(lba >> (8 * i));
    std::vector<uint8_t> out(plain.size());
    EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
    int n = 0;
    EXPECT_EQ(EVP_EncryptInit_ex(c, EVP_aes_256_xts(), nullptr, key.data(), iv), 1);
    EXPECT_EQ(EVP_EncryptUpdate(c, out.data(), &n, reinterpret_cast<const uint8_t*>(plain.data()),
                                int(plain.size())),
              1);
    EVP_CIPHER_CTX_free(c);
    return out;
}

TEST(crypto_bdev, only_ciphertext_lands_below) {
    run_reactors(1, []() -> task<void> {
        constexpr uint32_t bs = 4096;
        std::shared_ptr<bdev> raw(make_malloc_bdev("m", 256 * 8 + 3, 512).release());
        key_t key = make_key(1);
        std::string why;
        auto dev = make_crypto_bdev(raw, key, &why);
        CO_ASSERT_TRUE(dev);
        EXPECT_EQ(dev->block_size(), bs);
        EXPECT_EQ(dev->num_blocks(), 256u);  // the 3 odd inner blocks are not used
        auto ch = dev->open_channel();
        auto rch = raw->open_channel();

        // The same plaintext block at LBAs 10 and 11, a pattern at 20..27.
        buffer same = get_buffer(2 * bs);
        std::memset(same.data(), 0x5a, 2 * bs);
        auto v = one(same.span());
        CO_ASSERT_EQ(co_await ch->write(10, 2, v, false), 0);
        buffer pat = get_buffer(8 * bs);
        fill(pat.span(), 20, bs, 7);
        auto pv = one(pat.span());
        CO_ASSERT_EQ(co_await ch->write(20, 8, pv, false), 0);
        // Read back through the layer: the plaintext.
        buffer back = get_buffer(8 * bs);
        auto bv = one(back.span());
        CO_ASSERT_EQ(co_await ch->read(20, 8, bv), 0);
        EXPECT_EQ(mismatch(back.span(), 20, bs, 7), -1);

        // Below: no plaintext block, the two equal blocks differ, and each
        // block is what OpenSSL makes of it with the LBA as the tweak.
        buffer r = get_buffer(256 * bs);
        auto rv = one(r.span());
        CO_ASSERT_EQ(co_await rch->read(0, 256 * 8, rv), 0);
        auto block = [&](uint64_t lba) { return r.span().subspan(lba * bs, bs); };
        EXPECT_NE(std::memcmp(block(10).data(), same.data(), bs), 0);
        EXPECT_NE(std::memcmp(block(10).data(), block(11).data(), bs), 0);
        for (uint64_t lba = 20; lba < 28; ++lba) {
            auto plain = pat.span().subspan((lba - 20) * bs, bs);
            EXPECT_NE(std::memcmp(block(lba).data(), plain.data(), bs), 0) << lba;
            auto want = reference(key, lba, plain);
            EXPECT_EQ(std::memcmp(block(lba).data(), want.data(), bs), 0) << lba;
        }
        // Untouched blocks stay zero below and read as zeroes above.
        EXPECT_TRUE(all_zero(block(0)));
        EXPECT_TRUE(all_zero(block(200)));
        buffer z = get_buffer(bs);
        auto zv = one(z.span());
        CO_ASSERT_EQ(co_await ch->read(200, 1, zv), 0);
        EXPECT_TRUE(all_zero(z.span()));

        // Another key reads neither the plaintext nor the ciphertext.
        auto other = make_crypto_bdev(raw, make_key(2), &why);
        CO_ASSERT_TRUE(other);
        auto och = other->open_channel();
        CO_ASSERT_EQ(co_await och->read(20, 8, bv), 0);
        EXPECT_NE(mismatch(back.span(), 20, bs, 7), -1);
        EXPECT_NE(std::memcmp(back.data(), block(20).data(), bs), 0);

        // A block split over iovecs is encrypted as one data unit.
        buffer s = get_buffer(bs);
        fill(s.span(), 30, bs, 9);
        auto sv = split(s.span(), {100, bs - 100});
        CO_ASSERT_EQ(co_await ch->write(30, 1, sv, false), 0);
        buffer s2 = get_buffer(bs);
        auto s2v = split(s2.span(), {300, bs - 300});
        CO_ASSERT_EQ(co_await ch->read(30, 1, s2v), 0);
        EXPECT_EQ(mismatch(s2.span(), 30, bs, 9), -1);
        och.reset();
        ch.reset();
        rch.reset();
    });
}

TEST(crypto_bdev, refuses_bad_keys_and_short_iovecs) {
    std::shared_ptr<bdev> raw(make_malloc_bdev("m", 16 * 8, 512).release());
    key_t k{};
    std::string why;
    EXPECT_FALSE(make_crypto_bdev(raw, k, &why));  // halves equal (both zero)
    EXPECT_NE(why.find("halves"), std::string::npos) << why;
    std::shared_ptr<bdev> tiny(make_malloc_bdev("t", 7, 512).release());
    EXPECT_FALSE(make_crypto_bdev(tiny, make_key(4), &why));  // less than one 4 KiB block
    k = make_key(3);
    auto dev = make_crypto_bdev(raw, k, &why);
    ASSERT_TRUE(dev) << why;
    run_reactors(1, [&]() -> task<void> {
        auto ch = dev->open_channel();
        buffer b = get_buffer(4096);
        iovec v{b.data(), 512};
        EXPECT_EQ(co_await ch->write(0, 1, {&v, 1}, false), -EINVAL);
        iovec w{b.data(), 4096};
        EXPECT_EQ(co_await ch->write(16, 1, {&w, 1}, false), -ERANGE);
        EXPECT_EQ(co_await ch->read(16, 1, {&w, 1}), -ERANGE);
        EXPECT_EQ(co_await ch->unmap(15, 2), -ERANGE);
        ch.reset();
    });
}

}  // namespace
}  // namespace weft::bdev::test
