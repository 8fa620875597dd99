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
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "bdev/bdev.h"

namespace weft::bdev {

inline constexpr size_t crypto_key_bytes = 64;       // AES-256-XTS: two 256-bit keys
inline constexpr uint32_t crypto_unit_bytes = 4096;  // the smallest block it serves

// nullptr with a sentence in `why` when the key is refused (its two halves
// are equal, which XTS forbids), the inner block size does not divide 4 KiB,
// or OpenSSL has no AES-256-XTS.
std::shared_ptr<bdev> make_crypto_bdev(std::shared_ptr<bdev> inner,
                                       std::span<const uint8_t, crypto_key_bytes> key,
                                       std::string* why);

}  // namespace weft::bdev
