#include "nvmf/tcp_queue.h"

#include "nvmf/tcp/rx_buffer.h"

#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "nvme/fabrics.h"
#include "runtime/foreign_call.h"
#include "runtime/reactor.h"
#include "runtime/uring_op.h"

namespace weft::nvmf {

namespace sc = nvme::sc;
using namespace std::chrono_literals;

struct tcp_queue::command {
    uint16_t slot = 0;
    request req;
    bool preset = false;     // status decided on arrival; not executed
    bool needs_r2t = false;  // host-to-controller data still to fetch
    struct r2t_range {
        uint32_t next;  // the next DATAO expected in this range
        uint32_t end;
    };
    std::vector<r2t_range> r2ts;  // outstanding R2Ts (at most MAXR2T + 1)
    uint32_t requested = 0;       // bytes asked for so far
    uint32_t received = 0;        // bytes arrived so far
    bool progress = false;        // an R2T's range completed
    bool data_failed = false;
    bool receiving = false;  // a direct receive is writing into req.data
    nvme::status data_status = sc::success;
    std::coroutine_handle<> data_waiter;
};

namespace {

// The R2T range of `c` whose data continues at `datao`, or r2ts.end().
template <typename Command>
auto find_r2t(Command& c, uint32_t datao) {
    return std::find_if(c.r2ts.begin(), c.r2ts.end(), [&](auto& r) { return r.next == datao; });
}

bool peer_is_loopback(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return false;
    if (ss.ss_family == AF_INET)
        return (ntohl(reinterpret_cast<sockaddr_in*>(&ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss.ss_family == AF_INET6) {
        auto& a = reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(&a) || (IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127);
    }
    return false;
}

// Connect Invalid Parameters: dword 0 locates the bad field (NVMe-oF 3.3).
uint32_t ipo_data(size_t offset) {
    return (1u << 16) | uint32_t(offset);
}
uint32_t ipo_sqe(size_t offset) {
    return uint32_t(offset);
}
}  // namespace

tcp_queue::tcp_queue(target& tgt, tcp_stream stream, tcp_options opt)
    : target_(tgt),
      stream_(std::move(stream)),
      opt_(opt),
      queued_(std::make_unique<tcp::send_batch>()),
      sending_(std::make_unique<tcp::send_batch>()),
      zero_copy_threshold_(peer_is_loopback(stream_.fd()) ? 0 : opt_.zero_copy_threshold) {
    rparams_.receiver = tcp::side::target;
    rparams_.max_data = opt_.max_h2c_data;
    rparams_.max_icd = tgt.limits().in_capsule_data;
    // Before Connect the queue holds one command (the Connect itself).
    slots_.push_back(nullptr);
    free_slots_.push_back(0);
}

tcp_queue::~tcp_queue() = default;

// ---- life -------------------------------------------------------------------

task<void> tcp_queue::run() {
    auto self = shared_from_this();  // alive until run() ends
    gate flusher_gate;
    reactor::local().spawn(flusher_gate.hold(flusher()));
    bool ready = co_await secure();  // g++ 12: no co_await in a condition
    if (ready) {
        bool up = co_await handshake();
        ready = up;
    }
    if (ready) {
        tcp::rx_buffer rx;
        bool after_direct = false;
        while (!closed_) {
            int n;
            if (tls_)
                n = co_await tls_->recv(stream_, rx.free_space(), &stop_);
            else
                n = co_await stream_.recv(tcp::recv_space(rx, after_direct)).abort_with(stop_);
            if (n <= 0) {
                close(n == 0 ? "host closed the connection" : "receive failed");
                break;
            }
            rx.filled(size_t(n));
            after_direct = false;
            unsigned budget = 0;
            while (!closed_) {
                auto res = tcp::parse(rx.unread(), rparams_);
                if (auto* more = std::get_if<tcp::need_more>(&res)) {
                    const size_t min = tls_ ? tcp::direct_data_off : opt_.direct_data_min;
                    auto big = tcp::direct_data_header(rx.unread(), rparams_, *more,
                                                       tcp::pdu_type::h2c_data, min);
                    if (big) {
                        bool taken = co_await receive_h2c_data(*big, rx);
                        if (!taken) break;
                        after_direct = true;
                        continue;
                    }
                    // Bounded by the reader's negotiated limits.
                    rx.need(tcp::receive_room(rx.unread(), rx.capacity(), *more,
                                              tcp::pdu_type::h2c_data, min));
                    break;
                }
                if (auto* pdu = std::get_if<tcp::pdu_view>(&res)) {
                    if (!handle_pdu(*pdu)) break;
                    rx.consume(pdu->size);
                } else if (auto* dd = std::get_if<tcp::data_digest_error>(&res)) {
                    spdlog::warn("queue {}: data digest error (cid {})", qid_, dd->cccid);
                    if (dd->pdu.type == tcp::pdu_type::capsule_cmd) {
                        if (!start_command(dd->pdu, true)) break;
                    } else if (!accept_h2c_data(dd->pdu)) {
                        break;
                    }
                    rx.consume(dd->pdu.size);
                } else {
                    auto& f = std::get<tcp::fatal_error>(res);
                    if (f.reply)
                        fatal(f.status, f.fei, rx.unread().first(f.header_bytes));
                    else
                        close("the host sent a TermReq");
                    break;
                }
                // Bounded: one busy host cannot starve the reactor's others.
                if (++budget % 64 == 0) co_await yield{};
            }
            rx.compact();
            // Sends first: after PDUs (counted, or one received directly), the
            // commands they started run on the next pass and the flusher they
            // woke on the one after; arming the recv after both puts the
            // response ahead of it in one io_uring_enter, not a lone recv
            // ahead of it (docs/architecture.md, "a command through the target").
            if ((budget > 0 || after_direct) && !closed_ && opt_.sends_first) {
                co_await yield{};
                if (!queued_->empty()) co_await yield{};
            }
        }
    }
    close(close_reason_ ? close_reason_ : "closed");
    if (ctrl_) {
        if (qid_ == 0)
            ctrl_->shutdown("admin queue closed");
        else
            ctrl_->remove_io_queue(qid_);
    }
    co_await commands_.close();
    wake_flusher();
    co_await flusher_gate.close();
    io_.reset();
    ctrl_.reset();
    stream_.close();
}

void tcp_queue::close(const char* why) {
    if (closed_) return;
    closed_ = true;
    close_reason_ = why;
    if (connected_)
        spdlog::debug("queue {} of controller {}: {}", qid_, ctrl_ ? ctrl_->cntlid() : 0, why);
    stop_.request_abort();
    for (auto& c : slots_) {
        if (c && c->data_waiter) {
            c->data_failed = true;
            reactor::local().schedule(std::exchange(c->data_waiter, {}));
        }
    }
    wake_flusher();
}

void tcp_queue::drop(const char* why) {
    if (closed_) return;
    close(why);
    stream_.shutdown_both();
}

void tcp_queue::fatal(tcp::fes status, uint32_t fei, std::span<const std::byte> header) {
    spdlog::warn("queue {}: fatal transport error {:#x} at byte {}, sending C2HTermReq", qid_,
                 unsigned(status), fei);
    queued_->add_term_req(tcp::pdu_type::c2h_term_req, status, fei,
                          header.first(std::min<size_t>(header.size(), tcp::term_req_max_data)));
    close("fatal transport error");
}

task<bool> tcp_queue::secure() {
    bool tls = opt_.tls == tls_mode::required;
    if (opt_.tls == tls_mode::allowed) {
        // The host's first byte: a TLS handshake record (22) or an ICReq (0).
        std::byte first{};
        int n =
            co_await stream_.recv(std::span(&first, 1), MSG_PEEK).timeout(10s).abort_with(stop_);
        if (n <= 0) {
            close(n == -ETIMEDOUT ? "nothing received within 10 s" : "closed before ICReq");
            co_return false;
        }
        tls = first == std::byte{22};
    }
    if (!tls) co_return true;
    tls_ = tcp::tls_channel::server(
        [this](std::string_view identity) { return target_.find_tls_psk(identity); });
    int rc = co_await tls_->handshake(stream_, 10s, &stop_);
    if (rc != 0) {
        // The identity is the peer's bytes: logged only when well formed.
        const auto id = auth::parse_identity(tls_->identity());
        if (rc != -ECANCELED)
            spdlog::warn("TLS handshake failed{}{}: {}",
                         id                         ? ", PSK identity "
                         : tls_->identity().empty() ? ""
                                                    : ", a malformed PSK identity",
                         id ? tls_->identity() : "",
                         rc == -ETIMEDOUT ? "not done within 10 s" : tls_->failure());
        close("TLS handshake failed");
        co_return false;
    }
    co_return true;
}

task<bool> tcp_queue::handshake() {
    std::byte buf[sizeof(tcp::ic_req)];
    size_t have = 0;
    for (;;) {
        int n =
            co_await tcp::recv_some(stream_, tls_.get(), std::span(buf).subspan(have), &stop_, 10s);
        if (n <= 0) {
            close(n == -ETIMEDOUT ? "no ICReq within 10 s" : "closed before ICReq");
            co_return false;
        }
        have += size_t(n);
        auto res = tcp::parse({buf, have}, rparams_);
        if (std::holds_alternative<tcp::need_more>(res)) {
            if (have == sizeof buf) break;  // cannot happen: ICReq is 128 bytes
            continue;
        }
        if (auto* f = std::get_if<tcp::fatal_error>(&res)) {
            if (f->reply)
                fatal(f->status, f->fei, {buf, f->header_bytes});
            else
                close("the host sent a TermReq");
            co_return false;
        }
        auto* pdu = std::get_if<tcp::pdu_view>(&res);
        if (!pdu || pdu->type != tcp::pdu_type::ic_req) {
            fatal(tcp::fes::pdu_sequence_error, 0, {buf, 8});
            co_return false;
        }
        auto& req = pdu->as<tcp::ic_req>();
        if (req.pfv.get() != tcp::pfv_1_0) {
            fatal(tcp::fes::unsupported_parameter, offsetof(tcp::ic_req, pfv), {buf, have});
            co_return false;
        }
        if (req.hpda > tcp::max_pda) {
            fatal(tcp::fes::invalid_header_field, offsetof(tcp::ic_req, hpda), {buf, have});
            co_return false;
        }
        maxr2t_ = req.maxr2t.get();
        // Echo exactly the digests the host asked for that we allow.
        uint8_t dgst = 0;
        if ((req.dgst & tcp::digest_bits::header) && opt_.allow_header_digest)
            dgst |= tcp::digest_bits::header;
        if ((req.dgst & tcp::digest_bits::data) && opt_.allow_data_digest)
            dgst |= tcp::digest_bits::data;
        queued_->add_ic_resp(0, dgst, opt_.max_h2c_data);
        uint64_t gen = queued_gen_;
        wake_flusher();
        // Digests apply from the first PDU after ICResp.
        tcp::writer_params wp{.hdgst = bool(dgst & tcp::digest_bits::header),
                              .ddgst = bool(dgst & tcp::digest_bits::data),
                              .pda = req.hpda};
        // ICResp goes out before the writer switches to the negotiated digests.
        co_await wait_sent(gen);
        if (send_failed_ || closed_) co_return false;
        queued_->set_params(wp);
        sending_->set_params(wp);
        rparams_.connected = true;
        rparams_.hdgst = wp.hdgst;
        rparams_.ddgst = wp.ddgst;
        co_return true;
    }
    co_return false;
}

// ---- receive side -----------------------------------------------------------

bool tcp_queue::handle_pdu(const tcp::pdu_view& pdu) {
    switch (pdu.type) {
        case tcp::pdu_type::capsule_cmd:
            return start_command(pdu);
        case tcp::pdu_type::h2c_data:
            return accept_h2c_data(pdu);
        case tcp::pdu_type::h2c_term_req: {
            auto& t = pdu.as<tcp::term_req>();
            spdlog::warn("queue {}: host sent H2CTermReq, FES {:#x}", qid_, t.fes.get());
            close("the host terminated the connection");
            return false;
        }
        default:
            fatal(tcp::fes::pdu_sequence_error, 0, {pdu.header, 8});
            return false;
    }
}

bool tcp_queue::start_command(const tcp::pdu_view& pdu, bool digest_failed) {
    if (free_slots_.empty()) {
        // More commands than the queue holds: the host broke flow control.
        fatal(tcp::fes::pdu_sequence_error, 0, {pdu.header, 8});
        return false;
    }
    uint16_t slot = free_slots_.back();
    free_slots_.pop_back();
    auto c = std::make_unique<command>();
    c->slot = slot;
    std::memcpy(&c->req.cmd, pdu.as<tcp::capsule_cmd>().sqe, sizeof(nvme::command));
    if (connected_) sqhd_ = uint16_t((sqhd_ + 1) % queue_size_);
    const auto& sgl = c->req.cmd.sgl;
    auto preset = [&](nvme::status s) {
        c->req.set(s);
        c->preset = true;
    };
    auto dir = nvme::data_direction(c->req.cmd);
    if (pdu.data_length > 0 || pdu.data_digest) {
        // In-capsule data: offset 0 (ICDOFF 0), length as the SGL says.
        if (digest_failed)
            preset(sc::transient_transport_error);  // data withheld
        else if (sgl.type != nvme::sgl_type::in_capsule)
            preset(sc::sgl_descriptor_type_invalid);
        else if (sgl.address != 0)
            preset(sc::sgl_offset_invalid);
        else if (sgl.length != pdu.data_length)
            preset(sc::sgl_data_length_invalid);
        else {
            c->req.data = buffer_pool::local().get(pdu.data_length);
            c->req.data_len = pdu.data_length;
            std::memcpy(c->req.data.data(), pdu.data.data(), pdu.data_length);
        }
    } else if (sgl.length > 0) {
        if (sgl.type != nvme::sgl_type::transport)
            preset(sc::sgl_descriptor_type_invalid);
        else if (sgl.length > target_.limits().max_transfer)
            preset(sc::invalid_field);
        else {
            c->req.data = buffer_pool::local().get(sgl.length);
            c->req.data_len = sgl.length;
            if (dir == nvme::transfer::host_to_controller)
                c->needs_r2t = true;
            else if (qid_ == 0)
                std::memset(c->req.data.data(), 0, sgl.length);
        }
    }
    command* raw = c.get();
    slots_[slot] = std::move(c);
    reactor::local().spawn(commands_.hold(run_command(raw)));
    return true;
}

bool tcp_queue::accept_h2c_data(const tcp::pdu_view& pdu) {
    command* c = h2c_data_command(pdu);
    if (!c) return false;
    auto& h = pdu.as<tcp::h2c_data>();
    uint32_t datao = h.datao.get(), datal = h.datal.get();
    bool intact = pdu.data.size() == datal;  // else its data digest failed
    if (intact) std::memcpy(c->req.data.data() + datao, pdu.data.data(), datal);
    h2c_data_done(*c, datao, datal, intact);
    return true;
}

tcp_queue::command* tcp_queue::h2c_data_command(const tcp::pdu_view& pdu) {
    auto& h = pdu.as<tcp::h2c_data>();
    uint16_t ttag = h.ttag.get();
    command* c = ttag < slots_.size() ? slots_[ttag].get() : nullptr;
    if (!c || !c->needs_r2t || c->r2ts.empty()) {
        fatal(tcp::fes::invalid_header_field, offsetof(tcp::h2c_data, ttag),
              {pdu.header, sizeof h});
        return nullptr;
    }
    if (h.cccid.get() != c->req.cmd.cid) {
        fatal(tcp::fes::invalid_header_field, offsetof(tcp::h2c_data, cccid),
              {pdu.header, sizeof h});
        return nullptr;
    }
    // Within an R2T's range the data comes in order; ranges may interleave.
    uint32_t datao = h.datao.get(), datal = h.datal.get();
    auto range = find_r2t(*c, datao);
    if (range == c->r2ts.end()) {
        fatal(tcp::fes::data_out_of_range, offsetof(tcp::h2c_data, datao), {pdu.header, sizeof h});
        return nullptr;
    }
    if (uint64_t(datao) + datal > range->end) {
        fatal(tcp::fes::data_out_of_range, offsetof(tcp::h2c_data, datal), {pdu.header, sizeof h});
        return nullptr;
    }
    return c;
}

void tcp_queue::h2c_data_done(command& c, uint32_t datao, uint32_t datal, bool intact) {
    if (!intact) c.data_status = sc::transient_transport_error;
    c.received += datal;
    auto range = find_r2t(c, datao);  // h2c_data_command found it
    range->next += datal;
    if (range->next == range->end) {
        c.r2ts.erase(range);
        c.progress = true;
        if (c.data_waiter) reactor::local().schedule(std::exchange(c.data_waiter, {}));
    }
}

task<bool> tcp_queue::receive_h2c_data(const tcp::pdu_view& pdu, tcp::rx_buffer& rx) {
    command* c = h2c_data_command(pdu);
    if (!c) co_return false;
    auto& h = pdu.as<tcp::h2c_data>();
    uint32_t datao = h.datao.get(), datal = h.datal.get();
    // The command waits in run_command for this data; a close cancels the
    // receive, and run_command releases the command only after it ends.
    iovec dest{c->req.data.data() + datao, datal};
    c->receiving = true;
    auto got = co_await tcp::receive_data(stream_, rx, pdu, {&dest, 1}, stop_);
    c->receiving = false;
    if (got == tcp::data_received::lost || closed_) {
        close("receive failed");  // wakes run_command if it waits for the data...
        // ...or for this receive's end.
        if (c->data_waiter) reactor::local().schedule(std::exchange(c->data_waiter, {}));
        co_return false;
    }
    if (got == tcp::data_received::digest_mismatch)
        spdlog::warn("queue {}: data digest error (cid {})", qid_, c->req.cmd.cid);
    h2c_data_done(*c, datao, datal, got == tcp::data_received::ok);
    co_return true;
}

// ---- commands ---------------------------------------------------------------

task<void> tcp_queue::run_command(command* c) {
    if (c->needs_r2t && !c->preset) {
        // As many R2Ts outstanding as the host allows (MAXR2T + 1; Linux
        // asks for one), each for at most MAXH2CDATA.
        const size_t max_outstanding = size_t(std::min<uint32_t>(maxr2t_, 15)) + 1;
        while (c->received < c->req.data_len && !c->data_failed && !closed_) {
            // Reset before asking: a range may complete while an R2T waits
            // for room in the send batch.
            c->progress = false;
            bool ok = true;
            while (ok && c->requested < c->req.data_len && c->r2ts.size() < max_outstanding) {
                uint32_t off = c->requested;
                uint32_t len = std::min(c->req.data_len - off, opt_.max_h2c_data);
                c->r2ts.push_back({off, off + len});
                c->requested += len;
                ok = co_await enqueue([&](tcp::send_batch& b) {
                    return b.add_r2t(c->req.cmd.cid, c->slot, off, len);
                });
            }
            if (!ok) break;
            struct data_awaiter {
                command* c;
                bool await_ready() const { return c->progress || c->data_failed; }
                void await_suspend(std::coroutine_handle<> h) { c->data_waiter = h; }
                void await_resume() const {}
            };
            co_await data_awaiter{c};
        }
        if (c->data_failed || closed_) {
            // A direct receive into its buffer ends first (cancelled by the close).
            struct receive_end {
                command* c;
                bool await_ready() const { return !c->receiving; }
                void await_suspend(std::coroutine_handle<> h) { c->data_waiter = h; }
                void await_resume() const {}
            };
            co_await receive_end{c};
            release(c);
            co_return;
        }
        if (!c->data_status.ok()) {
            c->req.set(c->data_status);
            c->preset = true;
        }
    }
    if (!c->preset) co_await dispatch(c);
    if (!c->req.status().ok() && ctrl_ && ctrl_->gone()) {
        // The share went away under the command: no error status that a
        // file system would take for lost data; the host sees the
        // connection end and retries the command on another path.
        drop("its controller ended");
        release(c);
        co_return;
    }
    uint64_t gen = co_await respond(c);
    bool disconnect = c->req.cmd.opcode == uint8_t(nvme::io_opcode::fabrics) && qid_ != 0 &&
                      nvme::fctype_of(c->req.cmd) == uint8_t(nvme::fabrics_type::disconnect);
    // A failed authentication ends the connection once its answer is out,
    // as nvmet ends the controller: close() sends what is queued first.
    bool auth_failed = auth_ && auth_->failed();
    // The response is queued: the host may reuse the queue slot as soon as it
    // reads it, possibly before our send completes here, so the slot goes
    // now; the command (and the data being sent) lives until the send ends.
    std::unique_ptr<command> owned = std::move(slots_[c->slot]);
    free_slots_.push_back(c->slot);
    if (gen) co_await wait_sent(gen);
    if (disconnect) close("Disconnect");
    if (auth_failed) close("authentication failed");
}

task<void> tcp_queue::dispatch(command* c) {
    auto& cmd = c->req.cmd;
    bool fabrics = cmd.opcode == uint8_t(nvme::admin_opcode::fabrics);
    if (fabrics && nvme::fctype_of(cmd) == uint8_t(nvme::fabrics_type::connect)) {
        co_await connect(c);
        co_return;
    }
    if (!connected_) {
        c->req.set(sc::command_sequence_error);
        co_return;
    }
    if (fabrics && (nvme::fctype_of(cmd) == uint8_t(nvme::fabrics_type::authentication_send) ||
                    nvme::fctype_of(cmd) == uint8_t(nvme::fabrics_type::authentication_receive))) {
        co_await authenticate(c->req);
        co_return;
    }
    if (auth_ && !tls_generated_ && !auth_->authenticated()) {
        c->req.set(sc::authentication_required);
        co_return;
    }
    if (qid_ == 0) {
        co_await ctrl_->execute_admin(c->req);
        co_return;
    }
    if (fabrics) {
        bool disc = nvme::fctype_of(cmd) == uint8_t(nvme::fabrics_type::disconnect);
        c->req.set(disc ? sc::success : sc::invalid_opcode);
        co_return;
    }
    co_await io_->execute(c->req);
}

task<void> tcp_queue::connect(command* c) {
    auto& r = c->req;
    nvme::connect_command cc;
    std::memcpy(&cc, &r.cmd, sizeof cc);
    auto invalid = [&](uint32_t where) {
        r.set(sc::connect_invalid_parameters);
        r.cpl.dw0 = where;
    };
    if (connected_) co_return r.set(sc::command_sequence_error);
    if (r.data_len != sizeof(nvme::connect_data)) co_return r.set(sc::sgl_data_length_invalid);
    if (cc.recfmt != 0) co_return r.set(sc::connect_incompatible_format);
    nvme::connect_data cd;
    std::memcpy(&cd, r.data.data(), sizeof cd);
    std::string subnqn(nvme::get_str(cd.subnqn)), hostnqn(nvme::get_str(cd.hostnqn));
    auto ss = target_.find(subnqn);
    if (!ss) {
        spdlog::warn("connect from {}: no subsystem {}", hostnqn, subnqn);
        // Without DNR: a share taken away may come back (moved, re-shared),
        // and Linux hosts since 6.10 stop reconnecting on a DNR Connect
        // status, which would turn that pause into lost I/O. A host's first
        // Connect fails either way; only reconnects retry, until their
        // ctrl-loss timeout.
        nvme::status st = sc::connect_invalid_parameters;
        st.dnr = false;
        r.set(st);
        r.cpl.dw0 = ipo_data(offsetof(nvme::connect_data, subnqn));
        co_return;
    }
    const auto psk_id = tls_ ? auth::parse_identity(tls_->identity()) : std::nullopt;
    if (tls_ && (!psk_id || psk_id->hostnqn != hostnqn || psk_id->subnqn != subnqn)) {
        // The PSK was derived for another host or subsystem (fail closed:
        // a TLS queue without a known identity connects nowhere).
        spdlog::warn("connect from {} to {} refused: the connection's TLS PSK is {}'s for {}",
                     hostnqn, subnqn, psk_id ? psk_id->hostnqn : "?",
                     psk_id ? psk_id->subnqn : "?");
        r.set(sc::connect_invalid_host);
        r.cpl.dw0 = ipo_data(offsetof(nvme::connect_data, hostnqn));
        co_return;
    }
    if (!ss->host_allowed(hostnqn)) {
        spdlog::warn("connect from {} to {} refused: host not allowed", hostnqn, subnqn);
        r.set(sc::connect_invalid_host);
        r.cpl.dw0 = ipo_data(offsetof(nvme::connect_data, hostnqn));
        co_return;
    }
    const auto& limits = target_.limits();
    if (cc.sqsize == 0 || uint32_t(cc.sqsize) + 1 > limits.max_queue_depth)
        co_return invalid(ipo_sqe(offsetof(nvme::connect_command, sqsize)));
    host_id hostid;
    std::memcpy(hostid.data(), cd.hostid, 16);
    unsigned here = reactor::local().id();
    std::shared_ptr<controller> ctrl;
    if (cc.qid == 0) {
        if (cd.cntlid != 0xffff) co_return invalid(ipo_data(offsetof(nvme::connect_data, cntlid)));
        ctrl = std::make_shared<controller>(target_, ss, hostnqn, hostid, cc.kato, limits, here);
        uint16_t id = ss->register_controller(ctrl);
        if (id == 0) co_return r.set(sc::connect_controller_busy);
        ctrl->set_cntlid(id);
        ctrl->set_admin_link(weak_from_this());
        ctrl->start();
    } else {
        ctrl = ss->find_controller(cd.cntlid);
        if (!ctrl || ctrl->hostnqn() != hostnqn || ctrl->hostid() != hostid)
            co_return invalid(ipo_data(offsetof(nvme::connect_data, cntlid)));
        if (ctrl->concatenation_only()) {
            // Its admin queue only made a TLS key (nvmet lets I/O queues in
            // here unauthenticated).
            spdlog::warn(
                "connect from {} to {} refused: controller {} made a TLS key for secure "
                "channel concatenation and takes no I/O queues",
                hostnqn, subnqn, ctrl->cntlid());
            co_return invalid(ipo_data(offsetof(nvme::connect_data, cntlid)));
        }
        auto st = ctrl->add_io_queue(cc.qid, cc.sqsize, here, weak_from_this());
        if (!st.ok()) {
            r.set(st);
            if (st == sc::connect_invalid_parameters)
                r.cpl.dw0 = ipo_sqe(offsetof(nvme::connect_command, qid));
            co_return;
        }
        io_ = std::make_unique<io_queue>(ctrl);
    }
    r.cpl.dw0 = ctrl->cntlid();
    // A host with a secret here authenticates every queue (not discovery),
    // with the secrets its controller took at the admin queue's Connect;
    // a queue whose TLS key DH-HMAC-CHAP generated has done so.
    tls_generated_ = psk_id && psk_id->type == 'G';
    if (ss->kind() == subsystem_kind::nvm) {
        if (cc.qid == 0) ctrl->set_host_auth(target_.find_host_auth(hostnqn));
        if (ctrl->host_auth_config() && !tls_generated_) {
            auth_ = make_responder(ctrl, hostnqn, subnqn, cc.qid);
            r.cpl.dw0 |= nvme::auth::connect_authreq_atr;
        }
    }
    ctrl_ = ctrl;
    qid_ = cc.qid;
    queue_size_ = uint16_t(cc.sqsize + 1);
    sq_flow_disabled_ = cc.cattr & (1u << 2);
    sqhd_ = 1 % queue_size_;  // the Connect itself was the first entry
    connected_ = true;
    // The queue now holds as many commands as the host asked for.
    for (uint16_t s = uint16_t(slots_.size()); s < queue_size_; ++s) {
        slots_.push_back(nullptr);
        free_slots_.push_back(s);
    }
    spdlog::info("{} connected to {}: controller {}, queue {} (depth {}{}{}{}) on reactor {}",
                 hostnqn, subnqn, ctrl->cntlid(), qid_, queue_size_,
                 qid_ == 0 ? fmt::format(", keep-alive {} ms", cc.kato) : std::string(),
                 sq_flow_disabled_ ? ", SQ flow control off" : "", tls_ ? ", TLS" : "", here);
}

std::unique_ptr<dhchap_responder> tcp_queue::make_responder(std::shared_ptr<controller> ctrl,
                                                            const std::string& hostnqn,
                                                            const std::string& subnqn,
                                                            uint16_t qid) {
    // Each transaction takes the controller's secrets; the admin queue's
    // renews them from the target's (a rotated secret), as nvmet does: a
    // host re-authenticates its admin queue first, then its I/O queues.
    // Called on this queue's reactor, when a Negotiate comes.
    std::weak_ptr<controller> weak = ctrl;
    target* tgt = &target_;
    auto source = [tgt, weak, hostnqn, qid]() -> std::shared_ptr<const host_auth> {
        auto c = weak.lock();
        if (!c) return nullptr;
        if (qid == 0) c->set_host_auth(tgt->find_host_auth(hostnqn));
        return c->host_auth_config();
    };
    dhchap_responder::channel ch{.tls_possible = opt_.tls == tls_mode::allowed,
                                 .tls = tls_ != nullptr};
    bool plain = !tls_;
    auto on_psk = [tgt, weak, hostnqn, subnqn, plain](const std::shared_ptr<const host_auth>& from,
                                                      auth::derived_psk psk) {
        // A plain controller that made a key takes no I/O queues: so marked
        // before the key exists, which an I/O queue would connect with.
        if (auto c = weak.lock(); c && plain) c->set_concatenation_only();
        std::string id = psk.identity;
        if (!tgt->add_generated_psk(hostnqn, subnqn, from, std::move(psk))) return false;
        spdlog::info("{}: secure channel concatenation: a TLS PSK made ({})", hostnqn, id);
        return true;
    };
    return std::make_unique<dhchap_responder>(std::move(source), hostnqn, subnqn, qid, ch,
                                              std::move(on_psk));
}

task<void> tcp_queue::authenticate(request& r) {
    if (auth_busy_) {
        // A host runs one authentication message at a time.
        r.set(sc::command_sequence_error);
        co_return;
    }
    if (!auth_) {
        if (tls_generated_ && qid_ == 0 && ctrl_->host_auth_config()) {
            // Re-authentication over a generated TLS key (REPLACETLSPSK).
            auth_ = make_responder(ctrl_, ctrl_->hostnqn(), ctrl_->subsys().nqn(), qid_);
        } else {
            // The host has no secret here: its transaction fails (not usable).
            auth_ = std::make_unique<dhchap_responder>(nullptr, ctrl_->hostnqn(),
                                                       ctrl_->subsys().nqn(), qid_);
        }
    }
    unsigned before = auth_->successes();
    auth_busy_ = true;
    try {
        // A DH computation would stall every queue of this reactor: it runs
        // on a thread of its own (the queue waits; the others go on).
        if (auth_->next_is_costly()) {
            dhchap_responder* a = auth_.get();
            co_await in_thread([a, &r] { a->execute(r); });
        } else {
            auth_->execute(r);
        }
    } catch (const std::exception& e) {
        spdlog::error("{}: authentication on queue {}: {}", ctrl_->hostnqn(), qid_, e.what());
        r.set(sc::internal_error);
    }
    auth_busy_ = false;
    if (auth_->successes() != before)
        spdlog::log(qid_ == 0 ? spdlog::level::info : spdlog::level::debug,
                    "{} {} on queue {} of controller {} ({})", ctrl_->hostnqn(),
                    before ? "re-authenticated" : "authenticated", qid_, ctrl_->cntlid(),
                    auth_->describe());
}

task<uint64_t> tcp_queue::respond(command* c) {
    auto& r = c->req;
    r.cpl.cid = r.cmd.cid;
    r.cpl.sqid = qid_;
    r.cpl.sqhd = sq_flow_disabled_ ? 0xffff : sqhd_;
    auto cqe = std::as_bytes(std::span<const nvme::completion, 1>(&r.cpl, 1));
    std::span<const std::byte, 16> cqe16(cqe.data(), 16);
    bool c2h = nvme::data_direction(r.cmd) == nvme::transfer::controller_to_host &&
               r.status().ok() && r.data_len > 0 && !c->needs_r2t;
    if (!c2h) {
        // The CQE is copied into the batch: nothing of the command is needed.
        co_await enqueue([&](tcp::send_batch& b) { return b.add_capsule_resp(cqe16); });
        co_return 0;
    }
    iovec iov{r.data.data(), r.data_len};
    // SUCCESS flag: the CQE is implied when the host turned SQ flow control
    // off (it then has no use for SQHD) and the command succeeded with dw0 0.
    bool success_flag = sq_flow_disabled_ && r.cpl.dw0 == 0 && r.cpl.dw1 == 0;
    // Two adds: a full batch may take the C2HData and not the CQE; other
    // commands' PDUs may come between them, never before the data.
    bool ok = co_await enqueue([&](tcp::send_batch& b) {
        return b.add_c2h_data(r.cmd.cid, 0, {&iov, 1}, true, success_flag);
    });
    uint64_t gen = queued_gen_;
    if (ok && !success_flag)
        ok = co_await enqueue([&](tcp::send_batch& b) { return b.add_capsule_resp(cqe16); });
    if (!ok) co_return 0;
    // The data stays ours until the kernel has it: the caller waits for this.
    co_return std::max(gen, queued_gen_);
}

void tcp_queue::release(command* c) {
    uint16_t slot = c->slot;
    slots_[slot].reset();
    free_slots_.push_back(slot);
}

// ---- send side --------------------------------------------------------------

template <typename Add>
task<bool> tcp_queue::enqueue(Add add) {
    for (;;) {
        if (send_failed_ || closed_) co_return false;
        // The writer adds a whole PDU or nothing.
        if (add(*queued_)) {
            wake_flusher();
            co_return true;
        }
        if (queued_->empty()) co_return false;  // does not fit even alone
        // Full: wait until this batch is on the wire, then add to the next.
        uint64_t gen = queued_gen_;
        wake_flusher();
        co_await wait_sent(gen);
    }
}

void tcp_queue::wake_flusher() {
    if (flusher_wait_) reactor::local().schedule(std::exchange(flusher_wait_, {}));
}

task<void> tcp_queue::flusher() {
    for (;;) {
        if (queued_->empty()) {
            // Closed and no command left that could still queue a PDU.
            if (closed_ && commands_.count() == 0) break;
            struct wait {
                tcp_queue* q;
                bool await_ready() const { return false; }
                void await_suspend(std::coroutine_handle<> h) { q->flusher_wait_ = h; }
                void await_resume() const {}
            };
            co_await wait{this};
            continue;
        }
        std::swap(queued_, sending_);
        uint64_t gen = queued_gen_++;
        if (!send_failed_) {
            // Large read data goes zero-copy; small PDUs are cheaper copied.
            bool zc = zero_copy_threshold_ && sending_->bytes() >= zero_copy_threshold_;
            auto r = co_await sending_->flush(stream_, zc, tls_.get());
            if (!r) {
                send_failed_ = true;
                close("send failed");
            }
        } else {
            sending_->clear();
        }
        sent_gen_ = gen;
        std::vector<send_waiter> ready;
        std::erase_if(send_waiters_, [&](const send_waiter& w) {
            if (w.gen > sent_gen_ && !send_failed_) return false;
            ready.push_back(w);
            return true;
        });
        for (auto& w : ready) reactor::local().schedule(w.h);
    }
    for (auto& w : send_waiters_) reactor::local().schedule(w.h);
    send_waiters_.clear();
}

}  // namespace weft::nvmf
