#include "csi/parameters.h"

#include <cctype>
#include <charconv>

#include <fmt/format.h>

namespace weft::csi {
std::optional<unsigned> parse_unsigned(const std::string& s, unsigned lo, unsigned hi) {
    unsigned v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi) return std::nullopt;
    return v;
}

namespace {

bool valid_label_part(const std::string& s) {
    if (s.empty() || s.size() > 63) return false;
    for (char c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' ||
              c == '/'))
            return false;
    return true;
}

}  // namespace

parameters_result parse_parameters(const std::map<std::string, std::string>& in) {
    parameters_result r;
    auto bad = [&](const std::string& why) {
        r.error = why;
        return r;
    };
    for (auto& [k, v] : in) {
        if (k.starts_with("csi.storage.k8s.io/")) continue;
        if (k == "repl") {
            auto n = parse_unsigned(v, 1, 5);
            if (!n) return bad(fmt::format("parameter repl is \"{}\": want 1 to 5 replicas", v));
            r.p.replicas = n;
        } else if (k == "thin") {
            if (v != "true" && v != "false")
                return bad(fmt::format("parameter thin is \"{}\": want true or false", v));
            r.p.thin = v == "true";
        } else if (k == "fsType") {
            if (v != "ext4" && v != "xfs")
                return bad(fmt::format("parameter fsType is \"{}\": want ext4 or xfs", v));
            r.p.fs_type = v;
        } else if (k == "ioTimeout") {
            auto n = parse_unsigned(v, 1, 3600);
            if (!n)
                return bad(fmt::format("parameter ioTimeout is \"{}\": want 1 to 3600 seconds", v));
            r.p.io_timeout_s = n;
        } else if (k == "protocol") {
            if (v != "nvmf")
                return bad(fmt::format("parameter protocol is \"{}\": weft serves nvmf only", v));
        } else if (k == "attach") {
            if (v != "kernel" && v != "user" && v != "auto")
                return bad(fmt::format("parameter attach is \"{}\": want kernel, user or auto", v));
            r.p.attach = v;
        } else if (k == "selector") {
            for (size_t at = 0; at < v.size();) {
                size_t comma = v.find(',', at);
                if (comma == std::string::npos) comma = v.size();
                std::string kv = v.substr(at, comma - at);
                size_t eq = kv.find('=');
                if (eq == std::string::npos || !valid_label_part(kv.substr(0, eq)) ||
                    !valid_label_part(kv.substr(eq + 1)))
                    return bad(fmt::format(
                        "parameter selector has \"{}\": want label=value pairs, comma-separated",
                        kv));
                r.p.selector[kv.substr(0, eq)] = kv.substr(eq + 1);
                at = comma + 1;
            }
        } else {
            return bad(fmt::format(
                "unknown parameter \"{}\" (weft knows repl, thin, fsType, ioTimeout, protocol, "
                "selector, attach)",
                k));
        }
    }
    return r;
}

std::map<std::string, std::string> volume_context_of(const volume_parameters& p) {
    std::map<std::string, std::string> c{{"protocol", "nvmf"}};
    if (!p.fs_type.empty()) c["fsType"] = p.fs_type;
    if (p.io_timeout_s) c["ioTimeout"] = std::to_string(*p.io_timeout_s);
    if (!p.attach.empty() && p.attach != "auto") c["attach"] = p.attach;
    return c;
}

}  // namespace weft::csi
