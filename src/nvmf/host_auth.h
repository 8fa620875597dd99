// What a host must prove to this target (DH-HMAC-CHAP), and what it may ask
// the target to prove in return. Immutable once made; queues hold it for
// their transaction, so a changed key applies to connections made after.
#pragma once

#include <optional>
#include <vector>

#include "auth/dhchap.h"

namespace weft::nvmf {

struct host_auth {
    auth::dhchap_key key;                      // the host's secret
    std::optional<auth::dhchap_key> ctrl_key;  // the controller's (bidirectional)
    // Preference order of what the host offers; empty: the defaults below.
    std::vector<auth::hash_id> digests;
    std::vector<auth::dh_group> dhgroups;

    static const std::vector<auth::hash_id>& default_digests();
    static const std::vector<auth::dh_group>& default_dhgroups();
};

}  // namespace weft::nvmf
