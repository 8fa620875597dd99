// A small NVMe/TCP host for the target's loopback tests: not the product
// initiator, only what a test needs to drive the target over a real socket.
//
//   host_queue q;
//   co_await q.open(addr, {.hdgst = true});               // TCP + ICReq/ICResp
//   auto r = co_await q.connect({.subnqn = ..., .hostnqn = ..., .kato = 0});
//   co_await q.enable();                                   // CC.EN, wait CSTS.RDY
//   auto id = co_await q.identify(nvme::cns::controller, 0, buf);
//
// Commands go one by one (exec), or several outstanding (submit, then wait
// for each), which the AER tests need. The host answers R2T with H2CData
// split by MAXH2CDATA, copies C2HData into the caller's buffer, and returns
// the CQE; a C2HTermReq, a closed connection, a receive timeout or a PDU the
// host cannot accept end the connection and are returned as the outcome.
// Raw mode (send_raw, recv_pdu, expect_closed) is for malformed-PDU tests.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "nvme/command.h"
#include "nvme/fabrics.h"
#include "nvme/identify.h"
#include "nvme/status.h"
#include "nvmf/tcp/pdu.h"
#include "nvmf/tcp/pdu_reader.h"
#include "nvmf/tcp/pdu_writer.h"
#include "runtime/net.h"
#include "runtime/task.h"

namespace weft::test {

namespace tcp = nvmf::tcp;
using bytes = std::vector<std::byte>;
using hostid_t = std::array<uint8_t, 16>;

// How a command (or a wait for a PDU) ended.
enum class outcome {
    completed,       // a CapsuleResp (or C2HData with SUCCESS) came back
    term_req,        // the target sent a C2HTermReq (fes/fei set)
    closed,          // the target closed the connection
    timed_out,       // nothing for the receive timeout
    protocol_error,  // the target sent something a host must not accept
};
std::ostream& operator<<(std::ostream& os, outcome o);

struct cmd_result {
    outcome how = outcome::protocol_error;
    nvme::completion cpl{};
    uint16_t fes = 0;  // C2HTermReq FES
    uint32_t fei = 0;  // C2HTermReq FEI
    std::string detail;

    bool completed() const { return how == outcome::completed; }
    nvme::status status() const { return nvme::status::from_field(cpl.status); }
    bool ok() const { return completed() && status().ok(); }
    uint64_t value() const { return uint64_t(cpl.dw0) | (uint64_t(cpl.dw1) << 32); }
};
std::ostream& operator<<(std::ostream& os, const cmd_result& r);

struct link_options {
    bool hdgst = false;  // ask for header digests
    bool ddgst = false;  // ask for data digests
    uint8_t hpda = 0;
    uint32_t maxr2t = 0;
    std::chrono::milliseconds timeout{5000};  // per receive
};

struct connect_params {
    std::string subnqn;
    std::string hostnqn;
    hostid_t hostid{};
    uint16_t qid = 0;
    uint16_t cntlid = 0xffff;
    uint16_t sqsize = 31;  // 0's based
    uint32_t kato = 0;     // ms
    uint16_t recfmt = 0;
    uint8_t cattr = 0;  // bit 2: disable SQ flow control
};

// How write data travels.
enum class xfer {
    automatic,   // in the capsule up to 8 KiB (the target's ICD), else by R2T
    in_capsule,  // always in the capsule
    r2t,         // always by R2T + H2CData
};

// A PDU as received, header digest and data digest checked.
struct raw_pdu {
    tcp::pdu_type type{};
    bytes raw;  // the whole PDU
    uint32_t data_offset = 0;
    uint32_t data_length = 0;

