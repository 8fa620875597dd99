// `weft key gen-dhchap|gen-tls` (a new DH-HMAC-CHAP secret or TLS key,
// locally) and `weft engine host-key set|remove|list` (the hosts' secrets
// on an engine, over its management API). Secrets are read from files (or
// standard input), never from the command line, where other users of the
// machine could read them in the process list.
#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <cstdio>

#include "auth/api_access.h"
#include "auth/data_key.h"
#include "auth/dhchap.h"
#include "auth/tls_psk.h"
#include "cli/api_client.h"
#include "cli/commands.h"
#include "cli/connection.h"
#include "cli/format.h"
#include "cli/secret_file.h"

namespace weft::cli {

namespace {

struct gen_opts {
    std::string hmac = "none";
    size_t length = 0;
    std::string output;
};

// Writes `text` to a new file readable by its owner only (refuses to
// overwrite: a secret in use is not replaced by accident).
bool write_secret_file(const std::string& path, std::string_view text) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        std::fprintf(stderr, "weft: cannot create %s: %s%s\n", path.c_str(), std::strerror(errno),
                     errno == EEXIST ? " (remove it first: a secret is not overwritten)" : "");
        return false;
    }
    bool ok = ::write(fd, text.data(), text.size()) == ssize_t(text.size()) &&
              ::write(fd, "\n", 1) == 1 && ::fsync(fd) == 0;
    int e = errno;
    ::close(fd);
    if (!ok) std::fprintf(stderr, "weft: cannot write %s: %s\n", path.c_str(), std::strerror(e));
    return ok;
}

// Prints a new key, or writes it to `output` and says so (`what`).
int print_or_write(const auth::secret_string& text, const std::string& output,
                   const std::string& what) {
    if (output.empty()) {
        std::printf("%.*s\n", int(text.view().size()), text.view().data());
        return 0;
    }
    if (!write_secret_file(output, text.view())) return exit_failed;
    std::printf("wrote %s to %s (mode 0600)\n", what.c_str(), output.c_str());
    return 0;
}

int gen_dhchap(const gen_opts& o) {
    auth::hash_id t = auth::hash_id::none;
    if (o.hmac != "none") {
        auto h = auth::parse_hash_name(o.hmac);
        if (!h) {
            std::fprintf(stderr, "weft: --hmac is none, sha256, sha384 or sha512\n");
            return exit_usage;
        }
        t = *h;
    }
    auto k = auth::generate_dhchap_key(t, o.length);
    if (!k) {
        std::fprintf(stderr, "weft: --length is 32, 48 or 64 (bytes)\n");
        return exit_usage;
    }
    return print_or_write(auth::format_dhchap_key(*k), o.output,
                          fmt::format("a new DH-HMAC-CHAP secret ({} bytes, transform {})",
                                      k->key.size(), auth::hash_name(t)));
}

struct gen_tls_opts {
    std::string hash = "sha256";
    std::string output;
};

int gen_tls(const gen_tls_opts& o) {
    auto h = auth::parse_hash_name(o.hash);
    auto k = h ? auth::generate_tls_key(*h) : result<auth::tls_key>(error{EINVAL});
    if (!k) {
        std::fprintf(stderr, "weft: --hash is sha256 or sha384\n");
        return exit_usage;
    }
    return print_or_write(
        auth::format_tls_key(*k), o.output,
        fmt::format("a new TLS key ({} bytes, {})", k->key.size(), auth::hash_name(*h)));
}

// A key file read by `reader` (a DH-HMAC-CHAP secret by default); empty,
// with the sentence printed, on failure.
auth::secret_string read_secret(const std::string& path, const char* what,
                                decltype(&read_secret_file) reader = read_secret_file) {
    std::string why;
    auto s = reader(path, what, &why);
    if (s.empty()) std::fprintf(stderr, "weft: %s\n", why.c_str());
    return s;
}

struct set_opts {
    api_options api;
    std::string host, key_file, ctrl_key_file, tls_key_file;
    std::vector<std::string> digests, dhgroups;
    bool as_json = false;
};

struct host_opts {
    api_options api;
    std::string host;
    bool as_json = false;
};

std::string joined(const google::protobuf::RepeatedPtrField<std::string>& v) {
    return fmt::format("{}", fmt::join(v, ","));
}

