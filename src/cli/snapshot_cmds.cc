// `weft engine snapshot create|list|clone|destroy`: point-in-time copies of volumes
// and the writable clones made from them, over the engine's management API.
#include <fmt/format.h>

#include <cstdio>
#include <map>

#include "cli/api_client.h"
#include "cli/commands.h"
#include "cli/connection.h"
#include "cli/format.h"

namespace weft::cli {

namespace {

struct create_opts {
    api_options api;
    std::string pool, volume, name;
    bool as_json = false;
};

struct list_opts {
    api_options api;
    std::string pool;
    bool as_json = false;
};

struct clone_opts {
    api_options api;
    std::string pool, snapshot, name;
    bool as_json = false;
};

struct destroy_opts {
    api_options api;
    std::string pool, name;
};

int snapshot_create(create_opts& o) {
    pb::CreateSnapshotRequest req;
    *req.mutable_volume() = volume_ref(o.pool, o.volume);
    req.set_name(o.name);
    api_client api(o.api);
    pb::Volume v;
    if (!api.call([&](auto& s, auto* ctx) { return s.CreateSnapshot(ctx, req, &v); }))
        return exit_failed;
    if (o.as_json) {
        print_json(message_json(v));
        return 0;
    }
    std::printf("snapshot %s/%s of %s created: %s (uuid %s)\n", v.pool().c_str(), v.name().c_str(),
                o.volume.c_str(), human_bytes(v.size_bytes()).c_str(), v.uuid().c_str());
    return 0;
}

int snapshot_list(list_opts& o) {
    pb::ListVolumesRequest req;
    req.set_pool(o.pool);
    api_client api(o.api);
    pb::ListVolumesReply rep;
    if (!api.call([&](auto& s, auto* ctx) { return s.ListVolumes(ctx, req, &rep); }))
        return exit_failed;
    if (o.as_json) {
        ordered_json a = ordered_json::array();
        for (auto& v : rep.volumes())
            if (v.snapshot()) a.push_back(message_json(v));
        print_json({{"snapshots", a}});
        return 0;
    }
    // A snapshot's origin and clones are volumes of its pool: by UUID.
    std::map<std::string, const pb::Volume*> by_uuid;
    std::map<std::string, int> clones;
    for (auto& v : rep.volumes()) {
        by_uuid[v.uuid()] = &v;
        if (!v.snapshot() && !v.parent_uuid().empty()) ++clones[v.parent_uuid()];
    }
    table t({"pool", "name", "size", "allocated", "origin", "clones"}, "llrrlr");
    for (auto& v : rep.volumes()) {
        if (!v.snapshot()) continue;
        auto origin = by_uuid.find(v.parent_uuid());
        t.add({v.pool(), v.name(), human_bytes(v.size_bytes()), human_bytes(v.allocated_bytes()),
               origin != by_uuid.end()   ? origin->second->name()
               : v.parent_uuid().empty() ? "-"
                                         : v.parent_uuid() + " (gone)",
               std::to_string(clones[v.uuid()])});
    }
    if (t.size() == 0) {
        std::printf("no snapshots%s\n", o.pool.empty() ? "" : (" in pool " + o.pool).c_str());
        return 0;
    }
    t.print();
    return 0;
}

int snapshot_clone(clone_opts& o) {
    pb::CreateCloneRequest req;
    *req.mutable_snapshot() = volume_ref(o.pool, o.snapshot);
    req.set_name(o.name);
    api_client api(o.api);
    pb::Volume v;
    if (!api.call([&](auto& s, auto* ctx) { return s.CreateClone(ctx, req, &v); }))
        return exit_failed;
    if (o.as_json) {
        print_json(message_json(v));
        return 0;
    }
    std::printf("clone %s/%s of snapshot %s created: %s, thin (uuid %s)\n", v.pool().c_str(),
                v.name().c_str(), o.snapshot.c_str(), human_bytes(v.size_bytes()).c_str(),
                v.uuid().c_str());
    return 0;
}

int snapshot_destroy(destroy_opts& o) {
    // A snapshot shares its pool's namespace with volumes: make sure the name
    // is a snapshot, then destroy that one by UUID.
    api_client api(o.api);
    pb::ListVolumesRequest lreq;
    lreq.set_pool(o.pool);
    pb::ListVolumesReply rep;
    if (!api.call([&](auto& s, auto* ctx) { return s.ListVolumes(ctx, lreq, &rep); }))
        return exit_failed;
    const pb::Volume* snap = nullptr;
    for (auto& v : rep.volumes())
        if (v.pool() == o.pool && v.name() == o.name) snap = &v;
    if (!snap) {
        fail(fmt::format("no snapshot {} in pool {}", o.name, o.pool));
        return exit_failed;
    }
    if (!snap->snapshot()) {
        fail(fmt::format(
            "{}/{} is a volume, not a snapshot (weft engine volume destroy deletes volumes)",
            o.pool, o.name));
        return exit_failed;
    }
    pb::DestroyVolumeRequest req;
    req.mutable_volume()->set_pool(o.pool);
    req.mutable_volume()->set_uuid(snap->uuid());
    pb::Empty e;
    if (!api.call([&](auto& s, auto* ctx) { return s.DestroyVolume(ctx, req, &e); }))
        return exit_failed;
    std::printf("snapshot %s/%s destroyed\n", o.pool.c_str(), o.name.c_str());
    return 0;
}

}  // namespace

void add_snapshot_commands(CLI::App& app, action_fn& action) {
    auto* snap = app.add_subcommand(
        "snapshot", "manage point-in-time copies of volumes and the clones made from them");
    snap->require_subcommand(1);

    auto c = std::make_shared<create_opts>();
    auto* create = snap->add_subcommand(
        "create", "snapshot a volume now, while I/O to it continues (takes no space at first)");
    create->add_option("POOL", c->pool, "the volume's pool")->required();
    create->add_option("VOLUME", c->volume, "the volume to snapshot")->required();
    create->add_option("NAME", c->name, "the snapshot's name, unique among the pool's volumes")
        ->required();
    create->add_flag("--json", c->as_json, "print the snapshot as JSON");
    add_api_options(create, c->api);
    create->callback([c, &action] { action = [c] { return snapshot_create(*c); }; });

    auto l = std::make_shared<list_opts>();
    auto* list =
        snap->add_subcommand("list", "show the snapshots: their origin volume and their clones");
    list->add_option("--pool", l->pool, "only this pool's")->type_name("POOL");
    list->add_flag("--json", l->as_json,
                   "print {\"snapshots\": [...]} (volumes, with the API's field names)");
    add_api_options(list, l->api);
    list->callback([l, &action] { action = [l] { return snapshot_list(*l); }; });

    auto k = std::make_shared<clone_opts>();
    auto* clone = snap->add_subcommand(
        "clone", "make a writable thin volume that starts as a snapshot's contents");
    clone->add_option("POOL", k->pool, "the snapshot's pool (the clone's too)")->required();
    clone->add_option("SNAPSHOT", k->snapshot, "the snapshot")->required();
    clone->add_option("NAME", k->name, "the new volume's name")->required();
    clone->add_flag("--json", k->as_json, "print the clone as JSON");
    add_api_options(clone, k->api);
    clone->callback([k, &action] { action = [k] { return snapshot_clone(*k); }; });

    auto d = std::make_shared<destroy_opts>();
    auto* destroy = snap->add_subcommand(
        "destroy", "delete a snapshot; refused while clones of it exist (destroy them first)");
    destroy->add_option("POOL", d->pool, "the snapshot's pool")->required();
    destroy->add_option("NAME", d->name, "the snapshot")->required();
    add_api_options(destroy, d->api);
    destroy->callback([d, &action] { action = [d] { return snapshot_destroy(*d); }; });
}

}  // namespace weft::cli
