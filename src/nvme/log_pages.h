// Log pages weft serves (NVMe Base 2.0, 5.16.1; NVMe-oF 1.1, 5.3 discovery).
#pragma once

#include "nvme/wire.h"

namespace weft::nvme {

enum class log_id : uint8_t {
    error_information = 0x01,
    smart_health = 0x02,
    firmware_slot = 0x03,
    changed_namespaces = 0x04,
    asymmetric_namespace_access = 0x0c,
    discovery = 0x70,
};

struct error_log_entry {
    uint64_t error_count;
    uint16_t sqid;
    uint16_t cid;
    uint16_t status;
    uint16_t parameter_error_location;
    uint64_t lba;
    uint32_t nsid;
    uint8_t vs;
    uint8_t trtype;
    uint8_t rsvd30[2];
    uint64_t cs;
    uint16_t trtype_specific;
    uint8_t rsvd42[22];
};
static_assert(sizeof(error_log_entry) == 64);
WEFT_CHECK_LAYOUT(error_log_entry, lba, 16);
WEFT_CHECK_LAYOUT(error_log_entry, nsid, 24);

struct smart_log {
    uint8_t critical_warning;
    uint16_t temperature;  // Kelvin (unaligned, as the spec lays it out)
    uint8_t available_spare;
    uint8_t available_spare_threshold;
    uint8_t percentage_used;
    uint8_t endurance_group_warning;
    uint8_t rsvd7[25];
    uint8_t data_units_read[16];  // thousands of 512-byte units, 128-bit
    uint8_t data_units_written[16];
    uint8_t host_reads[16];
    uint8_t host_writes[16];
    uint8_t controller_busy_time[16];
    uint8_t power_cycles[16];
    uint8_t power_on_hours[16];
    uint8_t unsafe_shutdowns[16];
    uint8_t media_errors[16];
    uint8_t error_log_entries[16];
    uint8_t rsvd192[320];
} __attribute__((packed));
static_assert(sizeof(smart_log) == 512);
WEFT_CHECK_LAYOUT(smart_log, temperature, 1);
WEFT_CHECK_LAYOUT(smart_log, available_spare, 3);
WEFT_CHECK_LAYOUT(smart_log, data_units_read, 32);
WEFT_CHECK_LAYOUT(smart_log, host_reads, 64);
WEFT_CHECK_LAYOUT(smart_log, power_on_hours, 128);

struct firmware_slot_log {
    uint8_t afi;
    uint8_t rsvd1[7];
    char frs[7][8];
    uint8_t rsvd64[448];
};
static_assert(sizeof(firmware_slot_log) == 512);
WEFT_CHECK_LAYOUT(firmware_slot_log, frs, 8);

// Changed Namespace List: up to 1024 NSIDs; FFFFFFFFh first if more changed.
struct changed_namespace_log {
    uint32_t nsid[1024];
};
static_assert(sizeof(changed_namespace_log) == 4096);

// Asymmetric Namespace Access (Base 2.0, 5.16.1.12; 8.1.3): the state of
// this controller's path to each ANA group's namespaces.
enum class ana_state : uint8_t {
    optimized = 0x1,
    non_optimized = 0x2,
    inaccessible = 0x3,
    persistent_loss = 0x4,
    change = 0xf,
};

// The ANA log: this header, then per group a descriptor followed by its
// NNSIDS NSIDs (none with Return Groups Only, LSP bit 0).
struct ana_log_header {
    uint64_t chgcnt;
    uint16_t ngrps;
    uint8_t rsvd10[6];
};
static_assert(sizeof(ana_log_header) == 16);

struct ana_group_descriptor {
    uint32_t grpid;
    uint32_t nnsids;
    uint64_t chgcnt;
    uint8_t state;  // ana_state
    uint8_t rsvd17[15];
};
static_assert(sizeof(ana_group_descriptor) == 32);
WEFT_CHECK_LAYOUT(ana_group_descriptor, chgcnt, 8);
WEFT_CHECK_LAYOUT(ana_group_descriptor, state, 16);

struct discovery_log_header {
    uint64_t genctr;
    uint64_t numrec;
    uint16_t recfmt;
    uint8_t rsvd18[1006];
};
static_assert(sizeof(discovery_log_header) == 1024);

enum class discovery_subtype : uint8_t { referral = 1, nvme = 2, current_discovery = 3 };

struct discovery_log_entry {
    uint8_t trtype;  // 3 = TCP
    uint8_t adrfam;  // 1 = IPv4, 2 = IPv6
    uint8_t subtype;
    uint8_t treq;
    uint16_t portid;
    uint16_t cntlid;  // FFFFh: dynamic controller model
    uint16_t asqsz;
    uint16_t eflags;
    uint8_t rsvd12[20];
    char trsvcid[32];
    uint8_t rsvd64[192];
    char subnqn[256];
    char traddr[256];
    uint8_t tsas[256];  // TCP: byte 0 is SECTYPE
};
static_assert(sizeof(discovery_log_entry) == 1024);
WEFT_CHECK_LAYOUT(discovery_log_entry, asqsz, 8);
WEFT_CHECK_LAYOUT(discovery_log_entry, trsvcid, 32);
WEFT_CHECK_LAYOUT(discovery_log_entry, subnqn, 256);
WEFT_CHECK_LAYOUT(discovery_log_entry, traddr, 512);
WEFT_CHECK_LAYOUT(discovery_log_entry, tsas, 768);

}  // namespace weft::nvme
