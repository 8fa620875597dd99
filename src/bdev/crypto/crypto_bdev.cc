#include "bdev/crypto/crypto_bdev.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "bdev/iov.h"
#include "runtime/buffer_pool.h"
#include "runtime/runtime.h"

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

// One data unit: the block at `lba`, tweak = LBA as a little-endian
// 128-bit number; `in` and `out` may be the same.
bool unit(EVP_CIPHER_CTX* c, uint32_t bs, uint64_t lba, const uint8_t* in, uint8_t* out) {
    uint8_t iv[16] = {};
    for (int i = 0; i < 8; ++i) iv[i] = uint8_t(lba >> (8 * i));
    int outl = 0;
    return c && EVP_CipherInit_ex2(c, nullptr, nullptr, iv, -1, nullptr) == 1 &&
           EVP_CipherUpdate(c, out, &outl, in, int(bs)) == 1 && outl == int(bs);
}

}  // namespace

// An encrypting and a decrypting context for one key.
struct cipher_pair {
    EVP_CIPHER_CTX* enc = nullptr;
    EVP_CIPHER_CTX* dec = nullptr;
    uint64_t version = 0;  // of the key slot they were made for; 0: none
    bool ok = false;
    ~cipher_pair() { clear(); }
    void clear() {
        EVP_CIPHER_CTX_free(enc);  // cleanses the key schedule
        EVP_CIPHER_CTX_free(dec);
        enc = dec = nullptr;
        ok = false;
    }
    void init(const uint8_t* key) {
        clear();
        enc = EVP_CIPHER_CTX_new();
        dec = EVP_CIPHER_CTX_new();
        ok = enc && dec && EVP_EncryptInit_ex2(enc, xts_cipher(), key, nullptr, nullptr) == 1 &&
             EVP_DecryptInit_ex2(dec, xts_cipher(), key, nullptr, nullptr) == 1;
    }
};

// Which key each block of one I/O is under, read once as it starts.
struct keying {
    unsigned cur;
    bool two;
    uint64_t done;
    unsigned slot(uint64_t lba) const { return two && lba < done ? cur ^ 1 : cur; }
};

class crypto_channel final : public channel {
  public:
    crypto_channel(std::unique_ptr<channel> inner, crypto_device& dev)
        : inner_(std::move(inner)),
          dev_(dev),
          bs_(dev.block_size()),
          ratio_(dev.ratio_),
          slot_(dev.epochs_.here()),
          scratch_(bs_) {}
    ~crypto_channel() override {
        OPENSSL_cleanse(scratch_.data(), scratch_.size());  // a split block's plaintext
    }

    task<int> read(uint64_t lba, uint32_t n, std::span<const iovec> iov) override {
        if (int rc = dev_.check_io(lba, n, iov)) co_return rc;
        co_return co_await unfenced(lba, n, [this, lba, n, iov](keying k) -> task<int> {
            int rc = co_await inner_->read(lba * ratio_, n * ratio_, iov);
            if (rc) co_return rc;
            co_return decrypt_in_place(k, lba, n, iov);
        });
    }

    task<int> write(uint64_t lba, uint32_t n, std::span<const iovec> iov, bool fua) override {
        // Checked here: a write cut in pieces must not fail half way through.
        if (int rc = dev_.check_io(lba, n, iov)) co_return rc;
        co_return co_await unfenced(lba, n, [this, lba, n, iov, fua](keying k) {
            return encrypt_and_write(k, lba, n, iov, fua);
        });
    }

