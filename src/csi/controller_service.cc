#include "csi/controller_service.h"

#include <algorithm>
#include <charconv>
#include <regex>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "csi/capabilities.h"
#include "csi/names.h"
#include "csi/parameters.h"

namespace weft::csi {

namespace v1 = ::csi::v1;
using grpc::Status;
using grpc::StatusCode;
using json = nlohmann::json;

namespace {

constexpr uint64_t MiB = 1 << 20;
constexpr uint64_t default_size = 1ull << 30;  // a CreateVolume with no capacity range

Status bad(const std::string& why) {
    return {StatusCode::INVALID_ARGUMENT, why};
}
Status busy(const std::string& what) {
    return {StatusCode::ABORTED, "an operation on " + what + " is in flight: try again"};
}

// A REST answer that is not a success, as a gRPC status. `on_conflict`: what
// a 409 means for this call (ALREADY_EXISTS for creates, FAILED_PRECONDITION
// for a volume in use, ABORTED for "changed meanwhile").
Status status_of(const control::rest_answer& a, StatusCode on_conflict = StatusCode::ABORTED) {
    if (!a.reached) return {StatusCode::UNAVAILABLE, "weft-control: " + a.detail};
    switch (a.status) {
        case 400:
            return {StatusCode::INVALID_ARGUMENT, a.detail};
        case 404:
            return {StatusCode::NOT_FOUND, a.detail};
        case 409:
            return {on_conflict, a.detail};
        case 503:
            return {StatusCode::UNAVAILABLE, a.detail};
        case 507:
            return {StatusCode::RESOURCE_EXHAUSTED, a.detail};
        default:
            return {StatusCode::INTERNAL, fmt::format("weft-control: {}", a.detail)};
    }
}
bool ok(const control::rest_answer& a) {
    return a.reached && a.status < 300;
}
bool gone(const control::rest_answer& a) {
    return a.reached && a.status == 404;
}

// The size a capacity range asks for, in whole MiB: the required bytes
// rounded up (or `floor`, or 1 GiB, when none is required), within the
// limit. `floor`: the least the volume can be (a snapshot's size).
struct size_choice {
    uint64_t bytes = 0;
    Status error;
};
size_choice choose_size(const v1::CapacityRange* r, uint64_t floor) {
    int64_t req = r ? r->required_bytes() : 0, lim = r ? r->limit_bytes() : 0;
    if (req < 0 || lim < 0) return {0, bad("a capacity range cannot be negative")};
    if (lim && req > lim)
        return {0,
                {StatusCode::OUT_OF_RANGE,
                 fmt::format("the required {} bytes exceed the limit of {}", req, lim)}};
    uint64_t bytes;
    if (req) {
        bytes = std::max<uint64_t>((uint64_t(req) + MiB - 1) / MiB * MiB, floor);
    } else {
        // Nothing required: the default (or the floor), within a limit that
        // is rounded down to whole MiB.
        bytes = std::max<uint64_t>(floor, default_size);
        if (lim)
            bytes = std::max<uint64_t>(std::min<uint64_t>(bytes, uint64_t(lim) / MiB * MiB), floor);
        bytes = (bytes + MiB - 1) / MiB * MiB;
    }
    if (bytes == 0)
        return {0,
                {StatusCode::OUT_OF_RANGE,
                 fmt::format("no whole MiB fits within the limit of {} bytes", lim)}};
    if (lim && bytes > uint64_t(lim))
        return {0,
                {StatusCode::OUT_OF_RANGE,
                 fmt::format("no size of whole MiB (at least {} bytes) is within the limit "
                             "of {} bytes",
                             std::max<uint64_t>(floor, req), lim)}};
    return {bytes, Status::OK};
}

uint64_t size_of(const json& volume) {
    return volume["spec"].value("size_bytes", uint64_t(0));
}

std::string source_snapshot_of(const json& volume) {
    const json& spec = volume["spec"];
    if (spec.contains("source") && spec["source"].is_object())
        return spec["source"].value("snapshot", std::string());
    return {};
}

// The CSI volume weft-control's volume JSON describes.
void fill_volume(const json& v, v1::Volume* out) {
    std::string id = v.value("id", std::string());
    out->set_volume_id(id);
    out->set_capacity_bytes(int64_t(size_of(v)));
    std::string snap = source_snapshot_of(v);
    // A clone of a volume is made through a snapshot of its own: its source
    // volume is not recorded, so it is not named.
    if (!snap.empty() && snap != clone_snapshot_id_of(id))
        out->mutable_content_source()->mutable_snapshot()->set_snapshot_id(snap);
}

// Its node (as a CSI node ID) and condition.
template <class VolumeStatus>
void fill_status(const json& v, VolumeStatus* out) {
    if (v.contains("published") && v["published"].is_object()) {
        auto node = node_of_host_nqn(v["published"].value("host_nqn", std::string()));
        if (node) out->add_published_node_ids(*node);
    }
    std::string state = v.value("state", std::string());
    auto* c = out->mutable_volume_condition();
    c->set_abnormal(state != "online");
    c->set_message(state == "rebuilding"
                       ? fmt::format("rebuilding, {}%", v.value("rebuild_percent", 0))
                       : state);
}

void fill_snapshot(const json& s, v1::Snapshot* out) {
    out->set_snapshot_id(s.value("id", std::string()));
    out->set_source_volume_id(s.value("volume", std::string()));
    out->set_size_bytes(s.value("size_bytes", int64_t(0)));
    int64_t ms = s.value("created_ms", int64_t(0));
    out->mutable_creation_time()->set_seconds(ms / 1000);
    out->mutable_creation_time()->set_nanos(int32_t(ms % 1000) * 1000000);
    out->set_ready_to_use(s.value("phase", std::string()) == "ready");
}

// The page of `all` (sorted by "id") that a starting token and a maximum
// select; the token is the index of the first entry.
struct page {
    size_t from = 0, to = 0;
    std::string next;
    Status error;
};
page page_of(size_t n, const std::string& token, int32_t max_entries) {
    page p;
    if (max_entries < 0) return {0, 0, {}, bad("max_entries cannot be negative")};
    if (!token.empty()) {
        auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), p.from);
        if (ec != std::errc() || end != token.data() + token.size() || p.from > n)
            return {0,
                    0,
                    {},
                    {StatusCode::ABORTED, "starting_token " + token +
                                              " is not one "
                                              "this plugin gave (or the list shrank)"}};
    }
    p.to = max_entries ? std::min(n, p.from + size_t(max_entries)) : n;
    if (p.to < n) p.next = std::to_string(p.to);
    return p;
}

