// The management API's host secret calls (DH-HMAC-CHAP secrets and TLS
// keys): set, removed and listed (never returned). They are saved with the engine's state, whose
// file only its owner can read.
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "auth/dhchap.h"
#include "auth/tls_psk.h"
#include "engine/api_status.h"
#include "engine/manager.h"

namespace weft::engine {

using grpc::Status;
using grpc::StatusCode;

namespace {

void host_key_reply(const host_key_config& k, v1::HostKey* out) {
    out->set_host_nqn(k.host);
    if (!k.tls_key.empty()) {
        out->set_tls(true);
        auto t = auth::parse_tls_key(k.tls_key.view(), nullptr);
        out->set_tls_hash(t ? auth::hash_name(auth::tls_cipher_hash(*t)) : "?");
    }
    if (k.dhchap_key.empty()) return;
    out->set_dhchap(true);
    out->set_bidirectional(!k.dhchap_ctrl_key.empty());
    if (k.digests.empty())
        for (auto h : nvmf::host_auth::default_digests()) out->add_digests(auth::hash_name(h));
    else
        for (auto& d : k.digests) out->add_digests(d);
    if (k.dhgroups.empty())
        for (auto g : nvmf::host_auth::default_dhgroups())
            out->add_dhgroups(auth::dh_group_name(g));
    else
        for (auto& g : k.dhgroups) out->add_dhgroups(g);
    auto key = auth::parse_dhchap_key(k.dhchap_key.view(), nullptr);
    out->set_key_transform(key ? auth::hash_name(key->transform) : "?");
}

bool has_host(const engine_config& c, const std::string& host) {
    return std::any_of(c.host_keys.begin(), c.host_keys.end(),
                       [&](const host_key_config& k) { return k.host == host; });
}

}  // namespace

task<Status> manager::set_host_key(const v1::SetHostKeyRequest& req, v1::HostKey* out) {
    auto g = co_await lock_.lock();
    host_key_config k;
    k.host = req.host_nqn();
    k.dhchap_key = auth::secret_string(req.dhchap_key());
    k.dhchap_ctrl_key = auth::secret_string(req.dhchap_ctrl_key());
    k.digests.assign(req.digests().begin(), req.digests().end());
    k.dhgroups.assign(req.dhgroups().begin(), req.dhgroups().end());
    k.tls_key = auth::secret_string(req.tls_key());
    // The request's copies are done with: wipe them (gRPC frees them as they are).
    for (const std::string* f : {&req.dhchap_key(), &req.dhchap_ctrl_key(), &req.tls_key()})
        OPENSSL_cleanse(const_cast<char*>(f->data()), f->size());
    if (k.dhchap_key.empty() && k.tls_key.empty())
        co_return fail(StatusCode::INVALID_ARGUMENT,
                       "give the host's DH-HMAC-CHAP secret (dhchap_key), its TLS key (tls_key) "
                       "or both");
    // A kind not given keeps what the host has: setting a TLS key must not
    // turn authentication off, nor a new DH-HMAC-CHAP secret drop TLS.
    for (auto& x : state_.host_keys)
        if (x.host == k.host) {
            if (k.dhchap_key.empty() && k.dhchap_ctrl_key.empty() && k.digests.empty() &&
                k.dhgroups.empty()) {
                k.dhchap_key = x.dhchap_key;
                k.dhchap_ctrl_key = x.dhchap_ctrl_key;
                k.digests = x.digests;
                k.dhgroups = x.dhgroups;
            }
            if (k.tls_key.empty()) k.tls_key = x.tls_key;
        }
    std::string why;
    if (!check_host_key(k, &why)) co_return fail(StatusCode::INVALID_ARGUMENT, why);
    if (has_host(base_, k.host))
        co_return fail(StatusCode::FAILED_PRECONDITION,
                       "the secret of " + k.host + " is set in --config: change it there");
    engine_config previous = state_;
    bool replaced = has_host(state_, k.host);
    std::erase_if(state_.host_keys, [&](const host_key_config& x) { return x.host == k.host; });
    state_.host_keys.push_back(k);
    Status saved = co_await persist(previous);
    if (!saved.ok()) co_return saved;
    std::vector<std::string> problems;
    applier_.apply_host_keys(merged(), problems);
    spdlog::info("{} the secrets of host {} ({}{}) (API)", replaced ? "replaced" : "set", k.host,
                 k.dhchap_key.empty()        ? "no DH-HMAC-CHAP"
                 : k.dhchap_ctrl_key.empty() ? "DH-HMAC-CHAP unidirectional"
                                             : "DH-HMAC-CHAP bidirectional",
                 k.tls_key.empty() ? "" : ", TLS key");
    host_key_reply(k, out);
    co_return Status::OK;
}

task<Status> manager::remove_host_key(const v1::RemoveHostKeyRequest& req) {
    auto g = co_await lock_.lock();
    if (has_host(base_, req.host_nqn()))
        co_return fail(StatusCode::FAILED_PRECONDITION,
                       "the secret of " + req.host_nqn() + " is set in --config: remove it there");
    if (!has_host(state_, req.host_nqn()))
        co_return fail(StatusCode::NOT_FOUND, "host " + req.host_nqn() + " has no secret here");
    engine_config previous = state_;
    std::erase_if(state_.host_keys,
                  [&](const host_key_config& x) { return x.host == req.host_nqn(); });
    Status saved = co_await persist(previous);
    if (!saved.ok()) co_return saved;
    std::vector<std::string> problems;
    applier_.apply_host_keys(merged(), problems);
    spdlog::info("removed the secrets of host {} (API)", req.host_nqn());
    co_return Status::OK;
}

task<Status> manager::list_host_keys(v1::ListHostKeysReply* out) {
    auto g = co_await lock_.lock();
    for (auto& k : merged().host_keys) host_key_reply(k, out->add_host_keys());
    co_return Status::OK;
}

}  // namespace weft::engine
