#include "control/model.h"

#include <sys/random.h>

#include <chrono>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "control/api_error.h"

namespace weft::control {

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string random_uuid() {
    uint8_t b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n > 0) got += size_t(n);
    }
    b[6] = uint8_t((b[6] & 0x0f) | 0x40);
    b[8] = uint8_t((b[8] & 0x3f) | 0x80);
    return fmt::format(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-"
        "{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
        b[14], b[15]);
}

bool is_uuid(const std::string& s) {
    if (s.size() != 36) return false;
    for (size_t i = 0; i < s.size(); ++i) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash != (s[i] == '-')) return false;
        if (!dash &&
            !(std::isdigit(static_cast<unsigned char>(s[i])) || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

bool is_name(const std::string& s) {
    if (s.empty() || s.size() > 63 || !std::isalnum(static_cast<unsigned char>(s[0]))) return false;
    for (char c : s)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
            return false;
    return true;
}

// ---- store documents -----------------------------------------------------------

json to_json(const node_rec& n) {
    return {{"id", n.id},
            {"api", n.api},
            {"nvmf", n.nvmf},
            {"host_nqn", n.host_nqn},
            {"labels", n.node_labels},
            {"cntlid_range", json::array({n.cntlid_min, n.cntlid_max})},
            {"heartbeat_ms", n.heartbeat_ms},
            {"registered_ms", n.registered_ms},
            {"last_seen_ms", n.last_seen_ms}};
}

json to_json(const host_rec& h) {
    return {{"id", h.id},
            {"host_nqn", h.host_nqn},
            {"labels", h.host_labels},
            {"registered_ms", h.registered_ms}};
}

json to_json(const pool_rec& p) {
    return {{"name", p.name},
            {"node", p.node},
            {"disk", p.disk},
            {"size", p.size},
            {"cluster_size", p.cluster_size}};
}

json to_json(const volume_spec& s) {
    json j = {{"size_bytes", s.size_bytes},
              {"replicas", s.replicas},
              {"thin", s.thin},
              {"selector", s.selector}};
    if (!s.source_snapshot.empty()) j["source"] = {{"snapshot", s.source_snapshot}};
    if (s.encrypted) j["encrypted"] = true;
    return j;
}

json to_json(const snapshot_rec& s) {
    json reps = json::array();
    for (auto& r : s.replicas)
        reps.push_back({{"node", r.node}, {"pool", r.pool}, {"replica", r.replica}});
    json j = {{"id", s.id},       {"volume", s.volume}, {"size_bytes", s.size_bytes},
              {"phase", s.phase}, {"replicas", reps},   {"created_ms", s.created_ms}};
    if (s.encrypted) j["encrypted"] = true;
    if (!s.wrapped_key.empty()) j["wrapped_key"] = s.wrapped_key;
    return j;
}

snapshot_rec snapshot_from_json(const json& j) {
    snapshot_rec s;
    s.id = j.at("id");
    s.volume = j.at("volume");
    s.size_bytes = j.at("size_bytes");
    s.phase = j.at("phase");
    for (auto& r : j.at("replicas"))
        s.replicas.push_back({r.at("node"), r.at("pool"), r.at("replica")});
    s.created_ms = j.at("created_ms");
    s.encrypted = j.value("encrypted", false);
    s.wrapped_key = j.value("wrapped_key", "");
    return s;
}

json to_json(const publication& p) {
    json j = {{"host_nqn", p.host_nqn},     {"node", p.node},       {"nqn", p.nqn},
              {"transport", "tcp"},         {"address", p.address}, {"port", p.port},
              {"connect", connect_line(p)}, {"standby", nullptr}};
    if (p.arbiter_generation) j["arbiter_generation"] = p.arbiter_generation;
    if (!p.standby.empty()) {
        publication s = p;
        s.address = p.standby_address;
        s.port = p.standby_port;
        j["standby"] = {{"node", p.standby},
                        {"address", p.standby_address},
                        {"port", p.standby_port},
                        {"ready", p.standby_ready},
                        {"connect", connect_line(s)}};
    }
    return j;
}

static json replicas_json(const std::vector<replica_rec>& rs) {
    json out = json::array();
    for (auto& r : rs) {
        json j = {{"id", r.id}, {"node", r.node}, {"pool", r.pool}};
        if (!r.replaces.empty()) j["replaces"] = r.replaces;
        out.push_back(j);
    }
    return out;
}

static std::vector<replica_rec> replicas_from_json(const json& j) {
    std::vector<replica_rec> out;
    for (auto& r : j)
        out.push_back({r.at("id"), r.at("node"), r.at("pool"), r.value("replaces", "")});
    return out;
}

json to_json(const volume_rec& v) {
    return {{"id", v.id},
            {"spec", to_json(v.spec)},
            {"phase", v.phase},
            {"replicas", replicas_json(v.replicas)},
            {"published", v.published ? to_json(*v.published) : json(nullptr)},
            {"created_ms", v.created_ms},
            {"wrapped_key", v.wrapped_key}};
}

json to_json(const event_rec& e) {
    return {{"seq", e.seq},
            {"time_ms", e.time_ms},
            {"kind", e.kind},
            {"object", e.object},
            {"message", e.message}};
}

node_rec node_from_json(const json& j) {
    node_rec n;
    n.id = j.at("id");
    n.api = j.at("api");
    n.nvmf = j.at("nvmf").get<std::vector<std::string>>();
    n.host_nqn = j.at("host_nqn");
    n.node_labels = j.at("labels").get<labels>();
    if (j.contains("cntlid_range")) {  // absent in records older than it
        n.cntlid_min = j["cntlid_range"].at(0);
        n.cntlid_max = j["cntlid_range"].at(1);
    }
    n.heartbeat_ms = j.at("heartbeat_ms");
    n.registered_ms = j.at("registered_ms");
    n.last_seen_ms = j.at("last_seen_ms");
    return n;
}

host_rec host_from_json(const json& j) {
    return host_rec{j.at("id"), j.at("host_nqn"), j.at("labels").get<labels>(),
                    j.at("registered_ms")};
}

pool_rec pool_from_json(const json& j) {
    return pool_rec{j.at("name"), j.at("node"), j.at("disk"), j.at("size"), j.at("cluster_size")};
}

static volume_spec spec_from_json(const json& j) {
    volume_spec s;
    s.size_bytes = j.at("size_bytes");
    s.replicas = j.at("replicas");
    s.thin = j.at("thin");
    s.selector = j.at("selector").get<labels>();
    if (j.contains("source")) s.source_snapshot = j["source"].at("snapshot");
    s.encrypted = j.value("encrypted", false);
    return s;
}

volume_rec volume_from_json(const json& j) {
    volume_rec v;
    v.id = j.at("id");
    v.spec = spec_from_json(j.at("spec"));
    v.phase = j.at("phase");
    v.replicas = replicas_from_json(j.at("replicas"));
    if (auto& p = j.at("published"); !p.is_null()) {
        v.published.emplace();
        v.published->host_nqn = p.at("host_nqn");
        v.published->node = p.at("node");
        v.published->nqn = p.at("nqn");
        v.published->address = p.at("address");
        v.published->port = p.at("port");
        v.published->arbiter_generation = p.value("arbiter_generation", uint64_t(0));
        if (auto s = p.find("standby"); s != p.end() && !s->is_null()) {
            v.published->standby = s->at("node");
            v.published->standby_address = s->at("address");
            v.published->standby_port = s->at("port");
            v.published->standby_ready = s->value("ready", false);
        }
    }
    v.created_ms = j.at("created_ms");
    v.wrapped_key = j.value("wrapped_key", "");
    return v;
}

event_rec event_from_json(const json& j) {
    return event_rec{j.at("seq"), j.at("time_ms"), j.at("kind"), j.at("object"), j.at("message")};
}

// ---- user input ------------------------------------------------------------------

namespace {

// NQN characters: what NVMe names use, and nothing a shell would act on in
// the printed nvme connect line.
bool nqn_ok(const std::string& s) {
    if (!s.starts_with("nqn.") || s.size() > 223) return false;
    for (char c : s)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != ':' && c != '-' &&
            c != '_')
            return false;
    return true;
}

void only(const json& j, std::initializer_list<const char*> allowed) {
    if (!j.is_object()) throw bad_request("the request body must be a JSON object");
    std::set<std::string> ok(allowed.begin(), allowed.end());
    for (auto& [k, v] : j.items())
        if (!ok.contains(k)) throw bad_request(fmt::format("unknown field \"{}\"", k));
}

std::string str(const json& j, const char* key, bool required) {
    if (!j.contains(key)) {
        if (required) throw bad_request(fmt::format("\"{}\" is required", key));
        return {};
    }
    if (!j[key].is_string()) throw bad_request(fmt::format("\"{}\" must be a string", key));
    std::string s = j[key];
    if (required && s.empty()) throw bad_request(fmt::format("\"{}\" must not be empty", key));
    return s;
}

std::optional<uint64_t> uint(const json& j, const char* key) {
    if (!j.contains(key)) return std::nullopt;
    if (!j[key].is_number_unsigned())
        throw bad_request(fmt::format("\"{}\" must be a non-negative integer", key));
    return j[key].get<uint64_t>();
}

labels label_map(const json& j, const char* key) {
    labels out;
    if (!j.contains(key)) return out;
    if (!j[key].is_object()) throw bad_request(fmt::format("\"{}\" must be an object", key));
    for (auto& [k, v] : j[key].items()) {
        if (!v.is_string())
            throw bad_request(fmt::format("\"{}\": the value of \"{}\" must be a string", key, k));
        if (k.empty() || k.size() > 253)
            throw bad_request(
                fmt::format("\"{}\": a label name must have 1 to 253 characters", key));
        out[k] = v.get<std::string>();
    }
    return out;
}

void check_endpoint(const std::string& field, const std::string& ep) {
    auto colon = ep.rfind(':');
    bool ok = colon != std::string::npos && colon > 0 && colon + 1 < ep.size();
    if (ok && ep.size() - colon - 1 > 5) ok = false;
    if (ok) {
        for (size_t i = colon + 1; i < ep.size(); ++i)
            if (!std::isdigit(static_cast<unsigned char>(ep[i]))) ok = false;
        if (ok && std::stoul(ep.substr(colon + 1)) > 65535) ok = false;
    }
    if (!ok) throw bad_request(fmt::format("\"{}\": \"{}\" is not HOST:PORT", field, ep));
}

}  // namespace

json parse_body(const std::string& body) {
    auto j = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) throw bad_request("the request body is not valid JSON");
    if (!j.is_object()) throw bad_request("the request body must be a JSON object");
    return j;
}

