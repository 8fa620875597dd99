#include "bdev/crypto/crypto_bdev.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "bdev/iov.h"
#include "runtime/buffer_pool.h"

namespace weft::bdev {

namespace {

// Fetched once: an implicit fetch on every init would cost a lookup per block.
EVP_CIPHER* xts_cipher() {
    static EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-XTS", nullptr);
    return c;
}

bool all_zero(const uint8_t* p, size_t n) {
    static constexpr uint8_t zero8[8] = {};
    return std::memcmp(p, zero8, 8) == 0 && std::memcmp(p, p + 8, n - 8) == 0;
}

// Largest run encrypted into one bounce buffer (pool buffers go to 4 MiB).
constexpr size_t max_bounce = 1 << 20;

class crypto_bdev;

class crypto_channel final : public channel {
  public:
    crypto_channel(std::unique_ptr<channel> inner, const bdev& dev, uint32_t ratio,
                   const uint8_t* key)
        : inner_(std::move(inner)), dev_(dev), bs_(dev.block_size()), ratio_(ratio), scratch_(bs_) {
        enc_ = EVP_CIPHER_CTX_new();
        dec_ = EVP_CIPHER_CTX_new();
        ok_ = enc_ && dec_ && EVP_EncryptInit_ex2(enc_, xts_cipher(), key, nullptr, nullptr) == 1 &&
              EVP_DecryptInit_ex2(dec_, xts_cipher(), key, nullptr, nullptr) == 1;
    }
    ~crypto_channel() override {
        EVP_CIPHER_CTX_free(enc_);  // cleanses the key schedule
        EVP_CIPHER_CTX_free(dec_);
        OPENSSL_cleanse(scratch_.data(), scratch_.size());  // a split block's plaintext
    }

    task<int> read(uint64_t lba, uint32_t n, std::span<const iovec> iov) override {
        if (int rc = dev_.check_io(lba, n, iov)) co_return rc;
        int rc = co_await inner_->read(lba * ratio_, n * ratio_, iov);
        if (rc) co_return rc;
        co_return decrypt_in_place(lba, n, iov);
    }

    task<int> write(uint64_t lba, uint32_t n, std::span<const iovec> iov, bool fua) override {
        // Checked here: a write cut in pieces must not fail half way through.
        if (int rc = dev_.check_io(lba, n, iov)) co_return rc;
        if (!ok_) co_return -EIO;
        iov_cursor in{iov};
        const uint32_t most = uint32_t(std::max<size_t>(1, max_bounce / bs_));
        for (uint32_t done = 0; done < n;) {
            uint32_t k = std::min(most, n - done);
            buffer b = buffer_pool::local().get(size_t(k) * bs_);
            auto* out = reinterpret_cast<uint8_t*>(b.data());
            for (uint32_t i = 0; i < k; ++i)
                if (!unit(enc_, lba + done + i, next_block(in), out + size_t(i) * bs_))
                    co_return -EIO;
            iovec v{b.data(), size_t(k) * bs_};
            int rc = co_await inner_->write((lba + done) * ratio_, k * ratio_, {&v, 1}, fua);
            if (rc) co_return rc;
            done += k;
        }
        co_return 0;
    }

    task<int> flush() override { return inner_->flush(); }
    // Zero ciphertext reads as zero plaintext (crypto_bdev.h).
    task<int> write_zeroes(uint64_t lba, uint64_t n) override {
        if (int rc = dev_.check_range(lba, n)) co_return rc;
        co_return co_await inner_->write_zeroes(lba * ratio_, n * ratio_);
    }
    task<int> unmap(uint64_t lba, uint64_t n) override {
        if (int rc = dev_.check_range(lba, n)) co_return rc;
        co_return co_await inner_->unmap(lba * ratio_, n * ratio_);
    }
    task<int> allocated(uint64_t lba, uint64_t n, std::vector<block_run>* runs) override {
        if (int rc = dev_.check_range(lba, n)) co_return rc;
        std::vector<block_run> inner_runs;
        int rc = co_await inner_->allocated(lba * ratio_, n * ratio_, &inner_runs);
        if (rc) co_return rc;
        runs->clear();
        for (auto& r : inner_runs) {
            // Rounded out to whole blocks of this layer.
            uint64_t a = r.lba / ratio_, b = (r.lba + r.nblocks + ratio_ - 1) / ratio_;
            if (!runs->empty() && runs->back().lba + runs->back().nblocks >= a) {
                uint64_t end = std::max(runs->back().lba + runs->back().nblocks, b);
                runs->back().nblocks = end - runs->back().lba;
            } else {
                runs->push_back({a, b - a});
            }
        }
        co_return 0;
    }

