// `weft engine volume create|destroy|resize|list|share|unshare|stats` and
// `weft engine listener add|remove|list`: an engine's volumes and how hosts reach them,
// over its management API.
#include <fmt/format.h>

#include <cstdio>

#include "cli/api_client.h"
#include "cli/commands.h"
#include "cli/connection.h"
#include "cli/format.h"

namespace weft::cli {

namespace {

struct create_opts {
    api_options api;
    std::string pool, name, size;
    bool thick = false;
    bool as_json = false;
};

struct ref_opts {  // destroy, unshare
    api_options api;
    std::string pool, name;
    bool purge = false;  // destroy
};

struct resize_opts {
    api_options api;
    std::string pool, name, size;
    bool as_json = false;
};

struct list_opts {
    api_options api;
    std::string pool;
    bool as_json = false;
};

struct share_opts {
    api_options api;
    std::string pool, name, nqn;
    std::vector<std::string> hosts;
    bool any_host = false;
    bool as_json = false;
};

struct json_opts {  // stats, listener list
    api_options api;
    bool as_json = false;
};

struct listener_add_opts {
    api_options api;
    std::string address;
    bool as_json = false;
};

std::string volume_line(const pb::Volume& v) {
    return fmt::format("{}, {}, {} allocated (uuid {})", human_bytes(v.size_bytes()),
                       volume_kind(v), human_bytes(v.allocated_bytes()), v.uuid());
}

int volume_create(create_opts& o) {
    pb::CreateVolumeRequest req;
    req.set_pool(o.pool);
    req.set_name(o.name);
    uint64_t size = 0;
    if (!parse_size_arg("SIZE", o.size, &size)) return exit_usage;
    req.set_size_bytes(size);
    req.set_thick(o.thick);
    api_client api(o.api);
    pb::Volume v;
    if (!api.call([&](auto& s, auto* ctx) { return s.CreateVolume(ctx, req, &v); }))
        return exit_failed;
    if (o.as_json) {
        print_json(message_json(v));
        return 0;
    }
    std::printf("volume %s/%s created: %s\n", v.pool().c_str(), v.name().c_str(),
                volume_line(v).c_str());
    return 0;
}

int volume_destroy(ref_opts& o) {
    pb::DestroyVolumeRequest req;
    *req.mutable_volume() = volume_ref(o.pool, o.name);
    req.set_purge(o.purge);
    api_client api(o.api);
    pb::Empty e;
    if (!api.call([&](auto& s, auto* ctx) { return s.DestroyVolume(ctx, req, &e); }))
        return exit_failed;
    std::printf("volume %s/%s destroyed%s\n", o.pool.c_str(), o.name.c_str(),
                o.purge ? " (purged: the clusters it held are zeroed)" : "");
    return 0;
}

int volume_resize(resize_opts& o) {
    pb::ResizeVolumeRequest req;
    *req.mutable_volume() = volume_ref(o.pool, o.name);
    uint64_t size = 0;
    if (!parse_size_arg("SIZE", o.size, &size)) return exit_usage;
    req.set_size_bytes(size);
    api_client api(o.api);
    pb::Volume v;
    if (!api.call([&](auto& s, auto* ctx) { return s.ResizeVolume(ctx, req, &v); }))
        return exit_failed;
    if (o.as_json) {
        print_json(message_json(v));
        return 0;
    }
    std::printf("volume %s/%s resized: %s\n", v.pool().c_str(), v.name().c_str(),
                volume_line(v).c_str());
    return 0;
}

int volume_list(list_opts& o) {
    pb::ListVolumesRequest req;
    req.set_pool(o.pool);
    api_client api(o.api);
    pb::ListVolumesReply rep;
    if (!api.call([&](auto& s, auto* ctx) { return s.ListVolumes(ctx, req, &rep); }))
        return exit_failed;
    if (o.as_json) {
        print_json(message_json(rep));
        return 0;
    }
    if (rep.volumes().empty()) {
        std::printf("no volumes%s\n", o.pool.empty() ? "" : (" in pool " + o.pool).c_str());
        return 0;
    }
    table t({"pool", "name", "size", "allocated", "type", "shared as"}, "llrrll");
    for (auto& v : rep.volumes())
        t.add({v.pool(), v.name(), human_bytes(v.size_bytes()), human_bytes(v.allocated_bytes()),
               volume_kind(v), v.share_nqn().empty() ? "-" : v.share_nqn()});
    t.print();
    return 0;
}

// "IP:PORT" or "[IPv6]:PORT" as nvme connect's -a and -s.
int volume_share(share_opts& o) {
    if (o.hosts.empty() && !o.any_host) {
        fail("say which hosts may connect: --host HOSTNQN (repeatable) or --any-host");
        return exit_usage;
    }
    pb::ShareVolumeRequest req;
    *req.mutable_volume() = volume_ref(o.pool, o.name);
    req.set_nqn(o.nqn);
    for (auto& h : o.hosts) req.add_allowed_hosts(h);
    req.set_allow_any_host(o.any_host);
    api_client api(o.api);
    pb::Share sh;
    if (!api.call([&](auto& s, auto* ctx) { return s.ShareVolume(ctx, req, &sh); }))
        return exit_failed;
    if (o.as_json) {
        print_json(message_json(sh));
        return 0;
    }
    print_share(sh, fmt::format("volume {}/{}", sh.pool(), sh.volume()));
    return 0;
}

int volume_unshare(ref_opts& o) {
    pb::UnshareVolumeRequest req;
    *req.mutable_volume() = volume_ref(o.pool, o.name);
    api_client api(o.api);
    pb::Empty e;
    if (!api.call([&](auto& s, auto* ctx) { return s.UnshareVolume(ctx, req, &e); }))
        return exit_failed;
    std::printf("volume %s/%s is no longer shared\n", o.pool.c_str(), o.name.c_str());
    return 0;
}

std::string latency(const pb::LatencySummary& l) {
    if (l.count() == 0) return "-";
    return fmt::format("{:.0f}/{:.0f}", l.p50_us(), l.p99_us());
}

std::vector<std::string> io_cells(const pb::IoCounters& io) {
    return {std::to_string(io.reads()),     std::to_string(io.writes()),
            human_bytes(io.read_bytes()),   human_bytes(io.write_bytes()),
            std::to_string(io.other_ops()), std::to_string(io.errors()),
            std::to_string(io.in_flight()), latency(io.read_latency()),
            latency(io.write_latency())};
}

const std::vector<std::string> io_header = {"reads",     "writes",          "read",
                                            "written",   "other",           "errors",
                                            "in flight", "read p50/p99 us", "write p50/p99 us"};

int volume_stats(json_opts& o) {
    api_client api(o.api);
    pb::Stats st;
    if (!api.call([&](auto& s, auto* ctx) { return s.GetStats(ctx, pb::GetStatsRequest(), &st); }))
        return exit_failed;
    if (o.as_json) {
        print_json(message_json(st));
        return 0;
    }
    if (st.volumes().empty()) {
        std::printf("no volumes served\n");
    } else {
        std::vector<std::string> h = {"volume", "nsid"};
        h.insert(h.end(), io_header.begin(), io_header.end());
        h.push_back("nqn");
        table t(h, "lrrrrrrrrrrl");
        for (auto& v : st.volumes()) {
            std::vector<std::string> row = {v.pool().empty() ? "-" : v.pool() + "/" + v.volume(),
                                            std::to_string(v.nsid())};
            auto io = io_cells(v.io());
            row.insert(row.end(), io.begin(), io.end());
            row.push_back(v.nqn());
            t.add(std::move(row));
        }
        t.print();
    }
    if (!st.reactors().empty()) {
        std::printf("\n");
        std::vector<std::string> h = {"core"};
        h.insert(h.end(), io_header.begin(), io_header.end());
        table t(h, "rrrrrrrrrr");
        for (auto& r : st.reactors()) {
            std::vector<std::string> row = {std::to_string(r.core())};
            auto io = io_cells(r.io());
            row.insert(row.end(), io.begin(), io.end());
            t.add(std::move(row));
        }
        t.print();
    }
    return 0;
}

int listener_add(listener_add_opts& o) {
    pb::AddListenerRequest req;
    req.set_address(o.address);
    api_client api(o.api);
    pb::Listener l;
    if (!api.call([&](auto& s, auto* ctx) { return s.AddListener(ctx, req, &l); }))
        return exit_failed;
    if (o.as_json) {
        print_json(message_json(l));
        return 0;
    }
    std::printf("listening on %s (NVMe/TCP): every share is reachable there\n",
                l.address().c_str());
    return 0;
}

int listener_remove(listener_add_opts& o) {
    pb::RemoveListenerRequest req;
    req.set_address(o.address);
    api_client api(o.api);
    pb::Empty e;
    if (!api.call([&](auto& s, auto* ctx) { return s.RemoveListener(ctx, req, &e); }))
        return exit_failed;
    std::printf("no longer listening on %s: the connections made through it are closed\n",
                o.address.c_str());
    return 0;
}

int listener_list(json_opts& o) {
    api_client api(o.api);
    pb::ListListenersReply rep;
    if (!api.call([&](auto& s, auto* ctx) {
            return s.ListListeners(ctx, pb::ListListenersRequest(), &rep);
        }))
        return exit_failed;
    if (o.as_json) {
        print_json(message_json(rep));
        return 0;
    }
    if (rep.listeners().empty()) {
        std::printf("no listeners (add one: weft engine listener add IP:PORT)\n");
        return 0;
    }
    table t({"address"});
    for (auto& l : rep.listeners()) t.add({l.address()});
    t.print();
    return 0;
}

// POOL NAME positionals.
void add_ref(CLI::App* sub, std::string& pool, std::string& name) {
    sub->add_option("POOL", pool, "the volume's pool")->required();
    sub->add_option("NAME", name, "the volume")->required();
}

}  // namespace

void add_volume_commands(CLI::App& app, action_fn& action) {
    auto* vol =
        app.add_subcommand("volume", "manage a weft-engine's volumes and share them over NVMe/TCP");
    vol->require_subcommand(1);

    auto c = std::make_shared<create_opts>();
    auto* create = vol->add_subcommand(
        "create", "create a volume; thin (space taken as data is written) unless --thick");
    create->add_option("POOL", c->pool, "the pool to take space from")->required();
    create->add_option("NAME", c->name, "the volume's name: 1-63 of [A-Za-z0-9._-]")->required();
    create->add_option("SIZE", c->size, "a multiple of 512 bytes, e.g. 10GiB, 512MiB, 4096")
        ->required();
    create->add_flag("--thick", c->thick, "allocate every cluster now");
    create->add_flag("--json", c->as_json, "print the volume as JSON");
    add_api_options(create, c->api);
    create->callback([c, &action] { action = [c] { return volume_create(*c); }; });

    auto d = std::make_shared<ref_opts>();
    auto* destroy = vol->add_subcommand(
        "destroy",
        "delete a volume or snapshot and free its space; refused while it is shared or has "
        "clones");
    add_ref(destroy, d->pool, d->name);
    destroy->add_flag("--purge", d->purge,
                      "zero the clusters it alone holds on the device before they return to the "
                      "pool (those a snapshot or clone shares stay theirs)");
    add_api_options(destroy, d->api);
    destroy->callback([d, &action] { action = [d] { return volume_destroy(*d); }; });

    auto r = std::make_shared<resize_opts>();
    auto* resize = vol->add_subcommand(
        "resize",
        "grow a volume, or shrink it when no data would be lost; connected hosts see the new "
        "size");
    add_ref(resize, r->pool, r->name);
    resize->add_option("SIZE", r->size, "the new size, e.g. 20GiB")->required();
    resize->add_flag("--json", r->as_json, "print the volume as JSON");
    add_api_options(resize, r->api);
    resize->callback([r, &action] { action = [r] { return volume_resize(*r); }; });

    auto l = std::make_shared<list_opts>();
    auto* list = vol->add_subcommand(
        "list", "show the volumes (snapshots and clones too): size, space allocated, share");
    list->add_option("--pool", l->pool, "only this pool's")->type_name("POOL");
    list->add_flag("--json", l->as_json, "print {\"volumes\": [...]} with the API's field names");
    add_api_options(list, l->api);
    list->callback([l, &action] { action = [l] { return volume_list(*l); }; });

    auto s = std::make_shared<share_opts>();
    auto* share = vol->add_subcommand(
        "share",
        "export a volume as an NVMe-oF subsystem (namespace 1) on every NVMe/TCP listener; "
        "again with the same NQN replaces its host list");
    add_ref(share, s->pool, s->name);
    share->add_option("--nqn", s->nqn, "subsystem NQN (default nqn.2026-11.io.weft:POOL:NAME)")
        ->type_name("NQN");
    share->add_option("--host", s->hosts, "host NQN allowed to connect (repeatable)")
        ->allow_extra_args(false)
        ->type_name("HOSTNQN");
    share->add_flag("--any-host", s->any_host, "let any host connect");
    share->add_flag("--json", s->as_json, "print the share as JSON");
    add_api_options(share, s->api);
    share->callback([s, &action] { action = [s] { return volume_share(*s); }; });

    auto u = std::make_shared<ref_opts>();
    auto* unshare = vol->add_subcommand(
        "unshare", "stop exporting a volume (its subsystem goes; connected hosts lose it)");
    add_ref(unshare, u->pool, u->name);
    add_api_options(unshare, u->api);
    unshare->callback([u, &action] { action = [u] { return volume_unshare(*u); }; });

    auto st = std::make_shared<json_opts>();
    auto* stats = vol->add_subcommand(
        "stats", "I/O counters and latency (p50/p99, microseconds) per served volume and per core");
    stats->add_flag("--json", st->as_json, "print {\"volumes\": [...], \"reactors\": [...]}");
    add_api_options(stats, st->api);
    stats->callback([st, &action] { action = [st] { return volume_stats(*st); }; });
}

void add_listener_commands(CLI::App& app, action_fn& action) {
    auto* lis =
        app.add_subcommand("listener", "manage the addresses a weft-engine serves NVMe/TCP on");
    lis->require_subcommand(1);

    auto a = std::make_shared<listener_add_opts>();
    auto* add = lis->add_subcommand(
        "add", "listen for NVMe/TCP on one more address (kept across restarts)");
    add->add_option("ADDRESS", a->address, "IP:PORT, e.g. 10.0.0.5:4420 (port 0: any free port)")
        ->required();
    add->add_flag("--json", a->as_json, "print the listener as JSON");
    add_api_options(add, a->api);
    add->callback([a, &action] { action = [a] { return listener_add(*a); }; });

    auto rm = std::make_shared<listener_add_opts>();
    auto* remove = lis->add_subcommand(
        "remove",
        "stop serving NVMe/TCP on an address and close the connections made through it (their "
        "hosts reconnect or move to another path); an address from --listen or --config comes "
        "back when the engine restarts");
    remove->add_option("ADDRESS", rm->address, "IP:PORT, as weft engine listener list shows it")
        ->required();
    add_api_options(remove, rm->api);
    remove->callback([rm, &action] { action = [rm] { return listener_remove(*rm); }; });

    auto l = std::make_shared<json_opts>();
    auto* list = lis->add_subcommand("list", "show the addresses the engine serves NVMe/TCP on");
    list->add_flag("--json", l->as_json, "print {\"listeners\": [...]}");
    add_api_options(list, l->api);
    list->callback([l, &action] { action = [l] { return listener_list(*l); }; });
}

}  // namespace weft::cli