std::vector<json> sorted_by_id(json list) {
    std::vector<json> out(list.begin(), list.end());
    std::sort(out.begin(), out.end(), [](const json& a, const json& b) {
        return a.value("id", std::string()) < b.value("id", std::string());
    });
    return out;
}

bool valid_node_id(const std::string& s) {
    static const std::regex re("^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$");
    return std::regex_match(s, re);
}

// Whether a node's facts match a topology segment map.
bool in_topology(const json& node, const v1::Topology& t) {
    constexpr std::string_view prefix = "topology.weft.io/";
    for (auto& [k, v] : t.segments()) {
        if (!k.starts_with(prefix)) return false;
        std::string key = k.substr(prefix.size());
        if (key == "node") {
            if (node.value("id", std::string()) != v) return false;
        } else if (!node.contains("labels") || node["labels"].value(key, std::string()) != v) {
            return false;
        }
    }
    return true;
}

}  // namespace

// ---- volumes ---------------------------------------------------------------------

Status controller_service::CreateVolume(ctx*, const v1::CreateVolumeRequest* req,
                                        v1::CreateVolumeResponse* res) {
    if (req->name().empty()) return bad("CreateVolume needs a name");
    if (req->volume_capabilities().empty()) return bad("CreateVolume needs volume capabilities");
    for (auto& c : req->volume_capabilities())
        if (auto why = capability_problem(c); !why.empty()) return bad(why);
    parameters_result pr = parse_parameters({req->parameters().begin(), req->parameters().end()});
    if (!pr.error.empty()) return bad(pr.error);
    const volume_parameters& params = pr.p;
    std::string id = volume_id_of(req->name());
    inflight_guard g(busy_, "volume:" + id);
    if (!g) return busy("volume " + req->name());

    // Where its data comes from: a snapshot, or a snapshot taken of a
    // volume for the purpose.
    std::string source_volume, source_snapshot;
    uint64_t floor = 0;
    unsigned source_replicas = 0;
    if (req->has_volume_content_source()) {
        const auto& src = req->volume_content_source();
        if (src.has_snapshot()) {
            source_snapshot = src.snapshot().snapshot_id();
            if (!is_weft_id(source_snapshot))
                return {StatusCode::NOT_FOUND, "no snapshot " + source_snapshot};
            auto s = control_.request("GET", "/v1/snapshots/" + source_snapshot);
            if (!ok(s)) return status_of(s);
            if (s.body.value("phase", std::string()) != "ready")
                return {StatusCode::ABORTED, "snapshot " + source_snapshot + " is not ready"};
            floor = s.body.value("size_bytes", uint64_t(0));
            source_replicas = unsigned(s.body["replicas"].size());
        } else if (src.has_volume()) {
            source_volume = src.volume().volume_id();
            if (!is_weft_id(source_volume))
                return {StatusCode::NOT_FOUND, "no volume " + source_volume};
            auto s = control_.request("GET", "/v1/volumes/" + source_volume);
            if (!ok(s)) return status_of(s);
            floor = size_of(s.body);
            source_snapshot = clone_snapshot_id_of(id);
            source_replicas = unsigned(s.body["replicas"].size());
        } else {
            return bad("a volume content source names a snapshot or a volume");
        }
    }
    size_choice size =
        choose_size(req->has_capacity_range() ? &req->capacity_range() : nullptr, floor);
    if (!size.error.ok()) return size.error;
    bool clone = !source_snapshot.empty();

    json spec = {{"size_bytes", clone ? floor : size.bytes}, {"thin", clone || params.thin}};
    if (params.replicas)
        spec["replicas"] = *params.replicas;
    else if (clone)
        spec["replicas"] = std::min(3u, source_replicas);
    if (!params.selector.empty()) spec["selector"] = params.selector;
    if (clone) spec["source"] = {{"snapshot", source_snapshot}};

    auto fill = [&](uint64_t bytes) {
        v1::Volume* v = res->mutable_volume();
        v->set_volume_id(id);
        v->set_capacity_bytes(int64_t(bytes));
        for (auto& [k, val] : volume_context_of(params)) (*v->mutable_volume_context())[k] = val;
        if (req->has_volume_content_source())
            *v->mutable_content_source() = req->volume_content_source();
        return Status::OK;
    };

    // A retry (or a name used again): the same volume, or ALREADY_EXISTS.
    // A clone is made at its source's size, then grown: a retry may find it
    // at either.
    auto cur = control_.request("GET", "/v1/volumes/" + id);
    bool make = gone(cur);
    if (ok(cur)) {
        const json& s = cur.body["spec"];
        uint64_t has = size_of(cur.body);
        bool same = (has == size.bytes || (clone && has == floor)) &&
                    s.value("thin", true) == spec["thin"].get<bool>() &&
                    (!spec.contains("replicas") || s.value("replicas", 0u) == spec["replicas"]) &&
                    source_snapshot_of(cur.body) == source_snapshot;
        if (!same)
            return {StatusCode::ALREADY_EXISTS,
                    fmt::format("volume {} exists ({}) with another size, source or parameters "
                                "({} bytes, {} replicas)",
                                req->name(), id, has, s.value("replicas", 0))};
        std::string state = cur.body.value("state", std::string());
        if (state == "deleting") return {StatusCode::ABORTED, "volume " + id + " is being deleted"};
        if (state != "creating" && has == size.bytes) return fill(size.bytes);
        make = state == "creating";  // a create that stopped half-way: made again
    } else if (!make) {
        return status_of(cur);
    }

    if (make) {
        if (!source_volume.empty()) {
            json snap = {{"volume", source_volume}};
            auto s = control_.request("PUT", "/v1/snapshots/" + source_snapshot, &snap);
            if (!ok(s)) return status_of(s);
        }
        auto made = control_.request("PUT", "/v1/volumes/" + id, &spec);
        if (!ok(made)) return status_of(made, StatusCode::ALREADY_EXISTS);
    }
    if (clone && size.bytes > floor) {
        json grow = {{"size_bytes", size.bytes}};
        auto r = control_.request("PUT", "/v1/volumes/" + id + "/size", &grow);
        if (!ok(r)) return status_of(r);
    }
    spdlog::info("CreateVolume {}: volume {}, {} bytes", req->name(), id, size.bytes);
    return fill(size.bytes);
}

