// weft-control's operations, independent of HTTP: each takes the parsed
// request and returns the JSON to answer, or throws api_error (a status and
// a sentence). The REST server (rest_server.h) maps routes onto these.
//
// Contract:
//  - The store is the only state; the service keeps nothing that a restart
//    would need (engine channels are a cache).
//  - Creates are idempotent by id: the same spec again answers 200 with what
//    exists; another spec is 409. A volume is written to the store (phase
//    "creating", its placement chosen) before any engine is asked, so a
//    crash half-way leaves a record that a retry completes; a step that fails
//    undoes the steps before it (nothing half-made stays on the engines).
//  - Mutating volume and pool operations run one at a time (ops_ mutex):
//    simple and correct at this scale; node heartbeats do not wait for them.
//  - Engines are reached under a deadline; an engine that does not answer
//    makes the operation fail with 503 and a sentence naming the node.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "control/engine_client.h"
#include "control/model.h"
#include "control/store.h"

namespace weft::control {

// Who acts, when several weft-control instances share one store (etcd):
// the leader serves everything and runs the reconciler; a standby serves
// reads from the store and forwards every other request to the leader.
// Empty functions: this instance is the only one (it always leads).
struct leadership {
    std::function<bool()> is_leader;
    std::function<std::string()> leader_url;  // http://HOST:PORT, "" when unknown
    bool leads() const { return !is_leader || is_leader(); }
};

struct service_options {
    unsigned missed_beats = 3;  // a node is offline after this many heartbeats missed
    double overcommit = 4.0;    // thin volumes: committed bytes up to capacity x this
    std::chrono::milliseconds engine_deadline{10000};
    // A replica whose node has been offline, or whose nexus child has not
    // been online, this long is replaced by a new one on another node.
    std::chrono::milliseconds replace_after{60000};
    unsigned max_repairs_per_minute = 10;  // over the whole cluster: no storms
    leadership lead;
    // How to call engines whose API needs TLS or a token (null: plain).
    std::shared_ptr<const auth::api_client_access> engine_access;
};

class service {
  public:
    service(store& st, service_options o);

    json status();

    std::pair<int, json> put_node(const std::string& id, const json& body);
    json list_nodes();
    json get_node(const std::string& id);
    void delete_node(const std::string& id);

    // Hosts: application-only nodes (no engine) that volumes are published to.
    std::pair<int, json> put_host(const std::string& id, const json& body);
    json list_hosts();
    json get_host(const std::string& id);
    void delete_host(const std::string& id);

    std::pair<int, json> put_pool(const std::string& name, const json& body);
    json list_pools();
    json get_pool(const std::string& name);
    void delete_pool(const std::string& name);

    std::pair<int, json> put_volume(const std::string& id, const json& body);
    json list_volumes();
    json get_volume(const std::string& id);
    void delete_volume(const std::string& id);
    // Grows a volume: every replica first (all their nodes must answer;
    // those grown are shrunk back when one refuses), then the size is
    // recorded, then its nexus when published (hosts see the new size). A
    // nexus that cannot grow now (a rebuild runs) is grown by the reconciler.
    json resize_volume(const std::string& id, const json& body);

    // Snapshots: one pool snapshot of each in-sync replica, taken while the
    // volume's writes are paused at its nexus (or, unpublished, of the
    // replicas their labels say are in sync, read from a majority of them).
    // A volume whose spec names a source snapshot is made of clones of it.
    std::pair<int, json> put_snapshot(const std::string& id, const json& body);
    json list_snapshots(const std::string& volume);  // "" for all
    json get_snapshot(const std::string& id);
    void delete_snapshot(const std::string& id);
    json publish(const std::string& id, const json& body);
    void unpublish(const std::string& id);

    // One pass of the reconciler (weft-control runs it every few seconds):
    // replaces replicas lost for longer than replace_after in published
    // volumes (a new replica placed on another node, added to the nexus,
    // rebuilt, then the old one removed and destroyed), and destroys
    // orphaned replicas whose node came back. Each repair is an event.
    void reconcile();

