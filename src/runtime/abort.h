// abort_source: cancels the operations registered with it.
//
// A pending io_uring operation, a sleep or a cross-reactor wait can be bound to
// an abort_source; request_abort() cancels each of them, and they complete with
// -ECANCELED. Reactor-local: register, abort and complete on one thread.
#pragma once

namespace weft {

class abort_source {
  public:
    // An intrusive list node owned by the cancellable operation.
    struct registration {
        registration* prev = nullptr;
        registration* next = nullptr;
        void (*on_abort)(registration*) = nullptr;
        void* ctx = nullptr;  // the operation it cancels
    };

    abort_source() = default;
    abort_source(const abort_source&) = delete;
    abort_source& operator=(const abort_source&) = delete;
    ~abort_source() { request_abort(); }

    bool abort_requested() const { return requested_; }

    void request_abort() {
        requested_ = true;
        // Each callback unlinks its node (or the node is unlinked for it here).
        while (head_) {
            registration* r = head_;
            remove(r);
            r->on_abort(r);
        }
    }

    void add(registration* r) {
        r->prev = nullptr;
        r->next = head_;
        if (head_) head_->prev = r;
        head_ = r;
    }
    void remove(registration* r) {
        if (r->prev)
            r->prev->next = r->next;
        else if (head_ == r)
            head_ = r->next;
        else
            return;  // not linked
        if (r->next) r->next->prev = r->prev;
        r->prev = r->next = nullptr;
    }

  private:
    registration* head_ = nullptr;
    bool requested_ = false;
};

}  // namespace weft
