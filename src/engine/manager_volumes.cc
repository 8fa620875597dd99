#include "engine/manager.h"

#include <fmt/format.h>

#include <spdlog/spdlog.h>
#include <algorithm>

#include "engine/api_status.h"
#include "runtime/runtime.h"

namespace weft::engine {

using grpc::Status;
using grpc::StatusCode;

namespace {

void fill_volume(const std::string& pool, const pool::volume_info& v, const std::string& nqn,
                 v1::Volume* out) {
    out->set_pool(pool);
    out->set_name(v.name);
    out->set_uuid(pool::to_string(v.id));
    out->set_size_bytes(v.size_bytes);
    out->set_allocated_bytes(v.allocated_bytes);
    out->set_thin(v.thin);
    out->set_snapshot(v.snapshot);
    out->set_read_only(v.read_only);
    out->set_parent_uuid(v.parent ? pool::to_string(*v.parent) : "");
    out->set_share_nqn(nqn);
}

}  // namespace

// ---- volumes --------------------------------------------------------------

task<Status> manager::resolve(const v1::VolumeRef& ref, resolved* out) {
    if (ref.pool().empty())
        co_return fail(StatusCode::INVALID_ARGUMENT, "which pool? (the volume's pool is missing)");
    if (ref.name().empty() && ref.uuid().empty())
        co_return fail(StatusCode::INVALID_ARGUMENT, "which volume? give its name or its UUID");
    std::optional<pool::uuid> want_id;
    if (!ref.uuid().empty()) {
        want_id = pool::parse_uuid(ref.uuid());
        if (!want_id)
            co_return fail(StatusCode::INVALID_ARGUMENT, "\"" + ref.uuid() + "\" is not a UUID");
    }
    auto p = applier_.find_pool(ref.pool());
    if (!p) co_return fail(StatusCode::NOT_FOUND, "no pool named \"" + ref.pool() + "\"");
    auto vols = co_await p->list();
    for (auto& v : vols) {
        bool match = want_id ? v.id == *want_id : v.name == ref.name();
        if (!match) continue;
        if (want_id && !ref.name().empty() && v.name != ref.name())
            co_return fail(StatusCode::INVALID_ARGUMENT,
                           fmt::format("volume {} is named \"{}\", not \"{}\"", ref.uuid(), v.name,
                                       ref.name()));
        *out = {ref.pool(), p, v};
        co_return Status::OK;
    }
    co_return fail(StatusCode::NOT_FOUND,
                   fmt::format("no volume {} in pool \"{}\"",
                               want_id ? ref.uuid() : "\"" + ref.name() + "\"", ref.pool()));
}

task<Status> manager::volume_reply(const std::string& pool, const pool::uuid& id, v1::Volume* out) {
    auto p = applier_.find_pool(pool);
    if (!p) co_return fail(StatusCode::NOT_FOUND, "no pool named \"" + pool + "\"");
    auto vols = co_await p->list();
    for (auto& v : vols)
        if (v.id == id) {
            fill_volume(pool, v, applier_.nqn_serving(pool, v.name), out);
            co_return Status::OK;
        }
    co_return fail(StatusCode::NOT_FOUND, "the volume is gone");
}

namespace {
Status name_taken(const std::string& pool, const std::string& name) {
    return fail(StatusCode::ALREADY_EXISTS,
                fmt::format("pool \"{}\" has a volume named \"{}\" already", pool, name));
}
}  // namespace

task<Status> manager::create_volume(const v1::CreateVolumeRequest& req, v1::Volume* out) {
    auto g = co_await lock_.lock();
    if (!valid_name(req.name())) co_return bad_name("volume", req.name());
    if (req.size_bytes() == 0 || req.size_bytes() % 512 != 0)
        co_return fail(StatusCode::INVALID_ARGUMENT,
                       fmt::format("volume size {} is not a non-zero multiple of 512 bytes",
                                   req.size_bytes()));
    auto p = applier_.find_pool(req.pool());
    if (!p) co_return fail(StatusCode::NOT_FOUND, "no pool named \"" + req.pool() + "\"");
    std::string why;
    std::string name = req.name();
    auto id = co_await p->create_volume(name, req.size_bytes(), !req.thick(), &why);
    if (!id) {
        if (id.err().code == EEXIST) co_return name_taken(req.pool(), name);
        if (id.err().code == ENOSPC)
            co_return fail(
                StatusCode::RESOURCE_EXHAUSTED,
                fmt::format("pool \"{}\" has no room for a thick volume of {} bytes ({})",
                            req.pool(), req.size_bytes(), why));
        co_return from_errno(id.err().code, why);
    }
    spdlog::info("pool {}: volume {} created ({} bytes, {}) (API)", req.pool(), req.name(),
                 req.size_bytes(), req.thick() ? "thick" : "thin");
    co_return co_await volume_reply(req.pool(), id.value(), out);
}

task<Status> manager::destroy_volume(const v1::DestroyVolumeRequest& req) {
    auto g = co_await lock_.lock();
    resolved r;
    Status s = co_await resolve(req.volume(), &r);
    if (!s.ok()) co_return s;
    // Every served namespace comes from a saved or configured share, so this
    // also covers shares that are saved but not served now.
    bool in_base = false;
    if (auto* share = find_share(r.pool_name, r.info.name, &in_base))
        co_return fail(StatusCode::FAILED_PRECONDITION,
                       fmt::format("volume \"{}\" is shared as {}: unshare it first", r.info.name,
                                   share->nqn));
    if (auto nx = applier_.nexus_using(r.pool_name, r.info.name); !nx.empty())
        co_return fail(StatusCode::FAILED_PRECONDITION,
                       fmt::format("volume \"{}\" is a child of nexus {}: remove it from the "
                                   "nexus first",
                                   r.info.name, nx));
    std::string why;
    const bool purge = req.purge() || purges(r.pool_name);
    // A rotation has the volume open: it stops first (its journal stays
    // until the key goes below).
    const std::string target = r.pool_name + "/" + r.info.name;
    co_await stop_rotations([&](const std::string& t) { return t == target; });
    auto d = co_await r.p->delete_volume(r.info.id, &why, purge);
    // Gone: its key goes with it, so that nothing it held can be read again.
    const bool gone = d || !r.p->find(r.info.name);
    if (gone) {
        Status saved = co_await forget_volume_key(r.pool_name + "/" + r.info.name);
        if (!saved.ok()) co_return saved;
    } else {
        co_await resume_rotations(false);  // still there (its purge failed): its rotation goes on
    }
    if (!d) {
        if (d.err().code == EBUSY) co_return fail(StatusCode::FAILED_PRECONDITION, why);
        co_return from_errno(d.err().code, why);
    }
    spdlog::info("pool {}: volume {} destroyed{} (API)", r.pool_name, r.info.name,
                 purge ? " and purged" : "");
    co_return Status::OK;
}

task<Status> manager::resize_volume(const v1::ResizeVolumeRequest& req, v1::Volume* out) {
    auto g = co_await lock_.lock();
    resolved r;
    Status s = co_await resolve(req.volume(), &r);
    if (!s.ok()) co_return s;
    if (req.size_bytes() == 0 || req.size_bytes() % 512 != 0)
        co_return fail(StatusCode::INVALID_ARGUMENT,
                       fmt::format("volume size {} is not a non-zero multiple of 512 bytes",
                                   req.size_bytes()));
    if (r.info.snapshot)
        co_return fail(StatusCode::FAILED_PRECONDITION, "a snapshot cannot be resized");
    // A rotation's boundary and journal are of the size it started with.
    if (Status busy = check_not_rotating(r.pool_name, r.info.name, "resize"); !busy.ok())
        co_return busy;
    std::string why;
    auto d = co_await r.p->resize_volume(r.info.id, req.size_bytes(), &why);
    if (!d) {
        if (d.err().code == ENOTEMPTY)
            co_return fail(StatusCode::FAILED_PRECONDITION,
                           why.empty() ? "shrinking would drop data" : why);
        co_return from_errno(d.err().code, why);
    }
    spdlog::info("pool {}: volume {} resized to {} bytes (API)", r.pool_name, r.info.name,
                 req.size_bytes());
    co_return co_await volume_reply(r.pool_name, r.info.id, out);
}

task<Status> manager::list_volumes(const v1::ListVolumesRequest& req, v1::ListVolumesReply* out) {
    auto g = co_await lock_.lock();
    if (!req.pool().empty() && !applier_.find_pool(req.pool()))
        co_return fail(StatusCode::NOT_FOUND, "no pool named \"" + req.pool() + "\"");
    std::vector<std::pair<std::string, std::shared_ptr<pool::pool>>> pools;
    for (auto& [n, op] : applier_.pools())
        if (req.pool().empty() || n == req.pool()) pools.emplace_back(n, op.p);
    for (auto& [n, p] : pools) {
        auto vols = co_await p->list();
        for (auto& v : vols) fill_volume(n, v, applier_.nqn_serving(n, v.name), out->add_volumes());
    }
    co_return Status::OK;
}

task<Status> manager::create_snapshot(const v1::CreateSnapshotRequest& req, v1::Volume* out) {
    auto g = co_await lock_.lock();
    if (!valid_name(req.name())) co_return bad_name("snapshot", req.name());
    resolved r;
    Status s = co_await resolve(req.volume(), &r);
    if (!s.ok()) co_return s;
    if (r.info.snapshot)
        co_return fail(StatusCode::FAILED_PRECONDITION,
                       "\"" + r.info.name + "\" is a snapshot already");
    // Mid-rotation its blocks are under two keys: a snapshot would keep
    // that mix with no boundary to read it by.
    if (Status busy = check_not_rotating(r.pool_name, r.info.name, "snapshot"); !busy.ok())
        co_return busy;
    std::string why;
    std::string name = req.name();
    auto id = co_await r.p->snapshot(r.info.id, name, &why);
    if (!id && id.err().code == EEXIST) co_return name_taken(r.pool_name, name);
    if (!id) co_return from_errno(id.err().code, why);
    spdlog::info("pool {}: snapshot {} of {} taken (API)", r.pool_name, req.name(), r.info.name);
    co_return co_await volume_reply(r.pool_name, id.value(), out);
}

task<Status> manager::create_clone(const v1::CreateCloneRequest& req, v1::Volume* out) {
    auto g = co_await lock_.lock();
    if (!valid_name(req.name())) co_return bad_name("clone", req.name());
    resolved r;
    Status s = co_await resolve(req.snapshot(), &r);
    if (!s.ok()) co_return s;
    if (!r.info.snapshot)
        co_return fail(StatusCode::FAILED_PRECONDITION,
                       "\"" + r.info.name + "\" is not a snapshot: take a snapshot and clone that");
    std::string why;
    std::string name = req.name();
    auto id = co_await r.p->clone(r.info.id, name, &why);
    if (!id && id.err().code == EEXIST) co_return name_taken(r.pool_name, name);
    if (!id) co_return from_errno(id.err().code, why);
    spdlog::info("pool {}: clone {} of {} made (API)", r.pool_name, req.name(), r.info.name);
    co_return co_await volume_reply(r.pool_name, id.value(), out);
}

}  // namespace weft::engine