    std::span<const std::byte> data() const { return {raw.data() + data_offset, data_length}; }
    template <typename T>
    const T& as() const {
        return *reinterpret_cast<const T*>(raw.data());
    }
};

struct recv_result {
    outcome how = outcome::protocol_error;  // completed: `pdu` is valid
    raw_pdu pdu;
    std::string detail;
};

// A command's SQE with its opcode and NSID set, the rest zero.
nvme::command make_cmd(uint8_t opcode, uint32_t nsid = 0);
template <typename Op>
nvme::command make_cmd(Op op, uint32_t nsid = 0) {
    return make_cmd(uint8_t(op), nsid);
}

class host_queue {
  public:
    host_queue();
    ~host_queue();
    host_queue(const host_queue&) = delete;
    host_queue& operator=(const host_queue&) = delete;

    // TCP connect, ICReq, ICResp. False (with last_error()) on failure.
    task<bool> open(socket_address addr, link_options opt = {});
    // TCP connect only, for raw tests that send their own ICReq.
    task<bool> open_tcp(socket_address addr, link_options opt = {});
    const tcp::ic_resp& ic_resp() const { return ic_resp_; }
    const std::string& last_error() const { return error_; }
    // The receive timeout from now on.
    void set_timeout(std::chrono::milliseconds t) { opt_.timeout = t; }
    bool is_open() const { return stream_.is_open(); }
    void close() { stream_.close(); }

    // What the host's PDUs use once the ICReq/ICResp exchange is over.
    const tcp::writer_params& writer() const { return wparams_; }
    uint32_t maxh2cdata() const { return ic_resp_.maxh2cdata.get(); }

    // Sends `cmd` (its CID and, unless `raw_sgl`, its SGL set here) with
    // `out` as host-to-controller data and `in` receiving controller-to-host
    // data. Returns the CID, or -1 when the send failed.
    struct data {
        std::span<const std::byte> out = {};
        std::span<std::byte> in = {};
        xfer how = xfer::automatic;
        bool raw_sgl = false;  // keep the SGL of `cmd`; in-capsule data = `out`
    };
    task<int> submit(nvme::command cmd, data d);
    task<int> submit(nvme::command cmd) { return submit(cmd, data{}); }
    // Receives until command `cid` completes (answering R2Ts on the way).
    task<cmd_result> wait(int cid);
    task<cmd_result> exec(nvme::command cmd, data d);
    task<cmd_result> exec(nvme::command cmd) { return exec(cmd, data{}); }
    // PDUs seen and sent since open().
    struct counters {
        unsigned r2t = 0;
        unsigned h2c_data = 0;
        unsigned c2h_data = 0;
        unsigned capsule_resp = 0;
        uint32_t max_r2tl = 0;
    };
    const counters& stats() const { return stats_; }
    // Whether command `cid` has completed (seen while waiting for another).
    bool completed(int cid) const {
        auto it = pending_.find(uint16_t(cid));
        return it != pending_.end() && it->second.done;
    }

    // Fabrics and admin helpers.
    task<cmd_result> connect(const connect_params& p);
    uint16_t cntlid() const { return cntlid_; }
    task<cmd_result> property_get(uint32_t offset, bool eight_bytes);
    task<cmd_result> property_set(uint32_t offset, uint64_t value);
    // CC.EN = 1 with IOSQES 6 / IOCQES 4, then polls CSTS.RDY (up to ~2 s).
    task<bool> enable();
    task<cmd_result> identify(nvme::cns cns, uint32_t nsid, std::span<std::byte> out);
    task<cmd_result> get_log_page(uint8_t lid, std::span<std::byte> out, uint64_t offset = 0,
                                  bool rae = false);
    task<cmd_result> get_features(uint8_t fid, uint32_t cdw11 = 0, unsigned sel = 0);
    task<cmd_result> set_features(uint8_t fid, uint32_t cdw11, bool save = false);
    task<cmd_result> keep_alive();

    // NVM helpers (512 B or whatever the caller's buffers say).
    task<cmd_result> read(uint32_t nsid, uint64_t slba, uint32_t nlb, std::span<std::byte> in);
    task<cmd_result> write(uint32_t nsid, uint64_t slba, uint32_t nlb,
                           std::span<const std::byte> out, xfer how = xfer::automatic,
                           bool fua = false);