Status controller_service::DeleteVolume(ctx*, const v1::DeleteVolumeRequest* req,
                                        v1::DeleteVolumeResponse*) {
    const std::string& id = req->volume_id();
    if (id.empty()) return bad("DeleteVolume needs a volume_id");
    if (!is_weft_id(id)) return Status::OK;  // names nothing: nothing to delete
    inflight_guard g(busy_, "volume:" + id);
    if (!g) return busy("volume " + id);
    auto d = control_.request("DELETE", "/v1/volumes/" + id);
    if (!ok(d) && !gone(d)) return status_of(d, StatusCode::FAILED_PRECONDITION);
    // The snapshot a clone of a volume was made through goes with it.
    auto s = control_.request("DELETE", "/v1/snapshots/" + clone_snapshot_id_of(id));
    if (!ok(s) && !gone(s)) return status_of(s);
    if (ok(d)) spdlog::info("DeleteVolume {}", id);
    return Status::OK;
}

Status controller_service::ControllerPublishVolume(ctx*,
                                                   const v1::ControllerPublishVolumeRequest* req,
                                                   v1::ControllerPublishVolumeResponse* res) {
    const std::string& id = req->volume_id();
    if (id.empty()) return bad("ControllerPublishVolume needs a volume_id");
    if (req->node_id().empty()) return bad("ControllerPublishVolume needs a node_id");
    if (!req->has_volume_capability())
        return bad("ControllerPublishVolume needs a volume capability");
    if (auto why = capability_problem(req->volume_capability()); !why.empty()) return bad(why);
    if (!is_weft_id(id)) return {StatusCode::NOT_FOUND, "no volume " + id};
    if (!valid_node_id(req->node_id()))
        return {StatusCode::NOT_FOUND, "no weft node " + req->node_id()};
    inflight_guard g(busy_, "volume:" + id);
    if (!g) return busy("volume " + id);
    auto v = control_.request("GET", "/v1/volumes/" + id);
    if (!ok(v)) return status_of(v);
    // A storage node (the nexus may go there), or a host its node plugin
    // registered (an application-only node).
    auto n = control_.request("GET", "/v1/nodes/" + req->node_id());
    bool storage_node = ok(n);
    if (gone(n)) {
        n = control_.request("GET", "/v1/hosts/" + req->node_id());
        if (gone(n))
            return {StatusCode::NOT_FOUND,
                    "no weft node or registered host " + req->node_id() +
                        " (weft-csi's node plugin registers its node with weft-control)"};
    }
    if (!ok(n)) return status_of(n);
    std::string host = host_nqn_of(req->node_id());
    json body = {{"host_nqn", host}};
    if (storage_node) body["node"] = req->node_id();
    auto p = control_.request("PUT", "/v1/volumes/" + id + "/publish", &body);
    if (!ok(p)) return status_of(p, StatusCode::FAILED_PRECONDITION);
    auto& c = *res->mutable_publish_context();
    c["nqn"] = p.body.value("nqn", std::string());
    c["address"] = p.body.value("address", std::string());
    c["port"] = std::to_string(p.body.value("port", 0));
    c["hostNqn"] = host;
    if (p.body.contains("standby") && p.body["standby"].is_object()) {
        c["standbyAddress"] = p.body["standby"].value("address", std::string());
        c["standbyPort"] = std::to_string(p.body["standby"].value("port", 0));
    }
    spdlog::info("ControllerPublishVolume {} to node {} (through node {})", id, req->node_id(),
                 p.body.value("node", std::string()));
    return Status::OK;
}

