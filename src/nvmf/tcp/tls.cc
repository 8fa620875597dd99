#include "nvmf/tcp/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <stdexcept>

namespace weft::nvmf::tcp {

namespace {

// A TLS record holds at most 16 KiB of plaintext and 256 bytes more.
constexpr size_t record_max = 16 * 1024 + 256;
constexpr size_t plain_chunk = 16 * 1024;
// Ciphertext taken per recv: two records. Larger (8 records) was measured
// 3x slower at 4 KiB QD 32: the receive loop then completes many commands
// before their submitters run again, and the queue drains in bursts.
constexpr size_t rx_bytes = 2 * record_max;
// Ciphertext sealed before it is sent (the send buffers stay this small).
constexpr size_t out_max = 256 * 1024;

const unsigned char suite_sha256[2] = {0x13, 0x01};  // TLS_AES_128_GCM_SHA256
const unsigned char suite_sha384[2] = {0x13, 0x02};  // TLS_AES_256_GCM_SHA384

}  // namespace

// OpenSSL's callbacks, with access to the channel.
struct tls_callbacks {
    static tls_channel* of(SSL* ssl) { return static_cast<tls_channel*>(SSL_get_app_data(ssl)); }
    static tls_channel* of(BIO* b) { return static_cast<tls_channel*>(BIO_get_data(b)); }

    static SSL_SESSION* session(SSL* ssl, const auth::derived_psk& p) {
        const SSL_CIPHER* c =
            SSL_CIPHER_find(ssl, p.hash == auth::hash_id::sha384 ? suite_sha384 : suite_sha256);
        SSL_SESSION* s = SSL_SESSION_new();
        if (!c || !s || SSL_SESSION_set1_master_key(s, p.psk.data(), p.psk.size()) != 1 ||
            SSL_SESSION_set_cipher(s, c) != 1 ||
            SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION) != 1) {
            SSL_SESSION_free(s);
            return nullptr;
        }
        return s;
    }

    // Server: the client's identity names the key (nothing: no PSK, and
    // with no certificate the handshake fails).
    static int find(SSL* ssl, const unsigned char* id, size_t len, SSL_SESSION** out) noexcept {
        tls_channel* t = of(ssl);
        *out = nullptr;
        try {  // nothing may throw through OpenSSL's C frames
            std::string identity(reinterpret_cast<const char*>(id), len);
            auto psk = t->find_ ? t->find_(identity) : std::nullopt;
            t->no_key_ = !psk;
            t->identity_ = std::move(identity);
            if (!psk) return 1;
            *out = session(ssl, *psk);
            return *out ? 1 : 0;
        } catch (...) {
            return 0;
        }
    }

    // Client: the one PSK, unless a HelloRetryRequest chose another hash.
    static int use(SSL* ssl, const EVP_MD* md, const unsigned char** id, size_t* len,
                   SSL_SESSION** out) {
        tls_channel* t = of(ssl);
        *out = nullptr;
        if (!t->psk_) return 1;
        SSL_SESSION* s = session(ssl, *t->psk_);
        if (!s) return 0;
        // After a HelloRetryRequest, `md` is the suite's digest as the
        // provider fetched it: compare by type, not by pointer.
        const EVP_MD* mine = SSL_CIPHER_get_handshake_digest(SSL_SESSION_get0_cipher(s));
        if (md && (!mine || EVP_MD_get_type(md) != EVP_MD_get_type(mine))) {
            SSL_SESSION_free(s);
            return 1;
        }
        *id = reinterpret_cast<const unsigned char*>(t->psk_->identity.data());
        *len = t->psk_->identity.size();
        *out = s;
        return 1;
    }

