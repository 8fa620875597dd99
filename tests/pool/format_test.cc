// The on-disk format: codec round trips, and corruption of the superblock and
// of each metadata area detected (or survived from the mirror) at import.
#include "pool/codec.h"
#include "pool/metadata_store.h"
#include "pool_test_util.h"

namespace weft::pool::test {
namespace {

geometry test_geometry() {
    geometry g;
    g.pool_id = random_uuid();
    g.name = "p";
    g.block_size = 512;
    g.cluster_size = 1 << 16;
    g.device_bytes = 1 << 26;
    g.md_area_bytes = 1 << 16;
    g.data_offset = 1 << 20;
    g.cluster_count = 100;
    return g;
}

TEST(pool_format, superblock_round_trip_and_every_byte_matters) {
    geometry g = test_geometry();
    std::array<std::byte, 512> sb{};
    encode_superblock(g, std::span<std::byte, 512>(sb));
    auto d = decode_superblock(sb);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->pool_id, g.pool_id);
    EXPECT_EQ(d->name, "p");
    EXPECT_EQ(d->cluster_size, g.cluster_size);
    EXPECT_EQ(d->cluster_count, 100u);
    EXPECT_EQ(d->data_offset, g.data_offset);
    for (size_t i = 0; i < sb.size(); ++i) {
        auto bad = sb;
        bad[i] ^= std::byte{1};
        std::string why;
        auto r = decode_superblock(bad, &why);
        ASSERT_FALSE(r) << "byte " << i;
        EXPECT_EQ(r.err().code, i < 8 ? ENODATA : EUCLEAN) << i;
        EXPECT_FALSE(why.empty());
    }
    std::array<std::byte, 512> zero{};
    EXPECT_EQ(decode_superblock(zero).err().code, ENODATA);
}

TEST(pool_format, metadata_round_trip_and_bounds) {
    geometry g = test_geometry();
    pool_meta m;
    m.seq = 42;
    volume_meta a;
    a.id = random_uuid();
    a.name = "a";
    a.size_bytes = 5 * g.cluster_size - 512;
    a.flags = format::vol_thin;
    a.map = {7, 8, unmapped, 3, 4};
    volume_meta s = a;
    s.id = random_uuid();
    s.parent = a.id;
    s.name = "a-snap";
    s.flags = format::vol_snapshot | format::vol_read_only | format::vol_thin;
    m.volumes = {a, s};
    std::vector<std::byte> area(g.md_area_bytes);
    auto n = encode_metadata(m, g, area);
    ASSERT_TRUE(n);
    EXPECT_EQ(n.value() % format::io_unit, 0u);
    auto d = decode_metadata(area, g);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->seq, 42u);
    ASSERT_EQ(d->volumes.size(), 2u);
    EXPECT_EQ(d->volumes[0].map, a.map);
    EXPECT_EQ(d->volumes[1].parent, a.id);
    EXPECT_EQ(d->volumes[1].name, "a-snap");
    EXPECT_EQ(d->volumes[0].size_bytes, a.size_bytes);
    // Any flipped byte of header or payload is caught.
    uint64_t used = encoded_metadata_bytes(std::vector<const volume_meta*>{&a, &s});
    for (size_t i = 0; i < used; ++i) {
        auto bad = area;
        bad[i] ^= std::byte{0x10};
        std::string why;
        EXPECT_EQ(decode_metadata(bad, g, &why).err().code, EUCLEAN) << i;
        EXPECT_FALSE(why.empty());
    }
    // An area of another pool is refused even with good checksums.
    geometry other = g;
    other.pool_id = random_uuid();
    std::string why;
    EXPECT_FALSE(decode_metadata(area, other, &why));
    EXPECT_NE(why.find("another pool"), std::string::npos) << why;
    // A mapping beyond the pool does not decode.
    volume_meta big = a;
    big.map = {99, 100, unmapped, unmapped, unmapped};
    pool_meta m2;
    m2.volumes = {big};
    ASSERT_TRUE(encode_metadata(m2, g, area));
    EXPECT_EQ(decode_metadata(area, g, &why).err().code, EUCLEAN);
    EXPECT_NE(why.find("out of bounds"), std::string::npos) << why;
    // Too much for the area: ENOSPC, not a truncated commit.
    pool_meta huge;
    volume_meta frag = a;
    frag.size_bytes = 20000 * g.cluster_size;
    frag.map.assign(20000, unmapped);
    for (size_t i = 0; i < 20000; i += 2) frag.map[i] = uint32_t(i % 100);
    huge.volumes = {frag};
    EXPECT_EQ(encode_metadata(huge, g, area).err().code, ENOSPC);
}

