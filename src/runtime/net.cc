#include "runtime/net.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <charconv>
#include <cstring>

namespace weft {

fd_handle& fd_handle::operator=(fd_handle&& o) noexcept {
    if (this != &o) {
        close();
        fd_ = o.release();
    }
    return *this;
}

void fd_handle::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

result<socket_address> socket_address::parse(std::string_view s) {
    std::string_view host, port;
    if (s.starts_with('[')) {
        auto end = s.find("]:");
        if (end == std::string_view::npos) return error{EINVAL};
        host = s.substr(1, end - 1);
        port = s.substr(end + 2);
    } else {
        auto colon = s.rfind(':');
        if (colon == std::string_view::npos) return error{EINVAL};
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
    }
    unsigned p = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || ptr != port.data() + port.size() || p > 65535) return error{EINVAL};
    socket_address a;
    std::string h(host);
    auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    if (inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(uint16_t(p));
        a.len = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(uint16_t(p));
        a.len = sizeof(sockaddr_in6);
    } else {
        return error{EINVAL};
    }
    return a;
}

socket_address socket_address::ipv4(std::string_view ip, uint16_t port) {
    socket_address a;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    inet_pton(AF_INET, std::string(ip).c_str(), &v4->sin_addr);
    a.len = sizeof(sockaddr_in);
    return a;
}

uint16_t socket_address::port() const {
    if (storage.ss_family == AF_INET)
        return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
    if (storage.ss_family == AF_INET6)
        return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
    return 0;
}

std::string socket_address::to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    if (storage.ss_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, buf,
                  sizeof buf);
        return std::string(buf) + ":" + std::to_string(port());
    }
    if (storage.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, buf,
                  sizeof buf);
        return "[" + std::string(buf) + "]:" + std::to_string(port());
    }
    return "?";
}

void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

task<result<tcp_stream>> tcp_stream::connect(socket_address addr,
                                             std::chrono::milliseconds timeout) {
    int fd = ::socket(addr.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) co_return error{errno};
    fd_handle h(fd);
    set_nodelay(fd);
    auto op = make_op([&](io_uring_sqe* s) { io_uring_prep_connect(s, fd, addr.sa(), addr.len); });
    int rc = timeout.count() > 0 ? co_await std::move(op).timeout(timeout) : co_await op;
    if (rc < 0) co_return error::from_res(rc);
    co_return tcp_stream(std::move(h));
}

void tcp_stream::shutdown_write() {
    if (fd_) ::shutdown(fd_.get(), SHUT_WR);
}

void tcp_stream::shutdown_both() {
    if (fd_) ::shutdown(fd_.get(), SHUT_RDWR);
}

void tcp_stream::reset() {
    if (!fd_) return;
    linger l{.l_onoff = 1, .l_linger = 0};
    setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    fd_.close();
}

task<result<size_t>> tcp_stream::send_all(std::span<iovec> iov, bool zero_copy) {
    size_t total = 0;
    while (!iov.empty()) {
        msghdr msg{};
        msg.msg_iov = iov.data();
        msg.msg_iovlen = iov.size();
        int n = zero_copy ? co_await sendmsg_zc(&msg) : co_await sendmsg(&msg);
        if (n < 0) co_return error::from_res(n);
        total += size_t(n);
        size_t left = size_t(n);
        while (!iov.empty() && left >= iov.front().iov_len) {
            left -= iov.front().iov_len;
            iov = iov.subspan(1);
        }
        if (left) {
            iov.front().iov_base = static_cast<char*>(iov.front().iov_base) + left;
            iov.front().iov_len -= left;
        }
    }
    co_return total;
}

task<result<size_t>> tcp_stream::send_all(std::span<const std::byte> buf) {
    size_t done = 0;
    while (done < buf.size()) {
        int n = co_await send(buf.subspan(done));
        if (n < 0) co_return error::from_res(n);
        done += size_t(n);
    }
    co_return done;
}

task<result<size_t>> tcp_stream::recv_exact(std::span<std::byte> buf) {
    size_t done = 0;
    while (done < buf.size()) {
        int n = co_await recv(buf.subspan(done));
        if (n < 0) co_return error::from_res(n);
        if (n == 0) break;
        done += size_t(n);
    }
    co_return done;
}

result<tcp_listener> tcp_listener::listen(const socket_address& addr, options opt) {
    int fd = ::socket(addr.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return error{errno};
    tcp_listener l;
    l.fd_ = fd_handle(fd);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (opt.reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (::bind(fd, addr.sa(), addr.len) != 0) return error{errno};
    if (::listen(fd, opt.backlog) != 0) return error{errno};
    return l;
}

socket_address tcp_listener::local_address() const {
    socket_address a;
    a.len = sizeof a.storage;
    getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&a.storage), &a.len);
    return a;
}

task<result<tcp_stream>> tcp_listener::accept(abort_source* abort) {
    int rc = abort ? co_await accept_raw().abort_with(*abort) : co_await accept_raw();
    if (rc < 0) co_return error::from_res(rc);
    set_nodelay(rc);
    co_return tcp_stream(fd_handle(rc));
}

}  // namespace weft
