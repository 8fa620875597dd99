// The engine's management endpoints: the gRPC service (proto/weft/engine/v1)
// and the Prometheus /metrics page over HTTP. Both run on their libraries'
// own threads and hand each request to the manager on reactor 0.
#pragma once

#include <memory>
#include <string>

#include "auth/api_access.h"
#include "engine/manager.h"
#include "runtime/reactor.h"

namespace weft::engine {

class api_server {
  public:
    api_server(manager& m, reactor& home);
    ~api_server();

    // "IP:PORT" (port 0: the kernel picks). Returns the bound address, or an
    // error with a sentence in `why`.
    // The gRPC API admits calls through `access` (TLS, tokens) and writes
    // every change to the audit log (api_audit.h).
    result<std::string> start_grpc(const std::string& addr,
                                   std::shared_ptr<const auth::api_server_access> access,
                                   std::string* why);
    result<std::string> start_metrics(const std::string& addr, std::string* why);
    // Blocking: call it off the reactors (co_await in_thread(...)), since
    // in-flight requests wait for reactor 0 to answer.
    void stop();

  private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace weft::engine
