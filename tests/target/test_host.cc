#include "target/test_host.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "runtime/uring_op.h"

namespace weft::nvme {
std::ostream& operator<<(std::ostream& os, const status& s) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "{SCT %u SC 0x%02x%s}", unsigned(s.type), unsigned(s.code),
                  s.dnr ? " DNR" : "");
    return os << buf;
}
}  // namespace weft::nvme

namespace weft::test {

using namespace std::chrono_literals;

std::ostream& operator<<(std::ostream& os, outcome o) {
    switch (o) {
        case outcome::completed:
            return os << "completed";
        case outcome::term_req:
            return os << "C2HTermReq";
        case outcome::closed:
            return os << "closed";
        case outcome::timed_out:
            return os << "timed out";
        case outcome::protocol_error:
            return os << "protocol error";
    }
    return os << "?";
}

std::ostream& operator<<(std::ostream& os, const cmd_result& r) {
    os << r.how;
    if (r.how == outcome::completed) {
        char buf[64];
        std::snprintf(buf, sizeof buf, " dw0 0x%08x dw1 0x%08x cid %u", r.cpl.dw0, r.cpl.dw1,
                      unsigned(r.cpl.cid));
        os << " status " << r.status() << buf;
    } else if (r.how == outcome::term_req) {
        os << " FES " << r.fes << " FEI " << r.fei;
    }
    if (!r.detail.empty()) os << " (" << r.detail << ")";
    return os;
}

nvme::command make_cmd(uint8_t opcode, uint32_t nsid) {
    nvme::command c{};
    c.opcode = opcode;
    c.nsid = nsid;
    return c;
}

bytes pattern(size_t n, unsigned seed) {
    bytes b(n);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; ++i) {
        x = x * 1103515245u + 12345u;
        b[i] = std::byte(x >> 24);
    }
    return b;
}

bool all_zero(std::span<const std::byte> b) {
    for (auto x : b)
        if (x != std::byte{0}) return false;
    return true;
}

host_queue::host_queue() : batch_(std::make_unique<tcp::send_batch>()), rx_(64 * 1024) {}
host_queue::~host_queue() = default;

// ---- connection -------------------------------------------------------------

task<bool> host_queue::open_tcp(socket_address addr, link_options opt) {
    opt_ = opt;
    auto s = co_await tcp_stream::connect(addr);
    if (!s) {
        error_ = "connect: " + s.err().message();
        co_return false;
    }
    stream_ = std::move(s.value());
    rparams_ = tcp::reader_params{};
    rparams_.receiver = tcp::side::initiator;
    rparams_.connected = false;
    rparams_.pda = opt.hpda;
    rparams_.max_data = 16u << 20;  // C2HData has no negotiated bound
    wparams_ = {};
    batch_->set_params(wparams_);
    have_ = 0;
    stats_ = {};
    pending_.clear();
    ended_ = false;
    end_ = {};
    co_return true;
}

task<bool> host_queue::open(socket_address addr, link_options opt) {
    bool ok = co_await open_tcp(addr, opt);
    if (ok) ok = co_await handshake();
    co_return ok;
}

task<bool> host_queue::handshake() {
    uint8_t dgst =
        (opt_.hdgst ? tcp::digest_bits::header : 0) | (opt_.ddgst ? tcp::digest_bits::data : 0);
    std::byte req[sizeof(tcp::ic_req)];
    tcp::encode_ic_req(req, opt_.hpda, dgst, opt_.maxr2t);
    bool sent = co_await send_raw(req);
    if (!sent) co_return false;
    auto r = co_await recv_pdu();
    if (r.how != outcome::completed) {
        std::ostringstream os;
        os << "no ICResp: " << r.how << " " << r.detail;
        error_ = os.str();
        co_return false;
    }
    if (r.pdu.type != tcp::pdu_type::ic_resp) {
        error_ = std::string("expected ICResp, got ") + tcp::to_string(r.pdu.type);
        co_return false;
    }
    std::memcpy(&ic_resp_, r.pdu.raw.data(), sizeof ic_resp_);
    rparams_.connected = true;
    rparams_.hdgst = ic_resp_.dgst & tcp::digest_bits::header;
    rparams_.ddgst = ic_resp_.dgst & tcp::digest_bits::data;
    wparams_ = {.hdgst = rparams_.hdgst, .ddgst = rparams_.ddgst, .pda = ic_resp_.cpda};
    batch_->set_params(wparams_);
    co_return true;
}

