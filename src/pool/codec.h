// Encoding and decoding of the superblock and of a metadata area (format.h).
//
// Pure functions over byte spans, with no I/O, so that the fuzzer and the
// corruption tests drive exactly what pool::open runs on the bytes it reads.
// Decoders never trust the input: every count and offset is bounded before
// use, and a failure is reported (EUCLEAN, or ENODATA for "no pool here") with
// a sentence in `why` naming the field at fault, never an abort.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "pool/format.h"
#include "pool/uuid.h"
#include "runtime/result.h"

namespace weft::pool {

// The decoded superblock.
struct geometry {
    uuid pool_id{};
    std::string name;
    uint32_t block_size = 512;
    uint64_t cluster_size = format::default_cluster_size;
    uint64_t device_bytes = 0;
    uint64_t md_area_bytes = 0;
    uint64_t data_offset = 0;
    uint64_t cluster_count = 0;

    uint64_t area_offset(unsigned area) const { return format::md_offset + area * md_area_bytes; }
};

// A logical cluster without a physical one (reads as zeroes).
constexpr uint32_t unmapped = UINT32_MAX;

struct volume_meta {
    uuid id{};
    uuid parent{};
    std::string name;
    uint64_t size_bytes = 0;
    uint32_t flags = 0;  // format::volume_flags
    uint64_t created_seq = 0;
    std::vector<uint32_t> map;  // logical cluster -> physical, or unmapped

    bool thin() const { return flags & format::vol_thin; }
    bool read_only() const { return flags & format::vol_read_only; }
    bool snapshot() const { return flags & format::vol_snapshot; }
};

struct pool_meta {
    uint64_t seq = 0;
    std::vector<volume_meta> volumes;
};

inline uint64_t clusters_for(uint64_t bytes, uint64_t cluster_size) {
    return (bytes + cluster_size - 1) / cluster_size;
}

// Fills the 512-byte superblock (crc included) from `g`.
void encode_superblock(const geometry& g, std::span<std::byte, sizeof(format::superblock)> out);
// ENODATA: no pool magic (an empty or foreign device). EUCLEAN: a pool
// superblock that fails its checksum or holds impossible values.
result<geometry> decode_superblock(std::span<const std::byte> in, std::string* why = nullptr);

// Bytes the encoded metadata takes (header + payload).
uint64_t encoded_metadata_bytes(std::span<const volume_meta* const> vols);
// Writes header + payload at the start of `area` and zeroes the rest of the
// last io_unit; returns the bytes to write (a multiple of io_unit). ENOSPC
// when it does not fit in g.md_area_bytes.
result<uint64_t> encode_metadata(uint64_t seq, std::span<const volume_meta* const> vols,
                                 const geometry& g, std::span<std::byte> area);
result<uint64_t> encode_metadata(const pool_meta& m, const geometry& g, std::span<std::byte> area);
// EUCLEAN with `why` for anything that fails a checksum or a bound: a
// mapping beyond the pool or the volume, overlapping extents, a duplicate
// UUID, a bad name, unknown flags.
result<pool_meta> decode_metadata(std::span<const std::byte> area, const geometry& g,
                                  std::string* why = nullptr);

// CRC32C (Castagnoli), as the NVMe/TCP digests.
uint32_t crc32c(std::span<const std::byte> data, uint32_t crc = 0);

}  // namespace weft::pool
