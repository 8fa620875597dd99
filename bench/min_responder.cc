#include "min_responder.h"

#include <sys/socket.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "nvme/command.h"
#include "nvme/fabrics.h"
#include "nvme/identify.h"
#include "nvmf/tcp/pdu_reader.h"
#include "nvmf/tcp/pdu_writer.h"
#include "runtime/reactor.h"

namespace weft::bench {

namespace tcp = nvmf::tcp;

namespace {

// MDTS 8: 1 MiB per command (4 KiB << 8), the canned read buffer's size.
constexpr uint8_t mdts = 8;
constexpr size_t canned_bytes = size_t(4096) << mdts;
// Room for the largest PDU (an H2CData of MAXH2CDATA) plus a full pass of
// small ones behind it, so that one recv can carry many commands.
constexpr size_t rx_capacity = 512 * 1024;

nvme::completion ok_cqe(uint16_t cid, uint16_t sqid, uint16_t sqhd, uint32_t dw0 = 0,
                        uint32_t dw1 = 0) {
    nvme::completion c{};
    c.dw0 = dw0;
    c.dw1 = dw1;
    c.sqhd = sqhd;
    c.sqid = sqid;
    c.cid = cid;
    return c;
}

std::span<const std::byte, 16> cqe_bytes(const nvme::completion& c) {
    return std::span<const std::byte, 16>(reinterpret_cast<const std::byte*>(&c), 16);
}

}  // namespace

// The per-connection state a target needs at the very least.
struct min_responder::connection {
    tcp_stream stream;
    tcp::reader_params rp;
    tcp::send_batch out;
    uint16_t qid = 0;
    uint16_t sqhd = 0;
    uint16_t sq_size = 128;
    uint32_t cc = 0;
    // Bytes still owed by each R2T write, by CID (CIDs are below 65536).
    std::vector<uint32_t> owed = std::vector<uint32_t>(65536, 0);
    std::vector<std::byte> rx = std::vector<std::byte>(rx_capacity);
};

min_responder::min_responder(responder_options opt) : opt_(opt) {
    id_ctrl_.resize(sizeof(nvme::identify_controller));
    auto* ic = reinterpret_cast<nvme::identify_controller*>(id_ctrl_.data());
    ic->mdts = mdts;
    ic->sqes = 0x66;  // 64-byte SQEs
    ic->cqes = 0x44;  // 16-byte CQEs
    ic->maxcmd = opt_.max_queue_depth;
    ic->nn = 1;
    ic->ioccsz = (64 + opt_.in_capsule_data) / 16;
    ic->iorcsz = 1;

    ns_list_.resize(4096);
    uint32_t one = 1;
    std::memcpy(ns_list_.data(), &one, sizeof one);

    id_ns_.resize(sizeof(nvme::identify_namespace));
    auto* in = reinterpret_cast<nvme::identify_namespace*>(id_ns_.data());
    in->nsze = in->ncap = in->nuse = opt_.num_blocks;
    in->nlbaf = 0;  // 0's based: one format
    in->flbas = 0;
    in->lbaf[0].lbads = uint8_t(std::countr_zero(opt_.block_size));

    // Not zeroes, so that a read looks like data; the same bytes every time.
    canned_.resize(canned_bytes);
    for (size_t i = 0; i < canned_.size(); ++i) canned_[i] = std::byte(i * 131 + 7);
}

min_responder::~min_responder() = default;

result<socket_address> min_responder::listen(const socket_address& addr) {
    auto l = tcp_listener::listen(addr);
    if (!l) return l.err();
    listener_ = std::make_unique<tcp_listener>(std::move(l.value()));
    return listener_->local_address();
}

void min_responder::start() {
    reactor::local().spawn(accept_gate_.hold(accept_loop()));
}

task<void> min_responder::accept_loop() {
    for (;;) {
        auto s = co_await listener_->accept(&stop_);
        if (!s) break;  // ECANCELED at stop(); anything else ends serving too
        open_fds_.push_back(s->fd());
        reactor::local().spawn(conns_.hold(serve_connection(std::move(s.value()))));
    }
}

task<void> min_responder::stop() {
    stop_.request_abort();
    co_await accept_gate_.close();
    // The hosts normally hang up first; this ends connections they left open.
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    co_await conns_.close();
    if (listener_) listener_->close();
}

task<void> min_responder::serve_connection(tcp_stream s) {
    auto c = std::make_unique<connection>();
    c->stream = std::move(s);
    c->rp = {.receiver = tcp::side::target,
             .max_icd = opt_.in_capsule_data,
             .max_data = opt_.max_h2c_data};
    size_t off = 0, have = 0;  // unparsed bytes are rx[off, have)
    bool open = true;
    while (open) {
        int n = co_await c->stream.recv(std::span(c->rx).subspan(have));
        if (n <= 0) break;
        have += size_t(n);
        while (open) {
            auto res =
                tcp::parse(std::span<const std::byte>(c->rx.data() + off, have - off), c->rp);
            if (std::holds_alternative<tcp::need_more>(res)) break;
            auto* pdu = std::get_if<tcp::pdu_view>(&res);
            if (!pdu) {
                open = false;  // a digest error or a fatal one: not ours to be polite about
                break;
            }
            off += pdu->size;
            // A command adds at most two PDUs (4 iovecs, 48 bytes): make room
            // up front, so that no add_* below can fail.
            if (c->out.iovecs().size() + 4 > tcp::send_batch::max_iovecs ||
                (c->out.pdus() + 2) * 48 > tcp::send_batch::storage_bytes) {
                if (!co_await c->out.flush(c->stream)) open = false;
            }
            switch (pdu->type) {
                case tcp::pdu_type::ic_req:
                    c->out.add_ic_resp(0, 0, opt_.max_h2c_data);
                    c->rp.connected = true;
                    break;
                case tcp::pdu_type::h2c_data: {
                    auto& h = pdu->as<tcp::h2c_data>();
                    uint16_t cid = h.cccid.get();
                    uint32_t& owed = c->owed[cid];
                    owed -= std::min(owed, h.datal.get());
                    if (owed == 0 && (h.ch.flags & tcp::pdu_flags::last_pdu)) {
                        c->sqhd = uint16_t((c->sqhd + 1) % c->sq_size);
                        c->out.add_capsule_resp(cqe_bytes(ok_cqe(cid, c->qid, c->sqhd)));
                    }
                    break;
                }
                case tcp::pdu_type::capsule_cmd: {
                    nvme::command cmd;
                    std::memcpy(&cmd, pdu->as<tcp::capsule_cmd>().sqe, sizeof cmd);
                    c->sqhd = uint16_t((c->sqhd + 1) % c->sq_size);
                    uint32_t dw0 = 0, dw1 = 0;
                    std::span<const std::byte> reply;  // data for C2HData
                    if (cmd.opcode == uint8_t(nvme::admin_opcode::fabrics)) {
                        nvme::property_command pc;
                        std::memcpy(&pc, &cmd, sizeof pc);
                        switch (nvme::fabrics_type(pc.fctype)) {
                            case nvme::fabrics_type::connect: {
                                nvme::connect_command cc;
                                std::memcpy(&cc, &cmd, sizeof cc);
                                c->qid = cc.qid;
                                c->sq_size = uint16_t(cc.sqsize + 1);
                                dw0 = 1;  // CNTLID: the one controller there is
                                break;
                            }
                            case nvme::fabrics_type::property_get: {
                                uint64_t v = 0;
                                if (pc.offset == nvme::reg::cap)
                                    v = nvme::make_cap(uint16_t(opt_.max_queue_depth - 1), 1);
                                else if (pc.offset == nvme::reg::vs)
                                    v = nvme::version(1, 4);
                                else if (pc.offset == nvme::reg::cc)
                                    v = c->cc;
                                else if (pc.offset == nvme::reg::csts)
                                    v = (c->cc & nvme::csts_bits::rdy) |
                                        (((c->cc >> 14) & 3) != 0 ? nvme::csts_bits::shst_complete
                                                                  : 0);
                                dw0 = uint32_t(v);
                                dw1 = uint32_t(v >> 32);
                                break;
                            }
                            case nvme::fabrics_type::property_set:
                                if (pc.offset == nvme::reg::cc) c->cc = uint32_t(pc.value);
                                break;
                            default:
                                break;
                        }
                    } else if (c->qid == 0) {
                        if (cmd.opcode == uint8_t(nvme::admin_opcode::identify)) {
                            switch (nvme::cns(cmd.cdw10 & 0xff)) {
                                case nvme::cns::controller:
                                    reply = id_ctrl_;
                                    break;
                                case nvme::cns::active_namespaces:
                                    reply = ns_list_;
                                    break;
                                case nvme::cns::namespace_data:
                                    reply = id_ns_;
                                    break;
                                default:
                                    break;
                            }
                        } else if (cmd.opcode == uint8_t(nvme::admin_opcode::set_features)) {
                            dw0 = cmd.cdw11;  // Number of Queues: all that were asked for
                        }
                        if (reply.empty() && cmd.sgl.type == nvme::sgl_type::transport)
                            reply = std::span<const std::byte>(canned_).first(
                                std::min<size_t>(cmd.sgl.length, canned_.size()));
                        reply = reply.first(std::min<size_t>(reply.size(), cmd.sgl.length));
                    } else if (cmd.opcode == uint8_t(nvme::io_opcode::read)) {
                        reply = std::span<const std::byte>(canned_).first(
                            std::min<size_t>(cmd.sgl.length, canned_.size()));
                    } else if (cmd.opcode == uint8_t(nvme::io_opcode::write) &&
                               cmd.sgl.type == nvme::sgl_type::transport && cmd.sgl.length > 0) {
                        // Ask for all of it at once; the host cuts it into MAXH2CDATA pieces.
                        c->owed[cmd.cid] = cmd.sgl.length;
                        c->out.add_r2t(cmd.cid, cmd.cid, 0, cmd.sgl.length);
                        break;
                    }
                    if (!reply.empty()) {
                        iovec iov{const_cast<std::byte*>(reply.data()), reply.size()};
                        c->out.add_c2h_data(cmd.cid, 0, std::span<const iovec>(&iov, 1), true,
                                            false);
                    }
                    c->out.add_capsule_resp(cqe_bytes(ok_cqe(cmd.cid, c->qid, c->sqhd, dw0, dw1)));
                    break;
                }
                default:  // H2CTermReq, or nothing a host sends
                    open = false;
                    break;
            }
        }
        if (!c->out.empty() && !co_await c->out.flush(c->stream)) open = false;
        // Compact only when the tail could not take a whole 128 KiB H2CData:
        // moving a partial one on every pass would copy it many times.
        if (off == have) {
            off = have = 0;
        } else if (c->rx.size() - have < opt_.max_h2c_data + 4096) {
            std::memmove(c->rx.data(), c->rx.data() + off, have - off);
            have -= off;
            off = 0;
        }
    }
    // Forgotten before closing: the number may be reused by the target's sockets.
    std::erase(open_fds_, c->stream.fd());
    c->stream.close();
}

}  // namespace weft::bench
