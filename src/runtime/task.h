// task<T>: the coroutine type of every request flow.
//
// Lazy (starts when awaited), resumes its awaiter by symmetric transfer (no
// stack growth over long chains), carries a value or an exception to the
// awaiter, and allocates its frame from the reactor thread's frame pool.
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "runtime/frame_allocator.h"

namespace weft {

template <typename T = void>
class task;

namespace detail {

struct promise_base {
    std::coroutine_handle<> continuation = std::noop_coroutine();
    std::exception_ptr exception;

    static void* operator new(size_t n) { return frame_allocator::allocate(n); }
    static void operator delete(void* p, size_t n) noexcept { frame_allocator::deallocate(p, n); }

    std::suspend_always initial_suspend() noexcept { return {}; }

    struct final_awaiter {
        bool await_ready() noexcept { return false; }
        template <typename P>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
            return h.promise().continuation;
        }
        void await_resume() noexcept {}
    };
    final_awaiter final_suspend() noexcept { return {}; }
    void unhandled_exception() noexcept { exception = std::current_exception(); }
};

template <typename T>
struct promise final : promise_base {
    std::optional<T> value;
    task<T> get_return_object() noexcept;
    template <typename U>
    requires std::is_convertible_v<U&&, T>
    void return_value(U&& v) { value.emplace(std::forward<U>(v)); }
    T take() {
        if (exception) std::rethrow_exception(exception);
        return std::move(*value);
    }
};

template <>
struct promise<void> final : promise_base {
    task<void> get_return_object() noexcept;
    void return_void() noexcept {}
    void take() {
        if (exception) std::rethrow_exception(exception);
    }
};

}  // namespace detail

template <typename T>
class [[nodiscard]] task {
  public:
    using promise_type = detail::promise<T>;
    using handle = std::coroutine_handle<promise_type>;
    using value_type = T;

    task() = default;
    explicit task(handle h) noexcept : h_(h) {}
    task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
    task& operator=(task&& o) noexcept {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, {});
        }
        return *this;
    }
    task(const task&) = delete;
    task& operator=(const task&) = delete;
    ~task() { reset(); }

    bool valid() const { return bool(h_); }

    auto operator co_await() && noexcept {
        struct awaiter {
            handle h;
            bool await_ready() noexcept { return !h || h.done(); }
            std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) noexcept {
                h.promise().continuation = caller;
                return h;
            }
            T await_resume() { return h.promise().take(); }
        };
        return awaiter{h_};
    }

    // For the runtime: give up ownership of the frame.
    handle release() noexcept { return std::exchange(h_, {}); }

  private:
    void reset() {
        if (h_) h_.destroy();
        h_ = {};
    }
    handle h_;
};

namespace detail {
template <typename T>
task<T> promise<T>::get_return_object() noexcept {
    return task<T>(std::coroutine_handle<promise<T>>::from_promise(*this));
}
inline task<void> promise<void>::get_return_object() noexcept {
    return task<void>(std::coroutine_handle<promise<void>>::from_promise(*this));
}
}  // namespace detail

// Awaitable that yields to the rest of the reactor's ready work.
struct yield_awaiter;

}  // namespace weft
