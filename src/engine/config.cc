#include "engine/config.h"

#include "auth/data_key.h"
#include "auth/dhchap.h"
#include "auth/tls_psk.h"
#include "nvmf/target.h"

#include <openssl/crypto.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <limits>
#include <type_traits>

namespace weft::engine {

result<uint64_t> parse_size(const std::string& s) {
    size_t i = 0;
    uint64_t v = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
        if (v > (UINT64_MAX - 9) / 10) return error{ERANGE};
        v = v * 10 + uint64_t(s[i++] - '0');
    }
    if (i == 0) return error{EINVAL};
    std::string unit = s.substr(i);
    uint64_t mult = 1;
    if (unit.empty() || unit == "B")
        mult = 1;
    else if (unit == "K" || unit == "KiB" || unit == "k")
        mult = 1ull << 10;
    else if (unit == "M" || unit == "MiB")
        mult = 1ull << 20;
    else if (unit == "G" || unit == "GiB")
        mult = 1ull << 30;
    else if (unit == "T" || unit == "TiB")
        mult = 1ull << 40;
    else
        return error{EINVAL};
    if (v > UINT64_MAX / mult) return error{ERANGE};
    return v * mult;
}

namespace {
using json = nlohmann::json;

// The JSON library's copies of secrets are not wiped when freed: wipe them.
void wipe_secrets(json& kj) {
    for (const char* f : {"dhchap_key", "dhchap_ctrl_key", "tls_key"})
        if (kj.contains(f) && kj[f].is_string()) {
            auto& str = kj[f].get_ref<std::string&>();
            OPENSSL_cleanse(str.data(), str.size());
        }
}

struct bad_config : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A secret field read straight from the JSON value (no unwiped copy).
auth::secret_string secret_of(const json& kj, const char* f) {
    if (!kj.contains(f)) return {};
    if (!kj[f].is_string()) throw bad_config(std::string("a host key's \"") + f + "\" is a string");
    return auth::secret_string(kj[f].get_ref<const std::string&>());
}

template <typename T>
T get(const json& j, const char* key, T fallback) {
    if (!j.contains(key)) return fallback;
    const json& v = j.at(key);
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
        // nlohmann converts floats and out-of-range numbers with a plain
        // cast (undefined for 1e30 into a uint16_t): check first.
        bool fits = false;
        if (v.is_number_unsigned())
            fits = v.get<uint64_t>() <= uint64_t(std::numeric_limits<T>::max());
        else if (v.is_number_integer())
            fits = v.get<int64_t>() >= int64_t(std::numeric_limits<T>::min()) &&
                   (v.get<int64_t>() < 0 ||
                    uint64_t(v.get<int64_t>()) <= uint64_t(std::numeric_limits<T>::max()));
        if (!fits) throw bad_config(std::string("\"") + key + "\" is not an integer in range");
        return v.is_number_unsigned() ? T(v.get<uint64_t>()) : T(v.get<int64_t>());
    } else {
        try {
            return v.get<T>();
        } catch (const json::exception&) {
            throw bad_config(std::string("\"") + key + "\" has the wrong type");
        }
    }
}

uint64_t size_of(const json& j, const char* key) {
    if (!j.contains(key)) return 0;
    const json& v = j.at(key);
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (v.is_string()) {
        auto r = parse_size(v.get<std::string>());
        if (r) return r.value();
    }
    throw bad_config(std::string("\"") + key + "\" is not a size (like 1GiB or 4096)");
}
}  // namespace

std::string key_target(const namespace_config& n) {
    if (n.type == "volume") return n.pool + "/" + n.volume;
    if (n.type == "nexus") return "nexus:" + n.nexus;
    return {};
}

std::optional<nvme::ana_state> parse_ana_state(const std::string& name) {
    using nvme::ana_state;
    if (name == "optimized") return ana_state::optimized;
    if (name == "non-optimized") return ana_state::non_optimized;
    if (name == "inaccessible") return ana_state::inaccessible;
    if (name == "persistent-loss") return ana_state::persistent_loss;
    if (name == "change") return ana_state::change;
    return std::nullopt;
}

