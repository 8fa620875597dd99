// A client of weft-control's REST API, for the programs that ask the
// control plane (the `weft` CLI's cluster commands, weft-csi): one request,
// the HTTP status and the JSON answer, or why no instance answered.
//
//   rest_client c("http://a:10130,http://b:10130", 30s);
//   rest_answer a = c.request("PUT", "/v1/volumes/" + id, &body);
//   if (!a.reached) ...          // a.detail: which URLs failed, and how
//   else if (a.status >= 300)    // a.detail: the problem's sentence
//
// Several comma-separated URLs are weft-control instances sharing one etcd:
// the next one is asked when one does not answer or answers 503 (no
// leader). Every request of the API may be repeated (PUTs and DELETEs name
// their object), so trying again is safe. Thread-safe (no shared state).
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "auth/http_access.h"

namespace weft::control {

inline constexpr const char* default_control_url = "http://127.0.0.1:10130";

struct rest_answer {
    bool reached = false;  // some instance answered with HTTP
    int status = 0;
    nlohmann::json body;  // {} for an empty answer (204)
    std::string detail;   // a problem's sentence, or why nothing answered
};

class rest_client {
  public:
    // `urls`: one or several, comma-separated; "HOST:PORT" means http://.
    // `access`: the CA, a client certificate and a token for a control plane
    // that requires them (null: none).
    rest_client(const std::string& urls, std::chrono::duration<double> timeout,
                std::shared_ptr<const auth::http_client_access> access = nullptr);

    // GET, PUT (with `body`) or DELETE.
    rest_answer request(const std::string& method, const std::string& path,
                        const nlohmann::json* body = nullptr) const;

    const std::vector<std::string>& urls() const { return urls_; }

  private:
    std::vector<std::string> urls_;
    std::chrono::duration<double> timeout_;
    std::shared_ptr<const auth::http_client_access> access_;
};

}  // namespace weft::control
