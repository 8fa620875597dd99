#include "control/rest_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <functional>
#include <regex>
#include <thread>

#include <fmt/format.h>

#include "auth/http_access.h"
#include "control/api_error.h"

namespace weft::control {

namespace {

using handler = std::function<void(service&, const httplib::Request&, httplib::Response&,
                                   const std::vector<std::string>& params)>;

struct route {
    std::string method;
    std::string pattern;  // as in the OpenAPI document: /v1/nodes/{id}
    std::regex re;
    handler h;
};

void reply(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump(2) + "\n", "application/json");
}

void problem(httplib::Response& res, int status, const std::string& title,
             const std::string& detail) {
    res.status = status;
    json p = {{"type", "about:blank"}, {"title", title}, {"status", status}, {"detail", detail}};
    res.set_content(p.dump(2) + "\n", "application/problem+json");
}

std::regex to_regex(const std::string& pattern) {
    static const std::regex param(R"(\{[^}]+\})");
    return std::regex("^" + std::regex_replace(pattern, param, "([^/]+)") + "$");
}

int64_t int_param(const httplib::Request& req, const char* name, int64_t dflt, int64_t lo,
                  int64_t hi) {
    if (!req.has_param(name)) return dflt;
    std::string s = req.get_param_value(name);
    size_t used = 0;
    int64_t v = 0;
    try {
        v = std::stoll(s, &used);
    } catch (...) {
        used = 0;
    }
    if (s.empty() || used != s.size() || v < lo || v > hi)
        throw bad_request(
            fmt::format("query parameter \"{}\" must be an integer from {} to {}", name, lo, hi));
    return v;
}

// Every route, in the order of the OpenAPI document.
const std::vector<route>& table() {
    using S = service&;
    using P = const std::vector<std::string>&;
    using Q = const httplib::Request&;
    using R = httplib::Response&;
    static const std::vector<route> t = [] {
        std::vector<route> t;
        auto add = [&](const char* method, const std::string& pattern, handler h) {
            t.push_back({method, pattern, to_regex(pattern), std::move(h)});
        };
        add("GET", "/v1/openapi.json", [](S, Q, R res, P) {
            res.status = 200;
            res.set_content(openapi_json, "application/json");
        });
        add("GET", "/v1/status", [](S svc, Q, R res, P) { reply(res, 200, svc.status()); });
        add("GET", "/v1/nodes", [](S svc, Q, R res, P) { reply(res, 200, svc.list_nodes()); });
        add("PUT", "/v1/nodes/{id}", [](S svc, Q req, R res, P p) {
            auto [st, j] = svc.put_node(p[0], parse_body(req.body));
            reply(res, st, j);
        });
        add("GET", "/v1/nodes/{id}",
            [](S svc, Q, R res, P p) { reply(res, 200, svc.get_node(p[0])); });
        add("DELETE", "/v1/nodes/{id}", [](S svc, Q, R res, P p) {
            svc.delete_node(p[0]);
            res.status = 204;
        });
        add("GET", "/v1/hosts", [](S svc, Q, R res, P) { reply(res, 200, svc.list_hosts()); });
        add("PUT", "/v1/hosts/{id}", [](S svc, Q req, R res, P p) {
            auto [st, j] = svc.put_host(p[0], parse_body(req.body));
            reply(res, st, j);
        });
        add("GET", "/v1/hosts/{id}",
            [](S svc, Q, R res, P p) { reply(res, 200, svc.get_host(p[0])); });
        add("DELETE", "/v1/hosts/{id}", [](S svc, Q, R res, P p) {
            svc.delete_host(p[0]);
            res.status = 204;
        });
        add("GET", "/v1/pools", [](S svc, Q, R res, P) { reply(res, 200, svc.list_pools()); });
        add("PUT", "/v1/pools/{name}", [](S svc, Q req, R res, P p) {
            auto [st, j] = svc.put_pool(p[0], parse_body(req.body));
            reply(res, st, j);
        });
        add("GET", "/v1/pools/{name}",
            [](S svc, Q, R res, P p) { reply(res, 200, svc.get_pool(p[0])); });
        add("DELETE", "/v1/pools/{name}", [](S svc, Q, R res, P p) {
            svc.delete_pool(p[0]);
            res.status = 204;
        });
        add("GET", "/v1/volumes", [](S svc, Q, R res, P) { reply(res, 200, svc.list_volumes()); });
        add("PUT", "/v1/volumes/{id}", [](S svc, Q req, R res, P p) {
            auto [st, j] = svc.put_volume(p[0], parse_body(req.body));
            reply(res, st, j);
        });
        add("GET", "/v1/volumes/{id}",
            [](S svc, Q, R res, P p) { reply(res, 200, svc.get_volume(p[0])); });
        add("DELETE", "/v1/volumes/{id}", [](S svc, Q, R res, P p) {
            svc.delete_volume(p[0]);
            res.status = 204;
        });
        add("PUT", "/v1/volumes/{id}/size", [](S svc, Q req, R res, P p) {
            reply(res, 200, svc.resize_volume(p[0], parse_body(req.body)));
        });
        add("PUT", "/v1/volumes/{id}/publish", [](S svc, Q req, R res, P p) {
            reply(res, 200, svc.publish(p[0], parse_body(req.body)));
        });
        add("DELETE", "/v1/volumes/{id}/publish", [](S svc, Q, R res, P p) {
            svc.unpublish(p[0]);
            res.status = 204;
        });
        add("GET", "/v1/snapshots", [](S svc, Q req, R res, P) {
            std::string vol = req.has_param("volume") ? req.get_param_value("volume") : "";
            reply(res, 200, svc.list_snapshots(vol));
        });
        add("PUT", "/v1/snapshots/{id}", [](S svc, Q req, R res, P p) {
            auto [st, j] = svc.put_snapshot(p[0], parse_body(req.body));
            reply(res, st, j);
        });
        add("GET", "/v1/snapshots/{id}",
            [](S svc, Q, R res, P p) { reply(res, 200, svc.get_snapshot(p[0])); });
        add("DELETE", "/v1/snapshots/{id}", [](S svc, Q, R res, P p) {
            svc.delete_snapshot(p[0]);
            res.status = 204;
        });
        add("GET", "/v1/events", [](S svc, Q req, R res, P) {
            int64_t since = int_param(req, "since", 0, 0, INT64_MAX);
            auto limit = unsigned(int_param(req, "limit", 100, 1, 1000));
            reply(res, 200, svc.events(since, limit));
        });
        return t;
    }();
    return t;
}

void dispatch(service& svc, const httplib::Request& req, httplib::Response& res) {
    bool path_known = false;
    for (auto& r : table()) {
        std::smatch m;
        if (!std::regex_match(req.path, m, r.re)) continue;
        path_known = true;
        if (r.method != req.method) continue;
        std::vector<std::string> params;
        for (size_t i = 1; i < m.size(); ++i) params.push_back(m[i]);
        try {
            r.h(svc, req, res, params);
        } catch (const api_error& e) {
            problem(res, e.status, e.title, e.what());
        } catch (const store_error& e) {
            problem(res, 503, "Service Unavailable", e.what());
        } catch (const std::exception& e) {
            spdlog::error("{} {}: {}", req.method, req.path, e.what());
            problem(res, 500, "Internal Server Error", e.what());
        }
        return;
    }
    if (path_known)
        problem(res, 405, "Method Not Allowed",
                fmt::format("{} is not allowed on {}", req.method, req.path));
    else
        problem(res, 404, "Not Found", "no such path: " + req.path);
}

constexpr const char* forwarded_header = "X-Weft-Forwarded-By";

// A standby's answer to a request that changes something: the leader's.
// The caller's token goes along (the leader admits and audits the caller);
// `peers` carries the CA and this instance's certificate for an HTTPS leader.
void forward(const leadership& lead, const auth::http_client_access& peers,
             const httplib::Request& req, httplib::Response& res) {
    if (req.has_header(forwarded_header)) {
        problem(res, 503, "Service Unavailable",
                fmt::format("this weft-control is not the leader either (forwarded by {}): the "
                            "leadership is changing, try again",
                            req.get_header_value(forwarded_header)));
        return;
    }
    std::string url = lead.leader_url();
    if (url.empty()) {
        problem(res, 503, "Service Unavailable",
                "no weft-control leads yet (an election is under way): try again in a few "
                "seconds");
        return;
    }
    auto c = peers.client(url);
    if (!c) {
        problem(res, 503, "Service Unavailable",
                fmt::format("the leader's URL {} is not one this instance can reach", url));
        return;
    }
    httplib::Client& cli = *c;
    cli.set_connection_timeout(std::chrono::seconds(2));
    cli.set_read_timeout(std::chrono::seconds(120));  // creates wait for engines
    cli.set_write_timeout(std::chrono::seconds(10));
    httplib::Headers h{{forwarded_header, "standby"}};
    // The caller's token goes to the leader only where no one else reads it:
    // over HTTPS, or on this machine.
    if (req.has_header("Authorization") &&
        (url.starts_with("https://") || auth::is_loopback_url(url)))
        h.emplace("Authorization", req.get_header_value("Authorization"));
    std::string path = req.target.empty() ? req.path : req.target;
    httplib::Result r = req.method == "PUT"      ? cli.Put(path, h, req.body, "application/json")
                        : req.method == "POST"   ? cli.Post(path, h, req.body, "application/json")
                        : req.method == "PATCH"  ? cli.Patch(path, h, req.body, "application/json")
                        : req.method == "DELETE" ? cli.Delete(path, h)
                                                 : cli.Get(path, h);
    if (!r) {
        problem(res, 503, "Service Unavailable",
                fmt::format("the leader {} did not answer ({}): try again", url,
                            httplib::to_string(r.error())));
        return;
    }
    res.status = r->status;
    res.set_content(r->body, r->get_header_value("Content-Type"));
}

// The audit line of a request: every change (whatever answered it: this
// instance or, forwarded, the leader) and every request refused at the door.
void audit(const auth::http_server_access& access, const httplib::Request& req,
           const httplib::Response& res) {
    if (req.method == "GET" && res.status != 401) return;
    // An engine's heartbeat (a node already registered) changes nothing
    // worth a line every beat; its first registration (201) is one.
    if (req.method == "PUT" && req.path.starts_with("/v1/nodes/") && res.status == 200) return;
    std::string who, refusal;
    access.admit(req, &who, &refusal);  // only to name the caller
    // The path is the client's (URL-decoded): escaped, so that it cannot
    // end the line and forge another.
    spdlog::info("audit: {} {} {} -> {}{}", auth::log_escape(who), auth::log_escape(req.method),
                 auth::log_escape(req.path), res.status,
                 req.has_header(forwarded_header) ? " (forwarded)" : "");
}

}  // namespace

