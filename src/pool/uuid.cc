#include "pool/uuid.h"

#include <sys/random.h>

#include <cstdio>
#include <random>

namespace weft::pool {

uuid random_uuid() {
    uuid u{};
    if (getrandom(u.data(), u.size(), 0) != ssize_t(u.size())) {
        // No entropy syscall (very old kernel): a seeded engine is still
        // unique enough for names that are also checked for collisions.
        std::random_device rd;
        for (auto& b : u) b = uint8_t(rd());
    }
    u[6] = uint8_t((u[6] & 0x0f) | 0x40);  // version 4
    u[8] = uint8_t((u[8] & 0x3f) | 0x80);  // RFC 4122 variant
    return u;
}

bool is_nil(const uuid& u) {
    for (uint8_t b : u)
        if (b) return false;
    return true;
}

std::string to_string(const uuid& u) {
    char s[37];
    std::snprintf(s, sizeof s,
                  "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
                  u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
                  u[14], u[15]);
    return s;
}

std::optional<uuid> parse_uuid(std::string_view s) {
    if (s.size() != 36) return std::nullopt;
    uuid u{};
    size_t k = 0;
    for (size_t i = 0; i < s.size();) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return std::nullopt;
            ++i;
            continue;
        }
        auto hex = [](char c) -> int {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            return -1;
        };
        int hi = hex(s[i]), lo = hex(s[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        u[k++] = uint8_t(hi << 4 | lo);
        i += 2;
    }
    return u;
}

}  // namespace weft::pool
