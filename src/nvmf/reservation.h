// Reservations of one namespace (NVMe Base 2.0, 8.19): registrants, the
// holder, the type, and the conflict rules that let hosts fence each other.
// Pure logic, no I/O; the namespace serialises access (see ns.h).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "nvme/reservation.h"
#include "nvme/status.h"

namespace weft::nvmf {

using host_id = std::array<uint8_t, 16>;

class reservation_state {
  public:
    struct registrant {
        host_id host;
        uint16_t cntlid;  // the controller that registered, for reports
        uint64_t key;
    };

    // Reservation Register: cdw10 RREGA (0 register, 1 unregister, 2 replace), IEKEY.
    nvme::status register_key(const host_id& h, uint16_t cntlid, unsigned action, bool iekey,
                              uint64_t crkey, uint64_t nrkey);
    // Reservation Acquire: RACQA (0 acquire, 1 preempt, 2 preempt and abort).
    nvme::status acquire(const host_id& h, unsigned action, bool iekey, nvme::reservation_type type,
                         uint64_t crkey, uint64_t prkey);
    // Reservation Release: RRELA (0 release, 1 clear).
    nvme::status release(const host_id& h, unsigned action, bool iekey, nvme::reservation_type type,
                         uint64_t crkey);

    // May host `h` read (write = false) or modify the media now?
    bool allows(const host_id& h, bool write) const;

    bool held() const { return type_ != nvme::reservation_type::none; }
    uint32_t generation() const { return gen_; }
    nvme::reservation_type type() const { return type_; }
    const std::vector<registrant>& registrants() const { return regs_; }
    bool is_holder(const host_id& h) const;

    // The extended Reservation Report (EDS = 1) into `out`, truncated to its size.
    void report(std::span<std::byte> out) const;

  private:
    registrant* find(const host_id& h);
    const registrant* find(const host_id& h) const;
    bool all_registrants_type() const;
    void unregister(const host_id& h);

    std::vector<registrant> regs_;
    nvme::reservation_type type_ = nvme::reservation_type::none;
    std::optional<host_id> holder_;  // unset for the all-registrants types
    uint32_t gen_ = 0;
};

}  // namespace weft::nvmf