node_rec parse_node_registration(const std::string& id, const json& j) {
    if (!is_name(id))
        throw bad_request(
            fmt::format("\"{}\" is not a node id (1 to 63 letters, digits, '.', '_' or '-')", id));
    only(j, {"api", "nvmf", "host_nqn", "labels", "heartbeat_ms", "cntlid_range"});
    node_rec n;
    n.id = id;
    n.api = str(j, "api", true);
    check_endpoint("api", n.api);
    if (!j.contains("nvmf") || !j["nvmf"].is_array() || j["nvmf"].empty())
        throw bad_request("\"nvmf\" must be a non-empty array of HOST:PORT");
    for (auto& e : j["nvmf"]) {
        if (!e.is_string()) throw bad_request("\"nvmf\" must be a non-empty array of HOST:PORT");
        check_endpoint("nvmf", e);
        n.nvmf.push_back(e);
    }
    n.host_nqn = str(j, "host_nqn", true);
    if (!nqn_ok(n.host_nqn))
        throw bad_request(fmt::format("\"host_nqn\": \"{}\" is not an NQN", n.host_nqn));
    n.node_labels = label_map(j, "labels");
    if (j.contains("cntlid_range")) {
        const json& r = j["cntlid_range"];
        if (!r.is_array() || r.size() != 2 || !r[0].is_number_unsigned() ||
            !r[1].is_number_unsigned() || r[0].get<uint64_t>() < 1 ||
            r[1].get<uint64_t>() > 0xffef || r[0].get<uint64_t>() > r[1].get<uint64_t>())
            throw bad_request("\"cntlid_range\" must be [MIN, MAX] within 1 to 65519");
        n.cntlid_min = r[0].get<uint16_t>();
        n.cntlid_max = r[1].get<uint16_t>();
        n.cntlid_explicit = true;
    }
    if (auto hb = uint(j, "heartbeat_ms")) {
        if (*hb < 100 || *hb > 600000)
            throw bad_request("\"heartbeat_ms\" must be from 100 to 600000");
        n.heartbeat_ms = int64_t(*hb);
    }
    return n;
}

