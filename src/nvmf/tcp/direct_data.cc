#include "nvmf/tcp/direct_data.h"

#include <limits.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "bdev/iov.h"
#include "nvmf/tcp/crc32c.h"

namespace weft::nvmf::tcp {

std::optional<pdu_view> direct_data_header(std::span<const std::byte> unread,
                                           const reader_params& params, const need_more& more,
                                           pdu_type wanted, size_t min) {
    if (more.total <= unread.size() || more.total - unread.size() < min) return std::nullopt;
    auto res = parse_header(unread, params);
    auto* v = std::get_if<pdu_view>(&res);
    if (!v || v->type != wanted || unread.size() < v->data_offset) return std::nullopt;
    return *v;
}

size_t receive_room(std::span<const std::byte> unread, size_t capacity, const need_more& more,
                    pdu_type wanted, size_t min) {
    // Such a PDU, once the buffer is full, has at least `min` bytes to come.
    bool direct = !unread.empty() && unread[0] == std::byte(wanted) && min <= SIZE_MAX - capacity &&
                  more.total >= capacity + min;
    return direct ? std::min(more.total, capacity) : more.total;
}

namespace {

// `iov` without its first `n` bytes.
void drop_front(std::vector<iovec>& iov, size_t n) {
    size_t i = 0;
    while (i < iov.size() && n >= iov[i].iov_len) n -= iov[i++].iov_len;
    iov.erase(iov.begin(), iov.begin() + ptrdiff_t(i));
    if (!iov.empty()) {
        iov.front().iov_base = static_cast<std::byte*>(iov.front().iov_base) + n;
        iov.front().iov_len -= n;
    }
}

}  // namespace

task<data_received> receive_data(tcp_stream& s, rx_buffer& rx, const pdu_view& hdr,
                                 std::span<const iovec> dest, abort_source& stop) {
    const size_t len = hdr.data_length;
    const bool digest = hdr.data_digest;
    rx.consume(hdr.data_offset);
    auto have = rx.unread();
    const size_t in_rx = std::min(have.size(), len);
    bdev::iov_cursor{dest}.scatter(have.data(), in_rx);
    // Whatever of the digest came with the data.
    std::array<std::byte, digest_size> wire{};
    const size_t digest_in_rx = digest ? std::min(have.size() - in_rx, wire.size()) : 0;
    std::memcpy(wire.data(), have.data() + in_rx, digest_in_rx);
    rx.consume(have.size());

    // The rest of the data, then the rest of the digest, in one receive.
    std::vector<iovec> rest(dest.begin(), dest.end());
    drop_front(rest, in_rx);
    size_t missing = len - in_rx;
    if (digest && digest_in_rx < wire.size()) {
        rest.push_back({wire.data() + digest_in_rx, wire.size() - digest_in_rx});
        missing += wire.size() - digest_in_rx;
    }
    while (missing > 0) {
        msghdr m{};
        m.msg_iov = rest.data();
        m.msg_iovlen = std::min<size_t>(rest.size(), IOV_MAX);  // the kernel's limit
        // MSG_WAITALL: io_uring retries short receives itself.
        int n = co_await s.recvmsg(&m, MSG_WAITALL).abort_with(stop);
        if (n <= 0) co_return data_received::lost;
        drop_front(rest, size_t(n));
        missing -= size_t(n);
    }
    if (digest) {
        le32 want;
        std::memcpy(&want, wire.data(), sizeof want);
        if (crc32c(dest) != want.get()) co_return data_received::digest_mismatch;
    }
    co_return data_received::ok;
}

}  // namespace weft::nvmf::tcp
