// weft's side of the fio engine: a lone reactor per fio job thread, driven
// by fio's own calls (design note in engine.c). Commands run as detached
// coroutines on the reactor; each one, when done, appends its fio cookie to
// `done`, which weft_fio_reap() hands back to fio.
#include <liburing.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fio/weft_fio.h"
#include "initiator/by_address.h"
#include "initiator/ns.h"
#include "initiator/nvmf_bdev.h"
#include "runtime/reactor.h"

namespace {

using namespace weft;
using clock_type = std::chrono::steady_clock;

struct completion_entry {
    void* cookie;
    int err;
};

}  // namespace

struct weft_fio_ctx {
    std::unique_ptr<reactor> r;
    std::unique_ptr<initiator::controller> ctrl;
    std::vector<std::unique_ptr<initiator::ns>> namespaces;
    std::vector<completion_entry> done;  // from done_head on: not yet handed to fio
    size_t done_head = 0;
    size_t unsent = 0;  // submitted since the reactor last ran
    size_t in_flight = 0;
    size_t depth = 1;  // fio's iodepth: at most this many commands between submit and reap
    std::chrono::microseconds poll{0};

    size_t ready() const { return done.size() - done_head; }

    void run() {
        unsent = 0;
        r->run_until_idle();
    }

    initiator::ns* find(uint32_t nsid) {
        for (auto& n : namespaces)
            if (n->nsid() == nsid) return n.get();
        return nullptr;
    }

