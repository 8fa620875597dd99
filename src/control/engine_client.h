// The control plane's calls to engines: their gRPC management API
// (proto/weft/engine/v1), one cached channel per endpoint, every call under a
// deadline. Calls that the engine makes idempotent (or that the caller
// checks) are retried on UNAVAILABLE a few times with a short backoff.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "auth/api_access.h"
#include "weft/engine/v1/engine.grpc.pb.h"

namespace weft::control {

namespace pb = ::weft::engine::v1;

class engine_client {
  public:
    // `access`: TLS and a token for engines that require them (null: plain).
    engine_client(std::chrono::milliseconds deadline,
                  std::shared_ptr<const auth::api_client_access> access)
        : deadline_(deadline), access_(std::move(access)) {}

    // rpc(stub, context) -> grpc::Status
    template <typename F>
    grpc::Status call(const std::string& endpoint, F&& rpc, unsigned attempts = 3) {
        auto stub = stub_for(endpoint);
        grpc::Status s;
        for (unsigned i = 0; i < attempts; ++i) {
            grpc::ClientContext ctx;
            ctx.set_deadline(std::chrono::system_clock::now() + deadline_);
            if (access_) access_->authorize(ctx);
            s = rpc(*stub, &ctx);
            if (s.error_code() != grpc::StatusCode::UNAVAILABLE) break;
            if (i + 1 < attempts) std::this_thread::sleep_for(std::chrono::milliseconds(200 << i));
        }
        return s;
    }

  private:
    std::shared_ptr<pb::Engine::Stub> stub_for(const std::string& endpoint);

    std::chrono::milliseconds deadline_;
    std::shared_ptr<const auth::api_client_access> access_;
    std::mutex mu_;
    std::map<std::string, std::shared_ptr<pb::Engine::Stub>> stubs_;
};

// "node n1 (127.0.0.1:10124): <what the engine said>".
std::string sentence(const std::string& node, const std::string& endpoint, const grpc::Status& s);

}  // namespace weft::control
