// The host's view of one remote NVMe controller: an admin queue on the
// reactor that connected it, and I/O queues spread over the reactors asked
// for (each queue created and run on its own reactor).
//
//   auto c = co_await controller::connect({.address = a, .subnqn = s, .hostnqn = h,
//                                          .io_queues = 2, .reactors = {0, 1}});
//   auto& ctrl = *c.value();
//   ns disk(ctrl, ctrl.namespace_ids().front());
//   co_await on(1, [&]() { return disk.read(0, 8, iov); });   // reactor 1's queue
//   co_await ctrl.disconnect();
//
// connect() runs the bring-up a host does (NVMe Base 3.5.1, NVMe-oF 1.1):
// Connect, read CAP, set CC.EN (IOSQES 6, IOCQES 4), wait for CSTS.RDY within
// CAP.TO, Identify Controller, Set Features Number of Queues, Identify the
// active namespaces, then a Connect per I/O queue. A keep-alive runs every
// KATO/2 on the admin queue.
//
// The admin queue does not reconnect (a new admin connection is a new
// controller, and the target tears the old one's I/O queues down with it);
// I/O queues do (queue_options::reconnect_attempts).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "auth/tls_psk.h"
#include "initiator/queue.h"
#include "nvme/fabrics.h"
#include "nvme/identify.h"
#include "runtime/abort.h"
#include "runtime/gate.h"

namespace weft::initiator {

struct controller_options {
    socket_address address;
    std::string subnqn;
    std::string hostnqn;
    host_id hostid{};
    unsigned io_queues = 1;
    uint16_t queue_depth = 32;
    uint16_t admin_depth = 32;
    // I/O queue i runs on reactors[i % size]; empty: on the calling reactor.
    std::vector<unsigned> reactors;
    bool header_digest = false;
    bool data_digest = false;
    // Reads receive C2HData with at least this many bytes still to come
    // straight into their buffers (queue_options::direct_data_min).
    size_t direct_data_min = nvmf::tcp::direct_data_min;
    bool sends_first = true;   // queue_options::sends_first
    uint32_t kato_ms = 30000;  // 0: no keep-alive
    std::chrono::milliseconds command_timeout{30000};
    std::chrono::milliseconds connect_timeout{5000};
    unsigned reconnect_attempts = 5;  // I/O queues
    std::chrono::milliseconds reconnect_delay{50};
    // A discovery controller: no queues, no namespaces.
    bool discovery = false;
    // DH-HMAC-CHAP secrets, for controllers that require authentication.
    std::shared_ptr<const dhchap_host_options> dhchap;
    // TLS 1.3 on every queue, with the PSK derived from this configured key
    // for hostnqn and subnqn under an identity of tls_identity_version (1:
    // what `nvme connect --tls-key` offers; 0: the older form). The PSK is
    // derived as RFC 8446 says and, when the target refuses that one, as
    // nvme-cli before 2.15 did (what Debian 13's nvme-cli inserts into an
    // nvmet's keyring); the admin queue's choice holds for the I/O queues.
    std::shared_ptr<const auth::tls_key> tls_key;
    unsigned tls_identity_version = 1;
    // Secure channel concatenation (NVMe Base 2.1, `nvme connect --concat`;
    // needs dhchap, excludes tls_key): the admin queue connects in plain TCP
    // and authenticates, which generates a TLS PSK; that queue closes with
    // no other command, and the controller is connected again with every
    // queue over TLS with that key. Each connect() makes a new key; queues
    // that reconnect reuse it (the target keeps it for an hour).
    bool concat = false;
};

class controller {
  public:
    // Errors: those of queue::connect; ETIMEDOUT when CSTS.RDY does not come
    // within CAP.TO; EIO when a bring-up command fails (status logged);
    // EINVAL when no TLS PSK can be derived for the NQNs (a v0 identity
    // over 255 bytes), or for concat without dhchap or with tls_key; EPROTO
    // when a concat target does not ask to authenticate.
    static task<result<std::unique_ptr<controller>>> connect(controller_options opt);

    // requires: disconnect() has completed.
    ~controller();
    controller(const controller&) = delete;
    controller& operator=(const controller&) = delete;

