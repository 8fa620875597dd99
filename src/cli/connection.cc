#include "cli/connection.h"

#include <cstdio>

#include "cli/commands.h"

namespace weft::cli {

void add_connection_options(CLI::App* app, connection_options& c, bool need_nqn, bool with_nsid,
                            bool need_addr) {
    auto* addr = app->add_option("-a,--addr", c.addr, "target IP address (IPv4 or IPv6)");
    if (need_addr) addr->required();
    app->add_option("-s,--port", c.port, "target TCP port")->capture_default_str();
    auto* nqn = app->add_option("-n,--nqn", c.nqn, "subsystem NQN");
    if (need_nqn) nqn->required();
    app->add_option("--hostnqn", c.hostnqn,
                    "host NQN (default: /etc/nvme/hostnqn, else derived from /etc/machine-id)");
    app->add_flag("--hdr-digest", c.hdr_digest, "ask for PDU header digests (CRC32C)");
    app->add_flag("--data-digest", c.data_digest, "ask for PDU data digests (CRC32C)");
    app->add_option("--timeout", c.timeout_s, "connect and per-command timeout, seconds")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app->add_option("--dhchap-secret-file", c.dhchap_secret_file,
                    "file holding this host's DH-HMAC-CHAP secret (DHHC-1:..:, e.g. from weft key "
                    "gen-dhchap; '-': standard input), for targets that require authentication");
    app->add_option("--dhchap-ctrl-secret-file", c.dhchap_ctrl_secret_file,
                    "file holding the controller's secret: the target must prove itself too "
                    "(bidirectional), or the connection is refused");
    app->add_option("--tls-key-file", c.tls_key_file,
                    "file holding this host's TLS key (NVMeTLSkey-1:..:, e.g. from weft key "
                    "gen-tls or nvme gen-tls-key; '-': standard input): every queue runs TLS 1.3 "
                    "with the PSK derived from it for this host and subsystem, as nvme connect "
                    "--tls-key does");
    app->add_option("--tls-identity", c.tls_identity,
                    "the PSK identity to offer: 1 (NVMe1R0x ... with a digest, as nvme connect "
                    "--tls-key) or 0 (NVMe0R0x ..., nvme gen-tls-key --insert's default)")
        ->capture_default_str()
        ->check(CLI::Range(0u, 1u));
    app->add_flag("--concat", c.concat,
                  "secure channel concatenation, as nvme connect --concat: authenticate with "
                  "--dhchap-secret-file on a plain admin queue, which makes a TLS key, then run "
                  "every queue over TLS 1.3 with it (no TLS key file; the target's listener must "
                  "allow TLS)");
    if (with_nsid)
        app->add_option("--nsid", c.nsid, "namespace ID")
            ->capture_default_str()
            ->check(CLI::Range(1u, 0xfffffffeu));
}

void add_hostnqn(CLI::App& nvme, action_fn& action) {
    auto* s = nvme.add_subcommand(
        "hostnqn",
        "print this machine's host NQN, as weft and nvme-cli use it by default: "
        "/etc/nvme/hostnqn, else one derived from /etc/machine-id (what to publish a volume to)");
    s->callback([&action] {
        action = [] {
            std::printf("%s\n", default_hostnqn().c_str());
            return 0;
        };
    });
}

bool make_controller_options(const connection_options& c, initiator::controller_options& o,
                             std::string* why) {
    std::vector<std::string> exposed;
    bool ok = initiator::make_controller_options(c, o, why, &exposed);
    for (auto& path : exposed)
        std::fprintf(stderr,
                     "weft: warning: %s can be read by other users; a secret file should be "
                     "mode 0600\n",
                     path.c_str());
    return ok;
}

void fail(const std::string& msg) {
    std::fprintf(stderr, "weft: %s\n", msg.c_str());
}

task<std::unique_ptr<initiator::controller>> connect(const connection_options& c,
                                                     initiator::controller_options opt) {
    auto r = co_await initiator::controller::connect(opt);
    if (!r) {
        fail(connect_error_sentence(c, r.err(), opt.discovery));
        co_return nullptr;
    }
    co_return std::move(r.value());
}

}  // namespace weft::cli
