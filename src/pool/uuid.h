// Pool and volume identifiers: random (version 4) UUIDs.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace weft::pool {

using uuid = std::array<uint8_t, 16>;

// A fresh random UUID (getrandom(2)); never all zero.
uuid random_uuid();
bool is_nil(const uuid& u);
// "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", lower case.
std::string to_string(const uuid& u);
std::optional<uuid> parse_uuid(std::string_view s);

}  // namespace weft::pool
