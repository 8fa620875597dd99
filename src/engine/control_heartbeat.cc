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
    httplib::Client cli(r_.control_url);
    cli.set_connection_timeout(std::chrono::seconds(2));
    cli.set_read_timeout(std::chrono::seconds(5));
    auto res = cli.Put("/v1/nodes/" + r_.node_id, body.dump(), "application/json");
    static thread_local bool failing = false;
    if (!res || res->status >= 300) {
        if (!failing)
            spdlog::warn("control plane {}: registration of node {} failed: {}", r_.control_url,
                         r_.node_id,
                         res ? std::to_string(res->status) + " " + res->body
                             : httplib::to_string(res.error()));
        failing = true;
        return false;
    }
    if (failing || res->status == 201)
        spdlog::info("control plane {}: node {} registered", r_.control_url, r_.node_id);
    failing = false;
    return true;
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
