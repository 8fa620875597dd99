// `weft engine nexus create|destroy|list|get|add-child|remove-child|fault-child|
// online-child|rebuild|arbitrate|share|unshare|label` and `weft engine volume
// inject-fault`: an engine's replicated volumes (a nexus mirrors one volume
// over children, local pool volumes or remote NVMe/TCP namespaces), over its
// management API.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <set>
#include <thread>
#include <tuple>

#include "cli/api_client.h"
#include "cli/commands.h"
#include "cli/connection.h"
#include "cli/format.h"
#include "nexus/child_uri.h"

namespace weft::cli {

namespace {

constexpr const char* uri_forms =
    "Child URIs:\n"
    "  pool://POOL/VOLUME               a volume of a pool on this engine\n"
    "  nvmf://HOST:PORT/SUBNQN[/NSID]   a namespace of another target over NVMe/TCP (NSID 1 by\n"
    "                                   default), e.g. a volume another engine shares; it must\n"
    "                                   let this engine's host NQN (weft-engine --host-nqn)\n"
    "                                   connect\n"
    "Each child keeps the nexus's label and write-intent bitmap in its first MiB: a child\n"
    "must hold the nexus size + 1 MiB.\n";

// ---- options ------------------------------------------------------------------------

struct create_opts {
    api_options api;
    std::string uuid, size, rebuild_rate, minority;
    std::vector<std::string> children, child_uuids;
    uint32_t io_timeout_ms = 0;
    bool no_auto_rebuild = false;
    bool allow_minority = false;
    bool as_json = false;
};

struct uuid_opts {  // destroy, get, unshare
    api_options api;
    std::string uuid;
    bool as_json = false;
};

struct list_opts {
    api_options api;
    bool as_json = false;
};

struct child_opts {  // add-child, remove-child, fault-child, online-child, repoint-child
    api_options api;
    std::string uuid, child;
    std::string uri;  // repoint-child: where the child is now
    bool as_json = false;
};

struct arbitrate_opts {
    api_options api;
    std::string uuid;
    bool allow = false, deny = false;
    bool as_json = false;
};

struct share_opts {
    api_options api;
    std::string uuid, nqn;
    std::vector<std::string> hosts;
    bool any_host = false;
    bool standby = false;
    bool as_json = false;
};

struct resize_opts {
    api_options api;
    std::string uuid, size;
    bool as_json = false;
};

struct ana_opts {
    api_options api;
    std::string nqn, state;
    bool as_json = false;
};

struct label_opts {
    api_options api;
    std::string child;
    bool as_json = false;
};

struct rebuild_opts {
    api_options api;
    std::string uuid, child;
    bool watch = false;
    bool no_wait = false;
    bool as_json = false;
};

struct inject_opts {
    api_options api;
    std::string pool, name, ops;
    int errno_value = 0;
    uint32_t count = 0;
};

// ---- what is printed ----------------------------------------------------------------

// Whole percent done, rounded down (100 only at the end).
double percent(const pb::RebuildProgress& p) {
    if (p.bytes_total() == 0) return 0;
    return std::floor(100.0 * double(p.bytes_done()) / double(p.bytes_total()));
}

// "partial 45% 120.00 MiB/s ETA 3s", or "full, waiting its turn".
std::string progress_short(const pb::RebuildProgress& p) {
    if (p.state() == "waiting") return p.kind() + ", waiting its turn";
    double pct = percent(p);
    if (p.rate() <= 0) return fmt::format("{} {:.0f}%", p.kind(), pct);  // no measure yet
    return fmt::format("{} {:.0f}% {} ETA {}", p.kind(), pct, human_rate(p.rate()),
                       human_duration(p.eta_seconds()));
}

// "partial rebuild 45% (54.00 MiB of 120.00 MiB) at 120.00 MiB/s, ETA 3s".
std::string progress_long(const pb::RebuildProgress& p) {
    if (p.state() == "waiting") return p.kind() + " rebuild waiting its turn";
    double pct = percent(p);
    std::string s = fmt::format("{} rebuild {:.0f}% ({} of {})", p.kind(), pct,
                                human_bytes(p.bytes_done()), human_bytes(p.bytes_total()));
    if (p.rate() > 0)
        s += fmt::format(" at {}, ETA {}", human_rate(p.rate()), human_duration(p.eta_seconds()));
    return s;
}

std::string child_reason(const pb::NexusChild& c) {
    std::string r = c.reason();
    if (c.reconnecting()) r += r.empty() ? "reconnecting" : ", reconnecting";
    return r.empty() ? "-" : r;
}

void print_children(const pb::Nexus& n) {
    table t({"uri", "uuid", "state", "reason", "where", "rebuild"});
    for (auto& c : n.children())
        t.add({c.uri(), c.uuid(), c.state(), child_reason(c), c.local() ? "local" : "remote",
               c.has_rebuild() ? progress_short(c.rebuild()) : "-"});
    t.print();
}

unsigned online_children(const pb::Nexus& n) {
    unsigned k = 0;
    for (auto& c : n.children()) k += c.state() == "online";
    return k;
}

// "64.00 MiB, degraded, generation 4, 2/3 children online".
std::string nexus_line(const pb::Nexus& n) {
    return fmt::format("{}, {}, generation {}, {}/{} children online", human_bytes(n.size_bytes()),
                       n.state(), n.generation(), online_children(n), n.children_size());
}

std::string unix_ms_time(int64_t ms) {
    std::time_t t = std::time_t(ms / 1000);
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

std::string options_line(const pb::NexusOptions& o) {
    return fmt::format("I/O timeout {} ms, rebuild rate {}, minority policy {}, auto rebuild {}",
                       o.io_timeout_ms(), human_rate(double(o.rebuild_rate())),
                       o.minority_policy().empty() ? "wait" : o.minority_policy(),
                       !o.has_auto_rebuild() || o.auto_rebuild() ? "on" : "off");
}

void print_history(const pb::Nexus& n) {
    table t({"child", "kind", "started", "took", "copied", "outcome"}, "lllrrl");
    for (auto& r : n.rebuild_history())
        t.add({r.child(), r.kind(), unix_ms_time(r.start_unix_ms()),
               human_ms(r.end_unix_ms() - r.start_unix_ms()), human_bytes(r.bytes()), r.outcome()});
    t.print();
}

void print_nexus(const pb::Nexus& n) {
    auto kv = [](const char* k, const std::string& v) {
        std::printf("  %-12s %s\n", k, v.c_str());
    };
    std::printf("nexus %s\n", n.uuid().c_str());
    kv("size", human_bytes(n.size_bytes()));
    kv("state", n.state());
    if (!n.waiting().empty()) kv(n.state() == "waiting" ? "waiting" : "why", n.waiting());
    kv("generation", std::to_string(n.generation()));
    kv("dirty", fmt::format("{} region(s) of {}", n.dirty_regions(), human_bytes(n.region_size())));
    kv("shared as", n.share_nqn().empty() ? "- (not shared)" : n.share_nqn());
    kv("options", options_line(n.options()));
    std::printf("\nchildren:\n");
    print_children(n);
    if (!n.rebuild_history().empty()) {
        std::printf("\nrebuild history:\n");
        print_history(n);
    }
}

// The sentence and the children, after a change.
int print_after(const pb::Nexus& n, bool as_json, const std::string& sentence) {
    if (as_json) {
        print_json(message_json(n));
        return 0;
    }
    std::printf("%s\n", sentence.c_str());
    std::printf("nexus %s: %s\n", n.uuid().c_str(), nexus_line(n).c_str());
    print_children(n);
    return 0;
}

// "IP:PORT" or "[IPv6]:PORT" as nvme connect's -a and -s.
// A child reference as the user typed it: a UUID any case (the engine
// compares them in lower case), or a URI.
std::string child_ref(const std::string& s) {
    bool uuid_like = s.size() == 36 && std::all_of(s.begin(), s.end(), [](char c) {
                         return std::isxdigit(static_cast<unsigned char>(c)) || c == '-';
                     });
    if (!uuid_like) return s;
    std::string out = s;
    for (auto& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// The child `ref` (URI as typed or normalised, or child UUID) of `n`.
const pb::NexusChild* find_child(const pb::Nexus& n, const std::string& ref) {
    std::string r = child_ref(ref);
    for (auto& c : n.children())
        if (c.uri() == r || c.uuid() == r) return &c;
    if (auto u = nexus::parse_child_uri(r, nullptr)) {
        std::string norm = nexus::to_string(u.value());
        for (auto& c : n.children())
            if (c.uri() == norm) return &c;
    }
    return nullptr;
}

// ---- commands -----------------------------------------------------------------------

int nexus_create(create_opts& o) {
    pb::CreateNexusRequest req;
    req.set_uuid(o.uuid);
    uint64_t v = 0;
    if (!o.size.empty()) {
        if (!parse_size_arg("--size", o.size, &v)) return exit_usage;
        req.set_size_bytes(v);
    }
    for (auto& c : o.children) req.add_children(c);
    for (auto& c : o.child_uuids) req.add_child_uuids(child_ref(c));
    auto* opt = req.mutable_options();
    opt->set_io_timeout_ms(o.io_timeout_ms);
    if (!o.rebuild_rate.empty()) {
        std::string r = o.rebuild_rate;
        if (r.ends_with("/s")) r.resize(r.size() - 2);
        auto rate = parse_size(r);
        if (!rate) {
            fail(fmt::format("--rebuild-rate \"{}\" is not a rate (like 100MiB, 100MiB/s or 1G)",
                             o.rebuild_rate));
            return exit_usage;
        }
        opt->set_rebuild_rate(rate.value());
    }
    opt->set_minority_policy(o.minority);
    if (o.no_auto_rebuild) opt->set_auto_rebuild(false);
    req.set_allow_minority(o.allow_minority);
    api_client api(o.api);
    pb::Nexus n;
    if (!api.call([&](auto& s, auto* ctx) { return s.CreateNexus(ctx, req, &n); }))
        return exit_failed;
    if (o.as_json) {
        print_json(message_json(n));
        return 0;
    }
    bool again = !o.uuid.empty() && n.generation() > 1;
    std::printf("nexus %s %s: %s\n", n.uuid().c_str(),
                again ? "re-created from its children's labels" : "created", nexus_line(n).c_str());
    print_children(n);
    if (n.state() == "waiting") std::printf("writes are held: %s\n", n.waiting().c_str());
    return 0;
}

int nexus_destroy(uuid_opts& o) {
    pb::DestroyNexusRequest req;
    req.set_uuid(o.uuid);
    api_client api(o.api);
    pb::Empty e;
    if (!api.call([&](auto& s, auto* ctx) { return s.DestroyNexus(ctx, req, &e); }))
        return exit_failed;
    std::printf(
        "nexus %s destroyed: its children keep their data and label (weft engine nexus create "
        "--uuid "
        "%s --child URI ... brings it back)\n",
        o.uuid.c_str(), o.uuid.c_str());
    return 0;
}

int nexus_list(list_opts& o) {
    api_client api(o.api);
    pb::ListNexusesReply rep;
    if (!api.call(
            [&](auto& s, auto* ctx) { return s.ListNexuses(ctx, pb::ListNexusesRequest(), &rep); }))
        return exit_failed;
    if (o.as_json) {
        print_json(message_json(rep));
        return 0;
    }
    if (rep.nexuses().empty()) {
        std::printf(
            "no nexuses (create one: weft engine nexus create --size SIZE --child URI ...)\n");
        return 0;
    }
    table t({"uuid", "size", "state", "generation", "children", "shared as", "rebuild"}, "lrlrrll");
    std::vector<const pb::Nexus*> not_open;
    for (auto& n : rep.nexuses()) {
        std::vector<std::string> rebuilds;
        for (auto& c : n.children())
            if (c.has_rebuild()) rebuilds.push_back(c.uri() + " " + progress_short(c.rebuild()));
        t.add({n.uuid(), human_bytes(n.size_bytes()), n.state(), std::to_string(n.generation()),
               fmt::format("{}/{} online", online_children(n), n.children_size()),
               n.share_nqn().empty() ? "-" : n.share_nqn(),
               rebuilds.empty() ? "-" : fmt::format("{}", fmt::join(rebuilds, "; "))});
        if (n.state() != "waiting" && !n.waiting().empty()) not_open.push_back(&n);
    }
    t.print();
    for (auto* n : not_open) std::printf("nexus %s: %s\n", n->uuid().c_str(), n->waiting().c_str());
    for (auto& n : rep.nexuses())
        if (n.state() == "waiting")
            std::printf("nexus %s holds writes: %s\n", n.uuid().c_str(), n.waiting().c_str());
    return 0;
}

bool get_nexus(api_client& api, const std::string& uuid, pb::Nexus* n) {
    pb::GetNexusRequest req;
    req.set_uuid(uuid);
    return api.call([&](auto& s, auto* ctx) { return s.GetNexus(ctx, req, n); });
}

int nexus_get(uuid_opts& o) {
    api_client api(o.api);
    pb::Nexus n;
    if (!get_nexus(api, o.uuid, &n)) return exit_failed;
    if (o.as_json) {
        print_json(message_json(n));
        return 0;
    }
    print_nexus(n);
    return 0;
}

enum class child_op { add, remove, fault, online, repoint };

int nexus_child(child_opts& o, child_op op) {
    api_client api(o.api);
    pb::Nexus n;
    std::string ref = child_ref(o.child);
    bool ok = false;
    std::string sentence;
    switch (op) {
        case child_op::add: {
            pb::AddChildRequest req;
            req.set_uuid(o.uuid);
            req.set_child(o.child);
            ok = api.call([&](auto& s, auto* ctx) { return s.AddChild(ctx, req, &n); });
            sentence = fmt::format(
                "{} added to nexus {}; it is being rebuilt while I/O goes on (watch: weft "
                "nexus rebuild {} {} --watch)",
                o.child, o.uuid, o.uuid, o.child);
            break;
        }
        case child_op::remove: {
            pb::RemoveChildRequest req;
            req.set_uuid(o.uuid);
            req.set_child(ref);
            ok = api.call([&](auto& s, auto* ctx) { return s.RemoveChild(ctx, req, &n); });
            sentence = fmt::format("{} removed from nexus {}", o.child, o.uuid);
            break;
        }
        case child_op::fault: {
            pb::FaultChildRequest req;
            req.set_uuid(o.uuid);
            req.set_child(ref);
            ok = api.call([&](auto& s, auto* ctx) { return s.FaultChild(ctx, req, &n); });
            sentence = fmt::format(
                "{} of nexus {} is faulted: it gets no I/O until brought back (weft nexus "
                "rebuild {} {})",
                o.child, o.uuid, o.uuid, o.child);
            break;
        }
        case child_op::online: {
            pb::OnlineChildRequest req;
            req.set_uuid(o.uuid);
            req.set_child(ref);
            ok = api.call([&](auto& s, auto* ctx) { return s.OnlineChild(ctx, req, &n); });
            sentence = fmt::format(
                "{} of nexus {} is coming back: it is rebuilt over what it missed (watch: weft "
                "nexus rebuild {} {} --watch)",
                o.child, o.uuid, o.uuid, o.child);
            break;
        }
        case child_op::repoint: {
            pb::RepointChildRequest req;
            req.set_uuid(o.uuid);
            req.set_child(ref);
            req.set_uri(o.uri);
            ok = api.call([&](auto& s, auto* ctx) { return s.RepointChild(ctx, req, &n); });
            sentence = fmt::format(
                "{} of nexus {} is now reached at {}: it is reconnected there and rebuilt over "
                "what it missed (watch: weft engine nexus rebuild {} {} --watch)",
                o.child, o.uuid, o.uri, o.uuid, o.uri);
            break;
        }
    }
    if (!ok) return exit_failed;
    return print_after(n, o.as_json, sentence);
}

int nexus_arbitrate(arbitrate_opts& o) {
    if (o.allow == o.deny) {
        fail("say the arbiter's answer: --allow (go on with the children it reaches) or --deny");
        return exit_usage;
    }
    pb::ArbitrateNexusRequest req;
    req.set_uuid(o.uuid);
    req.set_allow(o.allow);
    api_client api(o.api);
    pb::Nexus n;
    if (!api.call([&](auto& s, auto* ctx) { return s.ArbitrateNexus(ctx, req, &n); }))
        return exit_failed;
    return print_after(
        n, o.as_json,
        o.allow ? fmt::format("nexus {}: allowed to go on with the children it reaches", o.uuid)
                : fmt::format("nexus {}: denied; it keeps holding writes until its children "
                              "answer",
                              o.uuid));
}

int nexus_resize(resize_opts& o) {
    uint64_t size = 0;
    if (!parse_size_arg("--size", o.size, &size)) return exit_usage;
    pb::ResizeNexusRequest req;
    req.set_uuid(o.uuid);
    req.set_size_bytes(size);
    api_client api(o.api);
    pb::Nexus n;
    if (!api.call([&](auto& s, auto* ctx) { return s.ResizeNexus(ctx, req, &n); }))
        return exit_failed;
    return print_after(n, o.as_json,
                       fmt::format("nexus {}: {} (hosts are told)", o.uuid, human_bytes(size)));
}

int ana_set(ana_opts& o) {
    pb::SetAnaStateRequest req;
    req.set_nqn(o.nqn);
    req.set_state(o.state);
    api_client api(o.api);
    pb::Share sh;
    if (!api.call([&](auto& s, auto* ctx) { return s.SetAnaState(ctx, req, &sh); }))
        return exit_failed;
    if (o.as_json) {
        print_json(message_json(sh));
        return 0;
    }
    std::printf("%s: this engine's path is %s (connected hosts are told)\n", sh.nqn().c_str(),
                sh.ana_state().c_str());
    return 0;
}

int nexus_share(share_opts& o) {
    if (o.hosts.empty() && !o.any_host) {
        fail("say which hosts may connect: --allow-host HOSTNQN (repeatable) or --any-host");
        return exit_usage;
    }
    pb::ShareNexusRequest req;
    req.set_uuid(o.uuid);
    req.set_nqn(o.nqn);
    for (auto& h : o.hosts) req.add_allowed_hosts(h);
    req.set_allow_any_host(o.any_host);
    req.set_standby(o.standby);
    api_client api(o.api);
    pb::Share sh;
    if (!api.call([&](auto& s, auto* ctx) { return s.ShareNexus(ctx, req, &sh); }))
        return exit_failed;
    if (o.as_json) {
        print_json(message_json(sh));
        return 0;
    }
    print_share(sh, "nexus " + sh.nexus());
    return 0;
}

int nexus_unshare(uuid_opts& o) {
    pb::UnshareNexusRequest req;
    req.set_uuid(o.uuid);
    api_client api(o.api);
    pb::Empty e;
    if (!api.call([&](auto& s, auto* ctx) { return s.UnshareNexus(ctx, req, &e); }))
        return exit_failed;
    std::printf("nexus %s is no longer shared\n", o.uuid.c_str());
    return 0;
}

int nexus_label(label_opts& o) {
    pb::ReadChildLabelRequest req;
    req.set_child(o.child);
    api_client api(o.api);
    pb::ChildLabel l;
    if (!api.call([&](auto& s, auto* ctx) { return s.ReadChildLabel(ctx, req, &l); }))
        return exit_failed;
    if (o.as_json) {
        print_json(message_json(l));
        return 0;
    }
    if (!l.present()) {
        std::printf("%s has no nexus label: it is a new child to any nexus\n", o.child.c_str());
        return 0;
    }
    auto kv = [](const char* k, const std::string& v) {
        std::printf("  %-12s %s\n", k, v.c_str());
    };
    std::printf("%s holds the label of nexus %s\n", o.child.c_str(), l.nexus_uuid().c_str());
    kv("child uuid", l.child_uuid());
    kv("generation", std::to_string(l.generation()));
    kv("clean", l.clean() ? "yes (the nexus was closed cleanly)"
                          : "no (the nexus is open, or stopped without closing)");
    kv("size", human_bytes(l.size_bytes()));
    kv("dirty", fmt::format("{} region(s) of {}", l.dirty_regions(), human_bytes(l.region_size())));
    std::printf("\nmembers at generation %llu:\n", (unsigned long long)l.generation());
    table t({"uuid", "state", ""});
    for (auto& m : l.members())
        t.add({m.uuid(), m.state(), m.uuid() == l.child_uuid() ? "(this child)" : ""});
    t.print();
    return 0;
}

int inject_fault(inject_opts& o) {
    pb::InjectFaultRequest req;
    *req.mutable_volume() = volume_ref(o.pool, o.name);
    req.set_ops(o.ops);
    req.set_errno_value(o.errno_value);
    req.set_count(o.count);
    api_client api(o.api);
    pb::Empty e;
    if (!api.call([&](auto& s, auto* ctx) { return s.InjectFault(ctx, req, &e); }))
        return exit_failed;
    if (o.ops == "none") {
        std::printf("volume %s/%s: fault cleared, its I/O works again\n", o.pool.c_str(),
                    o.name.c_str());
        return 0;
    }
    int err = o.errno_value ? o.errno_value : EIO;
    std::printf("volume %s/%s: %s operations now fail with errno %d (%s)%s\n", o.pool.c_str(),
                o.name.c_str(), o.ops == "any" ? "all" : o.ops.c_str(), err, std::strerror(err),
                o.count ? fmt::format(", the next {} of them", o.count).c_str()
                        : " until cleared (--ops none)");
    return 0;
}

// ---- rebuild: start one and watch it ------------------------------------------------

using record_key = std::tuple<std::string, int64_t, int64_t, std::string>;

std::set<record_key> history_keys(const pb::Nexus& n) {
    std::set<record_key> out;
    for (auto& r : n.rebuild_history())
        out.insert({r.child(), r.start_unix_ms(), r.end_unix_ms(), r.outcome()});
    return out;
}

// The records of `n` not in `seen`, oldest first (for `uri` only when given).
std::vector<const pb::RebuildRecord*> new_records(const pb::Nexus& n,
                                                  const std::set<record_key>& seen,
                                                  const std::string& uri = {}) {
    std::vector<const pb::RebuildRecord*> out;
    for (auto& r : n.rebuild_history())
        if ((uri.empty() || r.child() == uri) &&
            !seen.count({r.child(), r.start_unix_ms(), r.end_unix_ms(), r.outcome()}))
            out.push_back(&r);
    return out;
}

std::string record_line(const pb::RebuildRecord& r) {
    return fmt::format("{} rebuild of {}: {}, {} copied in {}", r.kind(), r.child(), r.outcome(),
                       human_bytes(r.bytes()), human_ms(r.end_unix_ms() - r.start_unix_ms()));
}

std::string clock_now() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[16];
    std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
    return buf;
}

// Watches child `uri` of nexus `uuid` until it is online (0) or its rebuild
// fails (1). `seen`: the history before the rebuild was asked for.
int watch_child(api_client& api, const rebuild_opts& o, const std::string& uri,
                const std::set<record_key>& seen) {
    progress_line line(o.as_json);
    const auto interval = line.tty() ? std::chrono::milliseconds(500) : std::chrono::seconds(1);
    auto idle_since = std::chrono::steady_clock::now();
    bool idle = false;
    pb::Nexus n;
    for (;;) {
        if (!get_nexus(api, o.uuid, &n)) {
            line.end();
            return exit_failed;
        }
        if (n.state() == "superseded") {
            line.end();
            fail(fmt::format("nexus {} is superseded: {}", o.uuid, n.waiting()));
            return exit_failed;
        }
        const pb::NexusChild* c = find_child(n, uri);
        if (!c) {
            line.end();
            fail(fmt::format("{} is no longer a child of nexus {} (removed?)", uri, o.uuid));
            return exit_failed;
        }
        auto recs = new_records(n, seen, c->uri());
        if (c->state() == "online") {
            line.end();
            // The rebuild's record follows its end by a moment (the label
            // commit): wait for it briefly, to say how it went.
            const std::string curi = c->uri();
            for (int i = 0; i < 20 && recs.empty(); ++i) {
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
                pb::Nexus again;
                if (!get_nexus(api, o.uuid, &again)) break;
                n = std::move(again);
                recs = new_records(n, seen, curi);
            }
            if (o.as_json) {
                print_json(message_json(n));
                return 0;
            }
            if (!recs.empty()) std::printf("%s\n", record_line(*recs.back()).c_str());
            std::printf("%s is online (in sync); nexus %s is %s\n", curi.c_str(), n.uuid().c_str(),
                        n.state().c_str());
            return 0;
        }
        std::string prefix = line.tty() ? c->uri() + ": " : clock_now() + " " + c->uri() + ": ";
        if (c->has_rebuild()) {
            idle = false;
            line.show(prefix + progress_long(c->rebuild()));
        } else {
            // Faulted with no rebuild queued: a rebuild that ended badly
            // (one that restarts is queued again at once), a child being
            // reconnected, or nothing at all.
            const pb::RebuildRecord* last = recs.empty() ? nullptr : recs.back();
            if (last && last->outcome() != "done" && !last->outcome().starts_with("restarted")) {
                line.end();
                if (o.as_json) print_json(message_json(n));
                fail(fmt::format("{} rebuild of {} {} ({} copied); the child is {} ({})",
                                 last->kind(), c->uri(), last->outcome(),
                                 human_bytes(last->bytes()), c->state(), child_reason(*c)));
                return exit_failed;
            }
            bool auto_rebuild = !n.options().has_auto_rebuild() || n.options().auto_rebuild();
            if (c->reconnecting() && auto_rebuild) {
                idle = false;
                line.show(prefix +
                          "does not answer yet; being reconnected, rebuilt when it answers");
            } else {
                auto now = std::chrono::steady_clock::now();
                if (!idle) idle_since = now, idle = true;
                if (now - idle_since > std::chrono::seconds(3)) {
                    line.end();
                    if (o.as_json) print_json(message_json(n));
                    fail(
                        fmt::format("{} is {} ({}) and no rebuild of it runs (start one: weft "
                                    "nexus rebuild {} {})",
                                    c->uri(), c->state(), child_reason(*c), o.uuid, c->uri()));
                    return exit_failed;
                }
                line.show(prefix + c->state() + " (" + child_reason(*c) + ")");
            }
        }
        std::this_thread::sleep_for(interval);
    }
}

// Watches every rebuild of the nexus until none runs: 0 when each one that
// ended did so with "done", else 1.
int watch_all(api_client& api, const rebuild_opts& o) {
    progress_line line(o.as_json);
    const auto interval = line.tty() ? std::chrono::milliseconds(500) : std::chrono::seconds(1);
    pb::Nexus n;
    if (!get_nexus(api, o.uuid, &n)) return exit_failed;
    auto seen = history_keys(n);
    std::set<std::string> watched;  // children seen rebuilding
    bool first = true;
    for (;;) {
        std::vector<std::string> running;
        for (auto& c : n.children())
            if (c.has_rebuild()) {
                running.push_back(c.uri() + ": " + progress_long(c.rebuild()));
                watched.insert(c.uri());
            }
        if (n.state() == "superseded") {
            line.end();
            fail(fmt::format("nexus {} is superseded: {}", o.uuid, n.waiting()));
            return exit_failed;
        }
        if (running.empty()) {
            line.end();
            // Each rebuild's record follows its end by a moment: wait for
            // them briefly, to say how they went.
            auto missing = [&] {
                for (auto& uri : watched)
                    if (new_records(n, seen, uri).empty()) return true;
                return false;
            };
            for (int i = 0; i < 20 && missing(); ++i) {
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
                pb::Nexus again;
                if (!get_nexus(api, o.uuid, &again)) break;
                n = std::move(again);
            }
            auto recs = new_records(n, seen);
            if (o.as_json) print_json(message_json(n));
            if (first && !o.as_json) {
                std::printf("nexus %s: no rebuild running (%s)\n", n.uuid().c_str(),
                            nexus_line(n).c_str());
                for (auto& c : n.children())
                    if (c.reconnecting())
                        std::printf("%s does not answer yet: it is being reconnected\n",
                                    c.uri().c_str());
            }
            int rc = 0;
            std::set<std::string> reported;
            // The last outcome per child says how its rebuilding ended.
            for (auto it = recs.rbegin(); it != recs.rend(); ++it) {
                const auto& r = **it;
                if (!reported.insert(r.child()).second) continue;
                if (r.outcome() != "done") rc = exit_failed;
                if (!o.as_json) std::printf("%s\n", record_line(r).c_str());
            }
            if (!first && !o.as_json)
                std::printf("nexus %s: %s\n", n.uuid().c_str(), nexus_line(n).c_str());
            return rc;
        }
        first = false;
        std::string s = fmt::format("{}", fmt::join(running, "; "));
        line.show(line.tty() ? s : clock_now() + " " + s);
        std::this_thread::sleep_for(interval);
        if (!get_nexus(api, o.uuid, &n)) {
            line.end();
            return exit_failed;
        }
    }
}

int nexus_rebuild(rebuild_opts& o) {
    api_client api(o.api);
    if (o.child.empty()) {
        if (!o.watch) {
            fail(
                "say which child to rebuild (URI or child UUID), or --watch to follow the "
                "rebuilds that run");
            return exit_usage;
        }
        return watch_all(api, o);
    }
    pb::Nexus n;
    if (!get_nexus(api, o.uuid, &n)) return exit_failed;
    const pb::NexusChild* c = find_child(n, o.child);
    if (!c) {
        fail(fmt::format("{} is not a child of nexus {} (weft engine nexus get {} lists them)",
                         o.child, o.uuid, o.uuid));
        return exit_failed;
    }
    std::string uri = c->uri();
    auto seen = history_keys(n);
    if (c->state() == "online") {
        if (o.as_json) {
            print_json(message_json(n));
            return 0;
        }
        std::printf("%s is online (in sync): nothing to rebuild\n", uri.c_str());
        return 0;
    }
    bool auto_rebuild = !n.options().has_auto_rebuild() || n.options().auto_rebuild();
    if (o.watch || c->has_rebuild() || c->state() == "rebuilding") {
        // Already under way (or only watching): follow it.
    } else if (c->reconnecting() && auto_rebuild) {
        if (!o.as_json)
            std::printf(
                "%s does not answer yet: it is being reconnected, and nexus %s rebuilds it when "
                "it answers\n",
                uri.c_str(), o.uuid.c_str());
    } else {
        pb::OnlineChildRequest req;
        req.set_uuid(o.uuid);
        req.set_child(uri);
        if (!api.call([&](auto& s, auto* ctx) { return s.OnlineChild(ctx, req, &n); }))
            return exit_failed;
        if (!o.as_json && !o.no_wait)
            std::printf("rebuilding %s of nexus %s\n", uri.c_str(), o.uuid.c_str());
    }
    if (o.no_wait) {
        if (o.as_json) {
            print_json(message_json(n));
            return 0;
        }
        std::printf(
            "%s of nexus %s is being rebuilt (follow it: weft engine nexus rebuild %s %s "
            "--watch)\n",
            uri.c_str(), o.uuid.c_str(), o.uuid.c_str(), uri.c_str());
        return 0;
    }
    return watch_child(api, o, uri, seen);
}

// ---- registration -------------------------------------------------------------------

void add_uuid(CLI::App* sub, std::string& uuid) {
    sub->add_option("UUID", uuid, "the nexus (weft engine nexus list shows them)")->required();
}

void add_child_cmd(CLI::App* nx, action_fn& action, const char* name, const char* help,
                   const char* child_help, child_op op) {
    auto o = std::make_shared<child_opts>();
    auto* sub = nx->add_subcommand(name, help);
    add_uuid(sub, o->uuid);
    sub->add_option("CHILD", o->child, child_help)->required();
    if (op == child_op::repoint)
        sub->add_option("URI", o->uri,
                        "where the child is now (the same device: its label must "
                        "name this nexus and this child)")
            ->required();
    sub->add_flag("--json", o->as_json, "print the nexus as JSON");
    add_api_options(sub, o->api);
    sub->footer(uri_forms);
    sub->callback([o, op, &action] { action = [o, op] { return nexus_child(*o, op); }; });
}

}  // namespace

void add_nexus_commands(CLI::App& app, action_fn& action) {
    auto* nx = app.add_subcommand(
        "nexus",
        "manage a weft-engine's replicated volumes: a nexus mirrors one volume over children "
        "(replicas) and rebuilds those that fail");
    nx->require_subcommand(1);
    nx->footer(
        std::string(uri_forms) +
        "A nexus serves I/O while children fail: writes go to every child in sync, reads to\n"
        "one; a child that fails is retired (faulted) and later rebuilt, partially where the\n"
        "write-intent bitmap says what it missed.\n");

    auto c = std::make_shared<create_opts>();
    auto* create = nx->add_subcommand(
        "create",
        "build a nexus over children; children that carry its label (--uuid) re-create it, "
        "the latest generation saying which are in sync and which are rebuilt");
    create->add_option("--child", c->children, "a child URI (repeatable, at least one)")
        ->allow_extra_args(false)
        ->type_name("URI")
        ->required();
    create
        ->add_option("--size", c->size,
                     "the volume's size, e.g. 10GiB (needed for a new nexus; omitted or 0 on "
                     "re-creation: the children's label says)")
        ->type_name("SIZE");
    create
        ->add_option("--uuid", c->uuid,
                     "the nexus's identity (default: a new random one); give an existing "
                     "nexus's UUID to re-create it from its children")
        ->type_name("UUID");
    create
        ->add_option(
            "--child-uuid", c->child_uuids,
            "by position, each child's UUID in the nexus (weft engine nexus label URI), so that "
            "a child that does not answer now keeps its place")
        ->allow_extra_args(false)
        ->type_name("UUID");
    create
        ->add_option("--io-timeout-ms", c->io_timeout_ms,
                     "a child I/O taking longer fails the child (default 5000)")
        ->type_name("N");
    create
        ->add_option("--rebuild-rate", c->rebuild_rate,
                     "rebuild copy rate limit per second, e.g. 100MiB (default 256MiB)")
        ->type_name("SIZE/s");
    create
        ->add_option("--minority-policy", c->minority,
                     "when a failed child cannot be retired by a majority of the in-sync "
                     "children: wait (hold writes until they answer or weft engine nexus arbitrate "
                     "--allow; the default) or proceed (go on: availability before safety)")
        ->check(CLI::IsMember({"wait", "proceed"}));
    create->add_flag("--no-auto-rebuild", c->no_auto_rebuild,
                     "do not rebuild a returning remote child by itself (wait for weft nexus "
                     "rebuild)");
    create->add_flag("--allow-minority", c->allow_minority,
                     "the arbiter's yes up front: re-create even when the in-sync children given "
                     "are not a majority of those the latest label lists");
    create->add_flag("--json", c->as_json, "print the nexus as JSON");
    add_api_options(create, c->api);
    create->footer(uri_forms);
    create->callback([c, &action] { action = [c] { return nexus_create(*c); }; });

    auto d = std::make_shared<uuid_opts>();
    auto* destroy = nx->add_subcommand(
        "destroy",
        "close a nexus, marking its children clean; they keep their data and label (unshare "
        "it first)");
    add_uuid(destroy, d->uuid);
    add_api_options(destroy, d->api);
    destroy->callback([d, &action] { action = [d] { return nexus_destroy(*d); }; });

    auto l = std::make_shared<list_opts>();
    auto* list = nx->add_subcommand(
        "list", "show the nexuses: size, state, generation, children online, share, rebuilds");
    list->add_flag("--json", l->as_json, "print {\"nexuses\": [...]} with the API's field names");
    add_api_options(list, l->api);
    list->callback([l, &action] { action = [l] { return nexus_list(*l); }; });

    auto g = std::make_shared<uuid_opts>();
    auto* get = nx->add_subcommand(
        "get",
        "show one nexus: state (and why writes are held), generation, dirty regions, options, "
        "children with their rebuild progress, and the rebuild history");
    add_uuid(get, g->uuid);
    get->add_flag("--json", g->as_json, "print the nexus as JSON");
    add_api_options(get, g->api);
    get->callback([g, &action] { action = [g] { return nexus_get(*g); }; });

    add_child_cmd(nx, action, "add-child",
                  "add a child and rebuild it (a full copy) while I/O goes on",
                  "the new child's URI", child_op::add);
    add_child_cmd(nx, action, "remove-child",
                  "take a child out of the nexus for good (refused for the last in-sync one)",
                  "the child: its URI or its UUID in the nexus", child_op::remove);
    add_child_cmd(nx, action, "fault-child",
                  "retire a child as if it had failed: it stays a member, stale, until brought "
                  "back",
                  "the child: its URI or its UUID in the nexus", child_op::fault);
    add_child_cmd(nx, action, "online-child",
                  "bring a faulted child back: reconnect it and rebuild what it missed, without "
                  "waiting (weft engine nexus rebuild waits and shows the progress)",
                  "the child: its URI or its UUID in the nexus", child_op::online);
    add_child_cmd(nx, action, "repoint-child",
                  "point a child at a new URI (its node serves it at another address): it keeps "
                  "its place in the nexus and is rebuilt over what it missed only",
                  "the child: its URI or its UUID in the nexus", child_op::repoint);

    auto r = std::make_shared<rebuild_opts>();
    auto* rebuild = nx->add_subcommand(
        "rebuild",
        "bring a faulted child back (as online-child) and show the rebuild's progress until "
        "the child is online (exit 0) or the rebuild fails (exit 1); with --watch, only follow "
        "the rebuilds that run");
    add_uuid(rebuild, r->uuid);
    rebuild->add_option("CHILD", r->child,
                        "the child: its URI or its UUID in the nexus (none with --watch: every "
                        "rebuild of the nexus)");
    rebuild->add_flag("--watch", r->watch, "do not start a rebuild, follow those that run");
    rebuild->add_flag("--no-wait", r->no_wait, "start the rebuild and return at once");
    rebuild->add_flag("--json", r->as_json,
                      "no progress lines: print the nexus as JSON when the rebuild ends");
    add_api_options(rebuild, r->api);
    rebuild->footer(
        "The progress line is redrawn every 0.5 s on a terminal; otherwise one line a second\n"
        "is printed, so that logs stay readable.\n");
    rebuild->callback([r, &action] { action = [r] { return nexus_rebuild(*r); }; });

    auto a = std::make_shared<arbitrate_opts>();
    auto* arb = nx->add_subcommand(
        "arbitrate",
        "answer a nexus that holds writes because it cannot reach a majority of its in-sync "
        "children (its state is \"waiting\")");
    add_uuid(arb, a->uuid);
    arb->add_flag("--allow", a->allow,
                  "let it go on with the children it reaches (the others are retired)");
    arb->add_flag("--deny", a->deny, "keep it holding writes until its children answer");
    arb->add_flag("--json", a->as_json, "print the nexus as JSON");
    add_api_options(arb, a->api);
    arb->callback([a, &action] { action = [a] { return nexus_arbitrate(*a); }; });

    auto s = std::make_shared<share_opts>();
    auto* share = nx->add_subcommand(
        "share",
        "export a nexus as an NVMe-oF subsystem (namespace 1) on every NVMe/TCP listener; "
        "again with the same NQN replaces its host list");
    add_uuid(share, s->uuid);
    share->add_option("--nqn", s->nqn, "subsystem NQN (default nqn.2026-11.io.weft:nexus:UUID)")
        ->type_name("NQN");
    share->add_option("--allow-host,--host", s->hosts, "host NQN allowed to connect (repeatable)")
        ->allow_extra_args(false)
        ->type_name("HOSTNQN");
    share->add_flag("--any-host", s->any_host, "let any host connect");
    share->add_flag("--standby", s->standby,
                    "the nexus is on another engine: serve its NQN here with no namespace and "
                    "ANA inaccessible (a second path for hosts' multipath, taken over when the "
                    "nexus is made and shared here)");
    share->add_flag("--json", s->as_json, "print the share as JSON");
    add_api_options(share, s->api);
    share->callback([s, &action] { action = [s] { return nexus_share(*s); }; });

    auto u = std::make_shared<uuid_opts>();
    auto* unshare = nx->add_subcommand(
        "unshare", "stop exporting a nexus (its subsystem goes; connected hosts lose it)");
    add_uuid(unshare, u->uuid);
    add_api_options(unshare, u->api);
    unshare->callback([u, &action] { action = [u] { return nexus_unshare(*u); }; });

    auto rz = std::make_shared<resize_opts>();
    auto* resize = nx->add_subcommand(
        "resize",
        "grow a nexus once every child holds the new size plus 1 MiB (grow the children first: "
        "weft engine volume resize on their engines); I/O waits a moment, then hosts see it");
    add_uuid(resize, rz->uuid);
    resize->add_option("--size", rz->size, "the new size, e.g. 20GiB (a nexus does not shrink)")
        ->type_name("SIZE")
        ->required();
    resize->add_flag("--json", rz->as_json, "print the nexus as JSON");
    add_api_options(resize, rz->api);
    resize->callback([rz, &action] { action = [rz] { return nexus_resize(*rz); }; });

    auto an = std::make_shared<ana_opts>();
    auto* ana = app.add_subcommand(
        "ana",
        "set this engine's ANA state for a share: how hosts' native multipath sees this "
        "path to the volume");
    ana->add_option("NQN", an->nqn, "the share's subsystem NQN")->required();
    ana->add_option("STATE", an->state, "the path's state")
        ->required()
        ->check(CLI::IsMember(
            {"optimized", "non-optimized", "inaccessible", "persistent-loss", "change"}));
    ana->add_flag("--json", an->as_json, "print the share as JSON");
    add_api_options(ana, an->api);
    ana->callback([an, &action] { action = [an] { return ana_set(*an); }; });

    auto lb = std::make_shared<label_opts>();
    auto* label = nx->add_subcommand(
        "label",
        "read the nexus label a child carries, without building a nexus: which nexus, its "
        "generation, whether it closed cleanly, the members in sync");
    label->add_option("CHILD", lb->child, "a child URI")->required();
    label->add_flag("--json", lb->as_json, "print the label as JSON");
    add_api_options(label, lb->api);
    label->footer(uri_forms);
    label->callback([lb, &action] { action = [lb] { return nexus_label(*lb); }; });
}

void add_inject_fault(CLI::App& app, action_fn& action) {
    auto* vol = app.get_subcommand("volume");
    auto o = std::make_shared<inject_opts>();
    auto* sub = vol->add_subcommand(
        "inject-fault",
        "for tests: make a volume's I/O fail (served, or used as a nexus child) until cleared "
        "with --ops none");
    sub->add_option("POOL", o->pool, "the volume's pool")->required();
    sub->add_option("NAME", o->name, "the volume")->required();
    sub->add_option("--ops", o->ops,
                    "which operations fail: read, write, any (every operation) or none (clears "
                    "the fault)")
        ->required()
        ->check(CLI::IsMember({"read", "write", "any", "none"}));
    sub->add_option("--errno", o->errno_value, "the error they fail with (default 5, EIO)")
        ->type_name("N")
        ->check(CLI::Range(0, 4095));
    sub->add_option("--count", o->count,
                    "fail this many operations, then work again (default: "
                    "until cleared)")
        ->type_name("N");
    add_api_options(sub, o->api);
    sub->callback([o, &action] { action = [o] { return inject_fault(*o); }; });
}

}  // namespace weft::cli
