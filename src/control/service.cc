#include "control/service.h"

#include <spdlog/spdlog.h>

#include <fmt/format.h>
#include <algorithm>
#include <future>

#include "control/api_error.h"
#include "control/scheduler.h"

namespace weft::control {

namespace {

constexpr uint64_t replica_overhead = 1ull << 20;  // the nexus's metadata area on each child
const char* const replica_nqn_prefix = "nqn.2026-11.io.weft:replica:";

std::string key_node(const std::string& id) {
    return "nodes/" + id;
}
std::string key_host(const std::string& id) {
    return "hosts/" + id;
}
std::string key_pool(const std::string& n) {
    return "pools/" + n;
}
std::string key_volume(const std::string& id) {
    return "volumes/" + id;
}

json parse_doc(const kv& e) {
    return json::parse(e.value);
}

// host:port -> (host, port)
std::pair<std::string, unsigned> split_endpoint(const std::string& ep) {
    auto c = ep.rfind(':');
    return {ep.substr(0, c), unsigned(std::stoul(ep.substr(c + 1)))};
}

std::string key_snapshot(const std::string& id) {
    return "snapshots/" + id;
}

// How long a snapshot may hold a volume's writes (the nexus lets them go by
// itself after this, and the snapshot then fails).
constexpr uint32_t snapshot_pause_ms = 10000;

std::string replica_uri_local(const replica_rec& r) {
    return "pool://" + r.pool + "/" + r.id;
}

// Volume ids are UUIDs in lower case: the engines compare them as numbers,
// the store as strings, so one spelling only.
void check_volume_id(const std::string& id) {
    if (!is_uuid(id))
        throw bad_request(
            fmt::format("\"{}\" is not a volume id (a UUID in lower case, like "
                        "6c1f4a1e-0d2b-4f57-9a53-3f7e2b1c9d01)",
                        id));
}

// What an engine's refusal means to the API's caller: their request was bad
// (400), it clashes with what is there (409), there is no room (507), or the
// engine could not do it now (503: worth retrying).
api_error engine_refusal(const std::string& sentence, grpc::StatusCode code) {
    switch (code) {
        case grpc::StatusCode::INVALID_ARGUMENT:
        case grpc::StatusCode::OUT_OF_RANGE:
            return bad_request(sentence);
        case grpc::StatusCode::ALREADY_EXISTS:
        case grpc::StatusCode::FAILED_PRECONDITION:
        case grpc::StatusCode::NOT_FOUND:
            return conflict(sentence);
        case grpc::StatusCode::RESOURCE_EXHAUSTED:
            return no_room(sentence);
        default:
            return unavailable(sentence);
    }
}

// Runs fn(0..n-1) at the same time (each asks another node) and waits for
// all; returns the first refusal, and in `failed` the indices refused.
std::optional<api_error> all_at_once(size_t n, const std::function<void(size_t)>& fn,
                                     std::vector<size_t>* failed = nullptr) {
    std::vector<std::future<void>> calls;
    for (size_t i = 0; i < n; ++i) calls.push_back(std::async(std::launch::async, fn, i));
    std::optional<api_error> first;
    for (size_t i = 0; i < n; ++i) {
        try {
            calls[i].get();
        } catch (const api_error& e) {
            if (!first) first = e;
            if (failed) failed->push_back(i);
        }
    }
    return first;
}

}  // namespace

struct service::facts {
    service& s;
    int64_t now = now_ms();
    std::map<std::string, node_rec> nodes;
    std::map<std::string, std::optional<pb::ListPoolsReply>> pools;
    std::map<std::string, std::optional<pb::ListNexusesReply>> nexuses;

