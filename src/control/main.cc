// weft-control: the control plane's process. Keeps the desired state in a
// store (SQLite by default), places and publishes volumes on the engines
// that register with it, and serves the REST API (openapi.json).
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>

#include "control/leader.h"
#include "control/rest_server.h"
#include "control/service.h"
#include "control/store.h"

using namespace weft::control;

int main(int argc, char** argv) {
    CLI::App app{
        "weft-control: the weft control plane.\n"
        "Engines register with it (weft-engine --control URL); users and the CLI ask it for\n"
        "volumes (weft volume create --size 10GiB --replicas 3) over its REST API."};
    std::string listen = "127.0.0.1:10130";
    std::string data_dir = "/var/lib/weft/control";
    std::string store_spec;
    service_options so;
    double deadline_s = 10;
    double reconcile_s = 2, replace_after_s = 60;
    std::string log_level = "info";
    bool print_routes = false;
    app.add_option("--listen", listen, "address to serve the REST API on, IP:PORT")
        ->capture_default_str();
    app.add_option("--data-dir", data_dir, "where the embedded store lives (control.db)")
        ->capture_default_str();
    app.add_option("--store", store_spec,
                   "the store: sqlite:PATH (default: sqlite:DATA-DIR/control.db), or "
                   "etcd:http://HOST:PORT[,...] for several weft-control instances sharing one "
                   "etcd cluster: one leads (an etcd lease), the others stand by and forward");
    std::string advertise, etcd_prefix = "/weft/";
    double lease_s = 3;
    app.add_option("--advertise", advertise,
                   "with etcd: the URL other instances forward requests to "
                   "(default: http://LISTEN as bound)");
    app.add_option("--etcd-prefix", etcd_prefix,
                   "with etcd: the key prefix of this cluster's state")
        ->capture_default_str();
    app.add_option("--lease", lease_s,
                   "with etcd: seconds the leader's lease lasts without a keepalive (a dead "
                   "leader is replaced after about this long)")
        ->capture_default_str()
        ->check(CLI::Range(1.0, 60.0));
    app.add_option("--missed-beats", so.missed_beats,
                   "a node is offline after this many missed heartbeats")
        ->capture_default_str()
        ->check(CLI::Range(1u, 100u));
    app.add_option("--overcommit", so.overcommit,
                   "thin volumes may commit up to a pool's capacity times this")
        ->capture_default_str()
        ->check(CLI::Range(1.0, 100.0));
    app.add_option("--engine-timeout", deadline_s, "seconds an engine has to answer a call")
        ->capture_default_str()
        ->check(CLI::Range(0.1, 600.0));
    app.add_option("--reconcile-interval", reconcile_s,
                   "seconds between passes of the reconciler (repairs)")
        ->capture_default_str()
        ->check(CLI::Range(0.1, 3600.0));
    app.add_option("--replace-after", replace_after_s,
                   "seconds a replica may be away (its node offline, or its nexus child not in "
                   "sync) before a new one replaces it")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 86400.0));
    app.add_option("--max-repairs", so.max_repairs_per_minute,
                   "at most this many replica replacements a minute, over the cluster")
        ->capture_default_str()
        ->check(CLI::Range(1u, 10000u));
    weft::auth::http_server_access_options rest_opts;
    std::string peer_ca;
    app.add_option("--tls-cert", rest_opts.tls_cert,
                   "PEM certificate (chain) of the REST API: it is served over HTTPS; needs "
                   "--tls-key")
        ->check(CLI::ExistingFile);
    app.add_option("--tls-key", rest_opts.tls_key, "PEM private key of --tls-cert (mode 0600)")
        ->check(CLI::ExistingFile);
    app.add_option("--tls-client-ca", rest_opts.tls_client_ca,
                   "PEM CA certificate(s): only clients with a certificate it signed may call "
                   "the API (the audit log names them by common name)")
        ->check(CLI::ExistingFile);
    app.add_option("--token-file", rest_opts.token_file,
                   "file of NAME TOKEN lines (mode 0600; weft key gen-token makes a token): every "
                   "request must carry one (Authorization: Bearer TOKEN), and the audit log names "
                   "its caller NAME")
        ->check(CLI::ExistingFile);
    app.add_flag("--insecure", rest_opts.insecure,
                 "serve the REST API on an address other than loopback with neither TLS nor "
                 "tokens (anyone who reaches it may call it): only on a network you trust");
    app.add_option("--peer-tls-ca", peer_ca,
                   "with etcd and HTTPS: the CA that signed the other instances' certificates "
                   "(default: --tls-client-ca); a standby forwards with its own --tls-cert")
        ->check(CLI::ExistingFile);
    weft::auth::api_client_access_options ea;
    app.add_option("--engine-tls-ca", ea.tls_ca,
                   "PEM CA certificate that signed the engines' API certificates: call them "
                   "over TLS")
        ->check(CLI::ExistingFile);
    app.add_option("--engine-tls-cert", ea.tls_cert,
                   "PEM client certificate for engines that require one (--api-tls-client-ca)")
        ->check(CLI::ExistingFile);
    app.add_option("--engine-tls-key", ea.tls_key,
                   "PEM private key of --engine-tls-cert (mode 0600)")
        ->check(CLI::ExistingFile);
    app.add_option("--engine-tls-name", ea.tls_name,
                   "the name the engines' certificates carry, when their addresses are not it");
    app.add_option("--engine-token-file", ea.token_file,
                   "file holding a token the engines know (their --api-token-file; mode 0600)")
        ->check(CLI::ExistingFile);
    app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
        ->capture_default_str();
    app.add_flag("--print-routes", print_routes, "print every route of the API and exit");
    CLI11_PARSE(app, argc, argv);
    if (print_routes) {
        for (auto& r : rest_server::routes()) std::cout << r << "\n";
        return 0;
    }
    spdlog::set_level(spdlog::level::from_str(log_level));
    so.engine_deadline = std::chrono::milliseconds(int64_t(deadline_s * 1000));
    so.replace_after = std::chrono::milliseconds(int64_t(replace_after_s * 1000));
    {
        std::string why;
        auto access = weft::auth::api_client_access::load(ea, &why);
        if (!access) {
            std::cerr << "weft-control: " << why << "\n";
            return 2;
        }
        so.engine_access = access.value();
    }

    if (store_spec.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(data_dir, ec);
        if (ec) {
            std::cerr << "weft-control: cannot create " << data_dir << ": " << ec.message() << "\n";
            return 1;
        }
        ::chmod(data_dir.c_str(), 0700);
        store_spec = "sqlite:" + data_dir + "/control.db";
    }
    const bool etcd = store_spec.starts_with("etcd:");
    if (!store_spec.starts_with("sqlite:") && !etcd) {
        std::cerr << "weft-control: --store " << store_spec
                  << ": expected sqlite:PATH or etcd:http://HOST:PORT[,...]\n";
        return 2;
    }

    sigset_t stop;
    sigemptyset(&stop);
    for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&stop, s);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);  // before any thread starts

    // With etcd, the store's fence and the leadership read the election,
    // which starts once the REST server has bound (its URL is the
    // instance's id); until then this instance is a standby without a
    // leader: reads are served, writes refused with 503.
    std::atomic<leader_election*> elected{nullptr};
    std::unique_ptr<store> st;
    try {
        if (etcd) {
            commit_fence fence;
            fence.key = etcd_prefix + "leader";
            fence.token = [&elected] {
                auto* e = elected.load();
                return e ? e->leader_revision() : int64_t(0);
            };
            st = open_etcd_store(store_spec.substr(5), etcd_prefix, fence);
            so.lead.is_leader = [&elected] {
                auto* e = elected.load();
                return e && e->is_leader();
            };
            so.lead.leader_url = [&elected] {
                auto* e = elected.load();
                return e ? e->leader_id() : std::string();
            };
        } else {
            st = open_sqlite_store(store_spec.substr(7));
        }
    } catch (const store_error& e) {
        std::cerr << "weft-control: " << e.what() << "\n";
        return 1;
    }

    service svc(*st, so);
    std::shared_ptr<const weft::auth::http_server_access> rest_access;
    std::shared_ptr<const weft::auth::http_client_access> peers;
    {
        std::string why;
        auto a = weft::auth::http_server_access::load(rest_opts, listen, &why);
        if (!a) {
            std::cerr << "weft-control: " << why << "\n";
            return 2;
        }
        weft::auth::http_client_access_options po;
        po.tls_ca = peer_ca.empty() ? rest_opts.tls_client_ca : peer_ca;
        po.tls_cert = rest_opts.tls_cert;
        po.tls_key = rest_opts.tls_key;
        auto p = weft::auth::http_client_access::load(po, &why);
        if (!p) {
            std::cerr << "weft-control: " << why << "\n";
            return 2;
        }
        rest_access = a.value();
        peers = p.value();
    }
    std::string bound;
    std::unique_ptr<rest_server> rest;
    const std::string scheme = rest_access->tls() ? "https://" : "http://";
    try {
        rest = std::make_unique<rest_server>(svc, so.lead, rest_access, peers);
        bound = rest->start(listen);
    } catch (const std::exception& e) {
        std::cerr << "weft-control: " << e.what() << "\n";
        return 1;
    }
    std::unique_ptr<leader_election> election;
    if (etcd) {
        if (advertise.empty()) advertise = scheme + bound;
        leader_options lo;
        lo.ttl = std::chrono::seconds(int64_t(lease_s + 0.5));
        try {
            election =
                std::make_unique<leader_election>(store_spec.substr(5), advertise, etcd_prefix, lo);
        } catch (const store_error& e) {
            std::cerr << "weft-control: " << e.what() << "\n";
            return 1;
        }
        elected.store(election.get());
        spdlog::info("weft-control: {} campaigns for the leadership (lease {} s)", advertise,
                     lo.ttl.count());
    }
    spdlog::info("weft-control: serving {}{} ({}; store {})", scheme, bound,
                 rest_access->describe(), st->describe());
    std::cout << "listening " << bound << std::endl;  // for scripts that start it on port 0
    // The reconciler: a pass every --reconcile-interval, on its own thread.
    std::mutex mu;
    std::condition_variable cv;
    bool stopping = false;
    std::thread reconciler([&] {
        std::unique_lock lk(mu);
        while (!stopping) {
            lk.unlock();
            try {
                svc.reconcile();
            } catch (const std::exception& e) {
                spdlog::warn("reconcile: {}", e.what());
            }
            lk.lock();
            cv.wait_for(lk, std::chrono::milliseconds(int64_t(reconcile_s * 1000)),
                        [&] { return stopping; });
        }
    });
    int sig = 0;
    sigwait(&stop, &sig);
    spdlog::info("weft-control: signal {}: stopping", sig);
    {
        std::lock_guard g(mu);
        stopping = true;
    }
    cv.notify_all();
    reconciler.join();
    rest->stop();
    // Resigning lets a standby take over at once instead of after the lease.
    elected.store(nullptr);
    election.reset();
    return 0;
}
