// The management API's statuses: a gRPC code with a sentence, and the code
// for an errno of the libraries below (pool, nexus), so that every call maps
// the same errno to the same code (see engine.proto's conventions).
#pragma once

#include <grpcpp/support/status.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "runtime/result.h"

namespace weft::engine {

inline grpc::Status fail(grpc::StatusCode c, std::string msg) {
    return grpc::Status(c, std::move(msg));
}

// `why` is the library's sentence.
inline grpc::Status from_errno(int code, const std::string& why) {
    using grpc::StatusCode;
    switch (code) {
        case EINVAL:
        case EFBIG:
        case ERANGE:
            return fail(StatusCode::INVALID_ARGUMENT, why);
        case ENOENT:
            return fail(StatusCode::NOT_FOUND, why);
        case EEXIST:
            return fail(StatusCode::ALREADY_EXISTS, why);
        case ENOSPC:
            return fail(StatusCode::RESOURCE_EXHAUSTED, why);
        case EBUSY:
        case ENOTEMPTY:
        case EROFS:
        case EUCLEAN:
        case ENODATA:
        case EAGAIN:  // a nexus without a majority
        case ENODEV:  // a nexus child that cannot be opened
            return fail(StatusCode::FAILED_PRECONDITION, why);
        case EACCES:  // a newer nexus holds the children, or a host not allowed
            return fail(StatusCode::PERMISSION_DENIED, why);
        case ECONNREFUSED:
        case ETIMEDOUT:
        case EHOSTUNREACH:
        case ENETUNREACH:
        case ENOTCONN:
        case ECONNRESET:
            return fail(StatusCode::UNAVAILABLE, why);
        default:
            return fail(StatusCode::INTERNAL, why.empty() ? error{code}.message() : why);
    }
}

// Pool and volume names: // 1..63 characters of [A-Za-z0-9._-], not starting with '-' or '.'.
inline bool valid_name(const std::string& n) {
    if (n.empty() || n.size() > 63 || n[0] == '-' || n[0] == '.') return false;
    return std::all_of(n.begin(), n.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
    });
}
inline const char* const name_rule =
    "1 to 63 characters of A-Z a-z 0-9 . _ -, not starting with '-' or '.'";

inline grpc::Status bad_name(const char* what, const std::string& n) {
    return fail(grpc::StatusCode::INVALID_ARGUMENT,
                fmt::format("{} name \"{}\" is not valid: {}", what, n, name_rule));
}

}  // namespace weft::engine