  private:
    // One data unit: the block at `lba`, tweak = LBA as a little-endian
    // 128-bit number.
    bool unit(EVP_CIPHER_CTX* c, uint64_t lba, const uint8_t* in, uint8_t* out) {
        uint8_t iv[16] = {};
        for (int i = 0; i < 8; ++i) iv[i] = uint8_t(lba >> (8 * i));
        int outl = 0;
        return EVP_CipherInit_ex2(c, nullptr, nullptr, iv, -1, nullptr) == 1 &&
               EVP_CipherUpdate(c, out, &outl, in, int(bs_)) == 1 && outl == int(bs_);
    }

    // The next block of the caller's iovecs: in place when one iovec holds
    // it whole, else gathered into scratch_.
    const uint8_t* next_block(iov_cursor& c) {
        c.skip_empty();
        const iovec& v = c.iov[c.index];
        if (v.iov_len - c.offset >= bs_) {
            auto* p = static_cast<const uint8_t*>(v.iov_base) + c.offset;
            c.advance(bs_);
            return p;
        }
        c.gather(reinterpret_cast<std::byte*>(scratch_.data()), bs_);
        return scratch_.data();
    }

    int decrypt_in_place(uint64_t lba, uint32_t n, std::span<const iovec> iov) {
        if (!ok_) return -EIO;
        iov_cursor c{iov};
        for (uint32_t i = 0; i < n; ++i) {
            c.skip_empty();
            const iovec& v = c.iov[c.index];
            if (v.iov_len - c.offset >= bs_) {
                auto* p = static_cast<uint8_t*>(v.iov_base) + c.offset;
                if (!all_zero(p, bs_) && !unit(dec_, lba + i, p, p)) return -EIO;
                c.advance(bs_);
                continue;
            }
            // A block split over iovecs: gathered, decrypted, put back.
            iov_cursor back = c;
            c.gather(reinterpret_cast<std::byte*>(scratch_.data()), bs_);
            if (!all_zero(scratch_.data(), bs_) &&
                !unit(dec_, lba + i, scratch_.data(), scratch_.data()))
                return -EIO;
            back.scatter(reinterpret_cast<const std::byte*>(scratch_.data()), bs_);
        }
        return 0;
    }

    std::unique_ptr<channel> inner_;
    const bdev& dev_;
    uint32_t bs_;                   // this layer's block: one data unit
    uint32_t ratio_;                // inner blocks per block
    std::vector<uint8_t> scratch_;  // one block; used only between awaits
    EVP_CIPHER_CTX* enc_ = nullptr;
    EVP_CIPHER_CTX* dec_ = nullptr;
    bool ok_ = false;
};

class crypto_bdev final : public bdev {
  public:
    crypto_bdev(std::shared_ptr<bdev> inner, uint32_t unit,
                std::span<const uint8_t, crypto_key_bytes> key)
        : bdev(properties{.name = inner->name(),
                          .block_size = unit,
                          .num_blocks = inner->size_bytes() / unit,
                          .volatile_write_cache = inner->volatile_write_cache(),
                          .unmap_reads_zeroes = inner->unmap_reads_zeroes(),
                          .read_only = inner->read_only()}),
          inner_(std::move(inner)),
          ratio_(unit / inner_->block_size()) {
        std::memcpy(key_, key.data(), sizeof key_);
        listener_ = inner_->add_resize_listener([this](uint64_t, uint64_t n) {
            (void)apply_resize(n / ratio_, [](uint64_t, uint64_t) { return result<void>{}; });
        });
    }
    ~crypto_bdev() override {
        inner_->remove_resize_listener(listener_);
        OPENSSL_cleanse(key_, sizeof key_);
    }
    std::unique_ptr<channel> open_channel() override {
        return std::make_unique<crypto_channel>(inner_->open_channel(), *this, ratio_, key_);
    }
    result<void> resize(uint64_t n) override { return inner_->resize(n * ratio_); }

  private:
    std::shared_ptr<bdev> inner_;
    uint32_t ratio_;
    uint64_t listener_ = 0;
    uint8_t key_[crypto_key_bytes];
};

}  // namespace

std::shared_ptr<bdev> make_crypto_bdev(std::shared_ptr<bdev> inner,
                                       std::span<const uint8_t, crypto_key_bytes> key,
                                       std::string* why) {
    auto refuse = [&](const char* msg) -> std::shared_ptr<bdev> {
        if (why) *why = msg;
        return nullptr;
    };
    if (!xts_cipher()) return refuse("OpenSSL has no AES-256-XTS");
    if (std::memcmp(key.data(), key.data() + 32, 32) == 0)
        return refuse("an AES-XTS key whose two halves are equal is refused");
    // One data unit per 4 KiB (or per block, for larger blocks): fewer,
    // larger units cost less than one per 512-byte block.
    const uint32_t unit = std::max<uint32_t>(inner->block_size(), crypto_unit_bytes);
    if (unit % inner->block_size() != 0) return refuse("a block size that does not divide 4 KiB");
    if (inner->size_bytes() < unit) return refuse("a device smaller than one 4 KiB block");
    return std::make_shared<crypto_bdev>(std::move(inner), unit, key);
}

}  // namespace weft::bdev
