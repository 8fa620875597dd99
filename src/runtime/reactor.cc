#include "runtime/reactor.h"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <system_error>

#include "runtime/runtime.h"

namespace weft {

thread_local reactor* reactor::local_ __attribute__((tls_model("initial-exec"))) = nullptr;

namespace {

// Ring flags, best first: DEFER_TASKRUN runs completion work only when we
// enter the kernel, on our own thread (kernel 6.1+); COOP_TASKRUN avoids IPIs.
int setup_ring(io_uring* ring, unsigned entries) {
    const unsigned attempts[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        0,
    };
    int rc = -EINVAL;
    for (unsigned flags : attempts) {
        io_uring_params p{};
        p.flags = flags | IORING_SETUP_CQSIZE | (flags ? IORING_SETUP_SUBMIT_ALL : 0);
        p.cq_entries = entries * 4;
        rc = io_uring_queue_init_params(entries, ring, &p);
        if (rc == 0) return 0;
    }
    return rc;
}

struct detached;

}  // namespace

// The coroutine that owns a spawned task: scheduled by spawn(), destroys
// itself when done, unlinks itself from the reactor in every case.
struct detached_promise : spawned_node {
    static void* operator new(size_t n) { return frame_allocator::allocate(n); }
    static void operator delete(void* p, size_t n) noexcept { frame_allocator::deallocate(p, n); }
    std::coroutine_handle<detached_promise> get_return_object() noexcept {
        return std::coroutine_handle<detached_promise>::from_promise(*this);
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }  // the body catches everything
    ~detached_promise() {
        if (owner) owner->unlink(this);
    }
};

namespace {
struct detached {
    using promise_type = detached_promise;
    std::coroutine_handle<detached_promise> h;
    detached(std::coroutine_handle<detached_promise> h) : h(h) {}
};

detached run_detached(task<void> t) {
    try {
        co_await std::move(t);
    } catch (const std::exception& e) {
        spdlog::error("reactor {}: spawned task failed: {}", reactor::local().id(), e.what());
    } catch (...) {
        spdlog::error("reactor {}: spawned task failed with a non-standard exception",
                      reactor::local().id());
    }
}
}  // namespace

reactor::reactor(runtime* rt, config cfg) : rt_(rt), cfg_(cfg) {
    int rc = setup_ring(&ring_, cfg_.ring_entries);
    if (rc < 0) throw std::system_error(-rc, std::generic_category(), "io_uring_queue_init");
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) {
        io_uring_queue_exit(&ring_);
        throw std::system_error(errno, std::generic_category(), "eventfd");
    }
    wake_completion_.on_cqe = &reactor::on_wakeup;
    size_t n = rt_ ? rt_->size() : 1;
    backlog_.resize(n);
    needs_wake_.assign(n, false);
    local_ = this;
    arm_wakeup_read();
}

reactor::~reactor() {
    cancel_everything();
    // Frames of tasks that never finished: destroying the root destroys the
    // whole chain of awaited tasks, running their destructors (closing fds).
    while (spawned_head_) {
        spawned_node* n = spawned_head_;
        unlink(n);
        n->owner = nullptr;
        n->handle.destroy();
    }
    // Cross-reactor items that never ran are dropped; runtime teardown only
    // happens after every reactor stopped.
    io_uring_queue_exit(&ring_);
    close(wake_fd_);
    if (local_ == this) local_ = nullptr;
}

void reactor::cancel_everything() {
    // Cancel every in-flight request and wait for all their CQEs, without
    // resuming anyone: after this, no kernel write can land in a freed frame.
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    sqe->user_data = 0;
    submit_pending();
    while (in_flight_ > 0) {
        io_uring_cqe* cqe = nullptr;
        __kernel_timespec ts{.tv_sec = 1, .tv_nsec = 0};
        int rc = io_uring_wait_cqe_timeout(&ring_, &cqe, &ts);
        if (rc == -ETIME) {
            spdlog::warn("reactor {}: {} operations still in flight at teardown", id(), in_flight_);
            sqe = get_sqe();
            io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
            sqe->user_data = 0;
            submit_pending();
            continue;
        }
        if (rc < 0) break;
        if (cqe->user_data != 0 && !(cqe->flags & IORING_CQE_F_MORE)) --in_flight_;
        io_uring_cqe_seen(&ring_, cqe);
    }
}

