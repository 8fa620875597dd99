// The management API's volume keys (encryption at rest): a volume's data
// key, wrapped by the engine's key-encryption key, set, erased (crypto-
// erase) and listed. Kept in the engine's state (a file only its owner can
// read); the applier serves an encrypted volume's shares through the
// encrypting layer (bdev/crypto).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "auth/data_key.h"
#include "engine/api_status.h"
#include "engine/manager.h"
#include "engine/rekey_journal.h"
#include "pool/uuid.h"
#include "runtime/foreign_call.h"

namespace weft::engine {

using grpc::Status;
using grpc::StatusCode;

namespace {

const volume_key_config* key_of(const engine_config& c, const std::string& target) {
    for (auto& k : c.volume_keys)
        if (k.target == target) return &k;
    return nullptr;
}

std::string kek_id_of(const std::string& wrapped) {
    auto id = auth::wrapped_key_id(wrapped, nullptr);
    return id ? *id : std::string("?");
}

}  // namespace

void manager::key_reply(const volume_key_config& k, v1::VolumeKey* out) const {
    out->set_target(k.target);
    out->set_wrapped_key(k.wrapped_key);
    out->set_kek_id(kek_id_of(k.wrapped_key));
    rotation_reply(k, out);
}

task<Status> manager::key_target_of(const v1::VolumeRef& volume, const std::string& nexus,
                                    std::string* target, bool* shared) {
    bool in_base = false;
    if (!nexus.empty()) {
        if (volume.pool().size() || volume.name().size() || volume.uuid().size())
            co_return fail(StatusCode::INVALID_ARGUMENT, "give a volume or a nexus, not both");
        auto id = pool::parse_uuid(nexus);
        if (!id) co_return fail(StatusCode::INVALID_ARGUMENT, "\"" + nexus + "\" is not a UUID");
        std::string u = pool::to_string(*id);
        *target = "nexus:" + u;
        *shared = find_serving(
                      [&](const namespace_config& n) { return n.type == "nexus" && n.nexus == u; },
                      &in_base) != nullptr;
        co_return Status::OK;
    }
    resolved r;
    Status s = co_await resolve(volume, &r);
    if (!s.ok()) co_return s;
    *target = r.pool_name + "/" + r.info.name;
    *shared = find_share(r.pool_name, r.info.name, &in_base) != nullptr;
    // A nexus's child holds the nexus's data as the nexus writes it: the
    // nexus is what gets a key (encrypted above it), not its children.
    if (auto nx = applier_.nexus_using(r.pool_name, r.info.name); !nx.empty())
        co_return fail(StatusCode::FAILED_PRECONDITION,
                       fmt::format("{} is a child of nexus {}: give the nexus a key instead "
                                   "(--nexus {})",
                                   *target, nx, nx));
    co_return Status::OK;
}

task<Status> manager::set_volume_key(const v1::SetVolumeKeyRequest& req, v1::VolumeKey* out) {
    auto g = co_await lock_.lock();
    std::string target;
    bool shared = false;
    Status s = co_await key_target_of(req.volume(), req.nexus(), &target, &shared);
    if (!s.ok()) co_return s;
    auto keks = applier_.keks();
    if (keks.empty())
        co_return fail(StatusCode::FAILED_PRECONDITION,
                       "this engine has no key-encryption key: start weft-engine with --kek-file "
                       "(weft key gen-kek makes one)");
    volume_key_config k{target, req.wrapped_key(), {}, {}};
    std::string why;
    if (k.wrapped_key.empty()) {
        auto dek = auth::generate_data_key();
        if (dek.empty()) co_return fail(StatusCode::INTERNAL, "no random bytes for a data key");
        k.wrapped_key = auth::wrap_data_key(keks.front(), dek);
        if (k.wrapped_key.empty())
            co_return fail(StatusCode::INTERNAL, "wrapping the new data key failed");
    } else {
        auto dek = auth::unwrap_data_key(keks, k.wrapped_key, &why);
        if (!dek)
            co_return fail(dek.err().code == ENOKEY ? StatusCode::FAILED_PRECONDITION
                                                    : StatusCode::INVALID_ARGUMENT,
                           "the wrapped key does not unwrap here: " + why);
    }
    if (key_of(base_, target))
        co_return fail(StatusCode::FAILED_PRECONDITION,
                       "the key of " + target + " is set in --config: change it there");
    if (auto* had = key_of(state_, target)) {
        if (had->wrapped_key == k.wrapped_key || req.wrapped_key().empty()) {
            // The same key again, or "a key" for a volume that has one: no-op.
            key_reply(*had, out);
            co_return Status::OK;
        }
        co_return fail(StatusCode::ALREADY_EXISTS,
                       target +
                           " has another key: its data is encrypted with it (erase it first "
                           "to start over, which makes the data unreadable)");
    }
    if (shared)
        co_return fail(StatusCode::FAILED_PRECONDITION,
                       target +
                           " is shared: a volume's key cannot change under its hosts "
                           "(unshare it first)");
    engine_config previous = state_;
    state_.volume_keys.push_back(k);
    Status saved = co_await persist(previous);
    if (!saved.ok()) co_return saved;
    spdlog::info("{}: encrypted with a data key wrapped by key-encryption key {} (API)", target,
                 kek_id_of(k.wrapped_key));
    key_reply(k, out);
    co_return Status::OK;
}

task<Status> manager::forget_volume_key(const std::string& target) {
    co_await stop_rotations([&](const std::string& t) { return t == target; });
    if (!key_of(state_, target)) co_return Status::OK;
    engine_config previous = state_;
    std::erase_if(state_.volume_keys,
                  [&](const volume_key_config& k) { return k.target == target; });
    Status saved = co_await persist(previous);
    if (!saved.ok()) co_return saved;
    applier_.forget_crypto_device(target);
    // A rotation's journal goes with the key (it holds digests only).
    std::string why;
    bool removed = co_await remove_journal(target, &why);
    if (!removed) spdlog::warn("{}: {}", target, why);
    co_return Status::OK;
}

task<Status> manager::erase_volume_key(const v1::EraseVolumeKeyRequest& req) {
    auto g = co_await lock_.lock();
    std::string target;
    bool shared = false;
    Status s = co_await key_target_of(req.volume(), req.nexus(), &target, &shared);
    // A pool volume destroyed already may still have its key: erase it too.
    if (!s.ok() && s.error_code() == StatusCode::NOT_FOUND && req.nexus().empty()) {
        target = req.volume().pool() + "/" + req.volume().name();
        s = Status::OK;
    }
    if (!s.ok()) co_return s;
    if (key_of(base_, target))
        co_return fail(StatusCode::FAILED_PRECONDITION,
                       "the key of " + target + " is set in --config: remove it there");
    if (!key_of(state_, target)) co_return fail(StatusCode::NOT_FOUND, target + " has no key here");
    if (shared)
        co_return fail(StatusCode::FAILED_PRECONDITION,
                       target + " is shared: unshare it before erasing its key");
    Status saved = co_await forget_volume_key(target);
    if (!saved.ok()) co_return saved;
    spdlog::warn("{}: data key erased (API): its data cannot be read any more", target);
    co_return Status::OK;
}

task<Status> manager::rewrap_volume_keys(v1::ListVolumeKeysReply* out) {
    auto g = co_await lock_.lock();
    auto keks = applier_.keks();
    if (keks.empty())
        co_return fail(StatusCode::FAILED_PRECONDITION,
                       "this engine has no key-encryption key (--kek-file)");
    const auth::kek& current = keks.front();
    for (auto& k : base_.volume_keys)
        if (kek_id_of(k.wrapped_key) != current.id)
            co_return fail(StatusCode::FAILED_PRECONDITION,
                           "the key of " + k.target +
                               " is set in --config, wrapped by another "
                               "key-encryption key: re-wrap it there");
    // Every key first (a rotation's new one too), then the state: all or
    // nothing.
    std::vector<std::pair<std::string, std::string>> rewrapped;
    for (auto& k : state_.volume_keys) {
        std::string pair[2] = {k.wrapped_key, k.next_wrapped_key};
        for (auto& w : pair) {
            if (w.empty() || kek_id_of(w) == current.id) continue;
            std::string why;
            auto dek = auth::unwrap_data_key(keks, w, &why);
            if (!dek)
                co_return fail(StatusCode::FAILED_PRECONDITION,
                               "the key of " + k.target + " does not unwrap: " + why +
                                   " (start the engine with the KEK that wrapped it too)");
            w = auth::wrap_data_key(current, *dek);
            if (w.empty())
                co_return fail(StatusCode::INTERNAL,
                               "re-wrapping the key of " + k.target + " failed");
        }
        rewrapped.emplace_back(pair[0], pair[1]);
    }
    engine_config previous = state_;
    unsigned changed = 0;
    for (size_t i = 0; i < rewrapped.size(); ++i) {
        auto& k = state_.volume_keys[i];
        if (k.wrapped_key != rewrapped[i].first || k.next_wrapped_key != rewrapped[i].second) {
            k.wrapped_key = rewrapped[i].first;
            k.next_wrapped_key = rewrapped[i].second;
            ++changed;
        }
    }
    if (changed) {
        Status saved = co_await persist(previous);
        if (!saved.ok()) co_return saved;
    }
    spdlog::info("volume keys: {} re-wrapped with key-encryption key {} (API)", changed,
                 current.id);
    for (auto& k : merged().volume_keys) key_reply(k, out->add_keys());
    co_return Status::OK;
}

task<Status> manager::list_volume_keys(v1::ListVolumeKeysReply* out) {
    auto g = co_await lock_.lock();
    for (auto& k : merged().volume_keys) key_reply(k, out->add_keys());
    co_return Status::OK;
}

}  // namespace weft::engine
