// The encrypting layer: 4 KiB blocks over 512-byte ones; what lands below is
// ciphertext (no plaintext block, the same data differs per LBA, the tweak
// is the 4 KiB block's LBA as dm-crypt's plain64 with sector_size 4096 takes
// it), another key reads something else, untouched blocks stay zero below
// and read as zeroes above, and bad keys are refused. The conformance
// suite covers the rest (round trips, zeroes, bounds, resize, concurrency).
#include "bdev/crypto/crypto_bdev.h"

#include <openssl/evp.h>

#include <array>
#include <atomic>
#include <cstring>

#include "bdev_test_util.h"
#include "runtime/when_all.h"

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

// ---- data-key rotation -------------------------------------------------------

namespace rotation {

constexpr uint32_t bs = 4096;

// Re-encrypts from the boundary to the end, `chunk` blocks at a time.
task<int> rekey_all(crypto_device& dev, uint32_t chunk) {
    for (;;) {
        auto rec = co_await dev.rekey_prepare(chunk);
        if (!rec) co_return -rec.err().code;
        if (rec->blocks == 0) co_return co_await dev.finish_rekey();
        EXPECT_EQ(rec->lba, dev.rekeyed_blocks());
        int rc = co_await dev.rekey_commit();
        if (rc) co_return rc;
    }
}

// Every block of `raw` is what `key` makes of the plaintext seed[lba] says
// (0: never written, so zero below).
task<void> expect_below(bdev& raw, const key_t& key, const std::vector<uint8_t>& seed) {
    auto rch = raw.open_channel();
    buffer r = get_buffer(seed.size() * bs);
    auto rv = one(r.span());
    EXPECT_EQ(co_await rch->read(0, uint32_t(seed.size() * bs / raw.block_size()), rv), 0);
    buffer plain = get_buffer(bs);
    for (uint64_t lba = 0; lba < seed.size(); ++lba) {
        auto below = r.span().subspan(lba * bs, bs);
        if (!seed[lba]) {
            EXPECT_TRUE(all_zero(below)) << lba;
            continue;
        }
        fill(plain.span(), lba, bs, seed[lba]);
        auto want = reference(key, lba, plain.span());
        EXPECT_EQ(std::memcmp(below.data(), want.data(), bs), 0) << "block " << lba;
    }
}

// Reads every block through `ch` and checks it against seed[lba].
task<void> expect_plain(channel& ch, const std::vector<uint8_t>& seed) {
    buffer b = get_buffer(bs);
    auto v = one(b.span());
    for (uint64_t lba = 0; lba < seed.size(); ++lba) {
        EXPECT_EQ(co_await ch.read(lba, 1, v), 0);
        if (!seed[lba])
            EXPECT_TRUE(all_zero(b.span())) << lba;
        else
            EXPECT_EQ(mismatch(b.span(), lba, bs, seed[lba]), -1) << "block " << lba;
    }
}

// A pass-through that yields to the reactor before and after each read and
// write (malloc completes inline): other I/O on the same reactor runs in
// between, as it would over a real device, so that a missing fence shows.
class yielding_bdev final : public bdev {
  public:
    explicit yielding_bdev(std::shared_ptr<bdev> inner)
        : bdev(properties{
              .name = "y", .block_size = inner->block_size(), .num_blocks = inner->num_blocks()}),
          inner_(std::move(inner)) {}
    std::unique_ptr<channel> open_channel() override {
        return std::make_unique<yielding_channel>(inner_->open_channel());
    }
    result<void> resize(uint64_t) override { return error{ENOTSUP}; }

  private:
    struct yielding_channel final : channel {
        explicit yielding_channel(std::unique_ptr<channel> c) : in(std::move(c)) {}
        task<int> read(uint64_t lba, uint32_t n, std::span<const iovec> iov) override {
            co_await yield{};
            int rc = co_await in->read(lba, n, iov);
            co_await yield{};
            co_return rc;
        }
        task<int> write(uint64_t lba, uint32_t n, std::span<const iovec> iov, bool fua) override {
            co_await yield{};
            int rc = co_await in->write(lba, n, iov, fua);
            co_await yield{};
            co_return rc;
        }
        task<int> flush() override { return in->flush(); }
        task<int> write_zeroes(uint64_t lba, uint64_t n) override {
            return in->write_zeroes(lba, n);
        }
        task<int> unmap(uint64_t lba, uint64_t n) override { return in->unmap(lba, n); }
        std::unique_ptr<channel> in;
    };
    std::shared_ptr<bdev> inner_;
};

// A restart mid-rotation: a new layer over `raw` under k1, in the rotation
// to k2 at `r`'s chunk, which it finishes as the record's digests say.
task<std::shared_ptr<crypto_device>> reopen(std::shared_ptr<bdev> raw, const key_t& k1,
                                            const key_t& k2, const rekey_record& r) {
    std::string why;
    auto dev = make_crypto_bdev(std::move(raw), k1, &why);
    EXPECT_TRUE(dev) << why;
    if (!dev) co_return nullptr;
    auto begun = co_await dev->begin_rekey(k2, r.lba, &why);
    EXPECT_TRUE(begun) << why;
    int rc = co_await dev->recover(r);
    EXPECT_EQ(rc, 0);
    if (!begun || rc) co_return nullptr;
    EXPECT_EQ(dev->rekeyed_blocks(), r.lba + r.blocks);
    co_return dev;
}

// Runs `f` (a coroutine) on reactor r; `f` lives in this frame meanwhile.
template <typename F>
task<int> elsewhere(unsigned r, F f) {
    co_return co_await on(r, std::move(f));
}

task<int> write_block(channel& ch, uint64_t lba, uint8_t seed) {
    buffer b = get_buffer(bs);
    fill(b.span(), lba, bs, seed);
    auto v = one(b.span());
    co_return co_await ch.write(lba, 1, v, false);
}

}  // namespace rotation

