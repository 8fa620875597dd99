#include "nvmf/tcp/crc32c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string_view>
#include <vector>

namespace weft::nvmf::tcp {
namespace {

std::span<const std::byte> of(std::string_view s) {
    return std::as_bytes(std::span(s));
}

TEST(crc32c, check_value) {
    // The CRC catalogue's check value for CRC-32/ISCSI.
    EXPECT_EQ(crc32c(of("123456789")), 0xE3069283u);
}

TEST(crc32c, empty_is_zero_and_neutral) {
    EXPECT_EQ(crc32c(std::span<const std::byte>()), 0u);
    EXPECT_EQ(crc32c(std::span<const std::byte>(), 0xE3069283u), 0xE3069283u);
}

TEST(crc32c, iscsi_test_vectors) {
    // RFC 3720, appendix B.4.
    std::vector<std::byte> b(32);
    EXPECT_EQ(crc32c(b), 0x8A9136AAu);
    std::memset(b.data(), 0xff, b.size());
    EXPECT_EQ(crc32c(b), 0x62A8AB43u);
    for (size_t i = 0; i < 32; ++i) b[i] = std::byte(i);
    EXPECT_EQ(crc32c(b), 0x46DD794Eu);
    for (size_t i = 0; i < 32; ++i) b[i] = std::byte(31 - i);
    EXPECT_EQ(crc32c(b), 0x113FDB5Cu);
}

TEST(crc32c, incremental_equals_whole) {
    std::vector<std::byte> b(10000);
    for (size_t i = 0; i < b.size(); ++i) b[i] = std::byte(i * 7 + (i >> 8));
    uint32_t whole = crc32c(b);
    for (size_t cut : {size_t(0), size_t(1), size_t(3), size_t(4096), size_t(9999), b.size()}) {
        std::span<const std::byte> s(b);
        EXPECT_EQ(crc32c(s.subspan(cut), crc32c(s.first(cut))), whole) << "cut at " << cut;
    }
}

TEST(crc32c, iovecs_equal_concatenation) {
    std::string a = "1234", b = "", c = "56789";
    iovec iov[] = {{a.data(), a.size()}, {b.data(), b.size()}, {c.data(), c.size()}};
    EXPECT_EQ(crc32c(std::span<const iovec>(iov)), 0xE3069283u);
    EXPECT_EQ(crc32c(std::span<const iovec>()), 0u);
    // Continuing over iovecs from an earlier crc.
    EXPECT_EQ(crc32c(std::span<const iovec>(iov + 2, 1), crc32c(of("1234"))), 0xE3069283u);
}

}  // namespace
}  // namespace weft::nvmf::tcp
