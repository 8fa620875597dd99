#include "csi/names.h"

#include <gtest/gtest.h>

namespace weft::csi {
namespace {

TEST(CsiNames, UuidV5MatchesRfc9562) {
    // RFC 9562 Appendix A.4: the DNS name space, "www.example.com".
    auto dns = pool::parse_uuid("6ba7b810-9dad-11d1-80b4-00c04fd430c8");
    ASSERT_TRUE(dns);
    EXPECT_EQ(uuid_v5(*dns, "www.example.com"), "2ed6657d-e927-568b-95e1-2665a8aea6a2");
}

TEST(CsiNames, ANameAlwaysGivesTheSameIdAndKindsStayApart) {
    std::string v = volume_id_of("pvc-1");
    EXPECT_EQ(v, volume_id_of("pvc-1"));
    EXPECT_NE(v, volume_id_of("pvc-2"));
    EXPECT_NE(v, snapshot_id_of("pvc-1"));
    EXPECT_NE(v, clone_snapshot_id_of("pvc-1"));
    EXPECT_TRUE(is_weft_id(v));
    EXPECT_EQ(v[14], '5');  // version 5
    EXPECT_FALSE(is_weft_id("pvc-1"));
    EXPECT_FALSE(is_weft_id(""));
    EXPECT_FALSE(is_weft_id("2ED6657D-E927-568B-95E1-2665A8AEA6A2"));  // weft writes lower case
}

TEST(CsiNames, HostNqnNamesItsNode) {
    std::string nqn = host_nqn_of("worker-1");
    EXPECT_EQ(nqn, "nqn.2026-11.io.weft:node:worker-1");
    EXPECT_EQ(node_of_host_nqn(nqn), "worker-1");
    EXPECT_EQ(node_of_host_nqn("nqn.2014-08.org.nvmexpress:uuid:1234"), std::nullopt);
    EXPECT_EQ(node_of_host_nqn("nqn.2026-11.io.weft:node:"), std::nullopt);
}

TEST(CsiNames, HostIdIsStableAndTakesTheUuidOfAUuidNqn) {
    // The UUID form carries the host ID nvme-cli would use.
    EXPECT_EQ(host_id_of("nqn.2014-08.org.nvmexpress:uuid:4f880b59-9ef5-45d4-9225-2cd8a6a94c3e"),
              "4f880b59-9ef5-45d4-9225-2cd8a6a94c3e");
    std::string a = host_id_of(host_nqn_of("worker-1"));
    EXPECT_EQ(a, host_id_of(host_nqn_of("worker-1")));
    EXPECT_NE(a, host_id_of(host_nqn_of("worker-2")));
    EXPECT_TRUE(is_weft_id(a));
    // A UUID NQN whose UUID does not parse is named like any other NQN.
    EXPECT_TRUE(is_weft_id(host_id_of("nqn.2014-08.org.nvmexpress:uuid:nonsense")));
}

}  // namespace
}  // namespace weft::csi
