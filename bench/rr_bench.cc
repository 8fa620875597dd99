// weft-rr-bench: request/response over loopback, shaped like NVMe/TCP 4 KiB reads.
//
// A 72-byte request (the size of a capsule command PDU: 8-byte header + 64-byte
// SQE) gets a 4096 + 24-byte reply (a C2HData PDU header and one block). Two
// servers speak the same protocol on one pinned core:
//   weft   one reactor, one coroutine per connection, recv + one sendmsg per
//          receive gathering every reply it asked for
//   epoll  one thread, level-triggered epoll, non-blocking read()/writev() with
//          a pending-output buffer: the server most people would write
// The same closed-loop client, on another core, drives both at queue depth 1
// and 32, alternating servers so that both see the same machine.
//
// Server CPU is the process's CPU time minus the client thread's, over the
// measured interval: the server thread plus anything working on its behalf
// (io_uring workers), with the idle main thread adding nothing.
#include <fmt/core.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "runtime/gate.h"
#include "runtime/net.h"
#include "runtime/runtime.h"
#include "runtime/uring_op.h"

namespace {

using steady = std::chrono::steady_clock;

constexpr size_t request_size = 72;
constexpr size_t reply_header_size = 24;
constexpr size_t block_size = 4096;
constexpr size_t reply_size = reply_header_size + block_size;
constexpr uint32_t request_magic = 0x52455121;  // "!QER"
constexpr uint32_t reply_magic = 0x50455221;    // "!REP"
// Replies per sendmsg/writev: two iovecs each, well under IOV_MAX (1024).
constexpr size_t max_batch = 256;
constexpr size_t server_rx_capacity = 32 * 1024;

struct request {
    uint32_t magic;
    uint32_t length;
    uint64_t tag;  // echoed in the reply; the client's slot number
    uint64_t lba;
    uint8_t rest[48];
};
struct reply_header {
    uint32_t magic;
    uint32_t length;  // of the data that follows
    uint64_t tag;
    uint64_t lba;
};
static_assert(sizeof(request) == request_size);
static_assert(sizeof(reply_header) == reply_header_size);

// Every reply carries this block, as a target serving from its cache would.
alignas(4096) std::byte block_data[block_size];

[[noreturn]] void die(const std::string& what) {
    fmt::print(stderr, "weft-rr-bench: {}\n", what);
    std::fflush(stderr);
    std::_Exit(1);  // other threads may be blocked in syscalls: do not unwind
}

[[noreturn]] void die_errno(const char* what) {
    die(fmt::format("{}: {}", what, strerror(errno)));
}

void pin_this_thread(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (rc != 0) die(fmt::format("cannot pin to CPU {}: {}", cpu, strerror(rc)));
}

double cpu_seconds(clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// Fills one reply header and its two iovecs per whole request in `in`.
// Returns false on a malformed request (the connection is then dropped).
bool fill_replies(const std::byte* in, size_t n, reply_header* hdr, iovec* iov) {
    for (size_t i = 0; i < n; ++i) {
        request rq;
        std::memcpy(&rq, in + i * request_size, sizeof rq);
        if (rq.magic != request_magic || rq.length != block_size) return false;
        hdr[i] = {reply_magic, uint32_t(block_size), rq.tag, rq.lba};
        iov[2 * i] = {&hdr[i], reply_header_size};
        iov[2 * i + 1] = {block_data, block_size};
    }
    return true;
}

// ---- weft server ---------------------------------------------------------

weft::task<void> weft_serve(weft::tcp_stream s) {
    std::vector<std::byte> rx(server_rx_capacity);
    std::vector<reply_header> hdr(max_batch);
    std::vector<iovec> iov(2 * max_batch);
    size_t have = 0;
    for (;;) {
        int n = co_await s.recv(std::span(rx).subspan(have));
        if (n <= 0) co_return;  // end of stream or error: the client decides
        have += size_t(n);
        size_t off = 0;
        while (have - off >= request_size) {
            size_t k = std::min((have - off) / request_size, max_batch);
            if (!fill_replies(rx.data() + off, k, hdr.data(), iov.data())) co_return;
            auto sent = co_await s.send_all(std::span(iov.data(), 2 * k));
            if (!sent) co_return;
            off += k * request_size;
        }
        std::memmove(rx.data(), rx.data() + off, have - off);
        have -= off;
    }
}

// Serves `conns` connections on one reactor; returns when all have closed.
void run_weft_server(int cpu, std::chrono::microseconds poll_window, unsigned conns,
                     std::promise<uint16_t>& port) {
    weft::runtime rt({.cpus = {cpu}, .poll_window = poll_window});
    rt.run([&]() -> weft::task<void> {
        auto l = weft::tcp_listener::listen(weft::socket_address::ipv4("127.0.0.1", 0));
        if (!l) die("weft listen: " + l.err().message());
        port.set_value(l->local_address().port());
        weft::gate g;
        for (unsigned i = 0; i < conns; ++i) {
            auto s = co_await l->accept();
            if (!s) die("weft accept: " + s.err().message());
            weft::reactor::local().spawn(g.hold(weft_serve(std::move(s.value()))));
        }
        co_await g.close();
    });
}

// ---- epoll server --------------------------------------------------------

struct epoll_conn {
    int fd = -1;
    std::vector<std::byte> rx = std::vector<std::byte>(server_rx_capacity);
    size_t have = 0;
    std::vector<std::byte> out;  // replies the socket did not take yet
    size_t out_off = 0;
};

class epoll_server {
  public:
    epoll_server(int listen_fd, unsigned conns) : listen_fd_(listen_fd), conns_(conns) {}

    void run() {
        ep_ = epoll_create1(EPOLL_CLOEXEC);
        if (ep_ < 0) die_errno("epoll_create1");
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = nullptr;  // the listener
        if (epoll_ctl(ep_, EPOLL_CTL_ADD, listen_fd_, &ev) != 0) die_errno("epoll_ctl");
        unsigned accepted = 0, open = 0;
        epoll_event events[64];
        while (accepted < conns_ || open > 0) {
            int n = epoll_wait(ep_, events, 64, -1);
            if (n < 0) {
                if (errno == EINTR) continue;
                die_errno("epoll_wait");
            }
            for (int i = 0; i < n; ++i) {
                auto* c = static_cast<epoll_conn*>(events[i].data.ptr);
                if (!c) {
                    if (accept_one()) ++accepted, ++open;
                    continue;
                }
                bool ok = true;
                if (events[i].events & EPOLLOUT) ok = flush(c);
                if (ok && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) ok = on_readable(c);
                if (!ok) {
                    epoll_ctl(ep_, EPOLL_CTL_DEL, c->fd, nullptr);
                    ::close(c->fd);
                    delete c;
                    --open;
                }
            }
        }
        ::close(ep_);
    }

  private:
    bool accept_one() {
        int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EINTR) return false;
            die_errno("accept4");
        }
        weft::set_nodelay(fd);
        auto* c = new epoll_conn;
        c->fd = fd;
        watch(c, EPOLLIN, EPOLL_CTL_ADD);
        return true;
    }