Status controller_service::ControllerUnpublishVolume(
    ctx*, const v1::ControllerUnpublishVolumeRequest* req, v1::ControllerUnpublishVolumeResponse*) {
    const std::string& id = req->volume_id();
    if (id.empty()) return bad("ControllerUnpublishVolume needs a volume_id");
    if (!is_weft_id(id)) return Status::OK;
    inflight_guard g(busy_, "volume:" + id);
    if (!g) return busy("volume " + id);
    auto v = control_.request("GET", "/v1/volumes/" + id);
    if (gone(v)) return Status::OK;
    if (!ok(v)) return status_of(v);
    const json& pub = v.body["published"];
    if (!pub.is_object()) return Status::OK;
    // Published to another node: not this node's to undo.
    if (!req->node_id().empty() &&
        pub.value("host_nqn", std::string()) != host_nqn_of(req->node_id()))
        return Status::OK;
    auto d = control_.request("DELETE", "/v1/volumes/" + id + "/publish");
    if (!ok(d) && !gone(d)) return status_of(d);
    spdlog::info("ControllerUnpublishVolume {} from node {}", id, req->node_id());
    return Status::OK;
}

Status controller_service::ValidateVolumeCapabilities(
    ctx*, const v1::ValidateVolumeCapabilitiesRequest* req,
    v1::ValidateVolumeCapabilitiesResponse* res) {
    const std::string& id = req->volume_id();
    if (id.empty()) return bad("ValidateVolumeCapabilities needs a volume_id");
    if (req->volume_capabilities().empty())
        return bad("ValidateVolumeCapabilities needs volume capabilities");
    if (!is_weft_id(id)) return {StatusCode::NOT_FOUND, "no volume " + id};
    auto v = control_.request("GET", "/v1/volumes/" + id);
    if (!ok(v)) return status_of(v);
    parameters_result pr = parse_parameters({req->parameters().begin(), req->parameters().end()});
    if (!pr.error.empty()) {
        res->set_message(pr.error);
        return Status::OK;
    }
    for (auto& c : req->volume_capabilities())
        if (auto why = capability_problem(c); !why.empty()) {
            res->set_message(why);
            return Status::OK;
        }
    auto* conf = res->mutable_confirmed();
    *conf->mutable_volume_context() = req->volume_context();
    *conf->mutable_volume_capabilities() = req->volume_capabilities();
    *conf->mutable_parameters() = req->parameters();
    *conf->mutable_mutable_parameters() = req->mutable_parameters();
    return Status::OK;
}

