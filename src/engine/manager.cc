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
#include "engine/atomic_file.h"
#include "runtime/foreign_call.h"
#include "runtime/runtime.h"
#include "runtime/uring_op.h"

namespace weft::engine {

using grpc::Status;
using grpc::StatusCode;

manager::manager(nvmf::target& t, nvmf::tcp_server& server, std::string state_path)
    : target_(t), server_(server), applier_(t), state_path_(std::move(state_path)) {
    applier_.set_rekey_dir(std::filesystem::path(state_path_).parent_path().string());
}

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
    co_await resume_rotations(false);
    reactor::local().spawn(bg_.hold(retry_unopened()));
    co_return std::vector<std::string>{};
}

task<void> manager::retry_unopened() {
    using namespace std::chrono_literals;
    auto delay = 1000ms;
    for (;;) {
        int rc = co_await sleep(delay).abort_with(retry_stop_);
        if (rc == -ECANCELED) co_return;
        if (rotations_waiting()) {
            // A rotation whose nexus was not open yet.
            auto g = co_await lock_.lock();
            if (retry_stop_.abort_requested()) co_return;
            co_await resume_rotations(true);
        }
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
    // A rotation whose pool or nexus goes with this configuration stops
    // before it closes; its journal stays, and it resumes (below) when
    // they come back.
    co_await stop_rotations([&](const std::string& target) {
        std::string gone;
        if (target.starts_with("nexus:")) {
            if (std::none_of(m.nexuses.begin(), m.nexuses.end(),
                             [&](const nexus_config& n) { return "nexus:" + n.uuid == target; }))
                gone = "nexus " + target.substr(6);
        } else if (std::string pool = target.substr(0, target.find('/'));
                   std::none_of(m.pools.begin(), m.pools.end(),
                                [&](const pool_config& p) { return p.name == pool; })) {
            gone = "pool " + pool;
        }
        if (!gone.empty())
            spdlog::info("{}: data-key rotation stopped: {} is no longer configured", target, gone);
        return !gone.empty();
    });
    applier_.set_volume_keys(m.volume_keys);
    auto problems = co_await applier_.apply(m);
    co_await resume_rotations(false);
    co_return problems;
}

task<void> manager::shutdown() {
    retry_stop_.request_abort();
    {
        // Rotations stop where they are; their journals say where on restart.
        auto g = co_await lock_.lock();
        co_await stop_rotations([](const std::string&) { return true; });
    }
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
