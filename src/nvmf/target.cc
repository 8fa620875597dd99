#include "nvmf/target.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "auth/dhchap.h"
#include "auth/tls_psk.h"
#include "nvme/log_pages.h"

namespace weft::nvmf {

const char* tls_mode_name(tls_mode m) {
    switch (m) {
        case tls_mode::required:
            return "required";
        case tls_mode::allowed:
            return "allowed";
        default:
            return "off";
    }
}

std::optional<tls_mode> parse_tls_mode(std::string_view s) {
    for (tls_mode m : {tls_mode::off, tls_mode::required, tls_mode::allowed})
        if (s == tls_mode_name(m)) return m;
    return std::nullopt;
}

bool valid_nqn(std::string_view nqn) {
    if (nqn.size() < 12 || nqn.size() > 223) return false;
    if (!nqn.starts_with("nqn.")) return false;
    // nqn.yyyy-mm.<something>
    auto date = nqn.substr(4, 7);
    for (size_t i = 0; i < 7; ++i) {
        if (i == 4) {
            if (date[i] != '-') return false;
        } else if (date[i] < '0' || date[i] > '9') {
            return false;
        }
    }
    return nqn.size() > 12 && nqn[11] == '.';
}

target::target(controller_limits limits)
    : limits_(limits),
      min_cntlid_(limits.min_cntlid),
      max_cntlid_(limits.max_cntlid),
      discovery_(std::make_shared<subsystem>(std::string(nvme::discovery_nqn),
                                             subsystem_kind::discovery, "weft-discovery",
                                             "weft discovery")) {}

result<std::shared_ptr<subsystem>> target::add_subsystem(const std::string& nqn, std::string serial,
                                                         std::string model) {
    if (!valid_nqn(nqn) || nqn == nvme::discovery_nqn) return error{EINVAL};
    std::lock_guard lock(mutex_);
    if (subsystems_.count(nqn)) return error{EEXIST};
    auto s = std::make_shared<subsystem>(nqn, subsystem_kind::nvm, std::move(serial),
                                         std::move(model), min_cntlid_, max_cntlid_);
    subsystems_.emplace(nqn, s);
    ++genctr_;
    return s;
}

void target::set_cntlid_range(uint16_t min, uint16_t max) {
    std::lock_guard lock(mutex_);
    min_cntlid_ = min;
    max_cntlid_ = max;
}

result<void> target::remove_subsystem(const std::string& nqn) {
    std::shared_ptr<subsystem> gone;
    {
        std::lock_guard lock(mutex_);
        auto it = subsystems_.find(nqn);
        if (it == subsystems_.end()) return error{ENOENT};
        gone = std::move(it->second);
        subsystems_.erase(it);
        ++genctr_;
    }
    gone->remove();
    return {};
}

std::shared_ptr<subsystem> target::find(const std::string& nqn) const {
    if (nqn == nvme::discovery_nqn) return discovery_;
    std::lock_guard lock(mutex_);
    auto it = subsystems_.find(nqn);
    return it == subsystems_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<subsystem>> target::subsystems() const {
    std::lock_guard lock(mutex_);
    std::vector<std::shared_ptr<subsystem>> out;
    for (auto& [n, s] : subsystems_) out.push_back(s);
    return out;
}

void target::add_listen_address(const socket_address& addr, tls_mode tls) {
    std::lock_guard lock(mutex_);
    addresses_.push_back({addr, tls});
    ++genctr_;
}

void target::remove_listen_address(const socket_address& addr) {
    std::lock_guard lock(mutex_);
    std::erase_if(addresses_,
                  [&](const listen_address& a) { return a.addr.to_string() == addr.to_string(); });
    ++genctr_;
}

std::vector<std::byte> target::discovery_log_page(const std::string& hostnqn) const {
    std::lock_guard lock(mutex_);
    std::vector<nvme::discovery_log_entry> entries;
    auto add = [&](const subsystem& s, nvme::discovery_subtype type) {
        uint16_t portid = 1;
        for (auto& [a, tls] : addresses_) {
            nvme::discovery_log_entry e{};
            e.trtype = 3;  // TCP
            e.adrfam = a.storage.ss_family == AF_INET6 ? 2 : 1;
            e.subtype = uint8_t(type);
            // TREQ: secure channel required (01b) or not (10b); bit 2: SQ
            // flow control disable supported (the queues honour Connect
            // CATTR bit 2).
            e.treq = (tls == tls_mode::required ? 0x1 : 0x2) | 0x4;
            e.portid = portid++;
            e.cntlid = 0xffff;
            e.asqsz = 32;
            std::string addr = a.to_string();
            std::string host = addr.substr(0, addr.rfind(':'));
            if (host.starts_with('[')) host = host.substr(1, host.size() - 2);
            nvme::set_nqn(e.trsvcid, std::to_string(a.port()));  // NUL-padded, as nvmet does
            nvme::set_nqn(e.traddr, host);
            nvme::set_nqn(e.subnqn, s.nqn());
            e.tsas[0] = tls == tls_mode::off ? 0 : 2;  // SECTYPE: none or TLS 1.3
            entries.push_back(e);
        }
    };
    for (auto& [nqn, s] : subsystems_)
        if (s->host_allowed(hostnqn)) add(*s, nvme::discovery_subtype::nvme);
    add(*discovery_, nvme::discovery_subtype::current_discovery);
    std::vector<std::byte> page(sizeof(nvme::discovery_log_header) + entries.size() * 1024);
    nvme::discovery_log_header h{};
    h.genctr = genctr_;
    h.numrec = entries.size();
    std::memcpy(page.data(), &h, sizeof h);
    for (size_t i = 0; i < entries.size(); ++i)
        std::memcpy(page.data() + sizeof h + i * 1024, &entries[i], 1024);
    return page;
}

void target::set_host_auth(const std::string& hostnqn, std::shared_ptr<const host_auth> a) {
    std::lock_guard lk(mutex_);
    auto it = host_auth_.find(hostnqn);
    // Keys generated with a secret go with it (the same secret set again,
    // as a config reload does, keeps them).
    const auth::secret_bytes* old = it == host_auth_.end() ? nullptr : &it->second->key.key;
    bool same =
        a && old && it->second->key.transform == a->key.transform &&
        auth::same_secret({old->data(), old->size()}, {a->key.key.data(), a->key.key.size()});
    if (!same)
        std::erase_if(generated_, [&](const generated_psk& g) { return g.hostnqn == hostnqn; });
    if (a)
        host_auth_[hostnqn] = std::move(a);
    else
        host_auth_.erase(hostnqn);
}

bool target::add_generated_psk(const std::string& hostnqn, const std::string& subnqn,
                               const std::shared_ptr<const host_auth>& from,
                               auth::derived_psk psk) {
    auto now = std::chrono::steady_clock::now();
    std::lock_guard lk(mutex_);
    // An exchange that began before the host's secret changed or went.
    auto cur = host_auth_.find(hostnqn);
    if (!from || cur == host_auth_.end() || cur->second != from) return false;
    std::erase_if(generated_, [&](const generated_psk& g) {
        return g.expires <= now || g.psk.identity == psk.identity;
    });
    auto pair = [&](const generated_psk& g) { return g.hostnqn == hostnqn && g.subnqn == subnqn; };
    size_t mine = std::count_if(generated_.begin(), generated_.end(), pair);
    for (auto it = generated_.begin(); mine >= generated_per_pair && it != generated_.end();) {
        if (pair(*it)) {
            it = generated_.erase(it);
            --mine;
        } else {
            ++it;
        }
    }
    generated_.push_back({hostnqn, subnqn, now + std::chrono::hours(1), std::move(psk)});
    return true;
}

std::shared_ptr<const host_auth> target::find_host_auth(const std::string& hostnqn) const {
    std::lock_guard lk(mutex_);
    auto it = host_auth_.find(hostnqn);
    return it == host_auth_.end() ? nullptr : it->second;
}

void target::set_host_tls_key(const std::string& hostnqn, std::shared_ptr<const auth::tls_key> k) {
    std::lock_guard lk(mutex_);
    if (k)
        tls_keys_[hostnqn] = std::move(k);
    else
        tls_keys_.erase(hostnqn);
}

std::shared_ptr<const auth::tls_key> target::find_host_tls_key(const std::string& hostnqn) const {
    std::lock_guard lk(mutex_);
    auto it = tls_keys_.find(hostnqn);
    return it == tls_keys_.end() ? nullptr : it->second;
}

std::optional<auth::derived_psk> target::find_tls_psk(std::string_view identity) const {
    auto id = auth::parse_identity(identity);
    if (!id) return std::nullopt;
    if (id->type == 'G') {
        auto now = std::chrono::steady_clock::now();
        std::lock_guard lk(mutex_);
        for (auto& g : generated_)
            if (g.psk.identity == identity && g.expires > now) return g.psk;
        return std::nullopt;
    }
    if (id->type != 'R') return std::nullopt;
    auto key = find_host_tls_key(id->hostnqn);
    if (!key || auth::tls_cipher_hash(*key) != id->hash) return std::nullopt;
    for (auto d : {auth::derivation::rfc8446, auth::derivation::compat}) {
        auto psk = auth::derive_tls_psk(*key, id->hostnqn, id->subnqn, id->version, d);
        if (!psk) return std::nullopt;
        // v0 has no digest to tell the derivations apart: RFC 8446's.
        if (id->version == 0 || psk->identity == identity) return std::move(psk.value());
    }
    return std::nullopt;
}

}  // namespace weft::nvmf
