// A connection's receive buffer, for the target and the initiator alike:
// recv appends at the end, the parser takes whole PDUs from the front, and
// the buffer grows only to what one PDU needs (the reader bounds that by the
// negotiated limits before asking for more bytes).
#pragma once

#include <cstddef>
#include <cstring>
#include <span>
#include <vector>

namespace weft::nvmf::tcp {

class rx_buffer {
  public:
    explicit rx_buffer(size_t initial = 64 * 1024) : buf_(initial) {}

    // Where the next recv writes, and how much it wrote.
    std::span<std::byte> free_space() { return std::span(buf_).subspan(end_); }
    void filled(size_t n) { end_ += n; }

    size_t capacity() const { return buf_.size(); }

    // Received bytes not yet taken by the parser.
    std::span<const std::byte> unread() const { return {buf_.data() + begin_, end_ - begin_}; }
    void consume(size_t n) { begin_ += n; }

    // The PDU at the front needs `total` bytes in all: make room for them.
    void need(size_t total) {
        if (total <= buf_.size()) return;
        compact();
        buf_.resize(total);
    }
    // Moves the unread bytes to the front; call after each parse pass.
    void compact() {
        std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
    }

  private:
    std::vector<std::byte> buf_;
    size_t begin_ = 0;
    size_t end_ = 0;
};

}  // namespace weft::nvmf::tcp
