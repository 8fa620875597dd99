// runtime: the set of reactors of a process, one per configured core, and the
// mesh of message rings between them.
//
//   weft::runtime rt({.cpus = {0, 1}});
//   int rc = rt.run([]() -> weft::task<int> { ...; co_return 0; });
//
// run() starts one pinned thread per core, runs `main` on reactor 0, and when
// it completes stops every reactor, cancels what is still in flight and frees
// it, and returns main's value (or rethrows its exception).
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <vector>

#include "runtime/message_ring.h"
#include "runtime/reactor.h"
#include "runtime/task.h"

namespace weft {

struct runtime_config {
    // One reactor per entry, pinned to that CPU; -1 leaves a reactor unpinned.
    std::vector<int> cpus{-1};
    std::chrono::microseconds poll_window{50};
    unsigned ring_entries = 1024;
};

class runtime {
  public:
    explicit runtime(runtime_config cfg);
    ~runtime();
    runtime(const runtime&) = delete;
    runtime& operator=(const runtime&) = delete;

    unsigned size() const { return unsigned(cfg_.cpus.size()); }
    const runtime_config& config() const { return cfg_; }
    reactor& reactor_at(unsigned i) { return *reactors_[i]; }
    message_ring& ring(unsigned src, unsigned dst) { return rings_[src * size() + dst]; }

    template <typename F>
    auto run(F main) {
        using T = typename std::invoke_result_t<F&>::value_type;
        std::optional<std::conditional_t<std::is_void_v<T>, bool, T>> out;
        std::exception_ptr ex;
        run_impl([&]() -> task<void> {
            try {
                if constexpr (std::is_void_v<T>) {
                    co_await main();
                    out.emplace(true);
                } else {
                    out.emplace(co_await main());
                }
            } catch (...) {
                ex = std::current_exception();
            }
        });
        if (ex) std::rethrow_exception(ex);
        if constexpr (!std::is_void_v<T>) return std::move(*out);
    }

    // Asks every reactor to leave its loop (from any reactor thread).
    void stop_all();

  private:
    void run_impl(std::function<task<void>()> main);
    void thread_main(unsigned id, std::function<task<void>()>* main);

    runtime_config cfg_;
    std::unique_ptr<message_ring[]> rings_;
    std::vector<reactor*> reactors_;
};

namespace detail {
template <typename R>
struct unwrap_task {
    using type = R;
    static constexpr bool is_task = false;
};
template <typename T>
struct unwrap_task<task<T>> {
    using type = T;
    static constexpr bool is_task = true;
};
}  // namespace detail

// Awaitable that runs `fn` on reactor `target` and resumes the caller on its
// own reactor with fn's value (or exception). `fn` may return a task, which is
// then awaited on the target. Cross-reactor calls nested inside `fn` must form
// a DAG: a reactor may wait on another, never on itself through a cycle.
template <typename F>
class [[nodiscard]] cross_call {
    using unwrap = detail::unwrap_task<std::invoke_result_t<F&>>;

  public:
    using value_t = typename unwrap::type;

    cross_call(unsigned target, F fn) : fn_(std::move(fn)), target_(target) {}

    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
        waiter_ = h;
        reactor& r = reactor::local();
        origin_ = r.id();
        r.send(target_, {&run_there, this});
    }
    value_t await_resume() {
        if (ex_) std::rethrow_exception(ex_);
        if constexpr (!std::is_void_v<value_t>) return std::move(*result_);
    }

  private:
    static void run_there(void* p) {
        auto* self = static_cast<cross_call*>(p);
        if constexpr (unwrap::is_task) {
            reactor::local().spawn(self->runner());
        } else {
            try {
                if constexpr (std::is_void_v<value_t>)
                    self->fn_();
                else
                    self->result_.emplace(self->fn_());
            } catch (...) {
                self->ex_ = std::current_exception();
            }
            self->reply();
        }
    }
    task<void> runner() {
        try {
            if constexpr (std::is_void_v<value_t>)
                co_await fn_();
            else
                result_.emplace(co_await fn_());
        } catch (...) {
            ex_ = std::current_exception();
        }
        reply();
    }
    void reply() { reactor::local().send(origin_, {&resume_here, this}); }
    static void resume_here(void* p) {
        auto* self = static_cast<cross_call*>(p);
        reactor::local().schedule(self->waiter_);
    }

    F fn_;
    unsigned target_;
    unsigned origin_ = 0;
    std::coroutine_handle<> waiter_;
    std::optional<std::conditional_t<std::is_void_v<value_t>, bool, value_t>> result_;
    std::exception_ptr ex_;
};

template <typename F>
cross_call<F> on(unsigned core, F fn) {
    return cross_call<F>(core, std::move(fn));
}

}  // namespace weft
