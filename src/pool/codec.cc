#include "pool/codec.h"

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "nvmf/tcp/crc32c.h"

namespace weft::pool {
namespace {

using format::extent;
using format::md_header;
using format::superblock;
using format::volume_record;

error corrupt(std::string* why, std::string msg) {
    if (why) *why = std::move(msg);
    return error{EUCLEAN};
}

bool is_pow2(uint64_t v) {
    return v && (v & (v - 1)) == 0;
}

// A NUL-padded name field: non-empty, terminated, printable.
bool read_name(const char (&field)[format::name_bytes], std::string& out) {
    size_t n = 0;
    while (n < format::name_bytes && field[n]) ++n;
    if (n == 0 || n == format::name_bytes) return false;
    for (size_t i = n; i < format::name_bytes; ++i)
        if (field[i]) return false;
    out.assign(field, n);
    return true;
}

void write_name(char (&field)[format::name_bytes], const std::string& s) {
    std::memset(field, 0, sizeof field);
    std::memcpy(field, s.data(), std::min(s.size(), format::name_bytes - 1));
}

struct uuid_hash {
    size_t operator()(const uuid& u) const {
        uint64_t a;
        std::memcpy(&a, u.data(), 8);
        return size_t(a);
    }
};

}  // namespace

uint32_t crc32c(std::span<const std::byte> data, uint32_t crc) {
    return nvmf::tcp::crc32c(data, crc);
}

void encode_superblock(const geometry& g, std::span<std::byte, sizeof(superblock)> out) {
    superblock sb{};
    std::memcpy(sb.magic, format::superblock_magic, 8);
    sb.version = format::version;
    sb.sb_bytes = sizeof(superblock);
    std::memcpy(sb.pool_uuid, g.pool_id.data(), 16);
    write_name(sb.name, g.name);
    sb.block_size = g.block_size;
    sb.cluster_size = g.cluster_size;
    sb.device_bytes = g.device_bytes;
    sb.md_offset = format::md_offset;
    sb.md_area_bytes = g.md_area_bytes;
    sb.data_offset = g.data_offset;
    sb.cluster_count = g.cluster_count;
    sb.crc = 0;
    sb.crc = crc32c(std::as_bytes(std::span(&sb, 1)));
    std::memcpy(out.data(), &sb, sizeof sb);
}

result<geometry> decode_superblock(std::span<const std::byte> in, std::string* why) {
    superblock sb;
    if (in.size() < sizeof sb) return corrupt(why, "superblock: truncated");
    std::memcpy(&sb, in.data(), sizeof sb);
    if (std::memcmp(sb.magic, format::superblock_magic, 8) != 0) {
        if (why) *why = "no pool superblock (magic WEFTPOOL not found at offset 0)";
        return error{ENODATA};
    }
    uint32_t want = sb.crc;
    sb.crc = 0;
    if (crc32c(std::as_bytes(std::span(&sb, 1))) != want)
        return corrupt(why, "superblock: checksum mismatch (CRC32C at offset 508)");
    if (sb.version != format::version)
        return corrupt(why, "superblock: unsupported format version " + std::to_string(sb.version));
    if (sb.sb_bytes != sizeof sb) return corrupt(why, "superblock: bad sb_bytes");
    geometry g;
    std::memcpy(g.pool_id.data(), sb.pool_uuid, 16);
    if (!read_name(sb.name, g.name)) return corrupt(why, "superblock: bad pool name");
    if (!is_pow2(sb.block_size) || sb.block_size < 512 || sb.block_size > format::max_block_size)
        return corrupt(why, "superblock: bad block_size");
    if (!is_pow2(sb.cluster_size) || sb.cluster_size < format::min_cluster_size ||
        sb.cluster_size > format::max_cluster_size || sb.cluster_size < sb.block_size)
        return corrupt(why, "superblock: bad cluster_size");
    if (sb.md_offset != format::md_offset) return corrupt(why, "superblock: bad md_offset");
    if (sb.md_area_bytes % format::io_unit || sb.md_area_bytes < format::min_md_area_bytes ||
        sb.md_area_bytes > format::max_md_area_bytes)
        return corrupt(why, "superblock: bad md_area_bytes");
    if (sb.data_offset < sb.md_offset + 2 * sb.md_area_bytes || sb.data_offset % sb.block_size)
        return corrupt(why, "superblock: data_offset overlaps the metadata areas");
    if (sb.cluster_count == 0 || sb.cluster_count > format::max_cluster_count ||
        sb.cluster_count > (UINT64_MAX - sb.data_offset) / sb.cluster_size)
        return corrupt(why, "superblock: bad cluster_count");
    g.block_size = sb.block_size;
    g.cluster_size = sb.cluster_size;
    g.device_bytes = sb.device_bytes;
    g.md_area_bytes = sb.md_area_bytes;
    g.data_offset = sb.data_offset;
    g.cluster_count = sb.cluster_count;
    return g;
}

uint64_t encoded_metadata_bytes(std::span<const volume_meta* const> vols) {
    uint64_t n = sizeof(md_header) + vols.size() * sizeof(volume_record);
    for (const volume_meta* vp : vols) {
        const volume_meta& v = *vp;
        for (size_t l = 0; l < v.map.size();) {
            if (v.map[l] == unmapped) {
                ++l;
                continue;
            }
            size_t e = l + 1;
            while (e < v.map.size() && v.map[e] != unmapped && v.map[e] == v.map[e - 1] + 1) ++e;
            n += sizeof(extent);
            l = e;
        }
    }
    return n;
}

result<uint64_t> encode_metadata(const pool_meta& m, const geometry& g, std::span<std::byte> area) {
    std::vector<const volume_meta*> vols;
    for (const auto& v : m.volumes) vols.push_back(&v);
    return encode_metadata(m.seq, vols, g, area);
}

result<uint64_t> encode_metadata(uint64_t seq, std::span<const volume_meta* const> vols,
                                 const geometry& g, std::span<std::byte> area) {
    uint64_t used = encoded_metadata_bytes(vols);
    uint64_t padded = (used + format::io_unit - 1) / format::io_unit * format::io_unit;
    if (padded > g.md_area_bytes || padded > area.size()) return error{ENOSPC};
    std::byte* p = area.data() + sizeof(md_header);
    std::byte* ext = p + vols.size() * sizeof(volume_record);
    for (const volume_meta* vp : vols) {
        const volume_meta& v = *vp;
        volume_record r{};
        std::memcpy(r.uuid, v.id.data(), 16);
        std::memcpy(r.parent, v.parent.data(), 16);
        write_name(r.name, v.name);
        r.size_bytes = v.size_bytes;
        r.flags = v.flags;
        r.created_seq = v.created_seq;
        for (size_t l = 0; l < v.map.size();) {
            if (v.map[l] == unmapped) {
                ++l;
                continue;
            }
            size_t e = l + 1;
            while (e < v.map.size() && v.map[e] != unmapped && v.map[e] == v.map[e - 1] + 1) ++e;
            extent x{uint32_t(l), v.map[l], uint32_t(e - l)};
            std::memcpy(ext, &x, sizeof x);
            ext += sizeof x;
            ++r.extent_count;
            l = e;
        }
        std::memcpy(p, &r, sizeof r);
        p += sizeof r;
    }
    std::memset(area.data() + used, 0, padded - used);
    md_header h{};
    std::memcpy(h.magic, format::metadata_magic, 8);
    h.version = format::version;
    h.header_bytes = sizeof h;
    std::memcpy(h.pool_uuid, g.pool_id.data(), 16);
    h.seq = seq;
    h.payload_bytes = used - sizeof h;
    h.volume_count = uint32_t(vols.size());
    h.payload_crc = crc32c(area.subspan(sizeof h, h.payload_bytes));
    h.header_crc = 0;
    h.header_crc = crc32c(std::as_bytes(std::span(&h, 1)));
    std::memcpy(area.data(), &h, sizeof h);
    return padded;
}

result<pool_meta> decode_metadata(std::span<const std::byte> area, const geometry& g,
                                  std::string* why) {
    md_header h;
    if (area.size() < sizeof h) return corrupt(why, "truncated header");
    std::memcpy(&h, area.data(), sizeof h);
    if (std::memcmp(h.magic, format::metadata_magic, 8) != 0)
        return corrupt(why, "bad magic (not WEFTMETA)");
    uint32_t want = h.header_crc;
    h.header_crc = 0;
    if (crc32c(std::as_bytes(std::span(&h, 1))) != want)
        return corrupt(why, "header checksum mismatch");
    if (h.version != format::version || h.header_bytes != sizeof h)
        return corrupt(why, "unsupported version or header size");
    if (std::memcmp(h.pool_uuid, g.pool_id.data(), 16) != 0)
        return corrupt(why, "belongs to another pool (UUID differs from the superblock's)");
    uint64_t room = std::min<uint64_t>(area.size(), g.md_area_bytes) - sizeof h;
    if (h.payload_bytes > room) return corrupt(why, "payload_bytes beyond the area");
    auto payload = area.subspan(sizeof h, h.payload_bytes);
    if (crc32c(payload) != h.payload_crc) return corrupt(why, "payload checksum mismatch");
    if (uint64_t(h.volume_count) * sizeof(volume_record) > h.payload_bytes)
        return corrupt(why, "volume_count beyond the payload");

    pool_meta m;
    m.seq = h.seq;
    m.volumes.resize(h.volume_count);
    std::unordered_set<uuid, uuid_hash> ids;
    const std::byte* ext = payload.data() + uint64_t(h.volume_count) * sizeof(volume_record);
    uint64_t ext_left = (h.payload_bytes - uint64_t(h.volume_count) * sizeof(volume_record));
    if (ext_left % sizeof(extent)) return corrupt(why, "payload size is not whole extents");
    ext_left /= sizeof(extent);
    // Maps are bounded by what the extents can reference: a huge size_bytes
    // must not make us allocate a huge map before the extents are checked.
    const uint64_t max_logical =
        std::min<uint64_t>(UINT32_MAX, g.cluster_count * format::max_overcommit);
    for (uint32_t i = 0; i < h.volume_count; ++i) {
        volume_record r;
        std::memcpy(&r, payload.data() + uint64_t(i) * sizeof r, sizeof r);
        volume_meta& v = m.volumes[i];
        std::string at = "volume " + std::to_string(i);
        std::memcpy(v.id.data(), r.uuid, 16);
        std::memcpy(v.parent.data(), r.parent, 16);
        if (is_nil(v.id) || !ids.insert(v.id).second)
            return corrupt(why, at + ": nil or duplicate UUID");
        if (!read_name(r.name, v.name)) return corrupt(why, at + ": bad name");
        if (r.size_bytes == 0 || r.size_bytes % g.block_size)
            return corrupt(why, at + ": bad size_bytes");
        if (r.flags & ~uint32_t(format::vol_known_flags))
            return corrupt(why, at + ": unknown flags");
        if ((r.flags & format::vol_snapshot) && !(r.flags & format::vol_read_only))
            return corrupt(why, at + ": writable snapshot");
        uint64_t logical = clusters_for(r.size_bytes, g.cluster_size);
        if (logical > max_logical) return corrupt(why, at + ": size beyond the over-commit bound");
        if (r.extent_count > ext_left) return corrupt(why, at + ": extents beyond the payload");
        v.size_bytes = r.size_bytes;
        v.flags = r.flags;
        v.created_seq = r.created_seq;
        // Check every extent before allocating a map for the size.
        uint64_t next = 0;
        for (uint32_t k = 0; k < r.extent_count; ++k) {
            extent x;
            std::memcpy(&x, ext + uint64_t(k) * sizeof x, sizeof x);
            if (x.count == 0 || x.logical < next || uint64_t(x.logical) + x.count > logical ||
                uint64_t(x.physical) + x.count > g.cluster_count)
                return corrupt(why, at + ": extent " + std::to_string(k) + " out of bounds");
            next = uint64_t(x.logical) + x.count;
        }
        // logical <= 2^32 and the extents fit; the map may still be large for
        // a sparse huge thin volume: that is a legitimate volume.
        v.map.assign(logical, unmapped);
        for (uint32_t k = 0; k < r.extent_count; ++k) {
            extent x;
            std::memcpy(&x, ext + uint64_t(k) * sizeof x, sizeof x);
            for (uint32_t j = 0; j < x.count; ++j) v.map[x.logical + j] = x.physical + j;
        }
        ext += uint64_t(r.extent_count) * sizeof(extent);
        ext_left -= r.extent_count;
    }
    if (ext_left != 0) return corrupt(why, "extents left over after the last volume");
    return m;
}

}  // namespace weft::pool
