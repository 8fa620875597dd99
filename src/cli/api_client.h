// The `weft` commands that manage an engine (pool, volume, snapshot,
// listener) talk to its gRPC API (proto/weft/engine/v1/engine.proto) with
// synchronous calls: no reactor needed.
//
//   api_options a;                  // --api ADDR (env WEFT_API), --timeout
//   add_api_options(sub, a);
//   api_client api(a);
//   pb::Pool pool;
//   if (!api.call([&](auto& stub, auto* ctx) { return stub.CreatePool(ctx, req, &pool); }))
//       return exit_failed;        // the sentence is printed
#pragma once

#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "auth/api_access.h"
#include "cli/connection.h"
#include "weft/engine/v1/engine.grpc.pb.h"
#include "weft/engine/v1/engine.pb.h"

namespace weft::cli {

namespace pb = ::weft::engine::v1;

// Exit codes, as the nvme commands (connection.h): 0 ok, 1 the engine
// refused or failed the request (or none answered), 2 usage.

inline constexpr const char* default_api_address = "127.0.0.1:10124";

struct api_options {
    std::string address = default_api_address;
    double timeout_s = 30;
    auth::api_client_access_options access;  // TLS and a token (auth/api_access.h)
};

// Adds --api ADDR (default: $WEFT_API, else 127.0.0.1:10124), --timeout and
// how to reach a secured API: --api-tls-ca, --api-tls-cert, --api-tls-key,
// --api-tls-name, --api-token-file (each also from $WEFT_API_TLS_CA, ...).
void add_api_options(CLI::App* app, api_options& o);

class api_client {
  public:
    explicit api_client(const api_options& o);

    // Runs one call, `rpc(stub, context)`, under the --timeout deadline.
    // On failure prints its sentence ("weft: ...") and returns false.
    template <typename F>
    bool call(F&& rpc) {
        if (!access_) {
            report_access();
            return false;
        }
        grpc::ClientContext ctx;
        ctx.set_deadline(deadline());
        access_->authorize(ctx);
        grpc::Status s = rpc(*stub_, &ctx);
        if (s.ok()) return true;
        report(s);
        return false;
    }

    // The sentence for a failed call: the engine's own message, or what
    // went wrong on the way (no engine at the address, no answer in time).
    std::string sentence(const grpc::Status& s) const;

  private:
    std::chrono::system_clock::time_point deadline() const;
    void report(const grpc::Status& s) const;
    void report_access() const;

    api_options o_;
    std::shared_ptr<const auth::api_client_access> access_;  // null: access_error_ says why
    std::string access_error_;
    std::shared_ptr<grpc::Channel> channel_;
    std::unique_ptr<pb::Engine::Stub> stub_;
};

// A message as JSON with its proto field names (snake_case) in the .proto's
// order, every field present (defaults included), 64-bit integers as
// numbers, nested messages as objects and repeated fields as arrays.
using ordered_json = nlohmann::ordered_json;
ordered_json message_json(const google::protobuf::Message& m);

// Prints `j` indented, with a newline.
void print_json(const ordered_json& j);

// After a share: "<what> shared as NQN, namespace N; who may connect", then
// the nvme connect line for every listener (or how to add one).
void print_share(const pb::Share& sh, const std::string& what);

// A volume of a pool by name.
pb::VolumeRef volume_ref(const std::string& pool, const std::string& name);
// "thin", "thick", "snapshot" or "clone" (a volume made from a snapshot).
std::string volume_kind(const pb::Volume& v);

}  // namespace weft::cli
