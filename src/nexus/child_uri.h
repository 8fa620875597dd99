// Child URIs of a nexus: what they name and how they parse.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/result.h"

namespace weft::nexus {

struct child_uri {
    enum class kind { pool, nvmf } k = kind::pool;
    // pool://POOL/VOLUME
    std::string pool, volume;
    // nvmf://HOST:PORT/SUBNQN[/NSID]
    std::string host;  // an IPv4 or IPv6 address ([..] in the URI)
    uint16_t port = 0;
    std::string nqn;
    uint32_t nsid = 1;
};

// EINVAL with a sentence in `why` for anything else.
result<child_uri> parse_child_uri(const std::string& s, std::string* why);
std::string to_string(const child_uri& u);

}  // namespace weft::nexus
