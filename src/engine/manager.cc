#include "engine/manager.h"

#include <openssl/crypto.h>

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "auth/secret.h"
#include "engine/api_status.h"
#include "runtime/foreign_call.h"
#include "runtime/runtime.h"
#include "runtime/uring_op.h"

namespace weft::engine {

using grpc::Status;
using grpc::StatusCode;

namespace {

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
    for (auto& k : state_.volume_keys) {
        bool dup = std::any_of(m.volume_keys.begin(), m.volume_keys.end(),
                               [&](const volume_key_config& b) { return b.target == k.target; });
        if (!dup) m.volume_keys.push_back(k);
    }
    return m;
}

bool manager::purges(const std::string& name) const {
    for (auto& p : merged().pools)
        if (p.name == name) return p.purge;
    return false;
}

bool manager::in_base_pool(const std::string& name) const {
    return std::any_of(base_.pools.begin(), base_.pools.end(),
                       [&](const pool_config& p) { return p.name == name; });
}

task<std::string> manager::reconcile() {
    engine_config m = merged();
    applier_.set_volume_keys(m.volume_keys);
    auto problems = co_await applier_.apply(m);
    std::string joined;
    for (auto& p : problems) joined += (joined.empty() ? "" : "; ") + p;
    co_return joined;
}

task<std::vector<std::string>> manager::start(engine_config base) {
    auto g = co_await lock_.lock();
    base_ = std::move(base);
    applier_.set_volume_keys(merged().volume_keys);
    auto problems = co_await applier_.apply(base_);
    if (!problems.empty()) co_return problems;
    std::string later = co_await reconcile();
    if (!later.empty()) spdlog::error("restoring {}: {}", state_path_, later);
    reactor::local().spawn(bg_.hold(retry_unopened()));
    co_return std::vector<std::string>{};
}

task<void> manager::retry_unopened() {
    using namespace std::chrono_literals;
    auto delay = 1000ms;
    for (;;) {
        int rc = co_await sleep(delay).abort_with(retry_stop_);
        if (rc == -ECANCELED) co_return;
        if (!applier_.any_nexus_problem()) {
            delay = 1000ms;
            continue;
        }
        auto g = co_await lock_.lock();
        if (retry_stop_.abort_requested()) co_return;
        std::string problems = co_await reconcile();
        if (!applier_.any_nexus_problem()) {
            spdlog::info("restoring {}: every nexus is open now", state_path_);
            delay = 1000ms;
        } else {
            // Each try holds the API for as long as its connects take.
            delay = std::min<std::chrono::milliseconds>(delay * 2, 30000ms);
        }
    }
}

task<std::vector<std::string>> manager::reload(engine_config base) {
    auto g = co_await lock_.lock();
    base_ = std::move(base);
    engine_config m = merged();
    applier_.set_volume_keys(m.volume_keys);
    auto problems = co_await applier_.apply(m);
    co_return problems;
}

task<void> manager::shutdown() {
    retry_stop_.request_abort();
    co_await bg_.close();
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

}  // namespace weft::engine