    // Raw mode.
    task<bool> send_raw(std::span<const std::byte> b);
    // The next PDU, whatever its type.
    task<recv_result> recv_pdu();
    // Receives until the target closes (closed), up to `within`; a PDU that
    // comes first is skipped (its type is noted in detail).
    task<outcome> expect_closed(std::chrono::milliseconds within = std::chrono::milliseconds(5000));

  private:
    struct pending {
        data d;
        bool done = false;
        cmd_result res;
    };
    task<bool> handshake();
    task<bool> handle(const raw_pdu& p);  // false: the connection is over (end_ set)
    task<bool> answer_r2t(const raw_pdu& p);
    void end(outcome how, std::string detail, uint16_t fes = 0, uint32_t fei = 0);

    tcp_stream stream_;
    link_options opt_;
    tcp::reader_params rparams_;
    tcp::writer_params wparams_;
    tcp::ic_resp ic_resp_{};
    std::unique_ptr<tcp::send_batch> batch_;
    bytes rx_;
    size_t have_ = 0;
    uint16_t next_cid_ = 1;
    uint16_t cntlid_ = 0;
    std::map<uint16_t, pending> pending_;
    counters stats_;
    bool ended_ = false;
    cmd_result end_;  // why the connection is over
    std::string error_;
};

// A controller as a host sees it: an admin queue and, optionally, one I/O queue.
struct session {
    host_queue admin;
    host_queue io;
};
// Opens the admin queue (Connect with `p`, CC.EN) and, when `with_io`, I/O
// queue 1 to the same controller. False on any failure (reported by EXPECTs).
task<bool> open_session(session& s, socket_address addr, connect_params p, bool with_io = true,
                        link_options opt = {});

// A wire structure read from `b` at `off` (memcpy: no alignment needed).
template <typename T>
T load(std::span<const std::byte> b, size_t off = 0) {
    T v;
    std::memcpy(&v, b.data() + off, sizeof v);
    return v;
}

// Bytes filled with a pattern that differs per seed and per offset.
bytes pattern(size_t n, unsigned seed);
bool all_zero(std::span<const std::byte> b);

}  // namespace weft::test

// g++ 12.2 was seen to miscompile coroutines whose co_await sits directly in
// an if/while/switch condition (`if (!co_await f()) co_return false;` as the
// first statement): the ramp starts the frame 8 bytes off the handle that is
// resumed later, which hangs or hits ud2. Every co_await in these tests is
// therefore a declaration's initializer or a statement of its own; the
// macros below keep that shape.

// A command succeeded (and the test goes on either way).
#define CO_EXPECT_OK(res)                                 \
    do {                                                  \
        const ::weft::test::cmd_result& ex_r_ = (res);    \
        EXPECT_TRUE(ex_r_.ok()) << #res << ": " << ex_r_; \
    } while (0)
// A command completed with status `st` (and the test goes on either way).
#define EXPECT_STATUS(res, st)                                           \
    do {                                                                 \
        const ::weft::test::cmd_result& ex_r_ = (res);                   \
        EXPECT_EQ(ex_r_.how, ::weft::test::outcome::completed) << ex_r_; \
        EXPECT_EQ(ex_r_.status(), (st)) << ex_r_;                        \
    } while (0)
// A command succeeded, or the coroutine test ends here.
#define CO_ASSERT_OK(res)                                 \
    do {                                                  \
        const ::weft::test::cmd_result& co_r_ = (res);    \
        EXPECT_TRUE(co_r_.ok()) << #res << ": " << co_r_; \
        if (!co_r_.ok()) co_return;                       \
    } while (0)

namespace weft::nvme {
// For gtest's messages.
std::ostream& operator<<(std::ostream& os, const status& s);
}  // namespace weft::nvme
