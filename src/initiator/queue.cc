#include "initiator/queue.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "bdev/iov.h"
#include "nvme/fabrics.h"
#include "nvmf/tcp/direct_data.h"
#include "nvmf/tcp/rx_buffer.h"
#include "runtime/foreign_call.h"
#include "runtime/reactor.h"
#include "runtime/uring_op.h"

namespace weft::initiator {

namespace tcp = nvmf::tcp;
using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct queue::pending {
    nvme::command cmd{};
    std::span<const iovec> out, in;
    uint32_t out_len = 0, in_len = 0;
    bool in_capsule = false;
    bool internal = false;  // Connect/Disconnect on the reserved CID
    clock::time_point deadline;
    uint64_t sent_gen = 0;  // the connection its capsule went out on
    bool data_error = false;
    bool timed_out = false;
    bool done = false;
    std::optional<result<nvme::completion>> res;
    std::coroutine_handle<> waiter;
};

struct queue::sent_awaiter {
    queue* q;
    uint64_t gen;
    bool await_ready() const { return q->sent_gen_ >= gen || q->send_failed_ || q->conn_down_; }
    void await_suspend(std::coroutine_handle<> h) { q->send_waiters_.push_back({gen, h}); }
    void await_resume() const {}
};

namespace {

uint32_t iov_length(std::span<const iovec> iov) {
    auto n = bdev::iov_total(iov);
    return n && *n <= UINT32_MAX ? uint32_t(*n) : UINT32_MAX;
}

// The iovecs covering [off, off + len) of `iov`.
void slice(std::span<const iovec> iov, size_t off, size_t len, std::vector<iovec>& out) {
    out.clear();
    for (const iovec& v : iov) {
        if (len == 0) break;
        if (off >= v.iov_len) {
            off -= v.iov_len;
            continue;
        }
        size_t n = std::min(v.iov_len - off, len);
        out.push_back({static_cast<char*>(v.iov_base) + off, n});
        len -= n;
        off = 0;
    }
}

// Connect's refusal as an errno the caller can act on.
error connect_error(nvme::status s) {
    if (s.is(nvme::sc::connect_invalid_host)) return error{EACCES};
    if (s.is(nvme::sc::connect_invalid_parameters)) return error{EINVAL};
    if (s.is(nvme::sc::connect_controller_busy)) return error{EBUSY};
    return error{EPROTO};
}

}  // namespace

const char* to_string(queue::state s) {
    switch (s) {
        case queue::state::connecting:
            return "connecting";
        case queue::state::live:
            return "live";
        case queue::state::recovering:
            return "recovering";
        case queue::state::closing:
            return "closing";
        case queue::state::failed:
            return "failed";
        case queue::state::closed:
            return "closed";
    }
    return "?";
}

bool idempotent(const nvme::command& cmd, uint16_t qid) {
    if (qid == 0) return false;
    switch (nvme::io_opcode(cmd.opcode)) {
        case nvme::io_opcode::read:
        case nvme::io_opcode::write:
        case nvme::io_opcode::flush:
        case nvme::io_opcode::write_zeroes:
        case nvme::io_opcode::dataset_management:
        case nvme::io_opcode::compare:
        case nvme::io_opcode::verify:
            return true;
        default:
            return false;
    }
}

queue::queue(queue_options opt)
    : opt_(std::move(opt)),
      reactor_(reactor::local().id()),
      queued_(std::make_unique<tcp::send_batch>()),
      sending_(std::make_unique<tcp::send_batch>()) {
    if (opt_.depth == 0) opt_.depth = 1;
    slots_.assign(size_t(opt_.depth) + 1, nullptr);
    for (uint16_t c = opt_.depth; c-- > 0;) free_cids_.push_back(c);
}

queue::~queue() = default;

void queue::set_state(state s, const char* why) {
    if (s == state_) return;
    spdlog::debug("initiator queue {} of {} (controller {}): {} -> {} ({})", opt_.qid, opt_.subnqn,
                  cntlid_, to_string(state_), to_string(s), why);
    state_ = s;
}

void queue::set_max_c2h_data(uint32_t bytes) {
    opt_.max_c2h_data = bytes;
    rparams_.max_data = bytes;
}

// Not a coroutine: the options move into the queue before anything can
// suspend (GCC 12 mishandled a by-value coroutine parameter moved from a
// lambda capture: the queue read freed strings).
task<result<std::unique_ptr<queue>>> queue::connect(queue_options opt) {
    return start(new queue(std::move(opt)));
}

task<result<std::unique_ptr<queue>>> queue::start(queue* raw) {
    std::unique_ptr<queue> q(raw);
    reactor::local().spawn(q->watchdog_gate_.hold(q->watchdog()));
    auto r = co_await q->establish();
    if (!r) {
        q->set_state(state::failed, "connect failed");
        co_await q->close();
        co_return r.err();
    }
    q->set_state(state::live, "connected");
    co_return std::move(q);
}

// ---- connection -------------------------------------------------------------

task<result<void>> queue::ic_exchange() {
    std::byte buf[sizeof(tcp::ic_req)];
    uint8_t dgst = (opt_.header_digest ? tcp::digest_bits::header : 0) |
                   (opt_.data_digest ? tcp::digest_bits::data : 0);
    // MAXR2T 15 (0's based): the target may keep 16 R2Ts per command open.
    size_t n = tcp::encode_ic_req(buf, 0, dgst, 15);
    auto sent = co_await tcp::send_bytes(stream_, tls_.get(), std::span<const std::byte>(buf, n));
    if (!sent) co_return sent.err();
    tcp::reader_params rp{.receiver = tcp::side::initiator};
    size_t have = 0;
    for (;;) {
        int got = co_await tcp::recv_some(stream_, tls_.get(), std::span(buf).subspan(have),
                                          nullptr, opt_.connect_timeout);
        if (got <= 0) co_return error{got == 0 ? ECONNRESET : -got};
        have += size_t(got);
        auto res = tcp::parse({buf, have}, rp);
        if (std::holds_alternative<tcp::need_more>(res)) continue;
        auto* pdu = std::get_if<tcp::pdu_view>(&res);
        if (!pdu || pdu->type != tcp::pdu_type::ic_resp) co_return error{EPROTO};
        auto& r = pdu->as<tcp::ic_resp>();
        uint32_t maxh2c = r.maxh2cdata.get();
        // The target may only grant digests we asked for.
        if (r.pfv.get() != tcp::pfv_1_0 || r.cpda > tcp::max_pda || (r.dgst & ~dgst) != 0 ||
            maxh2c < tcp::min_maxh2cdata || maxh2c % 4 != 0)
            co_return error{EPROTO};
        maxh2cdata_ = maxh2c;
        tcp::writer_params wp{.hdgst = bool(r.dgst & tcp::digest_bits::header),
                              .ddgst = bool(r.dgst & tcp::digest_bits::data),
                              .pda = r.cpda};
        queued_->clear();
        sending_->clear();
        queued_->set_params(wp);
        sending_->set_params(wp);
        rparams_ = {.receiver = tcp::side::initiator,
                    .connected = true,
                    .hdgst = wp.hdgst,
                    .ddgst = wp.ddgst,
                    .pda = 0,
                    .max_data = opt_.max_c2h_data};
        co_return result<void>{};
    }
}

task<result<void>> queue::establish() {
    ++conn_gen_;
    auto s = co_await tcp_stream::connect(opt_.address, opt_.connect_timeout);
    if (!s) co_return s.err();
    stream_ = std::move(s.value());
    tls_.reset();
    if (opt_.tls) {
        tls_ = tcp::tls_channel::client(opt_.tls);
        int rc = co_await tls_->handshake(stream_, opt_.connect_timeout, nullptr);
        if (rc != 0) {
            spdlog::info("initiator queue {} of {}: TLS handshake failed: {}", opt_.qid,
                         opt_.subnqn, rc == -ETIMEDOUT ? "timed out" : tls_->failure());
            stream_.close();
            // A target that ends the connection during the handshake
            // (Linux's tlshd, for an identity it has no key for) refused
            // the key too.
            if (rc == -EACCES || rc == -ECONNRESET || rc == -EPIPE) {
                if (opt_.tls_refused) *opt_.tls_refused = true;
                co_return error{EKEYREJECTED};
            }
            co_return error{-rc};
        }
    }
    auto ic = co_await ic_exchange();
    if (!ic) {
        stream_.close();
        co_return ic.err();
    }
    queued_gen_ = 1;
    sent_gen_ = 0;
    send_failed_ = false;
    conn_stop_ = std::make_unique<abort_source>();
    conn_loops_ = std::make_unique<gate>();
    conn_down_ = false;
    reactor::local().spawn(conn_loops_->hold(receiver(conn_gen_)));
    reactor::local().spawn(conn_loops_->hold(flusher(conn_gen_)));

    // Fabrics Connect (NVMe-oF 1.1, 3.3) with its 1 KiB of data in the capsule.
    nvme::connect_command cc{};
    cc.opcode = uint8_t(nvme::admin_opcode::fabrics);
    cc.fctype = uint8_t(nvme::fabrics_type::connect);
    cc.qid = opt_.qid;
    // SQSIZE 0 (a queue of one entry) is invalid: depth 1 asks for two
    // entries and keeps one command in flight.
    cc.sqsize = uint16_t(std::max<uint16_t>(opt_.depth, 2) - 1);
    cc.kato = opt_.qid == 0 ? opt_.kato_ms : 0;
    nvme::connect_data cd{};
    std::memcpy(cd.hostid, opt_.hostid.data(), 16);
    cd.cntlid = opt_.qid == 0 ? 0xffff : opt_.cntlid;
    nvme::set_nqn(cd.subnqn, opt_.subnqn);
    nvme::set_nqn(cd.hostnqn, opt_.hostnqn);
    pending p;
    std::memcpy(&p.cmd, &cc, sizeof cc);
    p.internal = true;
    iovec iov{&cd, sizeof cd};
    p.out = {&iov, 1};
    p.deadline = clock::now() + opt_.connect_timeout;
    auto r = co_await run(p);
    if (r && nvme::status::from_field(r->status).ok()) {
        cntlid_ = uint16_t(r->dw0 & 0xffff);
        connect_status_ = {};
        result<void> a;
        if (opt_.concat_psk) {
            if (r->dw0 & (nvme::auth::connect_authreq_atr | nvme::auth::connect_authreq_ascr)) {
                a = co_await authenticate();
            } else {
                spdlog::warn(
                    "initiator: {} did not ask host {} to authenticate: no TLS key can be "
                    "made for secure channel concatenation",
                    opt_.subnqn, opt_.hostnqn);
                a = error{EPROTO};
            }
        } else if (r->dw0 & nvme::auth::connect_authreq_ascr) {
            spdlog::warn(
                "initiator: {} requires a secure channel (TLS), which this host does not "
                "offer yet",
                opt_.subnqn);
            a = error{EPROTONOSUPPORT};
        } else if (r->dw0 & nvme::auth::connect_authreq_atr) {
            a = co_await authenticate();
        } else if (opt_.qid == 0 && !opt_.tls && opt_.dhchap && opt_.dhchap->ctrl_key &&
                   opt_.subnqn != nvme::discovery_nqn) {
            // We were to check the controller's identity and it did not
            // offer to prove it: it may not be the one we meant. Its I/O
            // queues may go without (Linux 7.x's nvmet authenticates only
            // the admin queue, which proved the controller), and so may a
            // queue under TLS: the handshake proved the target holds the
            // PSK (configured, or generated by an exchange that proved it).
            spdlog::warn(
                "initiator: {} did not ask to authenticate, and a controller secret was "
                "given: refusing a controller that does not prove itself",
                opt_.subnqn);
            a = error{EKEYREJECTED};
        }
        if (a) co_return result<void>{};
        lost("authentication failed");
        co_await conn_loops_->close();
        stream_.close();
        co_return a.err();
    }
    error e = r ? connect_error(nvme::status::from_field(r->status)) : r.err();
    if (r) {
        connect_status_ = nvme::status::from_field(r->status);
        spdlog::warn("initiator: {} refused Connect of queue {} from {}: sct {} sc {:#x} ({})",
                     opt_.subnqn, opt_.qid, opt_.hostnqn, int(connect_status_.type),
                     connect_status_.code, e.message());
    }
    lost("connect failed");
    co_await conn_loops_->close();
    stream_.close();
    co_return e;
}

task<result<void>> queue::auth_command(bool send, std::span<uint8_t> data) {
    pending p;
    p.cmd = nvme::auth::make_command(send, uint32_t(data.size()));
    p.internal = true;
    iovec iov{data.data(), data.size()};
    (send ? p.out : p.in) = {&iov, 1};
    p.deadline = clock::now() + opt_.connect_timeout;
    auto r = co_await run(p);
    if (!r) co_return r.err();
    auto st = nvme::status::from_field(r->status);
    if (!st.ok()) {
        spdlog::warn("initiator: {} failed Authentication {} on queue {}: sct {} sc {:#x}",
                     opt_.subnqn, send ? "Send" : "Receive", opt_.qid, int(st.type), st.code);
        co_return error{EPROTO};
    }
    co_return result<void>{};
}

namespace {
// dhchap_host's errors as connect's (queue.h).
error auth_error(error e) {
    if (e.code == EACCES) return error{EKEYREJECTED};
    if (e.code == ENOPROTOOPT) return e;
    return error{EPROTO};
}
}  // namespace

task<result<void>> queue::authenticate() {
    if (!opt_.dhchap) {
        spdlog::warn(
            "initiator: {} requires in-band authentication (DH-HMAC-CHAP) of {}, and no "
            "secret was given",
            opt_.subnqn, opt_.hostnqn);
        co_return error{ENOKEY};
    }
    dhchap_host_options ho = *opt_.dhchap;
    if (opt_.concat_psk) ho.sc_c = nvme::auth::sc_c_newtlspsk;
    dhchap_host h(std::move(ho), opt_.hostnqn, opt_.subnqn, opt_.qid);
    std::string why;
    auto fail = [&](const std::string& s) {
        spdlog::warn("initiator: authentication of queue {} to {} failed: {}", opt_.qid,
                     opt_.subnqn, s);
    };
    auto neg = h.negotiate();
    auto r = co_await auth_command(true, neg);
    if (!r) co_return r.err();
    std::vector<uint8_t> buf(4096);
    r = co_await auth_command(false, buf);
    if (!r) co_return r.err();
    // Its Diffie-Hellman computation (up to ~0.1 s) runs off the reactor.
    std::optional<result<std::vector<uint8_t>>> made;
    co_await in_thread([&] {
        try {
            made.emplace(h.reply(buf, &why));
        } catch (const std::exception& e) {  // OpenSSL failed us
            why = e.what();
            made.emplace(error{EPROTO});
        }
    });
    auto& reply = *made;
    if (!reply) {
        fail(why);
        co_return auth_error(reply.err());
    }
    r = co_await auth_command(true, *reply);
    if (!r) co_return r.err();
    std::fill(buf.begin(), buf.end(), 0);
    r = co_await auth_command(false, buf);
    if (!r) co_return r.err();
    auto more = h.success1(buf, &why);
    if (!more) {
        fail(why);
        if (more.err().code == EACCES && buf[1] == uint8_t(nvme::auth::message::success1)) {
            auto f2 = h.failure2(nvme::auth::failure::failed);
            (void)co_await auth_command(true, f2);
        }
        co_return auth_error(more.err());
    }
    if (*more) {
        auto s2 = h.success2();
        r = co_await auth_command(true, s2);
        if (!r) co_return r.err();
    }
    if (opt_.concat_psk) {
        auto psk = h.tls_psk();
        if (!psk) {
            fail("no TLS key from the exchange");
            co_return error{EPROTO};
        }
        *opt_.concat_psk = std::make_shared<const auth::derived_psk>(std::move(psk.value()));
    }
    spdlog::debug("initiator: queue {} of {} authenticated ({}, {})", opt_.qid, opt_.subnqn,
                  auth::hash_name(h.hash()), auth::dh_group_name(h.group()));
    co_return result<void>{};
}

void queue::lost(const char* why) {
    if (conn_down_) return;
    conn_down_ = true;
    if (state_ == state::closed)
        spdlog::debug("initiator queue {} of {}: closed", opt_.qid, opt_.subnqn);
    else
        spdlog::info("initiator queue {} of {}: connection lost: {}", opt_.qid, opt_.subnqn, why);
    // Wakes the receive loop (recv returns 0) and a sendmsg stuck on a full socket.
    if (stream_.is_open()) ::shutdown(stream_.fd(), SHUT_RDWR);
    if (conn_stop_) conn_stop_->request_abort();
    wake_flusher();
    // Connect/Disconnect's frame outlives the connection's loops (its caller
    // waits for them), so it may complete now.
    if (pending* p = slots_.back(); p && !p->done)
        complete(*p, error{p->timed_out ? ETIMEDOUT : ECONNRESET});
    if (state_ == state::live) {
        set_state(state::recovering, why);
        reactor::local().spawn(recovery_gate_.hold(recover()));
    }
}

task<void> queue::recover() {
    // Nothing may touch a command's buffers while the old loops still run.
    co_await conn_loops_->close();
    stream_.close();
    fail_timed_out();
    // Those may or may not have run: only the caller can decide.
    fail_where([](const pending& p) { return !p.internal && !idempotent(p.cmd, 1); },
               error{ECONNRESET});
    if (opt_.reconnect_attempts == 0 || opt_.qid == 0 || closing_) {
        fail_where([](const pending&) { return true; }, error{ECONNRESET});
        set_state(state::failed, "connection lost, no reconnect");
        co_return;
    }
    auto delay = opt_.reconnect_delay;
    for (unsigned attempt = 1; attempt <= opt_.reconnect_attempts && !closing_; ++attempt) {
        int slept = co_await sleep(delay).abort_with(reconnect_stop_);
        if (slept == -ECANCELED) break;
        fail_timed_out();
        if (closing_) break;
        auto r = co_await establish();
        if (r) {
            ++stats_.reconnects;
            spdlog::info("initiator queue {} of {}: reconnected (attempt {})", opt_.qid,
                         opt_.subnqn, attempt);
            set_state(state::live, "reconnected");
            // Commands submitted since send themselves; send_command skips
            // any already sent on this connection.
            for (size_t cid = 0; cid + 1 < slots_.size(); ++cid) {
                pending* p = slots_[cid];
                if (!p || p->done || state_ != state::live) continue;
                if (p->sent_gen != 0) ++stats_.resubmitted;
                co_await send_command(*p);
            }
            co_return;
        }
        spdlog::info("initiator queue {} of {}: reconnect attempt {} failed: {}", opt_.qid,
                     opt_.subnqn, attempt, r.err().message());
        delay = std::min<std::chrono::milliseconds>(delay * 2, 2s);
    }
    fail_where([](const pending&) { return true; }, error{ENOTCONN});
    set_state(state::failed, "reconnect failed");
}

// ---- receive side -----------------------------------------------------------

task<void> queue::receiver(uint64_t gen) {
    tcp::rx_buffer rx;
    bool after_direct = false;
    while (!conn_down_ && conn_gen_ == gen) {
        int n;
        if (tls_)
            n = co_await tls_->recv(stream_, rx.free_space(), conn_stop_.get());
        else
            n = co_await stream_.recv(tcp::recv_space(rx, after_direct)).abort_with(*conn_stop_);
        if (n <= 0) {
            lost(n == 0 ? "the target closed the connection" : "receive failed");
            break;
        }
        rx.filled(size_t(n));
        after_direct = false;
        unsigned budget = 0;
        while (!conn_down_) {
            auto res = tcp::parse(rx.unread(), rparams_);
            if (auto* more = std::get_if<tcp::need_more>(&res)) {
                const size_t min = tls_ ? tcp::direct_data_off : opt_.direct_data_min;
                auto big = tcp::direct_data_header(rx.unread(), rparams_, *more,
                                                   tcp::pdu_type::c2h_data, min);
                const pending* p = big ? find(big->cccid()) : nullptr;
                if (big && p && !p->internal) {
                    bool taken = co_await receive_c2h_data(*big, rx);
                    if (!taken) break;
                    after_direct = true;
                    continue;
                }
                if (big && !p) {
                    c2h_data_command(*big);  // drops the connection, saying why
                    break;
                }
                // Not into Connect's or authentication's frames, which may end
                // before this loop does: through the buffer, whole. Bounded by
                // the reader: max_c2h_data plus headers.
                rx.need(big ? more->total
                            : tcp::receive_room(rx.unread(), rx.capacity(), *more,
                                                tcp::pdu_type::c2h_data, min));
                break;
            }
            if (auto* pdu = std::get_if<tcp::pdu_view>(&res)) {
                if (pdu->type == tcp::pdu_type::r2t) {
                    auto& r = pdu->as<tcp::r2t>();
                    const bool answered = co_await answer_r2t(r.cccid.get(), r.ttag.get(),
                                                              r.r2to.get(), r.r2tl.get());
                    if (!answered) break;
                } else if (!handle_pdu(*pdu)) {
                    break;
                }
                rx.consume(pdu->size);
            } else if (auto* dd = std::get_if<tcp::data_digest_error>(&res)) {
                // The command fails with a transient transport error status.
                spdlog::warn("initiator queue {}: data digest error (cid {})", opt_.qid, dd->cccid);
                pending* p = c2h_data_command(dd->pdu);  // only C2HData carries data here
                if (!p) break;
                p->data_error = true;
                c2h_data_done(*p, dd->pdu.as<tcp::c2h_data>().ch.flags);
                rx.consume(dd->pdu.size);
            } else {
                auto& f = std::get<tcp::fatal_error>(res);
                if (f.reply) {
                    auto bad = rx.unread().first(f.header_bytes);
                    std::vector<std::byte> hdr(bad.begin(), bad.end());
                    co_await fatal(f.status, f.fei, hdr);
                } else {
                    lost("the target sent a malformed C2HTermReq");
                }
                break;
            }
            // Bounded: yield now and then so other queues on this reactor run.
            if (++budget % 64 == 0) co_await yield{};
        }
        rx.compact();
        // Sends first, as the target does (nvmf/tcp_queue.cc): the callers
        // resumed here submit on the next pass and the flusher sends on the
        // one after, ahead of this recv and in the same io_uring_enter.
        if ((budget > 0 || after_direct) && !conn_down_ && opt_.sends_first) {
            co_await yield{};
            if (!queued_->empty()) co_await yield{};
        }
    }
}

queue::pending* queue::find(uint16_t cid) {
    pending* p = cid < slots_.size() ? slots_[cid] : nullptr;
    return p && !p->done ? p : nullptr;
}

bool queue::handle_pdu(const tcp::pdu_view& pdu) {
    switch (pdu.type) {
        case tcp::pdu_type::capsule_resp: {
            nvme::completion cpl;
            std::memcpy(&cpl, pdu.as<tcp::capsule_resp>().cqe, sizeof cpl);
            pending* p = find(cpl.cid);
            if (!p) {
                lost("CapsuleResp for a command not in flight");
                return false;
            }
            if (p->data_error && nvme::status::from_field(cpl.status).ok())
                cpl.status = nvme::sc::transient_transport_error.field();
            complete(*p, cpl);
            return true;
        }
        case tcp::pdu_type::c2h_data: {
            pending* p = c2h_data_command(pdu);
            if (!p) return false;
            auto& h = pdu.as<tcp::c2h_data>();
            bdev::iov_cursor cur{p->in};
            cur.advance(h.datao.get());
            cur.scatter(pdu.data.data(), pdu.data.size());
            c2h_data_done(*p, h.ch.flags);
            return true;
        }
        case tcp::pdu_type::c2h_term_req: {
            auto& t = pdu.as<tcp::term_req>();
            spdlog::warn("initiator queue {} of {}: target sent C2HTermReq, FES {:#x} FEI {}",
                         opt_.qid, opt_.subnqn, t.fes.get(), t.fei.get());
            lost("the target terminated the connection");
            return false;
        }
        default:
            lost("unexpected PDU");
            return false;
    }
}

queue::pending* queue::c2h_data_command(const tcp::pdu_view& pdu) {
    auto& h = pdu.as<tcp::c2h_data>();
    pending* p = find(h.cccid.get());
    uint64_t end = uint64_t(h.datao.get()) + h.datal.get();
    if (!p || p->in_len == 0 || end > p->in_len) {
        lost("C2HData outside of a read's buffer");
        return nullptr;
    }
    return p;
}

void queue::c2h_data_done(pending& p, uint8_t flags) {
    if (flags & tcp::pdu_flags::success) {
        // The command succeeded and no CapsuleResp follows.
        nvme::completion cpl{};
        cpl.cid = p.cmd.cid;
        cpl.sqid = opt_.qid;
        if (p.data_error) cpl.status = nvme::sc::transient_transport_error.field();
        complete(p, cpl);
    }
}

task<bool> queue::receive_c2h_data(const tcp::pdu_view& pdu, tcp::rx_buffer& rx) {
    pending* p = c2h_data_command(pdu);
    if (!p) co_return false;
    auto& h = pdu.as<tcp::c2h_data>();
    const uint8_t flags = h.ch.flags;  // the header's bytes go with the receive
    std::vector<iovec> dest;
    slice(p->in, h.datao.get(), h.datal.get(), dest);
    // The command's buffers stay while this loop runs: a timeout or a lost
    // connection fails it only once the connection's loops have ended (not
    // so Connect's and authentication's, which never come here).
    auto got = co_await tcp::receive_data(stream_, rx, pdu, dest, *conn_stop_);
    if (got == tcp::data_received::lost || conn_down_) {
        lost("receive failed");
        co_return false;
    }
    ++stats_.direct_data;
    if (got == tcp::data_received::digest_mismatch) {
        spdlog::warn("initiator queue {}: data digest error (cid {})", opt_.qid, p->cmd.cid);
        p->data_error = true;
    }
    c2h_data_done(*p, flags);
    co_return true;
}

task<bool> queue::answer_r2t(uint16_t cid, uint16_t ttag, uint32_t off, uint32_t len) {
    pending* p = find(cid);
    if (!p || p->out_len == 0 || p->in_capsule || len == 0 || uint64_t(off) + len > p->out_len) {
        lost("R2T outside of a write's data");
        co_return false;
    }
    // H2CData PDUs of at most MAXH2CDATA; the batch copies the iovecs.
    std::vector<iovec> chunk;
    for (uint32_t done = 0; done < len;) {
        uint32_t n = std::min(len - done, maxh2cdata_);
        slice(p->out, off + done, n, chunk);
        bool last = done + n == len;
        bool ok = co_await enqueue(
            [&](tcp::send_batch& b) { return b.add_h2c_data(cid, ttag, off + done, chunk, last); });
        if (!ok) co_return false;
        done += n;
    }
    co_return true;
}

task<void> queue::fatal(tcp::fes status, uint32_t fei, std::span<const std::byte> header) {
    spdlog::warn("initiator queue {}: fatal transport error {:#x} at byte {}, sending H2CTermReq",
                 opt_.qid, unsigned(status), fei);
    co_await enqueue([&](tcp::send_batch& b) {
        return b.add_term_req(tcp::pdu_type::h2c_term_req, status, fei, header);
    });
    co_await wait_sent(queued_gen_);
    lost("fatal transport error");
}

// ---- commands ---------------------------------------------------------------

task<result<nvme::completion>> queue::submit(const nvme::command& cmd,
                                             std::span<const iovec> data_out,
                                             std::span<const iovec> data_in) {
    if (closing_ || state_ == state::failed || state_ == state::closed) co_return error{ENOTCONN};
    if (!data_out.empty() && !data_in.empty()) co_return error{EINVAL};
    ++inflight_;
    struct leave {
        queue* q;
        ~leave() {
            if (--q->inflight_ == 0 && q->idle_waiter_)
                reactor::local().schedule(std::exchange(q->idle_waiter_, {}));
        }
    } leave_guard{this};
    struct cid_awaiter {
        queue* q;
        bool await_ready() const { return !q->free_cids_.empty(); }
        void await_suspend(std::coroutine_handle<> h) { q->cid_waiters_.push_back(h); }
        void await_resume() const {}
    };
    while (free_cids_.empty()) {
        co_await cid_awaiter{this};
        if (closing_ || state_ == state::failed) co_return error{ENOTCONN};
    }
    pending p;
    p.cmd = cmd;
    p.cmd.cid = free_cids_.back();
    free_cids_.pop_back();
    p.out = data_out;
    p.in = data_in;
    p.deadline = clock::now() + opt_.command_timeout;
    ++stats_.submitted;
    co_return co_await run(p);
}

task<result<nvme::completion>> queue::run(pending& p) {
    p.out_len = iov_length(p.out);
    p.in_len = iov_length(p.in);
    if (p.out_len == UINT32_MAX || p.in_len == UINT32_MAX) {
        if (!p.internal) free_cids_.push_back(p.cmd.cid);
        co_return error{EINVAL};
    }
    if (p.internal) p.cmd.cid = opt_.depth;
    // SGL data pointer (PSDT 01b); in-capsule data at offset 0 (ICDOFF 0).
    p.cmd.flags = uint8_t((p.cmd.flags & ~0xc0) | 0x40);
    p.cmd.sgl = {};
    uint32_t len = p.out_len ? p.out_len : p.in_len;
    p.in_capsule = p.out_len > 0 && p.out_len <= opt_.max_icd;
    p.cmd.sgl.length = len;
    p.cmd.sgl.type = p.in_capsule ? nvme::sgl_type::in_capsule : nvme::sgl_type::transport;
    slots_[p.cmd.cid] = &p;
    if (state_ == state::live || p.internal) co_await send_command(p);
    struct done_awaiter {
        pending* p;
        bool await_ready() const { return p->done; }
        void await_suspend(std::coroutine_handle<> h) { p->waiter = h; }
        void await_resume() const {}
    };
    co_await done_awaiter{&p};
    co_return std::move(*p.res);
}

task<void> queue::send_command(pending& p) {
    if (conn_down_ || p.done || p.sent_gen == conn_gen_) co_return;
    p.sent_gen = conn_gen_;
    p.data_error = false;
    auto sqe = std::as_bytes(std::span<const nvme::command, 1>(&p.cmd, 1));
    std::span<const std::byte, 64> sqe64(sqe.data(), 64);
    co_await enqueue([&](tcp::send_batch& b) {
        return b.add_capsule_cmd(sqe64, p.in_capsule ? p.out : std::span<const iovec>{});
    });
    // A failed enqueue means the connection went down: recover() resends.
}

void queue::complete(pending& p, result<nvme::completion> r) {
    if (p.done) return;
    p.done = true;
    p.res.emplace(std::move(r));
    uint16_t cid = p.cmd.cid;
    if (cid < slots_.size() && slots_[cid] == &p) {
        slots_[cid] = nullptr;
        if (!p.internal) {
            free_cids_.push_back(cid);
            if (!cid_waiters_.empty()) {
                reactor::local().schedule(cid_waiters_.front());
                cid_waiters_.pop_front();
            }
        }
    }
    if (p.waiter) reactor::local().schedule(std::exchange(p.waiter, {}));
}

void queue::fail_where(bool (*pred)(const pending&), error e) {
    for (pending* p : slots_) {
        if (p && !p->done && pred(*p)) {
            ++stats_.failed_on_drop;
            complete(*p, e);
        }
    }
}

void queue::fail_timed_out() {
    for (pending* p : slots_)
        if (p && !p->done && p->timed_out) complete(*p, error{ETIMEDOUT});
}

task<void> queue::watchdog() {
    auto tick = std::clamp<std::chrono::milliseconds>(opt_.command_timeout / 4, 5ms, 1000ms);
    for (;;) {
        int slept = co_await sleep(tick).abort_with(bg_stop_);
        if (slept == -ECANCELED) break;
        auto now = clock::now();
        for (pending* p : slots_) {
            if (!p || p->done || p->timed_out || now < p->deadline) continue;
            p->timed_out = true;
            ++stats_.timeouts;
            spdlog::warn(
                "initiator queue {} of {}: command {:#x} (cid {}) timed out; "
                "tearing the connection down",
                opt_.qid, opt_.subnqn, p->cmd.opcode, p->cmd.cid);
            if (conn_down_) {
                // Connect/Disconnect frames outlive the loops; a command's
                // buffers may still be on the wire: recover() fails it once
                // the old loops are gone.
                if (p->internal || state_ != state::recovering) complete(*p, error{ETIMEDOUT});
            } else {
                lost("command timed out");
            }
        }
    }
}

// ---- close ------------------------------------------------------------------

task<void> queue::close() {
    closing_ = true;
    reconnect_stop_.request_abort();  // a reconnect backoff ends now
    while (!cid_waiters_.empty()) {
        reactor::local().schedule(cid_waiters_.front());
        cid_waiters_.pop_front();
    }
    struct idle_awaiter {
        queue* q;
        bool await_ready() const { return q->inflight_ == 0; }
        void await_suspend(std::coroutine_handle<> h) { q->idle_waiter_ = h; }
        void await_resume() const {}
    };
    co_await idle_awaiter{this};
    co_await recovery_gate_.close();
    if (state_ == state::live && opt_.qid != 0) {
        // Disconnect (NVMe-oF 1.1, 3.x): the target frees the queue at once.
        set_state(state::closing, "close");
        pending p;
        p.cmd.opcode = uint8_t(nvme::io_opcode::fabrics);
        p.cmd.nsid = uint8_t(nvme::fabrics_type::disconnect);
        p.internal = true;
        p.deadline = clock::now() + opt_.connect_timeout;
        (void)co_await run(p);  // bounded by the watchdog
    }
    set_state(state::closed, "close");
    lost("closed");
    if (conn_loops_) co_await conn_loops_->close();
    bg_stop_.request_abort();
    co_await watchdog_gate_.close();
    stream_.close();
}

// ---- send side --------------------------------------------------------------

queue::sent_awaiter queue::wait_sent(uint64_t gen) {
    return {this, gen};
}

template <typename Add>
task<bool> queue::enqueue(Add add) {
    uint64_t conn = conn_gen_;
    for (;;) {
        if (conn_down_ || send_failed_ || conn_gen_ != conn) co_return false;
        // The writer adds a whole PDU or nothing.
        if (add(*queued_)) {
            wake_flusher();
            co_return true;
        }
        if (queued_->empty()) co_return false;  // does not fit even alone
        uint64_t gen = queued_gen_;
        wake_flusher();
        co_await wait_sent(gen);
    }
}

void queue::wake_flusher() {
    if (flusher_wait_) reactor::local().schedule(std::exchange(flusher_wait_, {}));
}

task<void> queue::flusher(uint64_t gen) {
    for (;;) {
        if (conn_down_ || conn_gen_ != gen) break;
        if (queued_->empty()) {
            struct wait {
                queue* q;
                bool await_ready() const { return false; }
                void await_suspend(std::coroutine_handle<> h) { q->flusher_wait_ = h; }
                void await_resume() const {}
            };
            co_await wait{this};
            continue;
        }
        // Everything queued in this reactor pass goes out in one sendmsg.
        // Never zero-copy: a command may complete (and its buffers go back
        // to the caller) before a zero-copy notification arrives.
        std::swap(queued_, sending_);
        uint64_t g = queued_gen_++;
        ++stats_.sends;
        auto r = co_await sending_->flush(stream_, false, tls_.get());
        if (!r) {
            send_failed_ = true;
            lost("send failed");
        }
        sent_gen_ = g;
        std::vector<send_waiter> ready;
        std::erase_if(send_waiters_, [&](const send_waiter& w) {
            if (w.gen > sent_gen_ && !send_failed_) return false;
            ready.push_back(w);
            return true;
        });
        for (auto& w : ready) reactor::local().schedule(w.h);
    }
    queued_->clear();
    for (auto& w : send_waiters_) reactor::local().schedule(w.h);
    send_waiters_.clear();
}

}  // namespace weft::initiator
