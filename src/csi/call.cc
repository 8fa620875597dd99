#include "csi/call.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <iostream>
#include <map>

#include "control/grpc_code_name.h"
#include "csi/v1/csi.grpc.pb.h"

namespace weft::csi {

namespace v1 = ::csi::v1;

namespace {

using channel_ptr = std::shared_ptr<grpc::Channel>;
// 0, 1 or 2 as call_csi returns.
using invoker = std::function<int(const channel_ptr&, const std::string&, double)>;

// One method of one service's stub: JSON in, the call, JSON out.
template <class Service, class Req, class Res>
invoker method(grpc::Status (Service::Stub::*fn)(grpc::ClientContext*, const Req&, Res*),
               const char* name) {
    return [fn, name](const channel_ptr& ch, const std::string& in, double timeout_s) {
        Req req;
        auto parsed = google::protobuf::util::JsonStringToMessage(in.empty() ? "{}" : in, &req);
        if (!parsed.ok()) {
            std::cerr << "weft-csi call " << name << ": the request is not a "
                      << req.GetDescriptor()->name() << ": " << parsed.ToString() << "\n";
            return 2;
        }
        auto stub = Service::NewStub(ch);
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(int64_t(timeout_s * 1000)));
        Res res;
        grpc::Status s = ((*stub).*fn)(&ctx, req, &res);
        if (!s.ok()) {
            std::cerr << name << ": " << control::grpc_code_name(s.error_code()) << ": "
                      << s.error_message() << "\n";
            return 1;
        }
        google::protobuf::util::JsonPrintOptions o;
        o.preserve_proto_field_names = true;
        std::string out;
        (void)google::protobuf::util::MessageToJsonString(res, &out, o);
        std::cout << out << std::endl;
        return 0;
    };
}

#define WEFT_CSI_METHOD(service, name) \
    { #name, method < v1::service>(&v1::service::Stub::name, #name) }

const std::map<std::string, invoker>& methods() {
    static const std::map<std::string, invoker> m = {
        WEFT_CSI_METHOD(Identity, GetPluginInfo),
        WEFT_CSI_METHOD(Identity, GetPluginCapabilities),
        WEFT_CSI_METHOD(Identity, Probe),
        WEFT_CSI_METHOD(Controller, CreateVolume),
        WEFT_CSI_METHOD(Controller, DeleteVolume),
        WEFT_CSI_METHOD(Controller, ControllerPublishVolume),
        WEFT_CSI_METHOD(Controller, ControllerUnpublishVolume),
        WEFT_CSI_METHOD(Controller, ValidateVolumeCapabilities),
        WEFT_CSI_METHOD(Controller, ListVolumes),
        WEFT_CSI_METHOD(Controller, GetCapacity),
        WEFT_CSI_METHOD(Controller, ControllerGetCapabilities),
        WEFT_CSI_METHOD(Controller, CreateSnapshot),
        WEFT_CSI_METHOD(Controller, DeleteSnapshot),
        WEFT_CSI_METHOD(Controller, ListSnapshots),
        WEFT_CSI_METHOD(Controller, ControllerExpandVolume),
        WEFT_CSI_METHOD(Node, NodeStageVolume),
        WEFT_CSI_METHOD(Node, NodeUnstageVolume),
        WEFT_CSI_METHOD(Node, NodePublishVolume),
        WEFT_CSI_METHOD(Node, NodeUnpublishVolume),
        WEFT_CSI_METHOD(Node, NodeGetVolumeStats),
        WEFT_CSI_METHOD(Node, NodeExpandVolume),
        WEFT_CSI_METHOD(Node, NodeGetCapabilities),
        WEFT_CSI_METHOD(Node, NodeGetInfo),
    };
    return m;
}

#undef WEFT_CSI_METHOD

}  // namespace

int call_csi(const std::string& endpoint, const std::string& name, const std::string& request_json,
             double timeout_s) {
    auto it = methods().find(name);
    if (it == methods().end()) {
        std::cerr << "weft-csi call: no CSI method " << name << " (weft-csi knows";
        for (auto& [n, _] : methods()) std::cerr << " " << n;
        std::cerr << ")\n";
        return 2;
    }
    std::string target = endpoint.starts_with("unix://") ? endpoint : "unix://" + endpoint;
    return it->second(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()), request_json,
                      timeout_s);
}

}  // namespace weft::csi
