// A data-key rotation's crash record: the chunk of blocks being re-encrypted
// from the old key to the new one, with a digest of each block's old
// ciphertext. It is made durable before the chunk is written; every block
// before the chunk is under the new key already. After a crash, each block
// of the chunk is told apart by its digest: still the old ciphertext → it
// is re-encrypted again; anything else (the new ciphertext, or what a host
// wrote once the chunk was done) → it is under the new key. A block's write
// is taken to be atomic (the device's 4 KiB blocks; a process crash leaves
// submitted writes whole).
//
//   rekey_record r{.lba = 256, .blocks = 2, .block_size = 4096, .digests = {...}};
//   std::string bytes = encode(r);
//   auto back = parse_rekey_record(bytes, &why);   // nullopt: damaged
//
// The record names the rotation's new key by a tag (HMAC-SHA-256 keyed by
// it, truncated: nothing of the key shows), so that a record left by
// another rotation is never taken for this one's.
//
// Encoding (little-endian): "WEFTRKY1", lba u64, blocks u32, block_size u32,
// key tag (8 bytes), blocks × old digest (16 bytes), then the first 16 bytes
// of the SHA-256 of everything before. Digests are SHA-256 truncated to 16 bytes (a host
// controls plaintext, never ciphertext: it cannot aim at a digest).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace weft::bdev {

using block_digest = std::array<uint8_t, 16>;

struct rekey_record {
    uint64_t lba = 0;     // the chunk's first block (blocks below are done)
    uint32_t blocks = 0;  // the chunk's length
    uint32_t block_size = 0;
    std::array<uint8_t, 8> key_tag{};   // of the new key (rekey_key_tag)
    std::vector<block_digest> digests;  // of each block's old ciphertext
};

// The most blocks a record holds (64 MiB of 4 KiB blocks).
inline constexpr uint32_t rekey_record_max_blocks = 16384;

// The tag a record carries for the new key `key` (all bytes zero when
// OpenSSL fails: begin_rekey then refuses the key).
std::array<uint8_t, 8> rekey_key_tag(std::span<const uint8_t> key);

// The digest of one block (SHA-256, its first 16 bytes).
class block_hasher {
  public:
    block_hasher();
    ~block_hasher();
    block_hasher(const block_hasher&) = delete;
    block_hasher& operator=(const block_hasher&) = delete;
    // false when OpenSSL fails: the caller must not go on without it (a
    // wrong digest would make recovery misjudge a block).
    bool digest(std::span<const uint8_t> block, block_digest* out);

  private:
    void* md_ = nullptr;   // EVP_MD (fetched once)
    void* ctx_ = nullptr;  // EVP_MD_CTX (reused)
};
std::string encode(const rekey_record& r);
// nullopt with a sentence for a record that is not one, or is damaged.
std::optional<rekey_record> parse_rekey_record(std::span<const uint8_t> bytes, std::string* why);

}  // namespace weft::bdev
