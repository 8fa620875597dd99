#include "auth/api_tokens.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace weft::auth {

namespace {

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r';
}

// The words of one line.
std::vector<std::string_view> words(std::string_view line) {
    std::vector<std::string_view> out;
    size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && is_space(line[i])) ++i;
        size_t j = i;
        while (j < line.size() && !is_space(line[j])) ++j;
        if (j > i) out.push_back(line.substr(i, j - i));
        i = j;
    }
    return out;
}

// Equal secrets, compared by their SHA-256 digests in constant time: how
// long the secret is does not show either.
bool same_secret(std::string_view a, std::string_view b) {
    unsigned char da[32], db[32];
    unsigned n = 0;
    EVP_Digest(a.data(), a.size(), da, &n, EVP_sha256(), nullptr);
    EVP_Digest(b.data(), b.size(), db, &n, EVP_sha256(), nullptr);
    bool same = CRYPTO_memcmp(da, db, sizeof da) == 0;
    OPENSSL_cleanse(da, sizeof da);
    OPENSSL_cleanse(db, sizeof db);
    return same;
}

}  // namespace

secret_string read_owner_only(const std::string& path, const char* what, std::string* why) {
    // Opened once, checked on what was opened (no race with a rename), read
    // through that descriptor.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0) {
        *why =
            std::string("cannot read the ") + what + " from " + path + ": " + std::strerror(errno);
        if (fd >= 0) ::close(fd);
        return {};
    }
    std::string problem;
    if (!S_ISREG(st.st_mode))
        problem = path + " holds the " + what + " but is not a regular file";
    else if (st.st_mode & 077)
        problem = path + " holds the " + what + " and other users can read it: chmod 600 it";
    else if (st.st_uid != ::geteuid() && st.st_uid != 0)
        problem = path + " holds the " + what + " but belongs to another user (uid " +
                  std::to_string(st.st_uid) + "): chown it";
    if (!problem.empty()) {
        ::close(fd);
        *why = problem;
        return {};
    }
    auto s = read_file_wiped("/proc/self/fd/" + std::to_string(fd), 64 * 1024);
    ::close(fd);
    if (!s || s->empty()) {
        *why = std::string("cannot read the ") + what + " from " + path + ": " +
               (!s ? (s.err().code == EFBIG ? "too large" : s.err().message()) : "empty");
        return {};
    }
    return std::move(s.value());
}

secret_string read_public_file(const std::string& path, const char* what, std::string* why) {
    auto s = read_file_wiped(path, 1 << 20);
    if (!s || s->empty()) {
        *why = std::string("cannot read the ") + what + " from " + path + ": " +
               (!s ? s.err().message() : "empty");
        return {};
    }
    return std::move(s.value());
}

result<std::vector<api_token>> load_api_tokens(const std::string& path, std::string* why) {
    auto text = read_owner_only(path, "API tokens", why);
    if (text.empty()) return error{EINVAL};
    std::vector<api_token> out;
    std::string_view rest = text.view();
    unsigned line_no = 0;
    while (!rest.empty()) {
        size_t nl = rest.find('\n');
        std::string_view line = rest.substr(0, nl);
        rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
        ++line_no;
        auto w = words(line);
        if (w.empty() || w[0].front() == '#') continue;
        if (w.size() != 2 || w[1].size() < min_api_token) {
            *why = path + " line " + std::to_string(line_no) +
                   ": want NAME TOKEN (a token of at least " + std::to_string(min_api_token) +
                   " characters; weft key gen-token makes one)";
            return error{EINVAL};
        }
        for (auto& t : out)
            if (t.name == w[0]) {
                *why = path + " line " + std::to_string(line_no) + ": " + std::string(w[0]) +
                       " is named twice";
                return error{EINVAL};
            }
        out.push_back({std::string(w[0]), secret_string(w[1])});
    }
    if (out.empty()) {
        *why = path + " holds no NAME TOKEN line";
        return error{EINVAL};
    }
    return out;
}

