// The engine API's audit log: one line for every call that changes
// something (every RPC but List*, Get* and Read*), and for every call
// refused at the door, saying who (api_access's "token NAME" / "cert CN" and
// the peer), what (the RPC and its request's scalar fields, secrets shown as
// "***") and the result. Lines go to the engine's log under "audit:".
#pragma once

#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include <string>

namespace weft::engine {

// "pool=p1 name=v1 size=1048576 dhchap_key=***": the request's set scalar
// fields, strings cut at 128 characters, repeated fields as their count.
std::string audit_fields(const google::protobuf::Message& m);

// Writes the line for `rpc` when it changes something or was refused.
void audit(const std::string& who, const char* rpc, const google::protobuf::Message& req,
           const grpc::Status& st);

}  // namespace weft::engine
