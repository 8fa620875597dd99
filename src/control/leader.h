// Leader election over etcd, so that of several weft-control instances
// sharing one etcd, one acts and the others stand by.
//
// Contract:
//  - An instance grants itself a lease (ttl, 3 s by default) and keeps it
//    alive from a background thread (a keepalive every ttl/3).
//  - It campaigns with one etcd transaction: "if <prefix>leader does not
//    exist, create it = my id, attached to my lease". Whoever created the key
//    leads until the key goes: its lease expires (a leader that crashed or is
//    cut off from etcd) or it resigns. Standbys look every `poll` and
//    campaign as soon as the key is gone: a hand-over takes about ttl + poll.
//  - is_leader() holds only while this instance's key is there *and* its
//    lease is known to be alive: it turns false at once when keepalives have
//    failed for ttl (etcd cannot have expired the lease before that), and the
//    instance then campaigns again with a new lease.
//  - leader_revision() is the key's create revision while leading, else 0: a
//    fencing token. fence() gives it to open_etcd_store (store.h), which then
//    compares it inside every commit, so that a deposed leader that still
//    believes it leads (paused, partitioned) can never get a write applied.
//  - leader_id() is who holds the key as last seen ("" for nobody): standbys
//    redirect there.
//  - resign() steps down for good: the lease is revoked, so the key goes now
//    and a standby takes over within one poll. The destructor resigns.
//  - Thread-safe. The object must outlive the stores it fences. The key is
//    the store's key "leader" when the store has the same prefix: reserved.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "control/store.h"

namespace weft::control {

struct leader_options {
    std::chrono::seconds ttl{3};
    std::chrono::milliseconds poll{250};
    std::chrono::milliseconds deadline{1000};  // per etcd call and endpoint
};

class leader_election {
  public:
    using options = leader_options;

    // endpoints as for open_etcd_store. Starts campaigning at once. Throws
    // store_error on a malformed endpoint list.
    leader_election(const std::string& endpoints, std::string id, std::string prefix = "/weft/",
                    options opt = options());
    ~leader_election();
    leader_election(const leader_election&) = delete;
    leader_election& operator=(const leader_election&) = delete;

    bool is_leader() const;
    std::string leader_id() const;
    int64_t leader_revision() const;
    const std::string& id() const;
    const std::string& key() const;  // <prefix>leader
    commit_fence fence() const;
    void resign();
    // Stops the keepalives and the campaign without revoking anything, as a
    // crash would; is_leader() then turns false when the lease would expire.
    // For tests.
    void abandon();

  private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace weft::control
