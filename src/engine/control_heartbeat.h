// An engine's registration with weft-control: PUT /v1/nodes/{id} with its
// endpoints, host NQN and labels, repeated every heartbeat interval on a
// thread of its own (the control plane marks a node offline after a few
// missed beats). The data path never waits for it: a control plane that is
// down only costs log lines, one per outage.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace weft::engine {

struct registration {
    // http://HOST:PORT; several: instances sharing one etcd, tried in turn
    // from the last one that answered.
    std::vector<std::string> control_urls;
    std::string node_id;
    std::string api;                // gRPC endpoint, host:port
    std::vector<std::string> nvmf;  // NVMe/TCP listeners, host:port
    std::string host_nqn;
    std::map<std::string, std::string> labels;
    std::chrono::milliseconds interval{2000};
};

class control_heartbeat {
  public:
    explicit control_heartbeat(registration r);
    ~control_heartbeat();  // stops the thread

  private:
    void run();
    bool beat();

    registration r_;
    size_t current_ = 0;    // the URL that answered last
    bool failing_ = false;  // one log line per outage
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace weft::engine
