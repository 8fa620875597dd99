// The nexus label codec: round trips, slot choice, and damage reported as
// EUCLEAN (never a crash, never a label taken for valid).
#include <gtest/gtest.h>

#include <array>
#include <cstring>

#include "nexus/child_device.h"
#include "nexus/child_uri.h"
#include "nexus/label.h"

namespace weft::nexus {
namespace {

label_info sample() {
    label_info l;
    l.seq = 7;
    l.nexus_id = pool::random_uuid();
    l.child_id = pool::random_uuid();
    l.generation = 42;
    l.size_bytes = 1ull << 30;
    l.region_size = region_size_for(l.size_bytes);
    l.block_size = 512;
    l.clean = true;
    l.fence_key = fence_key(42, 0x1234);
    l.members.push_back({l.child_id, format::member_state::in_sync, 0});
    l.members.push_back({pool::random_uuid(), format::member_state::stale, 4096 * 1024});
    return l;
}

using slot = std::array<std::byte, format::slot_bytes>;

TEST(NexusLabel, RoundTrip) {
    label_info l = sample();
    slot s{};
    encode_label(l, s);
    std::string why;
    auto d = decode_label(s, &why);
    ASSERT_TRUE(d) << why;
    EXPECT_EQ(d->seq, l.seq);
    EXPECT_EQ(d->nexus_id, l.nexus_id);
    EXPECT_EQ(d->child_id, l.child_id);
    EXPECT_EQ(d->generation, 42u);
    EXPECT_EQ(d->size_bytes, l.size_bytes);
    EXPECT_EQ(d->region_size, l.region_size);
    EXPECT_TRUE(d->clean);
    EXPECT_EQ(fence_generation(d->fence_key), 42u);
    ASSERT_EQ(d->members.size(), 2u);
    EXPECT_TRUE(d->members[0].in_sync());
    EXPECT_EQ(d->members[1].state, format::member_state::stale);
    EXPECT_EQ(d->members[1].rebuild_from, 4096u * 1024);
    EXPECT_EQ(d->in_sync_count(), 1u);
}

TEST(NexusLabel, BlankIsNoLabel) {
    slot s{};
    std::string why;
    auto d = decode_label(s, &why);
    ASSERT_FALSE(d);
    EXPECT_EQ(d.err().code, ENODATA);
}

TEST(NexusLabel, EveryFlippedByteIsCaught) {
    label_info l = sample();
    slot good{};
    encode_label(l, good);
    // Flipping any byte must never yield a different valid label: the magic
    // turns into "no label", anything else into a checksum failure.
    for (size_t i = 0; i < good.size(); i += 7) {
        slot s = good;
        s[i] ^= std::byte{0x40};
        auto d = decode_label(s);
        ASSERT_FALSE(d) << "byte " << i;
        EXPECT_TRUE(d.err().code == EUCLEAN || (i < 8 && d.err().code == ENODATA)) << i;
    }
}

TEST(NexusLabel, ImpossibleValuesAreRefusedWithAReason) {
    auto bad = [](auto mutate) {
        label_info l = sample();
        mutate(l);
        slot s{};
        encode_label(l, s);
        std::string why;
        auto d = decode_label(s, &why);
        EXPECT_FALSE(d);
        if (!d) {
            EXPECT_EQ(d.err().code, EUCLEAN);
        }
        EXPECT_FALSE(why.empty());
        return why;
    };
    bad([](label_info& l) { l.members.clear(); });
    bad([](label_info& l) { l.members[0].state = format::member_state::stale; });  // none in sync
    bad([](label_info& l) { l.members[1].id = l.members[0].id; });                 // twice
    bad([](label_info& l) { l.members[1].rebuild_from = l.size_bytes + 512; });
    bad([](label_info& l) { l.block_size = 1000; });
    bad([](label_info& l) { l.size_bytes = 1000; });
    bad([](label_info& l) { l.region_size = 4096; });
    bad([](label_info& l) { l.nexus_id = {}; });
    EXPECT_NE(bad([](label_info& l) {
                  l.region_size = format::min_region_size;
                  l.size_bytes = 1ull << 50;
              }).find("region"),
              std::string::npos);
}

TEST(NexusLabel, PickTakesTheNewerValidSlot) {
    label_info a = sample(), b = sample();
    b.nexus_id = a.nexus_id;
    a.seq = 10;
    b.seq = 11;
    b.generation = 43;
    std::array<std::byte, 2 * format::slot_bytes> area{};
    encode_label(a, std::span<std::byte, format::slot_bytes>(area.data(), format::slot_bytes));
    encode_label(b, std::span<std::byte, format::slot_bytes>(area.data() + format::slot_bytes,
                                                             format::slot_bytes));
    unsigned which = 9;
    auto p = pick_label(area, nullptr, &which);
    ASSERT_TRUE(p);
    EXPECT_EQ(which, 1u);
    EXPECT_EQ(p->generation, 43u);
    // A torn write of the newer slot leaves the older one.
    area[format::slot_bytes + 100] ^= std::byte{1};
    p = pick_label(area, nullptr, &which);
    ASSERT_TRUE(p);
    EXPECT_EQ(which, 0u);
    EXPECT_EQ(p->generation, 42u);
    // Both damaged: EUCLEAN, with both reasons.
    area[100] ^= std::byte{1};
    std::string why;
    p = pick_label(area, &why);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.err().code, EUCLEAN);
    EXPECT_NE(why.find("slot 0"), std::string::npos);
    // Neither has a label: ENODATA.
    std::array<std::byte, 2 * format::slot_bytes> blank{};
    p = pick_label(blank);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.err().code, ENODATA);
}

