#include "nexus/child_uri.h"

#include <fmt/format.h>

#include <arpa/inet.h>

#include <charconv>

namespace weft::nexus {
namespace {

error bad(std::string* why, std::string msg) {
    if (why) *why = std::move(msg);
    return error{EINVAL};
}

bool parse_uint(std::string_view s, uint64_t max, uint64_t* out) {
    if (s.empty() || s.size() > 10) return false;
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v > max) return false;
    *out = v;
    return true;
}

// Pool and volume names: as the engine's API checks them.
bool valid_name(std::string_view n) {
    if (n.empty() || n.size() > 63 || n[0] == '-' || n[0] == '.') return false;
    for (char c : n)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    return true;
}

bool valid_ip(const std::string& h, bool v6) {
    unsigned char buf[16];
    return ::inet_pton(v6 ? AF_INET6 : AF_INET, h.c_str(), buf) == 1;
}

// Printable ASCII without spaces or '/' (which would end it in a URI).
bool valid_nqn_chars(std::string_view n) {
    for (char c : n)
        if (c <= ' ' || c > '~' || c == '/') return false;
    return true;
}

}  // namespace

result<child_uri> parse_child_uri(const std::string& s, std::string* why) {
    const std::string usage = "a child is pool://POOL/VOLUME or nvmf://HOST:PORT/SUBNQN[/NSID]";
    child_uri u;
    for (char c : s)
        if (c <= ' ' || c > '~')
            return bad(why, "a child URI is printable ASCII without spaces; " + usage);
    std::string_view v = s;
    if (v.starts_with("pool://")) {
        v.remove_prefix(7);
        auto slash = v.find('/');
        if (slash == std::string_view::npos)
            return bad(why, fmt::format("\"{}\": no volume; {}", s, usage));
        u.k = child_uri::kind::pool;
        u.pool = std::string(v.substr(0, slash));
        u.volume = std::string(v.substr(slash + 1));
        if (!valid_name(u.pool) || !valid_name(u.volume))
            return bad(why, fmt::format("\"{}\": the pool and volume names are 1 to 63 characters "
                                        "of A-Z a-z 0-9 . _ -",
                                        s));
        return u;
    }
    if (v.starts_with("nvmf://")) {
        v.remove_prefix(7);
        u.k = child_uri::kind::nvmf;
        std::string_view hostport;
        auto slash = v.find('/');
        if (slash == std::string_view::npos)
            return bad(why, fmt::format("\"{}\": no subsystem NQN; {}", s, usage));
        hostport = v.substr(0, slash);
        v.remove_prefix(slash + 1);
        size_t colon;
        bool v6 = hostport.starts_with("[");
        if (v6) {
            auto close = hostport.find(']');
            if (close == std::string_view::npos || close + 1 >= hostport.size() ||
                hostport[close + 1] != ':')
                return bad(why, fmt::format("\"{}\": expected [IPv6]:PORT", s));
            u.host = std::string(hostport.substr(1, close - 1));
            colon = close + 1;
        } else {
            colon = hostport.rfind(':');
            if (colon == std::string_view::npos)
                return bad(why, fmt::format("\"{}\": no port; {}", s, usage));
            u.host = std::string(hostport.substr(0, colon));
        }
        if (!valid_ip(u.host, v6))
            return bad(why, fmt::format("\"{}\": the host is not an IP{} address", s,
                                        v6 ? "v6" : "v4 (IPv6 goes in [brackets])"));
        uint64_t port = 0;
        if (u.host.empty() || !parse_uint(hostport.substr(colon + 1), 65535, &port) || port == 0)
            return bad(why, fmt::format("\"{}\": expected HOST:PORT with a port of 1..65535", s));
        u.port = uint16_t(port);
        // The NQN may contain ':' and '.', never '/': an optional /NSID follows.
        auto last = v.rfind('/');
        uint64_t nsid = 1;
        if (last != std::string_view::npos) {
            if (!parse_uint(v.substr(last + 1), 0xfffffffe, &nsid) || nsid == 0)
                return bad(why, fmt::format("\"{}\": the namespace ID is not 1..4294967294", s));
            v = v.substr(0, last);
        }
        u.nsid = uint32_t(nsid);
        u.nqn = std::string(v);
        if (u.nqn.size() < 5 || u.nqn.size() > 223 || !u.nqn.starts_with("nqn.") ||
            !valid_nqn_chars(u.nqn))
            return bad(why, fmt::format("\"{}\": \"{}\" is not an NQN", s, u.nqn));
        return u;
    }
    return bad(why, fmt::format("\"{}\" is not a child URI: {}", s, usage));
}

std::string to_string(const child_uri& u) {
    if (u.k == child_uri::kind::pool) return fmt::format("pool://{}/{}", u.pool, u.volume);
    bool v6 = u.host.find(':') != std::string::npos;
    std::string host = v6 ? "[" + u.host + "]" : u.host;
    if (u.nsid == 1) return fmt::format("nvmf://{}:{}/{}", host, u.port, u.nqn);
    return fmt::format("nvmf://{}:{}/{}/{}", host, u.port, u.nqn, u.nsid);
}

}  // namespace weft::nexus
