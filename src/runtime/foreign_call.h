// Crossing between reactors and ordinary threads (gRPC and HTTP handler
// threads, a blocking library call).
//
//   // On a handler thread: run a task on reactor 0 and wait for its value.
//   int n = call_on_reactor(rt.reactor_at(0), [&]() -> task<int> { co_return 7; });
//
//   // On a reactor: run a blocking function on a new thread without blocking
//   // the reactor; resumes here when it returns.
//   co_await in_thread([&] { server->Shutdown(); });
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>

#include "runtime/reactor.h"
#include "runtime/runtime.h"
#include "runtime/task.h"

namespace weft {

// Runs fn (returning task<T> or T) on reactor `r` and blocks the calling
// thread until it finishes; returns its value or rethrows its exception.
// requires: not called on a reactor thread (it would block that reactor).
template <typename F>
auto call_on_reactor(reactor& r, F fn) {
    using R = std::invoke_result_t<F&>;
    using T = typename detail::unwrap_task<R>::type;
    struct call {
        explicit call(F f) : fn(std::move(f)) {}
        F fn;
        std::mutex m;
        std::condition_variable cv;
        bool done = false;
        std::optional<std::conditional_t<std::is_void_v<T>, bool, T>> value;
        std::exception_ptr ex;

        void finish() {
            std::lock_guard lock(m);
            done = true;
            cv.notify_one();
        }
        static task<void> run(call* c) {
            try {
                if constexpr (detail::unwrap_task<R>::is_task) {
                    if constexpr (std::is_void_v<T>) {
                        co_await c->fn();
                        c->value.emplace(true);
                    } else {
                        c->value.emplace(co_await c->fn());
                    }
                } else if constexpr (std::is_void_v<T>) {
                    c->fn();
                    c->value.emplace(true);
                } else {
                    c->value.emplace(c->fn());
                }
            } catch (...) {
                c->ex = std::current_exception();
            }
            c->finish();
        }
        static void start(void* p) { reactor::local().spawn(run(static_cast<call*>(p))); }
    };
    call c(std::move(fn));
    r.post({&call::start, &c});
    std::unique_lock lock(c.m);
    c.cv.wait(lock, [&] { return c.done; });
    if (c.ex) std::rethrow_exception(c.ex);
    if constexpr (!std::is_void_v<T>) return std::move(*c.value);
}

// Awaitable: runs `fn` on a new thread and resumes the awaiting coroutine on
// its reactor when fn returns. For rare blocking calls (stopping a gRPC
// server waits for its handlers, which may be waiting for this reactor).
class [[nodiscard]] in_thread {
  public:
    explicit in_thread(std::function<void()> fn) : fn_(std::move(fn)) {}
    ~in_thread() {
        if (thread_.joinable()) thread_.join();
    }
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
        waiter_ = h;
        reactor* home = &reactor::local();
        thread_ = std::thread([this, home] {
            try {
                fn_();
            } catch (...) {
                ex_ = std::current_exception();
            }
            home->post({&resume, this});
        });
    }
    void await_resume() {
        thread_.join();
        if (ex_) std::rethrow_exception(ex_);
    }

  private:
    static void resume(void* p) { reactor::local().schedule(static_cast<in_thread*>(p)->waiter_); }

    std::function<void()> fn_;
    std::thread thread_;
    std::coroutine_handle<> waiter_;
    std::exception_ptr ex_;
};

}  // namespace weft
