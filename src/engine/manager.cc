#include "engine/manager.h"

#include <openssl/crypto.h>

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "auth/secret.h"
#include "bdev/uring/uring_bdev.h"
#include "engine/api_status.h"
#include "runtime/foreign_call.h"
#include "runtime/runtime.h"

namespace weft::engine {

using grpc::Status;
using grpc::StatusCode;

namespace {

// 1..63 characters of [A-Za-z0-9._-], not starting with '-' or '.'.
bool valid_name(const std::string& n) {
    if (n.empty() || n.size() > 63 || n[0] == '-' || n[0] == '.') return false;
    return std::all_of(n.begin(), n.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
    });
}
const char* name_rule = "1 to 63 characters of A-Z a-z 0-9 . _ -, not starting with '-' or '.'";

Status bad_name(const char* what, const std::string& n) {
    return fail(StatusCode::INVALID_ARGUMENT,
                fmt::format("{} name \"{}\" is not valid: {}", what, n, name_rule));
}

std::string canonical(const std::string& path) {
    std::error_code ec;
    auto p = std::filesystem::weakly_canonical(path, ec);
    return ec ? path : p.string();
}

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

void fill_io(const bdev::io_totals& t, v1::IoCounters* out) {
    out->set_reads(t.reads);
    out->set_writes(t.writes);
    out->set_read_bytes(t.read_bytes);
    out->set_write_bytes(t.write_bytes);
    out->set_other_ops(t.other_ops);
    out->set_errors(t.errors);
    out->set_in_flight(uint64_t(std::max<int64_t>(0, t.in_flight)));
    auto lat = [](const bdev::io_totals::histogram& h, v1::LatencySummary* s) {
        s->set_count(h.count);
        s->set_mean_us(h.count ? double(h.sum_ns) / double(h.count) / 1000 : 0);
        s->set_p50_us(h.quantile_us(0.5));
        s->set_p99_us(h.quantile_us(0.99));
        s->set_max_us(double(h.max_ns) / 1000);
    };
    lat(t.read_latency, out->mutable_read_latency());
    lat(t.write_latency, out->mutable_write_latency());
}

// Writes `text` to `path` so that a crash leaves the old or the new file.
bool write_atomically(const std::string& path, const std::string& text, std::string* why) {
    std::string tmp = path + ".tmp";
    std::error_code ec;
    auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty() && !std::filesystem::exists(parent, ec)) {
        std::filesystem::create_directories(parent, ec);
        // The new directory's own entry, durable in its parent.
        std::string up = parent.parent_path().string();
        int ufd = ::open(up.empty() ? "." : up.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (ufd >= 0) {
            ::fsync(ufd);
            ::close(ufd);
        }
    }
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        *why = tmp + ": " + std::strerror(errno);
        return false;
    }
    size_t done = 0;
    while (done < text.size()) {
        ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            *why = tmp + ": " + std::strerror(errno);
            ::close(fd);
            return false;
        }
        done += size_t(n);
    }
    int synced = ::fsync(fd), sync_errno = errno;
    int closed = ::close(fd);
    if (synced != 0 || closed != 0) {
        *why = tmp + ": fsync: " + std::strerror(synced != 0 ? sync_errno : errno);
        return false;
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        *why = path + ": rename: " + std::strerror(errno);
        return false;
    }
    // The rename is durable once the directory is.
    std::string dir = std::filesystem::path(path).parent_path().string();
    int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || ::fsync(dfd) != 0) {
        *why = (dir.empty() ? std::string(".") : dir) + ": fsync: " + std::strerror(errno);
        if (dfd >= 0) ::close(dfd);
        return false;
    }
    ::close(dfd);
    return true;
}

}  // namespace

manager::manager(nvmf::target& t, nvmf::tcp_server& server, std::string state_path)
    : target_(t), server_(server), applier_(t), state_path_(std::move(state_path)) {}

