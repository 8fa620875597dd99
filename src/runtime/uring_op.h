// Awaitable io_uring operations.
//
// An operation is built by a named factory (net.h, file.h, sleep below) and
// awaited once; its SQE's user_data points at the awaiter in the awaiting
// coroutine's frame, and the CQE's result (>= 0, or -errno as in liburing) is
// what co_await returns. Modifiers, before awaiting:
//   .timeout(d)  a linked timeout: on expiry the op ends with -ETIMEDOUT
//   .abort_with(src)  src.request_abort() cancels it: the op ends with -ECANCELED
// Their optional forms, for callers that pass them on: .timeout_if(d) (none
// for d <= 0) and .abort_with(src_or_null).
#pragma once

#include <liburing.h>

#include <chrono>
#include <coroutine>
#include <utility>

#include "runtime/abort.h"
#include "runtime/reactor.h"

namespace weft {

class uring_op_base : protected completion {
  public:
    uring_op_base() { on_cqe = &uring_op_base::complete; }
    uring_op_base(const uring_op_base&) = delete;
    uring_op_base(uring_op_base&& o) noexcept
        : timeout_(o.timeout_),
          has_timeout_(o.has_timeout_),
          abort_(o.abort_),
          two_cqes_(o.two_cqes_) {
        on_cqe = &uring_op_base::complete;
    }

    bool await_ready() const noexcept { return false; }
    int await_resume() const noexcept { return res_; }

  protected:
    // For the derived awaiter's await_suspend: false when the op must not
    // start (already aborted; the result is then -ECANCELED).
    bool may_start() {
        if (abort_ && abort_->abort_requested()) {
            res_ = -ECANCELED;
            return false;
        }
        return true;
    }
    // Room for the op and its linked timeout, so they go in one submission.
    io_uring_sqe* sqe_for(reactor& r) { return r.get_sqe(has_timeout_ ? 2 : 1); }
    // Called by the derived awaiter's await_suspend with its prepared SQE.
    void submit(std::coroutine_handle<> h, io_uring_sqe* sqe, reactor& r);
    // Zero-copy sends post a second CQE (the notification) once the kernel
    // no longer needs the buffer; the caller resumes only after it.
    void expect_notification() { two_cqes_ = true; }

    __kernel_timespec timeout_{};
    bool has_timeout_ = false;
    abort_source* abort_ = nullptr;

  private:
    static void complete(completion* c, int res, uint32_t flags);
    static void on_abort(abort_source::registration* r);

    std::coroutine_handle<> waiter_;
    int res_ = 0;
    bool two_cqes_ = false;
    bool got_result_ = false;
    abort_source::registration reg_;
};

// `Prep` fills the SQE: void(io_uring_sqe*).
template <typename Prep>
class [[nodiscard]] uring_op : public uring_op_base {
  public:
    explicit uring_op(Prep prep, bool zero_copy = false) : prep_(std::move(prep)) {
        if (zero_copy) expect_notification();
    }

    template <typename Rep, typename Period>
    uring_op&& timeout(std::chrono::duration<Rep, Period> d) && {
        auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
        timeout_.tv_sec = ns / 1'000'000'000;
        timeout_.tv_nsec = ns % 1'000'000'000;
        has_timeout_ = true;
        return std::move(*this);
    }
    template <typename Rep, typename Period>
    uring_op&& timeout_if(std::chrono::duration<Rep, Period> d) && {
        if (d.count() > 0) return std::move(*this).timeout(d);
        return std::move(*this);
    }
    uring_op&& abort_with(abort_source& src) && {
        abort_ = &src;
        return std::move(*this);
    }
    uring_op&& abort_with(abort_source* src) && {
        abort_ = src;
        return std::move(*this);
    }

    bool await_suspend(std::coroutine_handle<> h) {
        if (!may_start()) return false;
        reactor& r = reactor::local();
        io_uring_sqe* sqe = sqe_for(r);
        prep_(sqe);
        submit(h, sqe, r);
        return true;
    }

  private:
    Prep prep_;
};

template <typename Prep>
uring_op<Prep> make_op(Prep prep) {
    return uring_op<Prep>(std::move(prep));
}

// Sleeps for `d` (never less). Returns 0, or -ECANCELED when aborted.
class [[nodiscard]] sleep_op : public uring_op_base {
  public:
    template <typename Rep, typename Period>
    explicit sleep_op(std::chrono::duration<Rep, Period> d) {
        auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
        if (ns < 0) ns = 0;
        ts_.tv_sec = ns / 1'000'000'000;
        ts_.tv_nsec = ns % 1'000'000'000;
    }
    sleep_op&& abort_with(abort_source& src) && {
        abort_ = &src;
        return std::move(*this);
    }
    bool await_suspend(std::coroutine_handle<> h);
    int await_resume() const noexcept {
        int res = uring_op_base::await_resume();
        return res == -ETIME ? 0 : res;
    }

  private:
    __kernel_timespec ts_{};
};

template <typename Rep, typename Period>
sleep_op sleep(std::chrono::duration<Rep, Period> d) {
    return sleep_op(d);
}

}  // namespace weft
