#include "engine/config_applier.h"

#include "bdev/crypto/crypto_bdev.h"
#include "engine/rekey_journal.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <set>

#include "bdev/error/error_bdev.h"
#include "bdev/stats/stats_bdev.h"
#include "bdev/uring/uring_bdev.h"
#include "nexus/child_uri.h"

namespace weft::engine {

namespace {

// Stable identifiers from the subsystem NQN and NSID (FNV-1a), so a host sees
// the same UUID/NGUID/EUI-64 after a restart.
nvmf::ns_ids make_ids(const std::string& nqn, uint32_t nsid) {
    auto fnv = [&](uint64_t seed) {
        uint64_t h = 1469598103934665603ull ^ seed;
        for (char c : nqn + "/" + std::to_string(nsid)) h = (h ^ uint8_t(c)) * 1099511628211ull;
        return h;
    };
    nvmf::ns_ids ids;
    uint64_t a = fnv(1), b = fnv(2), c = fnv(3), d = fnv(4);
    std::memcpy(ids.uuid.data(), &a, 8);
    std::memcpy(ids.uuid.data() + 8, &b, 8);
    ids.uuid[6] = uint8_t((ids.uuid[6] & 0x0f) | 0x40);  // version 4 layout
    ids.uuid[8] = uint8_t((ids.uuid[8] & 0x3f) | 0x80);  // RFC 4122 variant
    std::memcpy(ids.nguid.data(), &c, 8);
    std::memcpy(ids.nguid.data() + 8, &d, 8);
    std::memcpy(ids.eui64.data(), &c, 8);
    ids.eui64[0] = 0x02;  // locally administered
    return ids;
}

bool parse_uuid(const std::string& s, std::array<uint8_t, 16>& out) {
    std::string hex;
    for (char ch : s)
        if (ch != '-') hex += ch;
    if (hex.size() != 32) return false;
    for (size_t i = 0; i < 16; ++i) {
        unsigned v = 0;
        if (sscanf(hex.c_str() + 2 * i, "%2x", &v) != 1) return false;
        out[i] = uint8_t(v);
    }
    return true;
}

result<std::shared_ptr<bdev::bdev>> make_bdev(const std::string& name, const namespace_config& n,
                                              std::string* why) {
    uint64_t blocks = n.block_size ? n.size / n.block_size : 0;
    if (n.type == "malloc" || n.type == "null") {
        if (blocks == 0) {
            *why = "needs a \"size\" of at least one block";
            return error{EINVAL};
        }
        std::unique_ptr<bdev::bdev> d = n.type == "malloc"
                                            ? bdev::make_malloc_bdev(name, blocks, n.block_size)
                                            : bdev::make_null_bdev(name, blocks, n.block_size);
        if (!d) {
            *why = "bad size or block size (a power of two from 512 to 65536)";
            return error{EINVAL};
        }
        return std::shared_ptr<bdev::bdev>(std::move(d));
    }
    if (n.type == "file") {
        if (n.path.empty()) {
            *why = "needs a \"path\"";
            return error{EINVAL};
        }
        bdev::uring_options opt;
        opt.create = n.size > 0;
        opt.create_bytes = n.size;
        opt.block_size = n.block_size;
        auto dev = bdev::open_uring_bdev(name, n.path, opt);
        if (!dev) {
            *why = n.path + ": " + dev.err().message();
            return dev.err();
        }
        return std::shared_ptr<bdev::bdev>(std::move(dev.value()));
    }
    *why = "unknown namespace type \"" + n.type + "\" (malloc, null or file)";
    return error{EINVAL};
}

}  // namespace

std::vector<config_applier::served_ns> config_applier::served() const {
    std::vector<served_ns> out;
    for (auto& [nqn, table] : applied_)
        for (auto& [nsid, st] : table) out.push_back({nqn, nsid, st.cfg, st.stats});
    return out;
}

void config_applier::retire(const ns_state& st) {
    if (!st.stats) return;
    for (auto& [core, t] : st.stats->per_reactor()) retired_[core] += t;
}

std::string config_applier::nqn_serving(const std::string& pool, const std::string& volume) const {
    for (auto& [nqn, table] : applied_)
        for (auto& [nsid, st] : table)
            if (st.cfg.type == "volume" && st.cfg.pool == pool && st.cfg.volume == volume)
                return nqn;
    return {};
}

std::string config_applier::nqn_serving_nexus(const std::string& uuid) const {
    for (auto& [nqn, table] : applied_)
        for (auto& [nsid, st] : table)
            if (st.cfg.type == "nexus" && st.cfg.nexus == uuid) return nqn;
    return {};
}

std::string config_applier::nexus_using(const std::string& pool, const std::string& volume) const {
    std::string want = "pool://" + pool + "/" + volume;
    for (auto& [id, n] : nexuses_)
        for (auto& u : n->child_uris())
            if (u == want) return id;
    return {};
}

std::shared_ptr<nexus::nexus> config_applier::find_nexus(const std::string& uuid) const {
    auto it = nexuses_.find(uuid);
    return it == nexuses_.end() ? nullptr : it->second;
}

task<void> config_applier::drop_nexus(const std::string& uuid) {
    auto it = nexuses_.find(uuid);
    if (it == nexuses_.end()) co_return;
    auto n = it->second;
    nexuses_.erase(it);
    co_await n->close();
}

std::shared_ptr<bdev::fault_control> config_applier::faults(const std::string& pool,
                                                            const std::string& volume) {
    auto& f = faults_[pool + "/" + volume];
    if (!f) f = std::make_shared<bdev::fault_control>();
    return f;
}

nexus::child_factory config_applier::child_factory(std::chrono::milliseconds io_timeout) {
    child_sources src;
    src.find_pool = [this](const std::string& name) { return find_pool(name); };
    src.faults = [this](const std::string& p, const std::string& v) { return faults(p, v); };
    src.host = host_;
    return make_child_factory(std::move(src), io_timeout);
}

nexus::options config_applier::nexus_options(const nexus_config& c) {
    nexus::options o;
    if (c.io_timeout_ms) o.io_timeout = std::chrono::milliseconds(c.io_timeout_ms);
    if (c.rebuild_rate) o.rebuild_rate = c.rebuild_rate;
    o.minority = c.minority_policy == "proceed" ? nexus::options::minority_policy::proceed
                                                : nexus::options::minority_policy::wait;
    o.auto_rebuild = c.auto_rebuild;
    return o;
}

task<void> config_applier::apply_nexuses(const engine_config& cfg,
                                         std::vector<std::string>& problems) {
    // A nexus no longer wanted has no problem any more.
    std::erase_if(nexus_problems_, [&](const auto& kv) {
        return std::none_of(cfg.nexuses.begin(), cfg.nexuses.end(),
                            [&](const nexus_config& x) { return x.uuid == kv.first; });
    });
    for (auto& x : cfg.nexuses) {
        if (nexuses_.count(x.uuid)) continue;
        nexus::nexus::params p;
        auto id = pool::parse_uuid(x.uuid);
        if (!id) {
            problems.push_back(fmt::format("nexus {}: not a UUID", x.uuid));
            continue;
        }
        p.id = *id;
        p.size_bytes = x.size;
        for (auto& ch : x.children) {
            p.children.push_back(ch.uri);
            auto cid = pool::parse_uuid(ch.uuid);
            p.known_ids.push_back(cid ? *cid : pool::uuid{});
        }
        p.opt = nexus_options(x);
        std::string why;
        auto n = co_await nexus::nexus::open(p, child_factory(p.opt.io_timeout), &why);
        if (!n) {
            nexus_problems_[x.uuid] = why;
            problems.push_back(fmt::format("nexus {}: {}", x.uuid, why));
            continue;
        }
        nexus_problems_.erase(x.uuid);
        nexuses_[x.uuid] = n.value();
    }
}

std::shared_ptr<pool::pool> config_applier::find_pool(const std::string& name) const {
    auto it = pools_.find(name);
    return it == pools_.end() ? nullptr : it->second.p;
}

void config_applier::adopt_pool(const std::string& name, const std::string& path,
                                std::shared_ptr<pool::pool> p) {
    pools_[name] = {std::move(p), path};
}

void config_applier::apply_host_keys(const engine_config& cfg, std::vector<std::string>& problems) {
    std::set<std::string> now;
    for (auto& k : cfg.host_keys) {
        std::string why;
        if (!check_host_key(k, &why)) {
            // Fail closed: a secret that was in force stays in force.
            problems.push_back(why);
            if (host_keys_.count(k.host)) now.insert(k.host);
            continue;
        }
        std::shared_ptr<nvmf::host_auth> a;
        if (!k.dhchap_key.empty()) {
            a = std::make_shared<nvmf::host_auth>();
            a->key = auth::parse_dhchap_key(k.dhchap_key.view(), nullptr).value();
            if (!k.dhchap_ctrl_key.empty())
                a->ctrl_key = auth::parse_dhchap_key(k.dhchap_ctrl_key.view(), nullptr).value();
            for (auto& d : k.digests) a->digests.push_back(*auth::parse_hash_name(d));
            for (auto& g : k.dhgroups) a->dhgroups.push_back(*auth::parse_dh_group(g));
        }
        const bool had_auth = bool(target_.find_host_auth(k.host));
        const bool had_tls = bool(target_.find_host_tls_key(k.host));
        target_.set_host_auth(k.host, a);
        target_.set_host_tls_key(k.host,
                                 k.tls_key.empty()
                                     ? nullptr
                                     : std::make_shared<const auth::tls_key>(
                                           auth::parse_tls_key(k.tls_key.view(), nullptr).value()));
        if (a && !had_auth)
            spdlog::info("host {} must authenticate (DH-HMAC-CHAP{})", k.host,
                         k.dhchap_ctrl_key.empty() ? "" : ", bidirectional");
        if (!a && had_auth) spdlog::info("host {} no longer authenticates", k.host);
        if (!k.tls_key.empty() && !had_tls) spdlog::info("host {} has a TLS key", k.host);
        if (k.tls_key.empty() && had_tls) spdlog::info("host {} no longer has a TLS key", k.host);
        now.insert(k.host);
    }
    for (auto& h : host_keys_)
        if (!now.count(h)) {
            target_.set_host_auth(h, nullptr);
            target_.set_host_tls_key(h, nullptr);
            spdlog::info("host {} no longer has secrets here (they were removed)", h);
        }
    host_keys_ = std::move(now);
}

task<std::vector<std::string>> config_applier::apply(const engine_config& cfg) {
    std::vector<std::string> problems;
    apply_host_keys(cfg, problems);
    co_await apply_pools(cfg, problems);
    co_await apply_nexuses(cfg, problems);
    std::set<std::string> wanted;
    for (auto& s : cfg.subsystems) {
        if (!wanted.insert(s.nqn).second) {
            problems.push_back(fmt::format("subsystem {} is defined twice", s.nqn));
            continue;
        }
        co_await apply_subsystem(s, problems);
    }
    for (auto it = applied_.begin(); it != applied_.end();) {
        if (wanted.count(it->first)) {
            ++it;
            continue;
        }
        // Controllers first (their hosts see the connections end), then the
        // namespaces: a command in between is dropped, not failed.
        if (auto ss = target_.find(it->first)) {
            (void)target_.remove_subsystem(it->first);
            auto table = ss->namespaces();
            for (auto& [nsid, n] : *table) (void)ss->remove_namespace(nsid);
        }
        spdlog::info("subsystem {} removed", it->first);
        for (auto& [nsid, st] : it->second) retire(st);
        it = applied_.erase(it);
    }
    // Nexuses no longer configured close once no namespace serves them.
    std::set<std::string> nexuses_wanted;
    for (auto& x : cfg.nexuses) nexuses_wanted.insert(x.uuid);
    std::vector<std::string> gone;
    for (auto& [id, n] : nexuses_)
        if (!nexuses_wanted.count(id) && nqn_serving_nexus(id).empty()) gone.push_back(id);
    for (auto& id : gone) {
        co_await drop_nexus(id);
        spdlog::info("nexus {} closed", id);
    }
    // Pools no longer configured close once no namespace or nexus uses them.
    std::set<std::string> pools_wanted;
    for (auto& p : cfg.pools) pools_wanted.insert(p.name);
    for (auto it = pools_.begin(); it != pools_.end();) {
        bool used = false;
        for (auto& [nqn, served] : applied_)
            for (auto& [nsid, st] : served)
                used |= st.cfg.type == "volume" && st.cfg.pool == it->first;
        for (auto& [id, n] : nexuses_)
            for (auto& u : n->child_uris()) used |= u.starts_with("pool://" + it->first + "/");
        if (!pools_wanted.count(it->first) && !used) {
            spdlog::info("pool {} closed", it->first);
            it = pools_.erase(it);
        } else {
            ++it;
        }
    }
    co_return problems;
}

task<void> config_applier::apply_pools(const engine_config& cfg,
                                       std::vector<std::string>& problems) {
    for (auto& pc : cfg.pools) {
        if (auto it = pools_.find(pc.name); it != pools_.end()) {
            it->second.p->set_purge(pc.purge);
            continue;
        }
        bdev::uring_options opt;
        opt.create = pc.size > 0;
        opt.create_bytes = pc.size;
        auto dev = bdev::open_uring_bdev(pc.path, pc.path, opt);
        if (!dev) {
            pool_problems_[pc.name] = pc.path + ": " + dev.err().message();
            problems.push_back(
                fmt::format("pool {}: {}: {}", pc.name, pc.path, dev.err().message()));
            continue;
        }
        std::shared_ptr<bdev::bdev> shared(std::move(dev.value()));
        std::string why;
        auto opened = co_await pool::pool::open(shared, &why);
        if (!opened && opened.err().code == ENODATA && pc.format_if_blank) {
            // A blank device: format it.
            pool::create_options co;
            if (pc.cluster_size) co.cluster_size = pc.cluster_size;
            why.clear();
            opened = co_await pool::pool::create(shared, pc.name, co, &why);
            if (opened) spdlog::info("pool {}: created on {}", pc.name, pc.path);
        } else if (opened) {
            spdlog::info("pool {}: imported from {}", pc.name, pc.path);
        }
        if (!opened) {
            pool_problems_[pc.name] = why.empty() ? opened.err().message() : why;
            problems.push_back(
                fmt::format("pool {}: {}", pc.name, why.empty() ? opened.err().message() : why));
            continue;
        }
        if (opened.value()->geo().name != pc.name) {
            pool_problems_[pc.name] =
                fmt::format("{} holds pool \"{}\"", pc.path, opened.value()->geo().name);
            problems.push_back(fmt::format("pool {}: {} holds pool \"{}\", not \"{}\"", pc.name,
                                           pc.path, opened.value()->geo().name, pc.name));
            continue;
        }
        pool_problems_.erase(pc.name);
        opened.value()->set_purge(pc.purge);
        pools_[pc.name] = {opened.value(), pc.path};
    }
}

task<result<std::shared_ptr<bdev::bdev>>> config_applier::make_device(const std::string& nqn,
                                                                      const namespace_config& n,
                                                                      std::string* why) {
    auto k = volume_keys_.find(key_target(n));
    if (k == volume_keys_.end()) co_return co_await make_plain_device(nqn, n, why);
    // Encrypted: served through the encrypting layer, or not at all.
    if (auto live = live_crypto_device(k->first)) co_return std::shared_ptr<bdev::bdev>(live);
    const volume_key_config key = k->second;  // the map may change while we wait
    auto dev = co_await make_plain_device(nqn, n, why);
    if (!dev) co_return dev;
    auto c = co_await make_crypto(key, dev.value(), why);
    if (!c) co_return c.err();
    co_return std::shared_ptr<bdev::bdev>(c.value());
}

std::shared_ptr<bdev::crypto_device> config_applier::live_crypto_device(
    const std::string& target) const {
    auto it = crypto_.find(target);
    return it == crypto_.end() ? nullptr : it->second.lock();
}

task<result<std::shared_ptr<bdev::crypto_device>>> config_applier::crypto_device_of(
    const std::string& target, std::string* why) {
    if (auto live = live_crypto_device(target)) co_return live;
    auto k = volume_keys_.find(target);
    if (k == volume_keys_.end()) {
        *why = target + " has no key";
        co_return error{ENOKEY};
    }
    namespace_config n;
    if (target.starts_with("nexus:")) {
        n.type = "nexus";
        n.nexus = target.substr(6);
    } else {
        n.type = "volume";
        n.pool = target.substr(0, target.find('/'));
        n.volume = target.substr(target.find('/') + 1);
        n.size = 0;  // never made here
    }
    const volume_key_config key = k->second;  // the map may change while we wait
    auto dev = co_await make_plain_device("", n, why);
    if (!dev) co_return dev.err();
    co_return co_await make_crypto(key, dev.value(), why);
}

task<result<std::shared_ptr<bdev::crypto_device>>> config_applier::make_crypto(
    volume_key_config k, std::shared_ptr<bdev::bdev> plain, std::string* why) {
    std::string w;
    auto unwrap = [&](const std::string& wrapped, const char* which) -> result<auth::secret_bytes> {
        auto dek = auth::unwrap_data_key(keks_, wrapped, &w);
        if (!dek)
            *why = std::string("the ") + which + " of " + k.target + " does not unwrap: " + w +
                   (keks_.empty() ? " (start weft-engine with --kek-file)" : "");
        return dek;
    };
    auto dek = unwrap(k.wrapped_key, "data key");
    if (!dek) co_return dek.err();
    auto c = bdev::make_crypto_bdev(
        std::move(plain),
        std::span<const uint8_t, bdev::crypto_key_bytes>(dek->data(), bdev::crypto_key_bytes), &w);
    if (!c) {
        *why = "encrypting " + k.target + ": " + w;
        co_return error{EINVAL};
    }
    if (!k.next_wrapped_key.empty()) {
        // A rotation under way: the new key below its boundary, which its
        // journal says (its last chunk finished first).
        auto next = unwrap(k.next_wrapped_key, "new data key");
        if (!next) co_return next.err();
        rekey_journal journal(rekey_dir_, k.target);
        auto rec = journal.load(&w);
        if (!rec) {
            *why = "the key rotation of " + k.target + ": " + w;
            co_return rec.err();
        }
        if (rec.value() && rec.value()->key_tag != bdev::rekey_key_tag(*next)) {
            // Not this rotation's: where it got is unknown, so nothing is
            // served rather than blocks read with the wrong key.
            *why = "the key rotation of " + k.target + ": " + journal.path() +
                   " is of another rotation (its key tag differs); it is not served";
            co_return error{EINVAL};
        }
        const uint64_t from = rec.value() ? rec.value()->lba : 0;
        auto begun = co_await c->begin_rekey(
            std::span<const uint8_t, bdev::crypto_key_bytes>(next->data(), bdev::crypto_key_bytes),
            from, &w);
        if (!begun) {
            *why = "the key rotation of " + k.target + ": " + w;
            co_return begun.err();
        }
        if (rec.value()) {
            int rc = co_await c->recover(*rec.value());
            if (rc) {
                *why = fmt::format(
                    "the key rotation of {}: its last chunk (blocks {}..{}) could "
                    "not be finished: {}",
                    k.target, rec.value()->lba, rec.value()->lba + rec.value()->blocks,
                    std::strerror(-rc));
                co_return error{-rc};
            }
        }
    }
    std::erase_if(crypto_, [](const auto& e) { return e.second.expired(); });
    crypto_[k.target] = c;
    co_return c;
}

task<result<std::shared_ptr<bdev::bdev>>> config_applier::make_plain_device(
    const std::string& nqn, const namespace_config& n, std::string* why) {
    if (n.type == "nexus") {
        auto x = find_nexus(n.nexus);
        if (!x) {
            *why = "no nexus " + n.nexus +
                   (nexus_problem(n.nexus).empty() ? std::string()
                                                   : " (" + nexus_problem(n.nexus) + ")");
            co_return error{ENOENT};
        }
        co_return x->bdev();
    }
    if (n.type != "volume") co_return make_bdev(nqn + "/" + std::to_string(n.nsid), n, why);
    auto it = pools_.find(n.pool);
    if (it == pools_.end()) {
        *why = "no pool named \"" + n.pool + "\"";
        co_return error{ENOENT};
    }
    pool::pool& p = *it->second.p;
    auto id = p.find(n.volume);
    if (!id) {
        if (n.size == 0) {
            *why = "volume " + n.volume + " does not exist and has no \"size\" to create it with";
            co_return error{ENOENT};
        }
        auto created = co_await p.create_volume(n.volume, n.size, n.thin);
        if (!created) {
            *why = "creating volume " + n.volume + ": " + created.err().message();
            co_return created.err();
        }
        spdlog::info("pool {}: volume {} created ({} bytes, {})", n.pool, n.volume, n.size,
                     n.thin ? "thin" : "thick");
        id = created.value();
    }
    auto dev = p.open_volume(*id);
    if (!dev) {
        *why = "opening volume " + n.volume + ": " + dev.err().message();
        co_return dev;
    }
    co_return bdev::make_error_bdev(dev.value(), faults(n.pool, n.volume));
}

task<void> config_applier::resize(const std::string& nqn, uint32_t nsid, ns_state& st,
                                  const namespace_config& n, std::vector<std::string>& problems) {
    uint64_t want = n.size / st.dev->block_size();
    if (!n.size || want == st.dev->num_blocks()) co_return;
    if (auto k = volume_keys_.find(key_target(n));
        k != volume_keys_.end() && !k->second.next_wrapped_key.empty()) {
        // A rotation's boundary and journal are of the size it started with.
        problems.push_back(
            fmt::format("subsystem {} namespace {}: not resized to {} bytes while "
                        "the data key of {} is being rotated",
                        nqn, nsid, n.size, k->first));
        co_return;
    }
    result<void> r;
    if (st.cfg.type == "volume") {
        auto p = pools_.find(st.cfg.pool);
        std::optional<pool::uuid> id;
        if (p != pools_.end()) id = p->second.p->find(st.cfg.volume);
        if (id)
            r = co_await p->second.p->resize_volume(*id, n.size);
        else
            r = error{ENOENT};
    } else {
        r = st.dev->resize(want);
    }
    if (!r) {
        problems.push_back(fmt::format("subsystem {} namespace {}: resize to {} bytes: {}", nqn,
                                       nsid, n.size, r.err().message()));
        co_return;
    }
    spdlog::info("subsystem {} namespace {}: resized to {} blocks", nqn, nsid, want);
    st.cfg.size = n.size;
}

task<void> config_applier::apply_subsystem(const subsystem_config& s,
                                           std::vector<std::string>& problems) {
    auto ss = target_.find(s.nqn);
    if (!ss) {
        std::string serial =
            s.serial.empty() ? fmt::format("WEFT{:08X}", uint32_t(std::hash<std::string>{}(s.nqn)))
                             : s.serial;
        auto added = target_.add_subsystem(s.nqn, serial, s.model);
        if (!added) {
            problems.push_back(
                fmt::format("subsystem {}: not a valid NQN (nqn.yyyy-mm.domain:name)", s.nqn));
            co_return;
        }
        ss = added.value();
        applied_[s.nqn];
    }
    ss->set_access(s.allow_any_host, std::set<std::string>(s.hosts.begin(), s.hosts.end()));
    // A path that stops serving says so before its namespaces change; one
    // that starts serving, once they are in place.
    auto ana = parse_ana_state(s.ana_state);
    const bool usable = ana == nvme::ana_state::optimized || ana == nvme::ana_state::non_optimized;
    auto apply_ana = [&] {
        if (ana && *ana != ss->ana_state()) {
            ss->set_ana_state(*ana);
            spdlog::info("subsystem {}: ANA state {}", s.nqn, s.ana_state);
        }
    };
    if (!usable) apply_ana();
    auto& served = applied_[s.nqn];

    std::set<uint32_t> keep;
    for (auto& n : s.namespaces) {
        // An entry without an NSID matches a served one with the same path.
        uint32_t nsid = n.nsid;
        if (nsid == 0)
            for (auto& [id, st] : served)
                if (!n.path.empty() && st.cfg.path == n.path) nsid = id;
        auto it = nsid ? served.find(nsid) : served.end();
        if (it != served.end()) {
            keep.insert(nsid);
            // A key is never put on or taken off under the hosts.
            if (it->second.encrypted != (volume_keys_.count(key_target(n)) > 0))
                problems.push_back(fmt::format(
                    "subsystem {} namespace {}: {} has {} key now; it is served as it was ({}) "
                    "until it is shared again",
                    s.nqn, nsid, key_target(n), it->second.encrypted ? "no" : "a",
                    it->second.encrypted ? "encrypted" : "plain"));
            co_await resize(s.nqn, nsid, it->second, n, problems);
            continue;
        }
        std::string why;
        auto raw = co_await make_device(s.nqn, n, &why);
        if (!raw) {
            problems.push_back(fmt::format("subsystem {} namespace {}: {}", s.nqn, n.nsid, why));
            continue;
        }
        // Every served namespace is counted (metrics, GetStats).
        auto stats = std::make_shared<bdev::io_stats>();
        result<std::shared_ptr<bdev::bdev>> dev = bdev::make_stats_bdev(raw.value(), stats);
        // The identifiers follow the NSID the namespace will get.
        uint32_t want_nsid = n.nsid;
        if (want_nsid == 0) {
            auto table = ss->namespaces();
            want_nsid = 1;
            while (table->count(want_nsid)) ++want_nsid;
        }
        nvmf::ns_ids ids = make_ids(s.nqn, want_nsid);
        if (n.uuid && !parse_uuid(*n.uuid, ids.uuid)) {
            problems.push_back(
                fmt::format("subsystem {} namespace {}: bad uuid {}", s.nqn, n.nsid, *n.uuid));
            continue;
        }
        auto added = ss->add_namespace(want_nsid, dev.value(), ids);
        if (!added) {
            problems.push_back(
                fmt::format("subsystem {} namespace {}: {}", s.nqn, want_nsid,
                            added.err().code == EEXIST ? "NSID in use" : added.err().message()));
            continue;
        }
        keep.insert(added.value());
        served[added.value()] = {n, dev.value(), stats, volume_keys_.count(key_target(n)) > 0};
        spdlog::info("subsystem {} namespace {}: {} {} ({} blocks of {} B)", s.nqn, added.value(),
                     n.type,
                     n.type == "volume"  ? n.pool + "/" + n.volume
                     : n.type == "nexus" ? n.nexus
                     : n.path.empty()    ? "(memory)"
                                         : n.path,
                     dev.value()->num_blocks(), dev.value()->block_size());
    }
    for (auto it = served.begin(); it != served.end();) {
        if (keep.count(it->first)) {
            ++it;
            continue;
        }
        (void)ss->remove_namespace(it->first);
        spdlog::info("subsystem {} namespace {} removed", s.nqn, it->first);
        retire(it->second);
        it = served.erase(it);
    }
    if (usable) apply_ana();
}

}  // namespace weft::engine
