// An encrypting layer over another bdev: AES-256-XTS (OpenSSL EVP, AES-NI
// where the CPU has it), one data unit per block with the block's LBA as the
// tweak (dm-crypt's plain64), so that the same plaintext at two places never
// looks alike on the media and a block can be rewritten on its own.
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

inline constexpr size_t crypto_key_bytes = 64;  // AES-256-XTS: two 256-bit keys

// nullptr with a sentence in `why` when the key is refused (its two halves
// are equal, which XTS forbids) or OpenSSL has no AES-256-XTS.
std::shared_ptr<bdev> make_crypto_bdev(std::shared_ptr<bdev> inner,
                                       std::span<const uint8_t, crypto_key_bytes> key,
                                       std::string* why);

}  // namespace weft::bdev