// A rotation while another reactor writes and reads all over the volume:
// every read sees the last write, and at the end every block below is the
// new key's ciphertext of its last plaintext (or zero, never written).
TEST(crypto_bdev, rotation_under_io_from_another_reactor) {
    using namespace rotation;
    constexpr uint64_t blocks = 384;
    std::shared_ptr<bdev> raw(make_malloc_bdev("m", blocks * 8, 512).release());
    auto slow = std::make_shared<yielding_bdev>(raw);
    const key_t k1 = make_key(1), k2 = make_key(2);
    std::string why;
    run_reactors(2, [&]() -> task<void> {
        auto dev = make_crypto_bdev(slow, k1, &why);
        CO_ASSERT_TRUE(dev);
        std::vector<uint8_t> seed(blocks, 0);
        auto ch = dev->open_channel();
        for (uint64_t lba = 0; lba < blocks; ++lba) {
            if (lba >= 100 && lba < 110) continue;  // never written
            seed[lba] = 1;
            CO_ASSERT_EQ(co_await write_block(*ch, lba, 1), 0);
        }
        auto begun = co_await dev->begin_rekey(k2, 0, &why);
        EXPECT_TRUE(begun) << why;
        CO_ASSERT_TRUE(begun);
        EXPECT_TRUE(dev->rekeying());
        std::atomic<bool> stop{false};
        std::atomic<int> io_errors{0}, mismatches{0}, ios{0};
        // A host per reactor, each on its own half of the blocks (odd or
        // even): overwrite a block, read it back, and read another.
        auto host = [&](uint64_t half) -> task<int> {
            auto hch = dev->open_channel();
            buffer b = get_buffer(bs);
            auto v = one(b.span());
            uint64_t x = 12345 + half;
            while (!stop) {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                uint64_t lba = ((x >> 33) % (blocks / 2)) * 2 + half;
                uint8_t s = uint8_t(2 + (x >> 20) % 200);
                // Now and then the block is deallocated instead (reads zero).
                const bool unmap = (x >> 40) % 16 == 0;
                int rc = unmap ? co_await hch->unmap(lba, 1) : co_await write_block(*hch, lba, s);
                if (rc != 0) ++io_errors;
                seed[lba] = unmap ? 0 : s;
                rc = co_await hch->read(lba, 1, v);
                if (rc != 0) ++io_errors;
                if (unmap ? !all_zero(b.span()) : mismatch(b.span(), lba, bs, s) != -1)
                    ++mismatches;
                uint64_t other = (lba * 7 + 3) % blocks;
                rc = co_await hch->read(other, 1, v);
                if (rc != 0) ++io_errors;
                ios += 3;
            }
            hch.reset();
            co_return 0;
        };
        auto rotator = [&]() -> task<int> {
            int rc = co_await rekey_all(*dev, 8);
            stop = true;
            co_return rc;
        };
        std::vector<task<int>> all;
        all.push_back(elsewhere(1, [&] { return host(1); }));
        all.push_back(rotator());
        all.push_back(host(0));
        auto rcs = co_await when_all(std::move(all));
        EXPECT_EQ(rcs[1], 0);
        EXPECT_EQ(io_errors.load(), 0);
        EXPECT_EQ(mismatches.load(), 0);
        EXPECT_GT(ios.load(), 0);
        EXPECT_FALSE(dev->rekeying());
        co_await expect_plain(*ch, seed);
        co_await expect_below(*raw, k2, seed);
        ch.reset();
    });
}

