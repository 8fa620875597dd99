// The nexus label and bitmap decoders on arbitrary bytes (what a nexus reads
// from a child's first MiB): pick_label must refuse or accept without a
// crash, and an accepted label must survive encode -> decode unchanged. The
// bitmap merge takes any bytes. Child URIs (API input) are parsed too.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "nexus/bitmap.h"
#include "nexus/child_uri.h"
#include "nexus/label.h"

using namespace weft::nexus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<std::byte> area(2 * format::slot_bytes);
    std::memcpy(area.data(), data, std::min(size, area.size()));
    std::string why;
    auto l = pick_label(area, &why);
    if (l) {
        std::vector<std::byte> slot(format::slot_bytes);
        encode_label(l.value(),
                     std::span<std::byte, format::slot_bytes>(slot.data(), format::slot_bytes));
        auto again = decode_label(slot, &why);
        if (!again) __builtin_trap();
        if (again->generation != l->generation || again->members.size() != l->members.size() ||
            again->nexus_id != l->nexus_id || again->size_bytes != l->size_bytes ||
            again->region_size != l->region_size || again->clean != l->clean)
            __builtin_trap();
        for (size_t i = 0; i < l->members.size(); ++i)
            if (again->members[i].id != l->members[i].id ||
                again->members[i].state != l->members[i].state ||
                again->members[i].rebuild_from != l->members[i].rebuild_from)
                __builtin_trap();
        // The bitmap that follows, whatever its bytes.
        uint64_t regions = region_count(l->size_bytes, l->region_size);
        region_bitmap bits(regions);
        if (size > area.size())
            bits.merge_bytes(std::span<const std::byte>(
                reinterpret_cast<const std::byte*>(data) + area.size(), size - area.size()));
        if (bits.count() > regions) __builtin_trap();
    } else if (l.err().code != ENODATA && l.err().code != EUCLEAN) {
        __builtin_trap();
    }
    std::string uri(reinterpret_cast<const char*>(data), std::min<size_t>(size, 300));
    auto u = parse_child_uri(uri, &why);
    if (u) {
        auto back = parse_child_uri(to_string(u.value()), &why);
        if (!back || to_string(back.value()) != to_string(u.value())) __builtin_trap();
    }
    return 0;
}
