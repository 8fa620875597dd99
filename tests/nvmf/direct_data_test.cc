// Direct data receive (nvmf/tcp/direct_data.h) over a real socket pair: the
// data split between the receive buffer and the socket, the data digest
// partly in the buffer, padding before the data, more iovecs than one
// recvmsg takes, a peer that closes mid-way; and when the receive buffer
// may stay small.
#include "nvmf/tcp/direct_data.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "nvmf/tcp/crc32c.h"
#include "nvmf/tcp/pdu_writer.h"
#include "runtime/test_util.h"

namespace weft::nvmf::tcp {
namespace {

using bytes = std::vector<std::byte>;

bytes pattern(size_t n, unsigned seed) {
    bytes b(n);
    for (size_t i = 0; i < n; ++i) b[i] = std::byte((i * 131 + seed * 7) >> 3);
    return b;
}

// One C2HData PDU carrying `data`, as a target with `p` sends it.
bytes c2h_pdu(const writer_params& p, std::span<const std::byte> data) {
    bytes out(max_prefix);
    size_t n = encode_c2h_data(out, p, 7, 0, uint32_t(data.size()), true, false);
    out.resize(n);
    out.insert(out.end(), data.begin(), data.end());
    if (p.ddgst) {
        auto d = encode_digest(crc32c(data));
        out.insert(out.end(), d.begin(), d.end());
    }
    return out;
}

struct outcome {
    data_received got = data_received::lost;
    bool header_ok = false;
    size_t rx_left = 1;
};

// The first `in_rx` bytes of `pdu` are in the receive buffer, the next
// `on_socket` bytes come from the peer (then it closes); the data lands in
// `dest`.
outcome receive(const writer_params& wp, const bytes& pdu, size_t in_rx, size_t on_socket,
                std::span<const iovec> dest) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        ADD_FAILURE() << "socketpair: " << strerror(errno);
        return {};
    }
    std::thread peer([&] {
        size_t off = in_rx;
        while (off < in_rx + on_socket) {
            // MSG_NOSIGNAL: a reader that gave up fails the test, not the process.
            ssize_t n = ::send(sv[1], pdu.data() + off, in_rx + on_socket - off, MSG_NOSIGNAL);
            if (n <= 0) break;
            off += size_t(n);
        }
        ::close(sv[1]);
    });
    outcome r;
    test::run_reactors(1, [&]() -> task<void> {
        tcp_stream s{fd_handle(sv[0])};
        rx_buffer rx(std::max<size_t>(64 * 1024, in_rx));
        auto room = rx.free_space();
        std::memcpy(room.data(), pdu.data(), in_rx);
        rx.filled(in_rx);
        reader_params rp{.receiver = side::initiator,
                         .connected = true,
                         .hdgst = wp.hdgst,
                         .ddgst = wp.ddgst,
                         .pda = wp.pda,
                         .max_data = 1u << 20};
        auto h = parse_header(rx.unread(), rp);
        auto* v = std::get_if<pdu_view>(&h);
        r.header_ok = v != nullptr;
        if (!v) co_return;
        abort_source stop;
        r.got = co_await receive_data(s, rx, *v, dest, stop);
        r.rx_left = rx.unread().size();
    });
    peer.join();
    return r;
}

TEST(direct_data, data_and_digest_split_between_buffer_and_socket) {
    for (size_t digest_in_rx : {0, 1, 3, 4}) {
        writer_params wp{.hdgst = true, .ddgst = true};
        bytes data = pattern(64 * 1024, unsigned(digest_in_rx));
        bytes pdu = c2h_pdu(wp, data);
        // All the data and `digest_in_rx` digest bytes in the buffer, or
        // (digest_in_rx 0) the header and 100 bytes of data.
        size_t in_rx =
            digest_in_rx ? pdu.size() - 4 + digest_in_rx : pdu.size() - data.size() - 4 + 100;
        bytes back(data.size());
        iovec dest{back.data(), back.size()};
        auto r = receive(wp, pdu, in_rx, pdu.size() - in_rx, {&dest, 1});
        ASSERT_TRUE(r.header_ok);
        EXPECT_EQ(r.got, data_received::ok) << digest_in_rx;
        EXPECT_EQ(r.rx_left, 0u);
        EXPECT_TRUE(back == data);

        pdu[pdu.size() - 1 - (digest_in_rx % 4)] ^= std::byte{0x10};
        r = receive(wp, pdu, in_rx, pdu.size() - in_rx, {&dest, 1});
        EXPECT_EQ(r.got, data_received::digest_mismatch) << digest_in_rx;
        EXPECT_EQ(r.rx_left, 0u);
    }
}

