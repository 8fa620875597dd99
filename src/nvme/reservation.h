// Reservation data structures (NVMe Base 2.0, 7.x and 8.19).
#pragma once

#include "nvme/wire.h"

namespace weft::nvme {

enum class reservation_type : uint8_t {
    none = 0,
    write_exclusive = 1,
    exclusive_access = 2,
    write_exclusive_registrants_only = 3,
    exclusive_access_registrants_only = 4,
    write_exclusive_all_registrants = 5,
    exclusive_access_all_registrants = 6,
};

struct reservation_keys {  // Register: CRKEY, NRKEY; Acquire: CRKEY, PRKEY
    uint64_t current;
    uint64_t other;
};
static_assert(sizeof(reservation_keys) == 16);

// Reservation Report, extended data structure (EDS = 1: 128-bit host IDs,
// which NVMe over Fabrics uses).
struct reservation_status_ext_header {
    uint32_t gen;
    uint8_t rtype;
    uint16_t regctl;
    uint8_t rsvd7[2];
    uint8_t ptpls;
    uint8_t rsvd10[54];
} __attribute__((packed));
static_assert(sizeof(reservation_status_ext_header) == 64);
WEFT_CHECK_LAYOUT(reservation_status_ext_header, rtype, 4);
WEFT_CHECK_LAYOUT(reservation_status_ext_header, regctl, 5);
WEFT_CHECK_LAYOUT(reservation_status_ext_header, ptpls, 9);

struct registered_controller_ext {
    uint16_t cntlid;
    uint8_t rcsts;  // bit 0: holds the reservation
    uint8_t rsvd3[5];
    uint64_t rkey;
    uint8_t hostid[16];
    uint8_t rsvd32[32];
};
static_assert(sizeof(registered_controller_ext) == 64);
WEFT_CHECK_LAYOUT(registered_controller_ext, rkey, 8);
WEFT_CHECK_LAYOUT(registered_controller_ext, hostid, 16);

}  // namespace weft::nvme
