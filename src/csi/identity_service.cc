#include "csi/identity_service.h"

namespace weft::csi {

namespace v1 = ::csi::v1;
using grpc::Status;

#ifndef WEFT_VERSION
#define WEFT_VERSION "0.0.0"
#endif

Status identity_service::GetPluginInfo(ctx*, const v1::GetPluginInfoRequest*,
                                       v1::GetPluginInfoResponse* res) {
    res->set_name(name_);
    res->set_vendor_version(WEFT_VERSION);
    return Status::OK;
}

Status identity_service::GetPluginCapabilities(ctx*, const v1::GetPluginCapabilitiesRequest*,
                                               v1::GetPluginCapabilitiesResponse* res) {
    using svc = v1::PluginCapability::Service;
    using exp = v1::PluginCapability::VolumeExpansion;
    if (controller_) {
        res->add_capabilities()->mutable_service()->set_type(svc::CONTROLLER_SERVICE);
        res->add_capabilities()->mutable_service()->set_type(svc::VOLUME_ACCESSIBILITY_CONSTRAINTS);
    }
    res->add_capabilities()->mutable_volume_expansion()->set_type(exp::ONLINE);
    return Status::OK;
}

Status identity_service::Probe(ctx*, const v1::ProbeRequest*, v1::ProbeResponse* res) {
    if (control_) {
        auto a = control_->request("GET", "/v1/status");
        if (!a.reached || a.status >= 300)
            return {grpc::StatusCode::FAILED_PRECONDITION,
                    "weft-control is not reachable: " + a.detail};
    }
    res->mutable_ready()->set_value(true);
    return Status::OK;
}

}  // namespace weft::csi
