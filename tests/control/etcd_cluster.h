// A real 3-member etcd cluster on loopback for the control plane's tests:
// free ports, data in a temporary directory removed at the end, members that
// can be killed (SIGKILL) and started again from their data.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace weft::control::test {

class etcd_cluster {
  public:
    static constexpr int members = 3;

    // Starts the members and waits until every one answers a linearizable
    // read. Throws std::runtime_error with a sentence (and the end of the
    // member's log) when that fails.
    explicit etcd_cluster(std::string etcd_binary);
    ~etcd_cluster();
    etcd_cluster(const etcd_cluster&) = delete;
    etcd_cluster& operator=(const etcd_cluster&) = delete;

    // "http://127.0.0.1:port,..." for every member, or member i's alone.
    std::string endpoints() const;
    std::string endpoint(int i) const;

    void kill(int i);     // SIGKILL, and reaped
    void restart(int i);  // from its data; returns once the cluster answers through it
    bool running(int i) const { return pid_[i] > 0; }
    // Every running member answers a linearizable read (so: a leader and a
    // quorum). Throws std::runtime_error after timeout.
    void wait_healthy(std::chrono::milliseconds timeout = std::chrono::seconds(20));

  private:
    void spawn(int i);
    std::string log_tail(int i) const;

    std::string binary_, dir_;
    std::vector<int> client_port_, peer_port_;
    std::vector<pid_t> pid_;
};

// The cluster that the whole test binary shares, started on first use (tests
// that do not use etcd do not pay for it) and stopped when the tests end.
// Throws std::runtime_error when etcd is missing (saying to run
// scripts/setup.sh) or does not start; the test using it then fails.
etcd_cluster& shared_etcd();

// Members killed by a test are started again when it ends, pass or fail.
struct restart_on_exit {
    etcd_cluster& c;
    ~restart_on_exit();
};

}  // namespace weft::control::test
