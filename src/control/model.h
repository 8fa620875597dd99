// The control plane's records: what the store keeps (as JSON documents under
// "nodes/", "pools/", "volumes/", "snapshots/", "events/") and what the REST API shows.
// Parsing of user input is strict: unknown fields and bad values throw
// api_error 400 with a sentence naming the field.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace weft::control {

using json = nlohmann::json;
using labels = std::map<std::string, std::string>;

int64_t now_ms();
std::string random_uuid();
bool is_uuid(const std::string& s);
bool is_name(const std::string& s);  // node and pool names

struct node_rec {
    std::string id;
    std::string api;                // the engine's gRPC endpoint, host:port
    std::vector<std::string> nvmf;  // its NVMe/TCP listeners, host:port
    std::string host_nqn;           // what it connects to remote replicas as
    labels node_labels;
    // Its controller IDs (0, 0: none yet). Two nodes that serve one volume's
    // NQN (a nexus and its standby) must not hand out the same controller ID:
    // a host refuses a second path with a duplicate one.
    uint16_t cntlid_min = 0, cntlid_max = 0;
    bool cntlid_explicit = false;  // a registration's own (--cntlid-range); not stored
    int64_t heartbeat_ms = 2000;
    int64_t registered_ms = 0;
    int64_t last_seen_ms = 0;
};

// A host that mounts volumes but runs no engine (an application-only node:
// weft-csi's node plugin registers it), so that a publication to it can be
// told from one to a node that does not exist.
struct host_rec {
    std::string id;
    std::string host_nqn;  // what it connects to volumes as
    labels host_labels;
    int64_t registered_ms = 0;
};

struct pool_rec {
    std::string name;
    std::string node;
    std::string disk;
    uint64_t size = 0;
    uint64_t cluster_size = 0;
};

struct replica_rec {
    std::string id;  // UUID; also its volume's name in the pool
    std::string node;
    std::string pool;
    std::string replaces;  // a replacement being rebuilt: the replica it replaces
};

struct volume_spec {
    uint64_t size_bytes = 0;
    unsigned replicas = 3;
    bool thin = true;
    labels selector;
    std::string source_snapshot;  // a clone of this snapshot (its replicas' clones)
    // Encrypted at rest above its nexus (AES-256-XTS): replicas, rebuilds
    // and the wire to them carry ciphertext only.
    bool encrypted = false;
    bool operator==(const volume_spec&) const = default;
};

struct publication {
    std::string host_nqn;
    std::string node;  // the nexus's node
    std::string nqn;
    std::string address;
    unsigned port = 0;
    // The host's second path: another node serving the NQN with no
    // namespace (ANA inaccessible) until a switchover makes the nexus there.
    // Empty: none. Not ready: to be (re)made there (the old nexus node after
    // a switchover, once it answers again).
    std::string standby;
    std::string standby_address;
    unsigned standby_port = 0;
    bool standby_ready = false;
    // The generation of the last commit the arbiter let this publication's
    // nexus make without a majority of its in-sync children (0: none): a
    // switchover needs a replica whose label is at least that new.
    uint64_t arbiter_generation = 0;
};

struct volume_rec {
    std::string id;
    volume_spec spec;
    std::string phase = "creating";  // creating, ready, deleting
    std::vector<replica_rec> replicas;
    std::optional<publication> published;
    int64_t created_ms = 0;
    // An encrypted volume's data key wrapped by the engines' KEK (weft-dek-1:
    // ...; empty until its first publish makes one). Useless without the KEK.
    std::string wrapped_key;
};

// A snapshot of a volume: one pool snapshot (named by the snapshot's id) of
// each replica that was in sync when the volume's writes were paused, so all
// hold the same data.
struct snapshot_replica {
    std::string node;
    std::string pool;
    std::string replica;  // the replica (volume in the pool) it was taken of
};

struct snapshot_rec {
    std::string id;
    std::string volume;
    uint64_t size_bytes = 0;
    std::string phase = "creating";  // creating, ready, deleting
    std::vector<snapshot_replica> replicas;
    int64_t created_ms = 0;
    bool encrypted = false;   // of an encrypted volume: its clones are too
    std::string wrapped_key;  // the volume's key (empty if it never had data): its clones'
};

struct event_rec {
    int64_t seq = 0;
    int64_t time_ms = 0;
    std::string kind;
    std::string object;
    std::string message;
};

// Store documents (trusted: written by us).
json to_json(const node_rec&);
json to_json(const host_rec&);
json to_json(const pool_rec&);
json to_json(const volume_rec&);
json to_json(const event_rec&);
json to_json(const snapshot_rec&);
snapshot_rec snapshot_from_json(const json&);
json to_json(const volume_spec&);
json to_json(const publication&);
node_rec node_from_json(const json&);
host_rec host_from_json(const json&);
pool_rec pool_from_json(const json&);
volume_rec volume_from_json(const json&);
event_rec event_from_json(const json&);

// User input (untrusted): strict.
json parse_body(const std::string& body);
node_rec parse_node_registration(const std::string& id, const json&);
host_rec parse_host_registration(const std::string& id, const json&);
pool_rec parse_pool_spec(const std::string& name, const json&);
volume_spec parse_volume_spec(const json&);
// The body of PUT /v1/volumes/{id}/size: {"size_bytes": N}.
uint64_t parse_volume_size(const json&);
struct publish_request {
    std::string host_nqn;
    std::string node;
};
publish_request parse_publish_request(const json&);
// PUT /v1/snapshots/{id}: {"volume": UUID}; returns the volume's id.
std::string parse_snapshot_request(const json&);

// "nvme connect" for a publication.
std::string connect_line(const publication& p);

}  // namespace weft::control
