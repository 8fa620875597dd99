// Who may call weft-control's REST API, and how its clients (the CLI,
// weft-csi, the engines' heartbeats, a standby forwarding to the leader)
// prove it: the model of api_access.h over HTTP (cpp-httplib). TLS
// (--tls-cert, --tls-key), client certificates required with a CA
// (--tls-client-ca), bearer tokens from an owner-only file of `NAME TOKEN`
// lines (--token-file); nothing but loopback is served without TLS or
// tokens unless the operator says `insecure`.
//
//   auto a = http_server_access::load(opts, "10.0.0.5:10130", &why);
//   auto server = a->make_server(&why);     // httplib::SSLServer or Server
//   std::string who, refusal;
//   if (!a->admit(req, &who, &refusal)) ... 401 with `refusal`
//
//   auto c = http_client_access::load(copts, &why);
//   auto cli = c->client("https://10.0.0.5:10130");   // CA, certificate, token set
//
// `who` is "token NAME", "cert CN", both, or "anonymous", then the peer's
// address: what an audit line shows. The library keeps its own copy of a
// token as a header string, which this code cannot wipe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "auth/api_tokens.h"
#include "runtime/result.h"

namespace httplib {
class Client;
class Server;
struct Request;
}  // namespace httplib

namespace weft::auth {

struct http_server_access_options {
    std::string tls_cert, tls_key;  // PEM files: serve HTTPS
    std::string tls_client_ca;      // PEM file: require client certificates it signed
    std::string token_file;         // NAME TOKEN lines: every request carries a token
    bool insecure = false;          // a non-loopback address with neither TLS nor tokens
};

class http_server_access {
  public:
    // Checks the options for a server on `listen` (IP:PORT); refusals as
    // api_server_access::load's, naming weft-control's flags.
    static result<std::shared_ptr<const http_server_access>> load(
        const http_server_access_options& o, const std::string& listen, std::string* why);

    // The server: HTTPS when a certificate was given. Null, with a
    // sentence, when the certificate, key or CA does not load.
    std::unique_ptr<httplib::Server> make_server(std::string* why) const;
    // Per request: true (with `who`), or false with the sentence of a 401.
    bool admit(const httplib::Request& req, std::string* who, std::string* refusal) const;
    bool tls() const { return !o_.tls_cert.empty(); }
    bool tokens() const { return !tokens_.empty(); }
    std::string describe() const;

  private:
    http_server_access_options o_;
    std::vector<api_token> tokens_;
};

struct http_client_access_options {
    std::string tls_ca;             // PEM file: the CA that signed the server's certificate
    std::string tls_cert, tls_key;  // PEM files: this client's certificate
    std::string token_file;         // a file holding one token
};

class http_client_access {
  public:
    static result<std::shared_ptr<const http_client_access>> load(
        const http_client_access_options& o, std::string* why);
    // Plain HTTP(S) with the system's CAs, no certificate, no token.
    static std::shared_ptr<const http_client_access> none();

    // A client of `url` (http:// or https://) with the CA, the client
    // certificate and the token set; null when `url` is not one.
    std::unique_ptr<httplib::Client> client(const std::string& url) const;

  private:
    http_client_access_options o_;
    secret_string token_;
};

}  // namespace weft::auth
