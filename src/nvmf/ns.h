// A namespace of an NVM subsystem: an NSID, its identifiers, the bdev it
// exports and its reservations.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <mutex>

#include "bdev/bdev.h"
#include "nvmf/reservation.h"

namespace weft::nvmf {

struct ns_ids {
    std::array<uint8_t, 16> uuid{};
    std::array<uint8_t, 16> nguid{};
    std::array<uint8_t, 8> eui64{};
};

class ns {
  public:
    ns(uint32_t nsid, std::shared_ptr<bdev::bdev> dev, ns_ids ids)
        : nsid_(nsid), dev_(std::move(dev)), ids_(ids) {}

    uint32_t nsid() const { return nsid_; }
    bdev::bdev& dev() const { return *dev_; }
    const ns_ids& ids() const { return ids_; }

    // The I/O path's check: lock-free while no reservation is held.
    bool allows(const host_id& h, bool write) const {
        if (!reservation_held_.load(std::memory_order_acquire)) return true;
        std::lock_guard lock(resv_mutex_);
        return resv_.allows(h, write);
    }
    // Runs `fn(reservation_state&)` under the namespace's lock.
    template <typename F>
    auto with_reservations(F fn) {
        std::lock_guard lock(resv_mutex_);
        struct publish {
            const ns* self;
            ~publish() {
                self->reservation_held_.store(self->resv_.held(), std::memory_order_release);
            }
        } p{this};
        return fn(resv_);
    }

  private:
    uint32_t nsid_;
    std::shared_ptr<bdev::bdev> dev_;
    ns_ids ids_;
    mutable std::mutex resv_mutex_;
    reservation_state resv_;
    mutable std::atomic<bool> reservation_held_{false};
};

}  // namespace weft::nvmf
