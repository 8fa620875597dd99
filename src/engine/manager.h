// The engine's management operations (the gRPC API's meaning): pools,
// volumes, snapshots, clones, shares, listeners and statistics, on top of
// the config_applier that reconciles the target with a desired state.
//
// Two sources make the desired state: the base (--config file and flags,
// re-read on SIGHUP) and the API's state, which this class persists to
// --data-dir/engine-state.json (written to a temporary file, fsynced and
// renamed, before a call returns) and restores on start.
//
// Its definitions are split along the nouns: manager.cc (state, start,
// reload), manager_pools.cc, manager_volumes.cc (with snapshots and
// clones), manager_shares.cc (with listeners and ANA), manager_nexus.cc,
// manager_auth.cc (host keys), manager_stats.cc.
//
// Every operation runs on reactor 0 (pools live there) under one lock, so
// requests from several gRPC threads never interleave. An operation checks
// its input first, changes what it must, and undoes its own changes when a
// later step fails: nothing half-made is left behind.
#pragma once

#include <grpcpp/support/status.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/config.h"
#include "engine/config_applier.h"
#include "nexus/child_uri.h"
#include "nvmf/target.h"
#include "nvmf/tcp_server.h"
#include "pool/async_lock.h"
#include "runtime/abort.h"
#include "runtime/gate.h"
#include "runtime/wait_list.h"
#include "weft/engine/v1/engine.pb.h"

namespace weft::engine {

namespace v1 = weft::engine::v1;

// What /metrics and GetStats report, gathered on reactor 0.
struct stats_snapshot {
    struct volume_row {
        std::string nqn;
        uint32_t nsid = 0;
        std::string pool, name;  // empty unless a pool volume
        bdev::io_totals io;
    };
    struct pool_row {
        std::string name;
        weft::pool::pool_stats stats;
        size_t volumes = 0;
    };
    std::vector<volume_row> volumes;
    std::vector<nexus::nexus_status> nexuses;
    std::map<unsigned, bdev::io_totals> reactors;
    std::vector<pool_row> pools;
};

class manager {
  public:
    manager(nvmf::target& t, nvmf::tcp_server& server, std::string state_path);

    // Loads the persisted state (EUCLEAN with a sentence when it cannot be
    // read: the engine refuses to start rather than forget what it served).
    result<void> load_state(std::string* why);
    // Applies the base, then the base and the persisted state together.
    // Problems of the base are returned (fatal at start); the state's are
    // logged (a missing disk must not keep the rest from being served). A
    // nexus that cannot open yet (its children's nodes are not up: a whole
    // cluster restarting) is tried again in the background, with backoff,
    // until it opens: serving it must not wait for the control plane.
    task<std::vector<std::string>> start(engine_config base);
    // Listeners of the base (fatal problems returned) and of the state.
    task<std::vector<std::string>> listen_all();
    // The key-encryption keys (--kek-file; the first wraps new data keys).
    void set_keks(std::vector<auth::kek> keks) { applier_.set_keks(std::move(keks)); }
    // The engine reports to a control plane (--control): its nexuses' keys
    // are the control plane's (which does not drive rotations yet).
    void set_controlled(bool c) { controlled_ = c; }
    // SIGHUP: a new base.
    task<std::vector<std::string>> reload(engine_config base);
    // Stops the retries, removes every namespace and closes the pools
    // (after the server stops).
    task<void> shutdown();

    task<grpc::Status> create_pool(const v1::CreatePoolRequest& req, v1::Pool* out);
    task<grpc::Status> import_pool(const v1::ImportPoolRequest& req, v1::Pool* out);
    task<grpc::Status> destroy_pool(const v1::DestroyPoolRequest& req);
    task<grpc::Status> list_pools(v1::ListPoolsReply* out);
    task<grpc::Status> create_volume(const v1::CreateVolumeRequest& req, v1::Volume* out);
    task<grpc::Status> destroy_volume(const v1::DestroyVolumeRequest& req);
    task<grpc::Status> resize_volume(const v1::ResizeVolumeRequest& req, v1::Volume* out);
    task<grpc::Status> list_volumes(const v1::ListVolumesRequest& req, v1::ListVolumesReply* out);
    task<grpc::Status> create_snapshot(const v1::CreateSnapshotRequest& req, v1::Volume* out);
    task<grpc::Status> create_clone(const v1::CreateCloneRequest& req, v1::Volume* out);
    task<grpc::Status> share_volume(const v1::ShareVolumeRequest& req, v1::Share* out);
    task<grpc::Status> unshare_volume(const v1::UnshareVolumeRequest& req);
    task<grpc::Status> list_shares(v1::ListSharesReply* out);
    task<grpc::Status> add_listener(const v1::AddListenerRequest& req, v1::Listener* out);
    task<grpc::Status> list_listeners(v1::ListListenersReply* out);
    task<grpc::Status> remove_listener(const v1::RemoveListenerRequest& req);
    task<grpc::Status> get_stats(v1::Stats* out);
    // DH-HMAC-CHAP secrets per host (manager_auth.cc).
    task<grpc::Status> set_host_key(const v1::SetHostKeyRequest& req, v1::HostKey* out);
    task<grpc::Status> remove_host_key(const v1::RemoveHostKeyRequest& req);
    task<grpc::Status> list_host_keys(v1::ListHostKeysReply* out);

