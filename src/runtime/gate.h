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

    // Runs `t` counted by the gate.
    task<void> hold(task<void> t) {
        enter();
        struct leaver {
            gate* g;
            ~leaver() { g->leave(); }
        } l{this};
        co_await std::move(t);
    }

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
    size_t count_ = 0;
    bool closed_ = false;
    std::coroutine_handle<> waiter_;
};

}  // namespace weft