TEST(NexusLabel, RegionSizeKeepsTheBitmapInItsArea) {
    EXPECT_EQ(region_size_for(1ull << 30), format::min_region_size);
    for (uint64_t size : {1ull << 20, 1ull << 40, 1ull << 44, (1ull << 50) + 512}) {
        uint64_t r = region_size_for(size);
        EXPECT_LE(region_count(size, r), format::bitmap_max_bytes * 8) << size;
        EXPECT_LE(bitmap_bytes(size, r), format::bitmap_max_bytes) << size;
        EXPECT_EQ(bitmap_bytes(size, r) % format::bitmap_block, 0u);
    }
}

TEST(ChildUri, ParsesBothKinds) {
    std::string why;
    auto p = parse_child_uri("pool://p0/vol-1", &why);
    ASSERT_TRUE(p) << why;
    EXPECT_EQ(p->k, child_uri::kind::pool);
    EXPECT_EQ(p->pool, "p0");
    EXPECT_EQ(p->volume, "vol-1");
    auto n = parse_child_uri("nvmf://10.0.0.2:4420/nqn.2026-11.io.weft:p0:r1", &why);
    ASSERT_TRUE(n) << why;
    EXPECT_EQ(n->host, "10.0.0.2");
    EXPECT_EQ(n->port, 4420);
    EXPECT_EQ(n->nqn, "nqn.2026-11.io.weft:p0:r1");
    EXPECT_EQ(n->nsid, 1u);
    EXPECT_EQ(to_string(n.value()), "nvmf://10.0.0.2:4420/nqn.2026-11.io.weft:p0:r1");
    auto n2 = parse_child_uri("nvmf://[::1]:4420/nqn.2026-11.io.weft:x/3", &why);
    ASSERT_TRUE(n2) << why;
    EXPECT_EQ(n2->host, "::1");
    EXPECT_EQ(n2->nsid, 3u);
    EXPECT_EQ(to_string(n2.value()), "nvmf://[::1]:4420/nqn.2026-11.io.weft:x/3");
    for (const char* bad :
         {"", "file:///tmp/x", "pool://p0", "pool:///v", "pool://p0/a/b", "nvmf://host/nqn.x",
          "nvmf://h:0/nqn.2026-11.io.weft:x", "nvmf://h:99999/nqn.x.y", "nvmf://h:1/notannqn",
          "nvmf://h:1/nqn.a.b:c/0", "nvmf://:4420/nqn.2026-11.io.weft:x",
          "nvmf://example.com:4420/nqn.2026-11.io.weft:x",
          "nvmf://10.0.0:4420/nqn.2026-11.io.weft:x",
          "nvmf://[10.0.0.1]:4420/nqn.2026-11.io.weft:x",
          "nvmf://10.0.0.2:4420/nqn.2026-11.io.weft:a b"}) {
        auto r = parse_child_uri(bad, &why);
        EXPECT_FALSE(r) << bad;
        if (!r) {
            EXPECT_EQ(r.err().code, EINVAL);
        }
    }
}

}  // namespace
}  // namespace weft::nexus
