// The management API's data-key rotation: a volume (or nexus) gets a new
// data key and its data are re-encrypted to it in the background, a chunk
// at a time, while hosts go on reading and writing it (bdev/crypto fences
// only the chunk being rewritten). The new key is in the state (wrapped)
// from the start; each chunk's record is made durable in the volume's
// journal before the chunk is written, so that a restart resumes where the
// rotation was (config_applier::make_crypto finishes that chunk). When the
// last chunk is written the new key becomes the only one, in the layer and
// then in the state, and the journal goes.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "auth/data_key.h"
#include "engine/api_status.h"
#include "engine/manager.h"
#include "engine/rekey_journal.h"
#include "runtime/foreign_call.h"
#include "runtime/uring_op.h"

namespace weft::engine {

using grpc::Status;
using grpc::StatusCode;

namespace {

constexpr uint64_t default_rekey_rate = 128ull << 20;  // bytes per second
// A chunk's record is saved (fsynced) before it is written: larger chunks,
// fewer syncs (4 MiB: a 16 KiB record).
constexpr uint32_t rekey_chunk_bytes = 4u << 20;

volume_key_config* state_key(engine_config& c, const std::string& target) {
    for (auto& k : c.volume_keys)
        if (k.target == target) return &k;
    return nullptr;
}

}  // namespace

void manager::rotation_reply(const volume_key_config& k, v1::VolumeKey* out) const {
    if (k.next_wrapped_key.empty()) return;
    auto* r = out->mutable_rotation();
    r->set_next_wrapped_key(k.next_wrapped_key);
    auto it = rekeys_.find(k.target);
    if (it == rekeys_.end()) {
        // Stopped (its volume or nexus went) and not asked again since.
        r->set_state("stopped");
        r->set_error("not running: ask again (volume-key rotate) or restart the engine to resume");
        return;
    }
    const rekey_job& j = *it->second;
    r->set_state(j.running     ? "running"
                 : j.finishing ? "ending"
                 : j.waiting   ? "waiting"
                               : "stopped");
    r->set_running(j.running || j.finishing);
    r->set_error(j.error);
    r->set_rate_bytes(j.rate);
    r->set_rotated_bytes(j.rotated_bytes);
    r->set_size_bytes(j.size_bytes);
    if (j.dev) {
        r->set_rotated_bytes(j.dev->rekeying() ? j.dev->rekeyed_blocks() * j.dev->block_size()
                                               : j.dev->size_bytes());
        r->set_size_bytes(j.dev->size_bytes());
    }
}

bool manager::rotating(const std::string& target) const {
    for (const engine_config* c : {&base_, &state_})
        for (auto& k : c->volume_keys)
            if (k.target == target && !k.next_wrapped_key.empty()) return true;
    return false;
}

Status manager::check_not_rotating(const std::string& pool, const std::string& volume,
                                   const char* what) const {
    // A nexus's child is rotated with its nexus.
    std::string target = pool + "/" + volume;
    if (auto nx = applier_.nexus_using(pool, volume); !nx.empty()) target = "nexus:" + nx;
    if (!rotating(target)) return Status::OK;
    return fail(StatusCode::FAILED_PRECONDITION,
                fmt::format("the data key of {} is being rotated: {} it once the rotation ends "
                            "(weft engine volume-key list shows it)",
                            target, what));
}

task<Status> manager::rotate_volume_key(const v1::RotateVolumeKeyRequest& req, v1::VolumeKey* out) {
    auto g = co_await lock_.lock();
    std::string target;
    bool shared = false;
    Status s = co_await key_target_of(req.volume(), req.nexus(), &target, &shared);
    if (!s.ok()) co_return s;
    const uint64_t rate = req.unlimited()    ? 0
                          : req.rate_bytes() ? req.rate_bytes()
                                             : default_rekey_rate;
    auto keks = applier_.keks();
    if (keks.empty())
        co_return fail(StatusCode::FAILED_PRECONDITION,
                       "this engine has no key-encryption key (--kek-file)");
    for (auto& k : base_.volume_keys)
        if (k.target == target)
            co_return fail(StatusCode::FAILED_PRECONDITION,
                           "the key of " + target +
                               " is set in --config: rotations are for keys set through the "
                               "API (volume-key set)");
    volume_key_config* k = state_key(state_, target);
    if (!k) co_return fail(StatusCode::NOT_FOUND, target + " has no key here (volume-key set)");
    // The control plane keeps a nexus's wrapped key and hands it to the
    // next engine that takes the nexus; a rotation here would leave it the
    // old one, and the journal here.
    if (controlled_ && target.starts_with("nexus:") && k->next_wrapped_key.empty())
        co_return fail(StatusCode::FAILED_PRECONDITION,
                       "nexus " + target.substr(6) +
                           " is the control plane's (this engine runs with --control): its "
                           "data key is not rotated from one engine");
    if (k->next_wrapped_key.empty()) {
        auto dek = auth::generate_data_key();
        if (dek.empty()) co_return fail(StatusCode::INTERNAL, "no random bytes for a data key");
        std::string next = auth::wrap_data_key(keks.front(), dek);
        if (next.empty()) co_return fail(StatusCode::INTERNAL, "wrapping the new data key failed");
        // A journal left by an earlier rotation would be taken for this one's.
        std::string why;
        bool removed = co_await remove_journal(target, &why);
        if (!removed) co_return fail(StatusCode::INTERNAL, why);
        engine_config previous = state_;
        k->next_wrapped_key = next;
        k->rotation_rate = rate;
        Status saved = co_await persist(previous);
        if (!saved.ok()) co_return saved;
        applier_.set_volume_keys(merged().volume_keys);
        // A live layer (its shares') takes the new key for the blocks below
        // the boundary, which starts at 0.
        if (auto live = applier_.live_crypto_device(target)) {
            auto next_key = auth::unwrap_data_key(keks, next, &why);
            result<void> begun = next_key ? result<void>{} : result<void>(next_key.err());
            if (next_key)
                begun = co_await live->begin_rekey(std::span<const uint8_t, bdev::crypto_key_bytes>(
                                                       next_key->data(), bdev::crypto_key_bytes),
                                                   0, &why);
            if (!begun) {
                state_ = previous;
                (void)co_await persist(previous);
                applier_.set_volume_keys(merged().volume_keys);
                co_return fail(StatusCode::INTERNAL,
                               "starting the rotation of " + target + ": " + why);
            }
        }
        spdlog::info("{}: data-key rotation to a new key wrapped by key-encryption key {} (API)",
                     target, keks.front().id);
    }
    if (k->rotation_rate != rate) {
        // A new pace for the running one: kept for a restart too.
        engine_config previous = state_;
        k->rotation_rate = rate;
        Status saved = co_await persist(previous);
        if (!saved.ok()) co_return saved;
    }
    auto it = rekeys_.find(target);
    if (it != rekeys_.end() && (it->second->running || it->second->finishing)) {
        it->second->rate = rate;  // the running one goes on at the new rate
    } else {
        co_await start_rotation(target, rate);
    }
    key_reply(*k, out);
    co_return Status::OK;
}

// Under lock_: the rotation of `target` (in the state) runs from now on, on
// the layer its shares use or a new one.
task<void> manager::start_rotation(const std::string& target, uint64_t rate) {
    auto job = std::make_shared<rekey_job>();
    job->rate = rate;
    std::string before;  // why an earlier try could not start it
    if (auto it = rekeys_.find(target); it != rekeys_.end()) before = it->second->error;
    rekeys_[target] = job;
    std::string why;
    auto dev = co_await applier_.crypto_device_of(target, &why);
    if (!dev) {
        job->error = why;
        job->waiting = true;  // retried while the engine runs (retry_unopened)
        if (why != before) spdlog::warn("{}: data-key rotation waits: {}", target, why);
        co_return;
    }
    job->dev = dev.value();
    if (!job->dev->rekeying()) {
        // Its layer has the new key alone already (saving the state failed
        // as the rotation ended): only the ending is left.
        job->finishing = true;
        reactor::local().spawn(bg_.hold(end_rotation(target, job)));
        co_return;
    }
    job->running = true;
    if (job->dev->rekeyed_blocks())
        spdlog::info("{}: data-key rotation resumes at {} of {} bytes", target,
                     job->dev->rekeyed_blocks() * job->dev->block_size(), job->dev->size_bytes());
    reactor::local().spawn(bg_.hold(rotate(target, job)));
}

task<void> manager::resume_rotations(bool waiting_only) {
    std::vector<std::pair<std::string, uint64_t>> targets;
    for (auto& k : state_.volume_keys)
        if (!k.next_wrapped_key.empty()) {
            auto it = rekeys_.find(k.target);
            if (it == rekeys_.end() ? !waiting_only : it->second->waiting && !it->second->running)
                targets.push_back({k.target, k.rotation_rate.value_or(default_rekey_rate)});
        }
    for (auto& [t, rate] : targets) co_await start_rotation(t, rate);
}

bool manager::rotations_waiting() const {
    for (auto& [t, j] : rekeys_)
        if (j->waiting && !j->running) return true;
    return false;
}

task<void> manager::rotate(std::string target, std::shared_ptr<rekey_job> job) {
    using namespace std::chrono;
    rekey_journal journal(applier_.rekey_dir(), target);
    bdev::crypto_device& dev = *job->dev;
    const uint32_t chunk = std::max<uint32_t>(1, rekey_chunk_bytes / dev.block_size());
    auto t0 = steady_clock::now();
    uint64_t paced = 0;  // bytes since t0
    uint64_t rate = job->rate;
    bool finished = false;
    std::string why;
    for (;;) {
        if (job->stop.abort_requested()) break;
        auto rec = co_await dev.rekey_prepare(chunk);
        if (!rec) {
            why = fmt::format("re-encrypting the blocks at {}: {}", dev.rekeyed_blocks(),
                              rec.err().message());
            break;
        }
        if (rec->blocks == 0) {
            finished = true;  // end_rotation makes the new key the only one
            break;
        }
        std::string text = encode(*rec);
        bool saved = false;
        co_await in_thread([&] { saved = journal.save(text, &why); });
        if (!saved) {
            dev.rekey_abandon();
            why = "saving the chunk's record: " + why +
                  " (restart the engine: the chunk is finished from its journal)";
            break;
        }
        int rc = co_await dev.rekey_commit();
        if (rc) {
            why = fmt::format(
                "writing blocks {}..{}: {} (restart the engine to finish the chunk "
                "from its journal)",
                rec->lba, rec->lba + rec->blocks, std::strerror(-rc));
            break;
        }
        // At most `rate` bytes a second, measured from the start (or the
        // last change of rate).
        if (job->rate != rate) {
            rate = job->rate;
            t0 = steady_clock::now();
            paced = 0;
        }
        paced += uint64_t(rec->blocks) * dev.block_size();
        if (rate) {
            auto due = t0 + duration_cast<steady_clock::duration>(
                                duration<double>(double(paced) / double(rate)));
            auto now = steady_clock::now();
            if (due > now) {
                int slept =
                    co_await sleep(duration_cast<microseconds>(due - now)).abort_with(job->stop);
                if (slept == -ECANCELED) break;
            }
        }
    }
    job->rotated_bytes =
        dev.rekeying() ? dev.rekeyed_blocks() * dev.block_size() : dev.size_bytes();
    job->size_bytes = dev.size_bytes();
    job->finishing = finished;
    job->running = false;
    if (!finished) job->dev.reset();  // end_rotation needs it
    if (!why.empty()) {
        job->error = why;
        spdlog::error("{}: data-key rotation stopped: {}", target, why);
    }
    job->ended.notify_all();
    if (finished) reactor::local().spawn(bg_.hold(end_rotation(target, job)));
}

// Every block is under the new key: under the lock (no resize, share or
// key change meanwhile), the layer takes it as its only key, then the
// state does, and the journal goes. A crash in between resumes the
// rotation from the journal, which ends at once.
task<void> manager::end_rotation(std::string target, std::shared_ptr<rekey_job> job) {
    auto g = co_await lock_.lock();
    auto it = rekeys_.find(target);
    if (it == rekeys_.end() || it->second != job) co_return;  // stopped or replaced meanwhile
    auto dev = std::move(job->dev);
    job->finishing = false;
    volume_key_config* k = state_key(state_, target);
    if (!k || k->next_wrapped_key.empty() || !dev) {  // erased meanwhile
        rekeys_.erase(it);
        co_return;
    }
    // (A layer that ended before, when saving the state failed, has the
    // new key alone already.)
    int rc = dev->rekeying() ? co_await dev->finish_rekey() : 0;
    if (rc == -EBUSY) {
        // Blocks left after all (grown): the rotation goes on.
        job->dev = std::move(dev);
        job->running = true;
        reactor::local().spawn(bg_.hold(rotate(target, job)));
        co_return;
    }
    if (rc) {
        job->error = fmt::format("ending the rotation: {}", std::strerror(-rc));
        spdlog::error("{}: data-key rotation stopped: {}", target, job->error);
        co_return;
    }
    engine_config previous = state_;
    k->wrapped_key = k->next_wrapped_key;
    k->next_wrapped_key.clear();
    k->rotation_rate.reset();
    Status saved = co_await persist(previous);
    if (!saved.ok()) {
        // The layer has the new key alone; a restart resumes from the
        // journal and ends again.
        job->error = "saving the new key: " + saved.error_message();
        spdlog::error("{}: data-key rotation: {}", target, job->error);
        co_return;
    }
    applier_.set_volume_keys(merged().volume_keys);
    std::string why;
    bool removed = co_await remove_journal(target, &why);
    if (!removed) spdlog::warn("{}: {}", target, why);
    rekeys_.erase(target);
    spdlog::info("{}: data-key rotation done: every block is under the new key", target);
}

task<bool> manager::remove_journal(const std::string& target, std::string* why) {
    rekey_journal journal(applier_.rekey_dir(), target);
    bool removed = false;
    co_await in_thread([&] { removed = journal.remove(why); });
    co_return removed;
}

task<void> manager::stop_rotations(const std::function<bool(const std::string&)>& which) {
    for (auto it = rekeys_.begin(); it != rekeys_.end();) {
        if (!which(it->first)) {
            ++it;
            continue;
        }
        auto job = it->second;
        job->stop.request_abort();
        while (job->running) co_await job->ended.wait();
        job->dev.reset();  // the volume is not held open by a rotation ending later
        job->finishing = false;
        it = rekeys_.erase(it);
    }
}

}  // namespace weft::engine
