// In-band authentication on NVMe over Fabrics: the Authentication Send and
// Receive commands and the DH-HMAC-CHAP messages they carry (NVMe Base 2.0,
// 8.13; the layouts are those of Linux's include/linux/nvme.h, which the
// kernel host and nvmet use).
//
// A host and a controller run one transaction per queue: Negotiate (host),
// Challenge (controller), Reply (host), Success1 (controller) and, when the
// host asked to authenticate the controller too, Success2 (host); either
// side ends a transaction it cannot go on with by a Failure message.
#pragma once

#include <cstdint>
#include <cstring>

#include "nvme/command.h"
#include "nvme/wire.h"

namespace weft::nvme::auth {

// Authentication Send / Receive (fabrics types 05h / 06h).
struct auth_command {
    uint8_t opcode;
    uint8_t rsvd1;
    uint16_t cid;
    uint8_t fctype;
    uint8_t rsvd5[19];
    sgl_descriptor sgl;
    uint8_t rsvd40;
    uint8_t spsp0;
    uint8_t spsp1;
    uint8_t secp;
    uint32_t length;  // Send: TL (transfer length); Receive: AL (allocation length)
    uint8_t rsvd48[16];
};
static_assert(sizeof(auth_command) == 64);
WEFT_CHECK_LAYOUT(auth_command, spsp0, 41);
WEFT_CHECK_LAYOUT(auth_command, secp, 43);
WEFT_CHECK_LAYOUT(auth_command, length, 44);

inline constexpr uint8_t secp_dhchap = 0xe9;  // security protocol: DH-HMAC-CHAP
inline constexpr uint8_t spsp_dhchap = 0x01;  // SPSP0 and SPSP1

// An Authentication Send (`length` bytes of message) or Receive (room for
// `length` bytes) of DH-HMAC-CHAP; the transport sets the CID and SGL.
inline command make_command(bool send, uint32_t length) {
    auth_command c{};
    c.opcode = uint8_t(admin_opcode::fabrics);
    c.fctype =
        uint8_t(send ? fabrics_type::authentication_send : fabrics_type::authentication_receive);
    c.secp = secp_dhchap;
    c.spsp0 = c.spsp1 = spsp_dhchap;
    c.length = length;
    command cmd;
    std::memcpy(&cmd, &c, sizeof c);
    return cmd;
}

// Connect response dword 0: the controller requires authentication (ATR) or
// a secure channel (ASCR) before anything else on this queue.
inline constexpr uint32_t connect_authreq_atr = 1u << 17;
inline constexpr uint32_t connect_authreq_ascr = 1u << 18;

enum class auth_type : uint8_t { common = 0x00, dhchap = 0x01 };
enum class message : uint8_t {
    negotiate = 0x00,
    challenge = 0x01,
    reply = 0x02,
    success1 = 0x03,
    success2 = 0x04,
    failure2 = 0xf0,
    failure1 = 0xf1,
};

// Failure reason code explanations (Failure1/Failure2 rescode_exp).
enum class failure : uint8_t {
    failed = 0x01,
    not_usable = 0x02,
    concat_mismatch = 0x03,
    hash_unusable = 0x04,
    dhgroup_unusable = 0x05,
    incorrect_payload = 0x06,
    incorrect_message = 0x07,
};
inline constexpr uint8_t failure_reason_failed = 0x01;  // rescode

inline constexpr uint8_t authid_dhchap = 0x01;
inline constexpr uint8_t sc_c_none = 0x00;  // no secure channel concatenation
// Secure channel concatenation (NVMe Base 2.1): a new TLS PSK from a plain
// admin queue, or a replacement from one that runs TLS already.
inline constexpr uint8_t sc_c_newtlspsk = 0x02;
inline constexpr uint8_t sc_c_replacetlspsk = 0x03;

struct protocol_descriptor {
    uint8_t authid;
    uint8_t rsvd;
    uint8_t halen;  // hash function IDs in idlist[0..halen)
    uint8_t dhlen;  // DH group IDs in idlist[30..30+dhlen)
    uint8_t idlist[60];
};
static_assert(sizeof(protocol_descriptor) == 64);
inline constexpr unsigned max_hash_ids = 30, max_dh_ids = 30;

struct negotiate_header {
    uint8_t auth_type;
    uint8_t auth_id;
    uint16_t rsvd;
    uint16_t t_id;
    uint8_t sc_c;
    uint8_t napd;  // number of protocol descriptors that follow
};
static_assert(sizeof(negotiate_header) == 8);

struct challenge_header {
    uint8_t auth_type;
    uint8_t auth_id;
    uint16_t rsvd1;
    uint16_t t_id;
    uint8_t hl;  // hash length: the challenge that follows
    uint8_t rsvd2;
    uint8_t hashid;
    uint8_t dhgid;
    uint16_t dhvlen;  // the controller's DH value after the challenge
    uint32_t seqnum;
};
static_assert(sizeof(challenge_header) == 16);
WEFT_CHECK_LAYOUT(challenge_header, hl, 6);
WEFT_CHECK_LAYOUT(challenge_header, hashid, 8);
WEFT_CHECK_LAYOUT(challenge_header, dhvlen, 10);
WEFT_CHECK_LAYOUT(challenge_header, seqnum, 12);

struct reply_header {
    uint8_t auth_type;
    uint8_t auth_id;
    uint16_t rsvd1;
    uint16_t t_id;
    uint8_t hl;
    uint8_t rsvd2;
    uint8_t cvalid;  // a challenge C2 for the controller follows the response
    uint8_t rsvd3;
    uint16_t dhvlen;
    uint32_t seqnum;  // S2; 0: no controller authentication
    // then: response (hl), challenge C2 (hl), the host's DH value (dhvlen)
};
static_assert(sizeof(reply_header) == 16);
WEFT_CHECK_LAYOUT(reply_header, cvalid, 8);
WEFT_CHECK_LAYOUT(reply_header, dhvlen, 10);
WEFT_CHECK_LAYOUT(reply_header, seqnum, 12);

struct success1_header {
    uint8_t auth_type;
    uint8_t auth_id;
    uint16_t rsvd1;
    uint16_t t_id;
    uint8_t hl;
    uint8_t rsvd2;
    uint8_t rvalid;  // the controller's response follows
    uint8_t rsvd3[7];
};
static_assert(sizeof(success1_header) == 16);

struct success2_message {
    uint8_t auth_type;
    uint8_t auth_id;
    uint16_t rsvd1;
    uint16_t t_id;
    uint8_t rsvd2[10];
};
static_assert(sizeof(success2_message) == 16);

struct failure_message {
    uint8_t auth_type;
    uint8_t auth_id;
    uint16_t rsvd1;
    uint16_t t_id;
    uint8_t rescode;
    uint8_t rescode_exp;
};
static_assert(sizeof(failure_message) == 8);

}  // namespace weft::nvme::auth