int host_key_set(set_opts& o) {
    pb::SetHostKeyRequest req;
    req.set_host_nqn(o.host);
    if (o.key_file.empty() && o.tls_key_file.empty()) {
        std::fprintf(stderr, "weft: give --key-file (DH-HMAC-CHAP), --tls-key-file or both\n");
        return exit_usage;
    }
    if (o.key_file.empty() &&
        (!o.ctrl_key_file.empty() || !o.digests.empty() || !o.dhgroups.empty())) {
        std::fprintf(stderr,
                     "weft: --ctrl-key-file, --digest and --dhgroup need --key-file (the host's "
                     "DH-HMAC-CHAP secret)\n");
        return exit_usage;
    }
    if (!o.key_file.empty()) {
        auto key = read_secret(o.key_file, "host secret");
        if (key.empty()) return exit_usage;
        req.set_dhchap_key(std::string(key.view()));
    }
    if (!o.tls_key_file.empty()) {
        auto tk = read_secret(o.tls_key_file, "TLS key", read_tls_key_file);
        if (tk.empty()) return exit_usage;
        req.set_tls_key(std::string(tk.view()));
    }
    if (!o.ctrl_key_file.empty()) {
        auto ck = read_secret(o.ctrl_key_file, "controller secret");
        if (ck.empty()) return exit_usage;
        req.set_dhchap_ctrl_key(std::string(ck.view()));
    }
    for (auto& d : o.digests) req.add_digests(d);
    for (auto& g : o.dhgroups) req.add_dhgroups(g);
    api_client api(o.api);
    pb::HostKey k;
    bool ok = api.call([&](auto& s, auto* ctx) { return s.SetHostKey(ctx, req, &k); });
    OPENSSL_cleanse(req.mutable_dhchap_key()->data(), req.dhchap_key().size());
    OPENSSL_cleanse(req.mutable_dhchap_ctrl_key()->data(), req.dhchap_ctrl_key().size());
    OPENSSL_cleanse(req.mutable_tls_key()->data(), req.tls_key().size());
    if (!ok) return exit_failed;
    if (o.as_json) {
        print_json(message_json(k));
        return 0;
    }
    if (k.dhchap())
        std::printf(
            "host %s must now authenticate (DH-HMAC-CHAP, %s; hashes %s; DH groups %s) on new "
            "connections\n",
            k.host_nqn().c_str(), k.bidirectional() ? "bidirectional" : "unidirectional",
            joined(k.digests()).c_str(), joined(k.dhgroups()).c_str());
    if (k.tls())
        std::printf(
            "host %s can now connect over TLS 1.3 (%s PSK) to listeners with --tls required or "
            "allowed\n",
            k.host_nqn().c_str(), k.tls_hash().c_str());
    return 0;
}

int host_key_remove(host_opts& o) {
    pb::RemoveHostKeyRequest req;
    req.set_host_nqn(o.host);
    api_client api(o.api);
    pb::Empty e;
    if (!api.call([&](auto& s, auto* ctx) { return s.RemoveHostKey(ctx, req, &e); }))
        return exit_failed;
    std::printf(
        "host %s has no secrets here any more: its new connections neither authenticate nor "
        "run TLS\n",
        o.host.c_str());
    return 0;
}

int host_key_list(host_opts& o) {
    api_client api(o.api);
    pb::ListHostKeysReply rep;
    if (!api.call([&](auto& s, auto* ctx) {
            return s.ListHostKeys(ctx, pb::ListHostKeysRequest(), &rep);
        }))
        return exit_failed;
    if (o.as_json) {
        print_json(message_json(rep));
        return 0;
    }
    if (rep.host_keys().empty()) {
        std::printf(
            "no host has secrets here (set them: weft engine host-key set HOSTNQN "
            "--key-file FILE and/or --tls-key-file FILE)\n");
        return 0;
    }
    table t({"host", "DH-HMAC-CHAP", "hashes", "DH groups", "key transform", "TLS"});
    for (auto& k : rep.host_keys())
        t.add({k.host_nqn(),
               !k.dhchap()         ? "-"
               : k.bidirectional() ? "bidirectional"
                                   : "unidirectional",
               k.dhchap() ? joined(k.digests()) : "-", k.dhchap() ? joined(k.dhgroups()) : "-",
               k.dhchap() ? k.key_transform() : "-", k.tls() ? k.tls_hash() : "-"});
    t.print();
    return 0;
}

}  // namespace