host_rec parse_host_registration(const std::string& id, const json& j) {
    if (!is_name(id))
        throw bad_request(
            fmt::format("\"{}\" is not a host id (1 to 63 letters, digits, '.', '_' or '-')", id));
    only(j, {"host_nqn", "labels"});
    host_rec h;
    h.id = id;
    h.host_nqn = str(j, "host_nqn", true);
    if (!nqn_ok(h.host_nqn))
        throw bad_request(fmt::format("\"host_nqn\": \"{}\" is not an NQN", h.host_nqn));
    h.host_labels = label_map(j, "labels");
    return h;
}

pool_rec parse_pool_spec(const std::string& name, const json& j) {
    if (!is_name(name))
        throw bad_request(fmt::format(
            "\"{}\" is not a pool name (1 to 63 letters, digits, '.', '_' or '-')", name));
    only(j, {"node", "disk", "size", "cluster_size"});
    pool_rec p;
    p.name = name;
    p.node = str(j, "node", true);
    p.disk = str(j, "disk", true);
    if (!p.disk.starts_with("/")) throw bad_request("\"disk\" must be an absolute path");
    p.size = uint(j, "size").value_or(0);
    p.cluster_size = uint(j, "cluster_size").value_or(0);
    if (p.cluster_size && (p.cluster_size & (p.cluster_size - 1)))
        throw bad_request("\"cluster_size\" must be a power of two");
    return p;
}

