// Placement (control/scheduler.h): deterministic answers from facts.
#include "control/scheduler.h"

#include <gtest/gtest.h>

namespace weft::control {
namespace {

constexpr uint64_t GiB = 1ull << 30;

node_facts node(std::string id, std::string zone = "", bool online = true) {
    node_facts n{std::move(id), online, {}, 0};
    if (!zone.empty()) n.labels["zone"] = zone;
    return n;
}

pool_facts pool(std::string name, std::string node, uint64_t cap, uint64_t used = 0,
                uint64_t committed = 0) {
    return pool_facts{std::move(name), std::move(node), true, cap, used, committed};
}

placement_request req(uint64_t bytes, unsigned replicas, bool thin = true) {
    placement_request r;
    r.bytes = bytes;
    r.replicas = replicas;
    r.thin = thin;
    return r;
}

TEST(Scheduler, DistinctNodesMostFreeFirst) {
    std::vector<node_facts> nodes = {node("n1"), node("n2"), node("n3")};
    std::vector<pool_facts> pools = {
        pool("p1", "n1", 100 * GiB, 50 * GiB), pool("p1b", "n1", 100 * GiB, 0),
        pool("p2", "n2", 100 * GiB, 10 * GiB), pool("p3", "n3", 100 * GiB, 90 * GiB)};
    auto p = place_replicas(req(GiB, 3), nodes, pools);
    ASSERT_TRUE(p) << p.error;
    EXPECT_EQ(p.pools, (std::vector<std::string>{"p1b", "p2", "p3"}));
    // The same facts, the same answer.
    EXPECT_EQ(place_replicas(req(GiB, 3), nodes, pools).pools, p.pools);
}

TEST(Scheduler, NotEnoughNodesIsAnErrorNotAPartialPlacement) {
    std::vector<node_facts> nodes = {node("n1"), node("n2"), node("n3", "", false)};
    std::vector<pool_facts> pools = {pool("p1", "n1", 100 * GiB), pool("p2", "n2", 100 * GiB),
                                     pool("p3", "n3", 100 * GiB)};
    auto p = place_replicas(req(GiB, 3), nodes, pools);
    EXPECT_FALSE(p);
    EXPECT_TRUE(p.pools.empty());
    EXPECT_NE(p.error.find("3 replicas need 3 nodes"), std::string::npos) << p.error;
    EXPECT_NE(p.error.find("2 found"), std::string::npos) << p.error;
}

TEST(Scheduler, ThickNeedsRealRoomThinMayOvercommit) {
    std::vector<node_facts> nodes = {node("n1")};
    std::vector<pool_facts> pools = {pool("p1", "n1", 10 * GiB, 1 * GiB, 9 * GiB)};
    EXPECT_FALSE(place_replicas(req(2 * GiB, 1, /*thin=*/false), nodes, pools));
    EXPECT_TRUE(place_replicas(req(1 * GiB, 1, false), nodes, pools));
    auto thin = req(20 * GiB, 1, true);
    thin.overcommit = 4.0;
    EXPECT_TRUE(place_replicas(thin, nodes, pools));
    thin.bytes = 32 * GiB;  // 9 + 32 > 40
    EXPECT_FALSE(place_replicas(thin, nodes, pools));
    // A full pool takes no thin volume either.
    pools[0].used = pools[0].capacity;
    EXPECT_FALSE(place_replicas(req(GiB, 1, true), nodes, pools));
}

TEST(Scheduler, ZonesAreSpreadBeforeAZoneIsReused) {
    std::vector<node_facts> nodes = {node("a1", "a"), node("a2", "a"), node("b1", "b"),
                                     node("c1", "c")};
    std::vector<pool_facts> pools = {pool("pa1", "a1", 100 * GiB), pool("pa2", "a2", 100 * GiB),
                                     pool("pb1", "b1", 50 * GiB), pool("pc1", "c1", 40 * GiB)};
    auto p = place_replicas(req(GiB, 3), nodes, pools);
    ASSERT_TRUE(p) << p.error;
    EXPECT_EQ(p.pools, (std::vector<std::string>{"pa1", "pb1", "pc1"}));
    // Four replicas over three zones: one zone is used twice.
    p = place_replicas(req(GiB, 4), nodes, pools);
    ASSERT_TRUE(p) << p.error;
    EXPECT_EQ(p.pools.size(), 4u);
    // A replacement avoids the zones the volume already uses.
    auto r = req(GiB, 1);
    r.exclude_nodes = {"a1", "b1"};
    r.used_zones = {"a", "b"};
    EXPECT_EQ(place_replicas(r, nodes, pools).pools, (std::vector<std::string>{"pc1"}));
}

TEST(Scheduler, SelectorLabelsMustMatch) {
    std::vector<node_facts> nodes = {node("n1"), node("n2"), node("n3")};
    nodes[0].labels["disk"] = "ssd";
    nodes[2].labels["disk"] = "ssd";
    std::vector<pool_facts> pools = {pool("p1", "n1", 10 * GiB), pool("p2", "n2", 100 * GiB),
                                     pool("p3", "n3", 20 * GiB)};
    auto r = req(GiB, 2);
    r.selector = {{"disk", "ssd"}};
    auto p = place_replicas(r, nodes, pools);
    ASSERT_TRUE(p) << p.error;
    EXPECT_EQ(p.pools, (std::vector<std::string>{"p3", "p1"}));
    r.replicas = 3;
    p = place_replicas(r, nodes, pools);
    EXPECT_FALSE(p);
    EXPECT_NE(p.error.find("2 match disk=ssd"), std::string::npos) << p.error;
}

TEST(Scheduler, NexusGoesToTheHostsNodeWhenItHoldsAReplica) {
    std::vector<node_facts> nodes = {node("n1"), node("n2"), node("n3"), node("n4")};
    nodes[0].nexuses = 5;
    nodes[1].nexuses = 2;
    nodes[2].nexuses = 1;
    std::vector<std::string> replicas = {"n1", "n2", "n3"};
    EXPECT_EQ(place_nexus("n1", replicas, nodes), "n1");
    // A host without a replica: the least loaded replica node.
    EXPECT_EQ(place_nexus("n4", replicas, nodes), "n3");
    EXPECT_EQ(place_nexus("", replicas, nodes), "n3");
    nodes[2].online = false;
    EXPECT_EQ(place_nexus("", replicas, nodes), "n2");
    // No replica node online: any online node.
    for (auto& n : nodes)
        if (n.id != "n4") n.online = false;
    EXPECT_EQ(place_nexus("", replicas, nodes), "n4");
    nodes[3].online = false;
    EXPECT_EQ(place_nexus("", replicas, nodes), "");
}

// ---- switchover: which replicas a new nexus may go on with ----------------------------

seen_label lab(std::string child, uint64_t gen, std::vector<std::string> in_sync) {
    return seen_label{true, std::move(child), gen, std::move(in_sync)};
}

TEST(Takeover, TwoWayOneReplicaThatIsInSyncIsEnough) {
    // The old nexus could retire r2 only with a majority of {r1, r2}: both.
    EXPECT_EQ(takeover_risk({lab("r2", 5, {"r1", "r2"})}), "");
}

TEST(Takeover, ThreeWayOneOfThreeMayHaveMissedARetirement) {
    // {r1, r3} could have retired r2 at generation 6 without telling it.
    std::string why = takeover_risk({lab("r2", 5, {"r1", "r2", "r3"})});
    EXPECT_NE(why.find("only 1 of the 3"), std::string::npos) << why;
    // 2 of 3 answer: any majority of the three includes one of them.
    EXPECT_EQ(takeover_risk({lab("r2", 5, {"r1", "r2", "r3"}), lab("r3", 5, {"r1", "r2", "r3"})}),
              "");
}

TEST(Takeover, TheNewestLabelDecidesAndAStaleReplicaCountsForNothing) {
    // r3 holds the newer label: r2 was retired; r3 alone of {r1, r3} answers.
    EXPECT_EQ(takeover_risk({lab("r2", 5, {"r1", "r2", "r3"}), lab("r3", 6, {"r1", "r3"})}), "");
    // Only the retired one answers, and its label says so: no.
    EXPECT_NE(takeover_risk({lab("r2", 6, {"r1", "r3"})}), "");
    // Listed in sync by the newest label, but its own label is older: it
    // missed that commit, so it does not count.
    EXPECT_NE(takeover_risk({lab("r2", 5, {"r1", "r2"}), lab("r9", 6, {"r1", "r2"})}), "");
}

TEST(Takeover, LargerSetsNeedAllButLessThanAMajority) {
    std::vector<std::string> four{"a", "b", "c", "d"}, five{"a", "b", "c", "d", "e"};
    EXPECT_EQ(takeover_risk({lab("a", 3, four), lab("b", 3, four)}), "") << "2 of 4";
    EXPECT_NE(takeover_risk({lab("a", 3, four)}), "") << "1 of 4";
    EXPECT_NE(takeover_risk({lab("a", 3, five), lab("b", 3, five)}), "") << "2 of 5";
    EXPECT_EQ(takeover_risk({lab("a", 3, five), lab("b", 3, five), lab("c", 3, five)}), "");
}

TEST(Takeover, AfterTheArbitersYesOnlyALabelThatNewWillDo) {
    // The old nexus went on at generation 7 with r1 alone (r2 unreachable):
    // r2's label (generation 6) cannot tell, so r2 alone is refused...
    std::string why = takeover_risk({lab("r2", 6, {"r1", "r2"})}, 7);
    EXPECT_NE(why.find("arbiter"), std::string::npos) << why;
    EXPECT_NE(takeover_risk({seen_label{}}, 7), "");
    // ... and a replica that got the commit of the yes (or a later one) will.
    EXPECT_EQ(takeover_risk({lab("r2", 6, {"r1", "r2"}), lab("r1", 7, {"r1"})}, 7), "");
    EXPECT_EQ(takeover_risk({lab("r1", 9, {"r1", "r2"})}, 7), "");
}

TEST(Takeover, NoLabelAnywhereMeansNoNexusEverWrote) {
    EXPECT_EQ(takeover_risk({seen_label{}, seen_label{}}), "");
}

}  // namespace
}  // namespace weft::control
