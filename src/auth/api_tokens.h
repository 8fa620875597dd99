// Bearer tokens and the other files a management API's access reads: the
// part of api_access.h (gRPC) and http_access.h (REST) that does not depend
// on the transport.
//
// A server's token file holds one `NAME TOKEN` per line (# comments, blank
// lines), a client's the token alone; both must be owner-only (mode 0600)
// and are read into wiped memory. A call presents `Bearer TOKEN`; the name
// is what the audit log shows.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "auth/secret.h"
#include "runtime/result.h"

namespace weft::auth {

struct api_token {
    std::string name;
    secret_string value;
};

// The shortest token accepted (weft key gen-token makes 43 characters).
inline constexpr size_t min_api_token = 16;

// A server's token file. Errors with a sentence that never shows a line
// (it may hold a token): unreadable, readable by others, malformed, a name
// given twice, no token at all.
result<std::vector<api_token>> load_api_tokens(const std::string& path, std::string* why);

// A client's token file: its first line, one token.
result<secret_string> load_client_token(const std::string& path, std::string* why);

// The entry whose token is `presented` (an Authorization header's value,
// "Bearer TOKEN", the scheme in any case); every entry is compared, through
// SHA-256 digests in constant time (a token's length does not show); null
// if none.
const api_token* find_api_token(const std::vector<api_token>& tokens, std::string_view presented);

// A new random token: 32 bytes from OpenSSL's generator, base64url without
// padding (43 characters).
secret_string generate_api_token();

// An owner-only file holding a secret (tokens, a private key), in wiped
// memory: a regular file, owned by this user (or root), that no one else
// may read or write; empty with a sentence on failure.
secret_string read_owner_only(const std::string& path, const char* what, std::string* why);
// A file that need not be secret (a certificate, a CA bundle).
secret_string read_public_file(const std::string& path, const char* what, std::string* why);

// A management API server's flags, named in its sentences (api_access.h:
// --api-tls-cert ...; http_access.h: --tls-cert ...).
struct access_flags {
    const char* api;    // "the management API", "the REST API"
    const char* calls;  // what it takes: "calls", "requests"
    const char* cert;
    const char* key;
    const char* client_ca;
    const char* tokens;
    const char* insecure;
};

// Why a server's options are refused before any file is read (a
// certificate without its key or the other way round, a client CA without
// TLS), or why serving on `listen` would be open to the network (neither
// TLS nor tokens, or tokens in clear text, off loopback and not
// `insecure`); empty when they are fine.
std::string refuse_access(const access_flags& f, bool cert, bool key, bool client_ca);
std::string refuse_exposure(const access_flags& f, const std::string& listen, bool tls, bool tokens,
                            bool insecure);

// Who called, for an audit line: "cert CN", "token NAME", both
// ("cert CN, token NAME") or "anonymous", then the peer's address.
std::string caller_name(std::string_view cert_cn, const api_token* token, std::string_view peer);

// True when IP:PORT's address is a loopback one (127/8, ::1, localhost).
bool is_loopback_address(const std::string& listen);
// The same for a URL's host (http://127.0.0.1:10130/...).
bool is_loopback_url(const std::string& url);

// `s` fit for one log line: control characters and backslashes as \xNN,
// so that what a client sent cannot end the line and forge another.
std::string log_escape(std::string_view s);

}  // namespace weft::auth