    explicit facts(service& s) : s(s) {
        for (auto& e : s.st_.list("nodes/")) {
            auto n = node_from_json(parse_doc(e));
            nodes[n.id] = n;
        }
    }
    const node_rec* node(const std::string& id) const {
        auto it = nodes.find(id);
        return it == nodes.end() ? nullptr : &it->second;
    }
    bool online(const std::string& id) const {
        auto n = node(id);
        return n && s.online(*n, now);
    }
    const pb::ListPoolsReply* pools_of(const std::string& id) {
        return cached(pools, id, [](auto& stub, auto* ctx, auto* rep) {
            return stub.ListPools(ctx, {}, rep);
        });
    }
    const pb::ListNexusesReply* nexuses_of(const std::string& id) {
        return cached(nexuses, id, [](auto& stub, auto* ctx, auto* rep) {
            return stub.ListNexuses(ctx, {}, rep);
        });
    }
    // What the scheduler decides from: every node, every declared pool with
    // its engine's figures now (a pool whose node does not answer is not
    // online).
    std::vector<node_facts> node_facts_now() const {
        std::vector<node_facts> out;
        for (auto& [nid, n] : nodes) out.push_back({nid, online(nid), n.node_labels, 0});
        return out;
    }
    std::vector<pool_facts> pool_facts_now() {
        std::vector<pool_facts> out;
        for (auto& e : s.st_.list("pools/")) {
            pool_rec p = pool_from_json(parse_doc(e));
            pool_facts pf{p.name, p.node, false, 0, 0, 0};
            if (auto l = pools_of(p.node))
                for (auto& x : l->pools())
                    if (x.name() == p.name) {
                        pf.online = x.status() == "online";
                        pf.capacity = x.capacity_bytes();
                        pf.used = x.used_bytes();
                        pf.committed = x.committed_bytes();
                    }
            out.push_back(pf);
        }
        return out;
    }
    // One listing per node and operation; null when the node is offline or
    // does not answer (one attempt: a listing must not wait on a dead node).
    template <typename Reply, typename F>
    const Reply* cached(std::map<std::string, std::optional<Reply>>& cache, const std::string& id,
                        F&& rpc) {
        auto it = cache.find(id);
        if (it == cache.end()) {
            std::optional<Reply> r;
            if (online(id)) {
                Reply rep;
                auto st = s.engines_.call(
                    node(id)->api, [&](auto& stub, auto* ctx) { return rpc(stub, ctx, &rep); }, 1);
                if (st.ok())
                    r = std::move(rep);
                else
                    failures[id] = sentence(id, node(id)->api, st);
            }
            it = cache.emplace(id, std::move(r)).first;
        }
        return it->second ? &*it->second : nullptr;
    }
    // Why a listing of node `id` came back null: the engine's answer (a
    // refused token or certificate, a timeout), or that it is offline.
    std::string why_not(const std::string& id) const {
        auto it = failures.find(id);
        return it != failures.end() ? it->second : "node " + id + " is offline or does not answer";
    }
    std::map<std::string, std::string> failures;
    // Replica r no longer shared (it was not, or is gone: fine too).
    void unshare(const replica_rec& r) {
        pb::UnshareVolumeRequest un;
        un.mutable_volume()->set_pool(r.pool);
        un.mutable_volume()->set_name(r.id);
        pb::Empty out;
        call(r.node, "unsharing replica " + r.id,
             [&](auto& stub, auto* ctx) { return stub.UnshareVolume(ctx, un, &out); },
             {grpc::StatusCode::NOT_FOUND, grpc::StatusCode::FAILED_PRECONDITION});
    }
    // Runs one engine call on node `id`; throws 503 with a sentence if the
    // node is unknown, offline, or the call fails (unless `ok` accepts the code).
    template <typename F>
    void call(const std::string& id, const std::string& doing, F&& rpc,
              std::initializer_list<grpc::StatusCode> ok = {}) {
        const node_rec* n = node(id);
        if (!n) throw unavailable(fmt::format("{}: node {} is not registered", doing, id));
        if (!online(id)) throw unavailable(fmt::format("{}: node {} is offline", doing, id));
        auto st = s.engines_.call(n->api, rpc);
        if (st.ok() || std::find(ok.begin(), ok.end(), st.error_code()) != ok.end()) return;
        throw engine_refusal(doing + ": " + sentence(id, n->api, st), st.error_code());
    }
};

service::service(store& st, service_options o)
    : st_(st), opt_(o), engines_(o.engine_deadline, o.engine_access) {}

bool service::online(const node_rec& n, int64_t now) const {
    int64_t since = 0;
    if (!opt_.lead.leads()) {
        leading_since_ = 0;
    } else if (since = leading_since_.load(); since == 0) {
        leading_since_.compare_exchange_strong(since, now);
        since = leading_since_.load();
    }
    // A beat that went to the instance that led before (or to this one
    // before it restarted) is not in the store: the node has its beats'
    // grace from when this instance began to lead, so that a hand-over does
    // not make nodes flap offline.
    return now - std::max(n.last_seen_ms, since) <= n.heartbeat_ms * int64_t(opt_.missed_beats);
}

json service::status() {
    return {
        {"version", "0.1.0"},
        {"store", st_.describe()},
        {"revision", st_.revision()},
        {"leader", opt_.lead.leads()},
        {"last_reconcile", {{"ms", last_pass_ms_.load()}, {"volumes", last_pass_volumes_.load()}}},
        {"leader_url", opt_.lead.leader_url ? opt_.lead.leader_url() : std::string()}};
}

// ---- nodes -----------------------------------------------------------------------

static json node_view(const node_rec& n, bool online) {
    json j = to_json(n);
    j["state"] = online ? "online" : "offline";
    return j;
}

namespace {

// Controller ID ranges handed to engines: 64 slots of 1023 IDs in 1-65519.
constexpr unsigned cntlid_slot = 1023, cntlid_slots = 64;

bool overlaps(const node_rec& a, uint16_t lo, uint16_t hi) {
    return a.cntlid_min && a.cntlid_min <= hi && lo <= a.cntlid_max;
}

}  // namespace

std::pair<int, json> service::put_node(const std::string& id, const json& body) {
    node_rec n = parse_node_registration(id, body);
    const bool explicit_range = n.cntlid_explicit;
    for (;;) {
        auto cur = st_.get(key_node(id));
        int64_t now = now_ms();
        n.last_seen_ms = now;
        n.registered_ms = now;
        bool was_online = false;
        // The other nodes, when this registration takes a controller ID range:
        // the commit compares them, so that two nodes never take one range.
        std::vector<kv> others;
        auto other_nodes = [&] {
            others = st_.list("nodes/");
            std::erase_if(others, [&](const kv& e) { return e.key == key_node(id); });
            std::vector<node_rec> v;
            for (auto& e : others) v.push_back(node_from_json(parse_doc(e)));
            return v;
        };
        std::optional<node_rec> prev;
        if (cur) prev = node_from_json(parse_doc(*cur));
        if (explicit_range) {
            if (!prev || prev->cntlid_min != n.cntlid_min || prev->cntlid_max != n.cntlid_max)
                for (auto& o : other_nodes())
                    if (overlaps(o, n.cntlid_min, n.cntlid_max))
                        throw conflict(fmt::format(
                            "controller IDs {}-{} overlap node {}'s ({}-{}): give this engine "
                            "another --cntlid-range, or none (weft-control then assigns one)",
                            n.cntlid_min, n.cntlid_max, o.id, o.cntlid_min, o.cntlid_max));
        } else if (prev && prev->cntlid_min) {
            n.cntlid_min = prev->cntlid_min;  // its range for good
            n.cntlid_max = prev->cntlid_max;
        } else {
            auto nodes = other_nodes();
            n.cntlid_min = n.cntlid_max = 0;
            for (unsigned k = 0; k < cntlid_slots && !n.cntlid_min; ++k) {
                auto lo = uint16_t(k * cntlid_slot + 1), hi = uint16_t((k + 1) * cntlid_slot);
                if (std::none_of(nodes.begin(), nodes.end(),
                                 [&](const node_rec& o) { return overlaps(o, lo, hi); }))
                    n.cntlid_min = lo, n.cntlid_max = hi;
            }
            if (!n.cntlid_min)
                throw conflict(fmt::format(
                    "no controller ID range is free for node {} ({} nodes hold them): give "
                    "the engine a --cntlid-range, or forget a node that is gone",
                    id, nodes.size()));
        }
        if (cur) {
            node_rec& old = *prev;
            n.registered_ms = old.registered_ms;
            was_online = online(old, now);
            if (old.api != n.api || old.nvmf != n.nvmf || old.host_nqn != n.host_nqn ||
                old.node_labels != n.node_labels) {
                // Another engine with the same id while this one beats: two
                // nodes under one name would lose replicas.
                if (was_online && (old.api != n.api || old.host_nqn != n.host_nqn))
                    throw conflict(fmt::format(
                        "node {} is registered by the engine at {} (host NQN {}), which is "
                        "online: give this engine another --node-id",
                        id, old.api, old.host_nqn));
                n.registered_ms = now;  // a new registration, not a beat
            }
        }
        txn t;
        t.expect(key_node(id), cur ? cur->revision : 0).put(key_node(id), to_json(n).dump());
        for (auto& o : others) t.expect(o.key, o.revision);
        if (!st_.commit(t)) continue;  // a concurrent beat or registration: read again
        if (!cur)
            record_event("node-registered", "node/" + id, "node " + id + " registered at " + n.api);
        else if (!was_online)
            record_event("node-online", "node/" + id, "node " + id + " is back online");
        return {cur ? 200 : 201, node_view(n, true)};
    }
}

json service::list_nodes() {
    int64_t now = now_ms();
    json out = json::array();
    for (auto& e : st_.list("nodes/")) {
        auto n = node_from_json(parse_doc(e));
        out.push_back(node_view(n, online(n, now)));
    }
    return {{"nodes", out}};
}

node_rec service::need_node(const std::string& id) {
    auto e = st_.get(key_node(id));
    if (!e) throw not_found("no node " + id);
    return node_from_json(parse_doc(*e));
}

json service::get_node(const std::string& id) {
    auto n = need_node(id);
    return node_view(n, online(n, now_ms()));
}

void service::delete_node(const std::string& id) {
    std::lock_guard g(ops_);
    auto e = st_.get(key_node(id));
    if (!e) throw not_found("no node " + id);
    for (auto& p : st_.list("pools/"))
        if (pool_from_json(parse_doc(p)).node == id)
            throw conflict(fmt::format("node {} still holds pool {}: delete it first", id,
                                       pool_from_json(parse_doc(p)).name));
    if (!st_.commit(txn().expect(key_node(id), e->revision).del(key_node(id))))
        throw conflict("node " + id + " changed meanwhile: try again");
    record_event("node-removed", "node/" + id, "node " + id + " removed");
}

// ---- hosts -----------------------------------------------------------------------

std::pair<int, json> service::put_host(const std::string& id, const json& body) {
    host_rec h = parse_host_registration(id, body);
    for (;;) {
        auto cur = st_.get(key_host(id));
        h.registered_ms = now_ms();
        if (cur) {
            host_rec old = host_from_json(parse_doc(*cur));
            // No labels in the body: the ones it has stay (a plugin that
            // registers again does not know what an operator set).
            if (!body.contains("labels")) h.host_labels = old.host_labels;
            if (old.host_nqn == h.host_nqn && old.host_labels == h.host_labels)
                return {200, to_json(old)};  // registered again (a restarted plugin)
            // Its volumes are published to the old NQN: they stay, and
            // unpublishing them is the caller's (the CO's) to do.
        }
        if (!st_.commit(txn()
                            .expect(key_host(id), cur ? cur->revision : 0)
                            .put(key_host(id), to_json(h).dump())))
            continue;
        record_event(cur ? "host-changed" : "host-registered", "host/" + id,
                     fmt::format("host {} registered as {}", id, h.host_nqn));
        return {cur ? 200 : 201, to_json(h)};
    }
}

json service::list_hosts() {
    json out = json::array();
    for (auto& e : st_.list("hosts/")) out.push_back(to_json(host_from_json(parse_doc(e))));
    return {{"hosts", out}};
}

json service::get_host(const std::string& id) {
    auto e = st_.get(key_host(id));
    if (!e) throw not_found("no host " + id);
    return to_json(host_from_json(parse_doc(*e)));
}

void service::delete_host(const std::string& id) {
    std::lock_guard g(ops_);
    auto e = st_.get(key_host(id));
    if (!e) throw not_found("no host " + id);
    host_rec h = host_from_json(parse_doc(*e));
    for (auto& ve : st_.list("volumes/"))
        if (auto v = volume_from_json(parse_doc(ve));
            v.published && v.published->host_nqn == h.host_nqn)
            throw conflict(fmt::format("volume {} is published to host {} ({}): unpublish it first",
                                       v.id, id, h.host_nqn));
    if (!st_.commit(txn().expect(key_host(id), e->revision).del(key_host(id))))
        throw conflict("host " + id + " changed meanwhile: try again");
    record_event("host-removed", "host/" + id, "host " + id + " removed");
}

// ---- pools -----------------------------------------------------------------------

json service::pool_view(const pool_rec& p, facts& f) {
    json j = to_json(p);
    if (!p.size) j.erase("size");  // not given
    if (!p.cluster_size) j.erase("cluster_size");
    j["state"] = "unknown";
    j["capacity_bytes"] = 0;
    j["used_bytes"] = 0;
    j["committed_bytes"] = 0;
    j["volume_count"] = 0;
    if (auto l = f.pools_of(p.node)) {
        j["state"] = "missing";
        for (auto& x : l->pools())
            if (x.name() == p.name) {
                if (x.status() == "online") {
                    j["state"] = "online";
                } else {
                    j["state"] = "unavailable";
                    j["reason"] = x.status();
                }
                j["capacity_bytes"] = x.capacity_bytes();
                j["used_bytes"] = x.used_bytes();
                j["committed_bytes"] = x.committed_bytes();
                j["volume_count"] = x.volume_count();
            }
    }
    return j;
}

std::pair<int, json> service::put_pool(const std::string& name, const json& body) {
    pool_rec p = parse_pool_spec(name, body);
    std::lock_guard g(ops_);
    facts f(*this);
    if (!f.node(p.node)) throw not_found("no node " + p.node);
    auto cur = st_.get(key_pool(name));
    if (cur) {
        pool_rec old = pool_from_json(parse_doc(*cur));
        if (old.node != p.node || old.disk != p.disk)
            throw conflict(
                fmt::format("pool {} exists on node {} with disk {}", name, old.node, old.disk));
    }
    // On the engine: created, or there already (a retry, or an engine that
    // kept it across a control-plane restart).
    const pb::ListPoolsReply* l = f.pools_of(p.node);
    if (!l) throw unavailable(f.why_not(p.node));
    bool there = false;
    for (auto& x : l->pools())
        if (x.name() == name) {
            if (x.path() != p.disk)
                throw conflict(
                    fmt::format("node {} has a pool {} on {} already", p.node, name, x.path()));
            there = true;
        }
    if (!there) {
        pb::CreatePoolRequest req;
        req.set_name(name);
        req.set_path(p.disk);
        req.set_size(p.size);
        req.set_cluster_size(p.cluster_size);
        pb::Pool out;
        f.call(p.node, "creating pool " + name,
               [&](auto& stub, auto* ctx) { return stub.CreatePool(ctx, req, &out); });
        f.pools.erase(p.node);
    }
    if (!cur) {
        if (!st_.commit(txn().expect(key_pool(name), 0).put(key_pool(name), to_json(p).dump())))
            throw conflict("pool " + name + " was created meanwhile");
        record_event("pool-created", "pool/" + name,
                     fmt::format("pool {} on node {} ({})", name, p.node, p.disk));
    }
    return {cur ? 200 : 201, pool_view(cur ? pool_from_json(parse_doc(*cur)) : p, f)};
}

json service::list_pools() {
    facts f(*this);
    json out = json::array();
    for (auto& e : st_.list("pools/")) out.push_back(pool_view(pool_from_json(parse_doc(e)), f));
    return {{"pools", out}};
}

json service::get_pool(const std::string& name) {
    auto e = st_.get(key_pool(name));
    if (!e) throw not_found("no pool " + name);
    facts f(*this);
    return pool_view(pool_from_json(parse_doc(*e)), f);
}

void service::delete_pool(const std::string& name) {
    std::lock_guard g(ops_);
    auto e = st_.get(key_pool(name));
    if (!e) throw not_found("no pool " + name);
    pool_rec p = pool_from_json(parse_doc(*e));
    for (auto& v : st_.list("volumes/"))
        for (auto& r : volume_from_json(parse_doc(v)).replicas)
            if (r.pool == name)
                throw conflict(fmt::format("pool {} holds a replica of volume {}: delete it first",
                                           name, volume_from_json(parse_doc(v)).id));
    facts f(*this);
    // The engine destroys a pool with its volumes: refuse when it holds
    // volumes (made by hand, or left behind), whatever the store says.
    if (auto l = f.pools_of(p.node))
        for (auto& x : l->pools())
            if (x.name() == name && x.volume_count() > 0)
                throw conflict(fmt::format(
                    "pool {} holds {} volume(s) on node {}: delete them first (weft engine volume "
                    "list --api {})",
                    name, x.volume_count(), p.node, f.node(p.node)->api));
    pb::DestroyPoolRequest req;
    req.set_name(name);
    pb::Empty out;
    f.call(p.node, "destroying pool " + name,
           [&](auto& stub, auto* ctx) { return stub.DestroyPool(ctx, req, &out); },
           {grpc::StatusCode::NOT_FOUND});
    if (!st_.commit(txn().expect(key_pool(name), e->revision).del(key_pool(name))))
        throw conflict("pool " + name + " changed meanwhile: try again");
    record_event("pool-destroyed", "pool/" + name, "pool " + name + " destroyed");
}

// ---- volumes ---------------------------------------------------------------------

std::optional<std::pair<volume_rec, int64_t>> service::load_volume(const std::string& id) {
    auto e = st_.get(key_volume(id));
    if (!e) return std::nullopt;
    return std::make_pair(volume_from_json(parse_doc(*e)), e->revision);
}

void service::save_volume(const volume_rec& v, int64_t& revision) {
    auto r = st_.commit(
        txn().expect(key_volume(v.id), revision).put(key_volume(v.id), to_json(v).dump()));
    if (!r) throw conflict("volume " + v.id + " changed meanwhile: try again");
    revision = *r;
}

json service::view(const volume_rec& v, facts& f) {
    json j;
    j["id"] = v.id;
    j["spec"] = to_json(v.spec);
    j["created_ms"] = v.created_ms;
    j["published"] = v.published ? to_json(*v.published) : json(nullptr);
    j["nexus"] = nullptr;
    // The nexus, when there is one, knows the truth about the replicas.
    const pb::Nexus* nx = nullptr;
    if (v.published)
        if (auto l = f.nexuses_of(v.published->node))
            for (auto& x : l->nexuses())
                if (x.uuid() == v.id) nx = &x;
    json reps = json::array();
    unsigned healthy = 0;
    uint64_t done = 0, total = 0;
    bool rebuilding = false;
    for (auto& r : v.replicas) {
        json rj = {{"id", r.id}, {"node", r.node}, {"pool", r.pool}};
        std::string state = f.online(r.node) ? "online" : "unknown";
        if (nx) {
            state = "missing";
            for (auto& c : nx->children())
                if (c.uri().find(r.id) != std::string::npos) {
                    state = c.state();
                    if (!c.reason().empty()) rj["reason"] = c.reason();
                    if (c.has_rebuild()) {
                        done += c.rebuild().bytes_done();
                        total += c.rebuild().bytes_total();
                    }
                }
        }
        if (state == "online") ++healthy;
        if (state == "rebuilding") rebuilding = true;
        rj["state"] = state;
        reps.push_back(rj);
    }
    j["replicas"] = reps;
    std::string state;
    if (v.phase != "ready") {
        state = v.phase;
    } else if (v.published && !nx) {
        state = "unknown";  // its nexus's node does not answer
    } else if (nx && (nx->state() == "waiting" || nx->state() == "superseded" ||
                      nx->state() == "faulted")) {
        state = "faulted";
    } else if (healthy == v.replicas.size()) {
        state = "online";
    } else if (rebuilding) {
        state = "rebuilding";
    } else {
        state = healthy ? "degraded" : "faulted";
    }
    j["state"] = state;
    if (rebuilding && total) j["rebuild_percent"] = 100.0 * double(done) / double(total);
    if (nx)
        j["nexus"] = {{"node", v.published->node},
                      {"state", nx->state()},
                      {"generation", nx->generation()},
                      {"size_bytes", nx->size_bytes()}};
    return j;
}

void service::destroy_replica(const replica_rec& r, facts& f) {
    pb::DestroyVolumeRequest req;
    req.mutable_volume()->set_pool(r.pool);
    req.mutable_volume()->set_name(r.id);
    pb::Empty out;
    // A replica shared for a nexus that is gone: unshare first.
    f.unshare(r);
    f.call(r.node, "destroying replica " + r.id,
           [&](auto& stub, auto* ctx) { return stub.DestroyVolume(ctx, req, &out); },
           {grpc::StatusCode::NOT_FOUND});
}

void service::create_replicas(volume_rec& v, int64_t& revision, facts& f) {
    try {
        // The engines make their replicas at the same time (each is on
        // another node); the first refusal is the answer.
        auto refused = all_at_once(v.replicas.size(), [&f, &v](size_t i) {
            const replica_rec& r = v.replicas[i];
            if (!v.spec.source_snapshot.empty()) {
                // A clone of the replica's snapshot on its node, made blank
                // for the volume's own nexus: the clones hold the same data.
                pb::CreateCloneRequest req;
                req.mutable_snapshot()->set_pool(r.pool);
                req.mutable_snapshot()->set_name(v.spec.source_snapshot);
                req.set_name(r.id);
                pb::Volume out;
                f.call(r.node,
                       fmt::format("cloning snapshot {} on pool {} as {}", v.spec.source_snapshot,
                                   r.pool, r.id),
                       [&](auto& stub, auto* ctx) { return stub.CreateClone(ctx, req, &out); },
                       {grpc::StatusCode::ALREADY_EXISTS});
                pb::ClearChildLabelRequest cl;
                cl.set_child(replica_uri_local(r));
                pb::Empty e;
                f.call(r.node, "clearing the nexus label of clone " + r.id,
                       [&](auto& stub, auto* ctx) { return stub.ClearChildLabel(ctx, cl, &e); });
                return;
            }
            pb::CreateVolumeRequest req;
            req.set_pool(r.pool);
            req.set_name(r.id);
            req.set_size_bytes(v.spec.size_bytes + replica_overhead);
            req.set_thick(!v.spec.thin);
            pb::Volume out;
            // ALREADY_EXISTS: a retry after a crash made it already.
            f.call(r.node, fmt::format("creating replica {} on pool {}", r.id, r.pool),
                   [&](auto& stub, auto* ctx) { return stub.CreateVolume(ctx, req, &out); },
                   {grpc::StatusCode::ALREADY_EXISTS});
        });
        if (refused) throw *refused;
    } catch (const api_error& e) {
        // Undo: nothing half-made stays. Every replica of the record, not
        // only those made now: a call that timed out may have made one, and
        // a crashed attempt others. One that cannot be destroyed keeps the
        // record (phase deleting) so that a delete finishes the job.
        bool all_gone = true;
        for (auto& r : v.replicas) {
            try {
                destroy_replica(r, f);
            } catch (const api_error& e2) {
                all_gone = false;
                spdlog::warn("volume {}: undoing replica {}: {}", v.id, r.id, e2.what());
            }
        }
        if (all_gone) {
            st_.commit(txn().expect(key_volume(v.id), revision).del(key_volume(v.id)));
        } else {
            v.phase = "deleting";
            st_.commit(
                txn().expect(key_volume(v.id), revision).put(key_volume(v.id), to_json(v).dump()));
        }
        record_event("volume-create-failed", "volume/" + v.id, e.what());
        throw;
    }
    v.phase = "ready";
    std::string where;
    for (auto& x : v.replicas) where += (where.empty() ? "" : ", ") + x.node + "/" + x.pool;
    // The record and its event in one commit (one fsync less per volume).
    auto r = commit_with_event(
        txn().expect(key_volume(v.id), revision).put(key_volume(v.id), to_json(v).dump()),
        "volume-created", "volume/" + v.id,
        fmt::format("volume {}: {} bytes, {} replicas on {}", v.id, v.spec.size_bytes,
                    v.spec.replicas, where));
    if (!r) throw conflict("volume " + v.id + " changed meanwhile: try again");
    revision = *r;
}

std::pair<int, json> service::put_volume(const std::string& id, const json& body) {
    check_volume_id(id);
    volume_spec spec = parse_volume_spec(body);
    std::lock_guard g(ops_);
    facts f(*this);
    if (auto cur = load_volume(id)) {
        auto& [v, rev] = *cur;
        if (!(v.spec == spec))
            throw conflict(fmt::format("volume {} exists with another spec ({} bytes, {} replicas)",
                                       id, v.spec.size_bytes, v.spec.replicas));
        if (v.phase == "deleting") throw conflict("volume " + id + " is being deleted");
        if (v.phase == "creating") create_replicas(v, rev, f);  // finish a crashed create
        return {200, view(v, f)};
    }
    volume_rec v;
    v.id = id;
    v.spec = spec;
    v.created_ms = now_ms();
    if (!spec.source_snapshot.empty()) {
        // A clone: its replicas are clones of the snapshot's, on their nodes.
        auto se = st_.get(key_snapshot(spec.source_snapshot));
        if (!se) throw not_found("no snapshot " + spec.source_snapshot);
        snapshot_rec snap = snapshot_from_json(parse_doc(*se));
        if (snap.phase != "ready")
            throw conflict(fmt::format("snapshot {} is {}", snap.id, snap.phase));
        if (spec.size_bytes != snap.size_bytes)
            throw bad_request(fmt::format(
                "a volume made from snapshot {} has its size, {} bytes (not {}): make it at "
                "that size, then resize it",
                snap.id, snap.size_bytes, spec.size_bytes));
        if (!spec.thin) throw bad_request("a volume made from a snapshot is thin (its clones)");
        if (spec.encrypted != snap.encrypted)
            throw bad_request(fmt::format(
                "snapshot {} is {}encrypted: so is a volume made from it (\"encrypted\": {})",
                snap.id, snap.encrypted ? "" : "not ", snap.encrypted ? "true" : "false"));
        v.wrapped_key = snap.wrapped_key;
        if (spec.replicas > snap.replicas.size())
            throw conflict(fmt::format(
                "snapshot {} holds {} replica snapshot(s): a volume made from it has at most {} "
                "replica(s) (clones on the same nodes)",
                snap.id, snap.replicas.size(), snap.replicas.size()));
        for (unsigned i = 0; i < spec.replicas; ++i)
            v.replicas.push_back({random_uuid(), snap.replicas[i].node, snap.replicas[i].pool, ""});
    } else {
        // Place: every pool's facts from its engine now.
        std::vector<node_facts> nodes = f.node_facts_now();
        std::vector<pool_facts> pools = f.pool_facts_now();
        placement_request pr;
        pr.bytes = spec.size_bytes + replica_overhead;
        pr.replicas = spec.replicas;
        pr.thin = spec.thin;
        pr.selector = spec.selector;
        pr.overcommit = opt_.overcommit;
        // Volumes being made now are not in the engines' figures yet: none, as
        // ops_ serializes creation and creation waits for the engines.
        auto pl = place_replicas(pr, nodes, pools);
        if (!pl) throw no_room(pl.error);
        for (auto& pool : pl.pools) {
            auto it =
                std::find_if(pools.begin(), pools.end(), [&](auto& p) { return p.name == pool; });
            v.replicas.push_back({random_uuid(), it->node, pool, ""});
        }
    }
    auto r = st_.commit(txn().expect(key_volume(id), 0).put(key_volume(id), to_json(v).dump()));
    if (!r) throw conflict("volume " + id + " was created meanwhile");
    int64_t rev = *r;
    create_replicas(v, rev, f);
    return {201, view(v, f)};
}

// 503 unless every replica's node is online: a volume `doing` (grows, is
// published) with every replica reachable.
void service::need_every_replica(const volume_rec& v, facts& f, const char* doing) {
    for (auto& r : v.replicas)
        if (!f.online(r.node))
            throw unavailable(fmt::format(
                "replica {} of volume {} is on node {}, which is offline: a volume {} with every "
                "replica reachable",
                r.id, v.id, r.node, doing));
}

void service::resize_replica(const replica_rec& r, uint64_t bytes, facts& f) {
    pb::ResizeVolumeRequest req;
    req.mutable_volume()->set_pool(r.pool);
    req.mutable_volume()->set_name(r.id);
    req.set_size_bytes(bytes);
    pb::Volume out;
    f.call(r.node, fmt::format("resizing replica {} to {} bytes", r.id, bytes),
           [&](auto& stub, auto* ctx) { return stub.ResizeVolume(ctx, req, &out); });
}

// Grows the nexus of a published volume to its recorded size; false when its
// engine refused for now (a rebuild runs: the reconciler tries again).
bool service::grow_nexus(const volume_rec& v, facts& f) {
    pb::ResizeNexusRequest req;
    req.set_uuid(v.id);
    req.set_size_bytes(v.spec.size_bytes);
    pb::Nexus out;
    try {
        f.call(v.published->node, "growing the nexus of " + v.id,
               [&](auto& stub, auto* ctx) { return stub.ResizeNexus(ctx, req, &out); });
    } catch (const api_error& e) {
        spdlog::warn("volume {}: {}", v.id, e.what());
        return false;
    }
    return true;
}

json service::resize_volume(const std::string& id, const json& body) {
    check_volume_id(id);
    const uint64_t size = parse_volume_size(body);
    std::lock_guard g(ops_);
    facts f(*this);
    auto cur = load_volume(id);
    if (!cur) throw not_found("no volume " + id);
    auto& [v, rev] = *cur;
    if (v.phase != "ready") throw conflict(fmt::format("volume {} is {}", id, v.phase));
    if (size < v.spec.size_bytes)
        throw bad_request(fmt::format(
            "volume {} holds {} bytes: a volume grows, it does not shrink (to {} bytes)", id,
            v.spec.size_bytes, size));
    const uint64_t old = v.spec.size_bytes;
    if (size > old) {
        need_every_replica(v, f, "grows");
        std::vector<size_t> failed;
        auto refused = all_at_once(
            v.replicas.size(),
            [&](size_t i) { resize_replica(v.replicas[i], size + replica_overhead, f); }, &failed);
        if (refused) {
            // Nothing half-made: the replicas that grew go back (their new
            // space was never part of the volume).
            for (size_t i = 0; i < v.replicas.size(); ++i) {
                if (std::find(failed.begin(), failed.end(), i) != failed.end()) continue;
                try {
                    resize_replica(v.replicas[i], old + replica_overhead, f);
                } catch (const api_error& e) {
                    spdlog::warn("volume {}: undoing a resize: {}", id, e.what());
                }
            }
            throw *refused;
        }
        v.spec.size_bytes = size;
        auto r = commit_with_event(
            txn().expect(key_volume(id), rev).put(key_volume(id), to_json(v).dump()),
            "volume-resized", "volume/" + id,
            fmt::format("volume {}: grown from {} to {} bytes", id, old, size));
        if (!r) throw conflict("volume " + id + " changed meanwhile: try again");
        rev = *r;
    }
    // Also for the same size again: a nexus that could not grow before.
    if (v.published && !v.published->nqn.empty()) grow_nexus(v, f);
    return view(v, f);
}

json service::list_volumes() {
    facts f(*this);
    json out = json::array();
    for (auto& e : st_.list("volumes/")) out.push_back(view(volume_from_json(parse_doc(e)), f));
    return {{"volumes", out}};
}

json service::get_volume(const std::string& id) {
    check_volume_id(id);
    auto cur = load_volume(id);
    if (!cur) throw not_found("no volume " + id);
    facts f(*this);
    return view(cur->first, f);
}

void service::delete_volume(const std::string& id) {
    check_volume_id(id);
    std::lock_guard g(ops_);
    auto cur = load_volume(id);
    if (!cur) throw not_found("no volume " + id);
    auto& [v, rev] = *cur;
    if (v.published)
        throw conflict(fmt::format("volume {} is published to {}: unpublish it first", id,
                                   v.published->host_nqn));
    facts f(*this);
    if (v.phase != "deleting") {
        v.phase = "deleting";
        save_volume(v, rev);
    }
    // Every replica at once (each on its own node); those destroyed leave
    // the record, so a failure leaves the volume "deleting" with what is
    // left, and a retry goes on from there.
    std::vector<size_t> failed;
    auto refused = all_at_once(
        v.replicas.size(), [&](size_t i) { destroy_replica(v.replicas[i], f); }, &failed);
    if (refused) {
        std::vector<replica_rec> left;
        for (size_t i : failed) left.push_back(v.replicas[i]);
        v.replicas = std::move(left);
        save_volume(v, rev);
        throw *refused;
    }
    erase_volume_key(v, f);
    if (!commit_with_event(txn().expect(key_volume(id), rev).del(key_volume(id)), "volume-deleted",
                           "volume/" + id, "volume " + id + " deleted"))
        throw conflict("volume " + id + " changed meanwhile: try again");
}

// An erasure owed to a node that was away: "key-erasures/<node>/<volume>".
static std::string key_erasure(const std::string& node, const std::string& volume) {
    return "key-erasures/" + node + "/" + volume;
}

void service::ensure_volume_key(volume_rec& v, int64_t& rev, const std::string& node, facts& f) {
    if (!v.spec.encrypted) return;
    // A node still owed the erasure of a deleted volume of the same id holds
    // that volume's key: erased first, or this volume would take it.
    if (auto owed = st_.get(key_erasure(node, v.id))) {
        if (!erase_key_on(node, v.id, f))
            throw unavailable(fmt::format(
                "node {} still holds the data key of a deleted volume {} and could not erase it",
                node, v.id));
        st_.commit(txn().expect(owed->key, owed->revision).del(owed->key));
    }
    pb::SetVolumeKeyRequest req;
    req.set_nexus(v.id);
    req.set_wrapped_key(v.wrapped_key);
    pb::VolumeKey k;
    f.call(node, "setting the data key of " + v.id + " on node " + node,
           [&](auto& stub, auto* ctx) { return stub.SetVolumeKey(ctx, req, &k); });
    if (v.wrapped_key.empty()) {
        v.wrapped_key = k.wrapped_key();
        save_volume(v, rev);
    }
}

void service::erase_volume_key(const volume_rec& v, facts& f) {
    if (!v.spec.encrypted) return;
    // Every engine that ever held the nexus may keep the wrapped key: each
    // online one forgets it now; each other one is owed the erasure, which
    // the reconciler makes when it answers again (a wrapped copy is
    // useless without the KEK, but crypto-erase means no copy is left).
    txn owed;
    for (auto& [id, n] : f.nodes) {
        if (f.online(id) && erase_key_on(id, v.id, f)) continue;
        owed.put(key_erasure(id, v.id), json{{"node", id}, {"volume", v.id}}.dump());
        spdlog::info(
            "volume {}: node {} is away or did not answer; its copy of the data key "
            "is erased when it is back",
            v.id, id);
    }
    if (!owed.puts.empty()) st_.commit(owed);
}

bool service::erase_key_on(const std::string& node, const std::string& volume, facts& f) {
    pb::EraseVolumeKeyRequest req;
    req.set_nexus(volume);
    pb::Empty out;
    try {
        f.call(node, "erasing the data key of " + volume + " on node " + node,
               [&](auto& stub, auto* ctx) { return stub.EraseVolumeKey(ctx, req, &out); },
               {grpc::StatusCode::NOT_FOUND});
        return true;
    } catch (const api_error& e) {
        spdlog::warn("volume {}: {}", volume, e.what());
        return false;
    }
}

void service::erase_owed_keys(facts& f) {
    for (auto& e : st_.list("key-erasures/")) {
        try {
            json j = parse_doc(e);
            const std::string node = j.at("node"), volume = j.at("volume");
            // A node taken out of the cluster is owed nothing. (A volume
            // made again under the same id has not been given a key on this
            // node since: ensure_volume_key erases first and drops this.)
            if (f.nodes.count(node)) {
                if (!f.online(node) || !erase_key_on(node, volume, f)) continue;
                record_event("volume-key-erased", "volume/" + volume,
                             fmt::format("node {}, back, erased its copy of the data key of "
                                         "deleted volume {}",
                                         node, volume));
            }
            st_.commit(txn().expect(e.key, e.revision).del(e.key));
        } catch (const std::exception& err) {
            spdlog::warn("reconcile {}: {}", e.key, err.what());
        }
    }
}

// ---- snapshots -------------------------------------------------------------------

// A snapshot as the API shows it: the store's record without the wrapped key.
static json snapshot_view(const snapshot_rec& s) {
    json j = to_json(s);
    j.erase("wrapped_key");
    return j;
}

std::vector<snapshot_replica> service::in_sync_by_labels(const volume_rec& v, facts& f) {
    // What each reachable replica's nexus label says. The newest generation
    // seen is the truth only when a majority of the replicas answered: every
    // retirement was durable on a majority, so a majority holds the newest.
    struct seen {
        const replica_rec* r;
        pb::ChildLabel l;
    };
    std::vector<seen> got;
    for (auto& r : v.replicas) {
        if (!f.online(r.node)) continue;
        pb::ReadChildLabelRequest req;
        req.set_child(replica_uri_local(r));
        seen x{&r, {}};
        try {
            f.call(r.node, "reading the label of replica " + r.id,
                   [&](auto& stub, auto* ctx) { return stub.ReadChildLabel(ctx, req, &x.l); });
        } catch (const api_error& e) {
            spdlog::warn("volume {}: {}", v.id, e.what());
            continue;
        }
        got.push_back(std::move(x));
    }
    if (got.size() * 2 <= v.replicas.size())
        throw unavailable(fmt::format(
            "only {} of the {} replicas of {} answered: which hold the volume's data is known "
            "from a majority of them",
            got.size(), v.replicas.size(), v.id));
    std::vector<snapshot_replica> out;
    const pb::ChildLabel* newest = nullptr;
    for (auto& x : got)
        if (x.l.present() && (!newest || x.l.generation() > newest->generation())) newest = &x.l;
    for (auto& x : got) {
        bool in_sync = !newest;  // never published: no host ever wrote to any of them
        if (newest && x.l.present() && x.l.generation() == newest->generation())
            for (auto& m : newest->members())
                if (m.uuid() == x.l.child_uuid() && m.state() == "in-sync") in_sync = true;
        if (in_sync) out.push_back({x.r->node, x.r->pool, x.r->id});
    }
    return out;
}

void service::destroy_snapshot_replicas(snapshot_rec& s, facts& f) {
    std::vector<size_t> failed;
    auto refused = all_at_once(
        s.replicas.size(),
        [&f, &s](size_t i) {
            const snapshot_replica& r = s.replicas[i];
            pb::DestroyVolumeRequest req;
            req.mutable_volume()->set_pool(r.pool);
            req.mutable_volume()->set_name(s.id);
            pb::Empty out;
            f.call(r.node, fmt::format("destroying the snapshot of replica {}", r.replica),
                   [&](auto& stub, auto* ctx) { return stub.DestroyVolume(ctx, req, &out); },
                   {grpc::StatusCode::NOT_FOUND});
        },
        &failed);
    std::vector<snapshot_replica> left;
    for (size_t i : failed) left.push_back(s.replicas[i]);
    s.replicas = std::move(left);
    if (refused) throw *refused;
}

std::pair<int, json> service::put_snapshot(const std::string& id, const json& body) {
    check_volume_id(id);
    std::string vid = parse_snapshot_request(body);
    std::lock_guard g(ops_);
    facts f(*this);
    if (auto e = st_.get(key_snapshot(id))) {
        snapshot_rec old = snapshot_from_json(parse_doc(*e));
        if (old.volume != vid)
            throw conflict(fmt::format("snapshot {} exists, of volume {}", id, old.volume));
        if (old.phase == "ready") return {200, to_json(old)};
        if (old.phase == "deleting") throw conflict("snapshot " + id + " is being deleted");
        // A crashed attempt: undone, then made again.
        destroy_snapshot_replicas(old, f);
        if (!st_.commit(txn().expect(e->key, e->revision).del(e->key)))
            throw conflict("snapshot " + id + " changed meanwhile: try again");
    }
    auto cur = load_volume(vid);
    if (!cur) throw not_found("no volume " + vid);
    auto& [v, rev] = *cur;
    if (v.phase != "ready") throw conflict(fmt::format("volume {} is {}", vid, v.phase));
    snapshot_rec s;
    s.id = id;
    s.volume = vid;
    s.size_bytes = v.spec.size_bytes;
    s.created_ms = now_ms();
    s.encrypted = v.spec.encrypted;
    s.wrapped_key = v.wrapped_key;
    // Published: the nexus holds the writes; its in-sync children then hold
    // the same data. Whatever ends this call (a store error too), the writes
    // go again at once, not when the pause lapses.
    const std::string nexus_node =
        v.published && !v.published->nqn.empty() ? v.published->node : "";
    bool paused = false;
    auto resume = [&]() {
        if (!paused) return;
        paused = false;
        pb::ResumeNexusRequest rr;
        rr.set_uuid(vid);
        pb::Nexus out;
        f.call(nexus_node, "resuming the writes of " + vid,
               [&](auto& stub, auto* ctx) { return stub.ResumeNexus(ctx, rr, &out); });
    };
    struct resume_on_exit {
        const std::function<void()> resume;
        ~resume_on_exit() {
            try {
                resume();
            } catch (const std::exception& e) {
                spdlog::warn("resuming writes: {}", e.what());
            }
        }
    } guard{resume};
    if (!nexus_node.empty()) {
        pb::PauseNexusRequest pr;
        pr.set_uuid(vid);
        pr.set_timeout_ms(snapshot_pause_ms);
        pb::Nexus nx;
        f.call(nexus_node, "pausing the writes of " + vid,
               [&](auto& stub, auto* ctx) { return stub.PauseNexus(ctx, pr, &nx); });
        paused = true;
        for (auto& r : v.replicas)
            for (auto& c : nx.children())
                if (c.uri().find(r.id) != std::string::npos && c.state() == "online")
                    s.replicas.push_back({r.node, r.pool, r.id});
    } else {
        s.replicas = in_sync_by_labels(v, f);
    }
    std::optional<int64_t> srev;  // the record's revision once written
    try {
        if (s.replicas.empty())
            throw unavailable("no in-sync replica of " + vid + " is reachable to snapshot");
        srev =
            st_.commit(txn().expect(key_snapshot(id), 0).put(key_snapshot(id), to_json(s).dump()));
        if (!srev) throw conflict("snapshot " + id + " was created meanwhile");
        auto refused = all_at_once(s.replicas.size(), [&f, &s](size_t i) {
            const snapshot_replica& x = s.replicas[i];
            pb::CreateSnapshotRequest req;
            req.mutable_volume()->set_pool(x.pool);
            req.mutable_volume()->set_name(x.replica);
            req.set_name(s.id);
            pb::Volume out;
            f.call(x.node, fmt::format("snapshotting replica {}", x.replica),
                   [&](auto& stub, auto* ctx) { return stub.CreateSnapshot(ctx, req, &out); },
                   {grpc::StatusCode::ALREADY_EXISTS});
        });
        if (refused) throw *refused;
        try {
            resume();
        } catch (const api_error& e) {
            throw unavailable(fmt::format(
                "the volume's writes were held longer than {} ms, or its nexus went away, "
                "before every replica was snapshotted ({}): the snapshot is not "
                "consistent, try again",
                snapshot_pause_ms, e.what()));
        }
    } catch (const api_error& e) {
        try {
            resume();  // before the undo: nothing to hold the writes for
        } catch (const api_error& e2) {
            spdlog::warn("snapshot {}: {}", id, e2.what());
        }
        // Undo: nothing half-made stays (what cannot be destroyed now keeps
        // the record, "deleting", for a delete to finish).
        try {
            destroy_snapshot_replicas(s, f);
            if (srev) st_.commit(txn().expect(key_snapshot(id), *srev).del(key_snapshot(id)));
        } catch (const api_error& e2) {
            s.phase = "deleting";
            if (srev)
                st_.commit(
                    txn().expect(key_snapshot(id), *srev).put(key_snapshot(id), to_json(s).dump()));
            spdlog::warn("snapshot {}: undoing: {}", id, e2.what());
        }
        record_event("snapshot-create-failed", "snapshot/" + id, e.what());
        throw;
    }
    s.phase = "ready";
    std::string where;
    for (auto& x : s.replicas) where += (where.empty() ? "" : ", ") + x.node + "/" + x.pool;
    if (!commit_with_event(
            txn().expect(key_snapshot(id), *srev).put(key_snapshot(id), to_json(s).dump()),
            "snapshot-created", "snapshot/" + id,
            fmt::format("snapshot {} of volume {}{}: {}", id, vid,
                        v.published ? " (writes paused)" : "", where)))
        throw conflict("snapshot " + id + " changed meanwhile: try again");
    return {201, snapshot_view(s)};
}

json service::list_snapshots(const std::string& volume) {
    if (!volume.empty()) check_volume_id(volume);
    json out = json::array();
    for (auto& e : st_.list("snapshots/")) {
        auto s = snapshot_from_json(parse_doc(e));
        if (volume.empty() || s.volume == volume) out.push_back(snapshot_view(s));
    }
    return {{"snapshots", out}};
}

json service::get_snapshot(const std::string& id) {
    check_volume_id(id);
    auto e = st_.get(key_snapshot(id));
    if (!e) throw not_found("no snapshot " + id);
    return snapshot_view(snapshot_from_json(parse_doc(*e)));
}

void service::delete_snapshot(const std::string& id) {
    check_volume_id(id);
    std::lock_guard g(ops_);
    auto e = st_.get(key_snapshot(id));
    if (!e) throw not_found("no snapshot " + id);
    snapshot_rec s = snapshot_from_json(parse_doc(*e));
    for (auto& ve : st_.list("volumes/")) {
        auto v = volume_from_json(parse_doc(ve));
        if (v.spec.source_snapshot == id)
            throw conflict(
                fmt::format("volume {} was made from snapshot {}: delete it first", v.id, id));
    }
    int64_t rev = e->revision;
    if (s.phase != "deleting") {
        s.phase = "deleting";
        auto r = st_.commit(txn().expect(e->key, rev).put(e->key, to_json(s).dump()));
        if (!r) throw conflict("snapshot " + id + " changed meanwhile: try again");
        rev = *r;
    }
    facts f(*this);
    try {
        destroy_snapshot_replicas(s, f);
    } catch (const api_error&) {
        st_.commit(txn().expect(e->key, rev).put(e->key, to_json(s).dump()));
        throw;
    }
    if (!commit_with_event(txn().expect(e->key, rev).del(e->key), "snapshot-deleted",
                           "snapshot/" + id, "snapshot " + id + " deleted"))
        throw conflict("snapshot " + id + " changed meanwhile: try again");
}

// The volume's nexus on `node`, unshared and destroyed (what is not there
// is fine: a standby path has no nexus, an old one may be gone already).
void service::remove_nexus_on(const std::string& node, const std::string& id, facts& f) {
    pb::UnshareNexusRequest un;
    un.set_uuid(id);
    pb::DestroyNexusRequest dn;
    dn.set_uuid(id);
    pb::Empty out;
    f.call(node, "unsharing the nexus of " + id + " on node " + node,
           [&](auto& stub, auto* ctx) { return stub.UnshareNexus(ctx, un, &out); },
           {grpc::StatusCode::NOT_FOUND, grpc::StatusCode::FAILED_PRECONDITION});
    f.call(node, "destroying the nexus of " + id + " on node " + node,
           [&](auto& stub, auto* ctx) { return stub.DestroyNexus(ctx, dn, &out); },
           {grpc::StatusCode::NOT_FOUND});
}

// Serves the volume's NQN (the default one while it has none) to its host
// from `node`: the nexus made there, or a standby path (no namespace until
// a nexus is made there and shared). Returns the NQN.
std::string service::share_nexus_on(const std::string& node, const volume_rec& v, bool standby,
                                    facts& f) {
    pb::ShareNexusRequest sn;
    sn.set_uuid(v.id);
    sn.set_nqn(v.published->nqn);
    sn.add_allowed_hosts(v.published->host_nqn);
    sn.set_standby(standby);
    pb::Share share;
    f.call(node,
           fmt::format("{} of {} on node {}",
                       standby ? "making the standby path" : "sharing the nexus", v.id, node),
           [&](auto& stub, auto* ctx) { return stub.ShareNexus(ctx, sn, &share); });
    return share.nqn();
}

void service::teardown_publication(const volume_rec& v, facts& f) {
    if (!v.published) return;
    const std::string& nn = v.published->node;
    remove_nexus_on(nn, v.id, f);
    // The standby path (best effort: an offline node's goes when it is
    // told again, and a host connected to it sees no namespace anyway).
    if (const std::string& sb = v.published->standby; !sb.empty() && f.online(sb))
        remove_nexus_on(sb, v.id, f);
    for (auto& r : v.replicas) {
        if (r.node == nn || !f.online(r.node)) continue;
        f.unshare(r);
    }
}

// A second path for the host: the volume's NQN on another online node (one
// holding a replica first), with no namespace and ANA inaccessible, so that
// the host's multipath already knows the node a switchover moves the nexus
// to. Best effort: a volume without one is served all the same.
void service::make_standby(volume_rec& v, const std::vector<std::string>& preferred, facts& f) {
    publication& p = *v.published;
    std::vector<std::string> candidates = preferred;
    for (auto& [id, n] : f.nodes) candidates.push_back(id);
    for (auto& id : candidates) {
        if (id == p.node || !f.online(id) || f.node(id)->nvmf.empty()) continue;
        try {
            share_nexus_on(id, v, /*standby=*/true, f);
        } catch (const api_error& e) {
            spdlog::warn("volume {}: {}", v.id, e.what());
            continue;
        }
        p.standby = id;
        std::tie(p.standby_address, p.standby_port) = split_endpoint(f.node(id)->nvmf.front());
        p.standby_ready = true;
        return;
    }
}

// The nexus's node is offline: a new nexus on the standby node, from the
// replicas that answer (their labels say which are in sync: the nexus reads
// them; the majority rule is waived, as the arbiter would, because the new
// nexus fences every child it takes and an old nexus still running
// somewhere then stops at its first write), shared there in place of the
// standby path; the old node becomes the standby once it answers again.
void service::switch_over(volume_rec& v, int64_t& rev, facts& f) {
    publication& p = *v.published;
    const std::string old = p.node, to = p.standby;
    if (to.empty() || !p.standby_ready || !f.online(to)) return;
    if (!take_repair_token()) {
        spdlog::warn(
            "volume {}: its nexus's node {} is offline; waiting to switch over (at "
            "most {} repairs a minute)",
            v.id, old, opt_.max_repairs_per_minute);
        return;
    }
    const node_rec& target = *f.node(to);
    std::vector<const replica_rec*> reach;
    for (auto& r : v.replicas)
        if (f.online(r.node) && r.replaces.empty()) reach.push_back(&r);
    if (reach.empty()) return;
    // A retry after a crash finds the nexus made already (its children's
    // labels are its own now): the check was done before.
    bool made = false;
    if (auto l = f.nexuses_of(to))
        for (auto& x : l->nexuses()) made = made || x.uuid() == v.id;
    if (std::string why; !made && !may_take_over(v, reach, f, &why)) {
        if (switchover_waiting_.insert(v.id).second)
            record_event("switchover-waiting", "volume/" + v.id,
                         fmt::format("volume {}: node {} (its nexus) is offline, but {}: the "
                                     "volume waits for node {}",
                                     v.id, old, why, old));
        return;
    }
    switchover_waiting_.erase(v.id);
    pb::CreateNexusRequest cn;
    cn.set_uuid(v.id);
    cn.set_size_bytes(v.spec.size_bytes);
    cn.set_allow_minority(true);
    std::vector<std::string> used;
    for (auto* r : reach) {
        cn.add_children(child_uri(*r, target, f));
        used.push_back(r->id);
    }
    // Recorded first: a crash in the middle leaves a record the next pass
    // finishes (every step below may be repeated).
    p.node = to;
    std::tie(p.address, p.port) = split_endpoint(target.nvmf.front());
    p.standby = old;
    std::tie(p.standby_address, p.standby_port) = split_endpoint(f.node(old)->nvmf.front());
    p.standby_ready = false;
    p.arbiter_generation = 0;  // the new nexus's commits start above every label it reads
    save_volume(v, rev);
    pb::Nexus nx;
    f.call(to, "creating the nexus of " + v.id + " on node " + to,
           [&](auto& stub, auto* ctx) { return stub.CreateNexus(ctx, cn, &nx); },
           {grpc::StatusCode::ALREADY_EXISTS});
    ensure_volume_key(v, rev, to, f);
    share_nexus_on(to, v, /*standby=*/false, f);
    record_event("nexus-switched-over", "volume/" + v.id,
                 fmt::format("volume {}: node {} (its nexus) is offline; a new nexus on node {} "
                             "over replicas {} serves it",
                             v.id, old, to, fmt::join(used, ", ")));
}

// Whether a nexus made now over `reach` (the replicas that answer) is safe
// without a majority of the in-sync ones (scheduler.h: takeover_risk), from
// their labels as their own engines read them.
bool service::may_take_over(const volume_rec& v, const std::vector<const replica_rec*>& reach,
                            facts& f, std::string* why) {
    std::vector<seen_label> labels;
    for (auto* r : reach) {
        pb::ReadChildLabelRequest req;
        req.set_child(replica_uri_local(*r));
        pb::ChildLabel l;
        try {
            f.call(r->node, "reading the label of replica " + r->id,
                   [&](auto& stub, auto* ctx) { return stub.ReadChildLabel(ctx, req, &l); });
        } catch (const api_error& e) {
            *why = e.what();
            return false;
        }
        seen_label s{l.present(), l.child_uuid(), l.generation(), {}};
        for (auto& m : l.members())
            if (m.state() == "in-sync") s.in_sync.push_back(m.uuid());
        labels.push_back(std::move(s));
    }
    *why = takeover_risk(labels, v.published->arbiter_generation);
    return why->empty();
}

// The arbiter: the published nexus holds its writes because too few of its
// in-sync children answer to make a retirement durable on a majority (a
// two-way volume that lost one, a partition). Its node answers the control
// plane, so no switchover takes the volume elsewhere meanwhile: it may go on
// with the children it reaches. The yes is recorded before it is given
// (arbiter_generation), so that a later switchover knows that commit went
// to some replicas only; a nexus that is not the published one (an old one
// behind a partition) is never answered, and an unreachable control plane
// answers nothing: the nexus waits.
void service::answer_arbiter(volume_rec& v, int64_t& rev, facts& f, const pb::Nexus& nx) {
    if (!take_repair_token()) return;
    publication& p = *v.published;
    p.arbiter_generation = std::max(p.arbiter_generation, nx.generation());
    save_volume(v, rev);
    pb::ArbitrateNexusRequest req;
    req.set_uuid(v.id);
    req.set_allow(true);
    pb::Nexus out;
    f.call(p.node, "answering the nexus of " + v.id,
           [&](auto& stub, auto* ctx) { return stub.ArbitrateNexus(ctx, req, &out); },
           {grpc::StatusCode::INVALID_ARGUMENT});  // not waiting any more
    record_event("arbiter-allowed", "volume/" + v.id,
                 fmt::format("volume {}: its nexus on node {} goes on with the children it "
                             "reaches ({})",
                             v.id, p.node, nx.waiting()));
}

// The old nexus node answers again after a switchover: its nexus (which
// could not open there, or stopped at its first write) goes, and the node
// becomes the host's standby path.
void service::restore_standby(volume_rec& v, int64_t& rev, facts& f) {
    publication& p = *v.published;
    remove_nexus_on(p.standby, v.id, f);
    share_nexus_on(p.standby, v, /*standby=*/true, f);
    p.standby_ready = true;
    save_volume(v, rev);
    record_event("standby-restored", "volume/" + v.id,
                 fmt::format("volume {}: node {} is back; its old nexus is gone and it is the "
                             "host's standby path",
                             v.id, p.standby));
}

// The URI child_uri() gives, without asking any engine.
std::string service::child_uri_of(const replica_rec& r, const node_rec& nexus_node, facts& f) {
    if (r.node == nexus_node.id) return replica_uri_local(r);
    const node_rec* rn = f.node(r.node);
    return "nvmf://" + (rn ? rn->nvmf.front() : std::string("?")) + "/" + replica_nqn_prefix + r.id;
}

// The URI the nexus on `nexus_node` reaches replica r at: the pool volume
// itself on the same node, else its share, made now and allowed only to the
// nexus node's engine.
std::string service::child_uri(const replica_rec& r, const node_rec& nexus_node, facts& f) {
    if (r.node == nexus_node.id) {
        // Shared for an earlier nexus elsewhere: a local child is not shared.
        f.unshare(r);
        return replica_uri_local(r);
    }
    if (!f.node(r.node)) throw unavailable("node " + r.node + " is not registered");
    pb::ShareVolumeRequest sr;
    sr.mutable_volume()->set_pool(r.pool);
    sr.mutable_volume()->set_name(r.id);
    sr.set_nqn(replica_nqn_prefix + r.id);
    sr.add_allowed_hosts(nexus_node.host_nqn);
    pb::Share share;
    f.call(r.node, "sharing replica " + r.id,
           [&](auto& stub, auto* ctx) { return stub.ShareVolume(ctx, sr, &share); });
    return child_uri_of(r, nexus_node, f);
}

json service::publish(const std::string& id, const json& body) {
    check_volume_id(id);
    publish_request req = parse_publish_request(body);
    std::lock_guard g(ops_);
    auto cur = load_volume(id);
    if (!cur) throw not_found("no volume " + id);
    auto& [v, rev] = *cur;
    facts f(*this);
    if (v.published) {
        if (v.published->host_nqn != req.host_nqn)
            throw conflict(fmt::format("volume {} is published to {}", id, v.published->host_nqn));
        if (!v.published->nqn.empty()) return to_json(*v.published);
        // A publication a crash (or a failed undo) left half made: undone,
        // then made again.
        teardown_publication(v, f);
        v.published.reset();
        save_volume(v, rev);
    }
    if (v.phase != "ready") throw conflict(fmt::format("volume {} is {}", id, v.phase));
    // Every replica must answer: a nexus made over some of them could take
    // replicas that never saw the data for the volume (the others hold it).
    // A replica whose node stays away is replaced while the volume is
    // published; an unpublished volume waits for its nodes.
    need_every_replica(v, f, "is published");
    if (!req.node.empty() && !f.node(req.node)) throw not_found("no node " + req.node);
    // A node's load: the nexuses it holds (one pass over the volumes).
    std::map<std::string, unsigned> load;
    for (auto& e : st_.list("volumes/"))
        if (auto o = volume_from_json(parse_doc(e)); o.published) ++load[o.published->node];
    std::vector<node_facts> nodes = f.node_facts_now();
    for (auto& n : nodes) n.nexuses = load[n.id];
    std::vector<std::string> replica_nodes;
    for (auto& r : v.replicas) replica_nodes.push_back(r.node);
    std::string nn = place_nexus(req.node, replica_nodes, nodes);
    if (nn.empty()) throw unavailable("no node is online to hold the nexus of " + id);
    const node_rec& nexus_node = *f.node(nn);

    publication p;
    p.host_nqn = req.host_nqn;
    p.node = nn;
    std::tie(p.address, p.port) = split_endpoint(nexus_node.nvmf.front());
    v.published = p;  // recorded before the engines are asked: a crash can be undone
    save_volume(v, rev);
    try {
        pb::CreateNexusRequest cn;
        cn.set_uuid(id);
        cn.set_size_bytes(v.spec.size_bytes);
        for (auto& r : v.replicas) cn.add_children(child_uri(r, nexus_node, f));
        if (cn.children().empty()) throw unavailable("no replica of " + id + " is reachable");
        pb::Nexus nx;
        f.call(nn, "creating the nexus of " + id,
               [&](auto& stub, auto* ctx) { return stub.CreateNexus(ctx, cn, &nx); },
               {grpc::StatusCode::ALREADY_EXISTS});
        ensure_volume_key(v, rev, nn, f);
        v.published->nqn = share_nexus_on(nn, v, /*standby=*/false, f);
        make_standby(v, replica_nodes, f);
        save_volume(v, rev);
    } catch (const api_error&) {
        try {
            teardown_publication(v, f);
            v.published.reset();
        } catch (const api_error& e2) {
            // Kept (without its NQN): unpublish or publish again finishes
            // the undo; a nexus left on an engine must not be forgotten.
            spdlog::warn("volume {}: undoing a publication: {}", id, e2.what());
            v.published->nqn.clear();
        }
        save_volume(v, rev);
        throw;
    }
    record_event("volume-published", "volume/" + id,
                 fmt::format("volume {} published to {} through node {}", id, req.host_nqn, nn));
    return to_json(*v.published);
}

void service::unpublish(const std::string& id) {
    check_volume_id(id);
    std::lock_guard g(ops_);
    auto cur = load_volume(id);
    if (!cur) throw not_found("no volume " + id);
    auto& [v, rev] = *cur;
    if (!v.published) return;
    facts f(*this);
    teardown_publication(v, f);
    std::string host = v.published->host_nqn;
    v.published.reset();
    for (auto& r : v.replicas) unhealthy_since_.erase(r.id);
    // A replacement not in sync yet has no source without the nexus: it
    // leaves the volume (the replica it replaces stays).
    std::vector<replica_rec> unfinished;
    for (auto& r : v.replicas)
        if (!r.replaces.empty()) unfinished.push_back(r);
    std::erase_if(v.replicas, [](const replica_rec& r) { return !r.replaces.empty(); });
    if (unfinished.empty()) save_volume(v, rev);
    for (auto& r : unfinished) orphan(v, rev, r);
    record_event("volume-unpublished", "volume/" + id,
                 fmt::format("volume {} unpublished from {}", id, host));
}

// ---- the reconciler --------------------------------------------------------------

bool service::take_repair_token() {
    int64_t now = now_ms();
    std::erase_if(repairs_, [&](int64_t t) { return now - t > 60000; });
    if (repairs_.size() >= opt_.max_repairs_per_minute) return false;
    repairs_.push_back(now);
    return true;
}

void service::orphan(volume_rec& v, int64_t& rev, replica_rec o) {
    o.replaces.clear();
    json j = {{"id", o.id}, {"node", o.node}, {"pool", o.pool}, {"volume", v.id}};
    auto r = st_.commit(txn()
                            .expect(key_volume(v.id), rev)
                            .put(key_volume(v.id), to_json(v).dump())
                            .put("orphans/" + o.id, j.dump()));
    if (!r) throw conflict("volume " + v.id + " changed meanwhile: try again");
    rev = *r;
}

void service::reconcile() {
    if (!opt_.lead.leads()) {
        leading_since_ = 0;  // when it leads again, the grace starts again
        return;              // a standby repairs nothing
    }
    std::lock_guard g(ops_);
    auto t0 = std::chrono::steady_clock::now();
    size_t nvol = 0;
    struct timed {
        std::chrono::steady_clock::time_point t0;
        size_t& n;
        std::atomic<double>& ms;
        std::atomic<size_t>& vols;
        ~timed() {
            ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                     .count();
            vols = n;
        }
    } timing{t0, nvol, last_pass_ms_, last_pass_volumes_};
    facts f(*this);
    // Orphans whose node answers again are destroyed.
    for (auto& e : st_.list("orphans/")) {
        try {
            json j = parse_doc(e);
            replica_rec o{j.at("id"), j.at("node"), j.at("pool"), ""};
            if (!f.online(o.node)) continue;
            destroy_replica(o, f);
            st_.commit(txn().expect(e.key, e.revision).del(e.key));
            record_event("replica-destroyed", "volume/" + j.value("volume", std::string()),
                         fmt::format("replica {} on node {} (taken out of volume {}) destroyed",
                                     o.id, o.node, j.value("volume", std::string())));
        } catch (const std::exception& err) {
            spdlog::warn("reconcile {}: {}", e.key, err.what());
        }
    }
    erase_owed_keys(f);
    for (auto& e : st_.list("volumes/")) {
        ++nvol;
        try {
            volume_rec v = volume_from_json(parse_doc(e));
            int64_t rev = e.revision;
            reconcile_volume(v, rev, f);
        } catch (const std::exception& err) {
            // One volume's trouble (an engine, the store, a bad record) does
            // not stop the others.
            spdlog::warn("reconcile {}: {}", e.key, err.what());
        }
    }
}

void service::reconcile_volume(volume_rec& v, int64_t& rev, facts& f) {
    // Only a published volume has a nexus to rebuild a replacement from.
    if (v.phase != "ready" || !v.published || v.published->nqn.empty()) return;
    if (!f.online(v.published->node)) return switch_over(v, rev, f);
    if (!v.published->standby.empty() && !v.published->standby_ready &&
        f.online(v.published->standby))
        return restore_standby(v, rev, f);
    const std::string& nn = v.published->node;
    auto l = f.nexuses_of(nn);
    if (!l) return;  // its nexus's node does not answer: not ours to repair here
    const pb::Nexus* nx = nullptr;
    for (auto& x : l->nexuses())
        if (x.uuid() == v.id) nx = &x;
    if (nx && nx->state() == "waiting") return answer_arbiter(v, rev, f, *nx);
    // A nexus that holds writes or was superseded: its children's states
    // are not facts to repair from.
    if (!nx || (nx->state() != "online" && nx->state() != "degraded")) return;
    auto child_of = [&](const replica_rec& r) -> const pb::NexusChild* {
        for (auto& c : nx->children())
            if (c.uri().find(r.id) != std::string::npos) return &c;
        return nullptr;
    };
    const node_rec& nexus_node = *f.node(nn);
    int64_t now = f.now;

    // A resize whose nexus could not grow then (a rebuild ran).
    if (nx->size_bytes() < v.spec.size_bytes && grow_nexus(v, f))
        record_event("nexus-grown", "volume/" + v.id,
                     fmt::format("volume {}: its nexus grew from {} to {} bytes", v.id,
                                 nx->size_bytes(), v.spec.size_bytes));

    // A replacement in sync: the replica it replaces leaves the nexus and
    // is destroyed (or kept as an orphan until its node answers).
    for (auto& r : v.replicas) {
        if (r.replaces.empty()) continue;
        auto c = child_of(r);
        if (!c || c->state() != "online") continue;
        auto old = std::find_if(v.replicas.begin(), v.replicas.end(),
                                [&](const replica_rec& x) { return x.id == r.replaces; });
        std::string old_id = r.replaces;
        std::string new_id = r.id;  // r is not valid after the erase below
        r.replaces.clear();
        if (old != v.replicas.end()) {
            replica_rec o = *old;
            if (auto oc = child_of(o)) {
                pb::RemoveChildRequest rc;
                rc.set_uuid(v.id);
                rc.set_child(oc->uri());
                pb::Nexus out;
                f.call(nn, "removing replica " + o.id + " from the nexus of " + v.id,
                       [&](auto& stub, auto* ctx) { return stub.RemoveChild(ctx, rc, &out); },
                       {grpc::StatusCode::NOT_FOUND});
            }
            v.replicas.erase(old);
            unhealthy_since_.erase(o.id);
            orphan(v, rev, o);
        } else {
            save_volume(v, rev);
        }
        record_event("replica-replaced", "volume/" + v.id,
                     fmt::format("volume {}: replica {} is in sync; replica {} removed", v.id,
                                 new_id, old_id));
        return;  // the rest next pass, from fresh facts
    }

    // A replica whose node now serves NVMe/TCP at another address (it came
    // back with a new one): its child is pointed there, keeping its place in
    // the nexus, so that it is rebuilt over what it missed only.
    for (auto& r : v.replicas) {
        auto c = child_of(r);
        const node_rec* rn = f.node(r.node);
        if (!c || r.node == nn || !rn || !f.online(r.node)) continue;
        bool current = std::any_of(rn->nvmf.begin(), rn->nvmf.end(), [&](const std::string& ep) {
            return c->uri() == "nvmf://" + ep + "/" + replica_nqn_prefix + r.id;
        });
        if (current || rn->nvmf.empty()) continue;
        if (!take_repair_token()) return;
        pb::RepointChildRequest rq;
        rq.set_uuid(v.id);
        rq.set_child(c->uri());
        rq.set_uri(child_uri(r, nexus_node, f));
        pb::Nexus out;
        f.call(nn, "re-pointing replica " + r.id + " in the nexus of " + v.id,
               [&](auto& stub, auto* ctx) { return stub.RepointChild(ctx, rq, &out); });
        record_event("replica-repointed", "volume/" + v.id,
                     fmt::format("volume {}: node {} serves replica {} at {} now (was {}); the "
                                 "nexus reaches it there and rebuilds what it missed",
                                 v.id, r.node, r.id, rq.uri(), c->uri()));
        return;
    }

    // A replica its nexus lacks (left out of a switchover while its node
    // was away) whose node answers again: added back, and rebuilt.
    for (auto& r : v.replicas) {
        if (child_of(r) || !r.replaces.empty() || !f.online(r.node)) continue;
        if (std::any_of(v.replicas.begin(), v.replicas.end(),
                        [&](const replica_rec& x) { return x.replaces == r.id; }))
            continue;
        if (!take_repair_token()) return;
        add_child(v, r, nexus_node, f);
        unhealthy_since_.erase(r.id);
        record_event("replica-readded", "volume/" + v.id,
                     fmt::format("volume {}: replica {} on node {} answers again; added back to "
                                 "the nexus and rebuilt",
                                 v.id, r.id, r.node));
        return;
    }

    // Which replicas have not been online for too long.
    bool replacing = std::any_of(v.replicas.begin(), v.replicas.end(),
                                 [](const replica_rec& r) { return !r.replaces.empty(); });
    for (auto& r : v.replicas) {
        auto c = child_of(r);
        // A child waiting for its turn to be rebuilt is on its way too.
        bool healthy =
            c && (c->state() == "online" || c->state() == "rebuilding" || c->has_rebuild());
        if (healthy) {
            unhealthy_since_.erase(r.id);
            continue;
        }
        auto [it, fresh] = unhealthy_since_.emplace(r.id, now);
        // A node offline since its last beat counts from then.
        if (const node_rec* n = f.node(r.node); n && !f.online(r.node))
            it->second = std::min(it->second, n->last_seen_ms);
        if (now - it->second < opt_.replace_after.count()) continue;
        if (!r.replaces.empty()) {
            // A replacement that never came online: given up; the replica
            // it replaces is tried again after another --replace-after.
            replica_rec gone = r;
            unhealthy_since_[gone.replaces] = now;
            if (c) {
                pb::RemoveChildRequest rc;
                rc.set_uuid(v.id);
                rc.set_child(c->uri());
                pb::Nexus out;
                f.call(nn, "removing replica " + gone.id + " from the nexus of " + v.id,
                       [&](auto& stub, auto* ctx) { return stub.RemoveChild(ctx, rc, &out); },
                       {grpc::StatusCode::NOT_FOUND});
            }
            std::erase_if(v.replicas, [&](const replica_rec& x) { return x.id == gone.id; });
            unhealthy_since_.erase(gone.id);
            orphan(v, rev, gone);
            record_event("replica-replace-failed", "volume/" + v.id,
                         fmt::format("volume {}: replacement replica {} on node {} was not in "
                                     "sync after {} s; given up",
                                     v.id, gone.id, gone.node, (now - it->second) / 1000));
            return;
        }
        if (replacing) continue;
        bool is_replaced = std::any_of(v.replicas.begin(), v.replicas.end(),
                                       [&](const replica_rec& x) { return x.replaces == r.id; });
        if (is_replaced) continue;
        // A new replica on a node the volume does not use yet (nor one that
        // holds an orphan of it: that node failed it before).
        std::vector<node_facts> nodes = f.node_facts_now();
        std::vector<pool_facts> pools = f.pool_facts_now();
        placement_request pr;
        pr.bytes = v.spec.size_bytes + replica_overhead;
        pr.replicas = 1;
        pr.thin = v.spec.thin;
        pr.selector = v.spec.selector;
        pr.overcommit = opt_.overcommit;
        for (auto& e : st_.list("orphans/"))
            if (json j = parse_doc(e); j.value("volume", std::string()) == v.id)
                pr.exclude_nodes.insert(j.value("node", std::string()));
        for (auto& x : v.replicas) {
            pr.exclude_nodes.insert(x.node);
            if (auto n = f.node(x.node); n && x.id != r.id && n->node_labels.contains("zone"))
                pr.used_zones.insert(n->node_labels.at("zone"));
        }
        auto pl = place_replicas(pr, nodes, pools);
        if (!pl) {
            it->second = now;  // the next try (and event) after another --replace-after
            record_event("replica-replace-failed", "volume/" + v.id,
                         fmt::format("volume {}: replica {} on node {} has been {} for {} s; no "
                                     "room for a replacement: {}",
                                     v.id, r.id, r.node, c ? c->state() : "missing",
                                     (now - it->second) / 1000, pl.error));
            return;
        }
        if (!take_repair_token()) {
            spdlog::warn(
                "volume {}: replica {} needs replacing; waiting (at most {} repairs a "
                "minute)",
                v.id, r.id, opt_.max_repairs_per_minute);
            return;
        }
        auto pit = std::find_if(pools.begin(), pools.end(),
                                [&](auto& p) { return p.name == pl.pools.front(); });
        replica_rec nr{random_uuid(), pit->node, pit->name, r.id};
        // Recorded first: a crash leaves a replica the next pass knows of.
        v.replicas.push_back(nr);
        save_volume(v, rev);
        try {
            add_replacement(v, nr, nexus_node, f);
        } catch (const api_error&) {
            // Not made, or made and perhaps added (a call that timed out):
            // out of the nexus (best effort) and of the volume, destroyed
            // when its node answers; the next try after --replace-after.
            it->second = now;
            try {
                pb::RemoveChildRequest rc;
                rc.set_uuid(v.id);
                rc.set_child(child_uri_of(nr, nexus_node, f));
                pb::Nexus out;
                f.call(nn, "removing replica " + nr.id + " from the nexus of " + v.id,
                       [&](auto& stub, auto* ctx) { return stub.RemoveChild(ctx, rc, &out); },
                       {grpc::StatusCode::NOT_FOUND, grpc::StatusCode::INVALID_ARGUMENT});
            } catch (const api_error& e2) {
                spdlog::warn("volume {}: {}", v.id, e2.what());
            }
            std::erase_if(v.replicas, [&](const replica_rec& x) { return x.id == nr.id; });
            orphan(v, rev, nr);
            throw;
        }
        record_event("replica-replacing", "volume/" + v.id,
                     fmt::format("volume {}: replica {} on node {} has been {} for {} s; a new "
                                 "replica {} on node {} is being rebuilt",
                                 v.id, r.id, r.node, c ? c->state() : "missing",
                                 (now - it->second) / 1000, nr.id, nr.node));
        return;
    }
}

void service::add_replacement(const volume_rec& v, const replica_rec& nr,
                              const node_rec& nexus_node, facts& f) {
    pb::CreateVolumeRequest cv;
    cv.set_pool(nr.pool);
    cv.set_name(nr.id);
    cv.set_size_bytes(v.spec.size_bytes + replica_overhead);
    cv.set_thick(!v.spec.thin);
    pb::Volume made;
    f.call(nr.node, "creating replica " + nr.id,
           [&](auto& stub, auto* ctx) { return stub.CreateVolume(ctx, cv, &made); },
           {grpc::StatusCode::ALREADY_EXISTS});
    add_child(v, nr, nexus_node, f);
}

// Replica r into the volume's nexus on `nexus_node` (shared to it first
// unless local); there already is fine. The nexus rebuilds it.
void service::add_child(const volume_rec& v, const replica_rec& r, const node_rec& nexus_node,
                        facts& f) {
    pb::AddChildRequest ac;
    ac.set_uuid(v.id);
    ac.set_child(child_uri(r, nexus_node, f));
    pb::Nexus out;
    f.call(nexus_node.id, "adding replica " + r.id + " to the nexus of " + v.id,
           [&](auto& stub, auto* ctx) { return stub.AddChild(ctx, ac, &out); },
           {grpc::StatusCode::ALREADY_EXISTS});
}

// ---- events ----------------------------------------------------------------------

// Adds the next event (and the sequence's compare) to t.
static void add_event(txn& t, const std::optional<kv>& seq_kv, const std::string& kind,
                      const std::string& object, const std::string& message) {
    int64_t seq = seq_kv ? std::stoll(seq_kv->value) + 1 : 1;
    event_rec e{seq, now_ms(), kind, object, message};
    t.expect("meta/event_seq", seq_kv ? seq_kv->revision : 0)
        .put("meta/event_seq", std::to_string(seq))
        .put(fmt::format("events/{:016}", seq), to_json(e).dump());
    if (seq > 1000) t.del(fmt::format("events/{:016}", seq - 1000));  // keep the last 1000
}

void service::record_event(const std::string& kind, const std::string& object,
                           const std::string& message) {
    spdlog::info("event {}: {}", kind, message);
    try {
        for (unsigned attempt = 0; attempt < 16; ++attempt) {
            txn t;
            add_event(t, st_.get("meta/event_seq"), kind, object, message);
            if (st_.commit(t)) return;
        }
    } catch (const store_error& e) {
        spdlog::warn("event {} not recorded: {}", kind, e.what());
    }
}

std::optional<int64_t> service::commit_with_event(const txn& change, const std::string& kind,
                                                  const std::string& object,
                                                  const std::string& message) {
    for (unsigned attempt = 0; attempt < 16; ++attempt) {
        txn t = change;
        add_event(t, st_.get("meta/event_seq"), kind, object, message);
        if (auto r = st_.commit(t)) {
            spdlog::info("event {}: {}", kind, message);
            return r;
        }
        // The change's own compares failed (not only the event sequence's,
        // which another event moved meanwhile): the caller's conflict.
        for (auto& c : change.compares) {
            auto cur = st_.get(c.key);
            if ((cur ? cur->revision : 0) != c.revision) return std::nullopt;
        }
    }
    // The sequence kept moving: the change alone, its event in a commit of its own.
    auto r = st_.commit(change);
    if (r) record_event(kind, object, message);
    return r;
}

json service::events(int64_t since, unsigned limit) {
    json out = json::array();
    for (auto& e : st_.list("events/")) {
        auto ev = event_from_json(parse_doc(e));
        if (ev.seq <= since) continue;
        out.push_back(to_json(ev));
        if (out.size() >= limit) break;
    }
    return {{"events", out}};
}

}  // namespace weft::control