Status controller_service::ListVolumes(ctx*, const v1::ListVolumesRequest* req,
                                       v1::ListVolumesResponse* res) {
    auto l = control_.request("GET", "/v1/volumes");
    if (!ok(l)) return status_of(l);
    std::vector<json> all = sorted_by_id(l.body["volumes"]);
    page p = page_of(all.size(), req->starting_token(), req->max_entries());
    if (!p.error.ok()) return p.error;
    for (size_t i = p.from; i < p.to; ++i) {
        auto* e = res->add_entries();
        fill_volume(all[i], e->mutable_volume());
        fill_status(all[i], e->mutable_status());
    }
    res->set_next_token(p.next);
    return Status::OK;
}

Status controller_service::ControllerGetVolume(ctx*, const v1::ControllerGetVolumeRequest* req,
                                               v1::ControllerGetVolumeResponse* res) {
    const std::string& id = req->volume_id();
    if (id.empty()) return bad("ControllerGetVolume needs a volume_id");
    if (!is_weft_id(id)) return {StatusCode::NOT_FOUND, "no volume " + id};
    auto v = control_.request("GET", "/v1/volumes/" + id);
    if (!ok(v)) return status_of(v);
    fill_volume(v.body, res->mutable_volume());
    fill_status(v.body, res->mutable_status());
    return Status::OK;
}

