// An encrypting layer over another bdev: AES-256-XTS (OpenSSL EVP, AES-NI
// where the CPU has it). It serves 4096-byte blocks (larger: the inner
// block size) over an inner bdev of 512-byte blocks, one XTS data unit per
// block with the block's LBA as the tweak (dm-crypt's plain64 with
// sector_size 4096), so that the same plaintext at two places never looks
// alike on the media, a block is rewritten on its own (no read-modify-
// write), and a 4 KiB I/O costs one cipher set-up rather than eight. Its
// size is the inner size rounded down to whole blocks.
//
//   auto dev = bdev::make_crypto_bdev(volume, key, &why);   // key: 64 bytes
//   // hosts read and write plaintext through dev; `volume` holds ciphertext
//
// What is below only ever sees ciphertext: a nexus under it mirrors and
// rebuilds ciphertext, remote replicas and the wire to them carry it.
//
// Blocks the inner bdev reads as zeroes (never written, deallocated, written
// with write_zeroes) read as zeroes here too: a ciphertext block of all zero
// bytes is taken as "nothing written" (a real one is zero with probability
// 2^-4096). So write_zeroes and unmap pass straight down, thin volumes stay
// thin and allocated() keeps its meaning; the price is that which blocks
// are zero shows below, as with dm-crypt's allow_discards.
//
// The key is copied into memory that is wiped when the bdev goes; each
// channel keeps its own cipher contexts (no locks on the I/O path). Writes
// are encrypted into a bounce buffer (the caller's data stays as it was);
// reads are decrypted in place in the caller's buffers.
// Data-key rotation (crypto_device's rekey calls, on the reactor that made
// it): a second key, and a boundary below which blocks are under it. A
// rekeyer re-encrypts one chunk at a time from the boundary up, fencing the
// chunk: I/O that touches it waits (at the home reactor) until the chunk is
// written and the boundary has passed it; I/O elsewhere goes on, each block
// under the key its side of the boundary says. The rekeyer makes the chunk's
// record (rekey_record.h) durable between rekey_prepare() and
// rekey_commit(), so that recover() can finish a chunk a crash cut short.
//
//   co_await dev->begin_rekey(next_key, 0, &why);
//   for (;;) {
//       auto rec = co_await dev->rekey_prepare(256);     // fenced, in memory
//       if (!rec || rec->blocks == 0) break;
//       save(*rec);                                     // durable first
//       co_await dev->rekey_commit();                   // written, unfenced
//   }
//   co_await dev->finish_rekey();   // next_key is the only key from now on
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "bdev/bdev.h"
#include "bdev/crypto/rekey_record.h"
#include "runtime/buffer_pool.h"
#include "runtime/io_epochs.h"
#include "runtime/result.h"
#include "runtime/task.h"
#include "runtime/wait_list.h"

namespace weft::bdev {

inline constexpr size_t crypto_key_bytes = 64;       // AES-256-XTS: two 256-bit keys
inline constexpr uint32_t crypto_unit_bytes = 4096;  // the smallest block it serves

class crypto_channel;

class crypto_device final : public bdev {
  public:
    using key_span = std::span<const uint8_t, crypto_key_bytes>;
    crypto_device(std::shared_ptr<bdev> inner, uint32_t unit, key_span key);
    ~crypto_device() override;
    std::unique_ptr<channel> open_channel() override;
    result<void> resize(uint64_t n) override;

    // ---- data-key rotation: on the reactor that made it, one call at a time ----
    bool rekeying() const { return two_.load(); }
    // Blocks under the next key (those below the boundary).
    uint64_t rekeyed_blocks() const { return done_.load(); }
    // Starts serving with `next` for the blocks below `from` (those a
    // rotation cut short had re-encrypted). EINVAL with a sentence for a
    // key XTS refuses, EBUSY when a rotation is under way.
    task<result<void>> begin_rekey(key_span next, uint64_t from, std::string* why);
    // Fences the chunk of at most `max_blocks` at the boundary, reads it and
    // re-encrypts it in memory: its record (blocks == 0: nothing is left).
    task<result<rekey_record>> rekey_prepare(uint32_t max_blocks);
    // After the record is durable: writes the chunk (FUA), moves the
    // boundary past it and lifts the fence. On a write error the chunk stays
    // fenced (I/O to it fails with EIO) until recover() with its record.
    task<int> rekey_commit();
    // Drops a prepared chunk unwritten, when its record could not be saved.
    // Whether the record reached the disk is unknown, so the chunk stays
    // fenced as after a write error (I/O to it fails with EIO) until
    // recover() with the record on disk, if any, at the next start.
    void rekey_abandon();
    // After a crash: finishes the chunk of `r` block by block as its digests
    // say, and moves the boundary to its end. Call after begin_rekey(next,
    // r.lba). EINVAL for a record that does not fit this device.
    task<int> recover(const rekey_record& r);
    // Every block is under the next key: it becomes the only one (EBUSY
    // when blocks are left).
    task<int> finish_rekey();

  private:
    friend class crypto_channel;
    // Whether I/O to [lba, lba + n) must wait (or fail: broken_).
    bool fenced(uint64_t lba, uint64_t n) const {
        uint64_t lo = fence_lo_.load(), hi = fence_hi_.load();
        return lo < hi && lba < hi && lba + n > lo;
    }
    task<int> wait_unfenced(uint64_t lba, uint64_t n);
    task<int> wait_clear(uint64_t lba, uint64_t n);
    task<void> fence(uint64_t lo, uint64_t hi);
    void unfence();
    task<int> write_runs(uint64_t lba, uint32_t n, const std::vector<bool>& which, bool fua);
    void rekey_cancel_buffers();
    void lose_chunk();

    std::shared_ptr<bdev> inner_;
    uint32_t ratio_;
    uint64_t listener_ = 0;
    unsigned home_ = 0;
    // Two key slots: cur_ serves every block, or (two_) the blocks at and
    // above done_, the other slot those below. A slot's version changes with
    // its key (channels re-initialise their contexts); keys change only
    // while every block is fenced.
    uint8_t keys_[2][crypto_key_bytes];
    std::atomic<uint64_t> version_[2];
    std::atomic<unsigned> cur_{0};
    std::atomic<bool> two_{false};
    std::atomic<uint64_t> done_{0};
    std::atomic<uint64_t> fence_lo_{0}, fence_hi_{0};
    std::atomic<bool> broken_{false};
    io_epochs epochs_;
    wait_list unfenced_;  // home
    // The chunk between rekey_prepare() and rekey_commit().
    std::unique_ptr<channel> home_ch_;
    buffer chunk_;
    uint64_t chunk_lba_ = 0;
    uint32_t chunk_blocks_ = 0;
    std::vector<bool> chunk_write_;
    std::array<uint8_t, 8> key_tag_{};  // of the next key, in every record
};

// nullptr with a sentence in `why` when the key is refused (its two halves
// are equal, which XTS forbids), the inner block size does not divide 4 KiB,
// or OpenSSL has no AES-256-XTS.
std::shared_ptr<crypto_device> make_crypto_bdev(std::shared_ptr<bdev> inner,
                                                std::span<const uint8_t, crypto_key_bytes> key,
                                                std::string* why);

}  // namespace weft::bdev
