#include "auth/api_access.h"

#include <openssl/crypto.h>

namespace weft::auth {

namespace {

const access_flags api_flags{
    "the management API", "calls",         "--api-tls-cert", "--api-tls-key", "--api-tls-client-ca",
    "--api-token-file",   "--api-insecure"};

}  // namespace

result<std::shared_ptr<const api_server_access>> api_server_access::load(
    const api_server_access_options& o, const std::string& listen, std::string* why) {
    auto a = std::make_shared<api_server_access>();
    *why =
        refuse_access(api_flags, !o.tls_cert.empty(), !o.tls_key.empty(), !o.tls_client_ca.empty());
    if (!why->empty()) return error{EINVAL};
    if (!o.tls_cert.empty()) {
        a->cert_ = read_public_file(o.tls_cert, "certificate", why);
        if (a->cert_.empty()) return error{EINVAL};
        a->key_ = read_owner_only(o.tls_key, "private key", why);
        if (a->key_.empty()) return error{EINVAL};
    }
    if (!o.tls_client_ca.empty()) {
        a->client_ca_ = read_public_file(o.tls_client_ca, "client CA", why);
        if (a->client_ca_.empty()) return error{EINVAL};
    }
    if (!o.token_file.empty()) {
        auto t = load_api_tokens(o.token_file, why);
        if (!t) return error{EINVAL};
        a->tokens_ = std::move(t.value());
    }
    *why = refuse_exposure(api_flags, listen, !a->cert_.empty(), !a->tokens_.empty(), o.insecure);
    if (!why->empty()) return error{EPERM};
    return std::shared_ptr<const api_server_access>(std::move(a));
}

std::shared_ptr<grpc::ServerCredentials> api_server_access::credentials() const {
    if (cert_.empty()) return grpc::InsecureServerCredentials();
    grpc::SslServerCredentialsOptions opts(
        client_ca_.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                           : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    opts.pem_root_certs = std::string(client_ca_.view());
    opts.pem_key_cert_pairs.push_back({std::string(key_.view()), std::string(cert_.view())});
    auto c = grpc::SslServerCredentials(opts);
    OPENSSL_cleanse(opts.pem_key_cert_pairs[0].private_key.data(),
                    opts.pem_key_cert_pairs[0].private_key.size());
    return c;
}

grpc::Status api_server_access::admit(const grpc::ServerContext& ctx, std::string* who) const {
    std::string cn;
    if (!client_ca_.empty()) {
        auto v = ctx.auth_context()->FindPropertyValues("x509_common_name");
        if (!v.empty()) cn.assign(v.front().data(), v.front().size());
    }
    const api_token* token = nullptr;
    auto& md = ctx.client_metadata();
    auto it = md.find("authorization");
    if (!tokens_.empty() && it != md.end())
        token = find_api_token(tokens_, std::string_view(it->second.data(), it->second.size()));
    *who = caller_name(cn, token, ctx.peer());
    if (!tokens_.empty() && !token)
        return {grpc::StatusCode::UNAUTHENTICATED,
                it == md.end() ? "this engine's API needs a token (weft --api-token-file)"
                               : "the token is not one this engine's API knows"};
    return grpc::Status::OK;
}

std::string api_server_access::describe() const {
    std::string s = cert_.empty() ? "plain (no TLS)" : "TLS";
    if (!client_ca_.empty()) s += ", client certificates required";
    if (!tokens_.empty()) s += ", " + std::to_string(tokens_.size()) + " token(s)";
    return s;
}

result<std::shared_ptr<const api_client_access>> api_client_access::load(
    const api_client_access_options& o, std::string* why) {
    auto a = std::make_shared<api_client_access>();
    if (o.tls_cert.empty() != o.tls_key.empty()) {
        *why =
            "a client certificate (--api-tls-cert) needs its private key (--api-tls-key), "
            "and the other way round";
        return error{EINVAL};
    }
    if (o.tls_ca.empty() && (!o.tls_cert.empty() || !o.tls_name.empty())) {
        *why =
            "--api-tls-cert and --api-tls-name need TLS: give --api-tls-ca, the CA that "
            "signed the engine's certificate";
        return error{EINVAL};
    }
    if (!o.tls_ca.empty()) {
        a->ca_ = read_public_file(o.tls_ca, "CA", why);
        if (a->ca_.empty()) return error{EINVAL};
    }
    if (!o.tls_cert.empty()) {
        a->cert_ = read_public_file(o.tls_cert, "client certificate", why);
        if (a->cert_.empty()) return error{EINVAL};
        a->key_ = read_owner_only(o.tls_key, "client private key", why);
        if (a->key_.empty()) return error{EINVAL};
    }
    if (!o.token_file.empty()) {
        auto t = load_client_token(o.token_file, why);
        if (!t) return error{EINVAL};
        std::string header = "Bearer " + std::string(t->view());
        a->token_ = secret_string(header);
        OPENSSL_cleanse(header.data(), header.size());
    }
    a->name_ = o.tls_name;
    return std::shared_ptr<const api_client_access>(std::move(a));
}

std::shared_ptr<grpc::ChannelCredentials> api_client_access::credentials() const {
    if (ca_.empty()) return grpc::InsecureChannelCredentials();
    grpc::SslCredentialsOptions opts;
    opts.pem_root_certs = std::string(ca_.view());
    if (!cert_.empty()) {
        opts.pem_cert_chain = std::string(cert_.view());
        opts.pem_private_key = std::string(key_.view());
    }
    auto c = grpc::SslCredentials(opts);
    OPENSSL_cleanse(opts.pem_private_key.data(), opts.pem_private_key.size());
    return c;
}

void api_client_access::add_to(grpc::ChannelArguments& args) const {
    if (!name_.empty()) args.SetSslTargetNameOverride(name_);
}

void api_client_access::authorize(grpc::ClientContext& ctx) const {
    if (!token_.empty()) ctx.AddMetadata("authorization", std::string(token_.view()));
}

}  // namespace weft::auth
