// The pool's on-disk format: constants and plain structs, every size and
// offset asserted. docs/pool-format.md is the prose description; keep the two
// in step. All integers are little-endian (asserted in nvme/wire.h's manner).
//
// Device layout (byte offsets):
//   [0, 4096)                         superblock region (superblock in the first 512 bytes)
//   [md_offset, +md_area_bytes)       metadata area 0
//   [+md_area_bytes, +md_area_bytes)  metadata area 1 (a mirror of area 0)
//   [data_offset, +cluster_count * cluster_size)  data clusters
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

static_assert(std::endian::native == std::endian::little, "pool format assumes little-endian");

namespace weft::pool::format {

constexpr char superblock_magic[8] = {'W', 'E', 'F', 'T', 'P', 'O', 'O', 'L'};
constexpr char metadata_magic[8] = {'W', 'E', 'F', 'T', 'M', 'E', 'T', 'A'};
constexpr uint32_t version = 1;

// Every metadata I/O is in units of this (a multiple of any supported block
// size), so the superblock and each area start and end on a block boundary.
constexpr uint64_t io_unit = 4096;
constexpr uint64_t superblock_region = 4096;
constexpr uint64_t md_offset = superblock_region;
constexpr uint64_t min_cluster_size = 4096;
constexpr uint64_t max_cluster_size = 1ull << 30;
constexpr uint64_t default_cluster_size = 4ull << 20;
constexpr uint64_t min_md_area_bytes = 64 << 10;
constexpr uint64_t max_md_area_bytes = 1ull << 30;
// Physical cluster indexes are 31 bits: the volume map keeps a flag in bit 31.
constexpr uint64_t max_cluster_count = (1ull << 31) - 1;
constexpr uint32_t max_block_size = 4096;
// A volume's logical size is at most this many times the pool's data
// capacity (a bound on thin over-commitment, and on the map a decoder builds).
constexpr uint64_t max_overcommit = 64;
constexpr size_t name_bytes = 64;  // NUL-padded, at most 63 characters

// The superblock: written once by pool::create, never rewritten (so it needs
// no atomic update). crc is CRC32C of the 512 bytes with crc taken as 0.
struct superblock {
    char magic[8];           // "WEFTPOOL"
    uint32_t version;        // format::version
    uint32_t sb_bytes;       // sizeof(superblock) = 512
    uint8_t pool_uuid[16];   // random at create; metadata areas repeat it
    char name[name_bytes];   // the pool's name
    uint32_t block_size;     // the device's block size at create
    uint32_t flags;          // 0 (reserved)
    uint64_t cluster_size;   // bytes, power of 2 in [4 KiB, 1 GiB]
    uint64_t device_bytes;   // device size at create (informational)
    uint64_t md_offset;      // = format::md_offset
    uint64_t md_area_bytes;  // size of each of the two metadata areas
    uint64_t data_offset;    // byte offset of physical cluster 0
    uint64_t cluster_count;  // data clusters
    uint8_t reserved[356];   // zero
    uint32_t crc;            // CRC32C, see above
};
static_assert(sizeof(superblock) == 512);
static_assert(offsetof(superblock, version) == 8);
static_assert(offsetof(superblock, sb_bytes) == 12);
static_assert(offsetof(superblock, pool_uuid) == 16);
static_assert(offsetof(superblock, name) == 32);
static_assert(offsetof(superblock, block_size) == 96);
static_assert(offsetof(superblock, flags) == 100);
static_assert(offsetof(superblock, cluster_size) == 104);
static_assert(offsetof(superblock, device_bytes) == 112);
static_assert(offsetof(superblock, md_offset) == 120);
static_assert(offsetof(superblock, md_area_bytes) == 128);
static_assert(offsetof(superblock, data_offset) == 136);
static_assert(offsetof(superblock, cluster_count) == 144);
static_assert(offsetof(superblock, reserved) == 152);
static_assert(offsetof(superblock, crc) == 508);

// The start of a metadata area. The payload follows at byte 64: volume_count
// volume records, then every volume's extents in record order.
struct md_header {
    char magic[8];           // "WEFTMETA"
    uint32_t version;        // format::version
    uint32_t header_bytes;   // sizeof(md_header) = 64
    uint8_t pool_uuid[16];   // the superblock's: an area of another pool is not ours
    uint64_t seq;            // commit sequence number, +1 per commit
    uint64_t payload_bytes;  // volume_count * 160 + extents * 12
    uint32_t volume_count;   //
    uint32_t payload_crc;    // CRC32C of the payload
    uint32_t reserved;       // zero
    uint32_t header_crc;     // CRC32C of these 64 bytes with header_crc as 0
};
static_assert(sizeof(md_header) == 64);
static_assert(offsetof(md_header, version) == 8);
static_assert(offsetof(md_header, header_bytes) == 12);
static_assert(offsetof(md_header, pool_uuid) == 16);
static_assert(offsetof(md_header, seq) == 32);
static_assert(offsetof(md_header, payload_bytes) == 40);
static_assert(offsetof(md_header, volume_count) == 48);
static_assert(offsetof(md_header, payload_crc) == 52);
static_assert(offsetof(md_header, reserved) == 56);
static_assert(offsetof(md_header, header_crc) == 60);

enum volume_flags : uint32_t {
    vol_thin = 1u << 0,       // clusters allocated on first write
    vol_read_only = 1u << 1,  // writes fail with EROFS
    vol_snapshot = 1u << 2,   // a snapshot (always read-only)
    vol_known_flags = vol_thin | vol_read_only | vol_snapshot,
};

// One volume, snapshot or clone.
struct volume_record {
    uint8_t uuid[16];
    uint8_t parent[16];     // snapshot: its origin volume; clone: its snapshot; else zero
    char name[name_bytes];  // NUL-padded, non-empty
    uint64_t size_bytes;    // logical size, a multiple of the block size, > 0
    uint32_t flags;         // volume_flags
    uint32_t extent_count;  // extents of this volume in the payload
    uint64_t created_seq;   // the commit that created it (informational)
    uint8_t reserved[40];   // zero
};
static_assert(sizeof(volume_record) == 160);
static_assert(offsetof(volume_record, parent) == 16);
static_assert(offsetof(volume_record, name) == 32);
static_assert(offsetof(volume_record, size_bytes) == 96);
static_assert(offsetof(volume_record, flags) == 104);
static_assert(offsetof(volume_record, extent_count) == 108);
static_assert(offsetof(volume_record, created_seq) == 112);
static_assert(offsetof(volume_record, reserved) == 120);

// A run of mapped clusters: logical [logical, logical + count) of the volume
// lives in physical [physical, physical + count). Extents of one volume are
// sorted by logical and do not overlap; unmapped clusters read as zeroes.
struct extent {
    uint32_t logical;
    uint32_t physical;
    uint32_t count;  // > 0
};
static_assert(sizeof(extent) == 12);
static_assert(offsetof(extent, physical) == 4);
static_assert(offsetof(extent, count) == 8);

}  // namespace weft::pool::format
