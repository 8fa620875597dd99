#include "engine/control_heartbeat.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

namespace weft::engine {

control_heartbeat::control_heartbeat(registration r) : r_(std::move(r)) {
    thread_ = std::thread([this] { run(); });
}

control_heartbeat::~control_heartbeat() {
    {
        std::lock_guard g(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

bool control_heartbeat::beat() {
    nlohmann::json body = {{"api", r_.api},
                           {"nvmf", r_.nvmf},
                           {"host_nqn", r_.host_nqn},
                           {"labels", r_.labels},
                           {"heartbeat_ms", r_.interval.count()}};
    std::string why;
    for (size_t k = 0; k < r_.control_urls.size(); ++k) {
        size_t i = (current_ + k) % r_.control_urls.size();
        const std::string& url = r_.control_urls[i];
        httplib::Client cli(url);
        cli.set_connection_timeout(std::chrono::seconds(2));
        cli.set_read_timeout(std::chrono::seconds(5));
        auto res = cli.Put("/v1/nodes/" + r_.node_id, body.dump(), "application/json");
        if (res && res->status < 300) {
            if (failing_ || res->status == 201 || i != current_)
                spdlog::info("control plane {}: node {} registered", url, r_.node_id);
            current_ = i;
            failing_ = false;
            return true;
        }
        why += fmt::format(
            "{}{}: {}", why.empty() ? "" : "; ", url,
            res ? std::to_string(res->status) + " " + res->body : httplib::to_string(res.error()));
        // A 4xx is this registration's fault: another instance would say the same.
        if (res && res->status < 500) break;
    }
    if (!failing_) spdlog::warn("registration of node {} failed: {}", r_.node_id, why);
    failing_ = true;
    return false;
}

void control_heartbeat::run() {
    std::unique_lock lk(mu_);
    while (!stop_) {
        lk.unlock();
        beat();
        lk.lock();
        cv_.wait_for(lk, r_.interval, [this] { return stop_; });
    }
}

}  // namespace weft::engine
