// Small JSON state files (an attachment's state.json, the CSI node's
// per-volume state): read as an object or nothing, written whole through a
// temporary file and a rename, so that a reader never sees half of one.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace weft::attach {

// The object in `path`; nullopt when it is missing, unreadable or not an
// object.
std::optional<nlohmann::json> read_json_file(const std::string& path);
// Replaces `path` with `j` (PATH.tmp, then rename). False when it could not.
bool write_json_file(const std::string& path, const nlohmann::json& j);

}  // namespace weft::attach