    // Nexuses (manager_nexus.cc).
    task<grpc::Status> create_nexus(const v1::CreateNexusRequest& req, v1::Nexus* out);
    task<grpc::Status> destroy_nexus(const v1::DestroyNexusRequest& req);
    task<grpc::Status> list_nexuses(v1::ListNexusesReply* out);
    task<grpc::Status> get_nexus(const v1::GetNexusRequest& req, v1::Nexus* out);
    task<grpc::Status> add_child(const v1::AddChildRequest& req, v1::Nexus* out);
    task<grpc::Status> remove_child(const v1::RemoveChildRequest& req, v1::Nexus* out);
    task<grpc::Status> fault_child(const v1::FaultChildRequest& req, v1::Nexus* out);
    task<grpc::Status> online_child(const v1::OnlineChildRequest& req, v1::Nexus* out);
    task<grpc::Status> set_volume_key(const v1::SetVolumeKeyRequest& req, v1::VolumeKey* out);
    task<grpc::Status> erase_volume_key(const v1::EraseVolumeKeyRequest& req);
    task<grpc::Status> list_volume_keys(v1::ListVolumeKeysReply* out);
    task<grpc::Status> rewrap_volume_keys(v1::ListVolumeKeysReply* out);
    // Data-key rotation (manager_rekey.cc).
    task<grpc::Status> rotate_volume_key(const v1::RotateVolumeKeyRequest& req, v1::VolumeKey* out);
    task<grpc::Status> repoint_child(const v1::RepointChildRequest& req, v1::Nexus* out);
    task<grpc::Status> arbitrate_nexus(const v1::ArbitrateNexusRequest& req, v1::Nexus* out);
    task<grpc::Status> share_nexus(const v1::ShareNexusRequest& req, v1::Share* out);
    task<grpc::Status> unshare_nexus(const v1::UnshareNexusRequest& req);
    task<grpc::Status> pause_nexus(const v1::PauseNexusRequest& req, v1::Nexus* out);
    task<grpc::Status> resume_nexus(const v1::ResumeNexusRequest& req, v1::Nexus* out);
    task<grpc::Status> set_ana_state(const v1::SetAnaStateRequest& req, v1::Share* out);
    task<grpc::Status> resize_nexus(const v1::ResizeNexusRequest& req, v1::Nexus* out);
    task<grpc::Status> clear_child_label(const v1::ClearChildLabelRequest& req);
    task<grpc::Status> read_child_label(const v1::ReadChildLabelRequest& req, v1::ChildLabel* out);
    task<grpc::Status> inject_fault(const v1::InjectFaultRequest& req);

    // The host NQN this engine connects to remote children with.
    void set_host(host_identity h) { applier_.set_host(std::move(h)); }

    task<stats_snapshot> snapshot();
    const engine_config& state() const { return state_; }

