// Who may call a management API over gRPC (the engine's), and how a client
// proves it: TLS (gRPC's, with OpenSSL) with an optional client-certificate
// requirement (mTLS), and bearer tokens from an owner-only file.
//
// Server side:
//   auto a = api_server_access::load(opts, "0.0.0.0:10124", &why);
//   builder.AddListeningPort(addr, a->credentials(), &port);
//   std::string who;
//   grpc::Status st = a->admit(*ctx, &who);   // per call, before any work
//
// A token file has one `NAME TOKEN` per line (# comments, blank lines); a
// call carries `authorization: Bearer TOKEN` and is then done as NAME. With
// a client CA, a call's peer is named by its certificate's common name.
// `who` is what an audit line shows: "token NAME", "cert CN", or
// "anonymous", then the peer address. Nothing but loopback is served
// without TLS or tokens unless the operator says `insecure`: an address
// others reach is locked by default.
//
// Client side:
//   auto c = api_client_access::load(copts, &why);
//   grpc::ChannelArguments args; c->add_to(args);
//   channel = grpc::CreateCustomChannel(addr, c->credentials(), args);
//   grpc::ClientContext ctx; c->authorize(ctx);
//
// Tokens and private keys are read into wiped memory and never logged;
// gRPC keeps its own copy of a PEM private key, which this code cannot wipe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "auth/api_tokens.h"
#include "auth/secret.h"
#include "runtime/result.h"

namespace weft::auth {

struct api_server_access_options {
    std::string tls_cert, tls_key;  // PEM files: serve over TLS
    std::string tls_client_ca;      // PEM file: require client certificates it signed
    std::string token_file;         // NAME TOKEN lines: every call carries a token
    bool insecure = false;          // a non-loopback address with neither TLS nor tokens
};

class api_server_access {
  public:
    // Reads and checks the files for a server listening on `listen`
    // (IP:PORT). Refused, with a sentence: a token file other users can
    // read, an empty or malformed one, a certificate without its key (or
    // the other way round), a client CA without TLS, a non-loopback address
    // with neither TLS nor tokens (unless `insecure`).
    static result<std::shared_ptr<const api_server_access>> load(const api_server_access_options& o,
                                                                 const std::string& listen,
                                                                 std::string* why);

    std::shared_ptr<grpc::ServerCredentials> credentials() const;
    // Per call: OK (with `who`), or UNAUTHENTICATED when tokens are required
    // and the call has none or an unknown one (`who` still names the peer).
    grpc::Status admit(const grpc::ServerContext& ctx, std::string* who) const;
    // "TLS, client certificates, 2 tokens" for the start-up line.
    std::string describe() const;
    bool tls() const { return !cert_.empty(); }

  private:
    secret_string cert_, key_, client_ca_;
    std::vector<api_token> tokens_;
};

struct api_client_access_options {
    std::string tls_ca;             // PEM file: TLS, the server's certificate checked against it
    std::string tls_cert, tls_key;  // PEM files: this client's certificate (mTLS)
    std::string tls_name;           // the name the server's certificate carries, if not its address
    std::string token_file;         // a file holding one bearer token
};

class api_client_access {
  public:
    // Reads the files; a token file others can read is refused, and so is
    // a client certificate without TLS (--api-tls-ca).
    static result<std::shared_ptr<const api_client_access>> load(const api_client_access_options& o,
                                                                 std::string* why);

    std::shared_ptr<grpc::ChannelCredentials> credentials() const;
    void add_to(grpc::ChannelArguments& args) const;
    void authorize(grpc::ClientContext& ctx) const;
    bool tls() const { return !ca_.empty(); }

  private:
    secret_string ca_, cert_, key_, token_;
    std::string name_;
};

}  // namespace weft::auth