std::string to_json_text(const engine_config& c) {
    json j;
    j["listen"] = c.listen;
    j["discovery_listen"] = c.discovery_listen;
    if (!c.tls.empty()) j["tls"] = c.tls;
    j["limits"] = {
        {"max_queue_depth", c.limits.max_queue_depth}, {"max_io_queues", c.limits.max_io_queues},
        {"in_capsule_data", c.limits.in_capsule_data}, {"max_transfer", c.limits.max_transfer},
        {"min_cntlid", c.limits.min_cntlid},           {"max_cntlid", c.limits.max_cntlid}};
    j["pools"] = json::array();
    for (auto& p : c.pools) {
        json pj = {{"name", p.name}, {"path", p.path}, {"format_if_blank", p.format_if_blank}};
        if (p.purge) pj["purge"] = true;
        if (p.size) pj["size"] = p.size;
        if (p.cluster_size) pj["cluster_size"] = p.cluster_size;
        j["pools"].push_back(pj);
    }
    j["nexuses"] = json::array();
    for (auto& x : c.nexuses) {
        json xj = {{"uuid", x.uuid},
                   {"minority_policy", x.minority_policy},
                   {"auto_rebuild", x.auto_rebuild}};
        if (x.size) xj["size"] = x.size;
        if (x.io_timeout_ms) xj["io_timeout_ms"] = x.io_timeout_ms;
        if (x.rebuild_rate) xj["rebuild_rate"] = x.rebuild_rate;
        xj["children"] = json::array();
        for (auto& ch : x.children) {
            json cj = {{"uri", ch.uri}};
            if (!ch.uuid.empty()) cj["uuid"] = ch.uuid;
            xj["children"].push_back(cj);
        }
        j["nexuses"].push_back(xj);
    }
    j["subsystems"] = json::array();
    for (auto& s : c.subsystems) {
        json sj = {{"nqn", s.nqn},
                   {"model", s.model},
                   {"allow_any_host", s.allow_any_host},
                   {"hosts", s.hosts}};
        if (!s.serial.empty()) sj["serial"] = s.serial;
        if (s.ana_state != "optimized") sj["ana_state"] = s.ana_state;
        if (!s.standby_for.empty()) sj["standby_for"] = s.standby_for;
        sj["namespaces"] = json::array();
        for (auto& n : s.namespaces) {
            json nj = {{"nsid", n.nsid}, {"type", n.type}, {"block_size", n.block_size}};
            if (!n.path.empty()) nj["path"] = n.path;
            if (n.size) nj["size"] = n.size;
            if (n.uuid) nj["uuid"] = *n.uuid;
            if (n.type == "volume") {
                nj["pool"] = n.pool;
                nj["volume"] = n.volume;
                nj["thin"] = n.thin;
            }
            if (n.type == "nexus") nj["nexus"] = n.nexus;
            sj["namespaces"].push_back(nj);
        }
        j["subsystems"].push_back(sj);
    }
    if (!c.host_keys.empty()) {
        j["host_keys"] = json::array();
        for (auto& k : c.host_keys) {
            json kj = json::object();
            kj["host"] = k.host;
            // Assigned, not listed in an initializer (which would copy them).
            if (!k.dhchap_key.empty()) kj["dhchap_key"] = std::string(k.dhchap_key.view());
            if (!k.tls_key.empty()) kj["tls_key"] = std::string(k.tls_key.view());
            if (!k.dhchap_ctrl_key.empty())
                kj["dhchap_ctrl_key"] = std::string(k.dhchap_ctrl_key.view());
            if (!k.digests.empty()) kj["digests"] = k.digests;
            if (!k.dhgroups.empty()) kj["dhgroups"] = k.dhgroups;
            j["host_keys"].push_back(std::move(kj));  // no copy left behind
        }
    }
    if (!c.volume_keys.empty()) {
        j["volume_keys"] = json::array();
        for (auto& k : c.volume_keys) {
            json kj = {{"target", k.target}, {"wrapped_key", k.wrapped_key}};
            if (!k.next_wrapped_key.empty()) kj["next_wrapped_key"] = k.next_wrapped_key;
            if (!k.next_wrapped_key.empty() && k.rotation_rate)
                kj["rotation_rate"] = *k.rotation_rate;
            j["volume_keys"].push_back(std::move(kj));
        }
    }
    std::string text = j.dump(2) + "\n";
    if (j.contains("host_keys"))
        for (json& kj : j["host_keys"]) wipe_secrets(kj);
    return text;
}

