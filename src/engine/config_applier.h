// Applies an engine_config to a running target: adds subsystems and
// namespaces that are new, removes those that are gone, resizes namespaces
// whose size changed and replaces host allow-lists. Used at start and on
// SIGHUP, so a namespace can be added, removed or grown while hosts are
// connected (they get a namespace-attribute-changed event).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bdev/bdev.h"
#include "engine/config.h"
#include "nvmf/target.h"
#include "pool/pool.h"
#include "runtime/task.h"

namespace weft::engine {

class config_applier {
public:
    explicit config_applier(nvmf::target& t) : target_(t) {}

    // Applies what it can; returns the problems, one sentence each (empty:
    // all applied). What was applied stays applied. Pools are opened (or
    // created) here and live on the calling reactor: call it on one reactor.
    task<std::vector<std::string>> apply(const engine_config& cfg);

private:
    struct ns_state {
        namespace_config cfg;
        std::shared_ptr<bdev::bdev> dev;
    };
    task<void> apply_pools(const engine_config& cfg, std::vector<std::string>& problems);
    task<void> apply_subsystem(const subsystem_config& s, std::vector<std::string>& problems);
    // The bdev a namespace entry describes (a volume is created if missing).
    task<result<std::shared_ptr<bdev::bdev>>> make_device(const std::string& nqn,
                                                          const namespace_config& n, std::string* why);
    task<void> resize(const std::string& nqn, uint32_t nsid, ns_state& st, const namespace_config& n,
                      std::vector<std::string>& problems);

    nvmf::target& target_;
    std::map<std::string, std::shared_ptr<pool::pool>> pools_;
    // nqn -> nsid -> what is served
    std::map<std::string, std::map<uint32_t, ns_state>> applied_;
};

}  // namespace weft::engine
