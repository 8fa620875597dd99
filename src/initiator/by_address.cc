#include "initiator/by_address.h"

#include <fmt/format.h>

#include <fstream>

#include "auth/dhchap_key.h"
#include "auth/tls_psk.h"
#include "runtime/net.h"

namespace weft::initiator {

namespace {

std::string read_first_line(const char* path) {
    std::ifstream in(path);
    std::string line;
    if (in) std::getline(in, line);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\n' || line.back() == '\r'))
        line.pop_back();
    return line;
}

int hex_value(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

// 32 hex digits (dashes skipped) into 16 bytes.
bool parse_uuid(std::string_view s, initiator::host_id& out) {
    size_t n = 0;
    int hi = -1;
    for (char ch : s) {
        if (ch == '-') continue;
        int v = hex_value(ch);
        if (v < 0 || n == out.size()) return false;
        if (hi < 0) {
            hi = v;
        } else {
            out[n++] = uint8_t(hi << 4 | v);
            hi = -1;
        }
    }
    return n == out.size() && hi < 0;
}

}  // namespace

std::string default_hostnqn() {
    std::string nqn = read_first_line("/etc/nvme/hostnqn");
    if (!nqn.empty()) return nqn;
    // machine-id is 32 hex digits, unique per installation and stable.
    std::string id = read_first_line("/etc/machine-id");
    initiator::host_id u{};
    if (!parse_uuid(id, u)) {
        // No machine id (a minimal container): a fixed NQN, still stable.
        return "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000000";
    }
    u[6] = uint8_t((u[6] & 0x0f) | 0x40);  // a version 4 UUID, as nvme gen-hostnqn
    u[8] = uint8_t((u[8] & 0x3f) | 0x80);
    std::string s;
    for (size_t i = 0; i < u.size(); ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
        s += fmt::format("{:02x}", u[i]);
    }
    return "nqn.2014-08.org.nvmexpress:uuid:" + s;
}

host_id host_id_for(const std::string& hostnqn) {
    host_id id{};
    auto pos = hostnqn.find(":uuid:");
    if (pos != std::string::npos && parse_uuid(std::string_view(hostnqn).substr(pos + 6), id))
        return id;
    // FNV-1a over the NQN, twice with different seeds for 128 bits.
    for (int half = 0; half < 2; ++half) {
        uint64_t h = 1469598103934665603ull ^ uint64_t(half + 1) * 0x9e3779b97f4a7c15ull;
        for (unsigned char ch : hostnqn) h = (h ^ ch) * 1099511628211ull;
        for (int i = 0; i < 8; ++i) id[half * 8 + i] = uint8_t(h >> (8 * i));
    }
    return id;
}

std::string hostnqn_of(const address_options& c) {
    return c.hostnqn.empty() ? default_hostnqn() : c.hostnqn;
}

std::string where(const address_options& c) {
    if (c.addr.find(':') != std::string::npos) return fmt::format("[{}]:{}", c.addr, c.port);
    return fmt::format("{}:{}", c.addr, c.port);
}

bool make_controller_options(const address_options& c, controller_options& o, std::string* why,
                             std::vector<std::string>* exposed_files) {
    auto a = socket_address::parse(where(c));
    if (!a) {
        *why = fmt::format("\"{}\" is not an IP address (host names are not resolved)", c.addr);
        return false;
    }
    o.address = a.value();
    o.subnqn = c.nqn;
    o.hostnqn = hostnqn_of(c);
    o.hostid = host_id_for(o.hostnqn);
    o.header_digest = c.hdr_digest;
    o.data_digest = c.data_digest;
    auto t = std::chrono::milliseconds(int64_t(c.timeout_s * 1000));
    o.connect_timeout = t;
    o.command_timeout = t;
    o.reconnect_attempts = 0;  // a CLI command reports a drop rather than hiding it
    if (!c.dhchap_ctrl_secret_file.empty() && c.dhchap_secret_file.empty()) {
        *why =
            "--dhchap-ctrl-secret-file needs --dhchap-secret-file (the host authenticates "
            "first)";
        return false;
    }
    if (c.concat && (c.dhchap_secret_file.empty() || !c.tls_key_file.empty())) {
        *why =
            "--concat needs --dhchap-secret-file and no --tls-key-file (the TLS key is made by "
            "DH-HMAC-CHAP)";
        return false;
    }
    o.concat = c.concat;
    auto note = [&](bool exposed, const std::string& path) {
        if (exposed && exposed_files) exposed_files->push_back(path);
    };
    bool exposed = false;
    if (!c.dhchap_secret_file.empty()) {
        auto d = std::make_shared<dhchap_host_options>();
        auto k = auth::read_dhchap_key_file(c.dhchap_secret_file, "host secret", why, &exposed);
        if (k.empty()) return false;
        note(exposed, c.dhchap_secret_file);
        d->key = auth::parse_dhchap_key(k.view(), nullptr).value();
        if (!c.dhchap_ctrl_secret_file.empty()) {
            auto ck = auth::read_dhchap_key_file(c.dhchap_ctrl_secret_file, "controller secret",
                                                 why, &exposed);
            if (ck.empty()) return false;
            note(exposed, c.dhchap_ctrl_secret_file);
            d->ctrl_key = auth::parse_dhchap_key(ck.view(), nullptr).value();
        }
        o.dhchap = std::move(d);
    }
    if (!c.tls_key_file.empty()) {
        auto k = auth::read_tls_key_file(c.tls_key_file, "TLS key", why, &exposed);
        if (k.empty()) return false;
        note(exposed, c.tls_key_file);
        o.tls_key =
            std::make_shared<const auth::tls_key>(auth::parse_tls_key(k.view(), nullptr).value());
        o.tls_identity_version = c.tls_identity;
    }
    return true;
}

std::string connect_error_sentence(const address_options& c, error e, bool discovery) {
    std::string at = where(c);
    std::string host = hostnqn_of(c);
    switch (e.code) {
        case ECONNREFUSED:
            return fmt::format("nothing listens on {} (connection refused)", at);
        case EACCES:
            return fmt::format("the target does not allow host NQN {} to connect to {}", host,
                               discovery ? "its discovery service" : c.nqn);
        case ENOKEY:
            return fmt::format(
                "{} on {} requires host {} to authenticate (DH-HMAC-CHAP): give "
                "its secret with --dhchap-secret-file",
                c.nqn, at, host);
        case EKEYREJECTED:
            if (!c.tls_key_file.empty())
                return fmt::format(
                    "{} on {} refused this host's TLS key or DH-HMAC-CHAP secret (host {}): "
                    "the target has no TLS key for this host, or another one",
                    discovery ? "the discovery service" : c.nqn, at, host);
            return c.dhchap_ctrl_secret_file.empty()
                       ? fmt::format(
                             "authentication to {} on {} failed: the target refused the "
                             "secret of host {}",
                             c.nqn, at, host)
                       : fmt::format(
                             "authentication to {} on {} failed: the target refused the "
                             "secret of host {}, or could not prove it holds the "
                             "controller secret",
                             c.nqn, at, host);
        case ENOPROTOOPT:
            if (c.concat)
                return fmt::format(
                    "secure channel concatenation to {} on {} failed: the target cannot make a "
                    "TLS key with host {} (its listener does not allow TLS, or no SHA-256/384 "
                    "hash or DH group in common)",
                    c.nqn, at, host);
            return fmt::format(
                "authentication to {} on {} failed: the target and this host have "
                "no hash function or DH group in common, or the target cannot "
                "authenticate host {}",
                c.nqn, at, host);
        case EPROTONOSUPPORT:
            return fmt::format(
                "{} on {} requires a secure channel (TLS): give this host's TLS key with "
                "--tls-key-file",
                c.nqn, at);
        case EINVAL:
            // Connect status "invalid parameters" on an admin queue: the
            // subsystem NQN is the parameter a host gets wrong.
            return discovery ? fmt::format("{} refused the discovery Connect", at)
                             : fmt::format("no subsystem {} on {}", c.nqn, at);
        case EBUSY:
            return fmt::format("the controller of {} on {} is busy; try again", c.nqn, at);
        case ETIMEDOUT:
            return fmt::format("{} did not answer within {} s", at, c.timeout_s);
        case EHOSTUNREACH:
        case ENETUNREACH:
            return fmt::format("no route to {}", at);
        case ECONNRESET:
        case EPIPE:
            return c.tls_key_file.empty()
                       ? fmt::format(
                             "{} closed the connection during the NVMe/TCP handshake (if its "
                             "listener requires TLS, give this host's key with --tls-key-file)",
                             at)
                       : fmt::format("{} closed the connection during the NVMe/TCP handshake", at);
        case EPROTO:
            if (c.concat)
                return fmt::format(
                    "{} on {} made no TLS key for secure channel concatenation (it did not ask "
                    "host {} to authenticate, or its listener does not allow TLS)",
                    c.nqn, at, host);
            if (!c.tls_key_file.empty())
                return fmt::format(
                    "{} did not complete a TLS handshake (does it run TLS on this port?)", at);
            return fmt::format("{} does not speak NVMe/TCP as expected (protocol error)", at);
        case EIO:
            return fmt::format("the controller of {} on {} failed to come up", c.nqn, at);
        default:
            return fmt::format("cannot connect to {} on {}: {}",
                               c.nqn.empty() ? "discovery" : c.nqn, at, e.message());
    }
}

std::string transport_error_sentence(const address_options& c, error e) {
    switch (e.code) {
        case ETIMEDOUT:
            return fmt::format("the target on {} did not answer a command within {} s", where(c),
                               c.timeout_s);
        case ECONNRESET:
        case ENOTCONN:
        case EPIPE:
            return fmt::format("the connection to {} was lost", where(c));
        case ENXIO:
            return "no I/O queue on this core (internal error)";
        default:
            return fmt::format("I/O to {} failed: {}", where(c), e.message());
    }
}

std::string status_sentence(const address_options& c, nvme::status s) {
    using namespace nvme;
    auto same = [&](status want) { return s.type == want.type && s.code == want.code; };
    if (same(sc::lba_out_of_range))
        return fmt::format("the LBA range is beyond the end of namespace {}", c.nsid);
    if (same(sc::invalid_namespace))
        return fmt::format("namespace {} does not exist on {}", c.nsid, c.nqn);
    if (same(sc::reservation_conflict))
        return fmt::format(
            "reservation conflict on namespace {}: another host holds it, or this "
            "host ({}) is not registered or used the wrong key",
            c.nsid, hostnqn_of(c));
    if (same(sc::invalid_field))
        return "the target rejected a field of the command (invalid field)";
    if (same(sc::invalid_opcode)) return "the target does not support this command";
    if (s.type == sct::generic && s.code == 0x20)
        return fmt::format("namespace {} of {} is write-protected (a snapshot is read-only)",
                           c.nsid, c.nqn);
    if (same(sc::capacity_exceeded)) return "the namespace is full (capacity exceeded)";
    if (same(sc::namespace_not_ready)) return fmt::format("namespace {} is not ready", c.nsid);
    if (same(sc::write_fault)) return "the target reported a write fault";
    if (same(sc::unrecovered_read_error)) return "the target reported an unrecovered read error";
    return fmt::format("the command failed with status type {} code {:#04x}{}", int(s.type), s.code,
                       s.dnr ? " (do not retry)" : "");
}

}  // namespace weft::initiator