result<secret_string> load_client_token(const std::string& path, std::string* why) {
    auto text = read_owner_only(path, "API token", why);
    if (text.empty()) return error{EINVAL};
    auto w = words(text.view().substr(0, text.view().find('\n')));
    if (w.size() != 1 || w[0].size() < min_api_token) {
        *why = path + ": want one token on its first line (weft key gen-token)";
        return error{EINVAL};
    }
    return secret_string(w[0]);
}

const api_token* find_api_token(const std::vector<api_token>& tokens, std::string_view presented) {
    constexpr std::string_view bearer = "bearer ";
    if (presented.size() < bearer.size()) return nullptr;
    for (size_t i = 0; i < bearer.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(presented[i])) != bearer[i]) return nullptr;
    presented.remove_prefix(bearer.size());
    const api_token* found = nullptr;
    // Every entry is compared, each in constant time.
    for (auto& t : tokens)
        if (same_secret(presented, t.value.view()) && !found) found = &t;
    return found;
}

secret_string generate_api_token() {
    secret_bytes raw(32);
    if (RAND_bytes(raw.data(), int(raw.size())) != 1)
        std::abort();  // no entropy: nothing safe to do
    std::vector<char, wiping_allocator<char>> b64(4 * ((raw.size() + 2) / 3) + 1);
    int n =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), raw.data(), int(raw.size()));
    while (n > 0 && b64[size_t(n) - 1] == '=') --n;
    for (int i = 0; i < n; ++i) {
        if (b64[size_t(i)] == '+') b64[size_t(i)] = '-';
        if (b64[size_t(i)] == '/') b64[size_t(i)] = '_';
    }
    return secret_string(std::string_view(b64.data(), size_t(n)));
}

bool is_loopback_address(const std::string& listen) {
    std::string host = listen.substr(0, listen.rfind(':'));
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    in_addr a4{};
    if (::inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    in6_addr a6{};
    if (::inet_pton(AF_INET6, host.c_str(), &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return host == "localhost";
}

std::string refuse_access(const access_flags& f, bool cert, bool key, bool client_ca) {
    if (cert != key)
        return std::string("TLS needs both a certificate (") + f.cert + ") and its private key (" +
               f.key + ")";
    if (client_ca && !cert)
        return std::string("client certificates (") + f.client_ca + ") need TLS: give " + f.cert +
               " and " + f.key;
    return {};
}

std::string refuse_exposure(const access_flags& f, const std::string& listen, bool tls, bool tokens,
                            bool insecure) {
    if (tls || insecure || is_loopback_address(listen)) return {};
    if (tokens)
        return "tokens on " + listen + " would cross the network in clear text: give " + f.cert +
               " and " + f.key + " too, or " + f.insecure + " on a network you trust";
    return std::string(f.api) + " on " + listen + " would take " + f.calls +
           " from anyone who reaches it: give " + f.cert + " and " + f.key + " (with " +
           f.client_ca + " for client certificates) or " + f.tokens + ", or " + f.insecure +
           " on a network you trust";
}

std::string caller_name(std::string_view cert_cn, const api_token* token, std::string_view peer) {
    std::string id;
    if (!cert_cn.empty()) id = "cert " + std::string(cert_cn);
    if (token) id += (id.empty() ? "" : ", ") + ("token " + token->name);
    if (id.empty()) id = "anonymous";
    return id + " " + std::string(peer);
}

bool is_loopback_url(const std::string& url) {
    auto at = url.find("://");
    std::string rest = at == std::string::npos ? url : url.substr(at + 3);
    rest = rest.substr(0, rest.find('/'));
    // IP:PORT, or a host without a port.
    if (rest.find(':') == std::string::npos || (rest.front() == '[' && rest.back() == ']'))
        rest += ":0";
    return is_loopback_address(rest);
}

std::string log_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        if (c < 0x20 || c == 0x7f || c == '\\') {
            char b[5];
            std::snprintf(b, sizeof b, "\\x%02x", c);
            out += b;
        } else {
            out += char(c);
        }
    }
    return out;
}

}  // namespace weft::auth