    void watch(epoll_conn* c, uint32_t events, int op) {
        epoll_event ev{};
        ev.events = events;
        ev.data.ptr = c;
        if (epoll_ctl(ep_, op, c->fd, &ev) != 0) die_errno("epoll_ctl");
    }

    bool on_readable(epoll_conn* c) {
        ssize_t r = ::read(c->fd, c->rx.data() + c->have, c->rx.size() - c->have);
        if (r == 0) return false;
        if (r < 0) return errno == EAGAIN || errno == EINTR;
        c->have += size_t(r);
        size_t off = 0;
        while (c->have - off >= request_size) {
            size_t k = std::min((c->have - off) / request_size, max_batch);
            if (!fill_replies(c->rx.data() + off, k, hdr_, iov_)) return false;
            if (!send_replies(c, 2 * k)) return false;
            off += k * request_size;
        }
        std::memmove(c->rx.data(), c->rx.data() + off, c->have - off);
        c->have -= off;
        return true;
    }

    // writev what the socket takes; the rest waits in c->out for EPOLLOUT.
    bool send_replies(epoll_conn* c, size_t niov) {
        size_t done = 0;
        if (c->out.empty()) {
            ssize_t w = ::writev(c->fd, iov_, int(niov));
            if (w < 0 && errno != EAGAIN && errno != EINTR) return false;
            done = w < 0 ? 0 : size_t(w);
        }
        bool was_empty = c->out.empty();
        for (size_t i = 0; i < niov; ++i) {
            auto* p = static_cast<const std::byte*>(iov_[i].iov_base);
            size_t len = iov_[i].iov_len;
            size_t skip = std::min(done, len);
            done -= skip;
            c->out.insert(c->out.end(), p + skip, p + len);
        }
        if (was_empty && !c->out.empty()) watch(c, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
        return true;
    }

    bool flush(epoll_conn* c) {
        if (c->out.empty()) return true;
        ssize_t w = ::write(c->fd, c->out.data() + c->out_off, c->out.size() - c->out_off);
        if (w < 0) return errno == EAGAIN || errno == EINTR;
        c->out_off += size_t(w);
        if (c->out_off == c->out.size()) {
            c->out.clear();
            c->out_off = 0;
            watch(c, EPOLLIN, EPOLL_CTL_MOD);
        }
        return true;
    }

    int listen_fd_;
    unsigned conns_;
    int ep_ = -1;
    reply_header hdr_[max_batch];
    iovec iov_[2 * max_batch];
};

void run_epoll_server(int cpu, unsigned conns, std::promise<uint16_t>& port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die_errno("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    auto addr = weft::socket_address::ipv4("127.0.0.1", 0);
    if (::bind(fd, addr.sa(), addr.len) != 0) die_errno("bind");
    if (::listen(fd, 1024) != 0) die_errno("listen");
    weft::socket_address bound;
    bound.len = sizeof bound.storage;
    getsockname(fd, reinterpret_cast<sockaddr*>(&bound.storage), &bound.len);
    port.set_value(bound.port());
    std::thread server([&] {
        pthread_setname_np(pthread_self(), "epoll-server");
        pin_this_thread(cpu);
        auto srv = std::make_unique<epoll_server>(fd, conns);
        srv->run();
    });
    server.join();
    ::close(fd);
}

// ---- client ----------------------------------------------------------------

struct client_config {
    unsigned qd = 1;
    unsigned conns = 1;  // the qd is split evenly over them
    double warmup = 0.5;
    double seconds = 3;
};

struct measurement {
    std::vector<uint32_t> lat_ns;  // one per reply completed in the interval
    double seconds = 0;
    double server_cpu = 0;  // seconds
    double client_cpu = 0;  // seconds: near `seconds` means the client is the limit
};

struct client_conn {
    int fd = -1;
    std::vector<std::byte> rx;
    size_t have = 0;
    std::vector<steady::time_point> sent_at;  // by tag
    std::vector<std::byte> tx;
};

class client {
  public:
    explicit client(client_config cfg) : cfg_(cfg), depth_(cfg.qd / cfg.conns), conns_(cfg.conns) {}

    // Closed loop: every reply is answered at once by a new request on its
    // tag, so each connection always has depth_ requests outstanding.
    measurement run(uint16_t port) {
        connect_all(port);
        m_.lat_ns.reserve(1u << 20);
        auto start = steady::now();
        measure_at_ = start + to_steady(cfg_.warmup);
        end_at_ = measure_at_ + to_steady(cfg_.seconds);
        outstanding_ = size_t(depth_) * conns_.size();
        for (auto& c : conns_) {
            for (unsigned tag = 0; tag < depth_; ++tag) queue_request(c, tag);
            send_queued(c);
        }
        epoll_event events[64];
        while (phase_ != phase::drain || outstanding_ > 0) {
            if (ep_ < 0) {
                on_readable(conns_[0]);
                continue;
            }
            int n = epoll_wait(ep_, events, 64, 10'000);
            if (n < 0 && errno != EINTR) die_errno("client epoll_wait");
            if (n == 0) die("client: no reply for 10 s");
            for (int i = 0; i < n; ++i) on_readable(*static_cast<client_conn*>(events[i].data.ptr));
        }
        for (auto& c : conns_) ::close(c.fd);  // the server sees EOF and finishes
        if (ep_ >= 0) ::close(ep_);
        return std::move(m_);
    }

  private:
    enum class phase { warmup, measure, drain };

    static steady::duration to_steady(double secs) {
        return std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(secs));
    }

    void connect_all(uint16_t port) {
        auto addr = weft::socket_address::ipv4("127.0.0.1", port);
        if (conns_.size() > 1) {
            ep_ = epoll_create1(EPOLL_CLOEXEC);
            if (ep_ < 0) die_errno("client epoll_create1");
        }
        for (auto& c : conns_) {
            c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (c.fd < 0) die_errno("client socket");
            weft::set_nodelay(c.fd);
            timeval tv{.tv_sec = 10, .tv_usec = 0};  // a hung server ends the run
            setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            if (::connect(c.fd, addr.sa(), addr.len) != 0) die_errno("client connect");
            c.rx.resize(std::max<size_t>(depth_ * reply_size, 64 * 1024));
            c.sent_at.resize(depth_);
            if (ep_ >= 0) {
                epoll_event ev{};
                ev.events = EPOLLIN;
                ev.data.ptr = &c;
                if (epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev) != 0) die_errno("client epoll_ctl");
            }
        }
    }

    void queue_request(client_conn& c, unsigned tag) {
        request rq{};
        rq.magic = request_magic;
        rq.length = uint32_t(block_size);
        rq.tag = tag;
        rq.lba = (next_lba_++ % (1u << 20)) * 8;
        auto* p = reinterpret_cast<const std::byte*>(&rq);
        c.tx.insert(c.tx.end(), p, p + sizeof rq);
    }

    void send_queued(client_conn& c) {
        if (c.tx.empty()) return;
        auto now = steady::now();
        for (size_t off = 0; off < c.tx.size(); off += request_size) {
            request rq;
            std::memcpy(&rq, c.tx.data() + off, sizeof rq);
            c.sent_at[rq.tag] = now;
        }
        size_t done = 0;
        while (done < c.tx.size()) {
            ssize_t n = ::send(c.fd, c.tx.data() + done, c.tx.size() - done, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) die_errno("client send");
            done += size_t(n);
        }
        c.tx.clear();
    }

    void on_readable(client_conn& c) {
        int flags = ep_ >= 0 ? MSG_DONTWAIT : 0;
        ssize_t n = ::recv(c.fd, c.rx.data() + c.have, c.rx.size() - c.have, flags);
        if (n < 0 && (errno == EINTR || (errno == EAGAIN && ep_ >= 0))) return;
        if (n < 0 && errno == EAGAIN) die("client: no reply for 10 s");  // SO_RCVTIMEO
        if (n < 0) die_errno("client recv");
        if (n == 0) die("client: the server closed the connection");
        auto now = steady::now();
        advance_phase(now);
        c.have += size_t(n);
        size_t off = 0;
        for (; c.have - off >= reply_size; off += reply_size) {
            reply_header h;
            std::memcpy(&h, c.rx.data() + off, sizeof h);
            if (h.magic != reply_magic || h.length != block_size || h.tag >= depth_)
                die("client: malformed reply");
            --outstanding_;
            if (phase_ == phase::measure) {
                auto ns =
                    std::chrono::duration_cast<std::chrono::nanoseconds>(now - c.sent_at[h.tag]);
                m_.lat_ns.push_back(uint32_t(std::min<int64_t>(ns.count(), UINT32_MAX)));
            }
            if (phase_ != phase::drain) {
                queue_request(c, unsigned(h.tag));
                ++outstanding_;
            }
        }
        std::memmove(c.rx.data(), c.rx.data() + off, c.have - off);
        c.have -= off;
        send_queued(c);
    }

    void advance_phase(steady::time_point now) {
        if (phase_ == phase::warmup && now >= measure_at_) {
            phase_ = phase::measure;
            measure_start_ = now;
            process_cpu0_ = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
            client_cpu0_ = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
        } else if (phase_ == phase::measure && now >= end_at_) {
            phase_ = phase::drain;
            m_.seconds = std::chrono::duration<double>(now - measure_start_).count();
            double process = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - process_cpu0_;
            double self = cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - client_cpu0_;
            m_.server_cpu = process - self;
            m_.client_cpu = self;
        }
    }

    client_config cfg_;
    unsigned depth_;
    std::vector<client_conn> conns_;
    int ep_ = -1;  // only with several connections; one is served by blocking recv
    phase phase_ = phase::warmup;
    steady::time_point measure_at_, end_at_, measure_start_;
    double process_cpu0_ = 0, client_cpu0_ = 0;
    size_t outstanding_ = 0;
    uint64_t next_lba_ = 0;
    measurement m_;
};

// ---- driver ------------------------------------------------------------------

struct options {
    int server_cpu = 0;
    int client_cpu = 1;
    double seconds = 3;
    double warmup = 0.5;
    unsigned qd32_conns = 1;
    unsigned poll_window_us = unsigned(weft::runtime_config{}.poll_window.count());
    double idle_seconds = 10;
    bool skip_idle = false;
};

enum class server_kind { weft, epoll };

measurement run_case(server_kind kind, unsigned qd, const options& o) {
    client_config cc{
        .qd = qd, .conns = qd == 1 ? 1 : o.qd32_conns, .warmup = o.warmup, .seconds = o.seconds};
    std::promise<uint16_t> port;
    auto port_ready = port.get_future();
    measurement m;
    std::thread client_thread([&] {
        pthread_setname_np(pthread_self(), "rr-client");
        pin_this_thread(o.client_cpu);
        m = client(cc).run(port_ready.get());
    });
    if (kind == server_kind::weft)
        run_weft_server(o.server_cpu, std::chrono::microseconds(o.poll_window_us), cc.conns, port);
    else
        run_epoll_server(o.server_cpu, cc.conns, port);
    client_thread.join();
    return m;
}

double percentile_us(std::vector<uint32_t>& v, double q) {
    if (v.empty()) return 0;
    size_t i = std::min(v.size() - 1, size_t(q * double(v.size())));
    std::nth_element(v.begin(), v.begin() + long(i), v.end());
    return double(v[i]) / 1000.0;
}

struct row {
    double ops_per_s, cpu_pct, client_cpu_pct, cpu_per_mop, p50_us, p99_us;
};

row summarize(measurement& m) {
    double ops = double(m.lat_ns.size());
    return {ops / m.seconds,
            100.0 * m.server_cpu / m.seconds,
            100.0 * m.client_cpu / m.seconds,
            ops > 0 ? m.server_cpu / ops * 1e6 : 0,
            percentile_us(m.lat_ns, 0.50),
            percentile_us(m.lat_ns, 0.99)};
}

void measure_idle(const options& o) {
    weft::runtime rt({.cpus = {o.server_cpu, o.client_cpu}});
    struct idle_figures {
        double cpu = 0, wall = 0;
        uint64_t sleeps[2] = {};  // times each reactor blocked in the kernel
    };
    auto sleeps_now = []() -> weft::task<std::array<uint64_t, 2>> {
        uint64_t s1 = co_await weft::on(1, [] { return weft::reactor::local().stats().sleeps; });
        co_return std::array<uint64_t, 2>{weft::reactor::local().stats().sleeps, s1};
    };
    auto f = rt.run([&]() -> weft::task<idle_figures> {
        co_await weft::sleep(std::chrono::milliseconds(100));  // past start-up
        idle_figures fig;
        auto s0 = co_await sleeps_now();
        double c0 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
        auto t0 = steady::now();
        co_await weft::sleep(std::chrono::duration<double>(o.idle_seconds));
        fig.cpu = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
        fig.wall = std::chrono::duration<double>(steady::now() - t0).count();
        auto s1 = co_await sleeps_now();
        for (int i = 0; i < 2; ++i) fig.sleeps[i] = s1[i] - s0[i];
        co_return fig;
    });
    fmt::print(
        "idle engine: {:.3f}% of one core over {:.0f} s ({:.4f} CPU s; 2 reactors on CPUs "
        "{},{}, poll window {} us; kernel sleeps {} and {})\n",
        100.0 * f.cpu / f.wall, f.wall, f.cpu, o.server_cpu, o.client_cpu,
        weft::runtime_config{}.poll_window.count(), f.sleeps[0], f.sleeps[1]);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "weft-rr-bench: 72-byte requests, 4096+24-byte replies (NVMe/TCP 4 KiB reads) over\n"
        "127.0.0.1, served by the weft runtime on one core and by a plain epoll server on the\n"
        "same core, alternately, at queue depths 1 and 32; then the idle CPU of a 2-core engine."};
    options o;
    app.add_option("--server-cpu", o.server_cpu, "CPU both servers are pinned to")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    app.add_option("--client-cpu", o.client_cpu, "CPU the load-generating client is pinned to")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    app.add_option("--seconds", o.seconds, "measured duration of each case, in seconds")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--warmup", o.warmup, "unmeasured run before each case, in seconds")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    app.add_option("--qd32-connections", o.qd32_conns,
                   "connections the 32 outstanding requests are spread over (QD 1 always uses one)")
        ->capture_default_str()
        ->check(CLI::IsMember({1, 2, 4, 8, 16, 32}));
    app.add_option("--poll-window-us", o.poll_window_us,
                   "how long the weft server's idle reactor busy-polls before it sleeps")
        ->capture_default_str();
    app.add_option("--idle-seconds", o.idle_seconds, "how long to watch the idle engine")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_flag("--skip-idle", o.skip_idle, "skip the idle-engine measurement");
    CLI11_PARSE(app, argc, argv);

    std::signal(SIGPIPE, SIG_IGN);  // a server writing to a closed client gets EPIPE instead
    if (o.server_cpu == o.client_cpu)
        fmt::print("warning: client and server share CPU {}; figures will not mean much\n",
                   o.server_cpu);
    fmt::print("request {} B, reply {}+{} B, 127.0.0.1; server on CPU {}, client on CPU {}\n",
               request_size, reply_header_size, block_size, o.server_cpu, o.client_cpu);
    fmt::print(
        "qd32 = {} connection(s) x {} outstanding; {} s per case after {} s warm-up; "
        "weft poll window {} us\n",
        o.qd32_conns, 32 / o.qd32_conns, o.seconds, o.warmup, o.poll_window_us);
    fmt::print(
        "srv CPU = process CPU - client thread CPU over the measured interval; "
        "CPU s/1M ops is the server's\n\n");
    fmt::print("{:<5} {:<6} {:>10} {:>9} {:>9} {:>13} {:>9} {:>9}\n", "case", "server", "ops/s",
               "srv CPU%", "cli CPU%", "CPU s/1M ops", "p50 us", "p99 us");
    std::fflush(stdout);

    row rows[2][2];  // [qd1, qd32][weft, epoll]
    const unsigned depths[2] = {1, 32};
    const char* names[2] = {"weft", "epoll"};
    for (int d = 0; d < 2; ++d) {
        for (int s = 0; s < 2; ++s) {
            auto m = run_case(s == 0 ? server_kind::weft : server_kind::epoll, depths[d], o);
            row r = rows[d][s] = summarize(m);
            fmt::print("qd{:<3} {:<6} {:>10.0f} {:>9.1f} {:>9.1f} {:>13.3f} {:>9.1f} {:>9.1f}\n",
                       depths[d], names[s], r.ops_per_s, r.cpu_pct, r.client_cpu_pct, r.cpu_per_mop,
                       r.p50_us, r.p99_us);
            std::fflush(stdout);
        }
    }
    fmt::print("\n");
    for (int d = 0; d < 2; ++d) {
        const row& w = rows[d][0];
        const row& e = rows[d][1];
        fmt::print(
            "weft/epoll qd{:<3} ops/s x{:.3f}   CPU per op x{:.3f}   p50 x{:.3f}   p99 x{:.3f}\n",
            depths[d], w.ops_per_s / e.ops_per_s, w.cpu_per_mop / e.cpu_per_mop,
            w.p50_us / e.p50_us, w.p99_us / e.p99_us);
    }
    std::fflush(stdout);
    if (!o.skip_idle) {
        fmt::print("\n");
        measure_idle(o);
    }
    return 0;
}