    // Blocks in io_uring until a completion is there (or `deadline`).
    // Waiting does not consume the CQE: the reactor's reap does.
    void wait(const std::optional<clock_type::time_point>& deadline) {
        io_uring_cqe* cqe = nullptr;
        if (!deadline) {
            io_uring_wait_cqe(r->ring(), &cqe);
            return;
        }
        auto left = *deadline - clock_type::now();
        if (left <= clock_type::duration::zero()) return;
        // With IORING_FEAT_EXT_ARG the timeout is an argument of the wait,
        // not an SQE whose CQE the reactor would not know.
        if (!(r->ring()->features & IORING_FEAT_EXT_ARG)) return;  // spin instead
        auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
        __kernel_timespec ts{.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
        io_uring_wait_cqe_timeout(r->ring(), &cqe, &ts);
    }

    // Drives the reactor (sending what is held back) until `done()`.
    template <typename Done>
    void drive_until(Done done) {
        for (;;) {
            run();
            if (done()) return;
            wait(std::nullopt);
        }
    }
};

namespace {

void set_err(char* err, size_t len, const std::string& s) {
    if (err && len) std::snprintf(err, len, "%s", s.c_str());
}

task<void> connect_task(initiator::controller_options* o,
                        result<std::unique_ptr<initiator::controller>>* out, bool* done) {
    *out = co_await initiator::controller::connect(*o);
    *done = true;
}

task<void> disconnect_task(initiator::controller* c, bool* done) {
    co_await c->disconnect();
    *done = true;
}

task<void> io_task(weft_fio_ctx* c, initiator::ns* d, weft_fio_op op, uint64_t lba,
                   uint32_t nblocks, void* buf, void* cookie) {
    iovec iov{buf, size_t(nblocks) * d->block_size()};
    result<nvme::status> r = nvme::status{};
    switch (op) {
        case WEFT_FIO_READ:
            r = co_await d->read(lba, nblocks, {&iov, 1});
            break;
        case WEFT_FIO_WRITE:
            r = co_await d->write(lba, nblocks, {&iov, 1});
            break;
        case WEFT_FIO_FLUSH:
            r = co_await d->flush();
            break;
        case WEFT_FIO_TRIM:
            r = co_await d->deallocate(lba, nblocks);
            break;
    }
    --c->in_flight;
    c->done.push_back({cookie, -initiator::to_errno(r)});
}

}  // namespace

extern "C" {

void weft_fio_default_hostnqn(char* out, size_t len) {
    std::snprintf(out, len, "%s", initiator::default_hostnqn().c_str());
}

weft_fio_ctx* weft_fio_open(const weft_fio_target* t, char* err, size_t errlen) {
    static bool quiet = [] {
        // The initiator's warnings are fio's errors already; keep fio's output clean.
        spdlog::set_level(spdlog::level::err);
        return true;
    }();
    (void)quiet;
    initiator::address_options c;
    c.addr = t->addr ? t->addr : "";
    c.port = uint16_t(t->port);
    c.nqn = t->subnqn ? t->subnqn : "";
    c.hostnqn = t->hostnqn ? t->hostnqn : "";
    c.hdr_digest = t->header_digest;
    c.data_digest = t->data_digest;
    c.timeout_s = t->timeout_ms ? t->timeout_ms / 1000.0 : 30;
    if (c.addr.empty() || c.nqn.empty()) {
        set_err(err, errlen,
                "weft: give the target as addr=, nqn= (and port=, nsid=) engine "
                "options or as filename=ADDR\\:PORT\\:NQN\\:NSID");
        return nullptr;
    }
    initiator::controller_options o;
    std::string why;
    if (!initiator::make_controller_options(c, o, &why, nullptr)) {
        set_err(err, errlen, "weft: " + why);
        return nullptr;
    }
    o.io_queues = 1;  // on this (the only) reactor
    o.queue_depth = uint16_t(std::clamp(t->queue_depth + 1, 2u, 1024u));
    o.reconnect_attempts = 5;  // as a kernel host: ride out a dropped connection

    auto ctx = std::make_unique<weft_fio_ctx>();
    ctx->depth = std::max(1u, t->queue_depth);
    ctx->poll = std::chrono::microseconds(t->poll_us);
    ctx->r = std::make_unique<reactor>(nullptr, reactor::config{.id = 0, .ring_entries = 1024});
    result<std::unique_ptr<initiator::controller>> made = error{EINPROGRESS};
    bool done = false;
    ctx->r->spawn(connect_task(&o, &made, &done));
    ctx->drive_until([&] { return done; });
    if (!made) {
        set_err(err, errlen, "weft: " + initiator::connect_error_sentence(c, made.err(), false));
        return nullptr;
    }
    ctx->ctrl = std::move(made.value());
    for (uint32_t nsid : ctx->ctrl->namespace_ids())
        ctx->namespaces.push_back(std::make_unique<initiator::ns>(*ctx->ctrl, nsid));
    return ctx.release();
}

int weft_fio_namespace(weft_fio_ctx* c, uint32_t nsid, uint64_t* bytes, uint32_t* block) {
    auto* d = c->find(nsid);
    if (!d) return -ENXIO;
    *bytes = d->num_blocks() * d->block_size();
    *block = d->block_size();
    return 0;
}

int weft_fio_submit(weft_fio_ctx* c, weft_fio_op op, uint32_t nsid, uint64_t offset, uint64_t len,
                    void* buf, void* cookie) {
    auto* d = c->find(nsid);
    if (!d) return -ENXIO;
    uint32_t bs = d->block_size();
    if (op != WEFT_FIO_FLUSH &&
        (offset % bs || len % bs || len == 0 || len > c->ctrl->max_transfer()))
        return -EINVAL;
    ++c->in_flight;
    ++c->unsent;
    c->r->spawn(io_task(c, d, op, offset / bs, uint32_t(len / bs), buf, cookie));
    return 0;
}

void weft_fio_kick(weft_fio_ctx* c) {
    // fio's queue full: its next call is getevents, which runs the reactor
    // (once the completions it already has are handed out) and so sends
    // these commands with the same io_uring_enter that reaps.
    // Running it on every commit costs a second enter per command and keeps
    // fio in lockstep, reaping one completion per call. But holding back
    // the whole queue stalls the target while fio works through a batch, so
    // a quarter of the queue goes out as soon as it is waiting. A queue not
    // full (a rate-limited job, the end of a job) is sent now.
    bool full = c->in_flight + c->ready() >= c->depth;
    if (full && c->unsent < std::max<size_t>(1, c->depth / 4)) return;
    c->run();
}

unsigned weft_fio_reap(weft_fio_ctx* c, unsigned min, unsigned max, const timespec* timeout,
                       void** cookies, int* errs) {
    std::optional<clock_type::time_point> deadline;
    if (timeout)
        deadline = clock_type::now() + std::chrono::seconds(timeout->tv_sec) +
                   std::chrono::nanoseconds(timeout->tv_nsec);
    // Completions an earlier run left in `done` go to fio first, without a
    // trip through the reactor: while fio works through them and queues
    // their successors, completions and new commands pile up on the socket
    // and the next run moves them all at once. (`done` shrinks with every
    // such call, so the reactor runs again before long.)
    std::optional<clock_type::time_point> polling_since;
    while (c->ready() == 0 || c->ready() < min) {
        c->run();
        if (c->ready() >= min || c->in_flight == 0) break;
        auto now = clock_type::now();
        if (deadline && now >= *deadline) break;
        // As the engine's reactors: busy-poll a short window before sleeping,
        // since a completion due within microseconds costs less to catch
        // spinning than through a sleep and a wakeup.
        if (!polling_since) polling_since = now;
        if (now - *polling_since < c->poll) continue;
        c->wait(deadline);
        polling_since.reset();
    }
    unsigned n = unsigned(std::min<size_t>(max, c->ready()));
    for (unsigned i = 0; i < n; ++i) {
        const completion_entry& e = c->done[c->done_head + i];
        cookies[i] = e.cookie;
        errs[i] = e.err;
    }
    c->done_head += n;
    if (c->done_head == c->done.size() || c->done_head > c->depth) {  // amortized O(1)
        c->done.erase(c->done.begin(), c->done.begin() + ptrdiff_t(c->done_head));
        c->done_head = 0;
    }
    return n;
}

void weft_fio_drain(weft_fio_ctx* c) {
    // Bounded by the command timeout. Completions stay for weft_fio_reap().
    if (c->in_flight > 0) c->drive_until([c] { return c->in_flight == 0; });
}

void weft_fio_close(weft_fio_ctx* c) {
    weft_fio_drain(c);
    bool done = false;
    c->r->spawn(disconnect_task(c->ctrl.get(), &done));
    c->drive_until([&] { return done; });
    c->namespaces.clear();
    c->ctrl.reset();
    c->r->run_until_idle();
    c->r.reset();
    delete c;
}

}  // extern "C"
