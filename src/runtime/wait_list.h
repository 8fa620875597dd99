// wait_list: coroutines waiting for "something changed" on one reactor (a
// condition variable without a mutex: everything runs on one thread).
//
//   while (!ready) co_await changed.wait();   // (await outside the condition: g++ 12)
//   ...
//   ready = true; changed.notify_all();
//
// Waiters resume in FIFO order on the next pass of the reactor, never inside
// notify_all(). Reactor-local: wait and notify on the same reactor.
#pragma once

#include <coroutine>
#include <vector>

#include "runtime/reactor.h"

namespace weft {

class wait_list {
  public:
    wait_list() = default;
    wait_list(const wait_list&) = delete;
    wait_list& operator=(const wait_list&) = delete;

    auto wait() {
        struct awaiter {
            wait_list* w;
            bool await_ready() const noexcept { return false; }
            void await_suspend(std::coroutine_handle<> h) { w->waiters_.push_back(h); }
            void await_resume() const noexcept {}
        };
        return awaiter{this};
    }

    void notify_all() {
        if (waiters_.empty()) return;
        std::vector<std::coroutine_handle<>> now;
        now.swap(waiters_);
        for (auto h : now) reactor::local().schedule(h);
    }

    size_t waiting() const { return waiters_.size(); }

  private:
    std::vector<std::coroutine_handle<>> waiters_;
};

}  // namespace weft
