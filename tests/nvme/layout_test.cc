// The layouts are checked at compile time (static_asserts beside each struct);
// these tests check the encodings a host decodes at run time.
#include <gtest/gtest.h>

#include "nvme/command.h"
#include "nvme/fabrics.h"
#include "nvme/identify.h"
#include "nvme/log_pages.h"
#include "nvme/reservation.h"
#include "nvme/status.h"

namespace weft::nvme {
namespace {

TEST(nvme_status, field_encoding_matches_the_spec) {
    // Reservation conflict: SCT 0, SC 83h, DNR.
    EXPECT_EQ(sc::reservation_conflict.field(), uint16_t((0x83 << 1) | 0x8000));
    // Connect invalid host: SCT 1, SC 84h, DNR -> the 0x4184 status the
    // Linux host prints (without the phase bit: 0x4184 >> 0).
    EXPECT_EQ(sc::connect_invalid_host.field() & 0x7ffe, (0x84 << 1) | (1 << 9));
    EXPECT_EQ(status::from_field(sc::lba_out_of_range.field()), sc::lba_out_of_range);
    EXPECT_TRUE(sc::success.ok());
    EXPECT_FALSE(sc::invalid_field.ok());
}

TEST(nvme_registers, cap_and_cc) {
    uint64_t cap = make_cap(127, 20);
    EXPECT_EQ(cap & 0xffff, 127u);
    EXPECT_TRUE(cap & (1ull << 16));     // CQR
    EXPECT_EQ((cap >> 24) & 0xff, 20u);  // TO
    EXPECT_TRUE(cap & (1ull << 37));     // CSS: NVM
    EXPECT_EQ((cap >> 48) & 0xf, 0u);    // MPSMIN 4 KiB
    cc_reg cc{0x00460001};               // what Linux writes: EN, IOSQES 6, IOCQES 4
    EXPECT_TRUE(cc.en());
    EXPECT_EQ(cc.iosqes(), 6u);
    EXPECT_EQ(cc.iocqes(), 4u);
    EXPECT_EQ(cc.shn(), 0u);
}

TEST(nvme_strings, ascii_fields_are_space_padded_and_nqns_nul_padded) {
    identify_controller id{};
    set_ascii(id.sn, "abc");
    EXPECT_EQ(std::string_view(id.sn, 20), "abc                 ");
    set_nqn(id.subnqn, "nqn.x");
    EXPECT_EQ(get_str(id.subnqn), "nqn.x");
}

}  // namespace
}  // namespace weft::nvme
