// `weft volume|snapshot|pool|node|events`: the cluster as the control plane keeps it,
// over weft-control's REST API (cli/control_client.h). Tables by default,
// the API's JSON with --json.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <thread>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/control_client.h"
#include "cli/format.h"

namespace weft::cli {

namespace {

using json = nlohmann::json;

constexpr int exit_failed = 1;

void print(const json& j) {
    std::printf("%s\n", j.dump(2).c_str());
}

std::string str(const json& j, const char* k) {
    return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string("-");
}

std::string short_id(const std::string& id) {
    return id.size() > 8 ? id.substr(0, 8) : id;
}

// ---- volumes ---------------------------------------------------------------------

struct vol_opts {
    control_options c;
    std::string id, size, host_nqn, node, from_snapshot;
    bool replicas_given = false;
    unsigned replicas = 3;
    bool thick = false, as_json = false, watch = false;
    bool encrypted = false;
    std::vector<std::string> selector;
};

std::string fresh_uuid() {
    uint8_t b[16];
    for (auto& x : b) x = 0;
    if (getentropy(b, sizeof b) != 0) return {};
    b[6] = uint8_t((b[6] & 0x0f) | 0x40);
    b[8] = uint8_t((b[8] & 0x3f) | 0x80);
    std::string s;
    for (int i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
        s += fmt::format("{:02x}", b[i]);
    }
    return s;
}

std::string replicas_summary(const json& v) {
    unsigned on = 0, n = 0;
    for (auto& r : v["replicas"]) {
        ++n;
        if (r.value("state", "") == "online") ++on;
    }
    return fmt::format("{}/{} online", on, n);
}

std::string state_of(const json& v) {
    std::string s = v.value("state", "unknown");
    if (v.contains("rebuild_percent"))
        s += fmt::format(" {:.0f}%", v["rebuild_percent"].get<double>());
    return s;
}

// The host's second path, for native multipath to move to on a switchover.
void print_standby(const json& p) {
    if (!p.contains("standby") || !p["standby"].is_object()) return;
    const json& s = p["standby"];
    if (s.value("ready", false))
        std::printf("and its second path (node %s, taken over if node %s is lost):\n  %s\n",
                    str(s, "node").c_str(), str(p, "node").c_str(), str(s, "connect").c_str());
    else
        std::printf("its second path (node %s) comes back once that node answers\n",
                    str(s, "node").c_str());
}

void print_volume(const json& v) {
    std::printf("volume %s: %s, %s, %u replicas (%s)\n", str(v, "id").c_str(),
                human_bytes(v["spec"]["size_bytes"].get<uint64_t>()).c_str(), state_of(v).c_str(),
                v["spec"]["replicas"].get<unsigned>(),
                (std::string(v["spec"]["thin"].get<bool>() ? "thin" : "thick") +
                 (v["spec"].value("encrypted", false) ? ", encrypted" : ""))
                    .c_str());
    table t({"replica", "node", "pool", "state"});
    for (auto& r : v["replicas"]) {
        std::string st = str(r, "state");
        if (r.contains("reason")) st += " (" + str(r, "reason") + ")";
        t.add({str(r, "id"), str(r, "node"), str(r, "pool"), st});
    }
    t.print();
    if (v["nexus"].is_object())
        std::printf("nexus on node %s: %s, generation %llu\n", str(v["nexus"], "node").c_str(),
                    str(v["nexus"], "state").c_str(),
                    (unsigned long long)v["nexus"]["generation"].get<uint64_t>());
    if (v["published"].is_object()) {
        std::printf("published to %s; connect with:\n  %s\n",
                    str(v["published"], "host_nqn").c_str(),
                    str(v["published"], "connect").c_str());
        print_standby(v["published"]);
    } else {
        std::printf("not published (weft volume publish %s --host-nqn NQN)\n",
                    str(v, "id").c_str());
    }
}

int volume_create(const vol_opts& o) {
    uint64_t size = 0;
    unsigned replicas = o.replicas;
    if (!o.from_snapshot.empty() && (o.size.empty() || !o.replicas_given)) {
        // A clone has its snapshot's size, and as many replicas by default.
        auto snap = control_client(o.c).request("GET", "/v1/snapshots/" + o.from_snapshot);
        if (!snap) return exit_failed;
        size = (*snap)["size_bytes"].get<uint64_t>();
        if (!o.replicas_given) replicas = unsigned((*snap)["replicas"].size());
    }
    bool encrypted = o.encrypted;
    if (!o.from_snapshot.empty() && !encrypted) {
        // A clone is encrypted as its snapshot is.
        auto snap = control_client(o.c).request("GET", "/v1/snapshots/" + o.from_snapshot);
        if (!snap) return exit_failed;
        encrypted = snap->value("encrypted", false);
    }
    if (!o.size.empty() && !parse_size_arg("--size", o.size, &size)) return 2;
    if (size == 0) {
        std::fprintf(stderr, "weft: --size is required (unless --from-snapshot gives it)\n");
        return 2;
    }
    json body = {{"size_bytes", size}, {"replicas", replicas}, {"thin", !o.thick}};
    if (encrypted) body["encrypted"] = true;
    if (!o.from_snapshot.empty()) body["source"] = {{"snapshot", o.from_snapshot}};
    if (!o.selector.empty()) {
        json sel = json::object();
        for (auto& kv : o.selector) {
            auto eq = kv.find('=');
            if (eq == std::string::npos || eq == 0) {
                std::fprintf(stderr, "weft: --selector %s: expected KEY=VALUE\n", kv.c_str());
                return 2;
            }
            sel[kv.substr(0, eq)] = kv.substr(eq + 1);
        }
        body["selector"] = sel;
    }
    std::string id = o.id.empty() ? fresh_uuid() : o.id;
    int status = 0;
    auto v = control_client(o.c).request("PUT", "/v1/volumes/" + id, &body, &status);
    if (!v) {
        if (o.id.empty())
            std::fprintf(stderr,
                         "weft: (the volume's id was %s: retry with --id %s, so that a volume "
                         "made meanwhile is not made twice)\n",
                         id.c_str(), id.c_str());
        return exit_failed;
    }
    if (o.as_json) {
        print(*v);
        return 0;
    }
    std::printf("%s\n", status == 201 ? "created" : "exists already (the same spec)");
    print_volume(*v);
    return 0;
}

int volume_list(const vol_opts& o) {
    auto l = control_client(o.c).request("GET", "/v1/volumes");
    if (!l) return exit_failed;
    if (o.as_json) {
        print(*l);
        return 0;
    }
    if ((*l)["volumes"].empty()) {
        std::printf("no volumes (create one: weft volume create --size 10GiB --replicas 3)\n");
        return 0;
    }
    table t({"id", "size", "state", "replicas", "nexus", "published to"}, "lrllll");
    for (auto& v : (*l)["volumes"])
        t.add({str(v, "id"), human_bytes(v["spec"]["size_bytes"].get<uint64_t>()), state_of(v),
               replicas_summary(v), v["nexus"].is_object() ? str(v["nexus"], "node") : "-",
               v["published"].is_object() ? str(v["published"], "host_nqn") : "-"});
    t.print();
    return 0;
}

int volume_get(const vol_opts& o) {
    control_client cc(o.c);
    auto v = cc.request("GET", "/v1/volumes/" + o.id);
    if (!v) return exit_failed;
    if (!o.watch) {
        if (o.as_json)
            print(*v);
        else
            print_volume(*v);
        return 0;
    }
    // A live line until the volume is neither rebuilding nor degraded.
    bool tty = isatty(STDOUT_FILENO);
    for (;;) {
        std::string line = fmt::format("volume {}: {}, replicas {}", short_id(o.id), state_of(*v),
                                       replicas_summary(*v));
        if (tty)
            std::printf("\r\033[K%s", line.c_str());
        else
            std::printf("%s\n", line.c_str());
        std::fflush(stdout);
        std::string st = v->value("state", "");
        if (st == "online" || st == "faulted") break;
        std::this_thread::sleep_for(std::chrono::seconds(1));
        v = cc.request("GET", "/v1/volumes/" + o.id);
        if (!v) return exit_failed;
    }
    if (tty) std::printf("\n");
    return v->value("state", "") == "online" ? 0 : exit_failed;
}

int volume_delete(const vol_opts& o) {
    if (!control_client(o.c).request("DELETE", "/v1/volumes/" + o.id)) return exit_failed;
    std::printf("volume %s deleted with its replicas\n", o.id.c_str());
    return 0;
}

int volume_resize(const vol_opts& o) {
    // "+SIZE" grows by that much.
    const bool by = o.size.starts_with("+");
    uint64_t size = 0;
    if (!parse_size_arg("--size", by ? o.size.substr(1) : o.size, &size)) return 2;
    control_client cc(o.c);
    uint64_t old = 0;
    if (by) {
        auto v = cc.request("GET", "/v1/volumes/" + o.id);
        if (!v) return exit_failed;
        old = (*v)["spec"]["size_bytes"].get<uint64_t>();
        size += old;
    }
    json body = {{"size_bytes", size}};
    auto v = cc.request("PUT", "/v1/volumes/" + o.id + "/size", &body);
    if (!v) return exit_failed;
    if (o.as_json) {
        print(*v);
        return 0;
    }
    std::printf("volume %s: %s", o.id.c_str(), human_bytes(size).c_str());
    if ((*v)["nexus"].is_object()) {
        uint64_t seen = (*v)["nexus"].value("size_bytes", uint64_t(0));
        if (seen < size)
            std::printf(" (its host still sees %s: the nexus grows once its rebuild is done)",
                        human_bytes(seen).c_str());
        else
            std::printf(", and so its host sees it");
    }
    std::printf("\n");
    return 0;
}

int volume_publish(const vol_opts& o) {
    json body = {{"host_nqn", o.host_nqn}};
    if (!o.node.empty()) body["node"] = o.node;
    auto p = control_client(o.c).request("PUT", "/v1/volumes/" + o.id + "/publish", &body);
    if (!p) return exit_failed;
    if (o.as_json) {
        print(*p);
        return 0;
    }
    std::printf("volume %s published to %s through node %s; connect with:\n  %s\n", o.id.c_str(),
                o.host_nqn.c_str(), str(*p, "node").c_str(), str(*p, "connect").c_str());
    print_standby(*p);
    return 0;
}

int volume_unpublish(const vol_opts& o) {
    if (!control_client(o.c).request("DELETE", "/v1/volumes/" + o.id + "/publish"))
        return exit_failed;
    std::printf("volume %s unpublished\n", o.id.c_str());
    return 0;
}

// ---- snapshots --------------------------------------------------------------------

struct snap_opts {
    control_options c;
    std::string id, volume;
    bool as_json = false;
};

void print_snapshot(const json& s) {
    std::printf("snapshot %s of volume %s: %s, %s, %zu replica snapshot(s)\n", str(s, "id").c_str(),
                str(s, "volume").c_str(), human_bytes(s["size_bytes"].get<uint64_t>()).c_str(),
                str(s, "phase").c_str(), s["replicas"].size());
    table t({"node", "pool", "of replica"});
    for (auto& r : s["replicas"]) t.add({str(r, "node"), str(r, "pool"), str(r, "replica")});
    t.print();
}

int snapshot_create(const snap_opts& o) {
    std::string id = o.id.empty() ? fresh_uuid() : o.id;
    json body = {{"volume", o.volume}};
    int status = 0;
    auto s = control_client(o.c).request("PUT", "/v1/snapshots/" + id, &body, &status);
    if (!s) {
        if (o.id.empty())
            std::fprintf(stderr, "weft: (the snapshot's id was %s: retry with --id %s)\n",
                         id.c_str(), id.c_str());
        return exit_failed;
    }
    if (o.as_json) {
        print(*s);
        return 0;
    }
    std::printf("%s\n", status == 201 ? "taken" : "exists already");
    print_snapshot(*s);
    std::printf("a volume from it: weft volume create --from-snapshot %s\n", id.c_str());
    return 0;
}

int snapshot_list(const snap_opts& o) {
    std::string path = "/v1/snapshots";
    if (!o.volume.empty()) path += "?volume=" + o.volume;
    auto l = control_client(o.c).request("GET", path);
    if (!l) return exit_failed;
    if (o.as_json) {
        print(*l);
        return 0;
    }
    table t({"id", "volume", "size", "phase", "replicas", "taken"});
    for (auto& s : (*l)["snapshots"]) {
        std::time_t when = std::time_t(s["created_ms"].get<int64_t>() / 1000);
        char buf[32];
        std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::gmtime(&when));
        t.add({str(s, "id"), short_id(str(s, "volume")),
               human_bytes(s["size_bytes"].get<uint64_t>()), str(s, "phase"),
               std::to_string(s["replicas"].size()), buf});
    }
    t.print();
    return 0;
}

int snapshot_get(const snap_opts& o) {
    auto s = control_client(o.c).request("GET", "/v1/snapshots/" + o.id);
    if (!s) return exit_failed;
    if (o.as_json)
        print(*s);
    else
        print_snapshot(*s);
    return 0;
}

int snapshot_delete(const snap_opts& o) {
    if (!control_client(o.c).request("DELETE", "/v1/snapshots/" + o.id)) return exit_failed;
    std::printf("snapshot %s deleted\n", o.id.c_str());
    return 0;
}

void add_cluster_snapshot_commands(CLI::App& app, action_fn& action) {
    auto* snap = app.add_subcommand(
        "snapshot",
        "consistent snapshots of the cluster's volumes (weft volume create --from-snapshot "
        "makes a volume of one)");
    snap->require_subcommand(1);
    auto reg = [&](CLI::App* sub, std::shared_ptr<snap_opts> o, int (*fn)(const snap_opts&)) {
        add_control_options(sub, o->c);
        sub->callback([o, fn, &action] { action = [o, fn] { return fn(*o); }; });
    };
    {
        auto o = std::make_shared<snap_opts>();
        auto* s = snap->add_subcommand(
            "create",
            "snapshot a volume: its writes are held at its nexus for the moment each in-sync "
            "replica is snapshotted");
        s->add_option("VOLUME", o->volume, "the volume's UUID")->required();
        s->add_option("--id", o->id,
                      "the snapshot's UUID (default: a new one); taking it again with the same "
                      "id is a no-op");
        s->add_flag("--json", o->as_json, "print the snapshot as the API's JSON");
        reg(s, o, snapshot_create);
    }
    {
        auto o = std::make_shared<snap_opts>();
        auto* s = snap->add_subcommand("list", "every snapshot (or a volume's)");
        s->add_option("--volume", o->volume, "only this volume's");
        s->add_flag("--json", o->as_json, "print {\"snapshots\": [...]} as the API gives it");
        reg(s, o, snapshot_list);
    }
    {
        auto o = std::make_shared<snap_opts>();
        auto* s = snap->add_subcommand("get", "one snapshot and where its replica snapshots are");
        s->add_option("ID", o->id, "the snapshot's UUID")->required();
        s->add_flag("--json", o->as_json, "print the API's JSON");
        reg(s, o, snapshot_get);
    }
    {
        auto o = std::make_shared<snap_opts>();
        auto* s = snap->add_subcommand(
            "delete", "destroy a snapshot (refused while a volume made from it exists)");
        s->add_option("ID", o->id, "the snapshot's UUID")->required();
        reg(s, o, snapshot_delete);
    }
}

// ---- pools, nodes, events ---------------------------------------------------------

struct pool_opts {
    control_options c;
    std::string name, node, disk, size, cluster_size;
    bool as_json = false;
};

int pool_create(const pool_opts& o) {
    json body = {{"node", o.node}, {"disk", o.disk}};
    uint64_t v = 0;
    if (!o.size.empty()) {
        if (!parse_size_arg("--size", o.size, &v)) return 2;
        body["size"] = v;
    }
    if (!o.cluster_size.empty()) {
        if (!parse_size_arg("--cluster-size", o.cluster_size, &v)) return 2;
        body["cluster_size"] = v;
    }
    int status = 0;
    auto p = control_client(o.c).request("PUT", "/v1/pools/" + o.name, &body, &status);
    if (!p) return exit_failed;
    if (o.as_json) {
        print(*p);
        return 0;
    }
    std::printf("pool %s %s on node %s (%s): %s of capacity\n", o.name.c_str(),
                status == 201 ? "created" : "exists", o.node.c_str(), o.disk.c_str(),
                human_bytes((*p)["capacity_bytes"].get<uint64_t>()).c_str());
    return 0;
}

int pool_list(const pool_opts& o) {
    auto l = control_client(o.c).request("GET", "/v1/pools");
    if (!l) return exit_failed;
    if (o.as_json) {
        print(*l);
        return 0;
    }
    if ((*l)["pools"].empty()) {
        std::printf("no pools (create one: weft pool create NAME --node NODE --disk PATH)\n");
        return 0;
    }
    table t({"name", "node", "disk", "state", "capacity", "used", "committed", "volumes"},
            "llllrrrr");
    for (auto& p : (*l)["pools"])
        t.add({str(p, "name"), str(p, "node"), str(p, "disk"), str(p, "state"),
               human_bytes(p["capacity_bytes"].get<uint64_t>()),
               human_bytes(p["used_bytes"].get<uint64_t>()),
               human_bytes(p["committed_bytes"].get<uint64_t>()),
               std::to_string(p["volume_count"].get<uint64_t>())});
    t.print();
    return 0;
}

int pool_delete(const pool_opts& o) {
    if (!control_client(o.c).request("DELETE", "/v1/pools/" + o.name)) return exit_failed;
    std::printf("pool %s destroyed\n", o.name.c_str());
    return 0;
}

struct node_opts {
    control_options c;
    std::string id;
    bool as_json = false;
    int64_t since = 0;
    unsigned limit = 100;
};

std::string labels_text(const json& l) {
    std::string s;
    for (auto& [k, v] : l.items()) s += (s.empty() ? "" : ",") + k + "=" + v.get<std::string>();
    return s.empty() ? "-" : s;
}

int node_list(const node_opts& o) {
    auto l = control_client(o.c).request("GET", "/v1/nodes");
    if (!l) return exit_failed;
    if (o.as_json) {
        print(*l);
        return 0;
    }
    if ((*l)["nodes"].empty()) {
        std::printf("no nodes (start engines with weft-engine --control URL)\n");
        return 0;
    }
    table t({"id", "state", "api", "nvme/tcp", "labels"});
    for (auto& n : (*l)["nodes"]) {
        std::string nv;
        for (auto& e : n["nvmf"]) nv += (nv.empty() ? "" : ",") + e.get<std::string>();
        t.add({str(n, "id"), str(n, "state"), str(n, "api"), nv, labels_text(n["labels"])});
    }
    t.print();
    return 0;
}

int events_list(const node_opts& o) {
    auto l = control_client(o.c).request(
        "GET", fmt::format("/v1/events?since={}&limit={}", o.since, o.limit));
    if (!l) return exit_failed;
    if (o.as_json) {
        print(*l);
        return 0;
    }
    for (auto& e : (*l)["events"]) {
        auto ms = e["time_ms"].get<int64_t>();
        time_t secs = time_t(ms / 1000);
        char when[32];
        std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", std::gmtime(&secs));
        std::printf("%6lld  %s  %-20s %s\n", (long long)e["seq"].get<int64_t>(), when,
                    str(e, "kind").c_str(), str(e, "message").c_str());
    }
    return 0;
}

}  // namespace