    // The BIO under the SSL object: reads what fill() received, writes to out_.
    static int bio_read(BIO* b, char* buf, int len) {
        tls_channel* t = of(b);
        BIO_clear_retry_flags(b);
        size_t have = t->rx_end_ - t->rx_begin_;
        if (have == 0) {
            BIO_set_retry_read(b);
            return -1;
        }
        size_t n = std::min(have, size_t(len));
        std::memcpy(buf, t->rx_.data() + t->rx_begin_, n);
        t->rx_begin_ += n;
        return int(n);
    }
    static int bio_write(BIO* b, const char* buf, int len) noexcept {
        tls_channel* t = of(b);
        BIO_clear_retry_flags(b);
        auto p = reinterpret_cast<const std::byte*>(buf);
        try {
            t->out_.insert(t->out_.end(), p, p + len);
        } catch (...) {
            return -1;
        }
        return len;
    }
    static long bio_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }
    static int bio_create(BIO* b) {
        BIO_set_init(b, 1);
        return 1;
    }

    static BIO_METHOD* bio_method() {
        static BIO_METHOD* m = [] {
            BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "weft-tls");
            if (!m || BIO_meth_set_read(m, bio_read) != 1 ||
                BIO_meth_set_write(m, bio_write) != 1 || BIO_meth_set_ctrl(m, bio_ctrl) != 1 ||
                BIO_meth_set_create(m, bio_create) != 1)
                throw std::runtime_error("OpenSSL: cannot make a BIO method");
            return m;
        }();
        return m;
    }

    static SSL_CTX* context(bool server) {
        auto make = [](bool server) {
            SSL_CTX* c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
            if (!c || SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) != 1 ||
                SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) != 1 ||
                SSL_CTX_set_ciphersuites(c, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384") != 1)
                throw std::runtime_error("OpenSSL: cannot make a TLS 1.3 context");
            SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
            SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
            if (server) {
                SSL_CTX_set_num_tickets(c, 0);
                SSL_CTX_set_psk_find_session_callback(c, find);
            } else {
                SSL_CTX_set_psk_use_session_callback(c, use);
            }
            return c;
        };
        static SSL_CTX* s = make(true);
        static SSL_CTX* c = make(false);
        return server ? s : c;
    }
};

tls_channel::tls_channel(bool server) : rx_(rx_bytes) {
    ssl_ = SSL_new(tls_callbacks::context(server));
    BIO* bio = ssl_ ? BIO_new(tls_callbacks::bio_method()) : nullptr;
    if (!bio) {
        SSL_free(ssl_);
        throw std::runtime_error("OpenSSL: cannot make a TLS connection");
    }
    BIO_set_data(bio, this);
    SSL_set_bio(ssl_, bio, bio);  // the SSL object owns it
    SSL_set_app_data(ssl_, this);
    if (server)
        SSL_set_accept_state(ssl_);
    else
        SSL_set_connect_state(ssl_);
}

tls_channel::~tls_channel() {
    SSL_free(ssl_);
}

std::unique_ptr<tls_channel> tls_channel::server(tls_psk_finder find) {
    std::unique_ptr<tls_channel> t(new tls_channel(true));
    t->find_ = std::move(find);
    return t;
}

bool tls_channel::set_groups(const char* list) {
    return SSL_set1_groups_list(ssl_, list) == 1;
}

std::unique_ptr<tls_channel> tls_channel::client(std::shared_ptr<const auth::derived_psk> psk) {
    std::unique_ptr<tls_channel> t(new tls_channel(false));
    const char* suite =
        psk->hash == auth::hash_id::sha384 ? "TLS_AES_256_GCM_SHA384" : "TLS_AES_128_GCM_SHA256";
    if (SSL_set_ciphersuites(t->ssl_, suite) != 1)
        throw std::runtime_error("OpenSSL: cannot set the cipher suite");
    t->identity_ = psk->identity;
    t->psk_ = std::move(psk);
    return t;
}

int tls_channel::take_failure() {
    // The last error is the cause; the ones before it, its context.
    unsigned long e = ERR_peek_last_error();
    ERR_clear_error();
    const char* text = e ? ERR_reason_error_string(e) : nullptr;
    failure_ = no_key_ ? "no key for the PSK identity the host offered"
               : text  ? text
                       : "TLS failed";
    if (no_key_) return -EACCES;
    switch (ERR_GET_REASON(e)) {
        // The keys differ (the server cannot verify the binder), or the
        // peer said so with an alert.
        case SSL_R_BINDER_DOES_NOT_VERIFY:
        case SSL_AD_REASON_OFFSET + SSL_AD_HANDSHAKE_FAILURE:
        case SSL_AD_REASON_OFFSET + SSL_AD_ILLEGAL_PARAMETER:
        case SSL_AD_REASON_OFFSET + SSL_AD_DECRYPT_ERROR:
        case SSL_AD_REASON_OFFSET + SSL_AD_UNKNOWN_PSK_IDENTITY:
            return -EACCES;
        default:
            return -EPROTO;
    }
}

task<int> tls_channel::fill(tcp_stream& s, abort_source* abort, std::chrono::milliseconds timeout) {
    // OpenSSL asks for more once it has read all there is: this moves
    // nothing, and the buffer starts over at its front.
    std::memmove(rx_.data(), rx_.data() + rx_begin_, rx_end_ - rx_begin_);
    rx_end_ -= rx_begin_;
    rx_begin_ = 0;
    int n = co_await s.recv(std::span(rx_).subspan(rx_end_)).timeout_if(timeout).abort_with(abort);
    if (n > 0) rx_end_ += size_t(n);
    co_return n;
}

