// The `weft` commands that ask the control plane (volume, pool, node,
// events) talk to weft-control's REST API with this: one request, a JSON
// answer, or a sentence (the problem's detail) printed as "weft: ...".
//
//   control_options c;              // --control URL (env WEFT_CONTROL), --timeout
//   add_control_options(sub, c);
//   control_client cc(c);
//   auto v = cc.request("GET", "/v1/volumes/" + id);
//   if (!v) return 1;               // the sentence is printed
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "control/rest_client.h"

namespace weft::cli {

using control::default_control_url;

struct control_options {
    std::string url = default_control_url;
    double timeout_s = 60;
    auth::http_client_access_options access;  // HTTPS and a token (auth/http_access.h)
};

void add_control_options(CLI::App* app, control_options& o);

class control_client {
  public:
    explicit control_client(const control_options& o) : o_(o) {}

    // The answer's JSON ({} for 204), or nullopt after printing why. With
    // `status`, the HTTP status is stored there.
    std::optional<nlohmann::json> request(const std::string& method, const std::string& path,
                                          const nlohmann::json* body = nullptr,
                                          int* status = nullptr);

  private:
    control_options o_;
};

}  // namespace weft::cli
