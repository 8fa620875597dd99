// weft-engine: the data-plane process of a storage node.
//
// Serves NVMe/TCP subsystems defined by a JSON file (--config) and/or flags;
// `--demo` serves one file-backed namespace to any host on 127.0.0.1:4420.
// SIGHUP re-reads the configuration (namespaces added, removed, resized);
// SIGINT/SIGTERM stop it cleanly.
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>

#include "auth/data_key.h"
#include "auth/dhchap_key.h"
#include "auth/key_provider.h"
#include "auth/secret.h"
#include "auth/tls_psk.h"
#include "bdev/bdev.h"
#include "engine/api_server.h"
#include "engine/config.h"
#include "engine/control_heartbeat.h"
#include "engine/manager.h"
#include "nvmf/target.h"
#include "nvmf/tcp_server.h"
#include "runtime/cpu_list.h"
#include "runtime/foreign_call.h"
#include "runtime/runtime.h"
#include "runtime/signals.h"
#include "runtime/uring_op.h"

namespace {

using namespace weft;

constexpr const char* demo_nqn = "nqn.2026-11.io.weft:demo";

std::string join(const std::vector<int>& v) {
    std::string s;
    for (int c : v) s += (s.empty() ? "" : ",") + std::to_string(c);
    return s;
}

struct options {
    std::string config_path;
    std::vector<std::string> listen;
    std::vector<std::string> discovery_listen;
    std::string tls;  // the listeners' TLS mode; empty: the config's, else off
    bool demo = false;
    std::string data_dir = "weft-data";
    std::string demo_size = "1GiB";
    std::vector<std::string> allow_hosts;
    std::string cntlid_range;
    std::string cores;
    unsigned poll_us = 50;
    double run_for = 0;
    std::string log_level = "info";
    std::string api_listen = "127.0.0.1:10124";
    std::string metrics_listen = "127.0.0.1:9502";
    auth::api_server_access_options api_access;
    auth::http_client_access_options control_access;  // HTTPS, a token for --control
    std::string host_nqn;
    std::string dhchap_secret_file, dhchap_ctrl_secret_file, tls_key_file;
    std::vector<std::string> kek_files;  // the first wraps new data keys
    std::vector<std::string> kek_envs;   // environment variables, after the files
    std::string control;                 // http://HOST:PORT of weft-control
    std::string node_id;
    std::vector<std::string> node_labels;  // KEY=VALUE
    std::string advertise;                 // the IP others reach this node at
    unsigned heartbeat_ms = 2000;
};

// "MIN-MAX", controller IDs within 1-65519 (--cntlid-range, and the range
// weft-control assigned, as the data directory keeps it).
std::optional<std::pair<uint16_t, uint16_t>> parse_cntlid_range(const std::string& s) {
    unsigned lo = 0, hi = 0;
    char dash = 0, extra = 0;
    if (std::sscanf(s.c_str(), "%u%c%u%c", &lo, &dash, &hi, &extra) != 3 || dash != '-' || lo < 1 ||
        hi > 0xffef || lo > hi)
        return std::nullopt;
    return std::pair{uint16_t(lo), uint16_t(hi)};
}

// A key file read and checked by `reader` (auth::read_dhchap_key_file or
// read_tls_key_file), with a warning when other users can read it; empty
// with a sentence in `why` on failure.
auth::secret_string read_key(decltype(&auth::read_tls_key_file) reader, const std::string& path,
                             const char* what, std::string* why) {
    bool exposed = false;
    auto text = reader(path, what, why, &exposed);
    if (!text.empty() && exposed)
        spdlog::warn("{} holds a secret and can be read by other users: chmod 600 it", path);
    return text;
}

// The engine's own DH-HMAC-CHAP secrets as a host (remote nexus children).
std::shared_ptr<const initiator::dhchap_host_options> load_dhchap_secrets(const options& o,
                                                                          std::string* why) {
    auto read = [&](const std::string& path, const char* what, auth::dhchap_key* out) {
        auto text = read_key(auth::read_dhchap_key_file, path, what, why);
        if (text.empty()) return false;
        *out = auth::parse_dhchap_key(text.view(), nullptr).value();
        return true;
    };
    auto d = std::make_shared<initiator::dhchap_host_options>();
    if (!read(o.dhchap_secret_file, "host secret", &d->key)) return nullptr;
    if (!o.dhchap_ctrl_secret_file.empty()) {
        d->ctrl_key.emplace();
        if (!read(o.dhchap_ctrl_secret_file, "controller secret", &*d->ctrl_key)) return nullptr;
    }
    return d;
}

// Builds the engine's configuration from the file and the flags.
result<engine::engine_config> build_config(const options& o, std::string* why) {
    engine::engine_config cfg;
    if (!o.config_path.empty()) {
        // Read into wiped memory: the file may hold host secrets.
        auto text = auth::read_file_wiped(o.config_path, 64u << 20);
        if (!text) {
            *why = o.config_path + ": cannot read: " + text.err().message();
            return text.err();
        }
        auto parsed = engine::parse_config(text->view(), why);
        if (!parsed) {
            *why = o.config_path + ": " + *why;
            return parsed.err();
        }
        cfg = std::move(parsed.value());
        struct stat st {};
        if (!cfg.host_keys.empty() && ::stat(o.config_path.c_str(), &st) == 0 && (st.st_mode & 077))
            spdlog::warn("{} holds host secrets and can be read by other users: chmod 600 it",
                         o.config_path);
    }
    if (o.demo) {
        auto size = engine::parse_size(o.demo_size);
        if (!size || size.value() < (1u << 20)) {
            *why = "--demo-size: not a size of at least 1MiB: " + o.demo_size;
            return error{EINVAL};
        }
        std::error_code ec;
        std::filesystem::create_directories(o.data_dir, ec);
        if (ec) {
            *why = "--data-dir " + o.data_dir + ": " + ec.message();
            return error{EIO};
        }
        engine::subsystem_config s;
        s.nqn = demo_nqn;
        s.serial = "WEFTDEMO0001";
        s.model = "weft demo volume";
        s.allow_any_host = o.allow_hosts.empty();
        s.hosts = o.allow_hosts;
        engine::namespace_config n;
        n.nsid = 1;
        n.type = "file";
        n.path = o.data_dir + "/demo.img";
        n.size = size.value();
        s.namespaces.push_back(n);
        cfg.subsystems.push_back(std::move(s));
        if (o.listen.empty() && cfg.listen.empty()) cfg.listen.push_back("127.0.0.1:4420");
        if (o.discovery_listen.empty() && cfg.discovery_listen.empty())
            cfg.discovery_listen.push_back("127.0.0.1:8009");
    } else if (!o.allow_hosts.empty()) {
        for (auto& s : cfg.subsystems) {
            s.allow_any_host = false;
            s.hosts.insert(s.hosts.end(), o.allow_hosts.begin(), o.allow_hosts.end());
        }
    }
    if (!o.cntlid_range.empty()) {
        auto r = parse_cntlid_range(o.cntlid_range);
        if (!r) {
            *why = "--cntlid-range " + o.cntlid_range + ": expected MIN-MAX within 1-65519";
            return error{EINVAL};
        }
        std::tie(cfg.limits.min_cntlid, cfg.limits.max_cntlid) = *r;
    }
    if (!o.tls.empty()) cfg.tls = o.tls;
    cfg.listen.insert(cfg.listen.end(), o.listen.begin(), o.listen.end());
    cfg.discovery_listen.insert(cfg.discovery_listen.end(), o.discovery_listen.begin(),
                                o.discovery_listen.end());
    // With the management API a node may start empty and be told what to
    // serve; without it there would be nothing to do.
    if (cfg.listen.empty() && (o.api_listen.empty() || o.api_listen == "none")) {
        *why =
            "nothing to listen on: give --listen ADDR:PORT, a --config with \"listen\", or --demo";
        return error{EINVAL};
    }
    return cfg;
}

// What the engine tells the control plane about itself. Addresses bound to
// 0.0.0.0 (or ::) mean nothing to others: --advertise says what they use.
result<engine::registration> make_registration(const options& o, const std::string& host_nqn,
                                               const std::string& api_bound,
                                               const nvmf::tcp_server& server, std::string* why) {
    engine::registration r;
    // Several URLs: weft-control instances sharing one etcd (any one will do).
    for (size_t at = 0; at <= o.control.size();) {
        size_t comma = o.control.find(',', at);
        if (comma == std::string::npos) comma = o.control.size();
        std::string u = o.control.substr(at, comma - at);
        if (!u.empty())
            r.control_urls.push_back(u.find("://") == std::string::npos ? "http://" + u : u);
        at = comma + 1;
    }
    auto access = auth::http_client_access::load(o.control_access, why);
    if (!access) return error{EINVAL};
    r.access = access.value();
    r.node_id = o.node_id;
    if (r.node_id.empty()) {
        char h[256] = {};
        ::gethostname(h, sizeof h - 1);
        r.node_id = h;
    }
    if (api_bound.empty()) {
        *why = "the control plane reaches engines through their API: give --api-listen";
        return error{EINVAL};
    }
    auto host_of = [&](const std::string& ep) { return ep.substr(0, ep.rfind(':')); };
    auto port_of = [&](const std::string& ep) { return ep.substr(ep.rfind(':') + 1); };
    auto unspecified = [](const std::string& h) {
        return h == "0.0.0.0" || h == "[::]" || h == "::";
    };
    for (auto& a : server.addresses()) {
        std::string ep = a.to_string();
        if (!o.advertise.empty())
            ep = o.advertise + ":" + port_of(ep);
        else if (unspecified(host_of(ep))) {
            *why = ep + " is not an address others can reach: give --advertise IP";
            return error{EINVAL};
        }
        r.nvmf.push_back(ep);
    }
    if (r.nvmf.empty()) {
        *why = "the engine has no NVMe/TCP listener to register";
        return error{EINVAL};
    }
    r.api = api_bound;
    if (!o.advertise.empty())
        r.api = o.advertise + ":" + port_of(api_bound);
    else if (unspecified(host_of(r.api))) {
        *why = r.api + " is not an address others can reach: give --advertise IP";
        return error{EINVAL};
    }
    r.host_nqn = host_nqn;
    for (auto& kv : o.node_labels) {
        auto eq = kv.find('=');
        if (eq == std::string::npos || eq == 0) {
            *why = "--node-label " + kv + ": expected KEY=VALUE";
            return error{EINVAL};
        }
        r.labels[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    r.interval = std::chrono::milliseconds(o.heartbeat_ms);
    return r;
}

// The controller ID range weft-control assigned this node ("MIN-MAX"), kept
// in the data directory: subsystems made at a restart, before the control
// plane answers, hand out IDs from it too.
std::pair<uint16_t, uint16_t> read_cntlid_range(const std::string& file) {
    std::ifstream in(file);
    std::string line;
    std::getline(in, line);
    return parse_cntlid_range(line).value_or(std::pair<uint16_t, uint16_t>{0, 0});
}

void write_cntlid_range(const std::string& file, uint16_t lo, uint16_t hi) {
    std::string tmp = file + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << lo << '-' << hi << '\n';
        if (!out.flush()) {
            spdlog::warn("cannot keep the controller ID range in {}", tmp);
            return;
        }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, file, ec);
}

task<int> serve(runtime& rt, const engine::engine_config& cfg, const options& o, sigset_t signals) {
    // Controller IDs: the engine's own range (--cntlid-range or its config),
    // else the one weft-control assigns (and the one it assigned before).
    const std::string cntlid_file = o.data_dir + "/cntlid-range";
    const nvmf::controller_limits defaults;
    const bool own_range = cfg.limits.min_cntlid != defaults.min_cntlid ||
                           cfg.limits.max_cntlid != defaults.max_cntlid;
    nvmf::controller_limits limits = cfg.limits;
    std::pair<uint16_t, uint16_t> assigned{0, 0};
    if (!own_range && !o.control.empty()) {
        assigned = read_cntlid_range(cntlid_file);
        if (assigned.first) std::tie(limits.min_cntlid, limits.max_cntlid) = assigned;
    }
    nvmf::target tgt(limits);
    nvmf::tcp_server server(tgt, {}, rt.size());
    engine::manager mgr(tgt, server, o.data_dir + "/engine-state.json");
    std::string why;
    auto host = engine::load_host_identity(o.data_dir, o.host_nqn, &why);
    if (!host) {
        spdlog::error("host NQN: {}", why);
        co_return 1;
    }
    if (!o.dhchap_ctrl_secret_file.empty() && o.dhchap_secret_file.empty()) {
        spdlog::error(
            "--dhchap-ctrl-secret-file needs --dhchap-secret-file (the engine, as a "
            "host, authenticates first)");
        co_return 1;
    }
    if (!o.dhchap_secret_file.empty()) {
        auto d = load_dhchap_secrets(o, &why);
        if (!d) {
            spdlog::error("{}", why);
            co_return 1;
        }
        host.value().dhchap = std::move(d);
    }
    if (!o.tls_key_file.empty()) {
        auto text = read_key(auth::read_tls_key_file, o.tls_key_file, "TLS key", &why);
        if (text.empty()) {
            spdlog::error("{}", why);
            co_return 1;
        }
        host.value().tls_key = std::make_shared<const auth::tls_key>(
            auth::parse_tls_key(text.view(), nullptr).value());
    }
    spdlog::info("weft-engine: host NQN {} (for remote nexus children{}{})", host.value().nqn,
                 host.value().dhchap ? "; it authenticates with DH-HMAC-CHAP where asked" : "",
                 host.value().tls_key ? "; its connections to them run TLS" : "");
    mgr.set_host(host.value());
    // The key-encryption keys: the files, then the environment variables
    // (the first of all wraps new data keys).
    std::vector<std::unique_ptr<auth::key_provider>> providers;
    for (auto& f : o.kek_files) providers.push_back(auth::make_kek_file_provider(f));
    for (auto& e : o.kek_envs) providers.push_back(auth::make_kek_env_provider(e));
    std::vector<auth::kek> keks;
    for (auto& p : providers) {
        bool exposed = false;
        auto got = p->keks(&why, &exposed);
        if (!got) {
            spdlog::error("key-encryption key from {}: {}", p->describe(), why);
            co_return 1;
        }
        if (exposed)
            spdlog::warn("{} holds a secret and can be read by other users: chmod 600 it",
                         p->describe());
        for (auto& k : *got) {
            keks.push_back(std::move(k));
            spdlog::info("weft-engine: key-encryption key {} from {}{}", keks.back().id,
                         p->describe(),
                         keks.size() == 1 ? " (wraps new data keys)" : " (unwraps only)");
        }
    }
    mgr.set_keks(std::move(keks));
    mgr.set_controlled(!o.control.empty());
    if (!mgr.load_state(&why)) {
        spdlog::error("{}", why);
        co_return 1;
    }
    auto problems = co_await mgr.start(cfg);
    if (problems.empty()) problems = co_await mgr.listen_all();
    if (!problems.empty()) {
        for (auto& p : problems) spdlog::error("{}", p);
        co_await server.stop();
        co_await mgr.shutdown();
        co_return 1;
    }
    for (auto& s : cfg.subsystems)
        spdlog::info("subsystem {}: {}", s.nqn,
                     s.allow_any_host ? "any host may connect"
                                      : fmt::format("hosts allowed: {}", fmt::join(s.hosts, ", ")));
    engine::api_server api(mgr, reactor::local());
    std::string api_bound;
    std::shared_ptr<const auth::api_server_access> access;
    if (!o.api_listen.empty() && o.api_listen != "none") {
        auto a = auth::api_server_access::load(o.api_access, o.api_listen, &why);
        if (!a) {
            spdlog::error("--api-listen {}: {}", o.api_listen, why);
            co_await server.stop();
            co_await mgr.shutdown();
            co_return 1;
        }
        access = a.value();
    }
    for (auto [flag, addr, what] : {std::tuple{"--api-listen", &o.api_listen, "management API"},
                                    std::tuple{"--metrics-listen", &o.metrics_listen, "metrics"}}) {
        if (addr->empty() || *addr == "none") continue;
        auto bound = std::string(flag) == "--api-listen" ? api.start_grpc(*addr, access, &why)
                                                         : api.start_metrics(*addr, &why);
        if (!bound) {
            spdlog::error("{} (change {} or give {} none)", why, flag, flag);
            co_await in_thread([&] { api.stop(); });
            co_await server.stop();
            co_await mgr.shutdown();
            co_return 1;
        }
        if (std::string(flag) == "--api-listen") {
            api_bound = bound.value();
            fmt::print("weft-engine: {} on {} (gRPC, {})\n", what, bound.value(),
                       access->describe());
        } else
            fmt::print("weft-engine: {} on http://{}/metrics\n", what, bound.value());
    }
    // The bound address: with port 0 the kernel picked one.
    if (!server.addresses().empty()) {
        auto first = server.addresses().front();
        std::string host = first.to_string().substr(0, first.to_string().rfind(':'));
        for (auto& s : cfg.subsystems)
            fmt::print(
                "weft-engine: serving {}; connect with:\n  nvme connect -t tcp -a {} -s {} -n {}\n",
                s.nqn, host, first.port(), s.nqn);
    }
    std::fflush(stdout);

    std::unique_ptr<engine::control_heartbeat> beat;
    if (!o.control.empty()) {
        auto reg = make_registration(o, host.value().nqn, api_bound, server, &why);
        if (!reg) {
            spdlog::error("--control: {}", why);
            co_await in_thread([&] { api.stop(); });
            co_await server.stop();
            co_await mgr.shutdown();
            co_return 1;
        }
        if (own_range) {
            reg.value().cntlid_range = {cfg.limits.min_cntlid, cfg.limits.max_cntlid};
        } else {
            reg.value().cntlid_in_use = assigned;
            reg.value().on_cntlid_range = [&tgt, cntlid_file](uint16_t lo, uint16_t hi) {
                tgt.set_cntlid_range(lo, hi);
                write_cntlid_range(cntlid_file, lo, hi);
            };
        }
        beat = std::make_unique<engine::control_heartbeat>(std::move(reg.value()));
    }

    abort_source stop_wait;
    if (o.run_for > 0) {
        reactor::local().spawn([](double secs, abort_source* a) -> task<void> {
            co_await sleep(std::chrono::duration<double>(secs));
            a->request_abort();
        }(o.run_for, &stop_wait));
    }
    // Whatever ends the loop, the API stops off this reactor first: its
    // handlers may be waiting for this reactor to answer them.
    std::exception_ptr failed;
    try {
        for (;;) {
            int sig = co_await wait_for_signal(signals, &stop_wait);
            if (sig != SIGHUP) {
                spdlog::info("weft-engine: {}, stopping", sig > 0 ? strsignal(sig) : "time is up");
                break;
            }
            // SIGHUP: re-read the configuration and apply the differences.
            auto next = build_config(o, &why);
            if (!next) {
                spdlog::error("reload: {}; keeping the running configuration", why);
                continue;
            }
            auto issues = co_await mgr.reload(next.value());
            for (auto& p : issues) spdlog::error("reload: {}", p);
            spdlog::info("reload: configuration applied{}", issues.empty() ? "" : " in part");
        }
    } catch (...) {
        failed = std::current_exception();
    }
    // The control plane hears no more beats (the node goes offline there);
    // management requests in flight finish first (they need this reactor).
    co_await in_thread([&] { beat.reset(); });
    co_await in_thread([&] { api.stop(); });
    co_await server.stop();
    // Namespaces go before the bdevs they hold; the queues are gone.
    co_await mgr.shutdown();
    if (failed) std::rethrow_exception(failed);
    co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "weft-engine: serves block volumes over NVMe/TCP from this node's disks.\n"
        "Try: weft-engine --demo   (a 1 GiB file-backed namespace on 127.0.0.1:4420)"};
    options o;
    app.add_option("--config", o.config_path,
                   "JSON file with listeners, limits, subsystems, namespaces");
    app.add_option("--listen", o.listen, "address to serve NVMe/TCP on, IP:PORT (repeatable)");
    app.add_option("--discovery-listen", o.discovery_listen,
                   "extra listener, e.g. the standard discovery port 127.0.0.1:8009 (repeatable)");
    app.add_option("--tls", o.tls,
                   "TLS 1.3 on the NVMe/TCP listeners: off, required (only hosts with a TLS key "
                   "connect), allowed (each host chooses; the discovery log says 'not "
                   "required'). Hosts' TLS keys: weft engine host-key set --tls-key-file "
                   "(default: off, or the config's \"tls\")")
        ->check(CLI::IsMember({"off", "required", "allowed"}));
    app.add_flag("--demo", o.demo, "serve a demo namespace (a file under --data-dir) to any host");
    app.add_option("--data-dir", o.data_dir,
                   "where the engine keeps its state (engine-state.json: the pools, shares and "
                   "listeners the "
                   "API asked for) and --demo its volume file")
        ->capture_default_str();
    app.add_option("--api-listen", o.api_listen,
                   "address of the gRPC management API (for weft engine ... and the "
                   "control plane); "
                   "none to disable")
        ->capture_default_str();
    app.add_option("--api-tls-cert", o.api_access.tls_cert,
                   "PEM certificate (chain) of the management API: it is served over TLS; needs "
                   "--api-tls-key")
        ->check(CLI::ExistingFile);
    app.add_option("--api-tls-key", o.api_access.tls_key,
                   "PEM private key of --api-tls-cert (mode 0600)")
        ->check(CLI::ExistingFile);
    app.add_option("--api-tls-client-ca", o.api_access.tls_client_ca,
                   "PEM CA certificate(s): only clients with a certificate it signed may call "
                   "the API (mTLS; the audit log names them by common name)")
        ->check(CLI::ExistingFile);
    app.add_option("--api-token-file", o.api_access.token_file,
                   "file of NAME TOKEN lines (mode 0600; weft key gen-token makes a token): every "
                   "call must carry one of the tokens (weft --api-token-file), and the audit log "
                   "names its caller NAME")
        ->check(CLI::ExistingFile);
    app.add_flag("--api-insecure", o.api_access.insecure,
                 "serve the management API on an address other than loopback with neither TLS "
                 "nor tokens (anyone who reaches it may call it): only on a network you trust");
    app.add_option("--metrics-listen", o.metrics_listen,
                   "address of the Prometheus metrics page (http://ADDR/metrics); none to disable")
        ->capture_default_str();
    app.add_option("--host-nqn", o.host_nqn,
                   "the NQN this engine connects to other engines with (a nexus's remote "
                   "children allow it on their shares); default: kept in --data-dir/host-nqn, "
                   "made on first start");
    app.add_option("--dhchap-secret-file", o.dhchap_secret_file,
                   "file holding this engine's DH-HMAC-CHAP secret as a host (DHHC-1:..:, mode "
                   "0600), for remote nexus children on engines that require it to authenticate");
    app.add_option("--dhchap-ctrl-secret-file", o.dhchap_ctrl_secret_file,
                   "file holding the secret remote engines must prove they hold (bidirectional "
                   "authentication of nexus children); needs --dhchap-secret-file");
    app.add_option("--tls-key-file", o.tls_key_file,
                   "file holding this engine's TLS key as a host (NVMeTLSkey-1:..:, mode 0600): "
                   "its connections to remote nexus children run TLS 1.3 (the replicas' engines "
                   "hold the same key for this engine's host NQN)");
    app.add_option("--kek-file", o.kek_files,
                   "file holding a key-encryption key (weft-kek-1:..:, mode 0600; weft key "
                   "gen-kek makes one) for encrypted volumes: the first wraps new data keys, "
                   "later ones only unwrap (after a KEK rotation); repeatable");
    app.add_option("--kek-env", o.kek_envs,
                   "environment variable holding a key-encryption key's text (e.g. from a "
                   "Kubernetes Secret), after the --kek-file keys; removed from the environment "
                   "once read; repeatable");
    app.add_option("--demo-size", o.demo_size, "size of the demo volume (created on first start)")
        ->capture_default_str();
    app.add_option("--allow-host", o.allow_hosts,
                   "host NQN allowed to connect (repeatable); without it any host may");
    app.add_option("--cntlid-range", o.cntlid_range,
                   "controller IDs this engine gives out, MIN-MAX; engines serving the same "
                   "volume to a host (multipath) need disjoint ranges. Default: with --control, "
                   "the range weft-control assigns this node (kept in the data directory); "
                   "without, 1-65519");
    app.add_option("--cores", o.cores,
                   "CPUs to run reactors on: a list '0,1', ranges '0-3' or a mask '0x3' "
                   "(default: every CPU this process may use)");
    app.add_option("--poll-us", o.poll_us,
                   "how long an idle reactor keeps busy-polling before it sleeps in the "
                   "kernel, in microseconds (0 = sleep at once)")
        ->capture_default_str();
    app.add_option("--run-for", o.run_for,
                   "exit by itself after this many seconds (0 = until SIGINT/SIGTERM)");
    app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error")
        ->capture_default_str();
    app.add_option("--control", o.control,
                   "register with the control plane at this URL (http://HOST:PORT) and "
                   "heartbeat to it; several, comma-separated, for weft-control instances "
                   "sharing one etcd (the next is tried when one does not answer)");
    app.add_option("--node-id", o.node_id,
                   "this node's id in the control plane (default: hostname)");
    app.add_option("--node-label", o.node_labels,
                   "a label of this node for placement, KEY=VALUE, e.g. zone=a (repeatable)");
    app.add_option("--advertise", o.advertise,
                   "the IP address other nodes and hosts reach this engine at (default: the "
                   "address of its first listener)");
    app.add_option("--control-tls-ca", o.control_access.tls_ca,
                   "PEM CA certificate that signed weft-control's certificate (https:// "
                   "--control URLs)")
        ->check(CLI::ExistingFile);
    app.add_option("--control-tls-cert", o.control_access.tls_cert,
                   "PEM client certificate, for a control plane that requires one")
        ->check(CLI::ExistingFile);
    app.add_option("--control-tls-key", o.control_access.tls_key,
                   "PEM private key of --control-tls-cert (mode 0600)")
        ->check(CLI::ExistingFile);
    app.add_option("--control-token-file", o.control_access.token_file,
                   "file holding a token weft-control knows (its --token-file; mode 0600)")
        ->check(CLI::ExistingFile);
    app.add_option("--heartbeat-ms", o.heartbeat_ms, "how often to heartbeat to --control")
        ->capture_default_str()
        ->check(CLI::Range(100u, 600000u));
    CLI11_PARSE(app, argc, argv);

    spdlog::set_level(spdlog::level::from_str(o.log_level));
    std::vector<int> cpus;
    if (o.cores.empty()) {
        cpus = allowed_cpus();
    } else {
        std::string why;
        auto parsed = parse_cpu_list(o.cores, &why);
        if (!parsed) {
            fmt::print(stderr, "weft-engine: --cores {}: {}\n", o.cores, why);
            return 2;
        }
        cpus = parsed.value();
    }
    std::string why;
    auto cfg = build_config(o, &why);
    if (!cfg) {
        fmt::print(stderr, "weft-engine: {}\n", why);
        return 2;
    }

    const sigset_t stop_signals = signal_set({SIGINT, SIGTERM, SIGHUP});
    block_signals(stop_signals);
    runtime rt({.cpus = cpus, .poll_window = std::chrono::microseconds(o.poll_us)});
    return rt.run([&]() -> task<int> {
        spdlog::info("weft-engine: {} reactor(s) on CPU(s) {}, busy-poll window {} us", rt.size(),
                     join(cpus), o.poll_us);
        co_return co_await serve(rt, cfg.value(), o, stop_signals);
    });
}
