// Applies an engine_config to a running target: adds subsystems and
// namespaces that are new, removes those that are gone, resizes namespaces
// whose size changed and replaces host allow-lists. Used at start and on
// SIGHUP, so a namespace can be added, removed or grown while hosts are
// connected (they get a namespace-attribute-changed event).
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "auth/data_key.h"
#include "bdev/bdev.h"
#include "bdev/crypto/crypto_bdev.h"
#include "bdev/stats/io_stats.h"
#include "engine/config.h"
#include "engine/nexus_children.h"
#include "nexus/nexus.h"
#include "nvmf/target.h"
#include "pool/pool.h"
#include "runtime/task.h"

namespace weft::engine {

class config_applier {
  public:
    explicit config_applier(nvmf::target& t) : target_(t) {}

    // The key-encryption keys volume keys are unwrapped with (--kek-file).
    void set_keks(std::vector<auth::kek> keks) { keks_ = std::move(keks); }
    // Every volume key (the base's and the API's): set before each apply,
    // whatever configuration that apply is given, so that no share of an
    // encrypted volume is ever made without its key.
    void set_volume_keys(const std::vector<volume_key_config>& keys) {
        volume_keys_.clear();
        for (auto& k : keys) volume_keys_[k.target] = k;
    }
    std::span<const auth::kek> keks() const { return keks_; }
    // Where data-key rotations keep their journals (engine/rekey_journal.h).
    void set_rekey_dir(std::string dir) { rekey_dir_ = std::move(dir); }
    const std::string& rekey_dir() const { return rekey_dir_; }

    // The encrypting layer of an encrypted target (POOL/VOLUME or
    // nexus:UUID): the one its shares use while any does, else a new one.
    // A target in a rotation gets both keys, and the chunk its journal
    // names is finished first. One layer per target at a time, so that a
    // rotation and the shares see the same boundary.
    task<result<std::shared_ptr<bdev::crypto_device>>> crypto_device_of(const std::string& target,
                                                                        std::string* why);
    // The live layer of `target`, or null.
    std::shared_ptr<bdev::crypto_device> live_crypto_device(const std::string& target) const;
    // The key of `target` is gone (erased, its volume destroyed): a layer
    // that lingers (a share going away) is never handed out again.
    void forget_crypto_device(const std::string& target) { crypto_.erase(target); }

    // Applies what it can; returns the problems, one sentence each (empty:
    // all applied). What was applied stays applied. Pools are opened (or
    // created) here and live on the calling reactor: call it on one reactor.
    task<std::vector<std::string>> apply(const engine_config& cfg);

    // A namespace being served, with its I/O counters.
    struct served_ns {
        std::string nqn;
        uint32_t nsid = 0;
        namespace_config cfg;
        std::shared_ptr<bdev::io_stats> stats;
    };
    std::vector<served_ns> served() const;
    // Per reactor, the I/O of namespaces that were removed (counters only grow).
    const std::map<unsigned, bdev::io_totals>& retired_io() const { return retired_; }
    // The NQN serving pool/volume, or empty.
    std::string nqn_serving(const std::string& pool, const std::string& volume) const;

    // Open pools by name. adopt_pool() takes one opened elsewhere (the
    // management API's create/import); a pool is closed by apply() once no
    // configuration names it and nothing serves from it, or by drop_pool().
    struct open_pool {
        std::shared_ptr<pool::pool> p;
        std::string path;
    };
    const std::map<std::string, open_pool>& pools() const { return pools_; }
    std::shared_ptr<pool::pool> find_pool(const std::string& name) const;
    void adopt_pool(const std::string& name, const std::string& path,
                    std::shared_ptr<pool::pool> p);
    void drop_pool(const std::string& name) { pools_.erase(name); }
    // Why the last apply() could not open pool `name` (empty: no problem seen).
    std::string pool_problem(const std::string& name) const {
        auto it = pool_problems_.find(name);
        return it == pool_problems_.end() ? std::string() : it->second;
    }