task<bool> host_queue::send_raw(std::span<const std::byte> b) {
    auto r = co_await stream_.send_all(b);
    if (!r) {
        error_ = "send: " + r.err().message();
        co_return false;
    }
    co_return true;
}

task<recv_result> host_queue::recv_pdu() {
    recv_result out;
    for (;;) {
        auto res = tcp::parse({rx_.data(), have_}, rparams_);
        if (auto* more = std::get_if<tcp::need_more>(&res)) {
            if (more->total > rx_.size()) rx_.resize(more->total);
            int n = co_await stream_.recv(std::span(rx_).subspan(have_)).timeout(opt_.timeout);
            if (n > 0) {
                have_ += size_t(n);
                continue;
            }
            if (n == 0 || n == -ECONNRESET) {
                out.how = outcome::closed;
            } else if (n == -ETIMEDOUT) {
                out.how = outcome::timed_out;
            } else {
                out.how = outcome::closed;
                out.detail = std::string("recv: ") + std::strerror(-n);
            }
            co_return out;
        }
        size_t used = 0;
        if (auto* v = std::get_if<tcp::pdu_view>(&res)) {
            out.how = outcome::completed;
            out.pdu.type = v->type;
            out.pdu.raw.assign(rx_.data(), rx_.data() + v->size);
            out.pdu.data_offset = v->data_offset;
            out.pdu.data_length = v->data_length;
            used = v->size;
        } else if (auto* d = std::get_if<tcp::data_digest_error>(&res)) {
            out.how = outcome::protocol_error;
            out.detail = std::string("data digest error in ") + tcp::to_string(d->pdu.type);
            used = d->pdu.size;
        } else {
            auto& f = std::get<tcp::fatal_error>(res);
            out.how = outcome::protocol_error;
            out.detail = "target sent a bad PDU: FES " + std::to_string(unsigned(f.status)) +
                         " FEI " + std::to_string(f.fei) + " type " +
                         std::to_string(std::to_integer<unsigned>(rx_[0]));
            co_return out;
        }
        std::memmove(rx_.data(), rx_.data() + used, have_ - used);
        have_ -= used;
        co_return out;
    }
}

task<outcome> host_queue::expect_closed(std::chrono::milliseconds within) {
    auto deadline = std::chrono::steady_clock::now() + within;
    std::vector<std::byte> scratch(64 * 1024);
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left <= 0ms) co_return outcome::timed_out;
        int n = co_await stream_.recv(scratch).timeout(left);
        if (n == 0 || n == -ECONNRESET) co_return outcome::closed;
        if (n == -ETIMEDOUT) co_return outcome::timed_out;
        if (n < 0) co_return outcome::protocol_error;
    }
}

// ---- commands ---------------------------------------------------------------

void host_queue::end(outcome how, std::string detail, uint16_t fes, uint32_t fei) {
    ended_ = true;
    end_ = {};
    end_.how = how;
    end_.detail = std::move(detail);
    end_.fes = fes;
    end_.fei = fei;
}

