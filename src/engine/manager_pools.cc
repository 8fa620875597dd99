#include "engine/manager.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "bdev/uring/uring_bdev.h"
#include "engine/api_status.h"
#include "runtime/runtime.h"
#include "runtime/uring_op.h"

namespace weft::engine {

using grpc::Status;
using grpc::StatusCode;

namespace {

std::string canonical(const std::string& path) {
    std::error_code ec;
    auto p = std::filesystem::weakly_canonical(path, ec);
    return ec ? path : p.string();
}

}  // namespace

// ---- pools ----------------------------------------------------------------

task<Status> manager::pool_reply(const std::string& name, v1::Pool* out) {
    auto it = applier_.pools().find(name);
    if (it == applier_.pools().end())
        co_return fail(StatusCode::NOT_FOUND, "no pool named \"" + name + "\"");
    auto p = it->second.p;
    std::string path = it->second.path;
    auto st = co_await p->stats();
    auto vols = co_await p->list();
    out->set_name(name);
    out->set_uuid(pool::to_string(p->geo().pool_id));
    out->set_path(path);
    out->set_cluster_size(st.cluster_size);
    out->set_capacity_bytes(st.total_clusters * st.cluster_size);
    out->set_used_bytes(st.used_clusters * st.cluster_size);
    out->set_committed_bytes(st.committed_bytes);
    out->set_volume_count(uint32_t(vols.size()));
    out->set_status("online");
    out->set_purge(purges(name));
    co_return Status::OK;
}

// A pool named `name` on `path` (either may be empty: not checked) would
// clash with none loaded, saved or configured.
Status manager::check_new_pool(const std::string& name, const std::string& path) const {
    const std::string want = path.empty() ? std::string() : canonical(path);
    auto clash = [&](const std::string& n, const std::string& p) -> Status {
        if (!name.empty() && n == name)
            return fail(StatusCode::ALREADY_EXISTS, "a pool named \"" + name + "\" exists");
        if (!want.empty() && canonical(p) == want)
            return fail(StatusCode::ALREADY_EXISTS,
                        fmt::format("{} is pool \"{}\" already", path, n));
        return Status::OK;
    };
    for (auto& [n, op] : applier_.pools())
        if (Status s = clash(n, op.path); !s.ok()) return s;
    for (const engine_config* c : {&base_, &state_})
        for (auto& pc : c->pools)
            if (Status s = clash(pc.name, pc.path); !s.ok()) return s;
    return Status::OK;
}

task<Status> manager::create_pool(const v1::CreatePoolRequest& req, v1::Pool* out) {
    auto g = co_await lock_.lock();
    if (!valid_name(req.name())) co_return bad_name("pool", req.name());
    if (req.path().empty())
        co_return fail(StatusCode::INVALID_ARGUMENT, "a pool needs a path (a device or a file)");
    uint64_t cs = req.cluster_size() ? req.cluster_size() : pool::format::default_cluster_size;
    if ((cs & (cs - 1)) != 0 || cs < pool::format::min_cluster_size ||
        cs > pool::format::max_cluster_size)
        co_return fail(StatusCode::INVALID_ARGUMENT,
                       fmt::format("cluster size {} is not a power of two from {} to {}", cs,
                                   pool::format::min_cluster_size, pool::format::max_cluster_size));
    if (Status s = check_new_pool(req.name(), req.path()); !s.ok()) co_return s;

    std::error_code ec;
    bool existed = std::filesystem::exists(req.path(), ec);
    if (!existed && req.size() == 0)
        co_return fail(StatusCode::NOT_FOUND,
                       req.path() + " does not exist: give a size to create a file of that size");
    if (!existed && req.size() < 4 * cs)
        co_return fail(
            StatusCode::INVALID_ARGUMENT,
            fmt::format(
                "size {} is too small: a pool needs room for at least a few clusters of {} bytes",
                req.size(), cs));
    bdev::uring_options opt;
    opt.create = !existed;
    opt.create_bytes = req.size();
    auto dev = bdev::open_uring_bdev(req.path(), req.path(), opt);
    if (!dev) co_return from_errno(dev.err().code, req.path() + ": " + dev.err().message());
    std::shared_ptr<bdev::bdev> shared(std::move(dev.value()));
    pool::create_options co;
    co.cluster_size = cs;
    std::string why;
    auto made = co_await pool::pool::create(shared, req.name(), co, &why);
    if (!made) {
        shared.reset();
        if (!existed) std::filesystem::remove(req.path(), ec);
        if (made.err().code == EEXIST)
            co_return fail(StatusCode::ALREADY_EXISTS,
                           req.path() + " holds a pool already: import it instead");
        co_return from_errno(made.err().code, why);
    }
    std::shared_ptr<pool::pool> made_pool = std::move(made.value());
    made_pool->set_purge(req.purge());
    applier_.adopt_pool(req.name(), req.path(), made_pool);
    engine_config previous = state_;
    state_.pools.push_back(
        {.name = req.name(), .path = req.path(), .format_if_blank = false, .purge = req.purge()});
    Status saved = co_await persist(previous);
    if (!saved.ok()) {
        applier_.drop_pool(req.name());
        made_pool.reset();  // releases the pool before its device is wiped
        // The device was blank (or new): make it blank again.
        auto ch = shared->open_channel();
        int rc =
            co_await ch->write_zeroes(0, pool::format::superblock_region / shared->block_size());
        if (rc == 0) rc = co_await ch->flush();
        ch.reset();
        shared.reset();
        if (!existed) std::filesystem::remove(req.path(), ec);
        if (rc != 0 && existed)
            co_return fail(StatusCode::INTERNAL,
                           saved.error_message() + "; and the new pool's superblock on " +
                               req.path() + " could not be wiped (" + error{-rc}.message() +
                               "): import it, or recreate it");
        co_return saved;
    }
    spdlog::info("pool {}: created on {} (API)", req.name(), req.path());
    co_return co_await pool_reply(req.name(), out);
}

task<Status> manager::import_pool(const v1::ImportPoolRequest& req, v1::Pool* out) {
    auto g = co_await lock_.lock();
    if (req.path().empty())
        co_return fail(StatusCode::INVALID_ARGUMENT, "give the path of the pool's device or file");
    if (Status s = check_new_pool("", req.path()); !s.ok()) co_return s;
    std::error_code ec;
    if (!std::filesystem::exists(req.path(), ec))
        co_return fail(StatusCode::NOT_FOUND, req.path() + " does not exist");
    auto dev = bdev::open_uring_bdev(req.path(), req.path(), {});
    if (!dev) co_return from_errno(dev.err().code, req.path() + ": " + dev.err().message());
    std::shared_ptr<bdev::bdev> shared(std::move(dev.value()));
    std::string why;
    auto opened = co_await pool::pool::open(shared, &why);
    if (!opened) {
        if (opened.err().code == ENODATA)
            co_return fail(StatusCode::NOT_FOUND, "no weft pool on " + req.path());
        if (opened.err().code == EUCLEAN)
            co_return fail(
                StatusCode::FAILED_PRECONDITION,
                "the pool on " + req.path() + " is damaged and was not imported: " + why);
        co_return from_errno(opened.err().code, why);
    }
    std::string name = opened.value()->geo().name;
    if (Status s = check_new_pool(name, ""); !s.ok())
        co_return fail(
            StatusCode::ALREADY_EXISTS,
            fmt::format("{} holds pool \"{}\": {}", req.path(), name, s.error_message()));
    applier_.adopt_pool(name, req.path(), opened.value());
    engine_config previous = state_;
    state_.pools.push_back({.name = name, .path = req.path(), .format_if_blank = false});
    Status saved = co_await persist(previous);
    if (!saved.ok()) {
        applier_.drop_pool(name);
        co_return saved;
    }
    spdlog::info("pool {}: imported from {} (API)", name, req.path());
    co_return co_await pool_reply(name, out);
}

task<Status> manager::destroy_pool(const v1::DestroyPoolRequest& req) {
    auto g = co_await lock_.lock();
    if (in_base_pool(req.name()))
        co_return fail(
            StatusCode::FAILED_PRECONDITION,
            "pool \"" + req.name() + "\" is defined by the engine's --config; remove it there");
    auto p = applier_.find_pool(req.name());
    bool remembered = std::any_of(state_.pools.begin(), state_.pools.end(),
                                  [&](const pool_config& pc) { return pc.name == req.name(); });
    for (const engine_config* c : {&base_, &state_})
        for (auto& sc : c->subsystems)
            for (auto& n : sc.namespaces)
                if (n.type == "volume" && n.pool == req.name())
                    co_return fail(
                        StatusCode::FAILED_PRECONDITION,
                        fmt::format(
                            "volume \"{}\" of pool \"{}\" is shared as {}: unshare it first",
                            n.volume, req.name(), sc.nqn));
    for (auto& [id, n] : applier_.nexuses())
        for (auto& u : n->child_uris())
            if (u.starts_with("pool://" + req.name() + "/"))
                co_return fail(StatusCode::FAILED_PRECONDITION,
                               fmt::format("{} is a child of nexus {}: remove it from the nexus "
                                           "first",
                                           u, id));
    // Rotations of its volumes have them open: they stop first.
    co_await stop_rotations([&](const std::string& t) { return t.starts_with(req.name() + "/"); });
    if (!p && remembered) {
        // Saved but not loaded (its device was missing at start): forget it.
        engine_config previous = state_;
        std::erase_if(state_.pools, [&](const pool_config& pc) { return pc.name == req.name(); });
        Status saved = co_await persist(previous);
        if (!saved.ok()) co_return saved;
        spdlog::info("pool {}: forgotten (it was not loaded; its device was not wiped)",
                     req.name());
        co_return Status::OK;
    }
    if (!p) co_return fail(StatusCode::NOT_FOUND, "no pool named \"" + req.name() + "\"");
    const bool purge = req.purge() || purges(req.name());
    // Purged: the data clusters are zeroed while the pool is still the
    // engine's, so a crash or an error on the way leaves a pool that opens
    // (its volumes partly zeroed) and is destroyed again, never a forgotten
    // device with data on it. The head (superblock, metadata) goes last.
    const uint64_t head_blocks = p->geo().data_offset / p->device()->block_size();
    if (purge) {
        auto dev = p->device();
        auto ch = dev->open_channel();
        int rc = co_await ch->write_zeroes(head_blocks, dev->num_blocks() - head_blocks);
        if (rc == 0) rc = co_await ch->flush();
        ch.reset();
        if (rc != 0) {
            co_await resume_rotations(false);  // the pool stays: so do its rotations
            co_return fail(StatusCode::INTERNAL,
                           fmt::format("purging pool \"{}\" failed, so it is not destroyed: "
                                       "zeroing its data on {}: {}; destroy it again",
                                       req.name(), applier_.pools().at(req.name()).path,
                                       error{-rc}.message()));
        }
    }
    engine_config previous = state_;
    std::erase_if(state_.pools, [&](const pool_config& pc) { return pc.name == req.name(); });
    // Its volumes' keys go with them.
    std::erase_if(state_.volume_keys, [&](const volume_key_config& k) {
        return k.target.starts_with(req.name() + "/");
    });
    Status saved = co_await persist(previous);
    if (!saved.ok()) co_return saved;
    // Forgotten first, then wiped: a crash in between leaves a pool that can
    // be imported again, never a state that names a blank device.
    auto dev = p->device();
    std::string path = applier_.pools().at(req.name()).path;
    applier_.drop_pool(req.name());
    p.reset();
    auto ch = dev->open_channel();
    // Purged: the head too (the data is zeroed already); else the
    // superblock, so that nothing takes it for a pool any more.
    int rc = co_await ch->write_zeroes(
        0, purge ? head_blocks : pool::format::superblock_region / dev->block_size());
    int rc2 = rc;
    if (rc == 0) rc2 = co_await ch->flush();
    ch.reset();
    if (rc2 != 0) {
        spdlog::error("pool {}: wiping the superblock on {}: {}", req.name(), path,
                      error{-rc2}.message());
        co_return fail(StatusCode::INTERNAL,
                       fmt::format("pool \"{}\" was removed from the engine but its superblock "
                                   "on {} could not be wiped: {}",
                                   req.name(), path, error{-rc2}.message()));
    }
    spdlog::info("pool {}: destroyed ({} {})", req.name(), path,
                 purge ? "purged: every byte zeroed" : "wiped");
    co_return Status::OK;
}

task<Status> manager::list_pools(v1::ListPoolsReply* out) {
    auto g = co_await lock_.lock();
    std::vector<std::string> names;
    for (auto& [n, op] : applier_.pools()) names.push_back(n);
    for (auto& n : names) {
        Status s = co_await pool_reply(n, out->add_pools());
        if (!s.ok()) co_return s;
    }
    // Pools the engine should have but could not load: shown, so that an
    // operator sees them (and can destroy them to forget them).
    for (auto& pc : merged().pools)
        if (!applier_.find_pool(pc.name)) {
            auto* o = out->add_pools();
            o->set_name(pc.name);
            o->set_path(pc.path);
            o->set_status("not loaded: " + applier_.pool_problem(pc.name));
        }
    co_return Status::OK;
}

}  // namespace weft::engine