void add_key_commands(CLI::App& app, action_fn& action) {
    auto* key = app.add_subcommand(
        "key",
        "make secrets for NVMe in-band authentication (DH-HMAC-CHAP), TLS and encryption at "
        "rest");
    key->require_subcommand(1);
    auto g = std::make_shared<gen_opts>();
    auto* gen = key->add_subcommand(
        "gen-dhchap",
        "print a new random DH-HMAC-CHAP secret in the NVMe format (DHHC-1:<hh>:<base64>:), as "
        "`nvme gen-dhchap-key` does; give it to the engine (weft engine host-key set) and to the "
        "host (nvme connect --dhchap-secret)");
    gen->add_option("--hmac", g->hmac,
                    "how the secret is transformed with its owner's NQN before use: none, "
                    "sha256, sha384 or sha512")
        ->capture_default_str();
    gen->add_option("--length", g->length,
                    "secret length in bytes: 32, 48 or 64 (default: the hash's, 32 for none)");
    gen->add_option("-o,--output", g->output,
                    "write the secret to this new file (mode 0600) instead of printing it");
    gen->callback([g, &action] { action = [g] { return gen_dhchap(*g); }; });
    auto gt = std::make_shared<gen_tls_opts>();
    auto* gen_tls_cmd = key->add_subcommand(
        "gen-tls",
        "print a new random TLS pre-shared key in the NVMe format (NVMeTLSkey-1:<xx>:<base64>:), "
        "as `nvme gen-tls-key` does; give it to the engine (weft engine host-key set "
        "--tls-key-file) and to the host (nvme connect --tls --tls-key, weft nvme "
        "--tls-key-file)");
    gen_tls_cmd
        ->add_option("--hash", gt->hash,
                     "the PSK's hash, which picks the cipher suite: sha256 "
                     "(TLS_AES_128_GCM_SHA256, 32-byte key) or sha384 (TLS_AES_256_GCM_SHA384, "
                     "48-byte key)")
        ->capture_default_str();
    gen_tls_cmd->add_option("-o,--output", gt->output,
                            "write the key to this new file (mode 0600) instead of printing it");
    gen_tls_cmd->callback([gt, &action] { action = [gt] { return gen_tls(*gt); }; });
    auto gk = std::make_shared<gen_tls_opts>();
    auto* gen_kek = key->add_subcommand(
        "gen-kek",
        "print a new random key-encryption key (weft-kek-1:00:<base64>:) for encrypted volumes: "
        "give it to the engines with weft-engine --kek-file (keep a copy: without it no "
        "encrypted volume can be read)");
    gen_kek->add_option("-o,--output", gk->output,
                        "write the key to this new file (mode 0600) instead of printing it");
    gen_kek->callback([gk, &action] {
        action = [gk] {
            auto text = auth::generate_kek_text();
            auto k = auth::parse_kek(text.view(), nullptr);
            if (!k) return exit_failed;
            return print_or_write(text, gk->output, "a new key-encryption key (id " + k->id + ")");
        };
    });
    auto gtok = std::make_shared<gen_tls_opts>();
    auto* gen_token = key->add_subcommand(
        "gen-token",
        "print a new random bearer token for an engine's management API: the engine's "
        "--api-token-file holds NAME TOKEN lines, a client's (weft --api-token-file, "
        "weft-control --engine-token-file) the token alone");
    gen_token->add_option("-o,--output", gtok->output,
                          "write the token to this new file (mode 0600) instead of printing it");
    gen_token->callback([gtok, &action] {
        action = [gtok] {
            return print_or_write(auth::generate_api_token(), gtok->output, "a new API token");
        };
    });
}

void add_host_key_commands(CLI::App& app, action_fn& action) {
    auto* hk = app.add_subcommand(
        "host-key",
        "manage the hosts' secrets on this engine: DH-HMAC-CHAP (the host must authenticate) "
        "and TLS keys (the host may connect over TLS)");
    hk->require_subcommand(1);

    auto s = std::make_shared<set_opts>();
    auto* set = hk->add_subcommand(
        "set",
        "set (or replace) a host's secrets: with --key-file the host must authenticate on every "
        "queue it connects (with --ctrl-key-file the engine can prove itself to hosts that ask: "
        "bidirectional); with --tls-key-file it can connect over TLS 1.3. A kind not given keeps "
        "what the host has. Connections already made are kept");
    set->add_option("HOSTNQN", s->host, "the host's NQN")->required();
    set->add_option(
        "--key-file", s->key_file,
        "file holding the host's DH-HMAC-CHAP secret, DHHC-1:..: ('-': standard input)");
    set->add_option("--tls-key-file", s->tls_key_file,
                    "file holding the host's TLS key, NVMeTLSkey-1:..: (weft key gen-tls, nvme "
                    "gen-tls-key); each TLS connection's PSK is derived from it for the host and "
                    "the subsystem its PSK identity names");
    set->add_option("--ctrl-key-file", s->ctrl_key_file,
                    "file holding the controller's secret, for bidirectional authentication");
    set->add_option("--digest", s->digests,
                    "hash functions to accept, preferred first: sha256, sha384, sha512 "
                    "(default: all, sha256 first)")
        ->delimiter(',');
    set->add_option("--dhgroup", s->dhgroups,
                    "DH groups to accept, preferred first: ffdhe2048 ... ffdhe8192, null "
                    "(default: ffdhe2048 first, null last)")
        ->delimiter(',');
    set->add_flag("--json", s->as_json, "print the host's settings as JSON");
    add_api_options(set, s->api);
    set->callback([s, &action] { action = [s] { return host_key_set(*s); }; });

    auto r = std::make_shared<host_opts>();
    auto* rm = hk->add_subcommand(
        "remove",
        "remove a host's secrets: its new connections no longer authenticate nor run TLS");
    rm->add_option("HOSTNQN", r->host, "the host's NQN")->required();
    add_api_options(rm, r->api);
    rm->callback([r, &action] { action = [r] { return host_key_remove(*r); }; });

    auto l = std::make_shared<host_opts>();
    auto* list =
        hk->add_subcommand("list", "show the hosts that have secrets here (not the secrets)");
    list->add_flag("--json", l->as_json, "print {\"hostKeys\": [...]}");
    add_api_options(list, l->api);
    list->callback([l, &action] { action = [l] { return host_key_list(*l); }; });
}

}  // namespace weft::cli
