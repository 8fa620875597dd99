#include "engine/api_server.h"

#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <thread>

#include "auth/api_access.h"
#include "engine/api_audit.h"
#include "engine/metrics_text.h"
#include "runtime/foreign_call.h"
#include "runtime/net.h"
#include "weft/engine/v1/engine.grpc.pb.h"

namespace weft::engine {

namespace {

using grpc::ServerContext;
using grpc::Status;

// Each RPC: admitted (api_access), then the manager's coroutine, run on
// reactor 0, this thread waiting; a change is written to the audit log.
class service final : public v1::Engine::Service {
  public:
    service(manager& m, reactor& home) : m_(m), home_(home) {}
    void set_access(std::shared_ptr<const auth::api_server_access> a) { access_ = std::move(a); }

#define WEFT_RPC(Name, Req, Rep, call)                                                       \
    Status Name(ServerContext* ctx, const v1::Req* req, v1::Rep* rep) override {             \
        (void)rep;                                                                           \
        std::string who;                                                                     \
        Status st = access_->admit(*ctx, &who);                                              \
        if (st.ok()) st = call_on_reactor(home_, [&]() -> task<Status> { return m_.call; }); \
        audit(who, #Name, *req, st);                                                         \
        return st;                                                                           \
    }
    WEFT_RPC(CreatePool, CreatePoolRequest, Pool, create_pool(*req, rep))
    WEFT_RPC(ImportPool, ImportPoolRequest, Pool, import_pool(*req, rep))
    WEFT_RPC(DestroyPool, DestroyPoolRequest, Empty, destroy_pool(*req))
    WEFT_RPC(ListPools, ListPoolsRequest, ListPoolsReply, list_pools(rep))
    WEFT_RPC(CreateVolume, CreateVolumeRequest, Volume, create_volume(*req, rep))
    WEFT_RPC(DestroyVolume, DestroyVolumeRequest, Empty, destroy_volume(*req))
    WEFT_RPC(ResizeVolume, ResizeVolumeRequest, Volume, resize_volume(*req, rep))
    WEFT_RPC(ListVolumes, ListVolumesRequest, ListVolumesReply, list_volumes(*req, rep))
    WEFT_RPC(CreateSnapshot, CreateSnapshotRequest, Volume, create_snapshot(*req, rep))
    WEFT_RPC(CreateClone, CreateCloneRequest, Volume, create_clone(*req, rep))
    WEFT_RPC(ShareVolume, ShareVolumeRequest, Share, share_volume(*req, rep))
    WEFT_RPC(UnshareVolume, UnshareVolumeRequest, Empty, unshare_volume(*req))
    WEFT_RPC(ListShares, ListSharesRequest, ListSharesReply, list_shares(rep))
    WEFT_RPC(AddListener, AddListenerRequest, Listener, add_listener(*req, rep))
    WEFT_RPC(ListListeners, ListListenersRequest, ListListenersReply, list_listeners(rep))
    WEFT_RPC(RemoveListener, RemoveListenerRequest, Empty, remove_listener(*req))
    WEFT_RPC(GetStats, GetStatsRequest, Stats, get_stats(rep))
    WEFT_RPC(SetHostKey, SetHostKeyRequest, HostKey, set_host_key(*req, rep))
    WEFT_RPC(RemoveHostKey, RemoveHostKeyRequest, Empty, remove_host_key(*req))
    WEFT_RPC(ListHostKeys, ListHostKeysRequest, ListHostKeysReply, list_host_keys(rep))
    WEFT_RPC(CreateNexus, CreateNexusRequest, Nexus, create_nexus(*req, rep))
    WEFT_RPC(DestroyNexus, DestroyNexusRequest, Empty, destroy_nexus(*req))
    WEFT_RPC(ListNexuses, ListNexusesRequest, ListNexusesReply, list_nexuses(rep))
    WEFT_RPC(GetNexus, GetNexusRequest, Nexus, get_nexus(*req, rep))
    WEFT_RPC(AddChild, AddChildRequest, Nexus, add_child(*req, rep))
    WEFT_RPC(RemoveChild, RemoveChildRequest, Nexus, remove_child(*req, rep))
    WEFT_RPC(FaultChild, FaultChildRequest, Nexus, fault_child(*req, rep))
    WEFT_RPC(OnlineChild, OnlineChildRequest, Nexus, online_child(*req, rep))
    WEFT_RPC(RepointChild, RepointChildRequest, Nexus, repoint_child(*req, rep))
    WEFT_RPC(SetVolumeKey, SetVolumeKeyRequest, VolumeKey, set_volume_key(*req, rep))
    WEFT_RPC(EraseVolumeKey, EraseVolumeKeyRequest, Empty, erase_volume_key(*req))
    WEFT_RPC(ListVolumeKeys, ListVolumeKeysRequest, ListVolumeKeysReply, list_volume_keys(rep))
    WEFT_RPC(RewrapVolumeKeys, RewrapVolumeKeysRequest, ListVolumeKeysReply,
             rewrap_volume_keys(rep))
    WEFT_RPC(RotateVolumeKey, RotateVolumeKeyRequest, VolumeKey, rotate_volume_key(*req, rep))
    WEFT_RPC(ArbitrateNexus, ArbitrateNexusRequest, Nexus, arbitrate_nexus(*req, rep))
    WEFT_RPC(ShareNexus, ShareNexusRequest, Share, share_nexus(*req, rep))
    WEFT_RPC(UnshareNexus, UnshareNexusRequest, Empty, unshare_nexus(*req))
    WEFT_RPC(PauseNexus, PauseNexusRequest, Nexus, pause_nexus(*req, rep))
    WEFT_RPC(ResizeNexus, ResizeNexusRequest, Nexus, resize_nexus(*req, rep))
    WEFT_RPC(SetAnaState, SetAnaStateRequest, Share, set_ana_state(*req, rep))
    WEFT_RPC(ResumeNexus, ResumeNexusRequest, Nexus, resume_nexus(*req, rep))
    WEFT_RPC(ClearChildLabel, ClearChildLabelRequest, Empty, clear_child_label(*req))
    WEFT_RPC(ReadChildLabel, ReadChildLabelRequest, ChildLabel, read_child_label(*req, rep))
    WEFT_RPC(InjectFault, InjectFaultRequest, Empty, inject_fault(*req))
#undef WEFT_RPC

  private:
    manager& m_;
    reactor& home_;
    std::shared_ptr<const auth::api_server_access> access_;
};

}  // namespace

struct api_server::impl {
    impl(manager& mm, reactor& h) : m(mm), home(h) {}
    manager& m;
    reactor& home;
    service svc{m, home};
    std::unique_ptr<grpc::Server> grpc;
    httplib::Server http;
    std::thread http_thread;
};

api_server::api_server(manager& m, reactor& home) : impl_(std::make_unique<impl>(m, home)) {}

// stop() must have run off the reactors (main.cc does so even when serving
// fails with an exception); here it only catches what is left.
api_server::~api_server() {
    stop();
}

result<std::string> api_server::start_grpc(const std::string& addr,
                                           std::shared_ptr<const auth::api_server_access> access,
                                           std::string* why) {
    auto parsed = socket_address::parse(addr);
    if (!parsed) {
        *why = "--api-listen " + addr + ": expected IP:PORT (e.g. 127.0.0.1:10124)";
        return error{EINVAL};
    }
    if (!access) {
        *why = "no access policy for the management API";
        return error{EINVAL};
    }
    grpc::ServerBuilder b;
    int port = 0;
    impl_->svc.set_access(access);
    b.AddListeningPort(addr, access->credentials(), &port);
    // Without this gRPC binds with SO_REUSEPORT: a second engine would share
    // the port silently instead of failing.
    b.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    // Handler threads poll their queue with this timeout; shutdown waits it.
    b.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::CQ_TIMEOUT_MSEC, 100);
    b.RegisterService(&impl_->svc);
    impl_->grpc = b.BuildAndStart();
    if (!impl_->grpc || port == 0) {
        impl_->grpc.reset();
        *why = "cannot serve the management API on " + addr +
               (access->tls() ? " (address in use? or --api-tls-cert/--api-tls-key not a PEM "
                                "certificate and its key: gRPC's log says which)"
                              : " (address in use?)");
        return error{EADDRINUSE};
    }
    std::string host = addr.substr(0, addr.rfind(':'));
    return host + ":" + std::to_string(port);
}

result<std::string> api_server::start_metrics(const std::string& addr, std::string* why) {
    auto parsed = socket_address::parse(addr);
    if (!parsed) {
        *why = "--metrics-listen " + addr + ": expected IP:PORT (e.g. 127.0.0.1:9502)";
        return error{EINVAL};
    }
    auto& s = *impl_;
    s.http.Get("/metrics", [&s](const httplib::Request&, httplib::Response& res) {
        auto snap =
            call_on_reactor(s.home, [&]() -> task<stats_snapshot> { return s.m.snapshot(); });
        res.set_content(render_prometheus(snap), "text/plain; version=0.0.4; charset=utf-8");
    });
    // Scrapers keep the connection; a long idle keep-alive would hold stop().
    s.http.set_keep_alive_timeout(1);
    s.http.Get("/", [](const httplib::Request&, httplib::Response& res) {
        res.set_content("weft-engine: metrics at /metrics\n", "text/plain");
    });
    std::string host = addr.substr(0, addr.rfind(':'));
    int port = parsed.value().port();
    bool ok =
        port == 0 ? (port = s.http.bind_to_any_port(host)) > 0 : s.http.bind_to_port(host, port);
    if (!ok) {
        *why = "cannot serve metrics on " + addr + " (address in use?)";
        return error{EADDRINUSE};
    }
    s.http_thread = std::thread([&s] { s.http.listen_after_bind(); });
    // stop() before the thread is in its accept loop would be lost.
    for (int i = 0; i < 5000 && !s.http.is_running(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (!s.http.is_running()) {
        s.http.stop();
        s.http_thread.join();
        *why = "the metrics server on " + addr + " did not start";
        return error{EIO};
    }
    return host + ":" + std::to_string(port);
}

void api_server::stop() {
    if (impl_->grpc) {
        spdlog::debug("api: stopping gRPC");
        // An idle client connection (a control plane's) holds Shutdown until
        // the deadline; requests still running by then are cancelled.
        impl_->grpc->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
        impl_->grpc.reset();
    }
    if (impl_->http_thread.joinable()) {
        spdlog::debug("api: stopping HTTP");
        impl_->http.stop();
        impl_->http_thread.join();
    }
}

}  // namespace weft::engine
