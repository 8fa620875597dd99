// CSI's Identity service: the driver's name and version, what it offers
// (the controller service, volume accessibility constraints, online
// expansion), and whether it is ready: Probe asks weft-control (a
// controller that cannot reach it is not ready; a node plugin is ready on
// its own).
#pragma once

#include <string>

#include "control/rest_client.h"
#include "csi/v1/csi.grpc.pb.h"

namespace weft::csi {

inline constexpr const char* driver_name = "csi.weft.io";

class identity_service final : public ::csi::v1::Identity::Service {
  public:
    // `control`: null for a node plugin alone (it does not ask the control
    // plane); `controller`: whether this process serves the controller.
    identity_service(std::string name, const control::rest_client* control, bool controller)
        : name_(std::move(name)), control_(control), controller_(controller) {}

    using ctx = grpc::ServerContext;
    grpc::Status GetPluginInfo(ctx*, const ::csi::v1::GetPluginInfoRequest*,
                               ::csi::v1::GetPluginInfoResponse*) override;
    grpc::Status GetPluginCapabilities(ctx*, const ::csi::v1::GetPluginCapabilitiesRequest*,
                                       ::csi::v1::GetPluginCapabilitiesResponse*) override;
    grpc::Status Probe(ctx*, const ::csi::v1::ProbeRequest*, ::csi::v1::ProbeResponse*) override;

  private:
    std::string name_;
    const control::rest_client* control_;
    bool controller_;
};

}  // namespace weft::csi
