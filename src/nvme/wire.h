// Helpers for NVMe wire structures. NVMe is little-endian throughout, and so
// is every host weft runs on; structs use plain fixed-width integers and this
// header refuses to build elsewhere rather than hiding byte swaps.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

static_assert(std::endian::native == std::endian::little,
              "weft's wire structs assume little-endian");

namespace weft::nvme {

// Copies `s` into a fixed-width ASCII field padded with spaces (SN, MN, FR).
template <size_t N>
void set_ascii(char (&field)[N], std::string_view s) {
    std::memset(field, ' ', N);
    std::memcpy(field, s.data(), s.size() < N ? s.size() : N);
}

// Copies `s` into a NUL-padded field (NQNs).
template <size_t N>
void set_nqn(char (&field)[N], std::string_view s) {
    std::memset(field, 0, N);
    std::memcpy(field, s.data(), s.size() < N - 1 ? s.size() : N - 1);
}

// Reads a NUL-terminated (or full-width) string field.
template <size_t N>
std::string_view get_str(const char (&field)[N]) {
    size_t n = 0;
    while (n < N && field[n] != 0) ++n;
    return {field, n};
}

}  // namespace weft::nvme

#define WEFT_CHECK_LAYOUT(type, field, off) \
    static_assert(offsetof(type, field) == (off), #type "::" #field " offset")