task<int> host_queue::submit(nvme::command cmd, data d) {
    uint16_t cid = next_cid_++;
    if (next_cid_ == 0xffff) next_cid_ = 1;
    cmd.cid = cid;
    bool icd = false;
    if (!d.raw_sgl) {
        cmd.flags = 0x40;  // PSDT: SGL
        cmd.sgl = {};
        if (!d.out.empty()) {
            icd = d.how == xfer::in_capsule || (d.how == xfer::automatic && d.out.size() <= 8192);
            cmd.sgl.type = icd ? nvme::sgl_type::in_capsule : nvme::sgl_type::transport;
            cmd.sgl.length = uint32_t(d.out.size());
        } else {
            cmd.sgl.type = nvme::sgl_type::transport;
            cmd.sgl.length = uint32_t(d.in.size());
        }
    } else {
        icd = !d.out.empty();
    }
    pending_[cid] = pending{d, false, {}};
    iovec iov{const_cast<std::byte*>(d.out.data()), d.out.size()};
    auto sqe = std::as_bytes(std::span<const nvme::command, 1>(&cmd, 1));
    bool added =
        batch_->add_capsule_cmd(std::span<const std::byte, 64>(sqe.data(), 64),
                                icd ? std::span<const iovec>(&iov, 1) : std::span<const iovec>());
    if (!added) {
        error_ = "capsule does not fit a send batch";
        co_return -1;
    }
    auto r = co_await batch_->flush(stream_);
    if (!r) {
        error_ = "send: " + r.err().message();
        co_return -1;
    }
    co_return cid;
}

task<cmd_result> host_queue::wait(int cid) {
    auto it = cid < 0 ? pending_.end() : pending_.find(uint16_t(cid));
    if (it == pending_.end()) {
        cmd_result r;
        r.how = outcome::protocol_error;
        r.detail = "no such command (send failed? " + error_ + ")";
        co_return r;
    }
    while (!it->second.done) {
        if (ended_) co_return end_;
        auto r = co_await recv_pdu();
        if (r.how != outcome::completed) {
            end(r.how, r.detail);
            co_return end_;
        }
        bool more = co_await handle(r.pdu);
        if (!more) co_return end_;
    }
    cmd_result res = std::move(it->second.res);
    pending_.erase(it);
    co_return res;
}

task<cmd_result> host_queue::exec(nvme::command cmd, data d) {
    int cid = co_await submit(cmd, d);
    co_return co_await wait(cid);
}

task<bool> host_queue::handle(const raw_pdu& p) {
    switch (p.type) {
        case tcp::pdu_type::c2h_term_req: {
            auto& t = p.as<tcp::term_req>();
            end(outcome::term_req, "", t.fes.get(), t.fei.get());
            co_return false;
        }
        case tcp::pdu_type::capsule_resp: {
            nvme::completion cpl;
            std::memcpy(&cpl, p.as<tcp::capsule_resp>().cqe, sizeof cpl);
            auto it = pending_.find(cpl.cid);
            if (it == pending_.end() || it->second.done) {
                end(outcome::protocol_error,
                    "CapsuleResp for CID " + std::to_string(cpl.cid) + " that is not outstanding");
                co_return false;
            }
            it->second.done = true;
            it->second.res.how = outcome::completed;
            it->second.res.cpl = cpl;
            ++stats_.capsule_resp;
            co_return true;
        }
        case tcp::pdu_type::c2h_data: {
            auto& h = p.as<tcp::c2h_data>();
            auto it = pending_.find(h.cccid.get());
            if (it == pending_.end() || it->second.done) {
                end(outcome::protocol_error, "C2HData for a CID that is not outstanding");
                co_return false;
            }
            auto& in = it->second.d.in;
            uint64_t datao = h.datao.get(), datal = h.datal.get();
            if (datao + datal > in.size()) {
                end(outcome::protocol_error, "C2HData beyond the command's buffer: offset " +
                                                 std::to_string(datao) + " length " +
                                                 std::to_string(datal) + " buffer " +
                                                 std::to_string(in.size()));
                co_return false;
            }
            std::memcpy(in.data() + datao, p.data().data(), datal);
            ++stats_.c2h_data;
            if (h.ch.flags & tcp::pdu_flags::success) {
                it->second.done = true;
                it->second.res.how = outcome::completed;
                it->second.res.cpl = {};
                it->second.res.cpl.cid = h.cccid.get();
                it->second.res.detail = "SUCCESS flag";
            }
            co_return true;
        }
        case tcp::pdu_type::r2t:
            co_return co_await answer_r2t(p);
        default:
            end(outcome::protocol_error,
                std::string("unexpected PDU from the target: ") + tcp::to_string(p.type));
            co_return false;
    }
}

