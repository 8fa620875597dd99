// An NVM subsystem (or the discovery subsystem): identity, the hosts it
// admits, its namespaces and its live controllers.
//
// Shared by every reactor. Configuration changes (namespaces added, removed,
// resized; hosts allowed) are rare and take a mutex; the I/O path reads an
// immutable snapshot of the namespace table and only compares a generation
// number per command.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "nvme/log_pages.h"
#include "nvmf/ns.h"
#include "runtime/result.h"

namespace weft::nvmf {

class controller;

enum class subsystem_kind { nvm, discovery };

// NSID-ordered, immutable once published.
using ns_table = std::map<uint32_t, std::shared_ptr<ns>>;

class subsystem {
  public:
    static constexpr uint32_t max_namespaces = 1024;  // Identify Controller NN

    subsystem(std::string nqn, subsystem_kind kind, std::string serial, std::string model,
              uint16_t min_cntlid = 1, uint16_t max_cntlid = 0xffef);

    const std::string& nqn() const { return nqn_; }
    subsystem_kind kind() const { return kind_; }
    const std::string& serial() const { return serial_; }
    const std::string& model() const { return model_; }

    // Host access: any host, or only those listed.
    void allow_any_host(bool any);
    void allow_host(const std::string& hostnqn);
    // Replaces the access policy (hosts already connected stay connected).
    void set_access(bool any, std::set<std::string> hosts);
    bool host_allowed(const std::string& hostnqn) const;

    // Adds a namespace (nsid 0: the lowest free one); returns its NSID.
    result<uint32_t> add_namespace(uint32_t nsid, std::shared_ptr<bdev::bdev> dev, ns_ids ids);
    result<void> remove_namespace(uint32_t nsid);
    std::shared_ptr<const ns_table> namespaces() const;
    uint64_t ns_generation() const { return ns_gen_.load(std::memory_order_acquire); }

    // Controllers, for Connect of I/O queues and for namespace change events.
    uint16_t register_controller(std::shared_ptr<controller> c);  // returns the CNTLID; 0 if full
    void unregister_controller(uint16_t cntlid);
    std::shared_ptr<controller> find_controller(uint16_t cntlid) const;
    // Tells every controller that `nsid` changed (added, removed, resized).
    void notify_namespace_changed(uint32_t nsid);

    // Asymmetric Namespace Access: every namespace is in ANA group 1, and
    // this target's controllers report one state for it: the state of this
    // path (this engine) to the subsystem; another engine serving the same
    // NQN reports its own. A change is counted and announced to every
    // controller (an ANA change event, Base 8.1.3); I/O through a path that
    // is not optimized or non-optimized fails with a path status that the
    // host retries on another path. Any reactor.
    static constexpr uint32_t ana_group = 1;
    void set_ana_state(nvme::ana_state s);
    nvme::ana_state ana_state() const { return ana_state_.load(std::memory_order_acquire); }
    uint64_t ana_change_count() const { return ana_chgcnt_.load(std::memory_order_acquire); }

    // The subsystem is being taken away (its share removed): new Connects
    // are refused by the target and every controller is ended, which closes
    // its connections, as Linux nvmet does; the host then reconnects or its
    // multipath moves to another path. A command a removed subsystem cannot
    // serve gets no answer at all (its connection closes instead), so that no
    // host takes an error status for lost data. requires: on a reactor.
    void remove();
    bool removed() const { return removed_.load(std::memory_order_acquire); }

  private:
    void publish(ns_table t);  // requires: mutex_ held
    std::vector<std::shared_ptr<controller>> live_controllers() const;

    const std::string nqn_;
    const subsystem_kind kind_;
    const std::string serial_;
    const std::string model_;

    mutable std::mutex mutex_;
    bool any_host_ = true;
    std::set<std::string> hosts_;
    std::shared_ptr<const ns_table> table_;
    std::atomic<uint64_t> ns_gen_{0};
    std::atomic<bool> removed_{false};
    std::atomic<nvme::ana_state> ana_state_{nvme::ana_state::optimized};
    std::atomic<uint64_t> ana_chgcnt_{0};
    std::map<uint16_t, std::weak_ptr<controller>> controllers_;
    const uint16_t min_cntlid_, max_cntlid_;
    uint16_t next_cntlid_;
    std::map<uint32_t, uint64_t> resize_listener_ids_;
};

}  // namespace weft::nvmf
