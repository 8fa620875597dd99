// gate: counts work in progress so that shutdown can wait for it (Seastar's
// gate). Reactor-local.
//
//   gate g;
//   reactor::local().spawn(g.hold(handle(conn)));   // counted while it runs
//   ...
//   co_await g.close();   // refuses new work, resumes when the count is 0
#pragma once

#include <coroutine>
#include <cstddef>
#include <utility>

#include "runtime/reactor.h"
#include "runtime/task.h"

namespace weft {

class gate {
  public:
    bool is_closed() const { return closed_; }
    size_t count() const { return count_; }

    // requires: !is_closed().
    void enter() { ++count_; }
    void leave() {
        if (--count_ == 0 && waiter_) reactor::local().schedule(std::exchange(waiter_, {}));
    }

    // Returns `t` counted by the gate from now until it ends or is destroyed.
    task<void> hold(task<void> t) { return held(holder(this), std::move(t)); }

    auto close() {
        closed_ = true;
        struct awaiter {
            gate* g;
            bool await_ready() const noexcept { return g->count_ == 0; }
            void await_suspend(std::coroutine_handle<> h) noexcept { g->waiter_ = h; }
            void await_resume() const noexcept {}
        };
        return awaiter{this};
    }

  private:
    // Counts from construction; leaves when the frame holding it goes away,
    // so a task destroyed before it ever ran still leaves.
    struct holder {
        gate* g;
        explicit holder(gate* g) : g(g) { g->enter(); }
        holder(holder&& o) noexcept : g(std::exchange(o.g, nullptr)) {}
        ~holder() {
            if (g) g->leave();
        }
    };
    static task<void> held([[maybe_unused]] holder h, task<void> t) { co_await std::move(t); }

    size_t count_ = 0;
    bool closed_ = false;
    std::coroutine_handle<> waiter_;
};

}  // namespace weft
