#include "cli/control_client.h"

#include <httplib.h>

#include <cstdio>
#include <vector>

#include <fmt/format.h>

namespace weft::cli {

void add_control_options(CLI::App* app, control_options& o) {
    app->add_option("--control", o.url,
                    "the control plane's REST API (weft-control --listen); several, "
                    "comma-separated, for instances sharing one etcd")
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
    // Several URLs (weft-control instances sharing one etcd): the next is
    // asked when one does not answer or answers 503. Every request of the
    // API may be repeated (PUTs and DELETEs name their object).
    std::vector<std::string> urls;
    for (size_t at = 0; at <= o_.url.size();) {
        size_t comma = o_.url.find(',', at);
        if (comma == std::string::npos) comma = o_.url.size();
        std::string u = o_.url.substr(at, comma - at);
        if (!u.empty()) urls.push_back(u.find("://") == std::string::npos ? "http://" + u : u);
        at = comma + 1;
    }
    if (urls.empty()) urls.push_back(default_control_url);
    auto t = std::chrono::duration<double>(o_.timeout_s);
    std::string b = body ? body->dump() : std::string();
    std::optional<httplib::Result> got;
    std::string why;
    for (size_t i = 0; i < urls.size(); ++i) {
        const std::string& url = urls[i];
        httplib::Client cli(url);
        if (!cli.is_valid()) {
            std::fprintf(stderr, "weft: %s is not a control-plane URL (like http://HOST:PORT)\n",
                         url.c_str());
            return std::nullopt;
        }
        cli.set_connection_timeout(std::chrono::duration_cast<std::chrono::microseconds>(
            std::min(t, std::chrono::duration<double>(5.0))));
        cli.set_read_timeout(std::chrono::duration_cast<std::chrono::microseconds>(t));
        cli.set_write_timeout(std::chrono::duration_cast<std::chrono::microseconds>(t));
        got.emplace(method == "GET"   ? cli.Get(path)
                    : method == "PUT" ? cli.Put(path, b, "application/json")
                                      : cli.Delete(path));
        if (*got && ((*got)->status != 503 || i + 1 == urls.size())) break;
        if (!*got)
            why += fmt::format("{}{} ({})", why.empty() ? "" : ", ", url,
                               httplib::to_string(got->error()));
    }
    if (!got || !*got) {
        std::fprintf(stderr,
                     "weft: no control plane answered at %s; start weft-control or "
                     "give --control URL\n",
                     why.c_str());
        return std::nullopt;
    }
    const httplib::Response* res = &**got;
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
