// `weft engine pool create|import|destroy|list`: the pools of an engine, over its
// management API.
#include <fmt/format.h>

#include <cstdio>
#include <vector>

#include "cli/api_client.h"
#include "cli/commands.h"
#include "cli/connection.h"
#include "cli/format.h"

namespace weft::cli {

namespace {

struct create_opts {
    api_options api;
    std::string name, path, size, cluster_size;
    bool purge = false;
    bool as_json = false;
};

struct import_opts {
    api_options api;
    std::string path;
    bool as_json = false;
};

struct destroy_opts {
    api_options api;
    std::string name;
    bool purge = false;
};

struct list_opts {
    api_options api;
    bool as_json = false;
};

std::string pool_summary(const pb::Pool& p) {
    return fmt::format("{} of capacity in {} clusters, {} volume(s), {} used (uuid {})",
                       human_bytes(p.capacity_bytes()), human_bytes(p.cluster_size()),
                       p.volume_count(), human_bytes(p.used_bytes()), p.uuid());
}

int pool_create(create_opts& o) {
    pb::CreatePoolRequest req;
    req.set_name(o.name);
    req.set_path(o.path);
    req.set_purge(o.purge);
    uint64_t v = 0;
    if (!o.size.empty()) {
        if (!parse_size_arg("--size", o.size, &v)) return exit_usage;
        req.set_size(v);
    }
    if (!o.cluster_size.empty()) {
        if (!parse_size_arg("--cluster-size", o.cluster_size, &v)) return exit_usage;
        req.set_cluster_size(v);
    }
    api_client api(o.api);
    pb::Pool p;
    if (!api.call([&](auto& s, auto* ctx) { return s.CreatePool(ctx, req, &p); }))
        return exit_failed;
    if (o.as_json) {
        print_json(message_json(p));
        return 0;
    }
    std::printf("pool %s created on %s: %s\n", p.name().c_str(), p.path().c_str(),
                pool_summary(p).c_str());
    return 0;
}

int pool_import(import_opts& o) {
    pb::ImportPoolRequest req;
    req.set_path(o.path);
    api_client api(o.api);
    pb::Pool p;
    if (!api.call([&](auto& s, auto* ctx) { return s.ImportPool(ctx, req, &p); }))
        return exit_failed;
    if (o.as_json) {
        print_json(message_json(p));
        return 0;
    }
    std::printf("pool %s imported from %s: %s\n", p.name().c_str(), p.path().c_str(),
                pool_summary(p).c_str());
    return 0;
}

int pool_destroy(destroy_opts& o) {
    pb::DestroyPoolRequest req;
    req.set_name(o.name);
    req.set_purge(o.purge);
    api_client api(o.api);
    pb::Empty e;
    if (!api.call([&](auto& s, auto* ctx) { return s.DestroyPool(ctx, req, &e); }))
        return exit_failed;
    std::printf("pool %s destroyed%s\n", o.name.c_str(),
                o.purge ? " (purged: its device zeroed)" : "");
    return 0;
}

int pool_list(list_opts& o) {
    api_client api(o.api);
    pb::ListPoolsReply rep;
    if (!api.call(
            [&](auto& s, auto* ctx) { return s.ListPools(ctx, pb::ListPoolsRequest(), &rep); }))
        return exit_failed;
    if (o.as_json) {
        print_json(message_json(rep));
        return 0;
    }
    if (rep.pools().empty()) {
        std::printf("no pools (create one: weft engine pool create NAME PATH)\n");
        return 0;
    }
    table t({"name", "capacity", "used", "committed", "cluster", "volumes", "path"}, "lrrrrrl");
    std::vector<const pb::Pool*> offline;
    for (auto& p : rep.pools()) {
        if (!p.status().empty() && p.status() != "online") {
            offline.push_back(&p);
            t.add({p.name(), "-", "-", "-", "-", "-", p.path()});
            continue;
        }
        t.add({p.name(), human_bytes(p.capacity_bytes()), human_bytes(p.used_bytes()),
               human_bytes(p.committed_bytes()), human_bytes(p.cluster_size()),
               std::to_string(p.volume_count()), p.path()});
    }
    t.print();
    // A pool the engine keeps but could not open: say why, and the way out.
    for (auto* p : offline)
        std::printf("pool %s is %s (weft engine pool destroy %s forgets it)\n", p->name().c_str(),
                    p->status().c_str(), p->name().c_str());
    return 0;
}

}  // namespace

void add_pool_commands(CLI::App& app, action_fn& action) {
    auto* pool = app.add_subcommand(
        "pool", "manage a weft-engine's pools: devices or files that hold volumes");
    pool->require_subcommand(1);

    auto c = std::make_shared<create_opts>();
    auto* create = pool->add_subcommand(
        "create",
        "format a device or file as a new pool; refused when it already holds a pool "
        "(import that one instead)");
    create->add_option("NAME", c->name, "the pool's name: 1-63 of [A-Za-z0-9._-]")->required();
    create->add_option("PATH", c->path, "block device or file (created when --size is given)")
        ->required();
    create
        ->add_option("--size", c->size,
                     "create the file with this size when it does not exist (e.g. 10GiB)")
        ->type_name("SIZE");
    create
        ->add_option("--cluster-size", c->cluster_size,
                     "allocation unit, a power of two from 4KiB to 1GiB (default 4MiB)")
        ->type_name("SIZE");
    create->add_flag("--purge", c->purge,
                     "purge every volume destroyed in this pool: its clusters are zeroed on the "
                     "device before they are used again");
    create->add_flag("--json", c->as_json, "print the pool as JSON");
    add_api_options(create, c->api);
    create->callback([c, &action] { action = [c] { return pool_create(*c); }; });

    // Not named `import`: clang-format takes that for a C++20 module import.
    auto i = std::make_shared<import_opts>();
    auto* imp = pool->add_subcommand(
        "import", "load the pool a device or file holds, with its volumes (e.g. moved disks)");
    imp->add_option("PATH", i->path, "block device or file holding a pool")->required();
    imp->add_flag("--json", i->as_json, "print the pool as JSON");
    add_api_options(imp, i->api);
    imp->callback([i, &action] { action = [i] { return pool_import(*i); }; });

    auto d = std::make_shared<destroy_opts>();
    auto* destroy = pool->add_subcommand(
        "destroy",
        "delete a pool's volumes and wipe its superblock; refused while a volume is shared");
    destroy->add_option("NAME", d->name, "the pool")->required();
    destroy->add_flag("--purge", d->purge,
                      "zero the whole device, not only its superblock (a pool made with --purge "
                      "always does)");
    add_api_options(destroy, d->api);
    destroy->callback([d, &action] { action = [d] { return pool_destroy(*d); }; });

    auto l = std::make_shared<list_opts>();
    auto* list = pool->add_subcommand(
        "list", "show the pools: capacity, space used by data, space promised to volumes");
    list->add_flag("--json", l->as_json, "print {\"pools\": [...]} with the API's field names");
    add_api_options(list, l->api);
    list->callback([l, &action] { action = [l] { return pool_list(*l); }; });
}

}  // namespace weft::cli
