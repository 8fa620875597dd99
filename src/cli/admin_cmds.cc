// `weft nvme discover` and `weft nvme identify`: admin-queue only commands.
#include <fmt/format.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/connection.h"
#include "cli/format.h"
#include "initiator/discovery.h"
#include "nvme/fabrics.h"

namespace weft::cli {

namespace {

using json = nlohmann::json;

const char* subtype_name(uint8_t t) {
    switch (t) {
        case 1:
            return "referral";
        case 2:
            return "nvme";
        case 3:
            return "discovery";
        default:
            return "unknown";
    }
}
const char* trtype_name(uint8_t t) {
    return t == 3 ? "tcp" : t == 1 ? "rdma" : t == 2 ? "fc" : "?";
}
const char* adrfam_name(uint8_t f) {
    return f == 1 ? "ipv4" : f == 2 ? "ipv6" : "?";
}
// TREQ bits 1:0 and the TCP SECTYPE, as nvme-cli names them.
const char* treq_name(uint8_t t) {
    return (t & 3) == 1 ? "required" : (t & 3) == 2 ? "not required" : "not specified";
}
const char* sectype_name(uint8_t s) {
    return s == 0 ? "none" : s == 1 ? "tls1.2" : s == 2 ? "tls1.3" : "?";
}

// Fixed-width, space-padded identify strings (SN, MN, FR).
std::string trimmed(const char* s, size_t n) {
    std::string out(s, strnlen(s, n));
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}

std::string hex_bytes(const uint8_t* p, size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) s += fmt::format("{:02x}", p[i]);
    return s;
}

struct discover_opts {
    connection_options c;
    bool as_json = false;
};

task<int> discover_main(discover_opts* o) {
    initiator::controller_options co;
    std::string why;
    if (!make_controller_options(o->c, co, &why)) {
        fail(why);
        co_return 2;
    }
    initiator::discovery_options d;
    d.address = co.address;
    d.hostnqn = co.hostnqn;
    d.hostid = co.hostid;
    d.timeout = co.connect_timeout;
    d.tls_key = co.tls_key;
    auto r = co_await initiator::discover(d);
    if (!r) {
        fail(connect_error_sentence(o->c, r.err(), true));
        co_return exit_connect;
    }
    if (o->as_json) {
        json list = json::array();
        for (auto& e : r.value())
            list.push_back({{"subtype", subtype_name(e.subtype)},
                            {"trtype", trtype_name(e.trtype)},
                            {"adrfam", adrfam_name(e.adrfam)},
                            {"traddr", e.traddr},
                            {"trsvcid", e.trsvcid},
                            {"portid", e.portid},
                            {"cntlid", e.cntlid},
                            {"subnqn", e.subnqn},
                            {"treq", treq_name(e.treq)},
                            {"sectype", sectype_name(e.sectype)}});
        std::printf("%s\n", json{{"records", list}}.dump(2).c_str());
        co_return 0;
    }
    std::printf("Discovery log of %s: %zu record(s)\n", where(o->c).c_str(), r.value().size());
    std::printf("%-3s %-10s %-6s %-6s %-16s %-8s %-6s %-15s %s\n", "#", "subtype", "trtype",
                "adrfam", "traddr", "trsvcid", "portid", "security", "subnqn");
    int i = 0;
    for (auto& e : r.value()) {
        std::string security = sectype_name(e.sectype);
        if ((e.treq & 3) == 1) security += " required";
        std::printf("%-3d %-10s %-6s %-6s %-16s %-8s %-6u %-15s %s\n", i++, subtype_name(e.subtype),
                    trtype_name(e.trtype), adrfam_name(e.adrfam), e.traddr.c_str(),
                    e.trsvcid.c_str(), unsigned(e.portid), security.c_str(), e.subnqn.c_str());
    }
    co_return 0;
}

struct identify_opts {
    connection_options c;
    bool as_json = false;
};

json controller_json(const initiator::controller& ctrl) {
    const auto& id = ctrl.identity();
    return {{"vid", id.vid},
            {"ssvid", id.ssvid},
            {"serial", trimmed(id.sn, sizeof id.sn)},
            {"model", trimmed(id.mn, sizeof id.mn)},
            {"firmware", trimmed(id.fr, sizeof id.fr)},
            {"cntlid", id.cntlid},
            {"version", fmt::format("{}.{}.{}", id.ver >> 16, (id.ver >> 8) & 0xff, id.ver & 0xff)},
            {"subnqn", trimmed(id.subnqn, sizeof id.subnqn)},
            {"max_transfer_bytes", ctrl.max_transfer()},
            {"in_capsule_data_bytes", ctrl.max_icd()},
            {"namespaces_max", id.nn},
            {"multi_controller", bool(id.cmic & nvme::ctrl_bits::cmic_multi_controller)},
            {"volatile_write_cache", bool(id.vwc & nvme::ctrl_bits::vwc_present)},
            {"reservations", bool(id.oncs & nvme::ctrl_bits::oncs_reservations)},
            {"write_zeroes", bool(id.oncs & nvme::ctrl_bits::oncs_write_zeroes)},
            {"dataset_management", bool(id.oncs & nvme::ctrl_bits::oncs_dsm)},
            {"keep_alive_granularity_ms", id.kas * 100},
            {"max_queue_entries", (ctrl.cap() & 0xffff) + 1}};
}

json namespace_json(uint32_t nsid, const nvme::identify_namespace& ns) {
    uint32_t bs = 1u << ns.lbaf[ns.flbas & 0xf].lbads;
    return {{"nsid", nsid},
            {"blocks", ns.nsze},
            {"block_size", bs},
            {"size_bytes", ns.nsze * bs},
            {"capacity_blocks", ns.ncap},
            {"used_blocks", ns.nuse},
            {"shared", bool(ns.nmic & 1)},
            {"reservation_capabilities", ns.rescap},
            {"nguid", hex_bytes(ns.nguid, sizeof ns.nguid)},
            {"eui64", hex_bytes(ns.eui64, sizeof ns.eui64)}};
}

task<int> identify_main(identify_opts* o) {
    initiator::controller_options co;
    std::string why;
    if (!make_controller_options(o->c, co, &why)) {
        fail(why);
        co_return 2;
    }
    co.io_queues = 0;  // admin only
    co.kato_ms = 0;
    auto ctrl = co_await connect(o->c, co);
    if (!ctrl) co_return exit_connect;
    json j = {{"controller", controller_json(*ctrl)}, {"namespaces", json::array()}};
    for (uint32_t nsid : ctrl->namespace_ids())
        if (const auto* ns = ctrl->namespace_data(nsid))
            j["namespaces"].push_back(namespace_json(nsid, *ns));
    co_await ctrl->disconnect();
    if (o->as_json) {
        std::printf("%s\n", j.dump(2).c_str());
        co_return 0;
    }
    auto& c = j["controller"];
    auto row = [](const char* k, const std::string& v) {
        std::printf("  %-24s %s\n", k, v.c_str());
    };
    std::printf("Controller %u of %s on %s\n", c["cntlid"].get<unsigned>(),
                c["subnqn"].get<std::string>().c_str(), where(o->c).c_str());
    row("model", c["model"]);
    row("serial", c["serial"]);
    row("firmware", c["firmware"]);
    row("NVMe version", c["version"]);
    row("vendor / subsystem vendor",
        fmt::format("{:#06x} / {:#06x}", c["vid"].get<unsigned>(), c["ssvid"].get<unsigned>()));
    row("max transfer", human_bytes(c["max_transfer_bytes"].get<uint64_t>()));
    row("in-capsule data", human_bytes(c["in_capsule_data_bytes"].get<uint64_t>()));
    row("max queue entries", c["max_queue_entries"].dump());
    row("namespaces (max)", c["namespaces_max"].dump());
    row("volatile write cache", c["volatile_write_cache"].get<bool>() ? "yes" : "no");
    row("reservations", c["reservations"].get<bool>() ? "yes" : "no");
    row("write zeroes / DSM", fmt::format("{} / {}", c["write_zeroes"].get<bool>() ? "yes" : "no",
                                          c["dataset_management"].get<bool>() ? "yes" : "no"));
    std::printf("\n%-6s %-14s %-8s %-12s %-8s %s\n", "nsid", "blocks", "bsize", "size", "shared",
                "nguid");
    for (auto& n : j["namespaces"])
        std::printf("%-6u %-14llu %-8u %-12s %-8s %s\n", n["nsid"].get<unsigned>(),
                    (unsigned long long)n["blocks"].get<uint64_t>(),
                    n["block_size"].get<unsigned>(),
                    human_bytes(n["size_bytes"].get<uint64_t>()).c_str(),
                    n["shared"].get<bool>() ? "yes" : "no", n["nguid"].get<std::string>().c_str());
    co_return 0;
}

}  // namespace

void add_discover(CLI::App& nvme, action_fn& action) {
    auto o = std::make_shared<discover_opts>();
    o->c.port = 8009;
    auto* sub = nvme.add_subcommand(
        "discover", "list the subsystems a discovery controller offers (its discovery log)");
    add_connection_options(sub, o->c, /*need_nqn=*/false, /*with_nsid=*/false);
    sub->get_option("--port")->description("discovery service TCP port (8009 as nvme-cli)");
    sub->remove_option(sub->get_option("--nqn"));
    sub->add_flag("--json", o->as_json, "print JSON instead of a table");
    sub->callback([o, &action] {
        action = [o] { return run_on_reactors({-1}, [o] { return discover_main(o.get()); }); };
    });
}

void add_identify(CLI::App& nvme, action_fn& action) {
    auto o = std::make_shared<identify_opts>();
    auto* sub = nvme.add_subcommand(
        "identify", "show the controller's and its active namespaces' Identify data");
    add_connection_options(sub, o->c, true, /*with_nsid=*/false);
    sub->add_flag("--json", o->as_json, "print JSON instead of tables");
    sub->callback([o, &action] {
        action = [o] { return run_on_reactors({-1}, [o] { return identify_main(o.get()); }); };
    });
}

}  // namespace weft::cli