result<void> manager::load_state(std::string* why) {
    struct stat st {};
    if (::stat(state_path_.c_str(), &st) != 0) {
        if (errno == ENOENT) return {};  // first start
        *why = state_path_ + ": " + std::strerror(errno) +
               "; it lists the pools and shares this engine was asked to serve";
        return error{EUCLEAN};
    }
    // Read into wiped memory: the state holds host secrets.
    auto text = auth::read_file_wiped(state_path_, 256u << 20);
    if (!text) {
        *why = state_path_ + ": cannot be read (" + text.err().message() +
               "); it lists the pools and shares this engine was asked to serve";
        return error{EUCLEAN};
    }
    auto parsed = parse_config(text->view(), why);
    if (!parsed) {
        *why = state_path_ + " cannot be read (" + *why +
               "); it lists the pools and shares this engine was asked to serve: repair it, or "
               "move it away "
               "to start with none";
        return error{EUCLEAN};
    }
    state_ = std::move(parsed.value());
    for (auto& p : state_.pools) p.format_if_blank = false;
    return {};
}

engine_config manager::merged() const {
    engine_config m = base_;
    for (auto& p : state_.pools)
        if (!in_base_pool(p.name)) m.pools.push_back(p);
    for (auto& x : state_.nexuses)
        if (!in_base_nexus(x.uuid)) m.nexuses.push_back(x);
    for (auto& s : state_.subsystems) {
        bool dup = std::any_of(m.subsystems.begin(), m.subsystems.end(),
                               [&](const subsystem_config& b) { return b.nqn == s.nqn; });
        if (!dup) m.subsystems.push_back(s);
    }
    for (auto& k : state_.host_keys) {
        bool dup = std::any_of(m.host_keys.begin(), m.host_keys.end(),
                               [&](const host_key_config& b) { return b.host == k.host; });
        if (!dup) m.host_keys.push_back(k);
    }
    return m;
}

bool manager::in_base_pool(const std::string& name) const {
    return std::any_of(base_.pools.begin(), base_.pools.end(),
                       [&](const pool_config& p) { return p.name == name; });
}

task<std::string> manager::reconcile() {
    engine_config m = merged();
    auto problems = co_await applier_.apply(m);
    std::string joined;
    for (auto& p : problems) joined += (joined.empty() ? "" : "; ") + p;
    co_return joined;
}

task<std::vector<std::string>> manager::start(engine_config base) {
    auto g = co_await lock_.lock();
    base_ = std::move(base);
    auto problems = co_await applier_.apply(base_);
    if (!problems.empty()) co_return problems;
    std::string later = co_await reconcile();
    if (!later.empty()) spdlog::error("restoring {}: {}", state_path_, later);
    co_return std::vector<std::string>{};
}

task<std::vector<std::string>> manager::reload(engine_config base) {
    auto g = co_await lock_.lock();
    base_ = std::move(base);
    engine_config m = merged();
    auto problems = co_await applier_.apply(m);
    co_return problems;
}

task<void> manager::shutdown() {
    auto g = co_await lock_.lock();
    engine_config none;
    co_await applier_.apply(none);
}

task<std::vector<std::string>> manager::listen_all() {
    std::vector<std::string> problems;
    const nvmf::tls_mode tls = nvmf::parse_tls_mode(base_.tls).value_or(nvmf::tls_mode::off);
    for (auto& a : base_.listen) {
        auto addr = socket_address::parse(a);
        auto r = addr ? co_await server_.listen(addr.value(), tls) : result<void>(addr.err());
        if (!r)
            problems.push_back(
                fmt::format("cannot listen on {}: {}", a,
                            addr ? r.err().message() : "expected IP:PORT (e.g. 127.0.0.1:4420)"));
    }
    // The standard discovery port and the state's listeners: warn, do not fail.
    std::vector<std::string> soft = base_.discovery_listen;
    soft.insert(soft.end(), state_.listen.begin(), state_.listen.end());
    for (auto& a : soft) {
        auto addr = socket_address::parse(a);
        auto r = addr ? co_await server_.listen(addr.value(), tls) : result<void>(addr.err());
        if (!r)
            spdlog::warn("listener {} not started: {}", a,
                         addr ? r.err().message() : "not IP:PORT");
    }
    co_return problems;
}