    json events(int64_t since, unsigned limit);
    void record_event(const std::string& kind, const std::string& object,
                      const std::string& message);
    // Commits `change` and the event in one transaction (one fsync); nullopt
    // when one of change's own compares fails.
    std::optional<int64_t> commit_with_event(const txn& change, const std::string& kind,
                                             const std::string& object, const std::string& message);

  private:
    struct facts;  // what the engines say now, gathered once per operation

    bool online(const node_rec& n, int64_t now) const;
    node_rec need_node(const std::string& id);
    std::optional<std::pair<volume_rec, int64_t>> load_volume(const std::string& id);
    void save_volume(const volume_rec& v, int64_t& revision);
    json view(const volume_rec& v, facts& f);
    json pool_view(const pool_rec& p, facts& f);
    void create_replicas(volume_rec& v, int64_t& revision, facts& f);
    void destroy_replica(const replica_rec& r, facts& f);
    std::vector<snapshot_replica> in_sync_by_labels(const volume_rec& v, facts& f);
    // Destroys the pool snapshots of s that exist (the first refusal is
    // thrown after all were tried); those gone leave s.replicas.
    void destroy_snapshot_replicas(snapshot_rec& s, facts& f);
    void need_every_replica(const volume_rec& v, facts& f, const char* doing);
    void resize_replica(const replica_rec& r, uint64_t bytes, facts& f);
    void add_child(const volume_rec& v, const replica_rec& r, const node_rec& nexus_node, facts& f);
    void make_standby(volume_rec& v, const std::vector<std::string>& preferred, facts& f);
    void remove_nexus_on(const std::string& node, const std::string& id, facts& f);
    std::string share_nexus_on(const std::string& node, const volume_rec& v, bool standby,
                               facts& f);
    void switch_over(volume_rec& v, int64_t& rev, facts& f);
    // An encrypted volume's data key on `node`'s engine before its nexus is
    // shared there: the one the record has, or a new one the engine makes
    // (recorded at once, before anything is written with it).
    void ensure_volume_key(volume_rec& v, int64_t& rev, const std::string& node, facts& f);
    // Crypto-erase on delete: every online engine forgets the volume's key;
    // each other one is owed the erasure (key-erasures/NODE/VOLUME).
    void erase_volume_key(const volume_rec& v, facts& f);
    // EraseVolumeKey on `node`; false (logged) when it could not be made.
    bool erase_key_on(const std::string& node, const std::string& volume, facts& f);
    // The erasures owed to nodes that were away (reconcile).
    void erase_owed_keys(facts& f);
    bool may_take_over(const volume_rec& v, const std::vector<const replica_rec*>& reach, facts& f,
                       std::string* why);
    void restore_standby(volume_rec& v, int64_t& rev, facts& f);
    void answer_arbiter(volume_rec& v, int64_t& rev, facts& f, const pb::Nexus& nx);
    bool grow_nexus(const volume_rec& v, facts& f);
    void teardown_publication(const volume_rec& v, facts& f);

    void reconcile_volume(volume_rec& v, int64_t& rev, facts& f);
    bool take_repair_token();
    void add_replacement(const volume_rec& v, const replica_rec& nr, const node_rec& nexus_node,
                         facts& f);
    std::string child_uri(const replica_rec& r, const node_rec& nexus_node, facts& f);
    std::string child_uri_of(const replica_rec& r, const node_rec& nexus_node, facts& f);
    // Saves v with replica o taken out of it, and o as an orphan
    // ("orphans/<id>") that the reconciler destroys when its node answers.
    void orphan(volume_rec& v, int64_t& rev, replica_rec o);

    store& st_;
    service_options opt_;
    std::map<std::string, int64_t> unhealthy_since_;  // replica id -> first seen not online
    std::set<std::string> switchover_waiting_;        // volumes told to wait (one event each)
    std::vector<int64_t> repairs_;                    // when the last repairs started
    engine_client engines_;
    std::mutex ops_;
    std::atomic<double> last_pass_ms_{0};  // the reconciler's last pass, for /v1/status
    std::atomic<size_t> last_pass_volumes_{0};
    // When this instance began to lead (0: it does not): a node's beats may
    // have gone to the leader before it, so none is offline before it has
    // led for missed_beats beats.
    mutable std::atomic<int64_t> leading_since_{0};
};

}  // namespace weft::control
