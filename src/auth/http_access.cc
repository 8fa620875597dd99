#include "auth/http_access.h"

#include <httplib.h>
#include <openssl/x509.h>

namespace weft::auth {

namespace {

const access_flags rest_flags{"the REST API",    "requests",     "--tls-cert", "--tls-key",
                              "--tls-client-ca", "--token-file", "--insecure"};

}  // namespace

result<std::shared_ptr<const http_server_access>> http_server_access::load(
    const http_server_access_options& o, const std::string& listen, std::string* why) {
    auto a = std::make_shared<http_server_access>();
    a->o_ = o;
    *why = refuse_access(rest_flags, !o.tls_cert.empty(), !o.tls_key.empty(),
                         !o.tls_client_ca.empty());
    if (!why->empty()) return error{EINVAL};
    // The library reads the key by its path; checked here that it is owner-only.
    if (!o.tls_key.empty() && read_owner_only(o.tls_key, "private key", why).empty())
        return error{EINVAL};
    if (!o.token_file.empty()) {
        auto t = load_api_tokens(o.token_file, why);
        if (!t) return error{EINVAL};
        a->tokens_ = std::move(t.value());
    }
    *why =
        refuse_exposure(rest_flags, listen, !o.tls_cert.empty(), !a->tokens_.empty(), o.insecure);
    if (!why->empty()) return error{EPERM};
    return std::shared_ptr<const http_server_access>(std::move(a));
}

std::unique_ptr<httplib::Server> http_server_access::make_server(std::string* why) const {
    if (o_.tls_cert.empty()) return std::make_unique<httplib::Server>();
    auto s = std::make_unique<httplib::SSLServer>(
        o_.tls_cert.c_str(), o_.tls_key.c_str(),
        o_.tls_client_ca.empty() ? nullptr : o_.tls_client_ca.c_str());
    if (!s->is_valid()) {
        *why = "cannot serve TLS with " + o_.tls_cert + " and " + o_.tls_key +
               (o_.tls_client_ca.empty() ? "" : " (client CA " + o_.tls_client_ca + ")") +
               ": not a PEM certificate and its key?";
        return nullptr;
    }
    return s;
}

bool http_server_access::admit(const httplib::Request& req, std::string* who,
                               std::string* refusal) const {
    std::string cn;
    if (!o_.tls_client_ca.empty() && req.ssl) {
        if (X509* peer = SSL_get_peer_certificate(req.ssl)) {
            char buf[256] = {};
            if (X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, buf,
                                          sizeof buf) > 0)
                cn = buf;
            X509_free(peer);
        }
    }
    bool given = req.has_header("Authorization");
    const api_token* token = nullptr;
    if (!tokens_.empty() && given)
        token = find_api_token(tokens_, req.get_header_value("Authorization"));
    *who = caller_name(cn, token, req.remote_addr + ":" + std::to_string(req.remote_port));
    if (!tokens_.empty() && !token) {
        *refusal = given ? "the token is not one this control plane knows"
                         : "this control plane's API needs a token (Authorization: Bearer "
                           "TOKEN; weft --control-token-file)";
        return false;
    }
    return true;
}

std::string http_server_access::describe() const {
    std::string s = o_.tls_cert.empty() ? "http" : "https";
    if (!o_.tls_client_ca.empty()) s += ", client certificates required";
    if (!tokens_.empty()) s += ", " + std::to_string(tokens_.size()) + " token(s)";
    return s;
}

result<std::shared_ptr<const http_client_access>> http_client_access::load(
    const http_client_access_options& o, std::string* why) {
    auto a = std::make_shared<http_client_access>();
    a->o_ = o;
    if (o.tls_cert.empty() != o.tls_key.empty()) {
        *why = "a client certificate needs its private key, and the other way round";
        return error{EINVAL};
    }
    if (!o.tls_key.empty() && read_owner_only(o.tls_key, "client private key", why).empty())
        return error{EINVAL};
    if (!o.token_file.empty()) {
        auto t = load_client_token(o.token_file, why);
        if (!t) return error{EINVAL};
        a->token_ = std::move(t.value());
    }
    return std::shared_ptr<const http_client_access>(std::move(a));
}

std::shared_ptr<const http_client_access> http_client_access::none() {
    static const auto plain = std::make_shared<const http_client_access>();
    return plain;
}

std::unique_ptr<httplib::Client> http_client_access::client(const std::string& url) const {
    std::unique_ptr<httplib::Client> c;
    try {  // httplib throws std::invalid_argument for a scheme it does not know
        if (o_.tls_cert.empty())
            c = std::make_unique<httplib::Client>(url);
        else
            c = std::make_unique<httplib::Client>(url, o_.tls_cert, o_.tls_key);
    } catch (const std::exception&) {
        return nullptr;
    }
    if (!c->is_valid()) return nullptr;
    if (!o_.tls_ca.empty()) c->set_ca_cert_path(o_.tls_ca.c_str());
    if (!token_.empty()) c->set_bearer_token_auth(std::string(token_.view()));
    return c;
}

}  // namespace weft::auth
