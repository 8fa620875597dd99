// TLS 1.3 with a pre-shared key on an NVMe/TCP connection (NVMe/TCP 3.6):
// the handshake runs on the TCP stream before ICReq, then every PDU travels
// inside TLS records (their boundaries unrelated to the PDUs').
//
// The record layer runs here, in user space, over the io_uring socket
// (OpenSSL with a BIO over this object's buffers): ciphertext is received
// into rx_, SSL_read decrypts it into the caller's buffer; send_all
// encrypts into out_ and sends that. Profile as Linux's tlshd: TLS 1.3 only,
// TLS_AES_128_GCM_SHA256 for a SHA-256 PSK and TLS_AES_256_GCM_SHA384 for a
// SHA-384 one, (EC)DHE with the PSK (psk_dhe_ke), no session tickets (a
// kernel host drops a connection on any record but application data), no
// certificates.
//
//   auto t = tls_channel::client(psk);   // a shared auth::derived_psk
//   int rc = co_await t->handshake(stream, 10s, &stop);   // 0 or -errno
//   co_await t->send_all(stream, iov);
//   int n = co_await t->recv(stream, buf, &stop);        // bytes, 0 at the end
//
// One receiver and one sender at a time (a queue's receive loop and its
// flusher), on the stream's reactor. Anything the receive side must answer
// (a KeyUpdate) goes out with the next send.
#pragma once

#include <openssl/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "auth/tls_psk.h"
#include "runtime/abort.h"
#include "runtime/net.h"
#include "runtime/task.h"

namespace weft::nvmf::tcp {

// A PSK as TLS uses it (the key after derivation, and its identity) is an
// auth::derived_psk. The server's key for an identity a client offers, or
// nothing (the handshake then fails):
using tls_psk_finder = std::function<std::optional<auth::derived_psk>(std::string_view identity)>;

class tls_channel {
  public:
    static std::unique_ptr<tls_channel> server(tls_psk_finder find);
    static std::unique_ptr<tls_channel> client(std::shared_ptr<const auth::derived_psk> psk);
    ~tls_channel();
    tls_channel(const tls_channel&) = delete;
    tls_channel& operator=(const tls_channel&) = delete;

    // 0 once the peer proved the PSK; -ETIMEDOUT, -ECANCELED, -ECONNRESET
    // (the peer closed), -EACCES (the server has no key for the identity,
    // or the keys differ: either side), -EPROTO (anything else TLS refused;
    // a plain NVMe/TCP peer). On failure the alert is sent when it can be.
    task<int> handshake(tcp_stream& s, std::chrono::milliseconds timeout, abort_source* abort);

    // Decrypted bytes into `out` (> 0), 0 when the peer ended the stream,
    // or -errno (-EPROTO for a record that does not decrypt).
    task<int> recv(tcp_stream& s, std::span<std::byte> out, abort_source* abort,
                   std::chrono::milliseconds timeout = {});

    // Encrypts every byte of `iov` and sends it, with anything pending.
    task<result<size_t>> send_all(tcp_stream& s, std::span<const iovec> iov);

    // Restricts the key-exchange groups this side offers or accepts (an
    // OpenSSL list, e.g. "P-256:P-384"), before the handshake; for hardened
    // setups and tests. False for a list OpenSSL does not take.
    bool set_groups(const char* list);

    // The identity the client offered (the server's, once a key was found
    // for it) or used (the client's).
    const std::string& identity() const { return identity_; }
    // Why the handshake failed, for a log line (OpenSSL's reason).
    const std::string& failure() const { return failure_; }

  private:
    explicit tls_channel(bool server);
    // More ciphertext into rx_: bytes received, 0 at the end, -errno.
    task<int> fill(tcp_stream& s, abort_source* abort, std::chrono::milliseconds timeout);
    task<int> flush(tcp_stream& s);
    // Records OpenSSL's error in failure_ and maps it to -EACCES (the
    // keys) or -EPROTO (anything else).
    int take_failure();

    friend struct tls_callbacks;
    SSL* ssl_ = nullptr;
    tls_psk_finder find_;
    std::shared_ptr<const auth::derived_psk> psk_;  // the client's
    std::string identity_;
    std::string failure_;
    bool no_key_ = false;  // the server had no key for the offered identity
    // Ciphertext received and not yet read by OpenSSL: rx_[rx_begin_, rx_end_).
    std::vector<std::byte> rx_;
    size_t rx_begin_ = 0, rx_end_ = 0;
    // Ciphertext OpenSSL wrote and nobody sent yet (out_), and what is on
    // the wire (sending_).
    std::vector<std::byte> out_, sending_;
    std::vector<std::byte> plain_;  // send_all's records are cut from here
};

// A connection's bytes with or without TLS (`tls` null: plain TCP), for
// the handshakes; the receive loops call tls_channel::recv or the socket
// themselves (the plain path needs no coroutine frame of its own).
task<int> recv_some(tcp_stream& s, tls_channel* tls, std::span<std::byte> buf, abort_source* abort,
                    std::chrono::milliseconds timeout = {});
task<result<size_t>> send_bytes(tcp_stream& s, tls_channel* tls, std::span<const std::byte> bytes);

}  // namespace weft::nvmf::tcp
