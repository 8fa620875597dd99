// NVMe over Fabrics commands and controller properties (NVMe-oF 1.1, 3.x;
// NVMe Base 2.0, 3.1.3 controller registers).
#pragma once

#include "nvme/command.h"
#include "nvme/wire.h"

namespace weft::nvme {

inline constexpr std::string_view discovery_nqn = "nqn.2014-08.org.nvmexpress.discovery";

struct connect_command {
    uint8_t opcode;
    uint8_t rsvd1;
    uint16_t cid;
    uint8_t fctype;
    uint8_t rsvd5[19];
    sgl_descriptor sgl;
    uint16_t recfmt;
    uint16_t qid;
    uint16_t sqsize;  // zero's based
    uint8_t cattr;    // bit 2: SQ flow control disable requested
    uint8_t rsvd47;
    uint32_t kato;  // milliseconds
    uint8_t rsvd52[12];
};
static_assert(sizeof(connect_command) == 64);
WEFT_CHECK_LAYOUT(connect_command, fctype, 4);
WEFT_CHECK_LAYOUT(connect_command, recfmt, 40);
WEFT_CHECK_LAYOUT(connect_command, qid, 42);
WEFT_CHECK_LAYOUT(connect_command, sqsize, 44);
WEFT_CHECK_LAYOUT(connect_command, cattr, 46);
WEFT_CHECK_LAYOUT(connect_command, kato, 48);

struct connect_data {
    uint8_t hostid[16];
    uint16_t cntlid;  // FFFFh: any (dynamic); the admin queue's for I/O queues
    uint8_t rsvd18[238];
    char subnqn[256];
    char hostnqn[256];
    uint8_t rsvd768[256];
};
static_assert(sizeof(connect_data) == 1024);
WEFT_CHECK_LAYOUT(connect_data, cntlid, 16);
WEFT_CHECK_LAYOUT(connect_data, subnqn, 256);
WEFT_CHECK_LAYOUT(connect_data, hostnqn, 512);

struct property_command {
    uint8_t opcode;
    uint8_t rsvd1;
    uint16_t cid;
    uint8_t fctype;
    uint8_t rsvd5[35];
    uint8_t attrib;  // bits 2:0: 0 = 4 bytes, 1 = 8 bytes
    uint8_t rsvd41[3];
    uint32_t offset;
    uint64_t value;  // Property Set only
    uint8_t rsvd56[8];
};
static_assert(sizeof(property_command) == 64);
WEFT_CHECK_LAYOUT(property_command, attrib, 40);
WEFT_CHECK_LAYOUT(property_command, offset, 44);
WEFT_CHECK_LAYOUT(property_command, value, 48);

// Controller properties (register offsets).
namespace reg {
inline constexpr uint32_t cap = 0x00;   // 8 bytes
inline constexpr uint32_t vs = 0x08;    // 4 bytes
inline constexpr uint32_t cc = 0x14;    // 4 bytes
inline constexpr uint32_t csts = 0x1c;  // 4 bytes
inline constexpr uint32_t nssr = 0x20;  // 4 bytes
}  // namespace reg

// CC and CSTS fields: raw words with accessors, no bitfields.
struct cc_reg {
    uint32_t raw = 0;
    constexpr bool en() const { return raw & 1; }
    constexpr uint32_t css() const { return (raw >> 4) & 7; }
    constexpr uint32_t mps() const { return (raw >> 7) & 0xf; }
    constexpr uint32_t shn() const { return (raw >> 14) & 3; }
    constexpr uint32_t iosqes() const { return (raw >> 16) & 0xf; }
    constexpr uint32_t iocqes() const { return (raw >> 20) & 0xf; }
};
namespace csts_bits {
inline constexpr uint32_t rdy = 1 << 0;
inline constexpr uint32_t cfs = 1 << 1;
inline constexpr uint32_t shst_complete = 2 << 2;
}  // namespace csts_bits

// CAP: MQES (zero's based), CQR, TO (500 ms units), CSS NVM, MPSMIN 4 KiB.
constexpr uint64_t make_cap(uint16_t mqes, uint8_t timeout_500ms) {
    return uint64_t(mqes) | (1ull << 16) | (uint64_t(timeout_500ms) << 24) | (1ull << 37);
}
constexpr uint32_t version(unsigned major, unsigned minor, unsigned tertiary = 0) {
    return (major << 16) | (minor << 8) | tertiary;
}

enum class feature : uint8_t {
    arbitration = 0x01,
    power_management = 0x02,
    temperature_threshold = 0x04,
    error_recovery = 0x05,
    volatile_write_cache = 0x06,
    number_of_queues = 0x07,
    interrupt_coalescing = 0x08,
    write_atomicity = 0x0a,
    async_event_configuration = 0x0b,
    keep_alive_timer = 0x0f,
    host_identifier = 0x81,
    reservation_notification_mask = 0x82,
    reservation_persistence = 0x83,
};

// Asynchronous Event Request completion dword 0 for "namespace attribute
// changed": type notice (2), info 00h, log page Changed Namespace List.
inline constexpr uint32_t aen_namespace_changed = 2u | (0x00u << 8) | (0x04u << 16);
inline constexpr uint32_t aec_namespace_attribute = 1u << 8;
// ... for "Asymmetric Namespace Access change": info 03h, log page ANA (0Ch).
inline constexpr uint32_t aen_ana_change = 2u | (0x03u << 8) | (0x0cu << 16);
inline constexpr uint32_t aec_ana_change = 1u << 11;

}  // namespace weft::nvme
