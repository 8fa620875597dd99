// io_epochs: I/O in flight counted per reactor, so that one reactor ("home")
// can wait for every I/O that started before a point (a grace period)
// without a locked instruction on the I/O path. A layer that is about to
// change something the I/O path reads (a range it rewrites, a key, a view)
// publishes the change first, then waits a grace period: I/O that started
// afterwards sees the change, I/O that started before has finished.
//
//   io_epochs ep;                          // made on home, sized by its runtime
//   { auto g = ep.enter(); ... }           // any reactor: counted while g lives
//   fence = range; co_await ep.grace();    // home: no I/O from before is left
//
// Each reactor's slot is touched only by that reactor (plain integers); a
// grace period flips the slot's parity there, by a message, and waits there
// for the old parity's count to drain. The message carries the ordering:
// what home stored before grace() is seen by I/O that starts after the flip.
#pragma once

#include <coroutine>
#include <cstdint>
#include <memory>
#include <utility>

#include "runtime/reactor.h"
#include "runtime/runtime.h"
#include "runtime/task.h"
#include "runtime/wait_list.h"

namespace weft {

class io_epochs {
  public:
    // One reactor's count, touched only there.
    struct alignas(64) slot {
        int64_t n[2] = {0, 0};
        unsigned parity = 0;
        std::coroutine_handle<> drained;  // a grace period waiting for n[parity ^ 1] == 0
    };

    io_epochs() {
        reactor* r = reactor::local_or_null();
        if (r && r->rt_or_null()) nslots_ = r->rt_or_null()->size();
        slots_ = std::make_unique<slot[]>(nslots_);
    }
    io_epochs(const io_epochs&) = delete;
    io_epochs& operator=(const io_epochs&) = delete;

    // Counts one I/O under its slot's current parity; the last one of a
    // parity that a grace period waits for wakes it.
    class guard {
      public:
        explicit guard(slot& s) : s_(&s), p_(s.parity) { ++s.n[p_]; }
        guard(guard&& o) noexcept : s_(std::exchange(o.s_, nullptr)), p_(o.p_) {}
        guard& operator=(guard&&) = delete;
        ~guard() { release(); }
        void release() {
            if (!s_) return;
            if (--s_->n[p_] == 0 && p_ != s_->parity && s_->drained)
                reactor::local().schedule(std::exchange(s_->drained, {}));
            s_ = nullptr;
        }

      private:
        slot* s_;
        unsigned p_;
    };

    // The calling reactor's slot (a channel keeps it: it never moves).
    slot& here() {
        reactor* r = reactor::local_or_null();
        return slots_[r ? r->id() % nslots_ : 0];
    }
    static guard enter(slot& s) { return guard(s); }
    guard enter() { return guard(here()); }

    // Home: waits until every I/O that started before the call has ended.
    // One grace period at a time (callers queue).
    task<void> grace() {
        while (busy_) co_await free_.wait();
        // Released however the coroutine ends (destroyed mid-wait too).
        struct hold {
            io_epochs* e;
            explicit hold(io_epochs* x) : e(x) { e->busy_ = true; }
            ~hold() {
                e->busy_ = false;
                e->free_.notify_all();
            }
        } held(this);
        reactor& home = reactor::local();
        for (unsigned r = 0; r < nslots_; ++r) {
            if (!home.rt_or_null() || r == home.id())
                co_await flip_and_drain(slots_[r]);
            else
                co_await on(r, [this, r] { return flip_and_drain(slots_[r]); });
        }
    }

  private:
    // On the slot's own reactor: new I/O counts in the other parity from
    // now on; resumes once the old parity's I/O has finished.
    static task<void> flip_and_drain(slot& s) {
        unsigned old = s.parity;
        s.parity ^= 1;
        if (s.n[old] == 0) co_return;
        struct awaiter {
            slot& s;
            bool await_ready() const noexcept { return false; }
            void await_suspend(std::coroutine_handle<> h) noexcept { s.drained = h; }
            void await_resume() const noexcept {}
        };
        co_await awaiter{s};
    }

    std::unique_ptr<slot[]> slots_;
    unsigned nslots_ = 1;
    bool busy_ = false;
    wait_list free_;
};

}  // namespace weft
