// CRC32C (Castagnoli, the iSCSI polynomial), the header and data digest of
// NVMe/TCP (TCP transport spec 1.0, "PDU Header and Data Digests"): initial value
// ~0, final XOR ~0, stored on the wire as a little-endian dword.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace weft::nvmf::tcp {

// The CRC32C of `data`, continuing from `crc`: the CRC32C of the bytes that
// came before `data` (0 for none). So crc32c(b, crc32c(a)) == crc32c(a + b),
// and crc32c("123456789") == 0xE3069283.
uint32_t crc32c(std::span<const std::byte> data, uint32_t crc = 0);

// The same over the concatenation of `iov`.
uint32_t crc32c(std::span<const iovec> iov, uint32_t crc = 0);

}  // namespace weft::nvmf::tcp
