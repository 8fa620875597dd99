#include "nexus/nvmf_child.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "initiator/controller.h"
#include "initiator/ns.h"
#include "initiator/nvmf_bdev.h"
#include "nvme/reservation.h"
#include "runtime/net.h"
#include "runtime/reactor.h"
#include "runtime/runtime.h"

namespace weft::nexus {
namespace {

using initiator::reservation_acquire_action;
using initiator::reservation_register_action;
using nvme::reservation_type;
constexpr auto wero = reservation_type::write_exclusive_registrants_only;

class nvmf_child final : public child_device {
  public:
    nvmf_child(child_uri u, nvmf_child_options o)
        : u_(std::move(u)), uri_(to_string(u_)), o_(std::move(o)) {}

    const std::string& uri() const override { return uri_; }
    bool local() const override { return false; }

    task<result<std::shared_ptr<bdev::bdev>>> open(std::string* why) override {
        auto addr = socket_address::parse(
            (u_.host.find(':') != std::string::npos ? "[" + u_.host + "]" : u_.host) + ":" +
            std::to_string(u_.port));
        if (!addr) {
            *why = uri_ + ": \"" + u_.host + "\" is not an IP address";
            co_return error{EINVAL};
        }
        initiator::controller_options co;
        co.address = addr.value();
        co.subnqn = u_.nqn;
        co.hostnqn = o_.hostnqn;
        co.dhchap = o_.dhchap;
        co.tls_key = o_.tls_key;
        co.hostid = o_.hostid;
        unsigned n = reactor::local().rt_or_null() ? reactor::local().rt().size() : 1;
        co.io_queues = n;
        for (unsigned r = 0; r < n; ++r) co.reactors.push_back(r);
        co.queue_depth = o_.queue_depth;
        co.command_timeout = o_.io_timeout;
        co.connect_timeout = o_.io_timeout;
        // Generous: a slow link must not cost the controller right after a
        // slow bring-up (keep-alives start once it is up); dead children
        // are found by I/O timeouts, not by the target's keep-alive.
        co.kato_ms = uint32_t(std::max<int64_t>(o_.io_timeout.count() * 4, 15000));
        // The nexus retires and reconnects the child itself: a queue that
        // drops fails its commands at once instead of retrying.
        co.reconnect_attempts = 0;
        auto c = co_await initiator::controller::connect(co);
        if (!c) {
            int e = c.err().code;
            if (e == EACCES)
                *why = fmt::format(
                    "{}: the target refuses this engine's host NQN {} (allow it on "
                    "the replica's share)",
                    uri_, o_.hostnqn);
            else if (e == EINVAL)
                *why = fmt::format("{}: the target has no subsystem {}", uri_, u_.nqn);
            else if (e == ENOKEY)
                *why = fmt::format(
                    "{}: the target requires this engine (host {}) to authenticate "
                    "(DH-HMAC-CHAP): start it with --dhchap-secret-file",
                    uri_, o_.hostnqn);
            else if (e == EKEYREJECTED && o_.tls_key)
                *why = fmt::format(
                    "{}: the target refused this engine's TLS key or DH-HMAC-CHAP secret (host "
                    "{}): give the replica's engine this host's TLS key (weft engine host-key "
                    "set --tls-key-file)",
                    uri_, o_.hostnqn);
            else if (e == EKEYREJECTED || e == ENOPROTOOPT)
                *why = fmt::format(
                    "{}: authentication (DH-HMAC-CHAP) of this engine (host {}) failed: the "
                    "target refused its secret{}",
                    uri_, o_.hostnqn,
                    e == ENOPROTOOPT ? " (no hash function or DH group in common)"
                                     : ", or could not prove it holds the controller secret");
            else
                *why = fmt::format("{}: {}", uri_, error{e}.message());
            co_return c.err();
        }
        ctrl_ = std::move(c.value());
        auto ids = ctrl_->namespace_ids();
        if (std::find(ids.begin(), ids.end(), u_.nsid) == ids.end()) {
            *why = fmt::format("{}: subsystem {} has no namespace {}", uri_, u_.nqn, u_.nsid);
            co_await close();
            co_return error{EINVAL};
        }
        bdev_ = initiator::make_nvmf_bdev(uri_, *ctrl_, u_.nsid);
        if (!bdev_) {
            *why = uri_ + ": the namespace cannot be used";
            co_await close();
            co_return error{EINVAL};
        }
        co_return bdev_;
    }