io_uring_sqe* reactor::get_sqe(unsigned room) {
    if (io_uring_sq_space_left(&ring_) < room) submit_pending();
    ++unsubmitted_;
    return io_uring_get_sqe(&ring_);
}

void reactor::submit_pending() {
    if (unsubmitted_ == 0) return;
    int rc = io_uring_submit(&ring_);
    ++stats_.submits;
    if (rc < 0) spdlog::error("reactor {}: io_uring_submit: {}", id(), strerror(-rc));
    unsubmitted_ = 0;
}

void reactor::link(spawned_node* n) {
    n->prev = nullptr;
    n->next = spawned_head_;
    if (spawned_head_) spawned_head_->prev = n;
    spawned_head_ = n;
    ++live_tasks_;
}

void reactor::unlink(spawned_node* n) {
    if (n->prev)
        n->prev->next = n->next;
    else
        spawned_head_ = n->next;
    if (n->next) n->next->prev = n->prev;
    n->prev = n->next = nullptr;
    --live_tasks_;
}

void reactor::spawn(task<void> t) {
    auto h = run_detached(std::move(t)).h;
    auto& p = h.promise();
    p.handle = h;
    p.owner = this;
    link(&p);
    ++stats_.spawned;
    schedule(h);
}

void reactor::send(unsigned dst, work_item w) {
    if (!rt_) {  // a lone reactor (tests, fuzzers): messages are to itself
        backlog_[0].push_back(w);
        return;
    }
    if (any_backlog_ && !backlog_[dst].empty()) {
        backlog_[dst].push_back(w);  // keep per-destination order
    } else if (!rt_->ring(id(), dst).push(w)) {
        backlog_[dst].push_back(w);
        any_backlog_ = true;
    }
    needs_wake_[dst] = true;
}

void reactor::flush_outgoing() {
    if (!rt_) return;
    if (any_backlog_) {
        any_backlog_ = false;
        for (unsigned dst = 0; dst < backlog_.size(); ++dst) {
            auto& q = backlog_[dst];
            auto& ring = rt_->ring(id(), dst);
            if (q.empty()) continue;
            while (!q.empty() && ring.push(q.front())) {
                q.pop_front();
                needs_wake_[dst] = true;
            }
            if (!q.empty()) any_backlog_ = true;
        }
    }
    // One eventfd write per sleeping destination per pass, not per message.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    for (unsigned dst = 0; dst < needs_wake_.size(); ++dst) {
        if (!needs_wake_[dst]) continue;
        needs_wake_[dst] = false;
        if (dst != id()) rt_->reactor_at(dst).wake();
    }
}

void reactor::wake() {
    if (sleeping_.load(std::memory_order_relaxed) && sleeping_.exchange(false)) {
        uint64_t one = 1;
        [[maybe_unused]] ssize_t r = ::write(wake_fd_, &one, sizeof one);
    }
}

void reactor::arm_wakeup_read() {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_read(sqe, wake_fd_, &wake_buf_, sizeof wake_buf_, 0);
    io_uring_sqe_set_data(sqe, &wake_completion_);
    note_in_flight();
}

void reactor::on_wakeup(completion* c, int res, uint32_t) {
    reactor& r = local();
    (void)c;
    if (res == -ECANCELED) return;  // teardown
    r.arm_wakeup_read();
}

bool reactor::run_ready() {
    // Bounded: what is ready now, not what those tasks make ready, so that
    // I/O completions are not starved by a task that keeps yielding.
    size_t n = ready_.size();
    for (size_t i = 0; i < n; ++i) {
        ready_.pop().resume();
        ++stats_.tasks_run;
    }
    return n != 0;
}

void reactor::post(work_item w) {
    {
        std::lock_guard lock(foreign_mutex_);
        foreign_.push_back(w);
    }
    // Pairs with the fence in sleep_in_kernel(): either the reactor sees the
    // flag before sleeping, or we see it sleeping and wake it.
    foreign_pending_.store(true);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    wake();
}

