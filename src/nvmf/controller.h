// An NVMe controller of the dynamic model (NVMe-oF 1.1, 4.x): created by the
// Connect of an admin queue, joined by the Connects of its I/O queues, gone
// when the admin queue goes or the keep-alive timer expires.
//
// Lives on the reactor of its admin queue ("home"); its I/O queues may be on
// other reactors and only read what is immutable or atomic here. Cross-
// reactor calls: queue reactor -> home (never the reverse while waiting), so
// they form a DAG.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <coroutine>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "nvme/fabrics.h"
#include "nvmf/host_auth.h"
#include "nvmf/request.h"
#include "nvmf/subsystem.h"
#include "runtime/abort.h"
#include "runtime/task.h"

namespace weft::nvmf {

class target;

// Limits a controller advertises; set by the target's configuration.
struct controller_limits {
    uint16_t max_queue_depth = 128;    // MQES + 1 and MAXCMD
    uint16_t max_io_queues = 64;       // Number of Queues feature
    uint32_t in_capsule_data = 8192;   // IOCCSZ = (64 + this) / 16
    uint32_t max_transfer = 1u << 20;  // MDTS, a power of two >= 4 KiB
    // The CNTLIDs this target gives out. Engines that serve the same
    // subsystem NQN (a volume's paths for multipath) need disjoint ranges:
    // a host refuses a second controller with a CNTLID it already has.
    uint16_t min_cntlid = 1;
    uint16_t max_cntlid = 0xffef;
};

// A queue of the controller as the transport sees it: closed from the
// controller when the controller goes away.
class queue_link {
  public:
    virtual ~queue_link() = default;
    // requires: called on the queue's own reactor.
    virtual void close_from_controller() = 0;
};

class controller : public std::enable_shared_from_this<controller> {
  public:
    controller(target& tgt, std::shared_ptr<subsystem> ss, std::string hostnqn, host_id hostid,
               uint32_t kato_ms, controller_limits limits, unsigned home_reactor);
    ~controller();

    uint16_t cntlid() const { return cntlid_; }
    void set_cntlid(uint16_t id) { cntlid_ = id; }
    subsystem& subsys() { return *subsys_; }
    const std::shared_ptr<subsystem>& subsys_ptr() const { return subsys_; }
    const std::string& hostnqn() const { return hostnqn_; }
    const host_id& hostid() const { return hostid_; }
    // The DH-HMAC-CHAP secrets its queues authenticate with (null: none):
    // the host's at the admin queue's Connect, renewed when the admin queue
    // re-authenticates; I/O queues take them when they connect. Any reactor.
    void set_host_auth(std::shared_ptr<const host_auth> a) {
        std::lock_guard lk(auth_mutex_);
        auth_ = std::move(a);
    }
    std::shared_ptr<const host_auth> host_auth_config() const {
        std::lock_guard lk(auth_mutex_);
        return auth_;
    }
    // Its admin queue made a TLS PSK (secure channel concatenation) on a
    // plain connection: the host is to come back over TLS with it, as a new
    // controller; this one takes no I/O queues. Any reactor.
    void set_concatenation_only() { concat_only_.store(true, std::memory_order_release); }
    bool concatenation_only() const { return concat_only_.load(std::memory_order_acquire); }
    unsigned home() const { return home_; }
    const controller_limits& limits() const { return limits_; }
    bool enabled() const { return ready_.load(std::memory_order_acquire); }
    bool is_discovery() const { return subsys_->kind() == subsystem_kind::discovery; }

    // Starts the keep-alive watchdog (on home) unless KATO is 0 or it runs.
    // Called after Connect, and again when Set Features changes KATO.
    void start();
    // Executes an admin command (on home).
    task<void> execute_admin(request& r);

    // I/O queues: registered by Connect, on any reactor (thread-safe).
    nvme::status add_io_queue(uint16_t qid, uint16_t sqsize, unsigned reactor,
                              std::weak_ptr<queue_link> link);
    void remove_io_queue(uint16_t qid);
    void set_admin_link(std::weak_ptr<queue_link> link) { admin_link_ = std::move(link); }

    // From any reactor: records the change and raises an event if asked for.
    void namespace_changed(uint32_t nsid);
    // From any reactor: the subsystem's ANA state changed (an event if asked for).
    void ana_changed();
    // Tears the controller down: queues closed, events and watchdog cancelled,
    // CNTLID released. Idempotent; on home.
    void shutdown(const char* why);
    // Ended, or its subsystem removed: a command that fails now is not
    // answered (its queue closes), since the failure is the path going away,
    // not the data. Any reactor.
    bool gone() const { return shut_down_.load(std::memory_order_acquire) || subsys_->removed(); }

    // Counters for the SMART log, updated by I/O queues (blocks in 512 B units).
    std::atomic<uint64_t> blocks_read{0}, blocks_written{0}, read_cmds{0}, write_cmds{0};

  private:
    mutable std::mutex auth_mutex_;
    std::shared_ptr<const host_auth> auth_;
    std::atomic<bool> concat_only_{false};
    void property_get(request& r);
    void property_set(request& r);
    void identify(request& r);
    void identify_controller(request& r);
    void get_log_page(request& r);
    void get_features(request& r);
    void set_features(request& r);
    task<void> async_event(request& r);
    void deliver_events();
    // Runs fn(controller) on home, now when called there (if still alive).
    void on_home(void (*fn)(controller&, uint32_t), uint32_t arg);
    std::vector<std::byte> ana_log_page(bool groups_only) const;
    void discovery_log(request& r, uint64_t offset);
    task<void> keep_alive_watchdog();

    target& target_;
    std::shared_ptr<subsystem> subsys_;
    const std::string hostnqn_;
    const host_id hostid_;
    const controller_limits limits_;
    const unsigned home_;
    uint16_t cntlid_ = 0;

    // Registers and features (home only).
    nvme::cc_reg cc_;
    uint32_t csts_ = 0;
    std::atomic<bool> ready_{false};
    uint32_t kato_ms_;
    uint32_t aec_ = 0;
    uint32_t num_queues_granted_ = 0;  // Number of Queues: 0 until set; queues_mutex_
    bool vwc_enabled_ = true;
    uint32_t arbitration_ = 0, power_state_ = 0, temp_threshold_ = 0x0157, error_recovery_ = 0;
    std::chrono::steady_clock::time_point last_keep_alive_;

    // Events (home only).
    struct aer_waiter {
        std::coroutine_handle<> h;
        uint32_t dw0 = 0;
        bool cancelled = false;
    };
    std::deque<aer_waiter*> aers_;
    std::vector<uint32_t> changed_nsids_;  // Changed Namespace List contents
    bool changed_overflow_ = false;
    // Per event kind: a notice not yet reported by an AER completion, and
    // one reported and not yet read by Get Log Page (without RAE).
    enum event_kind { ev_namespace = 0, ev_ana = 1, ev_kinds = 2 };
    std::array<bool, ev_kinds> event_pending_{};
    std::array<bool, ev_kinds> event_masked_{};

    abort_source stop_;
    std::atomic<bool> shut_down_{false};  // set on home, read anywhere (gone())
    bool watchdog_running_ = false;       // keep_alive_watchdog() is alive (home only)

    // Queues (any reactor).
    std::mutex queues_mutex_;
    struct io_queue_entry {
        uint16_t qid;
        unsigned reactor;
        std::weak_ptr<queue_link> link;
    };
    std::vector<io_queue_entry> io_queues_;
    std::weak_ptr<queue_link> admin_link_;
};

}  // namespace weft::nvmf
