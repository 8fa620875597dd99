// The nexus label in memory, and its encoding (format.h). Pure functions over
// byte spans, no I/O: the fuzzer and the corruption tests drive exactly what a
// nexus runs on the bytes it reads from a child. Decoders never trust the
// input: every count and value is bounded, and a failure is reported (ENODATA
// for "no label here", EUCLEAN for a damaged one) with a sentence in `why`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "nexus/format.h"
#include "pool/uuid.h"
#include "runtime/result.h"

namespace weft::nexus {

using uuid = pool::uuid;

struct member_info {
    uuid id{};
    format::member_state state = format::member_state::in_sync;
    // Stale members: bytes [rebuild_from, size) need a full copy; below it
    // only the bitmap's regions. size_bytes: only the bitmap.
    uint64_t rebuild_from = 0;
    bool in_sync() const { return state == format::member_state::in_sync; }
};

struct label_info {
    uint64_t seq = 0;
    uuid nexus_id{};
    uuid child_id{};
    uint64_t generation = 0;
    uint64_t size_bytes = 0;
    uint64_t region_size = format::min_region_size;
    uint32_t block_size = 512;
    bool clean = false;
    uint64_t fence_key = 0;
    std::vector<member_info> members;

    // Labels are ordered by the nexus instance that wrote them first (its
    // fence key: the generation it opened at, above every generation it saw,
    // then a random tag), then by generation. So two instances that both
    // wrote "generation g + 1" on different sides of a partition are never
    // confused: the newer instance's labels win.
    bool newer_than(const label_info& o) const;

    const member_info* find(const uuid& id) const;
    member_info* find(const uuid& id);
    size_t in_sync_count() const;
};

// Fills one 4096-byte slot (crc included).
void encode_label(const label_info& l, std::span<std::byte, format::slot_bytes> out);
// ENODATA: no label magic (a blank or foreign device). EUCLEAN: a label that
// fails its checksum or holds impossible values.
result<label_info> decode_label(std::span<const std::byte> slot, std::string* why = nullptr);
// The current label of a child from its two slots (the first 8 KiB): the
// valid one with the higher seq. ENODATA when neither holds a label; EUCLEAN
// when one has the magic but neither decodes. `which` gets the slot (0 or 1).
result<label_info> pick_label(std::span<const std::byte> slots, std::string* why = nullptr,
                              unsigned* which = nullptr);

// The region size for a nexus of `size_bytes`: the smallest power of two of
// at least min_region_size whose bitmap fits in bitmap_max_bytes.
uint64_t region_size_for(uint64_t size_bytes);
uint64_t region_count(uint64_t size_bytes, uint64_t region_size);
// Bytes of bitmap on disk: whole bitmap blocks covering region_count bits.
uint64_t bitmap_bytes(uint64_t size_bytes, uint64_t region_size);

}  // namespace weft::nexus