    // Nexuses by UUID. apply() opens (re-creates from their children's
    // labels) those configured and not open, and closes those no longer
    // configured once nothing serves them. adopt_nexus() takes one the API
    // created; drop_nexus() closes one.
    std::shared_ptr<nexus::nexus> find_nexus(const std::string& uuid) const;
    const std::map<std::string, std::shared_ptr<nexus::nexus>>& nexuses() const { return nexuses_; }
    void adopt_nexus(const std::string& uuid, std::shared_ptr<nexus::nexus> n) {
        nexuses_[uuid] = std::move(n);
    }
    task<void> drop_nexus(const std::string& uuid);
    bool any_nexus_problem() const { return !nexus_problems_.empty(); }
    std::string nexus_problem(const std::string& uuid) const {
        auto it = nexus_problems_.find(uuid);
        return it == nexus_problems_.end() ? std::string() : it->second;
    }
    // The NQN serving a nexus, or empty.
    std::string nqn_serving_nexus(const std::string& uuid) const;
    // The nexus that has pool/volume as a local child, or empty.
    std::string nexus_using(const std::string& pool, const std::string& volume) const;

    // How nexuses reach their children (the host identity is set at start).
    void set_host(host_identity h) { host_ = std::move(h); }
    const host_identity& host() const { return host_; }
    nexus::child_factory child_factory(std::chrono::milliseconds io_timeout);
    static nexus::options nexus_options(const nexus_config& c);
    // The fault switch of a pool volume (served or a nexus child).
    std::shared_ptr<bdev::fault_control> faults(const std::string& pool, const std::string& volume);

    // The target's DH-HMAC-CHAP secrets become the configuration's (also
    // part of apply()).
    void apply_host_keys(const engine_config& cfg, std::vector<std::string>& problems);

  private:
    std::set<std::string> host_keys_;  // hosts given a secret by apply()

    struct ns_state {
        namespace_config cfg;
        std::shared_ptr<bdev::bdev> dev;
        std::shared_ptr<bdev::io_stats> stats;
        bool encrypted = false;  // served through the encrypting layer
    };
    task<void> apply_pools(const engine_config& cfg, std::vector<std::string>& problems);
    task<void> apply_nexuses(const engine_config& cfg, std::vector<std::string>& problems);
    task<void> apply_subsystem(const subsystem_config& s, std::vector<std::string>& problems);
    // The bdev a namespace entry describes (a volume is created if missing),
    // through the encrypting layer when its target has a volume key.
    task<result<std::shared_ptr<bdev::bdev>>> make_device(const std::string& nqn,
                                                          const namespace_config& n,
                                                          std::string* why);
    task<result<std::shared_ptr<bdev::bdev>>> make_plain_device(const std::string& nqn,
                                                                const namespace_config& n,
                                                                std::string* why);
    task<void> resize(const std::string& nqn, uint32_t nsid, ns_state& st,
                      const namespace_config& n, std::vector<std::string>& problems);

    nvmf::target& target_;
    std::map<std::string, open_pool> pools_;
    std::map<std::string, std::string> pool_problems_;
    std::map<std::string, std::shared_ptr<nexus::nexus>> nexuses_;
    std::map<std::string, std::string> nexus_problems_;
    std::vector<auth::kek> keks_;
    std::map<std::string, volume_key_config> volume_keys_;  // by target (set_volume_keys)
    std::map<std::string, std::weak_ptr<bdev::crypto_device>> crypto_;  // by target
    std::string rekey_dir_;
    task<result<std::shared_ptr<bdev::crypto_device>>> make_crypto(
        volume_key_config k, std::shared_ptr<bdev::bdev> plain, std::string* why);
    std::map<std::string, std::shared_ptr<bdev::fault_control>> faults_;  // "pool/volume"
    host_identity host_;
    std::map<unsigned, bdev::io_totals> retired_;
    void retire(const ns_state& st);
    // nqn -> nsid -> what is served
    std::map<std::string, std::map<uint32_t, ns_state>> applied_;
};

}  // namespace weft::engine
