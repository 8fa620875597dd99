// What the CSI conformance checks share: volume capabilities, a call with a
// deadline, and a status check that prints the plugin's sentence.
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "csi/v1/csi.pb.h"

namespace weft::csi::testing {

inline ::csi::v1::VolumeCapability mount_cap(
    const std::string& fs = "", ::csi::v1::VolumeCapability::AccessMode::Mode m =
                                    ::csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER) {
    ::csi::v1::VolumeCapability c;
    c.mutable_mount()->set_fs_type(fs);
    c.mutable_access_mode()->set_mode(m);
    return c;
}

inline ::csi::v1::VolumeCapability block_cap() {
    ::csi::v1::VolumeCapability c;
    c.mutable_block();
    c.mutable_access_mode()->set_mode(::csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
    return c;
}

// One call of a stub's method `m`, with a deadline (a plugin that hangs
// fails the check instead of the run).
template <class Stub, class Req, class Res>
grpc::Status call(Stub& stub, grpc::Status (Stub::*m)(grpc::ClientContext*, const Req&, Res*),
                  const Req& req, Res& res) {
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    return (stub.*m)(&c, req, &res);
}

}  // namespace weft::csi::testing

#define EXPECT_CODE(status, code) \
    EXPECT_EQ((status).error_code(), grpc::StatusCode::code) << (status).error_message()
