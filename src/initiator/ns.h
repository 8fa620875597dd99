// A namespace of a remote controller, in coroutine style. Each call goes
// through the calling reactor's I/O queue of the controller.
//
//   ns disk(ctrl, 1);
//   auto st = co_await disk.read(lba, nblocks, iov);   // result<nvme::status>
//   if (!st) ...transport error (st.err())...; else if (!st->ok()) ...command failed...
//
// requires: every call is made on a reactor with an I/O queue of the
// controller (ENXIO otherwise), and the iovecs live until it completes.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <span>

#include "initiator/controller.h"
#include "nvme/reservation.h"

namespace weft::initiator {

// One Dataset Management range (NVM Command Set 3.2.3.2).
struct dsm_range {
    uint32_t cattr;
    uint32_t nlb;
    uint64_t slba;
};
static_assert(sizeof(dsm_range) == 16);

enum class reservation_register_action : uint8_t { register_key = 0, unregister = 1, replace = 2 };
enum class reservation_acquire_action : uint8_t { acquire = 0, preempt = 1, preempt_and_abort = 2 };
enum class reservation_release_action : uint8_t { release = 0, clear = 1 };

class ns {
  public:
    ns(controller& c, uint32_t nsid);

    uint32_t nsid() const { return nsid_; }
    uint32_t block_size() const { return block_size_; }
    uint64_t num_blocks() const { return num_blocks_; }
    controller& ctrl() { return *ctrl_; }

    task<result<nvme::status>> read(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov);
    // fua: on stable media when it completes.
    task<result<nvme::status>> write(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov,
                                     bool fua = false);
    task<result<nvme::status>> flush();
    task<result<nvme::status>> write_zeroes(uint64_t lba, uint32_t nblocks,
                                            bool deallocate = false);
    // Deallocate (DSM with AD) of up to 256 ranges.
    task<result<nvme::status>> deallocate(std::span<const dsm_range> ranges);
    task<result<nvme::status>> deallocate(uint64_t lba, uint32_t nblocks);

    // Reservations (NVMe Base 7.x; host IDs are 128-bit on fabrics).
    task<result<nvme::status>> reservation_register(reservation_register_action a, uint64_t crkey,
                                                    uint64_t nrkey, bool iekey = false);
    task<result<nvme::status>> reservation_acquire(reservation_acquire_action a,
                                                   nvme::reservation_type type, uint64_t crkey,
                                                   uint64_t prkey = 0);
    task<result<nvme::status>> reservation_release(reservation_release_action a,
                                                   nvme::reservation_type type, uint64_t crkey);
    // Report with the extended data structure (EDS): `out` gets the header
    // and the registrants that fit; a multiple of 4 bytes.
    task<result<nvme::status>> reservation_report(std::span<std::byte> out);

    // Any NVM command with this namespace's NSID.
    task<result<nvme::completion>> submit(nvme::command cmd, std::span<const iovec> out = {},
                                          std::span<const iovec> in = {});

  private:
    task<result<nvme::status>> status_of(nvme::command cmd, std::span<const iovec> out = {},
                                         std::span<const iovec> in = {});

    controller* ctrl_;
    uint32_t nsid_;
    uint32_t block_size_ = 512;
    uint64_t num_blocks_ = 0;
};

}  // namespace weft::initiator
