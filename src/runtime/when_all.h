// when_all: runs tasks concurrently on the calling reactor and resumes when
// every one has finished, with their values in order.
//
//   std::vector<task<int>> ts;
//   for (auto* c : children) ts.push_back(c->write(...));
//   std::vector<int> rcs = co_await when_all(std::move(ts));
//
// Each task runs as a spawned task of this reactor (so it is destroyed with
// the reactor if the process stops first). Tasks must not throw.
#pragma once

#include <coroutine>
#include <vector>

#include "runtime/reactor.h"
#include "runtime/task.h"

namespace weft {

namespace detail {
struct join_state {
    size_t pending = 0;
    std::coroutine_handle<> waiter;
    void done() {
        if (--pending == 0 && waiter) reactor::local().schedule(waiter);
    }
};
template <typename T>
task<void> join_one(task<T> t, T* out, join_state* st) {
    *out = co_await std::move(t);
    st->done();
}
}  // namespace detail

template <typename T>
task<std::vector<T>> when_all(std::vector<task<T>> tasks) {
    std::vector<T> out(tasks.size());
    detail::join_state st;
    st.pending = tasks.size();
    for (size_t i = 0; i < tasks.size(); ++i)
        reactor::local().spawn(detail::join_one(std::move(tasks[i]), &out[i], &st));
    struct awaiter {
        detail::join_state* st;
        bool await_ready() const noexcept { return st->pending == 0; }
        void await_suspend(std::coroutine_handle<> h) noexcept { st->waiter = h; }
        void await_resume() const noexcept {}
    };
    co_await awaiter{&st};
    co_return out;
}

}  // namespace weft
