// What a control-plane operation throws when it cannot do what was asked: an
// HTTP status and a sentence for the user. The REST server answers it as
// application/problem+json (RFC 9457).
#pragma once

#include <stdexcept>
#include <string>

namespace weft::control {

struct api_error : std::runtime_error {
    api_error(int status, std::string title, const std::string& detail)
        : std::runtime_error(detail), status(status), title(std::move(title)) {}
    int status;
    std::string title;
};

inline api_error bad_request(const std::string& d) {
    return {400, "Bad Request", d};
}
inline api_error not_found(const std::string& d) {
    return {404, "Not Found", d};
}
inline api_error conflict(const std::string& d) {
    return {409, "Conflict", d};
}
inline api_error unavailable(const std::string& d) {
    return {503, "Service Unavailable", d};
}
inline api_error no_room(const std::string& d) {
    return {507, "Insufficient Storage", d};
}

}  // namespace weft::control
