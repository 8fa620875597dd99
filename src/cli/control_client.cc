#include "cli/control_client.h"

#include <httplib.h>

#include <cstdio>

#include <fmt/format.h>

namespace weft::cli {

void add_control_options(CLI::App* app, control_options& o) {
    app->add_option("--control", o.url, "the control plane's REST API (weft-control --listen)")
        ->envname("WEFT_CONTROL")
        ->type_name("URL")
        ->capture_default_str();
    app->add_option("--timeout", o.timeout_s, "how long to wait for the answer, seconds")
        ->type_name("SECONDS")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
}

std::optional<nlohmann::json> control_client::request(const std::string& method,
                                                      const std::string& path,
                                                      const nlohmann::json* body, int* status) {
    std::string url = o_.url.find("://") == std::string::npos ? "http://" + o_.url : o_.url;
    httplib::Client cli(url);
    if (!cli.is_valid()) {
        std::fprintf(stderr, "weft: %s is not a control-plane URL (like http://HOST:PORT)\n",
                     o_.url.c_str());
        return std::nullopt;
    }
    auto t = std::chrono::duration<double>(o_.timeout_s);
    cli.set_connection_timeout(std::chrono::duration_cast<std::chrono::microseconds>(
        std::min(t, std::chrono::duration<double>(5.0))));
    cli.set_read_timeout(std::chrono::duration_cast<std::chrono::microseconds>(t));
    cli.set_write_timeout(std::chrono::duration_cast<std::chrono::microseconds>(t));
    std::string b = body ? body->dump() : std::string();
    httplib::Result res = method == "GET"   ? cli.Get(path)
                          : method == "PUT" ? cli.Put(path, b, "application/json")
                                            : cli.Delete(path);
    if (!res) {
        std::fprintf(stderr,
                     "weft: no control plane answered at %s (%s); start weft-control or "
                     "give --control URL\n",
                     url.c_str(), httplib::to_string(res.error()).c_str());
        return std::nullopt;
    }
    if (status) *status = res->status;
    nlohmann::json j;
    if (!res->body.empty()) {
        j = nlohmann::json::parse(res->body, nullptr, false);
        if (j.is_discarded()) {
            std::fprintf(stderr, "weft: the control plane answered %d with something not JSON\n",
                         res->status);
            return std::nullopt;
        }
    }
    if (res->status >= 300) {
        std::string detail = j.is_object() && j.contains("detail") && j["detail"].is_string()
                                 ? j["detail"].get<std::string>()
                                 : fmt::format("HTTP {}", res->status);
        std::fprintf(stderr, "weft: %s\n", detail.c_str());
        return std::nullopt;
    }
    return j.is_null() ? nlohmann::json::object() : j;
}

}  // namespace weft::cli