    task<void> close() override {
        bdev_.reset();
        if (ctrl_) {
            co_await ctrl_->disconnect();
            ctrl_.reset();
        }
    }

    task<result<void>> refresh(std::string* why) override {
        if (!bdev_) {
            *why = uri_ + ": not connected";
            co_return error{ENOTCONN};
        }
        auto n = co_await initiator::rescan(*bdev_);
        if (!n) {
            *why = fmt::format("{}: Identify Namespace: {}", uri_, n.err().message());
            co_return n.err();
        }
        co_return result<void>{};
    }

    task<result<void>> fence(uint64_t key, std::string* why) override {
        if (!ctrl_) {
            *why = uri_ + ": not connected";
            co_return error{ENOTCONN};
        }
        initiator::ns disk(*ctrl_, u_.nsid);
        auto st = co_await disk.reservation_register(reservation_register_action::replace, 0, key,
                                                     /*iekey=*/true);
        if (!st || !st->ok()) {
            *why = fmt::format("{}: registering the reservation key failed", uri_);
            co_return error{st ? EIO : st.err().code};
        }
        // Who holds it, and who else is registered?
        std::vector<std::byte> buf(4096);
        auto rep = co_await disk.reservation_report(buf);
        if (!rep || !rep->ok()) {
            *why = fmt::format("{}: reading the reservation failed", uri_);
            co_return error{rep ? EIO : rep.err().code};
        }
        nvme::reservation_status_ext_header h;
        std::memcpy(&h, buf.data(), sizeof h);
        unsigned count = std::min<unsigned>(h.regctl, (buf.size() - sizeof h) / 64);
        uint64_t holder = 0;
        std::vector<uint64_t> others;
        for (unsigned i = 0; i < count; ++i) {
            nvme::registered_controller_ext r;
            std::memcpy(&r, buf.data() + sizeof h + i * sizeof r, sizeof r);
            if (r.rkey == key) continue;
            // Keys order nexus instances (generation, then tag): only an
            // older key is preempted, so two instances never take turns.
            if (r.rkey > key) {
                *why = fmt::format("{} is held by a newer nexus (key generation {} > {})", uri_,
                                   fence_generation(r.rkey), fence_generation(key));
                co_return error{EACCES};
            }
            if (r.rcsts & 1) holder = r.rkey;
            others.push_back(r.rkey);
        }
        if (h.rtype == 0) {
            st = co_await disk.reservation_acquire(reservation_acquire_action::acquire, wero, key);
        } else if (holder) {
            // Preempting the holder makes us the holder and unregisters it.
            st = co_await disk.reservation_acquire(reservation_acquire_action::preempt, wero, key,
                                                   holder);
        } else {
            st = nvme::status{};  // we hold it already
        }
        if (!st || !st->ok()) {
            *why = fmt::format("{}: taking the reservation failed", uri_);
            co_return error{st ? EIO : st.err().code};
        }
        for (uint64_t k : others) {
            if (k == holder) continue;
            st = co_await disk.reservation_acquire(reservation_acquire_action::preempt, wero, key,
                                                   k);
            if (!st || !st->ok())
                spdlog::warn("nexus child {}: removing an older registration failed", uri_);
        }
        co_return result<void>{};
    }

    task<void> unfence(uint64_t key) override {
        if (!ctrl_) co_return;
        initiator::ns disk(*ctrl_, u_.nsid);
        (void)co_await disk.reservation_release(initiator::reservation_release_action::release,
                                                wero, key);
        (void)co_await disk.reservation_register(reservation_register_action::unregister, key, 0);
    }

  private:
    child_uri u_;
    std::string uri_;
    nvmf_child_options o_;
    std::unique_ptr<initiator::controller> ctrl_;
    std::shared_ptr<bdev::bdev> bdev_;
};

}  // namespace

std::unique_ptr<child_device> make_nvmf_child(child_uri u, nvmf_child_options o) {
    return std::make_unique<nvmf_child>(std::move(u), std::move(o));
}

}  // namespace weft::nexus
