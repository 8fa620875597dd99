#include "csi/host_registration.h"

#include <spdlog/spdlog.h>

#include <regex>

#include "csi/names.h"

namespace weft::csi {

host_registration::host_registration(control::rest_client& control, std::string node_id,
                                     std::chrono::seconds period)
    : control_(control), node_id_(std::move(node_id)), period_(period) {
    // weft-control's ids (and a URL path segment): refused there for good.
    static const std::regex id_re("^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$");
    if (!std::regex_match(node_id_, id_re)) {
        spdlog::error(
            "node {} cannot register with weft-control: a host id is 1 to 63 letters, "
            "digits, '.', '_' or '-' (ControllerPublishVolume to this node is NOT_FOUND "
            "unless it runs an engine)",
            node_id_);
        return;
    }
    t_ = std::thread([this] { run(); });
}

host_registration::~host_registration() {
    {
        std::lock_guard g(m_);
        stop_ = true;
    }
    cv_.notify_all();
    if (t_.joinable()) t_.join();
}

bool host_registration::register_once(bool warn) {
    nlohmann::json body = {{"host_nqn", host_nqn_of(node_id_)}};
    auto a = control_.request("PUT", "/v1/hosts/" + node_id_, &body);
    if (a.reached && (a.status == 200 || a.status == 201)) {
        if (a.status == 201)
            spdlog::info("registered node {} with weft-control as host {}", node_id_,
                         body["host_nqn"].get<std::string>());
        return true;
    }
    if (warn)
        spdlog::warn("registering node {} with weft-control: {}{} (trying again every 5 s)",
                     node_id_, a.reached ? "HTTP " + std::to_string(a.status) + ": " : "",
                     a.detail);
    return false;
}

void host_registration::run() {
    bool failing = false;
    std::unique_lock g(m_);
    while (!stop_) {
        g.unlock();
        bool ok = register_once(!failing);
        g.lock();
        // Tried again soon after a failure (warned about once), else now and then.
        if (ok && failing) spdlog::info("node {} is registered again", node_id_);
        failing = !ok;
        cv_.wait_for(g, ok ? period_ : std::chrono::seconds(5), [&] { return stop_; });
    }
}

}  // namespace weft::csi