    task<int> flush() override { return inner_->flush(); }
    // Zero ciphertext reads as zero plaintext (crypto_bdev.h).
    task<int> write_zeroes(uint64_t lba, uint64_t n) override {
        if (int rc = dev_.check_range(lba, n)) co_return rc;
        co_return co_await unfenced(lba, n, [this, lba, n](keying) {
            return inner_->write_zeroes(lba * ratio_, n * ratio_);
        });
    }
    task<int> unmap(uint64_t lba, uint64_t n) override {
        if (int rc = dev_.check_range(lba, n)) co_return rc;
        co_return co_await unfenced(
            lba, n, [this, lba, n](keying) { return inner_->unmap(lba * ratio_, n * ratio_); });
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
    // Runs `op` with the keying of its start once [lba, lba + n) is not
    // fenced, counted (io_epochs) until it ends so that a fence can wait
    // for it. `op` lives in this frame while it runs.
    template <typename Op>
    task<int> unfenced(uint64_t lba, uint64_t n, Op op) {
        for (;;) {
            auto g = io_epochs::enter(slot_);
            if (!dev_.fenced(lba, n)) co_return co_await op(keys());
            g.release();
            int rc = co_await dev_.wait_unfenced(lba, n);
            if (rc) co_return rc;
        }
    }

    // The keying of an I/O starting now. Outside a rotation the other slot's
    // contexts (an old key's schedule, after one) are dropped.
    keying keys() {
        keying k{dev_.cur_.load(), dev_.two_.load(), dev_.done_.load()};
        if (!k.two && ctx_[k.cur ^ 1].version) {
            ctx_[k.cur ^ 1].clear();
            ctx_[k.cur ^ 1].version = 0;
        }
        return k;
    }

    // The contexts of key slot `s`, made again when its key changed.
    cipher_pair& ciphers(unsigned s) {
        uint64_t v = dev_.version_[s].load();
        if (ctx_[s].version != v) {
            ctx_[s].init(dev_.keys_[s]);
            ctx_[s].version = v;
        }
        return ctx_[s];
    }

    task<int> encrypt_and_write(keying k, uint64_t lba, uint32_t n, std::span<const iovec> iov,
                                bool fua) {
        iov_cursor in{iov};
        const uint32_t most = uint32_t(std::max<size_t>(1, max_bounce / bs_));
        for (uint32_t done = 0; done < n;) {
            uint32_t cnt = std::min(most, n - done);
            buffer b = buffer_pool::local().get(size_t(cnt) * bs_);
            auto* out = reinterpret_cast<uint8_t*>(b.data());
            for (uint32_t i = 0; i < cnt; ++i) {
                uint64_t at = lba + done + i;
                cipher_pair& c = ciphers(k.slot(at));
                if (!c.ok || !unit(c.enc, bs_, at, next_block(in), out + size_t(i) * bs_))
                    co_return -EIO;
            }
            iovec v{b.data(), size_t(cnt) * bs_};
            int rc = co_await inner_->write((lba + done) * ratio_, cnt * ratio_, {&v, 1}, fua);
            if (rc) co_return rc;
            done += cnt;
        }
        co_return 0;
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

    bool decrypt_block(keying k, uint64_t lba, uint8_t* p) {
        if (all_zero(p, bs_)) return true;
        cipher_pair& c = ciphers(k.slot(lba));
        return c.ok && unit(c.dec, bs_, lba, p, p);
    }

    int decrypt_in_place(keying k, uint64_t lba, uint32_t n, std::span<const iovec> iov) {
        iov_cursor c{iov};
        for (uint32_t i = 0; i < n; ++i) {
            c.skip_empty();
            const iovec& v = c.iov[c.index];
            if (v.iov_len - c.offset >= bs_) {
                if (!decrypt_block(k, lba + i, static_cast<uint8_t*>(v.iov_base) + c.offset))
                    return -EIO;
                c.advance(bs_);
                continue;
            }
            // A block split over iovecs: gathered, decrypted, put back.
            iov_cursor back = c;
            c.gather(reinterpret_cast<std::byte*>(scratch_.data()), bs_);
            if (!decrypt_block(k, lba + i, scratch_.data())) return -EIO;
            back.scatter(reinterpret_cast<const std::byte*>(scratch_.data()), bs_);
        }
        return 0;
    }

    std::unique_ptr<channel> inner_;
    crypto_device& dev_;
    uint32_t bs_;                   // this layer's block: one data unit
    uint32_t ratio_;                // inner blocks per block
    io_epochs::slot& slot_;         // this reactor's count of I/O in flight
    std::vector<uint8_t> scratch_;  // one block; used only between awaits
    cipher_pair ctx_[2];            // per key slot
};

// ---- the device --------------------------------------------------------------

crypto_device::crypto_device(std::shared_ptr<bdev> inner, uint32_t unit, key_span key)
    : bdev(properties{.name = inner->name(),
                      .block_size = unit,
                      .num_blocks = inner->size_bytes() / unit,
                      .volatile_write_cache = inner->volatile_write_cache(),
                      .unmap_reads_zeroes = inner->unmap_reads_zeroes(),
                      .read_only = inner->read_only()}),
      inner_(std::move(inner)),
      ratio_(unit / inner_->block_size()) {
    reactor* r = reactor::local_or_null();
    home_ = r ? r->id() : 0;
    std::memcpy(keys_[0], key.data(), crypto_key_bytes);
    std::memset(keys_[1], 0, crypto_key_bytes);
    version_[0] = 1;
    version_[1] = 1;
    listener_ = inner_->add_resize_listener([this](uint64_t, uint64_t n) {
        (void)apply_resize(n / ratio_, [](uint64_t, uint64_t) { return result<void>{}; });
    });
}

crypto_device::~crypto_device() {
    inner_->remove_resize_listener(listener_);
    OPENSSL_cleanse(keys_, sizeof keys_);
}

std::unique_ptr<channel> crypto_device::open_channel() {
    return std::make_unique<crypto_channel>(inner_->open_channel(), *this);
}

result<void> crypto_device::resize(uint64_t n) {
    return inner_->resize(n * ratio_);
}

// From any reactor: waits at home until [lba, lba + n) is not fenced (0),
// or the chunk fenced is lost to a write error (-EIO).
task<int> crypto_device::wait_unfenced(uint64_t lba, uint64_t n) {
    co_return co_await on(home_, [this, lba, n] { return wait_clear(lba, n); });
}

task<int> crypto_device::wait_clear(uint64_t lba, uint64_t n) {
    for (;;) {
        if (!fenced(lba, n)) co_return 0;
        if (broken_.load()) co_return -EIO;
        co_await unfenced_.wait();
    }
}

// Home: I/O to [lo, hi) waits from now on; resumes once the I/O that
// started before is done.
task<void> crypto_device::fence(uint64_t lo, uint64_t hi) {
    fence_lo_.store(lo);
    fence_hi_.store(hi);
    co_await epochs_.grace();
}

void crypto_device::unfence() {
    fence_hi_.store(0);
    fence_lo_.store(0);
    unfenced_.notify_all();
}

task<result<void>> crypto_device::begin_rekey(key_span next, uint64_t from, std::string* why) {
    if (two_.load() || chunk_blocks_) {
        *why = "a key rotation is under way";
        co_return error{EBUSY};
    }
    if (std::memcmp(next.data(), next.data() + 32, 32) == 0) {
        *why = "an AES-XTS key whose two halves are equal is refused";
        co_return error{EINVAL};
    }
    const auto tag = rekey_key_tag(next);
    if (tag == decltype(tag){}) {
        *why = "OpenSSL could not tag the new key";
        co_return error{EIO};
    }
    co_await fence(0, UINT64_MAX);
    const unsigned s = cur_.load() ^ 1;
    std::memcpy(keys_[s], next.data(), crypto_key_bytes);
    version_[s].fetch_add(1);
    key_tag_ = tag;
    done_.store(from);
    two_.store(true);
    unfence();
    co_return result<void>{};
}

// Writes the blocks of [lba, lba + n) marked in `which`, a run at a time,
// from chunk_ (block i at offset i * block size).
task<int> crypto_device::write_runs(uint64_t lba, uint32_t n, const std::vector<bool>& which,
                                    bool fua) {
    const uint32_t bs = block_size();
    for (uint32_t i = 0; i < n;) {
        if (!which[i]) {
            ++i;
            continue;
        }
        uint32_t j = i;
        while (j < n && which[j]) ++j;
        iovec v{chunk_.data() + size_t(i) * bs, size_t(j - i) * bs};
        int rc = co_await home_ch_->write((lba + i) * ratio_, (j - i) * ratio_, {&v, 1}, fua);
        if (rc) co_return rc;
        i = j;
    }
    co_return 0;
}

task<result<rekey_record>> crypto_device::rekey_prepare(uint32_t max_blocks) {
    rekey_record r;
    r.block_size = block_size();
    const uint64_t a = done_.load(), end = num_blocks();
    if (!two_.load() || chunk_blocks_ || broken_.load()) co_return error{EBUSY};
    if (a >= end) co_return r;
    const uint32_t bs = block_size();
    max_blocks = std::clamp<uint32_t>(max_blocks, 1, uint32_t((4u << 20) / bs));
    const uint32_t n = uint32_t(std::min<uint64_t>(max_blocks, end - a));
    if (!home_ch_) home_ch_ = inner_->open_channel();
    co_await fence(a, a + n);
    chunk_ = buffer_pool::local().get(size_t(n) * bs);
    iovec v{chunk_.data(), size_t(n) * bs};
    int rc = co_await home_ch_->read(a * ratio_, n * ratio_, {&v, 1});
    if (rc) {
        unfence();
        co_return error{-rc};
    }
    cipher_pair from, to;
    from.init(keys_[cur_.load()]);
    to.init(keys_[cur_.load() ^ 1]);
    std::vector<uint8_t> plain(bs);
    block_hasher hash;
    r.key_tag = key_tag_;
    r.lba = a;
    r.blocks = n;
    r.digests.resize(n);
    chunk_write_.assign(n, false);
    bool ok = from.ok && to.ok;
    for (uint32_t i = 0; ok && i < n; ++i) {
        // A chunk is milliseconds of cipher work: the reactor's other I/O
        // (outside the fence) goes on in between.
        if (i % 64 == 63) co_await yield{};
        auto* p = reinterpret_cast<uint8_t*>(chunk_.data()) + size_t(i) * bs;
        if (all_zero(p, bs)) continue;  // never written: stays so
        ok = hash.digest({p, bs}, &r.digests[i]) && unit(from.dec, bs, a + i, p, plain.data()) &&
             unit(to.enc, bs, a + i, plain.data(), p);
        chunk_write_[i] = true;
    }
    OPENSSL_cleanse(plain.data(), plain.size());
    if (!ok) {
        unfence();
        co_return error{EIO};
    }
    chunk_lba_ = a;
    chunk_blocks_ = n;
    co_return r;
}

task<int> crypto_device::rekey_commit() {
    if (!chunk_blocks_) co_return -EINVAL;
    int rc = co_await write_runs(chunk_lba_, chunk_blocks_, chunk_write_, /*fua=*/true);
    if (rc) {
        // Some blocks may be under the new key now: which ones only the
        // record can tell (recover()). Until then the chunk is off limits.
        lose_chunk();
        co_return rc;
    }
    done_.store(chunk_lba_ + chunk_blocks_);
    rekey_cancel_buffers();
    unfence();
    co_return 0;
}

void crypto_device::rekey_abandon() {
    if (!chunk_blocks_) return;
    // Unfenced, hosts would write the chunk under the old key, which a
    // record that did reach the disk would then misjudge after a restart.
    lose_chunk();
}

// The chunk stays fenced and I/O to it fails (EIO) until recover().
void crypto_device::lose_chunk() {
    broken_.store(true);
    unfenced_.notify_all();
    rekey_cancel_buffers();
}

void crypto_device::rekey_cancel_buffers() {
    chunk_ = buffer();  // ciphertext only (plaintext passed through `plain`)
    chunk_blocks_ = 0;
    chunk_write_.clear();
}

task<int> crypto_device::recover(const rekey_record& r) {
    const uint32_t bs = block_size();
    // Another rotation's record (or one for another device) is refused.
    if (!two_.load() || chunk_blocks_ || r.key_tag != key_tag_ || r.block_size != bs ||
        r.digests.size() != r.blocks || r.blocks > (4u << 20) / bs ||
        r.lba + r.blocks > num_blocks() || r.lba != done_.load())
        co_return -EINVAL;
    if (!home_ch_) home_ch_ = inner_->open_channel();
    co_await fence(r.lba, r.lba + r.blocks);
    chunk_ = buffer_pool::local().get(size_t(r.blocks) * bs);
    iovec v{chunk_.data(), size_t(r.blocks) * bs};
    int rc = co_await home_ch_->read(r.lba * ratio_, r.blocks * ratio_, {&v, 1});
    cipher_pair from, to;
    from.init(keys_[cur_.load()]);
    to.init(keys_[cur_.load() ^ 1]);
    std::vector<uint8_t> plain(bs);
    block_hasher hash;
    std::vector<bool> again(r.blocks, false);
    if (rc == 0 && !(from.ok && to.ok)) rc = -EIO;
    for (uint32_t i = 0; rc == 0 && i < r.blocks; ++i) {
        auto* p = reinterpret_cast<uint8_t*>(chunk_.data()) + size_t(i) * bs;
        // Only a block still holding its old ciphertext is re-encrypted.
        if (all_zero(p, bs)) continue;
        block_digest d;
        if (!hash.digest({p, bs}, &d)) {
            rc = -EIO;
            break;
        }
        if (d != r.digests[i]) continue;
        if (!unit(from.dec, bs, r.lba + i, p, plain.data()) ||
            !unit(to.enc, bs, r.lba + i, plain.data(), p))
            rc = -EIO;
        again[i] = true;
    }
    OPENSSL_cleanse(plain.data(), plain.size());
    if (rc == 0) rc = co_await write_runs(r.lba, r.blocks, again, /*fua=*/true);
    if (rc) {
        lose_chunk();
        co_return rc;
    }
    rekey_cancel_buffers();
    broken_.store(false);
    done_.store(r.lba + r.blocks);
    unfence();
    co_return 0;
}

task<int> crypto_device::finish_rekey() {
    if (!two_.load() || chunk_blocks_ || broken_.load()) co_return -EINVAL;
    co_await fence(0, UINT64_MAX);
    if (done_.load() < num_blocks()) {  // grown meanwhile
        unfence();
        co_return -EBUSY;
    }
    const unsigned old = cur_.load();
    cur_.store(old ^ 1);
    two_.store(false);
    done_.store(0);
    OPENSSL_cleanse(keys_[old], crypto_key_bytes);
    version_[old].fetch_add(1);
    unfence();
    co_return 0;
}

std::shared_ptr<crypto_device> make_crypto_bdev(std::shared_ptr<bdev> inner,
                                                std::span<const uint8_t, crypto_key_bytes> key,
                                                std::string* why) {
    auto refuse = [&](const char* msg) -> std::shared_ptr<crypto_device> {
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
    return std::make_shared<crypto_device>(std::move(inner), unit, key);
}

}  // namespace weft::bdev