result<void> check_host_key(const host_key_config& k, std::string* why) {
    auto bad = [&](std::string s) -> result<void> {
        if (why) *why = std::move(s);
        return error{EINVAL};
    };
    if (!nvmf::valid_nqn(k.host)) return bad("host key: \"" + k.host + "\" is not a host NQN");
    std::string w;
    if (k.dhchap_key.empty() && k.tls_key.empty())
        return bad("host key of " + k.host +
                   ": give a DH-HMAC-CHAP secret (dhchap_key), a TLS key (tls_key) or both");
    if (!k.tls_key.empty() && !auth::parse_tls_key(k.tls_key.view(), &w))
        return bad("host key of " + k.host + ": the TLS key: " + w);
    if (k.dhchap_key.empty()) {
        if (!k.dhchap_ctrl_key.empty() || !k.digests.empty() || !k.dhgroups.empty())
            return bad("host key of " + k.host +
                       ": a controller secret, digests or DH groups need a host secret "
                       "(dhchap_key)");
        return {};
    }
    if (!auth::parse_dhchap_key(k.dhchap_key.view(), &w))
        return bad("host key of " + k.host + ": the host secret: " + w);
    if (!k.dhchap_ctrl_key.empty()) {
        if (!auth::parse_dhchap_key(k.dhchap_ctrl_key.view(), &w))
            return bad("host key of " + k.host + ": the controller secret: " + w);
        if (auth::parse_dhchap_key(k.dhchap_ctrl_key.view(), nullptr)->key ==
            auth::parse_dhchap_key(k.dhchap_key.view(), nullptr)->key)
            return bad("host key of " + k.host +
                       ": the controller secret must differ from the host's (a host would "
                       "otherwise accept its own answers as the controller's)");
    }
    for (auto& d : k.digests)
        if (!auth::parse_hash_name(d))
            return bad("host key of " + k.host + ": digest \"" + d +
                       "\" is not sha256, sha384 or sha512");
    for (auto& g : k.dhgroups)
        if (!auth::parse_dh_group(g))
            return bad("host key of " + k.host + ": DH group \"" + g +
                       "\" is not null or ffdhe2048, 3072, 4096, 6144, 8192");
    return {};
}

