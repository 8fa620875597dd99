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

namespace weft::engine {

class config_applier {
public:
    explicit config_applier(nvmf::target& t) : target_(t) {}

    // Applies what it can; returns the problems, one sentence each (empty:
    // all applied). What was applied stays applied.
    std::vector<std::string> apply(const engine_config& cfg);

private:
    struct ns_state {
        namespace_config cfg;
        std::shared_ptr<bdev::bdev> dev;
    };
    void apply_subsystem(const subsystem_config& s, std::vector<std::string>& problems);

    nvmf::target& target_;
    // nqn -> nsid -> what is served
    std::map<std::string, std::map<uint32_t, ns_state>> applied_;
};

}  // namespace weft::engine
