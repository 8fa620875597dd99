#include "attach/json_file.h"

#include <filesystem>
#include <fstream>

namespace weft::attach {

std::optional<nlohmann::json> read_json_file(const std::string& path) {
    std::ifstream f(path);
    if (!f) return std::nullopt;
    nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    return j;
}

bool write_json_file(const std::string& path, const nlohmann::json& j) {
    std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp);
        if (!f) return false;
        f << j.dump(2) << "\n";
        if (!f) return false;
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    return !ec;
}

}  // namespace weft::attach