Status controller_service::ControllerExpandVolume(ctx*,
                                                  const v1::ControllerExpandVolumeRequest* req,
                                                  v1::ControllerExpandVolumeResponse* res) {
    const std::string& id = req->volume_id();
    if (id.empty()) return bad("ControllerExpandVolume needs a volume_id");
    if (!req->has_capacity_range()) return bad("ControllerExpandVolume needs a capacity range");
    if (req->has_volume_capability())
        if (auto why = capability_problem(req->volume_capability()); !why.empty()) return bad(why);
    if (!is_weft_id(id)) return {StatusCode::NOT_FOUND, "no volume " + id};
    inflight_guard g(busy_, "volume:" + id);
    if (!g) return busy("volume " + id);
    auto v = control_.request("GET", "/v1/volumes/" + id);
    if (!ok(v)) return status_of(v);
    size_choice size = choose_size(&req->capacity_range(), 0);
    if (!size.error.ok()) return size.error;
    uint64_t now = size_of(v.body);
    // The node always has a part: its attachment reads the new size (a
    // block device grows there too), then a file system grows.
    res->set_node_expansion_required(true);
    if (size.bytes <= now) {
        res->set_capacity_bytes(int64_t(now));
        return Status::OK;
    }
    json body = {{"size_bytes", size.bytes}};
    auto r = control_.request("PUT", "/v1/volumes/" + id + "/size", &body);
    if (r.reached && r.status == 507) return {StatusCode::OUT_OF_RANGE, r.detail};
    if (!ok(r)) return status_of(r);
    res->set_capacity_bytes(int64_t(size.bytes));
    spdlog::info("ControllerExpandVolume {}: {} -> {} bytes", id, now, size.bytes);
    return Status::OK;
}

Status controller_service::GetCapacity(ctx*, const v1::GetCapacityRequest* req,
                                       v1::GetCapacityResponse* res) {
    for (auto& c : req->volume_capabilities())
        if (!capability_problem(c).empty()) return Status::OK;  // none for what weft does not serve
    parameters_result pr = parse_parameters({req->parameters().begin(), req->parameters().end()});
    if (!pr.error.empty()) return bad(pr.error);
    auto nodes = control_.request("GET", "/v1/nodes");
    if (!ok(nodes)) return status_of(nodes);
    auto pools = control_.request("GET", "/v1/pools");
    if (!ok(pools)) return status_of(pools);
    std::map<std::string, const json*> usable;  // online nodes in the topology
    for (auto& n : nodes.body["nodes"])
        if (n.value("state", "") == "online" &&
            (!req->has_accessible_topology() || in_topology(n, req->accessible_topology())))
            usable[n.value("id", std::string())] = &n;
    // Each replica needs a pool of its own, on a node of its own: the
    // largest volume is the R-th largest room among the nodes.
    std::map<std::string, uint64_t> room_of_node;
    uint64_t total = 0;
    for (auto& p : pools.body["pools"]) {
        if (p.value("state", "") != "online" || !usable.count(p.value("node", std::string())))
            continue;
        int64_t room =
            p.value("capacity_bytes", int64_t(0)) -
            std::max(p.value("used_bytes", int64_t(0)), p.value("committed_bytes", int64_t(0)));
        if (room <= 0) continue;
        uint64_t& best = room_of_node[p.value("node", std::string())];
        best = std::max(best, uint64_t(room));
        total += uint64_t(room);
    }
    std::vector<uint64_t> rooms;
    for (auto& [n, r] : room_of_node) rooms.push_back(r);
    std::sort(rooms.rbegin(), rooms.rend());
    unsigned replicas = pr.p.replicas.value_or(3);
    uint64_t largest = rooms.size() >= replicas ? rooms[replicas - 1] / MiB * MiB : 0;
    res->set_available_capacity(largest ? int64_t(total / replicas) : 0);
    res->mutable_maximum_volume_size()->set_value(int64_t(largest));
    res->mutable_minimum_volume_size()->set_value(int64_t(MiB));
    return Status::OK;
}