task<int> tls_channel::flush(tcp_stream& s) {
    while (!out_.empty()) {
        sending_.clear();
        std::swap(out_, sending_);  // OpenSSL may write more meanwhile
        auto r = co_await s.send_all(std::span<const std::byte>(sending_));
        if (!r) co_return -r.err().code;
    }
    co_return 0;
}

task<int> tls_channel::handshake(tcp_stream& s, std::chrono::milliseconds timeout,
                                 abort_source* abort) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(ssl_);
        int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
        if (err != SSL_ERROR_NONE && err != SSL_ERROR_WANT_READ) {
            int rc = take_failure();
            co_await flush(s);  // the alert, if the peer still listens
            co_return rc;
        }
        int sent = co_await flush(s);
        if (sent < 0) co_return sent;
        if (err == SSL_ERROR_NONE) break;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) co_return -ETIMEDOUT;
        int n = co_await fill(s, abort, left);
        if (n == 0) {
            failure_ = "the peer closed the connection during the TLS handshake";
            co_return -ECONNRESET;
        }
        if (n < 0) co_return n;
    }
    if (!SSL_session_reused(ssl_)) {
        failure_ = "the TLS handshake did not use the PSK";
        co_return -EACCES;
    }
    co_return 0;
}

task<int> tls_channel::recv(tcp_stream& s, std::span<std::byte> out, abort_source* abort,
                            std::chrono::milliseconds timeout) {
    for (;;) {
        ERR_clear_error();
        int n = SSL_read(ssl_, out.data(), int(std::min<size_t>(out.size(), INT_MAX)));
        if (n > 0) co_return n;
        int err = SSL_get_error(ssl_, n);
        if (err == SSL_ERROR_ZERO_RETURN) co_return 0;  // close_notify
        if (err != SSL_ERROR_WANT_READ) {
            take_failure();
            co_return -EPROTO;
        }
        int got = co_await fill(s, abort, timeout);
        if (got <= 0) co_return got;
    }
}

task<result<size_t>> tls_channel::send_all(tcp_stream& s, std::span<const iovec> iov) {
    ERR_clear_error();
    // Records of 16 KiB: small pieces (a batch of PDUs) are gathered in
    // plain_ first, whole records of a large buffer sealed where they lie.
    auto seal = [&](const void* p, size_t n) { return SSL_write(ssl_, p, int(n)) > 0; };
    auto seal_plain = [&] {
        bool ok = plain_.empty() || seal(plain_.data(), plain_.size());
        plain_.clear();
        return ok;
    };
    size_t total = 0;
    for (const iovec& v : iov) {
        auto p = static_cast<const std::byte*>(v.iov_base);
        for (size_t left = v.iov_len, n; left > 0; p += n, left -= n) {
            if (plain_.empty() && left >= plain_chunk) {
                n = plain_chunk;
                if (!seal(p, n)) co_return error{EPROTO};
            } else {
                n = std::min(left, plain_chunk - plain_.size());
                plain_.insert(plain_.end(), p, p + n);
                if (plain_.size() < plain_chunk) continue;
                if (!seal_plain()) co_return error{EPROTO};
            }
            // Bounded: a batch of large reads goes out as it is sealed.
            if (out_.size() >= out_max) {
                int rc = co_await flush(s);
                if (rc < 0) co_return error{-rc};
            }
        }
        total += v.iov_len;
    }
    if (!seal_plain()) co_return error{EPROTO};
    int rc = co_await flush(s);
    if (rc < 0) co_return error{-rc};
    co_return total;
}

task<int> recv_some(tcp_stream& s, tls_channel* tls, std::span<std::byte> buf, abort_source* abort,
                    std::chrono::milliseconds timeout) {
    if (tls) co_return co_await tls->recv(s, buf, abort, timeout);
    co_return co_await s.recv(buf).timeout_if(timeout).abort_with(abort);
}

task<result<size_t>> send_bytes(tcp_stream& s, tls_channel* tls, std::span<const std::byte> bytes) {
    if (!tls) co_return co_await s.send_all(bytes);
    iovec v{const_cast<std::byte*>(bytes.data()), bytes.size()};
    co_return co_await tls->send_all(s, std::span<const iovec>(&v, 1));
}

}  // namespace weft::nvmf::tcp
