// Identify data structures (NVMe Base 2.0, 5.17.2) in the subset of versions
// weft reports (1.3 with the fabrics fields of NVMe-oF 1.1).
#pragma once

#include "nvme/wire.h"

namespace weft::nvme {

enum class cns : uint8_t {
    namespace_data = 0x00,
    controller = 0x01,
    active_namespaces = 0x02,
    namespace_descriptors = 0x03,
};

struct power_state {
    uint8_t raw[32];
};

struct identify_controller {
    uint16_t vid;
    uint16_t ssvid;
    char sn[20];
    char mn[40];
    char fr[8];
    uint8_t rab;
    uint8_t ieee[3];
    uint8_t cmic;
    uint8_t mdts;  // max transfer, power of two in units of CAP.MPSMIN (4 KiB)
    uint16_t cntlid;
    uint32_t ver;
    uint32_t rtd3r;
    uint32_t rtd3e;
    uint32_t oaes;
    uint32_t ctratt;
    uint16_t rrls;
    uint8_t rsvd102[9];
    uint8_t cntrltype;  // 1 I/O, 2 discovery
    uint8_t fguid[16];
    uint16_t crdt[3];
    uint8_t rsvd134[122];
    uint16_t oacs;
    uint8_t acl;
    uint8_t aerl;
    uint8_t frmw;
    uint8_t lpa;
    uint8_t elpe;
    uint8_t npss;
    uint8_t avscc;
    uint8_t apsta;
    uint16_t wctemp;
    uint16_t cctemp;
    uint16_t mtfa;
    uint32_t hmpre;
    uint32_t hmmin;
    uint8_t tnvmcap[16];
    uint8_t unvmcap[16];
    uint32_t rpmbs;
    uint16_t edstt;
    uint8_t dsto;
    uint8_t fwug;
    uint16_t kas;  // keep-alive granularity, 100 ms units; the host needs it != 0
    uint16_t hctma;
    uint16_t mntmt;
    uint16_t mxtmt;
    uint32_t sanicap;
    uint32_t hmminds;
    uint16_t hmmaxd;
    uint16_t nsetidmax;
    uint16_t endgidmax;
    uint8_t anatt;
    uint8_t anacap;
    uint32_t anagrpmax;
    uint32_t nanagrpid;
    uint32_t pels;
    uint8_t rsvd356[156];
    uint8_t sqes;
    uint8_t cqes;
    uint16_t maxcmd;
    uint32_t nn;
    uint16_t oncs;
    uint16_t fuses;
    uint8_t fna;
    uint8_t vwc;
    uint16_t awun;
    uint16_t awupf;
    uint8_t nvscc;
    uint8_t nwpc;
    uint16_t acwu;
    uint16_t rsvd534;
    uint32_t sgls;
    uint32_t mnan;
    uint8_t rsvd544[224];
    char subnqn[256];
    uint8_t rsvd1024[768];
    // NVMe over Fabrics attributes
    uint32_t ioccsz;  // I/O command capsule size, 16-byte units
    uint32_t iorcsz;  // I/O response capsule size, 16-byte units
    uint16_t icdoff;
    uint8_t fcatt;
    uint8_t msdbd;
    uint16_t ofcs;
    uint8_t rsvd1806[242];
    power_state psd[32];
    uint8_t vs[1024];
};
static_assert(sizeof(identify_controller) == 4096);
WEFT_CHECK_LAYOUT(identify_controller, sn, 4);
WEFT_CHECK_LAYOUT(identify_controller, mn, 24);
WEFT_CHECK_LAYOUT(identify_controller, fr, 64);
WEFT_CHECK_LAYOUT(identify_controller, cmic, 76);
WEFT_CHECK_LAYOUT(identify_controller, mdts, 77);
WEFT_CHECK_LAYOUT(identify_controller, cntlid, 78);
WEFT_CHECK_LAYOUT(identify_controller, ver, 80);
WEFT_CHECK_LAYOUT(identify_controller, oaes, 92);
WEFT_CHECK_LAYOUT(identify_controller, ctratt, 96);
WEFT_CHECK_LAYOUT(identify_controller, cntrltype, 111);
WEFT_CHECK_LAYOUT(identify_controller, fguid, 112);
WEFT_CHECK_LAYOUT(identify_controller, oacs, 256);
WEFT_CHECK_LAYOUT(identify_controller, aerl, 259);
WEFT_CHECK_LAYOUT(identify_controller, lpa, 261);
WEFT_CHECK_LAYOUT(identify_controller, elpe, 262);
WEFT_CHECK_LAYOUT(identify_controller, wctemp, 266);
WEFT_CHECK_LAYOUT(identify_controller, tnvmcap, 280);
WEFT_CHECK_LAYOUT(identify_controller, kas, 320);
WEFT_CHECK_LAYOUT(identify_controller, anatt, 342);
WEFT_CHECK_LAYOUT(identify_controller, pels, 352);
WEFT_CHECK_LAYOUT(identify_controller, sqes, 512);
WEFT_CHECK_LAYOUT(identify_controller, maxcmd, 514);
WEFT_CHECK_LAYOUT(identify_controller, nn, 516);
WEFT_CHECK_LAYOUT(identify_controller, oncs, 520);
WEFT_CHECK_LAYOUT(identify_controller, vwc, 525);
WEFT_CHECK_LAYOUT(identify_controller, sgls, 536);
WEFT_CHECK_LAYOUT(identify_controller, mnan, 540);
WEFT_CHECK_LAYOUT(identify_controller, subnqn, 768);
WEFT_CHECK_LAYOUT(identify_controller, ioccsz, 1792);
WEFT_CHECK_LAYOUT(identify_controller, iorcsz, 1796);
WEFT_CHECK_LAYOUT(identify_controller, icdoff, 1800);
WEFT_CHECK_LAYOUT(identify_controller, msdbd, 1803);
WEFT_CHECK_LAYOUT(identify_controller, psd, 2048);
WEFT_CHECK_LAYOUT(identify_controller, vs, 3072);

// Bits of identify_controller fields weft sets.
namespace ctrl_bits {
inline constexpr uint8_t cmic_multi_controller = 1 << 1;
inline constexpr uint8_t cmic_ana = 1 << 3;  // ANA reporting
inline constexpr uint32_t oaes_namespace_attribute = 1 << 8;
inline constexpr uint32_t oaes_ana_change = 1 << 11;
// ANACAP: the states reported (optimized, non-optimized, inaccessible,
// persistent loss, change), as Linux nvmet.
inline constexpr uint8_t anacap_states = 0x1f;
inline constexpr uint8_t lpa_extended_data = 1 << 2;  // offsets in Get Log Page
inline constexpr uint16_t oncs_compare = 1 << 0;
inline constexpr uint16_t oncs_dsm = 1 << 2;
inline constexpr uint16_t oncs_write_zeroes = 1 << 3;
inline constexpr uint16_t oncs_reservations = 1 << 5;
inline constexpr uint8_t vwc_present = 1 << 0;
inline constexpr uint8_t vwc_flush_broadcast = 3 << 1;  // Flush with NSID FFFFFFFFh
inline constexpr uint32_t sgls_supported = 1 << 0;
inline constexpr uint32_t sgls_offset = 1 << 20;  // in-capsule data by offset
}  // namespace ctrl_bits

struct lba_format {
    uint16_t ms;
    uint8_t lbads;  // log2 of the block size
    uint8_t rp;
};
static_assert(sizeof(lba_format) == 4);

struct identify_namespace {
    uint64_t nsze;
    uint64_t ncap;
    uint64_t nuse;
    uint8_t nsfeat;
    uint8_t nlbaf;
    uint8_t flbas;
    uint8_t mc;
    uint8_t dpc;
    uint8_t dps;
    uint8_t nmic;
    uint8_t rescap;
    uint8_t fpi;
    uint8_t dlfeat;
    uint16_t nawun;
    uint16_t nawupf;
    uint16_t nacwu;
    uint16_t nabsn;
    uint16_t nabo;
    uint16_t nabspf;
    uint16_t noiob;
    uint8_t nvmcap[16];
    uint16_t npwg;
    uint16_t npwa;
    uint16_t npdg;
    uint16_t npda;
    uint16_t nows;
    uint8_t rsvd74[18];
    uint32_t anagrpid;
    uint8_t rsvd96[3];
    uint8_t nsattr;
    uint16_t nvmsetid;
    uint16_t endgid;
    uint8_t nguid[16];
    uint8_t eui64[8];
    lba_format lbaf[64];
    uint8_t vs[3712];
};
static_assert(sizeof(identify_namespace) == 4096);
WEFT_CHECK_LAYOUT(identify_namespace, nsfeat, 24);
WEFT_CHECK_LAYOUT(identify_namespace, flbas, 26);
WEFT_CHECK_LAYOUT(identify_namespace, nmic, 30);
WEFT_CHECK_LAYOUT(identify_namespace, rescap, 31);
WEFT_CHECK_LAYOUT(identify_namespace, dlfeat, 33);
WEFT_CHECK_LAYOUT(identify_namespace, nvmcap, 48);
WEFT_CHECK_LAYOUT(identify_namespace, anagrpid, 92);
WEFT_CHECK_LAYOUT(identify_namespace, nguid, 104);
WEFT_CHECK_LAYOUT(identify_namespace, eui64, 120);
WEFT_CHECK_LAYOUT(identify_namespace, lbaf, 128);
WEFT_CHECK_LAYOUT(identify_namespace, vs, 384);

// Namespace Identification Descriptor header (CNS 03h).
struct ns_descriptor_header {
    uint8_t nidt;
    uint8_t nidl;
    uint16_t rsvd;
};
static_assert(sizeof(ns_descriptor_header) == 4);
enum class nidt : uint8_t { eui64 = 1, nguid = 2, uuid = 3, csi = 4 };

}  // namespace weft::nvme
