// weft-control's REST API over HTTP (cpp-httplib): the routes of
// openapi.json mapped onto the service. Errors are application/problem+json
// with a sentence; an unknown path is 404 and a known path with another
// method is 405, both as problems too.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "auth/http_access.h"
#include "control/service.h"

namespace weft::control {

class rest_server {
  public:
    // A standby (lead.is_leader() false) serves reads and forwards every
    // other request to the leader, once (a forwarded request that meets
    // another standby is refused with 503): clients and engines may talk to
    // any instance.
    // `access`: who may call (TLS, client certificates, tokens; every change
    // and every refusal is an audit line in the log); `peers`: how a standby
    // reaches the leader. Throws std::runtime_error when TLS does not load.
    rest_server(service& s, leadership lead, std::shared_ptr<const auth::http_server_access> access,
                std::shared_ptr<const auth::http_client_access> peers);
    ~rest_server();

    // Binds "IP:PORT" (port 0: the kernel picks) and serves on a thread.
    // Returns the bound address; throws std::runtime_error on failure.
    std::string start(const std::string& addr);
    void stop();

    // "METHOD /v1/path/{param}" for every route: what the OpenAPI document
    // must describe (checked by a test).
    static std::vector<std::string> routes();

  private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// The OpenAPI document served at /v1/openapi.json (built into the binary).
extern const char* const openapi_json;

}  // namespace weft::control
