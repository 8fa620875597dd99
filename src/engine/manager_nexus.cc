// The management API's nexus calls: create (or re-create from the children),
// destroy, list, children in and out, the arbiter's answer, shares, reading
// a child's label, and fault injection into pool volumes.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "engine/api_status.h"
#include "engine/manager.h"
#include "nexus/child_uri.h"

namespace weft::engine {

using grpc::Status;
using grpc::StatusCode;

namespace {

const char* minority_name(nexus::options::minority_policy p) {
    return p == nexus::options::minority_policy::proceed ? "proceed" : "wait";
}

void fill_options(const nexus::options& o, v1::NexusOptions* out) {
    out->set_io_timeout_ms(uint32_t(o.io_timeout.count()));
    out->set_rebuild_rate(o.rebuild_rate);
    out->set_minority_policy(minority_name(o.minority));
    out->set_auto_rebuild(o.auto_rebuild);
}

}  // namespace

bool manager::in_base_nexus(const std::string& uuid) const {
    return std::any_of(base_.nexuses.begin(), base_.nexuses.end(),
                       [&](const nexus_config& x) { return x.uuid == uuid; });
}

nexus_config* manager::state_nexus(const std::string& uuid) {
    for (auto& x : state_.nexuses)
        if (x.uuid == uuid) return &x;
    return nullptr;
}

const subsystem_config* manager::find_nexus_share(const std::string& uuid, bool* in_base) const {
    if (auto* s = find_serving(
            [&](const namespace_config& n) { return n.type == "nexus" && n.nexus == uuid; },
            in_base))
        return s;
    for (auto& s : state_.subsystems)
        if (s.standby_for == uuid) {
            *in_base = false;
            return &s;
        }
    return nullptr;
}

Status manager::nexus_of(const std::string& uuid, std::shared_ptr<nexus::nexus>* out) const {
    if (uuid.empty()) return fail(StatusCode::INVALID_ARGUMENT, "which nexus? give its UUID");
    auto id = pool::parse_uuid(uuid);
    if (!id) return fail(StatusCode::INVALID_ARGUMENT, "\"" + uuid + "\" is not a UUID");
    *out = applier_.find_nexus(pool::to_string(*id));
    if (!*out) {
        std::string problem = applier_.nexus_problem(pool::to_string(*id));
        return fail(StatusCode::NOT_FOUND,
                    "no nexus " + uuid + (problem.empty() ? "" : " is open: " + problem));
    }
    return Status::OK;
}

void manager::nexus_reply(const nexus::nexus& n, v1::Nexus* out) const {
    nexus::nexus_status s = n.status();
    std::string id = pool::to_string(s.id);
    out->set_uuid(id);
    out->set_size_bytes(s.size_bytes);
    out->set_state(nexus::to_string(s.state));
    out->set_generation(s.generation);
    out->set_share_nqn(applier_.nqn_serving_nexus(id));
    fill_options(s.opt, out->mutable_options());
    out->set_waiting(s.waiting);
    out->set_dirty_regions(s.dirty_regions);
    out->set_region_size(s.region_size);
    for (auto& c : s.children) {
        auto* o = out->add_children();
        o->set_uri(c.uri);
        o->set_uuid(pool::to_string(c.id));
        o->set_state(nexus::to_string(c.state));
        o->set_reason(c.reason);
        o->set_local(c.local);
        o->set_reconnecting(c.reconnecting);
        if (c.rebuild) {
            auto* r = o->mutable_rebuild();
            r->set_kind(c.rebuild->kind);
            r->set_state(c.rebuild->state);
            r->set_bytes_done(c.rebuild->bytes_done);
            r->set_bytes_total(c.rebuild->bytes_total);
            r->set_rate(c.rebuild->rate);
            r->set_eta_seconds(c.rebuild->eta_seconds);
            r->set_source(c.rebuild->source);
        }
    }
    for (auto& h : s.history) {
        auto* r = out->add_rebuild_history();
        r->set_child(h.child);
        r->set_kind(h.kind);
        r->set_start_unix_ms(h.start_unix_ms);
        r->set_end_unix_ms(h.end_unix_ms);
        r->set_bytes(h.bytes);
        r->set_outcome(h.outcome);
    }
}

task<Status> manager::save_children(const std::string& uuid, const nexus::nexus& n) {
    nexus_config* x = state_nexus(uuid);
    if (!x) co_return Status::OK;  // a --config nexus: its file says what it is
    engine_config previous = state_;
    x = state_nexus(uuid);
    x->children.clear();
    auto uris = n.child_uris();
    auto ids = n.child_ids();
    for (size_t i = 0; i < uris.size(); ++i)
        x->children.push_back({uris[i], pool::to_string(ids[i])});
    co_return co_await persist(previous);
}

// A pool:// child must not be shared (others would write it unfenced) nor
// be a child of another nexus here.
Status manager::check_local_child(const std::string& text, const nexus::child_uri& u) const {
    if (u.k != nexus::child_uri::kind::pool) return Status::OK;
    bool b = false;
    if (auto* s = find_share(u.pool, u.volume, &b))
        return fail(StatusCode::FAILED_PRECONDITION,
                    fmt::format("{} is shared as {}: a local child must not be written by others "
                                "too; unshare it first",
                                text, s->nqn));
    if (auto other = applier_.nexus_using(u.pool, u.volume); !other.empty())
        return fail(StatusCode::FAILED_PRECONDITION,
                    fmt::format("{} is a child of nexus {} already", text, other));
    return Status::OK;
}

task<Status> manager::create_nexus(const v1::CreateNexusRequest& req, v1::Nexus* out) {
    auto g = co_await lock_.lock();
    nexus::nexus::params p;
    if (!req.uuid().empty()) {
        auto id = pool::parse_uuid(req.uuid());
        if (!id)
            co_return fail(StatusCode::INVALID_ARGUMENT, "\"" + req.uuid() + "\" is not a UUID");
        p.id = *id;
    } else {
        p.id = pool::random_uuid();
    }
    std::string id = pool::to_string(p.id);
    if (applier_.find_nexus(id) || in_base_nexus(id) || state_nexus(id))
        co_return fail(StatusCode::ALREADY_EXISTS, "nexus " + id + " exists on this engine");
    if (req.size_bytes() % 512 != 0)
        co_return fail(
            StatusCode::INVALID_ARGUMENT,
            fmt::format("nexus size {} is not a multiple of 512 bytes", req.size_bytes()));
    if (req.children().empty())
        co_return fail(StatusCode::INVALID_ARGUMENT, "a nexus needs at least one child (a URI)");
    if (req.child_uuids_size() > req.children_size())
        co_return fail(StatusCode::INVALID_ARGUMENT, "more child UUIDs than children");
    for (int i = 0; i < req.children_size(); ++i) {
        std::string why;
        auto u = nexus::parse_child_uri(req.children(i), &why);
        if (!u) co_return fail(StatusCode::INVALID_ARGUMENT, why);
        if (Status bad = check_local_child(req.children(i), u.value()); !bad.ok()) co_return bad;
        p.children.push_back(req.children(i));
        pool::uuid cid{};
        if (i < req.child_uuids_size() && !req.child_uuids(i).empty()) {
            auto parsed = pool::parse_uuid(req.child_uuids(i));
            if (!parsed)
                co_return fail(StatusCode::INVALID_ARGUMENT,
                               "child UUID \"" + req.child_uuids(i) + "\" is not a UUID");
            cid = *parsed;
        }
        p.known_ids.push_back(cid);
    }
    nexus_config cfg;
    cfg.uuid = id;
    const auto& o = req.options();
    if (!o.minority_policy().empty() && o.minority_policy() != "wait" &&
        o.minority_policy() != "proceed")
        co_return fail(StatusCode::INVALID_ARGUMENT,
                       "minority policy \"" + o.minority_policy() + "\" is not wait or proceed");
    if (o.io_timeout_ms() > 600000)
        co_return fail(StatusCode::INVALID_ARGUMENT, "an I/O timeout above 10 minutes is too long");
    cfg.io_timeout_ms = o.io_timeout_ms();
    cfg.rebuild_rate = o.rebuild_rate();
    cfg.minority_policy = o.minority_policy().empty() ? "wait" : o.minority_policy();
    cfg.auto_rebuild = o.has_auto_rebuild() ? o.auto_rebuild() : true;
    p.size_bytes = req.size_bytes();
    p.opt = config_applier::nexus_options(cfg);
    p.allow_minority = req.allow_minority();
    std::string why;
    auto n = co_await nexus::nexus::open(p, applier_.child_factory(p.opt.io_timeout), &why);
    if (!n) co_return from_errno(n.err().code, why);
    applier_.adopt_nexus(id, n.value());
    engine_config previous = state_;
    cfg.size = n.value()->size_bytes();
    auto uris = n.value()->child_uris();
    auto ids = n.value()->child_ids();
    for (size_t i = 0; i < uris.size(); ++i)
        cfg.children.push_back({uris[i], pool::to_string(ids[i])});
    state_.nexuses.push_back(cfg);
    Status saved = co_await persist(previous);
    if (!saved.ok()) {
        co_await applier_.drop_nexus(id);
        co_return saved;
    }
    spdlog::info("nexus {}: created over {} (API)", id, fmt::join(uris, ", "));
    nexus_reply(*n.value(), out);
    co_return Status::OK;
}

task<Status> manager::destroy_nexus(const v1::DestroyNexusRequest& req) {
    auto g = co_await lock_.lock();
    std::shared_ptr<nexus::nexus> n;
    Status s = nexus_of(req.uuid(), &n);
    std::string id = n ? pool::to_string(n->id()) : req.uuid();
    if (!s.ok() && !(s.error_code() == StatusCode::NOT_FOUND && state_nexus(req.uuid())))
        co_return s;
    if (in_base_nexus(id))
        co_return fail(StatusCode::FAILED_PRECONDITION,
                       "nexus " + id + " is defined by the engine's --config; remove it there");
    bool b = false;
    if (auto* share = find_nexus_share(id, &b))
        co_return fail(StatusCode::FAILED_PRECONDITION,
                       fmt::format("nexus {} is shared as {}: unshare it first", id, share->nqn));
    // A rotation has the nexus open: it stops (and resumes if the nexus is
    // opened again and the engine restarts, or on RotateVolumeKey).
    co_await stop_rotations([&](const std::string& t) { return t == "nexus:" + id; });
    engine_config previous = state_;
    std::erase_if(state_.nexuses, [&](const nexus_config& x) { return x.uuid == id; });
    Status saved = co_await persist(previous);
    if (!saved.ok()) co_return saved;
    co_await applier_.drop_nexus(id);
    spdlog::info("nexus {}: destroyed (API); its children keep their data", id);
    co_return Status::OK;
}

task<Status> manager::list_nexuses(v1::ListNexusesReply* out) {
    auto g = co_await lock_.lock();
    for (auto& [id, n] : applier_.nexuses()) nexus_reply(*n, out->add_nexuses());
    // Saved nexuses that could not be opened: listed with why.
    for (auto& x : merged().nexuses)
        if (!applier_.find_nexus(x.uuid)) {
            auto* o = out->add_nexuses();
            o->set_uuid(x.uuid);
            o->set_size_bytes(x.size);
            o->set_state("faulted");
            o->set_waiting("not open: " + applier_.nexus_problem(x.uuid));
            for (auto& c : x.children) {
                auto* oc = o->add_children();
                oc->set_uri(c.uri);
                oc->set_uuid(c.uuid);
                oc->set_state("faulted");
                oc->set_reason("unknown");
            }
        }
    co_return Status::OK;
}

task<Status> manager::get_nexus(const v1::GetNexusRequest& req, v1::Nexus* out) {
    auto g = co_await lock_.lock();
    std::shared_ptr<nexus::nexus> n;
    Status s = nexus_of(req.uuid(), &n);
    if (!s.ok()) co_return s;
    nexus_reply(*n, out);
    co_return Status::OK;
}

task<Status> manager::add_child(const v1::AddChildRequest& req, v1::Nexus* out) {
    auto g = co_await lock_.lock();
    std::shared_ptr<nexus::nexus> n;
    Status s = nexus_of(req.uuid(), &n);
    if (!s.ok()) co_return s;
    std::string why;
    auto u = nexus::parse_child_uri(req.child(), &why);
    if (!u) co_return fail(StatusCode::INVALID_ARGUMENT, why);
    if (Status bad = check_local_child(req.child(), u.value()); !bad.ok()) co_return bad;
    auto r = co_await n->add_child(req.child(), &why);
    if (!r) co_return from_errno(r.err().code, why);
    Status saved = co_await save_children(pool::to_string(n->id()), *n);
    if (!saved.ok()) {
        std::string w;
        (void)co_await n->remove_child(nexus::to_string(u.value()), &w);
        co_return saved;
    }
    nexus_reply(*n, out);
    co_return Status::OK;
}

task<Status> manager::remove_child(const v1::RemoveChildRequest& req, v1::Nexus* out) {
    co_return co_await child_call(
        req.uuid(), out,
        [&](nexus::nexus& n, std::string* why) { return n.remove_child(req.child(), why); },
        /*save=*/true);
}

task<Status> manager::child_call(
    const std::string& uuid, v1::Nexus* out,
    std::function<task<result<void>>(nexus::nexus&, std::string*)> call, bool save) {
    auto g = co_await lock_.lock();
    std::shared_ptr<nexus::nexus> n;
    Status s = nexus_of(uuid, &n);
    if (!s.ok()) co_return s;
    std::string why;
    auto r = co_await call(*n, &why);
    if (!r) co_return from_errno(r.err().code, why);
    if (save) {
        Status saved = co_await save_children(pool::to_string(n->id()), *n);
        if (!saved.ok()) co_return saved;
    }
    nexus_reply(*n, out);
    co_return Status::OK;
}

task<Status> manager::fault_child(const v1::FaultChildRequest& req, v1::Nexus* out) {
    co_return co_await child_call(req.uuid(), out, [&](nexus::nexus& n, std::string* why) {
        return n.fault_child(req.child(), why);
    });
}

task<Status> manager::online_child(const v1::OnlineChildRequest& req, v1::Nexus* out) {
    co_return co_await child_call(req.uuid(), out, [&](nexus::nexus& n, std::string* why) {
        return n.online_child(req.child(), why);
    });
}

task<Status> manager::repoint_child(const v1::RepointChildRequest& req, v1::Nexus* out) {
    std::string why;
    auto u = nexus::parse_child_uri(req.uri(), &why);
    if (!u) co_return fail(StatusCode::INVALID_ARGUMENT, why);
    if (Status bad = check_local_child(req.uri(), u.value()); !bad.ok()) co_return bad;
    // Saved: a restart re-creates the nexus with the child at its new URI.
    co_return co_await child_call(
        req.uuid(), out,
        [&](nexus::nexus& n, std::string* w) { return n.repoint_child(req.child(), req.uri(), w); },
        /*save=*/true);
}

task<Status> manager::arbitrate_nexus(const v1::ArbitrateNexusRequest& req, v1::Nexus* out) {
    // Not under the lock: a call waiting for the lock may be the very
    // retirement this answer releases.
    std::shared_ptr<nexus::nexus> n;
    Status s = nexus_of(req.uuid(), &n);
    if (!s.ok()) co_return s;
    std::string why;
    auto r = co_await n->arbitrate(req.allow(), &why);
    if (!r) co_return fail(StatusCode::FAILED_PRECONDITION, why);
    nexus_reply(*n, out);
    co_return Status::OK;
}

task<Status> manager::share_nexus(const v1::ShareNexusRequest& req, v1::Share* out) {
    auto g = co_await lock_.lock();
    std::shared_ptr<nexus::nexus> n;
    Status s = nexus_of(req.uuid(), &n);
    if (req.standby()) {
        if (s.ok())
            co_return fail(StatusCode::FAILED_PRECONDITION,
                           "nexus " + req.uuid() + " is on this engine: share it, not a standby");
        if (s.error_code() != StatusCode::NOT_FOUND) co_return s;
    } else if (!s.ok()) {
        co_return s;
    }
    std::string id = n ? pool::to_string(n->id()) : pool::to_string(*pool::parse_uuid(req.uuid()));
    std::string nqn = req.nqn().empty() ? "nqn.2026-11.io.weft:nexus:" + id : req.nqn();
    if (Status bad = check_share(nqn, req.allowed_hosts(), req.allow_any_host()); !bad.ok())
        co_return bad;
    subsystem_config want;
    want.nqn = nqn;
    want.model = "weft replicated volume";
    want.allow_any_host = req.allow_any_host();
    want.hosts.assign(req.allowed_hosts().begin(), req.allowed_hosts().end());
    if (req.standby()) {
        // The same serial and model as the nexus's share elsewhere (both
        // follow from the NQN): hosts take the two for one subsystem.
        want.standby_for = id;
        want.ana_state = "inaccessible";
    } else {
        namespace_config ns;
        ns.nsid = 1;
        ns.type = "nexus";
        ns.nexus = id;
        want.namespaces.push_back(ns);
    }
    bool in_base = false;
    const subsystem_config* current = find_nexus_share(id, &in_base);
    Status applied = co_await apply_share(want, current, in_base, "nexus " + id, [&] {
        if (req.standby()) return target_.find(nqn) != nullptr;
        return applier_.nqn_serving_nexus(id) == nqn;
    });
    if (!applied.ok()) co_return applied;
    share_reply(want, out);
    co_return Status::OK;
}

task<Status> manager::unshare_nexus(const v1::UnshareNexusRequest& req) {
    auto g = co_await lock_.lock();
    auto parsed = pool::parse_uuid(req.uuid());
    if (!parsed)
        co_return fail(StatusCode::INVALID_ARGUMENT, "\"" + req.uuid() + "\" is not a UUID");
    std::string id = pool::to_string(*parsed);
    bool in_base = false;
    const subsystem_config* current = find_nexus_share(id, &in_base);
    if (!current) co_return fail(StatusCode::NOT_FOUND, "nexus " + id + " is not shared");
    if (in_base)
        co_return fail(StatusCode::FAILED_PRECONDITION,
                       "nexus " + id + " is shared by the engine's --config; change it there");
    std::string nqn = current->nqn;
    engine_config previous = state_;
    std::erase_if(state_.subsystems, [&](const subsystem_config& x) { return x.nqn == nqn; });
    Status saved = co_await persist(previous);
    if (!saved.ok()) co_return saved;
    std::string problems = co_await reconcile();
    if (!problems.empty()) spdlog::error("unshare {}: {}", nqn, problems);
    spdlog::info("nexus {} unshared ({})", id, nqn);
    co_return Status::OK;
}

task<Status> manager::pause_nexus(const v1::PauseNexusRequest& req, v1::Nexus* out) {
    // Not under the lock, as arbitrate: a pause must not wait for a call that
    // waits for writes.
    std::shared_ptr<nexus::nexus> n;
    Status s = nexus_of(req.uuid(), &n);
    if (!s.ok()) co_return s;
    auto t = std::chrono::milliseconds(req.timeout_ms() ? req.timeout_ms() : 10000);
    if (t > std::chrono::minutes(5))
        co_return fail(StatusCode::INVALID_ARGUMENT,
                       "timeout_ms: a pause holds the volume's writes; at most 300000");
    co_await n->pause(t);
    spdlog::info("nexus {}: writes paused (lapses after {} ms)", req.uuid(), t.count());
    nexus_reply(*n, out);
    co_return Status::OK;
}

task<Status> manager::resume_nexus(const v1::ResumeNexusRequest& req, v1::Nexus* out) {
    std::shared_ptr<nexus::nexus> n;
    Status s = nexus_of(req.uuid(), &n);
    if (!s.ok()) co_return s;
    if (!n->resume())
        co_return fail(StatusCode::FAILED_PRECONDITION,
                       fmt::format("nexus {} was not paused (its pause had lapsed): what was "
                                   "done during it may not be consistent",
                                   req.uuid()));
    spdlog::info("nexus {}: writes resumed", req.uuid());
    nexus_reply(*n, out);
    co_return Status::OK;
}

task<Status> manager::resize_nexus(const v1::ResizeNexusRequest& req, v1::Nexus* out) {
    auto g = co_await lock_.lock();
    std::shared_ptr<nexus::nexus> n;
    Status s = nexus_of(req.uuid(), &n);
    if (!s.ok()) co_return s;
    std::string id = pool::to_string(n->id());
    if (req.size_bytes() != n->size_bytes()) {
        if (in_base_nexus(id))
            co_return fail(StatusCode::FAILED_PRECONDITION,
                           "nexus " + id + " is defined by the engine's --config; change it there");
        // A rotation's boundary and journal are of the size it started with.
        if (rotating("nexus:" + id))
            co_return fail(StatusCode::FAILED_PRECONDITION,
                           "the data key of nexus " + id +
                               " is being rotated: resize it once the rotation ends (weft engine "
                               "volume-key list shows it)");
        // The saved size first: an engine that restarts re-creates the nexus
        // at least as large as its labels say (and grows it if they are
        // behind), never smaller.
        if (nexus_config* x = state_nexus(id); x && x->size < req.size_bytes()) {
            engine_config previous = state_;
            state_nexus(id)->size = req.size_bytes();
            Status saved = co_await persist(previous);
            if (!saved.ok()) co_return saved;
        }
        std::string why;
        auto r = co_await n->resize(req.size_bytes(), &why);
        if (!r) co_return from_errno(r.err().code, why);
        spdlog::info("nexus {}: resized to {} bytes (API)", id, req.size_bytes());
    }
    nexus_reply(*n, out);
    co_return Status::OK;
}

task<Status> manager::clear_child_label(const v1::ClearChildLabelRequest& req) {
    auto g = co_await lock_.lock();
    std::string why;
    auto u = nexus::parse_child_uri(req.child(), &why);
    if (!u) co_return fail(StatusCode::INVALID_ARGUMENT, why);
    if (u->k == nexus::child_uri::kind::pool) {
        if (auto other = applier_.nexus_using(u->pool, u->volume); !other.empty())
            co_return fail(StatusCode::FAILED_PRECONDITION,
                           fmt::format("{} is a child of nexus {} here", req.child(), other));
    }
    auto dev = applier_.child_factory(std::chrono::milliseconds(5000))(req.child(), &why);
    if (!dev) co_return from_errno(dev.err().code, why);
    auto r = co_await nexus::clear_child_label(*dev.value(), &why);
    if (!r) co_return from_errno(r.err().code, why);
    spdlog::info("{}: nexus label cleared", req.child());
    co_return Status::OK;
}

task<Status> manager::read_child_label(const v1::ReadChildLabelRequest& req, v1::ChildLabel* out) {
    auto g = co_await lock_.lock();
    std::string why;
    auto u = nexus::parse_child_uri(req.child(), &why);
    if (!u) co_return fail(StatusCode::INVALID_ARGUMENT, why);
    if (u->k == nexus::child_uri::kind::pool) {
        if (auto other = applier_.nexus_using(u->pool, u->volume); !other.empty())
            co_return fail(
                StatusCode::FAILED_PRECONDITION,
                fmt::format("{} is a child of nexus {} here: its state is in the nexus's status",
                            req.child(), other));
    }
    auto dev = applier_.child_factory(std::chrono::milliseconds(5000))(req.child(), &why);
    if (!dev) co_return from_errno(dev.err().code, why);
    uint64_t dirty = 0;
    auto l = co_await nexus::read_child_label(*dev.value(), &dirty, &why);
    if (!l && l.err().code == ENODATA) {
        out->set_present(false);
        co_return Status::OK;
    }
    if (!l && l.err().code == EUCLEAN)
        co_return fail(StatusCode::DATA_LOSS, req.child() + ": damaged nexus label: " + why);
    if (!l) co_return from_errno(l.err().code, why);
    out->set_present(true);
    out->set_nexus_uuid(pool::to_string(l->nexus_id));
    out->set_child_uuid(pool::to_string(l->child_id));
    out->set_generation(l->generation);
    out->set_clean(l->clean);
    out->set_size_bytes(l->size_bytes);
    out->set_region_size(l->region_size);
    out->set_dirty_regions(dirty);
    for (auto& m : l->members) {
        auto* o = out->add_members();
        o->set_uuid(pool::to_string(m.id));
        o->set_state(m.in_sync() ? "in-sync" : "stale");
    }
    co_return Status::OK;
}

task<Status> manager::inject_fault(const v1::InjectFaultRequest& req) {
    auto g = co_await lock_.lock();
    resolved r;
    Status s = co_await resolve(req.volume(), &r);
    if (!s.ok()) co_return s;
    bdev::fault f;
    const std::string& ops = req.ops();
    if (ops == "read")
        f.ops = bdev::fault_ops::read;
    else if (ops == "write")
        f.ops = bdev::fault_ops::write;
    else if (ops == "any")
        f.ops = bdev::fault_ops::any;
    else if (ops == "none" || ops.empty())
        f.ops = 0;
    else
        co_return fail(StatusCode::INVALID_ARGUMENT,
                       "ops \"" + ops + "\" is not read, write, any or none");
    if (req.errno_value() < 0 || req.errno_value() > 4095)
        co_return fail(StatusCode::INVALID_ARGUMENT, "errno out of range");
    f.err = req.errno_value() ? req.errno_value() : EIO;
    f.count = req.count();
    applier_.faults(r.pool_name, r.info.name)->inject(f);
    spdlog::warn("volume {}/{}: fault injected: {} fail with {}{}", r.pool_name, r.info.name,
                 f.ops ? ops : "none", error{f.err}.message(),
                 f.count ? fmt::format(" ({} times)", f.count) : "");
    co_return Status::OK;
}

}  // namespace weft::engine
