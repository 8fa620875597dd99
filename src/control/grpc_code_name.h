// The name of a gRPC status code as gRPC spells it ("NOT_FOUND"), for the
// sentences of weft's gRPC clients (the CLI's engine commands, weft-csi).
#pragma once

#include <grpcpp/support/status_code_enum.h>

#include <iterator>

namespace weft::control {

inline const char* grpc_code_name(grpc::StatusCode c) {
    static const char* const names[] = {"OK",
                                        "CANCELLED",
                                        "UNKNOWN",
                                        "INVALID_ARGUMENT",
                                        "DEADLINE_EXCEEDED",
                                        "NOT_FOUND",
                                        "ALREADY_EXISTS",
                                        "PERMISSION_DENIED",
                                        "RESOURCE_EXHAUSTED",
                                        "FAILED_PRECONDITION",
                                        "ABORTED",
                                        "OUT_OF_RANGE",
                                        "UNIMPLEMENTED",
                                        "INTERNAL",
                                        "UNAVAILABLE",
                                        "DATA_LOSS",
                                        "UNAUTHENTICATED"};
    unsigned i = unsigned(c);
    return i < std::size(names) ? names[i] : "UNKNOWN";
}

}  // namespace weft::control