  private:
    struct resolved {
        std::string pool_name;
        std::shared_ptr<pool::pool> p;
        pool::volume_info info;
    };
    engine_config merged() const;
    task<grpc::Status> resolve(const v1::VolumeRef& ref, resolved* out);
    // The key target a request names (POOL/VOLUME of a volume that exists,
    // or nexus:UUID), and whether a share serves it now.
    // Drops `target`'s key from the state and saves it (OK when it has none).
    task<grpc::Status> forget_volume_key(const std::string& target);
    task<grpc::Status> key_target_of(const v1::VolumeRef& volume, const std::string& nexus,
                                     std::string* target, bool* shared);
    task<grpc::Status> volume_reply(const std::string& pool, const pool::uuid& id, v1::Volume* out);
    task<grpc::Status> pool_reply(const std::string& name, v1::Pool* out);
    void share_reply(const subsystem_config& s, v1::Share* out) const;
    // Writes state_ to disk; on failure restores `previous` in memory.
    task<grpc::Status> persist(const engine_config& previous);
    // Applies base + state; the problems, joined, or empty.
    task<std::string> reconcile();
    bool in_base_pool(const std::string& name) const;
    // Whether pool `name` purges the volumes destroyed in it.
    bool purges(const std::string& name) const;
    grpc::Status check_new_pool(const std::string& name, const std::string& path) const;
    const subsystem_config* find_share(const std::string& pool, const std::string& volume,
                                       bool* in_base) const;
    const subsystem_config* find_nexus_share(const std::string& uuid, bool* in_base) const;
    // The subsystem (saved or configured) serving a namespace that matches,
    // or null; *in_base: from --config.
    const subsystem_config* find_serving(const std::function<bool(const namespace_config&)>& match,
                                         bool* in_base) const;
    // Serves `want` (one namespace under want.nqn) for `what` ("volume ...",
    // "nexus ..."), in place of `current` (its share so far, or null): refuses
    // an NQN clash or a share of --config, then reconciles and persists,
    // undoing both when a step fails; `served()` says whether it is served.
    task<grpc::Status> apply_share(const subsystem_config& want, const subsystem_config* current,
                                   bool in_base, const std::string& what,
                                   std::function<bool()> served);
    // The checks every share request gets: a valid NQN and host NQNs, and
    // some host that may connect.
    static grpc::Status check_share(const std::string& nqn,
                                    const google::protobuf::RepeatedPtrField<std::string>& hosts,
                                    bool any_host);
    // A call on one nexus under the lock, answered with the nexus.
    // save: record the children in the saved state afterwards.
    task<grpc::Status> child_call(
        const std::string& uuid, v1::Nexus* out,
        std::function<task<result<void>>(nexus::nexus&, std::string*)> call, bool save = false);
    grpc::Status check_local_child(const std::string& text, const nexus::child_uri& u) const;
    nexus_config* state_nexus(const std::string& uuid);
    bool in_base_nexus(const std::string& uuid) const;
    void nexus_reply(const nexus::nexus& n, v1::Nexus* out) const;
    grpc::Status nexus_of(const std::string& uuid, std::shared_ptr<nexus::nexus>* out) const;
    // Records the nexus's children (URIs and UUIDs) in the saved state.
    task<grpc::Status> save_children(const std::string& uuid, const nexus::nexus& n);

    nvmf::target& target_;
    nvmf::tcp_server& server_;
    config_applier applier_;
    std::string state_path_;
    engine_config base_;
    engine_config state_;
    pool::async_lock lock_;
    // Re-applies the state while a nexus of it could not open (start()).
    task<void> retry_unopened();
    abort_source retry_stop_;

    // Data-key rotations under way, by target (manager_rekey.cc).
    struct rekey_job {
        abort_source stop;
        bool running = false;
        bool waiting = false;    // its layer could not be made yet (a nexus not open)
        bool finishing = false;  // every block done; end_rotation to come
        std::string error;
        uint64_t rate = 0;                           // bytes per second; 0: unlimited
        uint64_t rotated_bytes = 0, size_bytes = 0;  // when it stopped
        std::shared_ptr<bdev::crypto_device> dev;    // while it runs
        wait_list ended;
    };
    std::map<std::string, std::shared_ptr<rekey_job>> rekeys_;
    bool controlled_ = false;
    void key_reply(const volume_key_config& k, v1::VolumeKey* out) const;
    void rotation_reply(const volume_key_config& k, v1::VolumeKey* out) const;
    task<void> start_rotation(const std::string& target, uint64_t rate);
    // Starts the state's rotations that have no job (waiting_only: those
    // whose layer could not be made before).
    task<void> resume_rotations(bool waiting_only);
    bool rotations_waiting() const;
    task<void> rotate(std::string target, std::shared_ptr<rekey_job> job);
    task<void> end_rotation(std::string target, std::shared_ptr<rekey_job> job);
    // Whether `target` has a data-key rotation under way (in the state).
    bool rotating(const std::string& target) const;
    // FAILED_PRECONDITION ("... being rotated: WHAT it once ...") when the
    // volume, or the nexus it is a child of, has a rotation under way.
    grpc::Status check_not_rotating(const std::string& pool, const std::string& volume,
                                    const char* what) const;
    // Removes the rotation journal of `target` (durably); false with a sentence.
    task<bool> remove_journal(const std::string& target, std::string* why);
    // Stops the rotations of the targets `which` accepts and waits for them.
    task<void> stop_rotations(const std::function<bool(const std::string&)>& which);
    gate bg_;
};

}  // namespace weft::engine
