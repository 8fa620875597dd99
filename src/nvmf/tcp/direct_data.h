// Receiving a large data PDU's payload (C2HData at the host, H2CData at the
// target) straight into the command's buffers, as SPDK's host and target do,
// instead of through the connection's receive buffer and a copy out of it.
//
//   auto res = parse(rx.unread(), params);
//   if (auto* more = std::get_if<need_more>(&res)) {
//       if (auto h = direct_data_header(rx.unread(), params, *more, c2h_data, min)) {
//           ...check h's header against the command, find its buffers...
//           auto got = co_await receive_data(stream, rx, *h, buffers, stop);
//           ...finish the PDU: got is ok, digest_mismatch (data unusable) or lost...
//       } else { rx.need(receive_room(rx.unread(), rx.capacity(), *more, c2h_data, min)); recv; }
//   }
//
// Taken only when the PDU's header (and padding up to PDO) is in, and at
// least `min` bytes of it (direct_data_min by default) are still on the
// socket: below that, one recv of the whole PDU with the PDUs after it beats
// a second system call.
// Plain TCP only: under TLS the records are decrypted into memory anyway.
// The data digest, when negotiated, is checked over the caller's buffers.
#pragma once

#include <sys/uio.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "nvmf/tcp/pdu_reader.h"
#include "nvmf/tcp/rx_buffer.h"
#include "runtime/abort.h"
#include "runtime/net.h"
#include "runtime/task.h"

namespace weft::nvmf::tcp {

inline constexpr size_t direct_data_min = 16 * 1024;
inline constexpr size_t direct_data_off = SIZE_MAX;  // a `min` that never holds

// The validated header of the `wanted` data PDU at the start of `unread` when
// its data should be received directly (see above), else nothing. `more` is
// what parse() said of the same bytes.
std::optional<pdu_view> direct_data_header(std::span<const std::byte> unread,
                                           const reader_params& params, const need_more& more,
                                           pdu_type wanted, size_t min = direct_data_min);

// The bytes the receive buffer needs for the PDU at the front of `unread`
// (parse() said `more`): all of them, unless it is a `wanted` data PDU that
// will go direct once the buffer's `capacity` is full; then no more room, so
// that one large PDU does not make the buffer (and every later recv) large.
size_t receive_room(std::span<const std::byte> unread, size_t capacity, const need_more& more,
                    pdu_type wanted, size_t min = direct_data_min);

// Where the receive loop's next recv writes: after a direct receive the next
// PDU is likely another large one, so only a little is read, to take its
// header (and the PDUs before it) without most of its data; then the data
// goes direct too. Otherwise all the free space, for many small PDUs at once.
inline constexpr size_t direct_data_lookahead = 4096;
inline std::span<std::byte> recv_space(rx_buffer& rx, bool after_direct) {
    auto space = rx.free_space();
    return after_direct ? space.first(std::min(space.size(), direct_data_lookahead)) : space;
}

enum class data_received {
    ok,               // all of the data is in the caller's buffers
    digest_mismatch,  // all of it arrived, but its data digest did not match
    lost,             // the connection failed or `stop` was aborted first
};

// Takes the PDU `hdr` (from direct_data_header on rx.unread()) out of `rx`:
// its data, partly in `rx` and the rest on the socket, lands in `dest` (which
// covers exactly hdr.data_length bytes), then its data digest, if any, is
// read and checked. rx is left empty. Only hdr's lengths are used: its header
// bytes are gone once this starts.
// requires: the PDU is the only thing in rx (true whenever need_more said so).
task<data_received> receive_data(tcp_stream& s, rx_buffer& rx, const pdu_view& hdr,
                                 std::span<const iovec> dest, abort_source& stop);

}  // namespace weft::nvmf::tcp
