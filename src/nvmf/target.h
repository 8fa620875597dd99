// The NVMe-oF target of one engine: its subsystems, the discovery subsystem,
// and the addresses it listens on (for the discovery log page).
// Thread-safe; configuration changes are rare and take a mutex.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "auth/tls_psk.h"
#include "nvmf/controller.h"
#include "nvmf/host_auth.h"
#include "nvmf/subsystem.h"
#include "nvmf/tcp/tls.h"
#include "runtime/net.h"

namespace weft::nvmf {

// Whether a listener's connections run TLS 1.3 (NVMe/TCP 3.6): never,
// always, or as each host chooses (its first byte tells: a TLS record or an
// ICReq). The discovery log page says which (TREQ, TSAS).
enum class tls_mode { off, required, allowed };
const char* tls_mode_name(tls_mode m);  // "off", "required", "allowed"
std::optional<tls_mode> parse_tls_mode(std::string_view s);

class target {
  public:
    explicit target(controller_limits limits = {});

    const controller_limits& limits() const { return limits_; }

    // The controller IDs that subsystems added from now on hand out (those
    // already there keep theirs): the control plane assigns each node a
    // range of its own. Any thread.
    void set_cntlid_range(uint16_t min, uint16_t max);

    // Fails with EEXIST for a duplicate NQN, EINVAL for a malformed one.
    result<std::shared_ptr<subsystem>> add_subsystem(const std::string& nqn, std::string serial,
                                                     std::string model);
    // Removes the subsystem and ends its controllers (subsystem::remove);
    // its namespaces stay until the caller removes them. On a reactor.
    result<void> remove_subsystem(const std::string& nqn);
    // The named subsystem, or the discovery subsystem for its well-known NQN.
    std::shared_ptr<subsystem> find(const std::string& nqn) const;
    std::vector<std::shared_ptr<subsystem>> subsystems() const;

    // Addresses the target serves on, for the discovery log page.
    void add_listen_address(const socket_address& addr, tls_mode tls = tls_mode::off);
    void remove_listen_address(const socket_address& addr);

    // The discovery log page as `hostnqn` may see it: only subsystems that
    // admit it, one entry per listen address, plus the discovery subsystem.
    std::vector<std::byte> discovery_log_page(const std::string& hostnqn) const;

    // DH-HMAC-CHAP secrets by host NQN (as Linux nvmet keeps them per host):
    // a host that has one must authenticate on every queue it connects to an
    // NVM subsystem (not discovery). Null removes it. A queue keeps the
    // secret it connected with; new connections use the new one.
    void set_host_auth(const std::string& hostnqn, std::shared_ptr<const host_auth> a);
    std::shared_ptr<const host_auth> find_host_auth(const std::string& hostnqn) const;
    // TLS pre-shared keys by host NQN, in their configured form (as
    // `nvme connect --tls-key` takes it): the key a TLS connection uses is
    // derived from it for the host and the subsystem its identity names.
    // Null removes it. Connections already up keep theirs.
    void set_host_tls_key(const std::string& hostnqn, std::shared_ptr<const auth::tls_key> k);
    std::shared_ptr<const auth::tls_key> find_host_tls_key(const std::string& hostnqn) const;
    // The key for a PSK identity a host offers in its ClientHello: the
    // host has a configured key, the identity is well formed and its hash
    // is the key's (v1: the digest matches, which also tells libnvme's
    // older derivation from RFC 8446's).
    // A generated identity (secure channel concatenation, NVMe1G...) is
    // looked up exactly among the keys add_generated_psk() holds.
    std::optional<auth::derived_psk> find_tls_psk(std::string_view identity) const;
    // A TLS PSK that a DH-HMAC-CHAP exchange with secrets `from` generated
    // for `hostnqn` and `subnqn`: kept for an hour (as Linux nvmet), at most
    // `generated_per_pair` per host and subsystem (the oldest goes first),
    // and dropped when the host's secret is removed or changed. False (not
    // kept) when `from` is no longer the host's secrets.
    static constexpr size_t generated_per_pair = 8;
    bool add_generated_psk(const std::string& hostnqn, const std::string& subnqn,
                           const std::shared_ptr<const host_auth>& from, auth::derived_psk psk);

  private:
    controller_limits limits_;
    mutable std::mutex mutex_;
    uint16_t min_cntlid_, max_cntlid_;  // under mutex_
    std::shared_ptr<subsystem> discovery_;
    std::map<std::string, std::shared_ptr<subsystem>> subsystems_;
    struct listen_address {
        socket_address addr;
        tls_mode tls;
    };
    std::vector<listen_address> addresses_;
    std::map<std::string, std::shared_ptr<const auth::tls_key>> tls_keys_;
    std::map<std::string, std::shared_ptr<const host_auth>> host_auth_;
    struct generated_psk {
        std::string hostnqn, subnqn;
        std::chrono::steady_clock::time_point expires;
        auth::derived_psk psk;
    };
    std::vector<generated_psk> generated_;  // oldest first
    uint64_t genctr_ = 1;
};

// NQN syntax (NVMe Base 4.5): "nqn.yyyy-mm.reverse.domain:..." or the UUID
// form, at most 223 bytes.
bool valid_nqn(std::string_view nqn);

}  // namespace weft::nvmf
