// Placement: which pools (on which nodes) hold a volume's replicas, and
// which node holds its nexus. Pure functions of the facts given, so that the
// same facts always give the same answer (tested without any engine).
//
// Replica rules, in order:
//  - one replica per node; a node that is offline, excluded, or whose pool
//    is not online is never chosen;
//  - the volume's selector labels must all match the node's labels;
//  - room: a thick replica needs capacity - committed >= bytes; a thin one
//    needs committed + bytes <= capacity x overcommit (and some free space);
//  - zones (the "zone" label) are spread: a zone already used is taken only
//    when no unused zone has an eligible pool;
//  - then the pool with the most free space first, ties by pool name.
// Not enough eligible pools is an error with a sentence, never a partial
// placement.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace weft::control {

struct node_facts {
    std::string id;
    bool online = false;
    std::map<std::string, std::string> labels;
    unsigned nexuses = 0;  // nexuses it holds now: load, for the nexus choice
};

struct pool_facts {
    std::string name;
    std::string node;
    bool online = false;
    uint64_t capacity = 0;   // bytes
    uint64_t used = 0;       // allocated bytes
    uint64_t committed = 0;  // sum of its volumes' sizes
};

struct placement_request {
    uint64_t bytes = 0;  // per replica
    unsigned replicas = 1;
    bool thin = true;
    std::map<std::string, std::string> selector;
    std::set<std::string> exclude_nodes;  // nodes that already hold a replica
    // Zones already used by the volume's other replicas (a replacement).
    std::set<std::string> used_zones;
    double overcommit = 4.0;  // thin: committed may reach capacity x this
};

struct placement {
    std::vector<std::string> pools;  // one per replica, best first
    std::string error;               // set when no placement exists
    explicit operator bool() const { return error.empty(); }
};

placement place_replicas(const placement_request& r, const std::vector<node_facts>& nodes,
                         const std::vector<pool_facts>& pools);

// The nexus's node: the host's own node when it is online and holds a
// replica, else the online replica node with the fewest nexuses (ties by
// id), else any online node with the fewest nexuses. Empty when no node is
// online.
std::string place_nexus(const std::string& host_node, const std::vector<std::string>& replica_nodes,
                        const std::vector<node_facts>& nodes);

// Switchover: whether a new nexus over the replicas that answer can take
// none of them for in sync wrongly without a majority of the in-sync ones.
// The newest label among them names the in-sync set I; any later commit of
// the old nexus reached a majority of I (no nexus gets a minority's yes from
// the control plane, and every one it makes has the "wait" policy), so that
// commit wrote a label on one of them unless I without them still holds a
// majority. And when the arbiter let the old nexus commit without a
// majority (at generation `arbiter_generation`, 0: never), the newest label
// seen must be at least that new: that commit went to some replicas only.
// "" when safe, else why not.
struct seen_label {
    bool present = false;  // false: no nexus label (never written by a nexus)
    std::string child;     // its own UUID among the members
    uint64_t generation = 0;
    std::vector<std::string> in_sync;  // the members its label lists in sync
};
std::string takeover_risk(const std::vector<seen_label>& reach, uint64_t arbiter_generation = 0);

}  // namespace weft::control