result<engine_config> parse_config(std::string_view text, std::string* why) {
    try {
        json j = json::parse(text);
        struct wipe_on_exit {  // whichever way parsing ends
            json& j;
            ~wipe_on_exit() {
                if (!j.is_object() || !j.contains("host_keys") || !j["host_keys"].is_array())
                    return;
                for (json& kj : j["host_keys"])
                    if (kj.is_object()) wipe_secrets(kj);
            }
        } wipe{j};
        if (!j.is_object()) throw bad_config("the configuration must be a JSON object");
        engine_config c;
        c.listen = get(j, "listen", std::vector<std::string>{});
        c.discovery_listen = get(j, "discovery_listen", std::vector<std::string>{});
        c.tls = get<std::string>(j, "tls", "");
        if (!c.tls.empty() && !nvmf::parse_tls_mode(c.tls))
            throw bad_config("\"tls\" is \"off\", \"required\" or \"allowed\"");
        if (j.contains("limits")) {
            const json& l = j["limits"];
            c.limits.max_queue_depth =
                get<uint16_t>(l, "max_queue_depth", c.limits.max_queue_depth);
            c.limits.max_io_queues = get<uint16_t>(l, "max_io_queues", c.limits.max_io_queues);
            c.limits.in_capsule_data =
                get<uint32_t>(l, "in_capsule_data", c.limits.in_capsule_data);
            c.limits.max_transfer = get<uint32_t>(l, "max_transfer", c.limits.max_transfer);
            c.limits.min_cntlid = get<uint16_t>(l, "min_cntlid", c.limits.min_cntlid);
            c.limits.max_cntlid = get<uint16_t>(l, "max_cntlid", c.limits.max_cntlid);
            if (c.limits.min_cntlid < 1 || c.limits.max_cntlid > 0xffef ||
                c.limits.min_cntlid > c.limits.max_cntlid)
                throw bad_config("\"min_cntlid\" and \"max_cntlid\" are a range within 1-65519");
        }
        for (const json& pj : get(j, "pools", json::array())) {
            pool_config pc;
            pc.name = get<std::string>(pj, "name", "");
            pc.path = get<std::string>(pj, "path", "");
            if (pc.name.empty() || pc.path.empty())
                throw bad_config("a pool needs a \"name\" and a \"path\"");
            pc.size = size_of(pj, "size");
            pc.cluster_size = size_of(pj, "cluster_size");
            pc.format_if_blank = get<bool>(pj, "format_if_blank", true);
            pc.purge = get<bool>(pj, "purge", false);
            c.pools.push_back(pc);
        }
        for (const json& xj : get(j, "nexuses", json::array())) {
            nexus_config x;
            x.uuid = get<std::string>(xj, "uuid", "");
            if (x.uuid.empty()) throw bad_config("a nexus needs a \"uuid\"");
            x.size = size_of(xj, "size");
            x.io_timeout_ms = get<uint32_t>(xj, "io_timeout_ms", 0);
            x.rebuild_rate = size_of(xj, "rebuild_rate");
            x.minority_policy = get<std::string>(xj, "minority_policy", "wait");
            if (x.minority_policy != "wait" && x.minority_policy != "proceed")
                throw bad_config("a nexus's \"minority_policy\" is \"wait\" or \"proceed\"");
            x.auto_rebuild = get<bool>(xj, "auto_rebuild", true);
            for (const json& cj : get(xj, "children", json::array())) {
                nexus_child_config ch;
                ch.uri = get<std::string>(cj, "uri", "");
                if (ch.uri.empty()) throw bad_config("a nexus child needs a \"uri\"");
                ch.uuid = get<std::string>(cj, "uuid", "");
                x.children.push_back(ch);
            }
            if (x.children.empty()) throw bad_config("a nexus needs \"children\"");
            c.nexuses.push_back(std::move(x));
        }
        for (const json& s : get(j, "subsystems", json::array())) {
            subsystem_config sc;
            sc.nqn = get<std::string>(s, "nqn", "");
            if (sc.nqn.empty()) throw bad_config("a subsystem has no \"nqn\"");
            sc.serial = get<std::string>(s, "serial", "");
            sc.model = get<std::string>(s, "model", sc.model);
            sc.hosts = get(s, "hosts", std::vector<std::string>{});
            sc.allow_any_host = get<bool>(s, "allow_any_host", sc.hosts.empty());
            sc.ana_state = get<std::string>(s, "ana_state", sc.ana_state);
            sc.standby_for = get<std::string>(s, "standby_for", "");
            if (!parse_ana_state(sc.ana_state))
                throw bad_config("subsystem " + sc.nqn + ": \"ana_state\" \"" + sc.ana_state +
                                 "\" is not optimized, non-optimized, inaccessible, "
                                 "persistent-loss or change");
            for (const json& n : get(s, "namespaces", json::array())) {
                namespace_config nc;
                nc.nsid = get<uint32_t>(n, "nsid", 0);
                nc.type = get<std::string>(n, "type", "file");
                nc.path = get<std::string>(n, "path", "");
                nc.size = size_of(n, "size");
                nc.block_size = get<uint32_t>(n, "block_size", 512);
                if (n.contains("uuid")) nc.uuid = get<std::string>(n, "uuid", "");
                nc.pool = get<std::string>(n, "pool", "");
                nc.volume = get<std::string>(n, "volume", "");
                nc.thin = get<bool>(n, "thin", true);
                if (nc.type == "volume" && (nc.pool.empty() || nc.volume.empty()))
                    throw bad_config("a \"volume\" namespace needs \"pool\" and \"volume\"");
                nc.nexus = get<std::string>(n, "nexus", "");
                if (nc.type == "nexus" && nc.nexus.empty())
                    throw bad_config("a \"nexus\" namespace needs \"nexus\" (its UUID)");
                sc.namespaces.push_back(nc);
            }
            c.subsystems.push_back(std::move(sc));
        }
        const json none = json::array();
        const json& host_keys = j.contains("host_keys") ? j["host_keys"] : none;
        if (!host_keys.is_array()) throw bad_config("\"host_keys\" is a list");
        for (const json& kj : host_keys) {
            if (!kj.is_object()) throw bad_config("a host key is an object");
            host_key_config k;
            k.host = get<std::string>(kj, "host", "");
            k.dhchap_key = secret_of(kj, "dhchap_key");
            k.dhchap_ctrl_key = secret_of(kj, "dhchap_ctrl_key");
            k.tls_key = secret_of(kj, "tls_key");
            k.digests = get(kj, "digests", std::vector<std::string>{});
            k.dhgroups = get(kj, "dhgroups", std::vector<std::string>{});
            std::string w;
            if (!check_host_key(k, &w)) throw bad_config(w);
            for (auto& other : c.host_keys)
                if (other.host == k.host)
                    throw bad_config("host key of " + k.host + " given twice");
            c.host_keys.push_back(std::move(k));
        }
        const json& volume_keys = j.contains("volume_keys") ? j["volume_keys"] : none;
        if (!volume_keys.is_array()) throw bad_config("\"volume_keys\" is a list");
        for (const json& kj : volume_keys) {
            if (!kj.is_object()) throw bad_config("a volume key is an object");
            volume_key_config k;
            k.target = get<std::string>(kj, "target", "");
            k.wrapped_key = get<std::string>(kj, "wrapped_key", "");
            const bool nexus = k.target.starts_with("nexus:");
            if (nexus ? k.target.size() != 6 + 36
                      : std::count(k.target.begin(), k.target.end(), '/') != 1 ||
                            k.target.front() == '/' || k.target.back() == '/')
                throw bad_config("volume key target \"" + k.target +
                                 "\" is not POOL/VOLUME or nexus:UUID");
            std::string w;
            if (!auth::wrapped_key_id(k.wrapped_key, &w))
                throw bad_config("volume key of " + k.target + ": " + w);
            k.next_wrapped_key = get<std::string>(kj, "next_wrapped_key", "");
            if (!k.next_wrapped_key.empty() && !auth::wrapped_key_id(k.next_wrapped_key, &w))
                throw bad_config("next volume key of " + k.target + ": " + w);
            if (kj.contains("rotation_rate")) {
                if (!kj["rotation_rate"].is_number_unsigned())
                    throw bad_config("rotation_rate of " + k.target +
                                     " must be a number of bytes per second");
                k.rotation_rate = kj["rotation_rate"].get<uint64_t>();
            }
            for (auto& other : c.volume_keys)
                if (other.target == k.target)
                    throw bad_config("volume key of " + k.target + " given twice");
            c.volume_keys.push_back(std::move(k));
        }
        return c;
    } catch (const json::parse_error& e) {
        // Not e.what(): it quotes the text last read, which may be a secret.
        if (why) *why = "not valid JSON (at byte " + std::to_string(e.byte) + ")";
    } catch (const json::exception& e) {
        if (why) *why = std::string("not valid JSON: ") + e.what();
    } catch (const bad_config& e) {
        if (why) *why = e.what();
    }
    return error{EINVAL};
}

}  // namespace weft::engine