struct rest_server::impl {
    service& svc;
    leadership lead;
    std::shared_ptr<const auth::http_server_access> access;
    std::shared_ptr<const auth::http_client_access> peers;
    std::unique_ptr<httplib::Server> server;
    std::thread thread;

    impl(service& s, leadership l, std::shared_ptr<const auth::http_server_access> a,
         std::shared_ptr<const auth::http_client_access> p)
        : svc(s), lead(std::move(l)), access(std::move(a)), peers(std::move(p)) {
        std::string why;
        server = access->make_server(&why);
        if (!server) throw std::runtime_error(why);
        auto& http = *server;
        auto h = [this](const httplib::Request& req, httplib::Response& res) {
            if (req.method != "GET" && !lead.leads()) {
                forward(lead, *peers, req, res);
                return;
            }
            dispatch(svc, req, res);
        };
        // Every request is admitted first: a 401 problem when it lacks a
        // token this instance knows.
        http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
            std::string who, refusal;
            if (access->admit(req, &who, &refusal))
                return httplib::Server::HandlerResponse::Unhandled;
            res.set_header("WWW-Authenticate", "Bearer");
            problem(res, 401, "Unauthorized", refusal);
            return httplib::Server::HandlerResponse::Handled;
        });
        http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
            audit(*access, req, res);
        });
        http.Get(".*", h);
        http.Put(".*", h);
        http.Post(".*", h);
        http.Delete(".*", h);
        http.Patch(".*", h);
        http.set_payload_max_length(1 << 20);
        // Mutating requests wait for one another (and for engines): enough
        // threads that engines' heartbeats still get through meanwhile.
        http.new_task_queue = [] { return new httplib::ThreadPool(32); };
        // Answers are written in pieces (headers, body): without this, Nagle
        // and the client's delayed ACK add tens of milliseconds to each.
        http.set_tcp_nodelay(true);
        // What the HTTP library refuses by itself (a body too large, a
        // request it cannot parse) is a problem too.
        http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
            if (!res.body.empty()) return;
            const char* title = res.status == 400   ? "Bad Request"
                                : res.status == 413 ? "Payload Too Large"
                                : res.status == 414 ? "URI Too Long"
                                                    : "Error";
            problem(res, res.status, title,
                    fmt::format("the HTTP request was refused: {} {}", res.status, title));
        });
    }
};

