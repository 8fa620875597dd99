// Fuzzes the pool's on-disk parsers: the superblock and a metadata area, as
// pool::open reads them from a device it cannot trust.
//
// Input: 512 bytes of superblock, then a metadata area. The area is decoded
// twice: against the input's superblock when that decodes, and against a
// fixed small geometry (so the metadata decoder is reached even when the
// superblock bytes are garbage). Beyond "no crash, no sanitizer report", a
// decoded area must re-encode and decode to the same volumes and maps.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "pool/codec.h"

using namespace weft::pool;

namespace {

#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                                 \
        }                                                                                 \
    } while (0)

void round_trip(const pool_meta& m, const geometry& g) {
    std::vector<std::byte> area(g.md_area_bytes);
    auto n = encode_metadata(m, g, area);
    if (!n) return;  // more than fits: a valid answer
    auto d = decode_metadata(area, g);
    FUZZ_CHECK(d);
    FUZZ_CHECK(d->seq == m.seq);
    FUZZ_CHECK(d->volumes.size() == m.volumes.size());
    for (size_t i = 0; i < m.volumes.size(); ++i) {
        FUZZ_CHECK(d->volumes[i].id == m.volumes[i].id);
        FUZZ_CHECK(d->volumes[i].name == m.volumes[i].name);
        FUZZ_CHECK(d->volumes[i].map == m.volumes[i].map);
        FUZZ_CHECK(d->volumes[i].size_bytes == m.volumes[i].size_bytes);
    }
}

void try_area(std::span<const std::byte> area, geometry g) {
    std::string why;
    auto m = decode_metadata(area, g, &why);
    if (!m) {
        FUZZ_CHECK(!why.empty());
        return;
    }
    for (auto& v : m->volumes) {
        FUZZ_CHECK(v.map.size() == clusters_for(v.size_bytes, g.cluster_size));
        for (uint32_t p : v.map) FUZZ_CHECK(p == unmapped || p < g.cluster_count);
    }
    // Keep the re-encode cheap: the area size is what matters, not the device.
    g.md_area_bytes = std::max<uint64_t>(g.md_area_bytes, 1 << 16);
    if (g.md_area_bytes <= (1 << 20)) round_trip(*m, g);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto in = std::as_bytes(std::span(data, size));
    if (in.size() < 512) {
        (void)decode_superblock(in);
        return 0;
    }
    auto sb = in.first(512);
    auto area = in.subspan(512);
    std::string why;
    auto g = decode_superblock(sb, &why);
    if (g) {
        FUZZ_CHECK(g->cluster_count > 0 && g->cluster_size >= 4096);
        // Bound the maps a hostile superblock can make us build.
        if (g->cluster_count <= (1u << 16)) try_area(area, *g);
    } else {
        FUZZ_CHECK(!why.empty());
    }
    geometry fixed;
    fixed.pool_id = {};
    fixed.name = "fuzz";
    fixed.block_size = 512;
    fixed.cluster_size = 1 << 16;
    fixed.md_area_bytes = 1 << 16;
    fixed.data_offset = 1 << 20;
    fixed.cluster_count = 1024;
    // The fixed geometry's UUID is the area's own, so checksums decide.
    if (area.size() >= 32) std::memcpy(fixed.pool_id.data(), area.data() + 16, 16);
    try_area(area, fixed);
    return 0;
}
