// `weft nvme reservation register|acquire|release|report` (NVMe Base 2.0,
// 7.x): persistent reservations of a namespace, keyed by this host's ID.
#include <fmt/format.h>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/connection.h"
#include "initiator/ns.h"

namespace weft::cli {

namespace {

using initiator::reservation_acquire_action;
using initiator::reservation_register_action;
using initiator::reservation_release_action;
using nvme::reservation_type;

const std::map<std::string, reservation_type> type_names = {
    {"write-exclusive", reservation_type::write_exclusive},
    {"exclusive-access", reservation_type::exclusive_access},
    {"write-exclusive-registrants-only", reservation_type::write_exclusive_registrants_only},
    {"exclusive-access-registrants-only", reservation_type::exclusive_access_registrants_only},
    {"write-exclusive-all-registrants", reservation_type::write_exclusive_all_registrants},
    {"exclusive-access-all-registrants", reservation_type::exclusive_access_all_registrants},
};

std::string type_name(uint8_t t) {
    for (auto& [name, v] : type_names)
        if (uint8_t(v) == t) return name;
    return t == 0 ? "none" : fmt::format("type {}", t);
}

enum class verb { reg, acquire, release, report };

struct resv_opts {
    connection_options c;
    uint64_t key = 0;
    uint64_t other_key = 0;  // register: the new key; acquire: the key to preempt
    std::string action;
    std::string type = "write-exclusive";
    bool iekey = false;
    bool as_json = false;
};

task<int> report(resv_opts& o, initiator::ns& disk) {
    std::vector<std::byte> buf(4096);
    auto r = co_await disk.reservation_report(buf);
    if (!r) co_return (fail(transport_error_sentence(o.c, r.err())), exit_failed);
    if (!r->ok()) co_return (fail("reservation report: " + status_sentence(o.c, *r)), exit_failed);
    nvme::reservation_status_ext_header h;
    std::memcpy(&h, buf.data(), sizeof h);
    size_t max = (buf.size() - sizeof h) / sizeof(nvme::registered_controller_ext);
    size_t n = std::min<size_t>(h.regctl, max);
    nlohmann::json regs = nlohmann::json::array();
    for (size_t i = 0; i < n; ++i) {
        nvme::registered_controller_ext e;
        std::memcpy(&e, buf.data() + sizeof h + i * sizeof e, sizeof e);
        std::string hostid;
        for (uint8_t b : e.hostid) hostid += fmt::format("{:02x}", b);
        regs.push_back({{"cntlid", e.cntlid},
                        {"holds_reservation", bool(e.rcsts & 1)},
                        {"key", e.rkey},
                        {"hostid", hostid}});
    }
    uint32_t gen = h.gen;
    nlohmann::json j = {{"generation", gen},
                        {"type", type_name(h.rtype)},
                        {"persist_through_power_loss", bool(h.ptpls)},
                        {"registrants", regs}};
    if (o.as_json) {
        std::printf("%s\n", j.dump(2).c_str());
        co_return 0;
    }
    std::printf("namespace %u: generation %u, reservation %s, %zu registrant(s)\n", o.c.nsid, gen,
                type_name(h.rtype).c_str(), n);
    if (n) std::printf("  %-7s %-34s %-20s %s\n", "cntlid", "hostid", "key", "holder");
    for (auto& e : regs)
        std::printf("  %-7u %-34s %#-20llx %s\n", e["cntlid"].get<unsigned>(),
                    e["hostid"].get<std::string>().c_str(),
                    (unsigned long long)e["key"].get<uint64_t>(),
                    e["holds_reservation"].get<bool>() ? "yes" : "no");
    co_return 0;
}

task<int> resv_main(resv_opts* o, verb v) {
    initiator::controller_options co;
    std::string why;
    if (!make_controller_options(o->c, co, &why)) co_return (fail(why), 2);
    co.kato_ms = 0;
    auto ctrl = co_await connect(o->c, co);
    if (!ctrl) co_return exit_connect;
    int rc = 0;
    const auto& ids = ctrl->namespace_ids();
    if (std::find(ids.begin(), ids.end(), o->c.nsid) == ids.end()) {
        fail(fmt::format("namespace {} does not exist on {}", o->c.nsid, o->c.nqn));
        rc = exit_failed;
    } else {
        initiator::ns disk(*ctrl, o->c.nsid);
        auto type = type_names.at(o->type);
        result<nvme::status> st = nvme::status{};
        const char* what = "";
        if (v == verb::report) {
            rc = co_await report(*o, disk);
        } else if (v == verb::reg) {
            what = "register";
            if (o->action == "unregister")
                st = co_await disk.reservation_register(reservation_register_action::unregister,
                                                        o->key, 0, o->iekey);
            else if (o->action == "replace")
                st = co_await disk.reservation_register(reservation_register_action::replace,
                                                        o->key, o->other_key, o->iekey);
            else
                st = co_await disk.reservation_register(reservation_register_action::register_key,
                                                        0, o->key, o->iekey);
        } else if (v == verb::acquire) {
            what = "acquire";
            auto a = o->action == "preempt"         ? reservation_acquire_action::preempt
                     : o->action == "preempt-abort" ? reservation_acquire_action::preempt_and_abort
                                                    : reservation_acquire_action::acquire;
            st = co_await disk.reservation_acquire(a, type, o->key, o->other_key);
        } else {
            what = "release";
            auto a = o->action == "clear" ? reservation_release_action::clear
                                          : reservation_release_action::release;
            st = co_await disk.reservation_release(a, type, o->key);
        }
        if (!st) {
            fail(transport_error_sentence(o->c, st.err()));
            rc = exit_failed;
        } else if (!st->ok()) {
            fail(fmt::format("reservation {}: {}", what, status_sentence(o->c, *st)));
            rc = exit_failed;
        } else if (v != verb::report) {
            std::printf("reservation %s on namespace %u: done\n", what, o->c.nsid);
        }
    }
    co_await ctrl->disconnect();
    co_return rc;
}

void add_verb(CLI::App& parent, action_fn& action, verb v, const char* name, const char* help) {
    auto o = std::make_shared<resv_opts>();
    auto* sub = parent.add_subcommand(name, help);
    add_connection_options(sub, o->c);
    std::vector<std::string> types;
    for (auto& [n, t] : type_names) types.push_back(n);
    switch (v) {
        case verb::reg:
            sub->add_option("-k,--key", o->key,
                            "the key to register (unregister/replace: the current key)")
                ->required();
            sub->add_option("--new-key", o->other_key, "replace: the new key");
            o->action = "register";
            sub->add_option("--action", o->action, "register, unregister or replace")
                ->capture_default_str()
                ->check(CLI::IsMember({"register", "unregister", "replace"}));
            sub->add_flag("--iekey", o->iekey,
                          "ignore the current key (replace or unregister anyway)");
            break;
        case verb::acquire:
            sub->add_option("-k,--key", o->key, "this host's registered key")->required();
            sub->add_option("--preempt-key", o->other_key,
                            "preempt: the key of the holder to remove");
            o->action = "acquire";
            sub->add_option("--action", o->action, "acquire, preempt or preempt-abort")
                ->capture_default_str()
                ->check(CLI::IsMember({"acquire", "preempt", "preempt-abort"}));
            sub->add_option("-t,--type", o->type, "reservation type")
                ->capture_default_str()
                ->check(CLI::IsMember(types));
            break;
        case verb::release:
            sub->add_option("-k,--key", o->key, "this host's registered key")->required();
            o->action = "release";
            sub->add_option("--action", o->action, "release, or clear (drops every registration)")
                ->capture_default_str()
                ->check(CLI::IsMember({"release", "clear"}));
            sub->add_option("-t,--type", o->type, "the type of the reservation held")
                ->capture_default_str()
                ->check(CLI::IsMember(types));
            break;
        case verb::report:
            sub->add_flag("--json", o->as_json, "print JSON");
            break;
    }
    sub->callback([o, v, &action] {
        action = [o, v] { return run_on_reactors({-1}, [o, v] { return resv_main(o.get(), v); }); };
    });
}

}  // namespace

void add_reservation(CLI::App& nvme, action_fn& action) {
    auto* r = nvme.add_subcommand("reservation", "persistent reservations of a namespace");
    r->require_subcommand(1);
    add_verb(*r, action, verb::reg, "register",
             "register (or unregister, replace) this host's key");
    add_verb(*r, action, verb::acquire, "acquire", "take (or preempt) the reservation");
    add_verb(*r, action, verb::release, "release", "release the reservation, or clear all");
    add_verb(*r, action, verb::report, "report", "show the reservation and its registrants");
}

}  // namespace weft::cli
