// reactor: one thread, one io_uring, run to completion.
//
// Each reactor owns the io_uring that carries its sockets, its files and its
// timers. Its loop runs ready coroutines, drains messages from other
// reactors, submits the SQEs they queued and dispatches completions. Under
// load it busy-polls for a bounded window; idle, it sleeps in io_uring_enter
// until a completion or an eventfd wake-up from another reactor arrives.
#pragma once

#include <liburing.h>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "runtime/message_ring.h"
#include "runtime/ready_queue.h"
#include "runtime/task.h"

namespace weft {

class runtime;
class reactor;

// What an SQE's user_data points at. user_data 0 is reserved for CQEs nobody
// waits on (link timeouts, cancel requests).
struct completion {
    void (*on_cqe)(completion* self, int res, uint32_t flags) = nullptr;
};

// A detached task's place in its reactor's list of live tasks.
struct spawned_node {
    spawned_node* prev = nullptr;
    spawned_node* next = nullptr;
    std::coroutine_handle<> handle;
    reactor* owner = nullptr;
};

struct reactor_stats {
    uint64_t loops = 0;
    uint64_t sleeps = 0;   // times the loop blocked in the kernel
    uint64_t submits = 0;  // io_uring_enter calls that submitted
    uint64_t cqes = 0;
    uint64_t tasks_run = 0;    // coroutine resumptions from the ready queue
    uint64_t messages_in = 0;  // cross-reactor work items run here
    uint64_t spawned = 0;
};

class reactor {
  public:
    struct config {
        unsigned id = 0;
        unsigned ring_entries = 1024;
        // After the last piece of work, spin this long before sleeping.
        std::chrono::microseconds poll_window{50};
    };

    reactor(runtime* rt, config cfg);
    ~reactor();
    reactor(const reactor&) = delete;
    reactor& operator=(const reactor&) = delete;

    // requires: called on a reactor thread.
    static reactor& local() { return *local_; }
    static reactor* local_or_null() { return local_; }

    unsigned id() const { return cfg_.id; }
    runtime& rt() { return *rt_; }
    runtime* rt_or_null() { return rt_; }  // null for a lone reactor (tests)
    const reactor_stats& stats() const { return stats_; }

    // An SQE, first making sure `room` SQEs are free so that the next
    // room-1 calls do not submit (an op and its linked timeout stay in one
    // submission). Never fails: submits first when the SQ is full.
    io_uring_sqe* get_sqe(unsigned room = 1);
    io_uring* ring() { return &ring_; }
    // An SQE whose user_data is a completion: counted so that teardown can
    // wait for every such CQE before frames are freed.
    void note_in_flight() { ++in_flight_; }
    uint64_t in_flight() const { return in_flight_; }

    void schedule(std::coroutine_handle<> h) { ready_.push(h); }

    // Runs `t` detached on this reactor. Its exceptions are logged. Tasks still
    // alive when the reactor is destroyed are destroyed with it.
    void spawn(task<void> t);
    size_t live_tasks() const { return live_tasks_; }

    // Queues `w` to run on reactor `dst` (possibly this one). Never blocks:
    // a full ring spills into a local backlog flushed on the next loop pass.
    void send(unsigned dst, work_item w);

    // Runs the loop until stop() is called on this thread (or via a message).
    void run();
    // Runs ready work and reaps completions that are already there until
    // nothing moves, without sleeping: a deterministic single-thread drive
    // for tests and fuzzers (a reactor made with a null runtime).
    void run_until_idle();
    void stop() { stop_requested_ = true; }

    // Called by another thread: makes a sleeping reactor look at its rings.
    void wake();

    // From any thread, reactor or not (gRPC and HTTP handler threads): queues
    // `w` to run on this reactor's loop. A mutex, not a ring: rare calls.
    void post(work_item w);

  private:
    bool run_ready();
    bool drain_messages();
    bool drain_foreign();
    void flush_outgoing();
    bool reap();
    void submit_pending();
    void sleep_in_kernel();
    bool messages_waiting() const;
    void arm_wakeup_read();
    void cancel_everything();
    static void on_wakeup(completion* c, int res, uint32_t flags);

    // initial-exec: no __tls_get_addr call in a shared object (frame_allocator.cc)
    static thread_local reactor* local_ __attribute__((tls_model("initial-exec")));

    runtime* rt_;
    config cfg_;
    io_uring ring_{};
    unsigned unsubmitted_ = 0;
    uint64_t in_flight_ = 0;  // SQEs with a waiter whose final CQE has not come
    ready_queue ready_;
    reactor_stats stats_;

    int wake_fd_ = -1;
    uint64_t wake_buf_ = 0;
    completion wake_completion_;
    alignas(64) std::atomic<bool> sleeping_{false};

    std::mutex foreign_mutex_;
    std::vector<work_item> foreign_;  // from post(), under foreign_mutex_
    alignas(64) std::atomic<bool> foreign_pending_{false};

    std::vector<std::deque<work_item>> backlog_;  // per destination, when its ring is full
    std::vector<bool> needs_wake_;                // per destination
    bool any_backlog_ = false;

    spawned_node* spawned_head_ = nullptr;  // intrusive list of live detached tasks
    size_t live_tasks_ = 0;
    bool stop_requested_ = false;

    void link(spawned_node* n);
    void unlink(spawned_node* n);
    friend struct detached_promise;
    friend class uring_op_base;
};

// Returns control to the reactor; resumes after the other ready work.
struct yield {
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) const { reactor::local().schedule(h); }
    void await_resume() const noexcept {}
};

}  // namespace weft