task<bool> host_queue::answer_r2t(const raw_pdu& p) {
    auto& r = p.as<tcp::r2t>();
    auto it = pending_.find(r.cccid.get());
    if (it == pending_.end() || it->second.done) {
        end(outcome::protocol_error, "R2T for a CID that is not outstanding");
        co_return false;
    }
    auto out = it->second.d.out;
    uint64_t off = r.r2to.get(), len = r.r2tl.get();
    if (len == 0 || off + len > out.size()) {
        end(outcome::protocol_error, "R2T outside the command's data: offset " +
                                         std::to_string(off) + " length " + std::to_string(len));
        co_return false;
    }
    ++stats_.r2t;
    stats_.max_r2tl = std::max(stats_.max_r2tl, uint32_t(len));
    uint32_t chunk = maxh2cdata();
    uint64_t end_off = off + len;
    while (off < end_off) {
        uint32_t n = uint32_t(std::min<uint64_t>(chunk, end_off - off));
        iovec iov{const_cast<std::byte*>(out.data() + off), n};
        batch_->add_h2c_data(r.cccid.get(), r.ttag.get(), uint32_t(off), {&iov, 1},
                             off + n == end_off);
        auto sent = co_await batch_->flush(stream_);
        if (!sent) {
            end(outcome::closed, "send H2CData: " + sent.err().message());
            co_return false;
        }
        off += n;
        ++stats_.h2c_data;
    }
    co_return true;
}

// ---- helpers ----------------------------------------------------------------

task<cmd_result> host_queue::connect(const connect_params& p) {
    nvme::connect_command cc{};
    cc.opcode = uint8_t(nvme::admin_opcode::fabrics);
    cc.fctype = uint8_t(nvme::fabrics_type::connect);
    cc.recfmt = p.recfmt;
    cc.qid = p.qid;
    cc.sqsize = p.sqsize;
    cc.cattr = p.cattr;
    cc.kato = p.kato;
    nvme::connect_data cd{};
    std::memcpy(cd.hostid, p.hostid.data(), 16);
    cd.cntlid = p.cntlid;
    nvme::set_nqn(cd.subnqn, p.subnqn);
    nvme::set_nqn(cd.hostnqn, p.hostnqn);
    nvme::command cmd;
    std::memcpy(&cmd, &cc, sizeof cmd);
    auto r =
        co_await exec(cmd, data{.out = std::as_bytes(std::span(&cd, 1)), .how = xfer::in_capsule});
    if (r.ok()) cntlid_ = uint16_t(r.cpl.dw0 & 0xffff);
    co_return r;
}

task<cmd_result> host_queue::property_get(uint32_t offset, bool eight_bytes) {
    nvme::property_command pc{};
    pc.opcode = uint8_t(nvme::admin_opcode::fabrics);
    pc.fctype = uint8_t(nvme::fabrics_type::property_get);
    pc.attrib = eight_bytes ? 1 : 0;
    pc.offset = offset;
    nvme::command cmd;
    std::memcpy(&cmd, &pc, sizeof cmd);
    co_return co_await exec(cmd);
}

task<cmd_result> host_queue::property_set(uint32_t offset, uint64_t value) {
    nvme::property_command pc{};
    pc.opcode = uint8_t(nvme::admin_opcode::fabrics);
    pc.fctype = uint8_t(nvme::fabrics_type::property_set);
    pc.attrib = offset == nvme::reg::cap ? 1 : 0;
    pc.offset = offset;
    pc.value = value;
    nvme::command cmd;
    std::memcpy(&cmd, &pc, sizeof cmd);
    co_return co_await exec(cmd);
}

task<bool> host_queue::enable() {
    uint32_t cc = 1u | (6u << 16) | (4u << 20);  // EN, IOSQES 6, IOCQES 4
    auto set = co_await property_set(nvme::reg::cc, cc);
    if (!set.ok()) {
        ADD_FAILURE() << "CC.EN = 1: " << set;
        co_return false;
    }
    for (int i = 0; i < 200; ++i) {
        auto csts = co_await property_get(nvme::reg::csts, false);
        if (!csts.ok()) {
            ADD_FAILURE() << "CSTS: " << csts;
            co_return false;
        }
        if (csts.cpl.dw0 & nvme::csts_bits::cfs) {
            ADD_FAILURE() << "CSTS.CFS set after CC.EN";
            co_return false;
        }
        if (csts.cpl.dw0 & nvme::csts_bits::rdy) co_return true;
        co_await sleep(10ms);
    }
    ADD_FAILURE() << "CSTS.RDY not set within 2 s of CC.EN";
    co_return false;
}

