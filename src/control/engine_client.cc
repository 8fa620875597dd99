#include "control/engine_client.h"

#include <fmt/format.h>

namespace weft::control {

std::shared_ptr<pb::Engine::Stub> engine_client::stub_for(const std::string& endpoint) {
    std::lock_guard g(mu_);
    auto& s = stubs_[endpoint];
    if (!s) {
        grpc::ChannelArguments args;
        // Reconnect quickly after an engine restarts: the default backoff
        // grows to minutes.
        args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
        args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
        if (access_) access_->add_to(args);
        s = pb::Engine::NewStub(grpc::CreateCustomChannel(
            endpoint, access_ ? access_->credentials() : grpc::InsecureChannelCredentials(), args));
    }
    return s;
}

std::string sentence(const std::string& node, const std::string& endpoint, const grpc::Status& s) {
    switch (s.error_code()) {
        case grpc::StatusCode::UNAVAILABLE:
            return fmt::format("node {} ({}) does not answer: {}", node, endpoint,
                               s.error_message());
        case grpc::StatusCode::UNAUTHENTICATED:
            return fmt::format(
                "node {} ({}) refused the control plane's call: {} (weft-control "
                "--engine-token-file, --engine-tls-cert)",
                node, endpoint, s.error_message());
        case grpc::StatusCode::DEADLINE_EXCEEDED:
            return fmt::format("node {} ({}) did not answer in time", node, endpoint);
        default:
            return fmt::format("node {}: {}", node, s.error_message());
    }
}

}  // namespace weft::control