// A crash mid-rotation: a chunk whose record was saved and that was half
// written, and a chunk done and then written by a host. recover() finishes
// the first as its digests say and leaves the host's block alone; what is
// read afterwards is the last plaintext everywhere.
TEST(crypto_bdev, rotation_recovers_a_chunk_cut_short) {
    using namespace rotation;
    constexpr uint64_t blocks = 64;
    std::shared_ptr<bdev> raw(make_malloc_bdev("m", blocks * 8, 512).release());
    const key_t k1 = make_key(1), k2 = make_key(2);
    std::string why;
    run_reactors(1, [&]() -> task<void> {
        std::vector<uint8_t> seed(blocks, 0);
        rekey_record first, cut;
        {
            auto dev = make_crypto_bdev(raw, k1, &why);
            CO_ASSERT_TRUE(dev);
            auto ch = dev->open_channel();
            for (uint64_t lba = 0; lba < blocks; ++lba) {
                if (lba >= 40 && lba < 44) continue;
                seed[lba] = 1;
                CO_ASSERT_EQ(co_await write_block(*ch, lba, 1), 0);
            }
            CO_ASSERT_TRUE(co_await dev->begin_rekey(k2, 0, &why));
            auto rec = co_await dev->rekey_prepare(16);
            CO_ASSERT_TRUE(rec);
            first = *rec;
            EXPECT_EQ(first.lba, 0u);
            EXPECT_EQ(first.blocks, 16u);
            CO_ASSERT_EQ(co_await dev->rekey_commit(), 0);
            // A host writes block 5, under the new key, after the chunk.
            CO_ASSERT_EQ(co_await write_block(*ch, 5, 9), 0);
            seed[5] = 9;
            ch.reset();
        }
        // "Crash" with only `first` saved: recovery takes block 5 (not its
        // old ciphertext) as the host's, and the others as done.
        {
            auto dev = co_await reopen(raw, k1, k2, first);
            CO_ASSERT_TRUE(dev);
            auto ch = dev->open_channel();
            co_await expect_plain(*ch, seed);
            // The next chunks: one done, one saved and cut after 3 blocks.
            auto rec = co_await dev->rekey_prepare(16);
            CO_ASSERT_TRUE(rec);
            CO_ASSERT_EQ(co_await dev->rekey_commit(), 0);
            rec = co_await dev->rekey_prepare(16);
            CO_ASSERT_TRUE(rec);
            cut = *rec;
            EXPECT_EQ(cut.lba, 32u);
            // Its record "not saved": the chunk stays off limits.
            dev->rekey_abandon();
            buffer off = get_buffer(bs);
            auto ov = one(off.span());
            EXPECT_EQ(co_await ch->read(33, 1, ov), -EIO);
            EXPECT_EQ(co_await ch->read(31, 1, ov), 0);  // outside it: served
            auto rch = raw->open_channel();
            buffer plain = get_buffer(bs);
            for (uint64_t lba = 32; lba < 35; ++lba) {
                fill(plain.span(), lba, bs, seed[lba]);
                auto ct = reference(k2, lba, plain.span());
                iovec v{ct.data(), bs};
                CO_ASSERT_EQ(co_await rch->write(lba * 8, 8, {&v, 1}, false), 0);
            }
            // A record that does not fit, or of another rotation, is refused.
            rekey_record bad = cut;
            bad.lba = 31;
            EXPECT_EQ(co_await dev->recover(bad), -EINVAL);
            bad = cut;
            bad.key_tag[0] ^= 1;
            EXPECT_EQ(co_await dev->recover(bad), -EINVAL);
            ch.reset();
        }
        // Recovered from `cut`: blocks 32..34 (new already) and 35..47
        // (old) all read right; the rotation then ends.
        auto dev = co_await reopen(raw, k1, k2, cut);
        CO_ASSERT_TRUE(dev);
        auto ch = dev->open_channel();
        co_await expect_plain(*ch, seed);
        CO_ASSERT_EQ(co_await rekey_all(*dev, 16), 0);
        co_await expect_plain(*ch, seed);
        co_await expect_below(*raw, k2, seed);
        // The old key reads nothing of it any more.
        auto old = make_crypto_bdev(raw, k1, &why);
        auto och = old->open_channel();
        buffer b = get_buffer(bs);
        auto v = one(b.span());
        CO_ASSERT_EQ(co_await och->read(0, 1, v), 0);
        EXPECT_NE(mismatch(b.span(), 0, bs, 1), -1);
        och.reset();
        ch.reset();
    });
}

// The record's encoding: a round trip, and damage refused.
TEST(crypto_bdev, rekey_record_encoding) {
    rekey_record r{
        .lba = 1000, .blocks = 2, .block_size = 4096, .key_tag = {1, 2, 3}, .digests = {}};
    r.digests.resize(2);
    r.digests[0][0] = 1;
    r.digests[1][15] = 2;
    std::string e = encode(r);
    auto bytes = [&](const std::string& s) {
        return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    };
    std::string why;
    auto back = parse_rekey_record(bytes(e), &why);
    ASSERT_TRUE(back) << why;
    EXPECT_EQ(back->lba, 1000u);
    EXPECT_EQ(back->blocks, 2u);
    EXPECT_EQ(back->digests, r.digests);
    EXPECT_EQ(back->key_tag, r.key_tag);
    for (size_t i = 0; i < e.size(); i += 7) {
        std::string d = e;
        d[i] ^= 0x40;
        EXPECT_FALSE(parse_rekey_record(bytes(d), &why)) << i;
    }
    EXPECT_FALSE(parse_rekey_record(bytes(e.substr(0, e.size() - 1)), &why));
    EXPECT_NE(why.find("length"), std::string::npos) << why;
}

}  // namespace
}  // namespace weft::bdev::test
