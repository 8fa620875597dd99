#include "nvmf/tcp_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "runtime/runtime.h"

namespace weft::nvmf {

tcp_server::tcp_server(target& tgt, tcp_options opt, unsigned reactors) : target_(tgt), opt_(opt) {
    for (unsigned i = 0; i < reactors; ++i) reactors_.push_back(std::make_unique<per_reactor>());
}

tcp_server::~tcp_server() = default;

task<result<void>> tcp_server::listen(socket_address addr, tls_mode tls) {
    auto l = tcp_listener::listen(addr, {.backlog = 1024});
    if (!l) co_return l.err();
    addr = l->local_address();
    target_.add_listen_address(addr, tls);
    addresses_.push_back(addr);
    per_reactor* me = reactors_[reactor::local().id()].get();
    auto x = std::make_unique<listening>();
    x->l = std::make_unique<tcp_listener>(std::move(l.value()));
    x->addr = addr.to_string();
    x->tls = tls;
    listening* raw = x.get();
    me->listeners.push_back(std::move(x));
    reactor::local().spawn(raw->loop.hold(accept_loop(raw)));
    spdlog::info("NVMe/TCP listening on {}{} (queues spread over {} reactor(s))", addr.to_string(),
                 tls == tls_mode::required  ? ", TLS required"
                 : tls == tls_mode::allowed ? ", TLS allowed"
                                            : "",
                 reactors_.size());
    co_return result<void>{};
}

task<result<void>> tcp_server::unlisten(socket_address addr) {
    per_reactor* me = reactors_[reactor::local().id()].get();
    const std::string want = addr.to_string();
    auto it = std::find_if(me->listeners.begin(), me->listeners.end(),
                           [&](auto& x) { return x->addr == want; });
    if (it == me->listeners.end()) co_return error{ENOENT};
    listening* x = it->get();
    x->stop.request_abort();
    co_await x->loop.close();
    std::erase_if(me->listeners, [&](auto& y) { return y.get() == x; });
    std::erase_if(addresses_, [&](const socket_address& a) { return a.to_string() == want; });
    target_.remove_listen_address(addr);
    size_t closed = 0;
    for (unsigned r = 0; r < reactors_.size(); ++r) {
        per_reactor* pr = reactors_[r].get();
        closed += co_await on(r, [pr, &want]() {
            size_t n = 0;
            for (auto& c : pr->queues)
                if (c.via == want)
                    if (auto q = c.q.lock()) {
                        q->close_from_controller();
                        ++n;
                    }
            return n;
        });
    }
    spdlog::info("NVMe/TCP no longer listening on {} ({} connection(s) closed)", want, closed);
    co_return result<void>{};
}

task<void> tcp_server::accept_loop(listening* x) {
    tcp_listener* l = x->l.get();
    for (;;) {
        auto s = co_await l->accept(&x->stop);
        if (!s) {
            int e = s.err().code;
            if (e == ECANCELED) break;
            spdlog::warn("accept on {}: {}", x->addr, s.err().message());
            if (e == EBADF || e == ENOTSOCK || e == EINVAL) break;
            // Out of descriptors or memory: back off instead of spinning.
            int slept = co_await sleep(std::chrono::milliseconds(100)).abort_with(x->stop);
            if (slept == -ECANCELED) break;
            continue;
        }
        unsigned r = next_reactor_++ % unsigned(reactors_.size());
        if (r == reactor::local().id()) {
            start_queue(std::move(s.value()), x->addr, x->tls);
            continue;
        }
        // Hand the socket over; the queue lives on reactor r from now on.
        struct handoff {
            tcp_server* server;
            int fd;
            std::string via;
            tls_mode tls;
        };
        auto* h = new handoff{this, s.value().release(), x->addr, x->tls};
        reactor::local().send(r, {[](void* p) {
                                      auto* h = static_cast<handoff*>(p);
                                      h->server->start_queue(tcp_stream(fd_handle(h->fd)),
                                                             std::move(h->via), h->tls);
                                      delete h;
                                  },
                                  h});
    }
}

void tcp_server::start_queue(tcp_stream s, std::string via, tls_mode tls) {
    per_reactor* me = reactors_[reactor::local().id()].get();
    if (me->stop.abort_requested()) return;  // stopping: the socket closes here
    tcp_options opt = opt_;
    opt.tls = tls;
    auto q = std::make_shared<tcp_queue>(target_, std::move(s), opt);
    std::erase_if(me->queues, [](auto& c) { return c.q.expired(); });
    me->queues.push_back({q, std::move(via)});
    reactor::local().spawn(me->conns.hold(
        [](std::shared_ptr<tcp_queue> q) -> task<void> { co_await q->run(); }(std::move(q))));
}

task<void> tcp_server::stop() {
    for (unsigned r = 0; r < reactors_.size(); ++r) {
        per_reactor* me = reactors_[r].get();
        co_await on(r, [me]() -> task<void> {
            me->stop.request_abort();
            for (auto& x : me->listeners) {
                x->stop.request_abort();
                co_await x->loop.close();
            }
            for (auto& c : me->queues)
                if (auto q = c.q.lock()) q->close_from_controller();
            co_await me->conns.close();
        });
    }
}

size_t tcp_server::connections() const {
    size_t n = 0;
    for (auto& r : reactors_) n += r->conns.count();
    return n;
}

}  // namespace weft::nvmf
