// The engine's configuration: a JSON file and/or command-line flags.
//
// {
//   "listen": ["127.0.0.1:4420"],
//   "discovery_listen": ["127.0.0.1:8009"],
//   "limits": {"max_queue_depth": 128, "max_io_queues": 64,
//              "in_capsule_data": 8192, "max_transfer": 1048576},
//   "subsystems": [{
//     "nqn": "nqn.2026-11.io.weft:vol1", "serial": "...", "model": "...",
//     "allow_any_host": false, "hosts": ["nqn.2014-08.org.nvmexpress:uuid:..."],
//     "namespaces": [{"nsid": 1, "type": "file", "path": "/var/lib/weft/vol1.img",
//                     "size": "1GiB", "block_size": 512}]
//   }]
// }
// Namespace types: "malloc" (RAM), "null" (discards), "file" (a file or raw
// block device through io_uring, created with "size" if missing), "volume"
// (a volume of a pool, created with "size" and "thin" if missing):
//   "pools": [{"name": "p0", "path": "/var/lib/weft/p0.img", "size": "100GiB",
//              "cluster_size": "4MiB"}],
//   ... {"nsid": 3, "type": "volume", "pool": "p0", "volume": "vol3", "size": "10GiB"}
// DH-HMAC-CHAP secrets and TLS pre-shared keys per host (see
// src/nvmf/host_auth.h and src/auth/tls_psk.h); keep such a file readable
// by its owner only:
//   "host_keys": [{"host": "nqn...", "dhchap_key": "DHHC-1:01:...:",
//                  "dhchap_ctrl_key": "DHHC-1:...:", "digests": ["sha256"],
//                  "dhgroups": ["ffdhe2048", "null"],
//                  "tls_key": "NVMeTLSkey-1:01:...:"}]
// and whether the NVMe/TCP listeners run TLS 1.3: "tls": "off" (the
// default), "required" or "allowed" (each host chooses).
// and "nexus" (a volume mirrored over children, see src/nexus/nexus.h):
//   "nexuses": [{"uuid": "...", "size": "10GiB",
//                "children": [{"uri": "pool://p0/r1"}, {"uri": "nvmf://10.0.0.2:4420/nqn...",
//                "uuid": "..."}], "io_timeout_ms": 5000, "rebuild_rate": "256MiB",
//                "minority_policy": "wait"}],
//   ... {"nsid": 1, "type": "nexus", "nexus": "<uuid>"}
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/secret.h"
#include "nvme/log_pages.h"
#include "nvmf/controller.h"
#include "runtime/result.h"

namespace weft::engine {

struct namespace_config {
    uint32_t nsid = 0;  // 0: next free
    std::string type = "file";
    std::string path;
    uint64_t size = 0;  // bytes
    uint32_t block_size = 512;
    std::optional<std::string> uuid;
    std::string pool;    // type "volume"
    std::string volume;  // type "volume": the volume's name
    bool thin = true;    // type "volume", when it is created
    std::string nexus;   // type "nexus": its UUID
};

struct nexus_child_config {
    std::string uri;
    std::string uuid;  // its place in the nexus (may be empty for a new child)
};

struct nexus_config {
    std::string uuid;
    uint64_t size = 0;  // bytes; 0: from the children's labels
    std::vector<nexus_child_config> children;
    uint32_t io_timeout_ms = 0;  // 0: the nexus's default
    uint64_t rebuild_rate = 0;   // bytes/s; 0: the default
    std::string minority_policy = "wait";
    bool auto_rebuild = true;
};

struct pool_config {
    std::string name;
    std::string path;           // file or block device
    uint64_t size = 0;          // a file of this size is created if missing
    uint64_t cluster_size = 0;  // 0: the pool's default (4 MiB)
    // A blank device is formatted (pools of --config). Pools the API made
    // are persisted without it: blank there means lost, not new.
    bool format_if_blank = true;
    // Destroyed volumes are purged: their clusters zeroed before reuse.
    bool purge = false;
};

struct subsystem_config {
    std::string nqn;
    std::string serial;
    std::string model = "weft";
    bool allow_any_host = true;
    std::vector<std::string> hosts;
    std::vector<namespace_config> namespaces;
    // This engine's ANA state for the subsystem (nvmf/subsystem.h):
    // "optimized", "non-optimized", "inaccessible", "persistent-loss" or
    // "change".
    std::string ana_state = "optimized";
    // A standby path for this nexus (UUID): no namespace until the nexus is
    // made and shared here (ShareNexusRequest.standby).
    std::string standby_for;
};

struct host_key_config {
    std::string host;  // host NQN
    auth::secret_string dhchap_key;
    auth::secret_string dhchap_ctrl_key;  // empty: unidirectional
    std::vector<std::string> digests;     // empty: the defaults
    std::vector<std::string> dhgroups;
    auth::secret_string tls_key;  // NVMeTLSkey-1 (configured PSK); empty: none
};

// A volume's data key, wrapped by a key-encryption key (auth/data_key.h):
// its shares serve it through the encrypting layer (bdev/crypto). Kept with
// the volume, not the share: unsharing keeps it, erasing it is a
// crypto-erase. During a data-key rotation the volume has a second key:
// blocks below the rotation's boundary (its journal, rekey_journal.h) are
// under it; when the rotation ends it becomes the only key.
struct volume_key_config {
    std::string target;            // "POOL/VOLUME" (a pool volume) or "nexus:UUID"
    std::string wrapped_key;       // weft-dek-1:<kek id>:<base64>:
    std::string next_wrapped_key;  // a rotation's new key; empty: none under way
    // The rotation's pace in bytes/s (0: unpaced), kept so that a restart
    // resumes at it; unset: the default.
    std::optional<uint64_t> rotation_rate;
};

// The ANA state for a config name; nullopt for an unknown one.
std::optional<nvme::ana_state> parse_ana_state(const std::string& name);

struct engine_config {
    std::vector<std::string> listen;
    std::vector<std::string> discovery_listen;
    nvmf::controller_limits limits;
    std::vector<pool_config> pools;
    std::vector<nexus_config> nexuses;
    std::vector<subsystem_config> subsystems;
    std::vector<host_key_config> host_keys;
    std::vector<volume_key_config> volume_keys;
    std::string tls;  // the listeners' nvmf::tls_mode by name; empty: off
};

// The volume key target of a namespace ("POOL/VOLUME", "nexus:UUID"; empty
// for other kinds).
std::string key_target(const namespace_config& n);

// Checks a host key entry (NQN, key formats, names; a DH-HMAC-CHAP secret,
// a TLS key or both); a sentence on error.
result<void> check_host_key(const host_key_config& k, std::string* why);

// Parses the JSON text; on error returns EINVAL and a sentence in `why`.
result<engine_config> parse_config(std::string_view json_text, std::string* why);
// The JSON text parse_config() reads back (sizes as numbers of bytes).
std::string to_json_text(const engine_config& c);
// "1GiB", "512MiB", "4096", "10G" -> bytes.
result<uint64_t> parse_size(const std::string& s);

}  // namespace weft::engine
