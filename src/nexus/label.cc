#include "nexus/label.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "nvmf/tcp/crc32c.h"

namespace weft::nexus {
namespace {

error corrupt(std::string* why, std::string msg) {
    if (why) *why = std::move(msg);
    return error{EUCLEAN};
}

bool is_pow2(uint64_t v) {
    return v && (v & (v - 1)) == 0;
}

uuid read_uuid(const uint8_t (&b)[16]) {
    uuid u;
    std::memcpy(u.data(), b, 16);
    return u;
}

uint32_t slot_crc(const format::label& l) {
    format::label copy = l;
    copy.crc = 0;
    return nvmf::tcp::crc32c(std::as_bytes(std::span(&copy, 1)));
}

}  // namespace

bool label_info::newer_than(const label_info& o) const {
    // The whole key: two instances that opened at one generation are still
    // ordered (by their random tags), so every child agrees which won.
    if (fence_key != o.fence_key) return fence_key > o.fence_key;
    return generation > o.generation;
}

const member_info* label_info::find(const uuid& id) const {
    for (auto& m : members)
        if (m.id == id) return &m;
    return nullptr;
}

member_info* label_info::find(const uuid& id) {
    for (auto& m : members)
        if (m.id == id) return &m;
    return nullptr;
}

size_t label_info::in_sync_count() const {
    return size_t(std::count_if(members.begin(), members.end(),
                                [](const member_info& m) { return m.in_sync(); }));
}

uint64_t region_size_for(uint64_t size_bytes) {
    uint64_t r = format::min_region_size;
    while (region_count(size_bytes, r) > format::bitmap_max_bytes * 8) r <<= 1;
    return r;
}

uint64_t region_count(uint64_t size_bytes, uint64_t region_size) {
    return (size_bytes + region_size - 1) / region_size;
}

uint64_t bitmap_bytes(uint64_t size_bytes, uint64_t region_size) {
    uint64_t bytes = (region_count(size_bytes, region_size) + 7) / 8;
    return (bytes + format::bitmap_block - 1) / format::bitmap_block * format::bitmap_block;
}

void encode_label(const label_info& l, std::span<std::byte, format::slot_bytes> out) {
    format::label w{};
    std::memcpy(w.magic, format::label_magic, 8);
    w.version = format::version;
    w.label_bytes = sizeof(format::label);
    w.seq = l.seq;
    std::memcpy(w.nexus_uuid, l.nexus_id.data(), 16);
    std::memcpy(w.child_uuid, l.child_id.data(), 16);
    w.generation = l.generation;
    w.size_bytes = l.size_bytes;
    w.region_size = l.region_size;
    w.block_size = l.block_size;
    w.flags = l.clean ? uint32_t(format::label_clean) : 0u;
    w.member_count = uint32_t(std::min<size_t>(l.members.size(), format::max_members));
    w.fence_key = l.fence_key;
    for (uint32_t i = 0; i < w.member_count; ++i) {
        std::memcpy(w.members[i].uuid, l.members[i].id.data(), 16);
        w.members[i].state = uint8_t(l.members[i].state);
        w.members[i].rebuild_from = l.members[i].rebuild_from;
    }
    w.crc = slot_crc(w);
    std::memcpy(out.data(), &w, sizeof w);
}

result<label_info> decode_label(std::span<const std::byte> slot, std::string* why) {
    if (slot.size() < sizeof(format::label)) return corrupt(why, "label slot is truncated");
    format::label w;
    std::memcpy(&w, slot.data(), sizeof w);
    if (std::memcmp(w.magic, format::label_magic, 8) != 0) {
        if (why) *why = "no nexus label";
        return error{ENODATA};
    }
    if (w.version != format::version)
        return corrupt(why, fmt::format("label version {} is not supported (expected {})",
                                        w.version, format::version));
    if (w.label_bytes != sizeof(format::label))
        return corrupt(
            why, fmt::format("label size {} is not {}", w.label_bytes, sizeof(format::label)));
    if (slot_crc(w) != w.crc) return corrupt(why, "label checksum mismatch");
    label_info l;
    l.seq = w.seq;
    l.nexus_id = read_uuid(w.nexus_uuid);
    l.child_id = read_uuid(w.child_uuid);
    l.generation = w.generation;
    l.size_bytes = w.size_bytes;
    l.region_size = w.region_size;
    l.block_size = w.block_size;
    l.clean = w.flags & format::label_clean;
    l.fence_key = w.fence_key;
    if (pool::is_nil(l.nexus_id) || pool::is_nil(l.child_id))
        return corrupt(why, "label has a nil nexus or child UUID");
    if (w.flags & ~uint32_t(format::label_known_flags))
        return corrupt(why, fmt::format("label has unknown flags {:#x}", w.flags));
    if (!is_pow2(l.block_size) || l.block_size < 512 || l.block_size > 4096)
        return corrupt(why, fmt::format("label block size {} is not 512..4096", l.block_size));
    if (l.size_bytes == 0 || l.size_bytes % l.block_size != 0 || l.size_bytes > (uint64_t(1) << 56))
        return corrupt(why, fmt::format("label size {} is not a positive multiple of {}",
                                        l.size_bytes, l.block_size));
    if (!is_pow2(l.region_size) || l.region_size < format::min_region_size ||
        region_count(l.size_bytes, l.region_size) > format::bitmap_max_bytes * 8)
        return corrupt(why,
                       fmt::format("label region size {} does not fit the bitmap", l.region_size));
    if (w.member_count == 0 || w.member_count > format::max_members)
        return corrupt(why, fmt::format("label member count {} is not 1..{}", w.member_count,
                                        format::max_members));
    for (uint32_t i = 0; i < w.member_count; ++i) {
        const format::member& m = w.members[i];
        member_info mi;
        mi.id = read_uuid(m.uuid);
        if (pool::is_nil(mi.id)) return corrupt(why, fmt::format("member {} has a nil UUID", i));
        if (m.state != uint8_t(format::member_state::in_sync) &&
            m.state != uint8_t(format::member_state::stale))
            return corrupt(why, fmt::format("member {} has unknown state {}", i, m.state));
        mi.state = format::member_state(m.state);
        mi.rebuild_from = m.rebuild_from;
        if (mi.rebuild_from > l.size_bytes)
            return corrupt(why, fmt::format("member {} rebuild offset {} is past the size {}", i,
                                            mi.rebuild_from, l.size_bytes));
        if (l.find(mi.id)) return corrupt(why, fmt::format("member {} is listed twice", i));
        l.members.push_back(mi);
    }
    if (l.in_sync_count() == 0) return corrupt(why, "label lists no in-sync member");
    return l;
}

result<label_info> pick_label(std::span<const std::byte> slots, std::string* why, unsigned* which) {
    if (slots.size() < 2 * format::slot_bytes) return corrupt(why, "label area is truncated");
    std::string why0, why1;
    auto a = decode_label(slots.first(format::slot_bytes), &why0);
    auto b = decode_label(slots.subspan(format::slot_bytes, format::slot_bytes), &why1);
    if (a && b) {
        bool second = b->seq > a->seq;
        if (which) *which = second ? 1 : 0;
        return second ? b : a;
    }
    if (a || b) {
        if (which) *which = a ? 0 : 1;
        return a ? a : b;
    }
    if (a.err().code == ENODATA && b.err().code == ENODATA) {
        if (why) *why = "no nexus label";
        return error{ENODATA};
    }
    return corrupt(why, fmt::format("no valid label (slot 0: {}; slot 1: {})", why0, why1));
}

}  // namespace weft::nexus