task<cmd_result> host_queue::identify(nvme::cns cns, uint32_t nsid, std::span<std::byte> out) {
    auto c = make_cmd(nvme::admin_opcode::identify, nsid);
    c.cdw10 = uint8_t(cns);
    co_return co_await exec(c, data{.in = out});
}

task<cmd_result> host_queue::get_log_page(uint8_t lid, std::span<std::byte> out, uint64_t offset,
                                          bool rae) {
    auto c = make_cmd(nvme::admin_opcode::get_log_page, 0xffffffff);
    uint32_t numd = uint32_t(out.size() / 4 - 1);
    c.cdw10 = lid | (rae ? 1u << 15 : 0) | ((numd & 0xffff) << 16);
    c.cdw11 = numd >> 16;
    c.cdw12 = uint32_t(offset);
    c.cdw13 = uint32_t(offset >> 32);
    co_return co_await exec(c, data{.in = out});
}

task<cmd_result> host_queue::get_features(uint8_t fid, uint32_t cdw11, unsigned sel) {
    auto c = make_cmd(nvme::admin_opcode::get_features);
    c.cdw10 = fid | (sel << 8);
    c.cdw11 = cdw11;
    co_return co_await exec(c);
}

task<cmd_result> host_queue::set_features(uint8_t fid, uint32_t cdw11, bool save) {
    auto c = make_cmd(nvme::admin_opcode::set_features);
    c.cdw10 = fid | (save ? 1u << 31 : 0);
    c.cdw11 = cdw11;
    co_return co_await exec(c);
}

task<cmd_result> host_queue::keep_alive() {
    co_return co_await exec(make_cmd(nvme::admin_opcode::keep_alive));
}

task<cmd_result> host_queue::read(uint32_t nsid, uint64_t slba, uint32_t nlb,
                                  std::span<std::byte> in) {
    auto c = make_cmd(nvme::io_opcode::read, nsid);
    c.cdw10 = uint32_t(slba);
    c.cdw11 = uint32_t(slba >> 32);
    c.cdw12 = nlb - 1;
    co_return co_await exec(c, data{.in = in});
}

task<cmd_result> host_queue::write(uint32_t nsid, uint64_t slba, uint32_t nlb,
                                   std::span<const std::byte> out, xfer how, bool fua) {
    auto c = make_cmd(nvme::io_opcode::write, nsid);
    c.cdw10 = uint32_t(slba);
    c.cdw11 = uint32_t(slba >> 32);
    c.cdw12 = (nlb - 1) | (fua ? 1u << 30 : 0);
    co_return co_await exec(c, data{.out = out, .how = how});
}

task<bool> open_session(session& s, socket_address addr, connect_params p, bool with_io,
                        link_options opt) {
    bool ok = co_await s.admin.open(addr, opt);
    if (!ok) {
        ADD_FAILURE() << "admin queue: " << s.admin.last_error();
        co_return false;
    }
    p.qid = 0;
    p.cntlid = 0xffff;
    auto r = co_await s.admin.connect(p);
    if (!r.ok()) {
        ADD_FAILURE() << "admin Connect: " << r;
        co_return false;
    }
    ok = co_await s.admin.enable();
    if (!ok) co_return false;
    if (!with_io) co_return true;
    ok = co_await s.io.open(addr, opt);
    if (!ok) {
        ADD_FAILURE() << "I/O queue: " << s.io.last_error();
        co_return false;
    }
    p.qid = 1;
    p.cntlid = s.admin.cntlid();
    p.kato = 0;
    r = co_await s.io.connect(p);
    if (!r.ok()) {
        ADD_FAILURE() << "I/O Connect: " << r;
        co_return false;
    }
    co_return true;
}

}  // namespace weft::test