TEST(direct_data, padding_before_the_data_and_more_iovecs_than_one_recvmsg_takes) {
    // PDA 3: the data starts at a multiple of 16 bytes, after padding.
    writer_params wp{.hdgst = false, .ddgst = true, .pda = 3};
    bytes data = pattern(128 * 1024, 9);
    bytes pdu = c2h_pdu(wp, data);
    auto h = parse_header(pdu, {.receiver = side::initiator,
                                .connected = true,
                                .ddgst = true,
                                .pda = 3,
                                .max_data = 1u << 20});
    ASSERT_TRUE(std::holds_alternative<pdu_view>(h));
    ASSERT_GT(std::get<pdu_view>(h).data_offset, sizeof(c2h_data));
    // 2048 iovecs of 64 bytes: twice IOV_MAX.
    bytes back(data.size());
    std::vector<iovec> dest;
    for (size_t off = 0; off < back.size(); off += 64) dest.push_back({back.data() + off, 64});
    size_t in_rx = std::get<pdu_view>(h).data_offset + 10;
    auto r = receive(wp, pdu, in_rx, pdu.size() - in_rx, dest);
    ASSERT_TRUE(r.header_ok);
    EXPECT_EQ(r.got, data_received::ok);
    EXPECT_TRUE(back == data);
}

TEST(direct_data, a_peer_that_closes_mid_way_is_lost) {
    writer_params wp{};
    bytes data = pattern(64 * 1024, 3);
    bytes pdu = c2h_pdu(wp, data);
    bytes back(data.size());
    iovec dest{back.data(), back.size()};
    size_t in_rx = pdu.size() - data.size() + 10;
    auto r = receive(wp, pdu, in_rx, 20000, {&dest, 1});
    ASSERT_TRUE(r.header_ok);
    EXPECT_EQ(r.got, data_received::lost);
}

TEST(direct_data, when_to_go_direct_and_how_much_room_the_buffer_needs) {
    writer_params wp{};
    bytes pdu = c2h_pdu(wp, pattern(128 * 1024, 4));
    reader_params rp{.receiver = side::initiator, .connected = true, .max_data = 1u << 20};
    std::span<const std::byte> some(pdu.data(), 1000);
    need_more more{pdu.size()};
    EXPECT_TRUE(direct_data_header(some, rp, more, pdu_type::c2h_data).has_value());
    EXPECT_FALSE(direct_data_header(some, rp, more, pdu_type::h2c_data).has_value());
    EXPECT_FALSE(direct_data_header(some, rp, more, pdu_type::c2h_data, direct_data_off));
    // Less than the minimum still to come: through the buffer.
    std::span<const std::byte> most(pdu.data(), pdu.size() - 1000);
    EXPECT_FALSE(direct_data_header(most, rp, more, pdu_type::c2h_data).has_value());
    // Only part of the header: not yet.
    EXPECT_FALSE(direct_data_header(some.first(12), rp, more, pdu_type::c2h_data).has_value());

    // A PDU that goes direct once a 64 KiB buffer is full: no more room.
    EXPECT_EQ(receive_room(some, 64 * 1024, more, pdu_type::c2h_data), 64u * 1024);
    // Copied: the whole PDU (a smaller one, the other type, or direct off).
    EXPECT_EQ(receive_room(some, 128 * 1024, more, pdu_type::c2h_data), pdu.size());
    EXPECT_EQ(receive_room(some, 64 * 1024, more, pdu_type::h2c_data), pdu.size());
    EXPECT_EQ(receive_room(some, 64 * 1024, more, pdu_type::c2h_data, direct_data_off), pdu.size());
}

}  // namespace
}  // namespace weft::nvmf::tcp