TEST(pool_format, create_open_round_trip) {
    auto dev = make_dev();
    run_reactors(1, [&]() -> task<void> {
        uuid v1, v2;
        {
            auto p = co_await pool::create(dev, "pool0", small_opts());
            CO_ASSERT_TRUE(p);
            auto a = co_await p.value()->create_volume("thin", 1 << 20, true);
            auto b = co_await p.value()->create_volume("thick", 512 << 10, false);
            CO_ASSERT_TRUE(a && b);
            v1 = a.value();
            v2 = b.value();
            auto vol = p.value()->open_volume(v1).value();
            auto ch = vol->open_channel();
            CO_ASSERT_EQ(co_await put(*ch, 512, 69632, 8192, 5), 0);
        }
        std::string why;
        auto p = co_await pool::open(dev, &why);
        CO_ASSERT_TRUE(p);
        EXPECT_TRUE(why.empty()) << why;
        EXPECT_EQ(p.value()->geo().name, "pool0");
        auto l = co_await p.value()->list();
        CO_ASSERT_EQ(l.size(), 2u);
        EXPECT_EQ(l[0].id, v1);
        EXPECT_EQ(l[0].name, "thin");
        EXPECT_TRUE(l[0].thin);
        EXPECT_EQ(l[0].size_bytes, 1u << 20);
        EXPECT_EQ(l[0].allocated_bytes, small_cluster);
        EXPECT_EQ(l[1].id, v2);
        EXPECT_FALSE(l[1].thin);
        EXPECT_EQ(l[1].allocated_bytes, 512u << 10);
        auto st = co_await p.value()->stats();
        EXPECT_EQ(st.used_clusters, 9u);
        auto vol = p.value()->open_volume(v1).value();
        auto ch = vol->open_channel();
        EXPECT_EQ(co_await check(*ch, 512, 69632, 8192, 5), 0);
        EXPECT_EQ(co_await check(*ch, 512, 65536, 4096, 0), 0);  // the rest reads zeroes
        EXPECT_EQ(co_await check(*ch, 512, 77824, 131072 - 77824, 0), 0);
    });
}

TEST(pool_format, create_refuses_an_existing_pool_unless_forced) {
    auto dev = make_dev();
    run_reactors(1, [&]() -> task<void> {
        auto p = co_await pool::create(dev, "pool0", small_opts());
        CO_ASSERT_TRUE(p);
        std::string why;
        auto again = co_await pool::create(dev, "pool1", small_opts(), &why);
        CO_ASSERT_TRUE(!again);
        EXPECT_EQ(again.err().code, EEXIST);
        EXPECT_NE(why.find("pool0"), std::string::npos) << why;
        auto opts = small_opts();
        opts.force = true;
        auto forced = co_await pool::create(dev, "pool1", opts);
        CO_ASSERT_TRUE(forced);
        auto o = co_await pool::open(dev);
        CO_ASSERT_TRUE(o);
        EXPECT_EQ(o.value()->geo().name, "pool1");
        // A blank device holds no pool.
        auto blank = make_dev();
        auto none = co_await pool::open(blank, &why);
        EXPECT_EQ(none.err().code, ENODATA);
    });
}

// Flips a byte in the superblock, area 0, area 1, or both, then imports.
TEST(pool_format, corruption_is_reported_or_survived_from_the_mirror) {
    struct tc {
        std::vector<uint64_t> offsets;  // relative to the device
        int want;                       // 0: opens (repaired), else the errno
        const char* says;
    };
    const uint64_t a0 = format::md_offset, a1 = format::md_offset + (64 << 10);
    std::vector<tc> cases = {
        {{100}, EUCLEAN, "superblock"},                 // pool name
        {{508}, EUCLEAN, "superblock"},                 // its CRC
        {{a0 + 40}, 0, "area 0"},                       // header field
        {{a1 + 64 + 40}, 0, "area 1"},                  // a volume record
        {{a0 + 20, a1 + 64 + 170}, EUCLEAN, "area 0"},  // both: refused
        {{a0 + 64 + 160, a1 + 61}, EUCLEAN, "area 1"},
    };
    for (auto& c : cases) {
        auto dev = make_dev();
        run_reactors(1, [&]() -> task<void> {
            uuid id;
            {
                auto p = co_await pool::create(dev, "pool0", small_opts());
                CO_ASSERT_TRUE(p);
                id = (co_await p.value()->create_volume("v", 256 << 10, false)).value();
            }
            for (uint64_t off : c.offsets) CO_ASSERT_EQ(co_await flip_byte(*dev, off), 0);
            std::string why;
            auto p = co_await pool::open(dev, &why);
            EXPECT_NE(why.find(c.says), std::string::npos) << why;
            if (c.want) {
                CO_ASSERT_TRUE(!p);
                EXPECT_EQ(p.err().code, c.want);
                // Refused, and not rewritten: the flipped bytes are still there.
                auto again = co_await pool::open(dev);
                EXPECT_EQ(again.err().code, c.want);
                co_return;
            }
            CO_ASSERT_TRUE(p);
            auto l = co_await p.value()->list();
            CO_ASSERT_EQ(l.size(), 1u);
            EXPECT_EQ(l[0].id, id);
            p.value().reset();
            // The repair rewrote both areas: a second import is clean.
            why.clear();
            auto q = co_await pool::open(dev, &why);
            CO_ASSERT_TRUE(q);
            EXPECT_TRUE(why.empty()) << why;
        });
    }
}

}  // namespace
}  // namespace weft::pool::test