namespace {
uint64_t volume_size(const json& j) {
    auto size = uint(j, "size_bytes");
    if (!size) throw bad_request("\"size_bytes\" is required");
    if (*size < (1u << 20)) throw bad_request("\"size_bytes\" must be at least 1 MiB (1048576)");
    if (*size % 4096) throw bad_request("\"size_bytes\" must be a multiple of 4096");
    if (*size > (1ull << 60)) throw bad_request("\"size_bytes\" must be at most 2^60 (1 EiB)");
    return *size;
}
}  // namespace

uint64_t parse_volume_size(const json& j) {
    only(j, {"size_bytes"});
    return volume_size(j);
}

volume_spec parse_volume_spec(const json& j) {
    only(j, {"size_bytes", "replicas", "thin", "selector", "source", "encrypted"});
    volume_spec s;
    s.size_bytes = volume_size(j);
    if (auto r = uint(j, "replicas")) {
        if (*r < 1 || *r > 5) throw bad_request("\"replicas\" must be from 1 to 5");
        s.replicas = unsigned(*r);
    }
    if (j.contains("thin")) {
        if (!j["thin"].is_boolean()) throw bad_request("\"thin\" must be true or false");
        s.thin = j["thin"];
    }
    s.selector = label_map(j, "selector");
    if (j.contains("encrypted")) {
        if (!j["encrypted"].is_boolean()) throw bad_request("\"encrypted\" must be true or false");
        s.encrypted = j["encrypted"];
    }
    if (j.contains("source")) {
        const json& src = j["source"];
        if (!src.is_object())
            throw bad_request("\"source\" must be an object: {\"snapshot\": UUID}");
        only(src, {"snapshot"});
        std::string id = str(src, "snapshot", true);
        if (!is_uuid(id))
            throw bad_request(
                fmt::format("\"source.snapshot\": \"{}\" is not a lowercase UUID", id));
        s.source_snapshot = id;
    }
    return s;
}

std::string parse_snapshot_request(const json& j) {
    only(j, {"volume"});
    std::string v = str(j, "volume", true);
    if (!is_uuid(v))
        throw bad_request(fmt::format("\"volume\": \"{}\" is not a lowercase UUID", v));
    return v;
}

publish_request parse_publish_request(const json& j) {
    only(j, {"host_nqn", "node"});
    publish_request r;
    r.host_nqn = str(j, "host_nqn", true);
    if (!nqn_ok(r.host_nqn))
        throw bad_request(fmt::format("\"host_nqn\": \"{}\" is not an NQN", r.host_nqn));
    r.node = str(j, "node", false);
    return r;
}

std::string connect_line(const publication& p) {
    return fmt::format("nvme connect -t tcp -a {} -s {} -n {} --hostnqn {}", p.address, p.port,
                       p.nqn, p.host_nqn);
}

}  // namespace weft::control
