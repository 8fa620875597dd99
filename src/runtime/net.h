// TCP over the reactor's io_uring: listen/accept, connect, recv, send,
// sendmsg with iovecs, and zero-copy send.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <span>
#include <string>
#include <string_view>

#include "runtime/result.h"
#include "runtime/task.h"
#include "runtime/uring_op.h"

namespace weft {

// An IPv4 or IPv6 socket address.
struct socket_address {
    sockaddr_storage storage{};
    socklen_t len = 0;

    // "127.0.0.1:4420", "[::1]:4420", "localhost:4420" is not resolved.
    static result<socket_address> parse(std::string_view host_port);
    static socket_address ipv4(std::string_view ip, uint16_t port);
    const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage); }
    uint16_t port() const;
    std::string to_string() const;
};

// An owned file descriptor.
class fd_handle {
  public:
    fd_handle() = default;
    explicit fd_handle(int fd) : fd_(fd) {}
    fd_handle(fd_handle&& o) noexcept : fd_(o.release()) {}
    fd_handle& operator=(fd_handle&& o) noexcept;
    ~fd_handle() { close(); }
    int get() const { return fd_; }
    int release() {
        int f = fd_;
        fd_ = -1;
        return f;
    }
    void close();
    explicit operator bool() const { return fd_ >= 0; }

  private:
    int fd_ = -1;
};

class tcp_stream {
  public:
    tcp_stream() = default;
    explicit tcp_stream(fd_handle fd) : fd_(std::move(fd)) {}

    // Connects to `addr` (TCP_NODELAY set). -errno on failure.
    // timeout > 0: ETIMEDOUT when the handshake takes longer (SYNs dropped
    // by a partition are otherwise retried by the kernel for minutes).
    static task<result<tcp_stream>> connect(socket_address addr,
                                            std::chrono::milliseconds timeout = {});

    int fd() const { return fd_.get(); }
    bool is_open() const { return bool(fd_); }
    // Gives up the socket (to move it to another reactor).
    int release() { return fd_.release(); }
    void close() { fd_.close(); }
    // Shuts the write side down (FIN), for a clean end of a stream.
    void shutdown_write();
    // Shuts both directions down: the peer sees the end at once, while the
    // descriptor (and any operation still on it) stays until close().
    void shutdown_both();
    // Closes with an RST instead of a FIN (SO_LINGER 0), as a crashing peer would.
    void reset();

    // Each returns bytes moved (0 from recv is end of stream) or -errno.
    auto recv(std::span<std::byte> buf, int flags = 0) {
        return make_op([=, fd = fd()](io_uring_sqe* s) {
            io_uring_prep_recv(s, fd, buf.data(), buf.size(), flags);
        });
    }
    // requires: `msg` (and its iovecs) live until the op completes.
    auto recvmsg(msghdr* msg, int flags = 0) {
        return make_op(
            [=, fd = fd()](io_uring_sqe* s) { io_uring_prep_recvmsg(s, fd, msg, flags); });
    }
    auto send(std::span<const std::byte> buf, int flags = MSG_NOSIGNAL) {
        return make_op([=, fd = fd()](io_uring_sqe* s) {
            io_uring_prep_send(s, fd, buf.data(), buf.size(), flags);
        });
    }
    // requires: `msg` (and its iovecs) live until the op completes.
    auto sendmsg(const msghdr* msg, int flags = MSG_NOSIGNAL) {
        return make_op(
            [=, fd = fd()](io_uring_sqe* s) { io_uring_prep_sendmsg(s, fd, msg, flags); });
    }
    // Zero-copy send: completes once the kernel no longer needs `buf`.
    auto send_zc(std::span<const std::byte> buf, int flags = MSG_NOSIGNAL) {
        auto prep = [=, fd = fd()](io_uring_sqe* s) {
            io_uring_prep_send_zc(s, fd, buf.data(), buf.size(), flags, 0);
        };
        return uring_op<decltype(prep)>(prep, /*zero_copy=*/true);
    }

    // Zero-copy sendmsg: completes once the kernel no longer needs the data.
    // requires: `msg` (and its iovecs) live until the op completes.
    auto sendmsg_zc(const msghdr* msg, int flags = MSG_NOSIGNAL) {
        auto prep = [=, fd = fd()](io_uring_sqe* s) {
            io_uring_prep_sendmsg_zc(s, fd, msg, flags);
        };
        return uring_op<decltype(prep)>(prep, /*zero_copy=*/true);
    }

    // Loops until every byte of `iov` is sent; the iovecs are consumed.
    // zero_copy: the kernel sends from the caller's pages (pays for large
    // payloads; the call returns only when the pages are released).
    task<result<size_t>> send_all(std::span<iovec> iov, bool zero_copy = false);
    task<result<size_t>> send_all(std::span<const std::byte> buf);
    // Loops until `buf` is full; 0 bytes means the peer closed first.
    task<result<size_t>> recv_exact(std::span<std::byte> buf);

  private:
    fd_handle fd_;
};

class tcp_listener {
  public:
    struct options {
        int backlog = 1024;
        bool reuse_port = false;  // one listener per reactor on the same port
    };

    static result<tcp_listener> listen(const socket_address& addr, options opt);
    static result<tcp_listener> listen(const socket_address& addr) {
        return listen(addr, options{});
    }

    // The bound address (with the port the kernel picked for port 0).
    socket_address local_address() const;
    int fd() const { return fd_.get(); }
    void close() { fd_.close(); }

    auto accept_raw() {
        return make_op([fd = fd()](io_uring_sqe* s) {
            io_uring_prep_accept(s, fd, nullptr, nullptr, SOCK_CLOEXEC);
        });
    }
    // Accepts one connection (TCP_NODELAY set). Aborting `abort` ends it with ECANCELED.
    task<result<tcp_stream>> accept(abort_source* abort = nullptr);

  private:
    fd_handle fd_;
};

void set_nodelay(int fd);

}  // namespace weft