void add_cluster_commands(CLI::App& app, action_fn& action) {
    auto* vol = app.add_subcommand(
        "volume",
        "replicated volumes of the cluster: create, list, get, resize, publish to a host, "
        "delete");
    vol->require_subcommand(1);
    auto reg = [&](CLI::App* sub, std::shared_ptr<vol_opts> o, int (*fn)(const vol_opts&)) {
        add_control_options(sub, o->c);
        sub->callback([o, fn, &action] { action = [o, fn] { return fn(*o); }; });
    };
    {
        auto o = std::make_shared<vol_opts>();
        auto* s = vol->add_subcommand(
            "create", "a volume with its replicas placed on distinct nodes with room");
        s->add_option("--size", o->size, "its size, e.g. 10GiB (required unless --from-snapshot)")
            ->type_name("SIZE");
        s->add_option("--replicas", o->replicas,
                      "how many copies, on as many nodes (from a snapshot: as many as it has)")
            ->capture_default_str()
            ->check(CLI::Range(1u, 5u))
            ->each([o](const std::string&) { o->replicas_given = true; });
        s->add_option("--from-snapshot", o->from_snapshot,
                      "make it from a snapshot (weft snapshot list): its replicas are clones of "
                      "the snapshot's, on their nodes")
            ->type_name("SNAPSHOT");
        s->add_flag("--thick", o->thick, "allocate every replica's space now (default: thin)");
        s->add_flag("--encrypted", o->encrypted,
                    "encrypt it at rest above its nexus (AES-256-XTS, 4 KiB blocks, a key of its "
                    "own wrapped by the engines' weft-engine --kek-file): replicas and the wire "
                    "to them see ciphertext only; deleting it erases the key");
        s->add_option("--selector", o->selector,
                      "a node label every replica's node must have, KEY=VALUE (repeatable)");
        s->add_option("--id", o->id,
                      "the volume's UUID (default: a new one); creating again with the same id "
                      "and spec is a no-op");
        s->add_flag("--json", o->as_json, "print the volume as the API's JSON");
        reg(s, o, volume_create);
    }
    {
        auto o = std::make_shared<vol_opts>();
        auto* s = vol->add_subcommand("list", "every volume: size, state, replicas, where served");
        s->add_flag("--json", o->as_json, "print {\"volumes\": [...]} as the API gives it");
        reg(s, o, volume_list);
    }
    {
        auto o = std::make_shared<vol_opts>();
        auto* s = vol->add_subcommand("get", "one volume: its replicas, nexus and publication");
        s->add_option("ID", o->id, "the volume's UUID")->required();
        s->add_flag("--json", o->as_json, "print the API's JSON");
        s->add_flag("--watch", o->watch,
                    "follow it until it is online (rebuild progress on one line); exit 1 if it "
                    "ends faulted");
        reg(s, o, volume_get);
    }
    {
        auto o = std::make_shared<vol_opts>();
        auto* s = vol->add_subcommand("delete", "delete a volume and every replica of it");
        s->add_option("ID", o->id, "the volume's UUID")->required();
        reg(s, o, volume_delete);
    }
    {
        auto o = std::make_shared<vol_opts>();
        auto* s = vol->add_subcommand(
            "publish", "serve a volume to one host over NVMe/TCP; prints the nvme connect line");
        s->add_option("ID", o->id, "the volume's UUID")->required();
        s->add_option("--host-nqn", o->host_nqn, "the host allowed to connect")->required();
        s->add_option("--node", o->node,
                      "the host's node: the nexus goes there when it holds a replica");
        s->add_flag("--json", o->as_json, "print the publication as JSON");
        reg(s, o, volume_publish);
    }
    {
        auto o = std::make_shared<vol_opts>();
        auto* s = vol->add_subcommand(
            "resize",
            "grow a volume (every replica, then its nexus: a published volume's host "
            "sees the new size at once)");
        s->add_option("ID", o->id, "the volume's UUID")->required();
        s->add_option("--size", o->size,
                      "the new size, e.g. 20GiB, or +10GiB to grow by that much (volumes do not "
                      "shrink)")
            ->type_name("SIZE")
            ->required();
        s->add_flag("--json", o->as_json, "print the volume as the API's JSON");
        reg(s, o, volume_resize);
    }
    {
        auto o = std::make_shared<vol_opts>();
        auto* s = vol->add_subcommand("unpublish", "stop serving a volume to its host");
        s->add_option("ID", o->id, "the volume's UUID")->required();
        reg(s, o, volume_unpublish);
    }

    add_cluster_snapshot_commands(app, action);

    auto* pool = app.add_subcommand("pool", "the cluster's pools: a disk or file on a node");
    pool->require_subcommand(1);
    auto preg = [&](CLI::App* sub, std::shared_ptr<pool_opts> o, int (*fn)(const pool_opts&)) {
        add_control_options(sub, o->c);
        sub->callback([o, fn, &action] { action = [o, fn] { return fn(*o); }; });
    };
    {
        auto o = std::make_shared<pool_opts>();
        auto* s = pool->add_subcommand("create", "make (or adopt) a pool on a node's disk");
        s->add_option("NAME", o->name, "the pool's name, unique in the cluster")->required();
        s->add_option("--node", o->node, "the node whose disk it is")->required();
        s->add_option("--disk", o->disk, "a block device or file on that node")->required();
        s->add_option("--size", o->size, "create the file with this size when missing")
            ->type_name("SIZE");
        s->add_option("--cluster-size", o->cluster_size, "allocation unit (default 4MiB)")
            ->type_name("SIZE");
        s->add_flag("--json", o->as_json, "print the pool as JSON");
        preg(s, o, pool_create);
    }
    {
        auto o = std::make_shared<pool_opts>();
        auto* s = pool->add_subcommand("list", "every pool: node, state, capacity, use");
        s->add_flag("--json", o->as_json, "print {\"pools\": [...]}");
        preg(s, o, pool_list);
    }
    {
        auto o = std::make_shared<pool_opts>();
        auto* s = pool->add_subcommand("delete", "destroy a pool that holds no replica");
        s->add_option("NAME", o->name, "the pool")->required();
        preg(s, o, pool_delete);
    }

    auto* node = app.add_subcommand("node", "the storage nodes (engines) the control plane knows");
    node->require_subcommand(1);
    {
        auto o = std::make_shared<node_opts>();
        auto* s = node->add_subcommand("list", "every node: online or not, endpoints, labels");
        s->add_flag("--json", o->as_json, "print {\"nodes\": [...]}");
        add_control_options(s, o->c);
        s->callback([o, &action] { action = [o] { return node_list(*o); }; });
    }
    {
        auto o = std::make_shared<node_opts>();
        auto* s = app.add_subcommand("events", "what the control plane did and why, oldest first");
        s->add_option("--since", o->since, "only events after this sequence number");
        s->add_option("--limit", o->limit, "at most this many")
            ->capture_default_str()
            ->check(CLI::Range(1u, 1000u));
        s->add_flag("--json", o->as_json, "print {\"events\": [...]}");
        add_control_options(s, o->c);
        s->callback([o, &action] { action = [o] { return events_list(*o); }; });
    }
}

}  // namespace weft::cli