    // Closes the I/O queues (each on its reactor), shuts the controller down
    // (CC.SHN, bounded wait for CSTS.SHST), closes the admin queue.
    // requires: called on the home reactor.
    task<void> disconnect();

    unsigned home() const { return home_; }
    uint16_t cntlid() const { return admin_->cntlid(); }
    uint64_t cap() const { return cap_; }
    const controller_options& options() const { return opt_; }
    // The PSK identity its queues run TLS under ("" without TLS).
    std::string tls_identity() const { return tls_ ? tls_->identity : std::string(); }
    const nvme::identify_controller& identity() const { return *identity_; }
    // Largest transfer of one command (MDTS), bytes.
    uint32_t max_transfer() const { return max_transfer_; }
    // Largest in-capsule data of an I/O command (IOCCSZ), bytes.
    uint32_t max_icd() const { return max_icd_; }

    // The admin queue (home reactor only).
    queue& admin() { return *admin_; }
    // The I/O queue that runs on `reactor`, or nullptr.
    queue* io(unsigned reactor);
    // The calling reactor's I/O queue, or nullptr.
    queue* local_io();
    size_t io_queue_count() const { return io_.size(); }
    queue& io_at(size_t i) { return *io_[i]; }

    // Active namespaces as of connect(), and their Identify data.
    const std::vector<uint32_t>& namespace_ids() const { return nsids_; }
    const nvme::identify_namespace* namespace_data(uint32_t nsid) const;

    // Admin helpers (home reactor). A failed command's status is in the
    // completion; helpers returning data turn it into EIO (and log it).
    task<result<nvme::completion>> identify(nvme::cns cns, uint32_t nsid,
                                            std::span<std::byte> out4k);
    task<result<nvme::identify_controller>> identify_controller();
    task<result<nvme::identify_namespace>> identify_namespace(uint32_t nsid);
    // Identify Namespace again and keep the answer as namespace_data(nsid)
    // (a namespace that grew on its target). EINVAL for an unknown nsid.
    task<result<nvme::identify_namespace>> refresh_namespace(uint32_t nsid);
    task<result<std::vector<uint32_t>>> active_namespaces();
    // Get Log Page with an offset (LPO), `out.size()` a multiple of 4.
    task<result<nvme::completion>> get_log_page(uint8_t lid, uint64_t offset,
                                                std::span<std::byte> out, uint32_t nsid = 0);
    task<result<nvme::completion>> get_features(nvme::feature fid, uint32_t cdw11 = 0,
                                                uint32_t nsid = 0);
    task<result<nvme::completion>> set_features(nvme::feature fid, uint32_t cdw11,
                                                uint32_t nsid = 0, bool save = false);
    task<result<nvme::completion>> keep_alive();
    // Fabrics Property Get/Set (4 or 8 bytes).
    task<result<uint64_t>> get_property(uint32_t offset, bool eight_bytes);
    task<result<void>> set_property(uint32_t offset, uint64_t value, bool eight_bytes);

  private:
    explicit controller(controller_options opt);
    static task<result<std::unique_ptr<controller>>> start(controller* c);
    task<result<void>> bring_up();
    task<result<void>> enable();
    task<result<void>> create_io_queues();
    queue_options io_queue_options(unsigned i) const;
    task<void> keep_alive_loop();
    task<result<uint32_t>> admin_cmd(nvme::command cmd, std::span<std::byte> in = {});

    controller_options opt_;
    std::shared_ptr<const auth::derived_psk> tls_;  // derived from opt_.tls_key
    unsigned home_ = 0;
    std::unique_ptr<queue> admin_;
    std::vector<std::unique_ptr<queue>> io_;
    uint64_t cap_ = 0;
    uint32_t max_transfer_ = 1u << 20;
    uint32_t max_icd_ = 0;
    std::unique_ptr<nvme::identify_controller> identity_;
    std::vector<uint32_t> nsids_;
    std::map<uint32_t, std::unique_ptr<nvme::identify_namespace>> ns_data_;
    abort_source ka_stop_;
    gate ka_gate_;
};

// Command builders shared by the namespace API and the tests.
nvme::command make_admin(nvme::admin_opcode op, uint32_t nsid = 0);
nvme::command make_io(nvme::io_opcode op, uint32_t nsid);

}  // namespace weft::initiator
