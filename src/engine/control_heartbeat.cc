#include "engine/control_heartbeat.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

namespace weft::engine {

control_heartbeat::control_heartbeat(registration r) : r_(std::move(r)) {
    if (!r_.access) r_.access = auth::http_client_access::none();
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
    if (r_.cntlid_range) body["cntlid_range"] = {r_.cntlid_range->first, r_.cntlid_range->second};
    std::string why;
    for (size_t k = 0; k < r_.control_urls.size(); ++k) {
        size_t i = (current_ + k) % r_.control_urls.size();
        const std::string& url = r_.control_urls[i];
        auto c = r_.access->client(url);
        if (!c) {
            why += fmt::format("{}{}: not an http(s):// URL", why.empty() ? "" : "; ", url);
            continue;
        }
        httplib::Client& cli = *c;
        cli.set_connection_timeout(std::chrono::seconds(2));
        cli.set_read_timeout(std::chrono::seconds(5));
        auto res = cli.Put("/v1/nodes/" + r_.node_id, body.dump(), "application/json");
        if (res && res->status < 300) {
            if (failing_ || res->status == 201 || i != current_)
                spdlog::info("control plane {}: node {} registered", url, r_.node_id);
            current_ = i;
            failing_ = false;
            take_cntlid_range(res->body);
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

void control_heartbeat::take_cntlid_range(const std::string& answer) {
    if (r_.cntlid_range || !r_.on_cntlid_range) return;
    auto j = nlohmann::json::parse(answer, nullptr, false);
    if (j.is_discarded() || !j.contains("cntlid_range") || !j["cntlid_range"].is_array() ||
        j["cntlid_range"].size() != 2 || !j["cntlid_range"][0].is_number_unsigned() ||
        !j["cntlid_range"][1].is_number_unsigned())
        return;
    auto lo = j["cntlid_range"][0].get<uint64_t>(), hi = j["cntlid_range"][1].get<uint64_t>();
    if (lo < 1 || hi > 0xffef || lo > hi) return;
    std::pair<uint16_t, uint16_t> r{uint16_t(lo), uint16_t(hi)};
    if (r == r_.cntlid_in_use) return;
    spdlog::info("control plane: node {} hands out controller IDs {}-{}", r_.node_id, lo, hi);
    r_.cntlid_in_use = r;
    r_.on_cntlid_range(r.first, r.second);
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
