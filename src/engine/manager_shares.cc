#include "engine/manager.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "engine/api_status.h"
#include "runtime/runtime.h"

namespace weft::engine {

using grpc::Status;
using grpc::StatusCode;

// ---- shares ---------------------------------------------------------------

Status manager::check_share(const std::string& nqn,
                            const google::protobuf::RepeatedPtrField<std::string>& hosts,
                            bool any_host) {
    if (!nvmf::valid_nqn(nqn))
        return fail(
            StatusCode::INVALID_ARGUMENT,
            "\"" + nqn +
                "\" is not a valid NQN (nqn.yyyy-mm.reverse.domain:name, at most 223 bytes)");
    for (auto& h : hosts)
        if (!nvmf::valid_nqn(h))
            return fail(StatusCode::INVALID_ARGUMENT,
                        "allowed host \"" + h + "\" is not a valid host NQN");
    if (!any_host && hosts.empty())
        return fail(StatusCode::INVALID_ARGUMENT,
                    "no host could connect: list the allowed host NQNs, or allow any host");
    return Status::OK;
}

const subsystem_config* manager::find_serving(
    const std::function<bool(const namespace_config&)>& match, bool* in_base) const {
    auto has = [&](const subsystem_config& s) {
        return std::any_of(s.namespaces.begin(), s.namespaces.end(), match);
    };
    for (auto& s : state_.subsystems)
        if (has(s)) {
            *in_base = false;
            return &s;
        }
    for (auto& s : base_.subsystems)
        if (has(s)) {
            *in_base = true;
            return &s;
        }
    return nullptr;
}

const subsystem_config* manager::find_share(const std::string& pool, const std::string& volume,
                                            bool* in_base) const {
    return find_serving(
        [&](const namespace_config& n) {
            return n.type == "volume" && n.pool == pool && n.volume == volume;
        },
        in_base);
}

task<Status> manager::apply_share(const subsystem_config& want, const subsystem_config* current,
                                  bool in_base, const std::string& what,
                                  std::function<bool()> served) {
    const std::string& nqn = want.nqn;
    if (current && current->nqn != nqn)
        co_return fail(StatusCode::ALREADY_EXISTS,
                       fmt::format("{} is shared as {} already", what, current->nqn));
    if (current && in_base)
        co_return fail(StatusCode::FAILED_PRECONDITION,
                       fmt::format("{} is shared by the engine's --config; change it there", what));
    if (!current) {
        auto taken = [&](const engine_config& c) {
            return std::any_of(c.subsystems.begin(), c.subsystems.end(),
                               [&](const subsystem_config& x) { return x.nqn == nqn; });
        };
        if (taken(base_) || taken(state_) || target_.find(nqn))
            co_return fail(StatusCode::ALREADY_EXISTS, nqn + " is in use by another subsystem");
    }
    engine_config previous = state_;
    std::erase_if(state_.subsystems, [&](const subsystem_config& x) { return x.nqn == nqn; });
    state_.subsystems.push_back(want);
    std::string problems = co_await reconcile();
    // Problems elsewhere (a pool whose disk is missing) do not stop this one.
    if (!served()) {
        state_ = previous;
        std::string again = co_await reconcile();
        if (!again.empty()) spdlog::error("share rollback: {}", again);
        co_return fail(StatusCode::INTERNAL,
                       "cannot share: " + (problems.empty() ? "not served" : problems));
    }
    if (!problems.empty()) spdlog::warn("share {}: elsewhere: {}", nqn, problems);
    Status saved = co_await persist(previous);
    if (!saved.ok()) {
        (void)co_await reconcile();
        co_return saved;
    }
    spdlog::info(
        "{} shared as {} ({})", what, nqn,
        want.allow_any_host ? "any host" : fmt::format("hosts: {}", fmt::join(want.hosts, ", ")));
    co_return Status::OK;
}

void manager::share_reply(const subsystem_config& s, v1::Share* out) const {
    out->set_nqn(s.nqn);
    for (auto& n : s.namespaces)
        if (n.type == "volume" || n.type == "nexus") {
            out->set_pool(n.pool);
            out->set_volume(n.volume);
            out->set_nexus(n.nexus);
            out->set_nsid(n.nsid ? n.nsid : 1);
            break;
        }
    out->set_allow_any_host(s.allow_any_host);
    for (auto& h : s.hosts) out->add_allowed_hosts(h);
    for (auto& a : server_.addresses()) out->add_listeners(a.to_string());
    out->set_ana_state(s.ana_state);
    if (!s.standby_for.empty()) out->set_nexus(s.standby_for);
}

task<Status> manager::set_ana_state(const v1::SetAnaStateRequest& req, v1::Share* out) {
    auto g = co_await lock_.lock();
    if (!parse_ana_state(req.state()))
        co_return fail(StatusCode::INVALID_ARGUMENT,
                       "ANA state \"" + req.state() +
                           "\" is not optimized, non-optimized, inaccessible, persistent-loss "
                           "or change");
    auto it = std::find_if(state_.subsystems.begin(), state_.subsystems.end(),
                           [&](const subsystem_config& s) { return s.nqn == req.nqn(); });
    if (it == state_.subsystems.end()) {
        bool configured =
            std::any_of(base_.subsystems.begin(), base_.subsystems.end(),
                        [&](const subsystem_config& s) { return s.nqn == req.nqn(); });
        if (configured)
            co_return fail(StatusCode::FAILED_PRECONDITION,
                           req.nqn() + " is served by the engine's --config; change it there");
        co_return fail(StatusCode::NOT_FOUND, "no share " + req.nqn() + " on this engine");
    }
    if (it->ana_state != req.state()) {
        engine_config previous = state_;
        it->ana_state = req.state();
        Status saved = co_await persist(previous);
        if (!saved.ok()) co_return saved;
        std::string problems = co_await reconcile();
        if (!problems.empty()) spdlog::error("ANA state of {}: {}", req.nqn(), problems);
    }
    share_reply(*std::find_if(state_.subsystems.begin(), state_.subsystems.end(),
                              [&](const subsystem_config& x) { return x.nqn == req.nqn(); }),
                out);
    co_return Status::OK;
}

task<Status> manager::share_volume(const v1::ShareVolumeRequest& req, v1::Share* out) {
    auto g = co_await lock_.lock();
    resolved r;
    Status s = co_await resolve(req.volume(), &r);
    if (!s.ok()) co_return s;
    std::string nqn = req.nqn().empty()
                          ? fmt::format("nqn.2026-11.io.weft:{}:{}", r.pool_name, r.info.name)
                          : req.nqn();
    if (Status bad = check_share(nqn, req.allowed_hosts(), req.allow_any_host()); !bad.ok())
        co_return bad;
    // A local child written by a nexus here must not also be written by
    // others over the wire (it cannot be fenced from the nexus's side).
    if (auto nx = applier_.nexus_using(r.pool_name, r.info.name); !nx.empty())
        co_return fail(StatusCode::FAILED_PRECONDITION,
                       fmt::format("volume \"{}\" is a child of nexus {} on this engine: share "
                                   "the nexus instead, or remove the child first",
                                   r.info.name, nx));

    subsystem_config want;
    want.nqn = nqn;
    want.model = "weft volume";
    want.allow_any_host = req.allow_any_host();
    want.hosts.assign(req.allowed_hosts().begin(), req.allowed_hosts().end());
    namespace_config n;
    n.nsid = 1;
    n.type = "volume";
    n.pool = r.pool_name;
    n.volume = r.info.name;
    want.namespaces.push_back(n);

    bool in_base = false;
    const subsystem_config* current = find_share(r.pool_name, r.info.name, &in_base);
    Status applied =
        co_await apply_share(want, current, in_base,
                             fmt::format("volume \"{}\" of pool \"{}\"", r.info.name, r.pool_name),
                             [&] { return applier_.nqn_serving(r.pool_name, r.info.name) == nqn; });
    if (!applied.ok()) co_return applied;
    share_reply(want, out);
    co_return Status::OK;
}

task<Status> manager::unshare_volume(const v1::UnshareVolumeRequest& req) {
    auto g = co_await lock_.lock();
    resolved r;
    Status s = co_await resolve(req.volume(), &r);
    if (!s.ok() && s.error_code() == StatusCode::NOT_FOUND && !req.volume().name().empty()) {
        // A share saved for a volume that is gone (or a pool not loaded):
        // still removable by name.
        r.pool_name = req.volume().pool();
        r.info.name = req.volume().name();
        bool b = false;
        if (!find_share(r.pool_name, r.info.name, &b)) co_return s;
    } else if (!s.ok()) {
        co_return s;
    }
    bool in_base = false;
    const subsystem_config* current = find_share(r.pool_name, r.info.name, &in_base);
    if (!current)
        co_return fail(StatusCode::NOT_FOUND,
                       fmt::format("volume \"{}\" is not shared", r.info.name));
    if (in_base)
        co_return fail(
            StatusCode::FAILED_PRECONDITION,
            fmt::format("volume \"{}\" is shared by the engine's --config; change it there",
                        r.info.name));
    std::string nqn = current->nqn;
    engine_config previous = state_;
    std::erase_if(state_.subsystems, [&](const subsystem_config& x) { return x.nqn == nqn; });
    Status saved = co_await persist(previous);
    if (!saved.ok()) co_return saved;
    std::string problems = co_await reconcile();
    if (!problems.empty()) spdlog::error("unshare {}: {}", nqn, problems);
    spdlog::info("volume {}/{} unshared ({})", r.pool_name, r.info.name, nqn);
    co_return Status::OK;
}

task<Status> manager::list_shares(v1::ListSharesReply* out) {
    auto g = co_await lock_.lock();
    for (auto& s : merged().subsystems)
        if (target_.find(s.nqn)) share_reply(s, out->add_shares());
    co_return Status::OK;
}

// ---- listeners ------------------------------------------------------------

task<Status> manager::add_listener(const v1::AddListenerRequest& req, v1::Listener* out) {
    auto g = co_await lock_.lock();
    auto addr = socket_address::parse(req.address());
    if (!addr)
        co_return fail(
            StatusCode::INVALID_ARGUMENT,
            "\"" + req.address() + "\" is not an address: IP:PORT (e.g. 127.0.0.1:4420)");
    for (auto& a : server_.addresses())
        if (a.to_string() == addr.value().to_string())
            co_return fail(StatusCode::ALREADY_EXISTS, "already listening on " + a.to_string());
    size_t before = server_.addresses().size();
    // The engine's TLS mode (--tls) holds for every listener.
    auto r = co_await server_.listen(addr.value(),
                                     nvmf::parse_tls_mode(base_.tls).value_or(nvmf::tls_mode::off));
    if (!r)
        co_return fail(r.err().code == EADDRNOTAVAIL ? StatusCode::INVALID_ARGUMENT
                                                     : StatusCode::FAILED_PRECONDITION,
                       fmt::format("cannot listen on {}: {}", req.address(), r.err().message()));
    std::string bound = server_.addresses().size() > before ? server_.addresses().back().to_string()
                                                            : req.address();
    if (std::find(base_.listen.begin(), base_.listen.end(), bound) != base_.listen.end()) {
        // Back after a RemoveListener: --listen/--config bring it at start anyway.
        spdlog::info("listening on {} again (API)", bound);
        out->set_address(bound);
        co_return Status::OK;
    }
    engine_config previous = state_;
    state_.listen.push_back(bound);
    Status saved = co_await persist(previous);
    if (!saved.ok()) {
        auto bound_addr = socket_address::parse(bound);
        if (bound_addr) (void)co_await server_.unlisten(bound_addr.value());
        co_return saved;
    }
    spdlog::info("listening on {} (API)", bound);
    out->set_address(bound);
    co_return Status::OK;
}

task<Status> manager::remove_listener(const v1::RemoveListenerRequest& req) {
    auto g = co_await lock_.lock();
    auto addr = socket_address::parse(req.address());
    if (!addr)
        co_return fail(
            StatusCode::INVALID_ARGUMENT,
            "\"" + req.address() + "\" is not an address: IP:PORT (e.g. 127.0.0.1:4420)");
    std::string want = addr.value().to_string();
    auto saved_at = std::find(state_.listen.begin(), state_.listen.end(), want);
    if (saved_at != state_.listen.end()) {
        engine_config previous = state_;
        state_.listen.erase(saved_at);
        Status saved = co_await persist(previous);
        if (!saved.ok()) co_return saved;
    }
    auto r = co_await server_.unlisten(addr.value());
    if (!r)
        co_return fail(StatusCode::NOT_FOUND,
                       fmt::format("not listening on {} (weft engine listener list shows where "
                                   "the engine listens)",
                                   want));
    bool from_flags =
        std::find(base_.listen.begin(), base_.listen.end(), want) != base_.listen.end();
    spdlog::info("no longer listening on {} (API){}", want,
                 from_flags ? "; --listen/--config brings it back at the next start" : "");
    co_return Status::OK;
}

task<Status> manager::list_listeners(v1::ListListenersReply* out) {
    for (auto& a : server_.addresses()) out->add_listeners()->set_address(a.to_string());
    co_return Status::OK;
}

}  // namespace weft::engine