rest_server::rest_server(service& s, leadership lead,
                         std::shared_ptr<const auth::http_server_access> access,
                         std::shared_ptr<const auth::http_client_access> peers)
    : impl_(std::make_unique<impl>(s, std::move(lead), std::move(access), std::move(peers))) {}

rest_server::~rest_server() {
    stop();
}

std::string rest_server::start(const std::string& addr) {
    auto colon = addr.rfind(':');
    if (colon == std::string::npos) throw std::runtime_error(addr + " is not IP:PORT");
    std::string host = addr.substr(0, colon);
    int port = std::stoi(addr.substr(colon + 1));
    if (port == 0) {
        port = impl_->server->bind_to_any_port(host);
        if (port < 0) throw std::runtime_error("cannot listen on " + addr);
    } else if (!impl_->server->bind_to_port(host, port)) {
        throw std::runtime_error(fmt::format("cannot listen on {}: {}", addr, strerror(errno)));
    }
    impl_->thread = std::thread([this] { impl_->server->listen_after_bind(); });
    return fmt::format("{}:{}", host, port);
}

void rest_server::stop() {
    if (!impl_) return;
    impl_->server->stop();
    if (impl_->thread.joinable()) impl_->thread.join();
}

std::vector<std::string> rest_server::routes() {
    std::vector<std::string> out;
    for (auto& r : table()) out.push_back(r.method + " " + r.pattern);
    return out;
}

}  // namespace weft::control
