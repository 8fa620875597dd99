#include "nvmf/tcp/crc32c.h"

#include <isa-l/crc.h>

#include <algorithm>

namespace weft::nvmf::tcp {

namespace {

// ISA-L's crc32_iscsi() applies neither the initial nor the final inversion:
// it continues a raw CRC register. The standard CRC32C is therefore
// ~crc32_iscsi(data, ~0), and continuing a finished CRC `c` means starting
// the register at ~c. It takes an `int` length, hence the chunks.
uint32_t extend(uint32_t crc, const void* p, size_t n) {
    // crc32_iscsi() only reads the buffer; its prototype lacks the const.
    auto* bytes = static_cast<unsigned char*>(const_cast<void*>(p));
    uint32_t reg = ~crc;
    constexpr size_t chunk = size_t(1) << 30;
    while (n > 0) {
        size_t m = std::min(n, chunk);
        reg = crc32_iscsi(bytes, int(m), reg);
        bytes += m;
        n -= m;
    }
    return ~reg;
}

}  // namespace

uint32_t crc32c(std::span<const std::byte> data, uint32_t crc) {
    return extend(crc, data.data(), data.size());
}

uint32_t crc32c(std::span<const iovec> iov, uint32_t crc) {
    for (const iovec& v : iov) crc = extend(crc, v.iov_base, v.iov_len);
    return crc;
}

}  // namespace weft::nvmf::tcp