Status controller_service::ControllerGetCapabilities(ctx*,
                                                     const v1::ControllerGetCapabilitiesRequest*,
                                                     v1::ControllerGetCapabilitiesResponse* res) {
    using rpc = v1::ControllerServiceCapability::RPC;
    for (auto t : {rpc::CREATE_DELETE_VOLUME, rpc::PUBLISH_UNPUBLISH_VOLUME, rpc::LIST_VOLUMES,
                   rpc::GET_CAPACITY, rpc::CREATE_DELETE_SNAPSHOT, rpc::LIST_SNAPSHOTS,
                   rpc::CLONE_VOLUME, rpc::EXPAND_VOLUME, rpc::LIST_VOLUMES_PUBLISHED_NODES,
                   rpc::VOLUME_CONDITION, rpc::GET_VOLUME, rpc::SINGLE_NODE_MULTI_WRITER})
        res->add_capabilities()->mutable_rpc()->set_type(t);
    return Status::OK;
}

// ---- snapshots -------------------------------------------------------------------

Status controller_service::CreateSnapshot(ctx*, const v1::CreateSnapshotRequest* req,
                                          v1::CreateSnapshotResponse* res) {
    if (req->name().empty()) return bad("CreateSnapshot needs a name");
    const std::string& vol = req->source_volume_id();
    if (vol.empty()) return bad("CreateSnapshot needs a source_volume_id");
    if (!is_weft_id(vol)) return {StatusCode::NOT_FOUND, "no volume " + vol};
    std::string id = snapshot_id_of(req->name());
    inflight_guard g(busy_, "snapshot:" + id);
    if (!g) return busy("snapshot " + req->name());
    auto cur = control_.request("GET", "/v1/snapshots/" + id);
    if (ok(cur) && cur.body.value("volume", std::string()) != vol)
        return {StatusCode::ALREADY_EXISTS,
                fmt::format("snapshot {} exists ({}), of volume {}", req->name(), id,
                            cur.body.value("volume", std::string()))};
    if (!ok(cur) && !gone(cur)) return status_of(cur);
    json body = {{"volume", vol}};
    auto s = control_.request("PUT", "/v1/snapshots/" + id, &body);
    if (!ok(s)) return status_of(s);
    fill_snapshot(s.body, res->mutable_snapshot());
    if (!ok(cur)) spdlog::info("CreateSnapshot {}: snapshot {} of volume {}", req->name(), id, vol);
    return Status::OK;
}

Status controller_service::DeleteSnapshot(ctx*, const v1::DeleteSnapshotRequest* req,
                                          v1::DeleteSnapshotResponse*) {
    const std::string& id = req->snapshot_id();
    if (id.empty()) return bad("DeleteSnapshot needs a snapshot_id");
    if (!is_weft_id(id)) return Status::OK;
    inflight_guard g(busy_, "snapshot:" + id);
    if (!g) return busy("snapshot " + id);
    auto d = control_.request("DELETE", "/v1/snapshots/" + id);
    if (!ok(d) && !gone(d)) return status_of(d, StatusCode::FAILED_PRECONDITION);
    if (ok(d)) spdlog::info("DeleteSnapshot {}", id);
    return Status::OK;
}

Status controller_service::ListSnapshots(ctx*, const v1::ListSnapshotsRequest* req,
                                         v1::ListSnapshotsResponse* res) {
    const std::string& id = req->snapshot_id();
    const std::string& vol = req->source_volume_id();
    std::vector<json> all;
    if (!id.empty()) {
        if (!is_weft_id(id)) return Status::OK;
        auto s = control_.request("GET", "/v1/snapshots/" + id);
        if (gone(s)) return Status::OK;
        if (!ok(s)) return status_of(s);
        if (vol.empty() || s.body.value("volume", std::string()) == vol) all.push_back(s.body);
    } else {
        if (!vol.empty() && !is_weft_id(vol)) return Status::OK;
        auto l =
            control_.request("GET", vol.empty() ? "/v1/snapshots" : "/v1/snapshots?volume=" + vol);
        if (!ok(l)) return status_of(l);
        all = sorted_by_id(l.body["snapshots"]);
    }
    page p = page_of(all.size(), req->starting_token(), req->max_entries());
    if (!p.error.ok()) return p.error;
    for (size_t i = p.from; i < p.to; ++i)
        fill_snapshot(all[i], res->add_entries()->mutable_snapshot());
    res->set_next_token(p.next);
    return Status::OK;
}

}  // namespace weft::csi
