#include "control/rest_client.h"

#include <httplib.h>

#include <fmt/format.h>

namespace weft::control {

rest_client::rest_client(const std::string& urls, std::chrono::duration<double> timeout,
                         std::shared_ptr<const auth::http_client_access> access)
    : timeout_(timeout), access_(std::move(access)) {
    if (!access_) access_ = auth::http_client_access::none();
    for (size_t at = 0; at <= urls.size();) {
        size_t comma = urls.find(',', at);
        if (comma == std::string::npos) comma = urls.size();
        std::string u = urls.substr(at, comma - at);
        if (!u.empty()) urls_.push_back(u.find("://") == std::string::npos ? "http://" + u : u);
        at = comma + 1;
    }
    if (urls_.empty()) urls_.push_back(default_control_url);
}

rest_answer rest_client::request(const std::string& method, const std::string& path,
                                 const nlohmann::json* body) const {
    using std::chrono::duration_cast;
    using us = std::chrono::microseconds;
    rest_answer a;
    std::string b = body ? body->dump() : std::string();
    std::string why;
    for (size_t i = 0; i < urls_.size(); ++i) {
        const std::string& url = urls_[i];
        auto c = access_->client(url);
        if (!c) {
            why += fmt::format("{}{} (not a control-plane URL, like http://HOST:PORT)",
                               why.empty() ? "" : ", ", url);
            continue;
        }
        httplib::Client& cli = *c;
        cli.set_connection_timeout(
            duration_cast<us>(std::min(timeout_, std::chrono::duration<double>(5.0))));
        cli.set_read_timeout(duration_cast<us>(timeout_));
        cli.set_write_timeout(duration_cast<us>(timeout_));
        httplib::Result got = method == "GET"   ? cli.Get(path)
                              : method == "PUT" ? cli.Put(path, b, "application/json")
                                                : cli.Delete(path);
        if (!got) {
            why += fmt::format("{}{} ({})", why.empty() ? "" : ", ", url,
                               httplib::to_string(got.error()));
            continue;
        }
        if (got->status == 503 && i + 1 < urls_.size()) continue;
        a.reached = true;
        a.status = got->status;
        if (!got->body.empty()) {
            a.body = nlohmann::json::parse(got->body, nullptr, false);
            if (a.body.is_discarded()) {
                a.body = nlohmann::json::object();
                a.detail = fmt::format("the control plane answered {} with something not JSON",
                                       got->status);
                if (a.status < 300) a.status = 502;
                return a;
            }
        }
        if (a.body.is_null()) a.body = nlohmann::json::object();
        if (a.status >= 300)
            a.detail = a.body.contains("detail") && a.body["detail"].is_string()
                           ? a.body["detail"].get<std::string>()
                           : fmt::format("HTTP {}", a.status);
        return a;
    }
    a.detail = "no control plane answered at " + why;
    return a;
}

}  // namespace weft::control
