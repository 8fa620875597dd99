// weft-csi: weft's Container Storage Interface plugin, on a unix socket. In
// controller mode it serves CSI's Identity and Controller services and asks
// weft-control (its REST API) for volumes, publications and snapshots
// (callers: Kubernetes' external-provisioner, -attacher, -snapshotter,
// -resizer). In node mode it serves Identity and Node: it attaches published
// volumes on this node (the kernel's NVMe/TCP host, or userspace attach
// where the kernel has none), makes and mounts file systems,
// and grows them (caller: the kubelet). Mode all serves both (tests, one
// node).
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "control/rest_client.h"
#include "csi/call.h"
#include "csi/controller_service.h"
#include "csi/host_registration.h"
#include "csi/identity_service.h"
#include "csi/node_service.h"

namespace control = weft::control;

int main(int argc, char** argv) {
    CLI::App app{
        "weft-csi: the Container Storage Interface plugin of weft.\n"
        "Controller mode serves CSI's Identity and Controller services on a unix socket for\n"
        "Kubernetes' CSI sidecars, and creates, publishes, snapshots and grows volumes\n"
        "through weft-control's REST API. Node mode serves Identity and Node for the kubelet:\n"
        "it attaches published volumes on this node (the kernel's NVMe/TCP host with every\n"
        "path, or weft attach where the kernel has no nvme-tcp), makes and mounts their file\n"
        "systems and grows them. `weft-csi call` makes one CSI call (operators, tests)."};
    std::string endpoint = "unix:///run/weft/csi.sock";
    std::string mode = "controller";
    std::string control_urls = control::default_control_url;
    std::string name = weft::csi::driver_name;
    double timeout_s = 120;
    std::string log_level = "info";
    app.add_option("--endpoint", endpoint,
                   "where to serve CSI: unix:///PATH (or a PATH); a stale socket file is replaced")
        ->envname("CSI_ENDPOINT")
        ->capture_default_str();
    app.add_option("--mode", mode,
                   "which CSI services to serve: controller, node, or all (both, on one socket)")
        ->check(CLI::IsMember({"controller", "node", "all"}))
        ->capture_default_str();
    weft::csi::node_options no;
    app.add_option("--node-id", no.node_id,
                   "node mode: this node's name as weft knows it (its engine's --node-id; the "
                   "Kubernetes node name)")
        ->envname("WEFT_NODE_ID");
    app.add_option("--weft", no.weft, "node mode: the weft CLI (attach, detach, rescan)")
        ->capture_default_str();
    app.add_option("--attach", no.attach,
                   "node mode: how volumes are attached: kernel (the kernel's NVMe/TCP host, "
                   "native multipath over every path), user (weft attach: FUSE and a loop "
                   "device), or auto (kernel where this kernel has nvme-tcp, else user)")
        ->check(CLI::IsMember({"auto", "kernel", "user"}))
        ->capture_default_str();
    app.add_option("--ctrl-loss-tmo", no.ctrl_loss_tmo_s,
                   "node mode, kernel attach: seconds a lost path is retried before the kernel "
                   "gives it up (I/O waits meanwhile; -1: forever)")
        ->check(CLI::Range(-1, 86400))
        ->capture_default_str();
    app.add_option("--reconnect-delay", no.reconnect_delay_s,
                   "node mode, kernel attach: seconds between reconnect attempts")
        ->check(CLI::Range(1, 3600))
        ->capture_default_str();
    app.add_option("--keep-alive-tmo", no.keep_alive_tmo_s,
                   "node mode, kernel attach: keep-alive timeout in seconds (how soon a dead path "
                   "is noticed)")
        ->check(CLI::Range(1, 3600))
        ->capture_default_str();
    app.add_option("--attach-run-dir", no.attach_run_dir,
                   "node mode: where weft attach keeps its attachments")
        ->capture_default_str();
    app.add_option("--state-dir", no.state_dir,
                   "node mode: what the plugin staged, one file per volume (kept across restarts)")
        ->capture_default_str();
    app.add_option("--max-volumes", no.max_volumes, "node mode: volumes this node may hold")
        ->capture_default_str()
        ->check(CLI::Range(1u, 4096u));
    auto* control_opt =
        app.add_option(
               "--control", control_urls,
               "weft-control's REST API; several, comma-separated, for instances sharing one "
               "etcd. Node mode: given, the plugin registers its node there as a host (so "
               "that a node without an engine can have volumes published to it)")
            ->envname("WEFT_CONTROL")
            ->type_name("URL")
            ->capture_default_str();
    weft::auth::http_client_access_options ca;
    app.add_option("--control-tls-ca", ca.tls_ca,
                   "PEM CA certificate that signed weft-control's certificate (https:// URLs)")
        ->check(CLI::ExistingFile);
    app.add_option("--control-tls-cert", ca.tls_cert,
                   "PEM client certificate, for a control plane that requires one")
        ->check(CLI::ExistingFile);
    app.add_option("--control-tls-key", ca.tls_key, "PEM private key of --control-tls-cert")
        ->check(CLI::ExistingFile);
    app.add_option("--control-token-file", ca.token_file,
                   "file holding a token weft-control knows (its --token-file; mode 0600)")
        ->check(CLI::ExistingFile);
    app.add_option("--control-timeout", timeout_s,
                   "seconds to wait for weft-control's answer (a create places and makes every "
                   "replica before it answers)")
        ->check(CLI::Range(1.0, 3600.0))
        ->capture_default_str();
    app.add_option("--driver-name", name, "the CSI driver's name (the CSIDriver object's)")
        ->capture_default_str();
    app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
        ->capture_default_str();
    std::string call_method, call_request;
    double call_timeout_s = 60;
    auto* call = app.add_subcommand(
        "call",
        "make one CSI call to a running weft-csi and print the answer as JSON, e.g.\n"
        "  weft-csi call --endpoint unix:///run/weft/csi.sock NodeGetInfo\n"
        "  weft-csi call NodeStageVolume '{\"volume_id\": \"...\", ...}'\n"
        "(the request in protobuf's JSON form of the CSI message; exit 1 when refused)");
    call->add_option("method", call_method, "the CSI method, e.g. NodeStageVolume")->required();
    call->add_option("request", call_request, "the request as JSON (default {})");
    call->add_option("--endpoint", endpoint, "the plugin's socket: unix:///PATH")
        ->envname("CSI_ENDPOINT")
        ->capture_default_str();
    call->add_option("--timeout", call_timeout_s, "seconds to wait for the answer")
        ->check(CLI::Range(0.1, 3600.0))
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    if (*call) return weft::csi::call_csi(endpoint, call_method, call_request, call_timeout_s);
    spdlog::set_level(spdlog::level::from_str(log_level));

    bool serve_controller = mode != "node", serve_node = mode != "controller";
    if (serve_node && no.node_id.empty()) {
        std::cerr << "weft-csi: --mode " << mode << " needs --node-id (this node's weft name)\n";
        return 1;
    }
    std::string path = endpoint;
    if (path.starts_with("unix://")) path = path.substr(7);
    if (path.empty() || path[0] != '/') {
        std::cerr << "weft-csi: --endpoint " << endpoint
                  << " is not a unix socket (unix:///PATH)\n";
        return 1;
    }
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    struct stat st {};
    if (lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            std::cerr << "weft-csi: " << path << " exists and is not a socket\n";
            return 1;
        }
        ::unlink(path.c_str());  // left by a plugin that died
    }

    // Signals are taken by sigwait below, not by gRPC's threads.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);

    std::string access_why;
    auto control_access = weft::auth::http_client_access::load(ca, &access_why);
    if (!control_access) {
        std::fprintf(stderr, "weft-csi: %s\n", access_why.c_str());
        return 2;
    }
    control::rest_client control(control_urls, std::chrono::duration<double>(timeout_s),
                                 control_access.value());
    // A node plugin alone does not need the control plane to be ready.
    weft::csi::identity_service identity(name, serve_controller ? &control : nullptr,
                                         serve_controller);
    weft::csi::controller_service controller(control);
    weft::csi::node_service node(no);
    std::unique_ptr<weft::csi::host_registration> registration;
    if (serve_node && control_opt->count() > 0)
        registration = std::make_unique<weft::csi::host_registration>(control, no.node_id);
    grpc::ServerBuilder b;
    b.AddListeningPort("unix://" + path, grpc::InsecureServerCredentials());
    b.RegisterService(&identity);
    if (serve_controller) b.RegisterService(&controller);
    if (serve_node) b.RegisterService(&node);
    std::unique_ptr<grpc::Server> server = b.BuildAndStart();
    if (!server) {
        std::cerr << "weft-csi: cannot serve on " << path << "\n";
        return 1;
    }
    // The socket is the plugin's only door: its owner (the sidecars run as
    // the same user) and nobody else.
    ::chmod(path.c_str(), 0600);
    spdlog::info("weft-csi {} ({} mode): serving unix://{}, control {}", name, mode, path,
                 control_urls);
    std::cout << "serving unix://" << path << std::endl;  // for scripts
    int sig = 0;
    sigwait(&stop, &sig);
    spdlog::info("weft-csi: signal {}: stopping", sig);
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    ::unlink(path.c_str());
    return 0;
}
