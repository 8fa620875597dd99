// An engine's registration with weft-control: PUT /v1/nodes/{id} with its
// endpoints, host NQN and labels, repeated every heartbeat interval on a
// thread of its own (the control plane marks a node offline after a few
// missed beats). The data path never waits for it: a control plane that is
// down only costs log lines, one per outage.
//
// Controller IDs: an engine given --cntlid-range sends it (the control plane
// refuses one that overlaps another node's); else the control plane assigns
// the node a range, and every answer that names a range other than the one
// in use is handed to on_cntlid_range (on the heartbeat's thread).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "auth/http_access.h"

namespace weft::engine {

struct registration {
    // http(s)://HOST:PORT; several: instances sharing one etcd, tried in turn
    // from the last one that answered.
    std::vector<std::string> control_urls;
    std::string node_id;
    std::string api;                // gRPC endpoint, host:port
    std::vector<std::string> nvmf;  // NVMe/TCP listeners, host:port
    std::string host_nqn;
    std::map<std::string, std::string> labels;
    std::chrono::milliseconds interval{2000};
    std::optional<std::pair<uint16_t, uint16_t>> cntlid_range;  // the engine's own
    std::pair<uint16_t, uint16_t> cntlid_in_use{0, 0};          // e.g. one saved earlier
    std::function<void(uint16_t, uint16_t)> on_cntlid_range;
    // HTTPS and a token for a control plane that requires them (null: none).
    std::shared_ptr<const auth::http_client_access> access;
};

class control_heartbeat {
  public:
    explicit control_heartbeat(registration r);
    ~control_heartbeat();  // stops the thread

  private:
    void run();
    bool beat();
    void take_cntlid_range(const std::string& answer);

    registration r_;
    size_t current_ = 0;    // the URL that answered last
    bool failing_ = false;  // one log line per outage
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace weft::engine
