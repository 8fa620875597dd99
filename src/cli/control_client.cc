#include "cli/control_client.h"

#include <cstdio>

#include "control/rest_client.h"

namespace weft::cli {

void add_control_options(CLI::App* app, control_options& o) {
    app->add_option("--control", o.url,
                    "the control plane's REST API (weft-control --listen); several, "
                    "comma-separated, for instances sharing one etcd")
        ->envname("WEFT_CONTROL")
        ->type_name("URL")
        ->capture_default_str();
    app->add_option("--timeout", o.timeout_s, "how long to wait for the answer, seconds")
        ->type_name("SECONDS")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    auto& a = o.access;
    app->add_option("--control-tls-ca", a.tls_ca,
                    "PEM CA certificate that signed the control plane's certificate (an https:// "
                    "--control)")
        ->envname("WEFT_CONTROL_TLS_CA")
        ->type_name("FILE");
    app->add_option("--control-tls-cert", a.tls_cert,
                    "PEM client certificate, for a control plane that requires one")
        ->envname("WEFT_CONTROL_TLS_CERT")
        ->type_name("FILE");
    app->add_option("--control-tls-key", a.tls_key,
                    "PEM private key of --control-tls-cert (mode 0600)")
        ->envname("WEFT_CONTROL_TLS_KEY")
        ->type_name("FILE");
    app->add_option("--control-token-file", a.token_file,
                    "file holding a token the control plane knows (its --token-file; mode 0600)")
        ->envname("WEFT_CONTROL_TOKEN_FILE")
        ->type_name("FILE");
}

std::optional<nlohmann::json> control_client::request(const std::string& method,
                                                      const std::string& path,
                                                      const nlohmann::json* body, int* status) {
    std::string why;
    auto access = auth::http_client_access::load(o_.access, &why);
    if (!access) {
        std::fprintf(stderr, "weft: %s\n", why.c_str());
        return std::nullopt;
    }
    control::rest_client c(o_.url, std::chrono::duration<double>(o_.timeout_s), access.value());
    control::rest_answer a = c.request(method, path, body);
    if (!a.reached) {
        std::fprintf(stderr, "weft: %s; start weft-control or give --control URL\n",
                     a.detail.c_str());
        return std::nullopt;
    }
    if (status) *status = a.status;
    if (a.status >= 300) {
        std::fprintf(stderr, "weft: %s\n", a.detail.c_str());
        return std::nullopt;
    }
    return std::move(a.body);
}

}  // namespace weft::cli
