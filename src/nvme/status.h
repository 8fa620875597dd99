// Status codes of the completion queue entry's status field (NVMe Base 2.0,
// 4.6.1.2; NVM Command Set 2.0; NVMe over Fabrics 1.1, 3.x).
#pragma once

#include <cstdint>

namespace weft::nvme {

enum class sct : uint8_t { generic = 0, command_specific = 1, media = 2, path = 3, vendor = 7 };

// A command's outcome: SCT, SC and the Do Not Retry bit. Value type.
struct status {
    sct type = sct::generic;
    uint8_t code = 0;
    bool dnr = false;

    constexpr bool ok() const { return type == sct::generic && code == 0; }
    // The CQE status field without the phase bit, shifted into place.
    constexpr uint16_t field() const {
        return uint16_t((uint16_t(code) << 1) | (uint16_t(type) << 9) | (dnr ? 0x8000 : 0));
    }
    static constexpr status from_field(uint16_t f) {
        return {sct((f >> 9) & 7), uint8_t((f >> 1) & 0xff), bool(f & 0x8000)};
    }
    friend constexpr bool operator==(status a, status b) {
        return a.type == b.type && a.code == b.code && a.dnr == b.dnr;
    }
    // The same status whatever its DNR bit says.
    constexpr bool is(status b) const { return type == b.type && code == b.code; }
};

constexpr status generic(uint8_t sc, bool dnr = true) {
    return {sct::generic, sc, dnr};
}
constexpr status specific(uint8_t sc, bool dnr = true) {
    return {sct::command_specific, sc, dnr};
}
constexpr status media(uint8_t sc, bool dnr = true) {
    return {sct::media, sc, dnr};
}

namespace sc {
inline constexpr status success{};
inline constexpr status invalid_opcode = generic(0x01);
inline constexpr status invalid_field = generic(0x02);
inline constexpr status command_id_conflict = generic(0x03);
inline constexpr status data_transfer_error = generic(0x04);
inline constexpr status internal_error = generic(0x06, false);
inline constexpr status abort_requested = generic(0x07);
inline constexpr status abort_sq_deleted = generic(0x08, false);
inline constexpr status invalid_namespace = generic(0x0b);
inline constexpr status command_sequence_error = generic(0x0c);
inline constexpr status sgl_data_length_invalid = generic(0x0f);
inline constexpr status sgl_descriptor_type_invalid = generic(0x11);
inline constexpr status sgl_offset_invalid = generic(0x16);
inline constexpr status host_id_inconsistent_format = generic(0x18);
inline constexpr status keep_alive_timeout_invalid = generic(0x1a);
inline constexpr status transient_transport_error = generic(0x22, false);
inline constexpr status lba_out_of_range = generic(0x80);
inline constexpr status capacity_exceeded = generic(0x81);
inline constexpr status namespace_not_ready = generic(0x82, false);
inline constexpr status reservation_conflict = generic(0x83);

inline constexpr status invalid_queue_identifier = specific(0x01);
inline constexpr status invalid_queue_size = specific(0x02);
inline constexpr status abort_command_limit_exceeded = specific(0x03);
inline constexpr status async_event_limit_exceeded = specific(0x05);
inline constexpr status invalid_log_page = specific(0x09);
inline constexpr status feature_not_saveable = specific(0x0d);
inline constexpr status feature_not_changeable = specific(0x0e);
// Fabrics Connect (NVMe-oF 1.1, 3.3).
inline constexpr status connect_incompatible_format = specific(0x80);
inline constexpr status connect_controller_busy = specific(0x81);
inline constexpr status connect_invalid_parameters = specific(0x82);
inline constexpr status connect_invalid_host = specific(0x84);
// A queue that has not authenticated gets nothing else (NVMe-oF 1.1, 3.5).
inline constexpr status authentication_required = specific(0x91);

// Path related (SCT 3h): this path cannot serve the namespace now; the host
// retries the command on another path (not DNR).
inline constexpr status ana_persistent_loss{sct::path, 0x01, false};
inline constexpr status ana_inaccessible{sct::path, 0x02, false};
inline constexpr status ana_transition{sct::path, 0x03, false};

inline constexpr status write_fault = media(0x80, false);
inline constexpr status unrecovered_read_error = media(0x81, false);
inline constexpr status compare_failure = media(0x85);
}  // namespace sc

}  // namespace weft::nvme
