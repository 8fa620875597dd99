// FIFO of coroutine handles ready to run. A growable power-of-two ring, so
// steady state never allocates.
#pragma once

#include <coroutine>
#include <cstddef>
#include <vector>

namespace weft {

class ready_queue {
  public:
    ready_queue() : slots_(256) {}

    bool empty() const { return head_ == tail_; }
    size_t size() const { return tail_ - head_; }

    void push(std::coroutine_handle<> h) {
        if (tail_ - head_ == slots_.size()) grow();
        slots_[tail_++ & (slots_.size() - 1)] = h;
    }
    std::coroutine_handle<> pop() { return slots_[head_++ & (slots_.size() - 1)]; }

  private:
    void grow() {
        std::vector<std::coroutine_handle<>> bigger(slots_.size() * 2);
        size_t n = tail_ - head_;
        for (size_t i = 0; i < n; ++i) bigger[i] = slots_[(head_ + i) & (slots_.size() - 1)];
        slots_.swap(bigger);
        head_ = 0;
        tail_ = n;
    }
    std::vector<std::coroutine_handle<>> slots_;
    size_t head_ = 0;
    size_t tail_ = 0;
};

}  // namespace weft
