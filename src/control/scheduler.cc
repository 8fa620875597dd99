#include "control/scheduler.h"

#include <algorithm>

#include <fmt/format.h>

namespace weft::control {

namespace {

bool matches(const std::map<std::string, std::string>& selector,
             const std::map<std::string, std::string>& labels) {
    for (auto& [k, v] : selector) {
        auto it = labels.find(k);
        if (it == labels.end() || it->second != v) return false;
    }
    return true;
}

bool has_room(const placement_request& r, const pool_facts& p) {
    if (r.thin) {
        return p.used < p.capacity &&
               double(p.committed) + double(r.bytes) <= double(p.capacity) * r.overcommit;
    }
    return p.committed <= p.capacity && p.capacity - p.committed >= r.bytes;
}

std::string zone_of(const node_facts& n) {
    auto it = n.labels.find("zone");
    return it == n.labels.end() ? std::string() : it->second;
}

}  // namespace

placement place_replicas(const placement_request& r, const std::vector<node_facts>& nodes,
                         const std::vector<pool_facts>& pools) {
    placement out;
    if (r.replicas == 0) {
        out.error = "a volume needs at least one replica";
        return out;
    }
    std::map<std::string, const node_facts*> by_id;
    for (auto& n : nodes) by_id[n.id] = &n;
    // Every eligible pool, best first.
    struct cand {
        const pool_facts* pool;
        const node_facts* node;
        uint64_t free;
    };
    std::vector<cand> cands;
    unsigned online_nodes = 0, labelled = 0;
    for (auto& n : nodes)
        if (n.online && !r.exclude_nodes.contains(n.id)) {
            ++online_nodes;
            if (matches(r.selector, n.labels)) ++labelled;
        }
    for (auto& p : pools) {
        auto it = by_id.find(p.node);
        if (it == by_id.end()) continue;
        const node_facts& n = *it->second;
        if (!n.online || !p.online || r.exclude_nodes.contains(n.id)) continue;
        if (!matches(r.selector, n.labels) || !has_room(r, p)) continue;
        cands.push_back({&p, &n, p.capacity > p.used ? p.capacity - p.used : 0});
    }
    std::sort(cands.begin(), cands.end(), [](const cand& a, const cand& b) {
        if (a.free != b.free) return a.free > b.free;
        return a.pool->name < b.pool->name;
    });
    std::set<std::string> nodes_taken;
    std::set<std::string> zones = r.used_zones;
    while (out.pools.size() < r.replicas) {
        const cand* pick = nullptr;
        for (auto& c : cands) {
            if (nodes_taken.contains(c.node->id)) continue;
            std::string z = zone_of(*c.node);
            bool fresh_zone = z.empty() || !zones.contains(z);
            if (fresh_zone) {
                pick = &c;
                break;
            }
            if (!pick) pick = &c;  // a used zone: only if no fresh one comes
        }
        if (!pick) break;
        nodes_taken.insert(pick->node->id);
        if (auto z = zone_of(*pick->node); !z.empty()) zones.insert(z);
        out.pools.push_back(pick->pool->name);
    }
    if (out.pools.size() < r.replicas) {
        size_t n = out.pools.size();
        out.pools.clear();
        std::string sel;
        for (auto& [k, v] : r.selector) sel += fmt::format("{}{}={}", sel.empty() ? "" : ",", k, v);
        out.error = fmt::format(
            "not enough room: {} replicas need {} nodes with a pool that has room for {} bytes "
            "({}); {} found ({} online nodes{}{})",
            r.replicas, r.replicas, r.bytes, r.thin ? "thin" : "thick", n, online_nodes,
            sel.empty() ? "" : fmt::format(", {} match {}", labelled, sel),
            r.exclude_nodes.empty()
                ? ""
                : fmt::format(", {} already hold a replica", r.exclude_nodes.size()));
    }
    return out;
}

std::string place_nexus(const std::string& host_node, const std::vector<std::string>& replica_nodes,
                        const std::vector<node_facts>& nodes) {
    auto online = [&](const std::string& id) {
        for (auto& n : nodes)
            if (n.id == id) return n.online;
        return false;
    };
    if (!host_node.empty() && online(host_node) &&
        std::find(replica_nodes.begin(), replica_nodes.end(), host_node) != replica_nodes.end())
        return host_node;
    const node_facts* best = nullptr;
    auto better = [&](const node_facts& n) {
        return !best || n.nexuses < best->nexuses ||
               (n.nexuses == best->nexuses && n.id < best->id);
    };
    for (auto& n : nodes)
        if (n.online &&
            std::find(replica_nodes.begin(), replica_nodes.end(), n.id) != replica_nodes.end() &&
            better(n))
            best = &n;
    if (best) return best->id;
    for (auto& n : nodes)
        if (n.online && better(n)) best = &n;
    return best ? best->id : std::string();
}

std::string takeover_risk(const std::vector<seen_label>& reach, uint64_t arbiter_generation) {
    const seen_label* newest = nullptr;
    for (auto& l : reach)
        if (l.present && (!newest || l.generation > newest->generation)) newest = &l;
    if (arbiter_generation && (!newest || newest->generation < arbiter_generation))
        return fmt::format(
            "the arbiter let the old nexus go on without a majority at generation "
            "{}, and no replica that answers has a label that new",
            arbiter_generation);
    if (!newest) return {};  // no nexus ever wrote them: alike
    size_t reached = 0;
    for (auto& m : newest->in_sync)
        for (auto& l : reach)
            if (l.present && l.child == m && l.generation == newest->generation) ++reached;
    const size_t in_sync = newest->in_sync.size();
    const size_t majority = in_sync / 2 + 1;
    if (reached > 0 && in_sync - reached < majority) return {};
    return fmt::format(
        "only {} of the {} replicas in sync at generation {} answer, and the "
        "others could have gone on without them",
        reached, in_sync, newest->generation);
}

}  // namespace weft::control