bool reactor::drain_foreign() {
    if (!foreign_pending_.load(std::memory_order_relaxed)) return false;
    std::vector<work_item> mine;
    {
        std::lock_guard lock(foreign_mutex_);
        foreign_pending_.store(false, std::memory_order_relaxed);
        mine.swap(foreign_);
    }
    for (auto& w : mine) w.fn(w.arg);
    return !mine.empty();
}

bool reactor::drain_messages() {
    bool foreign = drain_foreign();
    if (!rt_) {
        std::deque<work_item> mine;
        mine.swap(backlog_[0]);
        for (auto& w : mine) w.fn(w.arg);
        return foreign || !mine.empty();
    }
    size_t total = 0;
    for (unsigned src = 0; src < rt_->size(); ++src) {
        total += rt_->ring(src, id()).drain(256, [](work_item w) { w.fn(w.arg); });
    }
    stats_.messages_in += total;
    return foreign || total != 0;
}

bool reactor::reap() {
    constexpr unsigned batch = 128;
    io_uring_cqe* cqes[batch];
    struct event {
        uint64_t user_data;
        int res;
        uint32_t flags;
    } events[batch];
    unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, batch);
    if (n == 0) return false;
    // Copy out and release the CQ slots before resuming anyone.
    for (unsigned i = 0; i < n; ++i) events[i] = {cqes[i]->user_data, cqes[i]->res, cqes[i]->flags};
    io_uring_cq_advance(&ring_, n);
    stats_.cqes += n;
    for (unsigned i = 0; i < n; ++i) {
        if (events[i].user_data == 0) continue;
        if (!(events[i].flags & IORING_CQE_F_MORE)) --in_flight_;
        auto* c = reinterpret_cast<completion*>(events[i].user_data);
        c->on_cqe(c, events[i].res, events[i].flags);
    }
    return true;
}

bool reactor::messages_waiting() const {
    if (!rt_) return false;
    for (unsigned src = 0; src < rt_->size(); ++src)
        if (!rt_->ring(src, id()).empty_for_consumer()) return true;
    return false;
}

void reactor::sleep_in_kernel() {
    sleeping_.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (messages_waiting() || foreign_pending_.load(std::memory_order_relaxed) || stop_requested_) {
        sleeping_.store(false, std::memory_order_relaxed);
        return;
    }
    ++stats_.sleeps;
    unsubmitted_ = 0;
    int rc;
    if (any_backlog_) {
        // Messages wait for room in a peer's ring, and the peer does not tell
        // us when it drains: nap briefly instead of sleeping until woken.
        __kernel_timespec ts{.tv_sec = 0, .tv_nsec = 50'000};
        io_uring_cqe* cqe = nullptr;
        rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    } else {
        rc = io_uring_submit_and_wait(&ring_, 1);
    }
    if (rc < 0 && rc != -EINTR && rc != -ETIME)
        spdlog::error("reactor {}: io_uring_submit_and_wait: {}", id(), strerror(-rc));
    sleeping_.store(false, std::memory_order_relaxed);
}

void reactor::run_until_idle() {
    local_ = this;
    for (;;) {
        bool busy = run_ready();
        busy |= drain_messages();
        flush_outgoing();
        submit_pending();
        busy |= reap();
        if (!busy && ready_.empty()) return;
    }
}

void reactor::run() {
    using clock = std::chrono::steady_clock;
    local_ = this;
    auto last_work = clock::now();
    while (!stop_requested_) {
        ++stats_.loops;
        bool busy = run_ready();
        busy |= drain_messages();
        flush_outgoing();
        submit_pending();
        busy |= reap();
        if (busy || !ready_.empty()) {
            last_work = clock::now();
            continue;
        }
        if (stop_requested_) break;
        if (clock::now() - last_work < cfg_.poll_window) continue;  // busy-poll
        sleep_in_kernel();
        reap();
        last_work = clock::now();
    }
    flush_outgoing();
    submit_pending();
}

}  // namespace weft
