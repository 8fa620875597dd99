// Submission and completion queue entries (NVMe Base 2.0, 4.2 and 4.6) and
// opcodes of the admin, NVM and fabrics command sets.
#pragma once

#include "nvme/wire.h"

namespace weft::nvme {

// SGL descriptor (NVMe Base 4.4): the only data pointer NVMe/TCP uses.
struct sgl_descriptor {
    uint64_t address;  // for in-capsule data: offset into the capsule's data
    uint32_t length;
    uint8_t reserved[3];
    uint8_t type;  // descriptor type << 4 | subtype
};
static_assert(sizeof(sgl_descriptor) == 16);
WEFT_CHECK_LAYOUT(sgl_descriptor, length, 8);
WEFT_CHECK_LAYOUT(sgl_descriptor, type, 15);

namespace sgl_type {
// Data Block, subtype Offset: data is in the capsule (what hosts use for writes).
inline constexpr uint8_t in_capsule = 0x01;
// Transport SGL Data Block, transport-specific subtype A: data moves by
// C2HData, or by R2T + H2CData (NVMe/TCP 3.3.x).
inline constexpr uint8_t transport = 0x5a;
}  // namespace sgl_type

struct command {
    uint8_t opcode;
    uint8_t flags;  // bits 0-1 fused, bits 6-7 PSDT (SGL required on fabrics)
    uint16_t cid;
    uint32_t nsid;
    uint32_t cdw2;
    uint32_t cdw3;
    uint64_t mptr;
    sgl_descriptor sgl;
    uint32_t cdw10;
    uint32_t cdw11;
    uint32_t cdw12;
    uint32_t cdw13;
    uint32_t cdw14;
    uint32_t cdw15;
};
static_assert(sizeof(command) == 64);
WEFT_CHECK_LAYOUT(command, cid, 2);
WEFT_CHECK_LAYOUT(command, nsid, 4);
WEFT_CHECK_LAYOUT(command, mptr, 16);
WEFT_CHECK_LAYOUT(command, sgl, 24);
WEFT_CHECK_LAYOUT(command, cdw10, 40);
WEFT_CHECK_LAYOUT(command, cdw15, 60);

// Fabrics commands reuse byte 4 (the nsid position) for the fabrics type.
inline uint8_t fctype_of(const command& c) {
    return uint8_t(c.nsid & 0xff);
}

struct completion {
    uint32_t dw0;
    uint32_t dw1;
    uint16_t sqhd;
    uint16_t sqid;
    uint16_t cid;
    uint16_t status;  // bit 0 phase, bits 1-15 the status field
};
static_assert(sizeof(completion) == 16);
WEFT_CHECK_LAYOUT(completion, sqhd, 8);
WEFT_CHECK_LAYOUT(completion, cid, 12);
WEFT_CHECK_LAYOUT(completion, status, 14);

enum class admin_opcode : uint8_t {
    delete_sq = 0x00,
    create_sq = 0x01,
    get_log_page = 0x02,
    delete_cq = 0x04,
    create_cq = 0x05,
    identify = 0x06,
    abort = 0x08,
    set_features = 0x09,
    get_features = 0x0a,
    async_event_request = 0x0c,
    namespace_management = 0x0d,
    firmware_commit = 0x10,
    firmware_download = 0x11,
    keep_alive = 0x18,
    fabrics = 0x7f,
};

enum class io_opcode : uint8_t {
    flush = 0x00,
    write = 0x01,
    read = 0x02,
    write_uncorrectable = 0x04,
    compare = 0x05,
    write_zeroes = 0x08,
    dataset_management = 0x09,
    verify = 0x0c,
    reservation_register = 0x0d,
    reservation_report = 0x0e,
    reservation_acquire = 0x11,
    reservation_release = 0x15,
    fabrics = 0x7f,
};

enum class fabrics_type : uint8_t {
    property_set = 0x00,
    connect = 0x01,
    property_get = 0x04,
    authentication_send = 0x05,
    authentication_receive = 0x06,
    disconnect = 0x08,
};

// Data transfer direction, from opcode bits 1:0 (NVMe Base 3.1.x "Opcodes").
enum class transfer { none = 0, host_to_controller = 1, controller_to_host = 2, bidirectional = 3 };
inline transfer data_direction(uint8_t opcode) {
    return transfer(opcode & 3);
}
// The same for a whole command: a fabrics command's direction is in bits 1:0
// of its fabrics type (Connect and Authentication Send write, Authentication
// Receive reads).
inline transfer data_direction(const command& c) {
    return c.opcode == uint8_t(admin_opcode::fabrics) ? transfer(fctype_of(c) & 3)
                                                      : transfer(c.opcode & 3);
}

}  // namespace weft::nvme
