// The node plugin's registration of its node as a weft host (PUT
// /v1/hosts/<node id> with the host NQN it connects as): a node that runs
// pods but no engine is then a node that volumes can be published to, and
// ControllerPublishVolume can still tell it from a node that does not exist.
//
// Contract: a thread registers at once and again every `period` (a control
// plane that lost its store learns the host again; an unchanged
// registration changes nothing there); a failure is logged, and tried again
// every few seconds until it succeeds. The destructor stops the thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "control/rest_client.h"

namespace weft::csi {

class host_registration {
  public:
    host_registration(control::rest_client& control, std::string node_id,
                      std::chrono::seconds period = std::chrono::minutes(5));
    ~host_registration();
    host_registration(const host_registration&) = delete;
    host_registration& operator=(const host_registration&) = delete;

  private:
    bool register_once(bool warn);
    void run();

    control::rest_client& control_;
    std::string node_id_;
    std::chrono::seconds period_;
    std::mutex m_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread t_;
};

}  // namespace weft::csi
