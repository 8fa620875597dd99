// A reactor-local mutual exclusion for coroutines: the pool's metadata lock,
// held across the I/O of an allocation so that two first writes to one
// cluster cannot both allocate it. Waiters are resumed in FIFO order.
#pragma once

#include <coroutine>
#include <deque>

#include "runtime/reactor.h"

namespace weft::pool {

class async_lock {
  public:
    class guard {
      public:
        explicit guard(async_lock* l) : l_(l) {}
        guard(guard&& o) noexcept : l_(std::exchange(o.l_, nullptr)) {}
        guard& operator=(guard&&) = delete;
        ~guard() {
            if (l_) l_->unlock();
        }

      private:
        async_lock* l_;
    };

    // co_await lock() -> guard; the lock is released when the guard goes.
    auto lock() {
        struct awaiter {
            async_lock* l;
            bool await_ready() noexcept {
                if (l->held_) return false;
                l->held_ = true;
                return true;
            }
            void await_suspend(std::coroutine_handle<> h) { l->waiters_.push_back(h); }
            guard await_resume() noexcept { return guard(l); }
        };
        return awaiter{this};
    }
    bool held() const { return held_; }

  private:
    void unlock() {
        if (waiters_.empty()) {
            held_ = false;
            return;
        }
        // Ownership passes straight to the next waiter.
        auto h = waiters_.front();
        waiters_.pop_front();
        reactor::local().schedule(h);
    }

    bool held_ = false;
    std::deque<std::coroutine_handle<>> waiters_;
};

}  // namespace weft::pool