task<Status> manager::persist(const engine_config& previous) {
    std::string text = to_json_text(state_);
    std::string why;
    bool ok = false;
    std::string path = state_path_;
    co_await in_thread([&] { ok = write_atomically(path, text, &why); });
    OPENSSL_cleanse(text.data(), text.size());  // it may hold host secrets
    if (ok) co_return Status::OK;
    spdlog::error("cannot save the engine state: {}", why);
    state_ = previous;
    co_return fail(StatusCode::INTERNAL, "cannot save the engine state: " + why);
}

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
    applier_.adopt_pool(req.name(), req.path(), made_pool);
    engine_config previous = state_;
    state_.pools.push_back({.name = req.name(), .path = req.path(), .format_if_blank = false});
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
    engine_config previous = state_;
    std::erase_if(state_.pools, [&](const pool_config& pc) { return pc.name == req.name(); });
    Status saved = co_await persist(previous);
    if (!saved.ok()) co_return saved;
    // Forgotten first, then wiped: a crash in between leaves a pool that can
    // be imported again, never a state that names a blank device.
    auto dev = p->device();
    std::string path = applier_.pools().at(req.name()).path;
    applier_.drop_pool(req.name());
    p.reset();
    auto ch = dev->open_channel();
    int rc = co_await ch->write_zeroes(0, pool::format::superblock_region / dev->block_size());
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
    spdlog::info("pool {}: destroyed ({} wiped)", req.name(), path);
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
    auto d = co_await r.p->delete_volume(r.info.id, &why);
    if (!d) {
        if (d.err().code == EBUSY) co_return fail(StatusCode::FAILED_PRECONDITION, why);
        co_return from_errno(d.err().code, why);
    }
    spdlog::info("pool {}: volume {} destroyed (API)", r.pool_name, r.info.name);
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

// ---- statistics -----------------------------------------------------------

task<stats_snapshot> manager::snapshot() {
    auto g = co_await lock_.lock();
    stats_snapshot snap;
    // Every reactor, idle ones with zeroes.
    for (unsigned c = 0; c < reactor::local().rt().size(); ++c) snap.reactors[c];
    // Namespaces no longer served still count in the reactors' counters,
    // which must never go down.
    for (auto& [core, t] : applier_.retired_io()) snap.reactors[core] += t;
    for (auto& s : applier_.served()) {
        stats_snapshot::volume_row v{s.nqn, s.nsid, "", "", {}};
        if (s.cfg.type == "volume") {
            v.pool = s.cfg.pool;
            v.name = s.cfg.volume;
        }
        if (s.stats) {
            for (auto& [core, t] : s.stats->per_reactor()) {
                v.io += t;
                snap.reactors[core] += t;
            }
        }
        snap.volumes.push_back(std::move(v));
    }
    for (auto& [id, n] : applier_.nexuses()) snap.nexuses.push_back(n->status());
    std::vector<std::pair<std::string, std::shared_ptr<pool::pool>>> pools;
    for (auto& [n, op] : applier_.pools()) pools.emplace_back(n, op.p);
    for (auto& [n, p] : pools) {
        stats_snapshot::pool_row ps;
        ps.name = n;
        ps.stats = co_await p->stats();
        auto vols = co_await p->list();
        ps.volumes = vols.size();
        snap.pools.push_back(std::move(ps));
    }
    co_return snap;
}

task<Status> manager::get_stats(v1::Stats* out) {
    stats_snapshot snap = co_await snapshot();
    for (auto& v : snap.volumes) {
        auto* o = out->add_volumes();
        o->set_nqn(v.nqn);
        o->set_nsid(v.nsid);
        o->set_pool(v.pool);
        o->set_volume(v.name);
        fill_io(v.io, o->mutable_io());
    }
    for (auto& [core, t] : snap.reactors) {
        auto* o = out->add_reactors();
        o->set_core(core);
        fill_io(t, o->mutable_io());
    }
    co_return Status::OK;
}

}  // namespace weft::engine
