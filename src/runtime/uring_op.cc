#include "runtime/uring_op.h"

namespace weft {

void uring_op_base::submit(std::coroutine_handle<> h, io_uring_sqe* sqe, reactor& r) {
    waiter_ = h;
    io_uring_sqe_set_data(sqe, static_cast<completion*>(this));
    r.note_in_flight();
    if (has_timeout_) {
        sqe->flags |= IOSQE_IO_LINK;
        io_uring_sqe* t = r.get_sqe();  // room was reserved: no submit in between
        io_uring_prep_link_timeout(t, &timeout_, 0);
        io_uring_sqe_set_data64(t, 0);
    }
    if (abort_) {
        reg_.on_abort = &uring_op_base::on_abort;
        reg_.ctx = this;
        abort_->add(&reg_);
    }
}

void uring_op_base::on_abort(abort_source::registration* reg) {
    auto* self = static_cast<uring_op_base*>(reg->ctx);
    reactor& r = reactor::local();
    io_uring_sqe* sqe = r.get_sqe();
    io_uring_prep_cancel64(sqe, reinterpret_cast<uint64_t>(static_cast<completion*>(self)), 0);
    io_uring_sqe_set_data64(sqe, 0);
}

void uring_op_base::complete(completion* c, int res, uint32_t flags) {
    auto* self = static_cast<uring_op_base*>(c);
    if (!self->got_result_) {
        self->got_result_ = true;
        if (res == -ECANCELED && self->has_timeout_ &&
            !(self->abort_ && self->abort_->abort_requested()))
            res = -ETIMEDOUT;
        self->res_ = res;
        if (self->abort_) self->abort_->remove(&self->reg_);
        // A zero-copy send that posts a notification keeps the buffer until it.
        if (self->two_cqes_ && (flags & IORING_CQE_F_MORE)) return;
    } else if (!(flags & IORING_CQE_F_NOTIF)) {
        return;
    }
    self->waiter_.resume();
}

bool sleep_op::await_suspend(std::coroutine_handle<> h) {
    if (!may_start()) return false;
    reactor& r = reactor::local();
    io_uring_sqe* sqe = r.get_sqe();
    io_uring_prep_timeout(sqe, &ts_, 0, 0);
    submit(h, sqe, r);
    return true;
}

}  // namespace weft
