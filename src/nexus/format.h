// The nexus label: what every child of a nexus carries in its first MiB,
// so that which children are in sync is known from the children themselves
// (docs/nexus-format.md is the prose; keep the two in step). Plain structs,
// every offset asserted, little-endian.
//
// Child layout (byte offsets):
//   [0, 4096)              label slot 0
//   [4096, 8192)           label slot 1 (labels alternate between the slots;
//                          the valid one with the higher seq is current)
//   [8192, 1 MiB)          write-intent bitmap: bit i set = region i may
//                          differ between children (LSB first in each byte)
//   [1 MiB, 1 MiB + size)  the nexus's data (what hosts see at LBA 0)
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

static_assert(std::endian::native == std::endian::little, "nexus format assumes little-endian");

namespace weft::nexus::format {

constexpr char label_magic[8] = {'W', 'E', 'F', 'T', 'N', 'X', 'L', '1'};
constexpr uint32_t version = 1;

constexpr uint64_t metadata_bytes = 1ull << 20;  // reserved at the start of each child
constexpr uint64_t slot_bytes = 4096;
constexpr uint64_t bitmap_offset = 2 * slot_bytes;
constexpr uint64_t bitmap_max_bytes = metadata_bytes - bitmap_offset;
// Bitmap I/O is in whole 4 KiB blocks (any supported block size divides it).
constexpr uint64_t bitmap_block = 4096;
constexpr uint64_t min_region_size = 64 << 10;
constexpr uint32_t max_members = 32;

enum class member_state : uint8_t {
    in_sync = 1,  // holds every acknowledged write
    stale = 2,    // missed writes: rebuild the bitmap's regions and [rebuild_from, size)
};

struct member {
    uint8_t uuid[16];
    uint8_t state;          // member_state
    uint8_t reserved[7];    // zero
    uint64_t rebuild_from;  // stale: bytes from here to the end need a full copy
};
static_assert(sizeof(member) == 32);
static_assert(offsetof(member, state) == 16);
static_assert(offsetof(member, rebuild_from) == 24);

// One label slot. crc is CRC32C of the 4096-byte slot with crc taken as 0.
struct label {
    char magic[8];           // "WEFTNXL1"
    uint32_t version;        // format::version
    uint32_t label_bytes;    // sizeof(label) = 4096
    uint64_t seq;            // +1 per label write to this child
    uint8_t nexus_uuid[16];  // the nexus (the volume) this child belongs to
    uint8_t child_uuid[16];  // this child's identity among the members
    uint64_t generation;     // +1 per membership change
    uint64_t size_bytes;     // the nexus's data size
    uint64_t region_size;    // bytes per bitmap bit, a power of 2 >= 64 KiB
    uint32_t block_size;     // the nexus's block size
    uint32_t flags;          // label_flags
    uint32_t member_count;   // <= max_members
    uint32_t reserved0;      // zero
    uint64_t fence_key;      // the reservation key of the nexus that wrote it
    uint8_t reserved1[16];   // zero
    member members[max_members];
    uint8_t reserved2[2944];  // zero
    uint32_t reserved3;       // zero
    uint32_t crc;
};
static_assert(sizeof(label) == 4096);
static_assert(offsetof(label, version) == 8);
static_assert(offsetof(label, label_bytes) == 12);
static_assert(offsetof(label, seq) == 16);
static_assert(offsetof(label, nexus_uuid) == 24);
static_assert(offsetof(label, child_uuid) == 40);
static_assert(offsetof(label, generation) == 56);
static_assert(offsetof(label, size_bytes) == 64);
static_assert(offsetof(label, region_size) == 72);
static_assert(offsetof(label, block_size) == 80);
static_assert(offsetof(label, flags) == 84);
static_assert(offsetof(label, member_count) == 88);
static_assert(offsetof(label, fence_key) == 96);
static_assert(offsetof(label, members) == 120);
static_assert(offsetof(label, reserved2) == 120 + 32 * max_members);
static_assert(offsetof(label, crc) == 4092);

enum label_flags : uint32_t {
    label_clean = 1u << 0,  // the nexus closed cleanly: the bitmap is exact
    label_known_flags = label_clean,
};

}  // namespace weft::nexus::format
