#include "initiator/controller.h"

#include <spdlog/spdlog.h>

#include <cstring>

#include "nvme/fabrics.h"
#include "runtime/reactor.h"
#include "runtime/runtime.h"
#include "runtime/uring_op.h"

namespace weft::initiator {

using namespace std::chrono_literals;

nvme::command make_admin(nvme::admin_opcode op, uint32_t nsid) {
    nvme::command c{};
    c.opcode = uint8_t(op);
    c.nsid = nsid;
    return c;
}

nvme::command make_io(nvme::io_opcode op, uint32_t nsid) {
    nvme::command c{};
    c.opcode = uint8_t(op);
    c.nsid = nsid;
    return c;
}

namespace {

// CC for an NVM controller: EN, CSS NVM, MPS 4 KiB, IOSQES 6 (64 B), IOCQES 4 (16 B).
constexpr uint32_t cc_enable = 1u | (6u << 16) | (4u << 20);
constexpr uint32_t cc_shn_normal = 1u << 14;

queue_options admin_queue_options(const controller_options& o) {
    queue_options q;
    q.address = o.address;
    q.subnqn = o.subnqn;
    q.hostnqn = o.hostnqn;
    q.hostid = o.hostid;
    q.qid = 0;
    q.depth = o.admin_depth;
    q.kato_ms = o.kato_ms;
    q.header_digest = o.header_digest;
    q.data_digest = o.data_digest;
    q.direct_data_min = o.direct_data_min;
    q.sends_first = o.sends_first;
    q.command_timeout = o.command_timeout;
    q.connect_timeout = o.connect_timeout;
    q.dhchap = o.dhchap;
    return q;
}

}  // namespace

controller::controller(controller_options opt)
    : opt_(std::move(opt)), home_(reactor::local().id()) {}

controller::~controller() = default;

// Not a coroutine, as queue::connect: the options move in before any suspension.
task<result<std::unique_ptr<controller>>> controller::connect(controller_options opt) {
    return start(new controller(std::move(opt)));
}

task<result<std::unique_ptr<controller>>> controller::start(controller* raw) {
    std::unique_ptr<controller> c(raw);
    auto derive = [&](auth::derivation how) -> result<void> {
        auto d = auth::derive_tls_psk(*c->opt_.tls_key, c->opt_.hostnqn, c->opt_.subnqn,
                                      c->opt_.tls_identity_version, how);
        if (!d) return d.err();
        c->tls_ = std::make_shared<const auth::derived_psk>(std::move(d.value()));
        return {};
    };
    if (c->opt_.concat) {
        if (!c->opt_.dhchap || c->opt_.tls_key) co_return error{EINVAL};
        // A plain admin queue only to make the key; it closes at once (a
        // controller made so takes no I/O queues, and needs no shutdown).
        queue_options pq = admin_queue_options(c->opt_);
        std::shared_ptr<const auth::derived_psk> psk;
        pq.concat_psk = &psk;
        auto plain = co_await queue::connect(pq);
        if (!plain) co_return plain.err();
        co_await plain.value()->close();
        c->tls_ = std::move(psk);
        spdlog::info(
            "initiator: {}: secure channel concatenation made TLS PSK {}; every queue "
            "connects over TLS with it",
            c->opt_.subnqn, c->tls_->identity);
    }
    if (c->opt_.tls_key) {
        auto d = derive(auth::derivation::rfc8446);
        if (!d) co_return d.err();
    }
    queue_options aq = admin_queue_options(c->opt_);
    aq.tls = c->tls_;
    bool refused = false;
    if (c->opt_.tls_key) aq.tls_refused = &refused;
    auto admin = co_await queue::connect(aq);
    if (!admin && refused) {
        spdlog::info(
            "initiator: {} refused the RFC 8446 TLS PSK; trying the older nvme-cli "
            "derivation",
            c->opt_.subnqn);
        auto d = derive(auth::derivation::compat);
        if (!d) co_return d.err();
        aq.tls = c->tls_;
        aq.tls_refused = nullptr;
        admin = co_await queue::connect(aq);
    }
    if (!admin) co_return admin.err();
    c->admin_ = std::move(admin.value());
    auto r = co_await c->bring_up();
    if (!r) {
        co_await c->disconnect();
        co_return r.err();
    }
    if (c->opt_.kato_ms > 0) reactor::local().spawn(c->ka_gate_.hold(c->keep_alive_loop()));
    co_return std::move(c);
}

task<result<void>> controller::bring_up() {
    auto enabled = co_await enable();
    if (!enabled) co_return enabled;
    auto id = co_await identify_controller();
    if (!id) co_return id.err();
    identity_ = std::make_unique<nvme::identify_controller>(id.value());
    // MDTS is a power of two in units of the minimum page size (4 KiB); 0: no limit.
    if (identity_->mdts)
        max_transfer_ = uint32_t(std::min<uint64_t>(4096ull << identity_->mdts, 1u << 30));
    // IOCCSZ counts 16-byte units of the whole capsule, the 64-byte SQE included.
    max_icd_ = identity_->ioccsz > 4 ? identity_->ioccsz * 16 - 64 : 0;
    admin_->set_max_c2h_data(std::max<uint32_t>(max_transfer_, 64 * 1024));
    if (opt_.discovery) co_return result<void>{};

    if (opt_.io_queues > 0) {
        uint32_t n = opt_.io_queues - 1;
        auto q = co_await set_features(nvme::feature::number_of_queues, n | (n << 16));
        if (!q) co_return q.err();
        auto st = nvme::status::from_field(q->status);
        if (!st.ok()) {
            spdlog::warn("initiator: Set Features Number of Queues failed: sc {:#x}", st.code);
            co_return error{EIO};
        }
        unsigned granted = std::min((q->dw0 & 0xffff) + 1, (q->dw0 >> 16) + 1);
        if (granted < opt_.io_queues) {
            spdlog::info("initiator: {} granted {} I/O queues of {}", opt_.subnqn, granted,
                         opt_.io_queues);
            opt_.io_queues = granted;
        }
    }
    auto list = co_await active_namespaces();
    if (!list) co_return list.err();
    nsids_ = std::move(list.value());
    for (uint32_t nsid : nsids_) {
        auto ns = co_await identify_namespace(nsid);
        if (!ns) co_return ns.err();
        ns_data_[nsid] = std::make_unique<nvme::identify_namespace>(ns.value());
    }
    co_return co_await create_io_queues();
}

task<result<void>> controller::enable() {
    auto cap = co_await get_property(nvme::reg::cap, true);
    if (!cap) co_return cap.err();
    cap_ = cap.value();
    auto cleared = co_await set_property(nvme::reg::cc, cc_enable, false);
    if (!cleared) co_return cleared;
    // CAP.TO: worst-case time to ready, 500 ms units.
    auto limit = std::chrono::milliseconds(500 * std::max<uint64_t>((cap_ >> 24) & 0xff, 1));
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        auto csts = co_await get_property(nvme::reg::csts, false);
        if (!csts) co_return csts.err();
        if (csts.value() & nvme::csts_bits::cfs) co_return error{EIO};
        if (csts.value() & nvme::csts_bits::rdy) co_return result<void>{};
        if (std::chrono::steady_clock::now() > deadline) co_return error{ETIMEDOUT};
        co_await sleep(10ms);
    }
}

queue_options controller::io_queue_options(unsigned i) const {
    uint16_t mqes = uint16_t(cap_ & 0xffff);  // 0's based
    queue_options q = admin_queue_options(opt_);
    q.qid = uint16_t(i + 1);
    q.cntlid = admin_->cntlid();
    q.depth = uint16_t(std::min<uint32_t>(opt_.queue_depth, uint32_t(mqes) + 1));
    q.kato_ms = 0;
    q.max_icd = max_icd_;
    q.max_c2h_data = max_transfer_;
    q.reconnect_attempts = opt_.reconnect_attempts;
    q.reconnect_delay = opt_.reconnect_delay;
    q.tls = tls_;
    return q;
}

task<result<void>> controller::create_io_queues() {
    for (unsigned i = 0; i < opt_.io_queues; ++i) {
        unsigned r = opt_.reactors.empty() ? home_ : opt_.reactors[i % opt_.reactors.size()];
        // Created on its reactor, so that its socket and loops live there.
        // Only trivial captures: GCC 12 lost a coroutine local captured by copy.
        auto made = co_await on(r, [this, i]() { return queue::connect(io_queue_options(i)); });
        if (!made) co_return made.err();
        io_.push_back(std::move(made.value()));
    }
    co_return result<void>{};
}

task<void> controller::keep_alive_loop() {
    auto period = std::chrono::milliseconds(opt_.kato_ms / 2);
    for (;;) {
        int slept = co_await sleep(period).abort_with(ka_stop_);
        if (slept == -ECANCELED) break;
        auto r = co_await keep_alive();
        if (!r) {
            spdlog::warn("initiator: keep-alive to {} failed: {}", opt_.subnqn, r.err().message());
            if (admin_->current_state() != queue::state::live) break;
        }
    }
}

task<void> controller::disconnect() {
    ka_stop_.request_abort();
    co_await ka_gate_.close();
    for (auto& q : io_) {
        queue* raw = q.get();
        co_await on(raw->reactor_id(), [raw]() -> task<void> { co_await raw->close(); });
        // Freed on its reactor, as everything of its connection was.
        co_await on(raw->reactor_id(), [&q]() { q.reset(); });
    }
    io_.clear();
    if (admin_) {
        if (admin_->current_state() == queue::state::live && !opt_.discovery) {
            // Normal shutdown notification (Base 3.6.2), bounded by CAP.TO.
            auto shn = co_await set_property(nvme::reg::cc, cc_enable | cc_shn_normal, false);
            if (shn) {
                auto deadline = std::chrono::steady_clock::now() + 2s;
                while (std::chrono::steady_clock::now() < deadline) {
                    auto csts = co_await get_property(nvme::reg::csts, false);
                    if (!csts || (csts.value() & (3u << 2)) == nvme::csts_bits::shst_complete)
                        break;
                    co_await sleep(5ms);
                }
            }
        }
        co_await admin_->close();
    }
}

queue* controller::io(unsigned reactor) {
    for (auto& q : io_)
        if (q->reactor_id() == reactor) return q.get();
    return nullptr;
}

queue* controller::local_io() {
    return io(reactor::local().id());
}

const nvme::identify_namespace* controller::namespace_data(uint32_t nsid) const {
    auto it = ns_data_.find(nsid);
    return it == ns_data_.end() ? nullptr : it->second.get();
}

// ---- admin helpers ----------------------------------------------------------

task<result<uint32_t>> controller::admin_cmd(nvme::command cmd, std::span<std::byte> in) {
    iovec iov{in.data(), in.size()};
    auto r = co_await admin_->submit(
        cmd, {}, in.empty() ? std::span<const iovec>{} : std::span<const iovec>(&iov, 1));
    if (!r) co_return r.err();
    auto st = nvme::status::from_field(r->status);
    if (!st.ok()) {
        spdlog::warn("initiator: admin command {:#x} to {} failed: sct {} sc {:#x}", cmd.opcode,
                     opt_.subnqn, int(st.type), st.code);
        co_return error{EIO};
    }
    co_return r->dw0;
}

task<result<nvme::completion>> controller::identify(nvme::cns cns, uint32_t nsid,
                                                    std::span<std::byte> out4k) {
    auto c = make_admin(nvme::admin_opcode::identify, nsid);
    c.cdw10 = uint8_t(cns);
    iovec iov{out4k.data(), out4k.size()};
    co_return co_await admin_->submit(c, {}, {&iov, 1});
}

task<result<nvme::identify_controller>> controller::identify_controller() {
    auto id = std::make_unique<nvme::identify_controller>();
    auto c = make_admin(nvme::admin_opcode::identify);
    c.cdw10 = uint8_t(nvme::cns::controller);
    auto r = co_await admin_cmd(c, {reinterpret_cast<std::byte*>(id.get()), sizeof *id});
    if (!r) co_return r.err();
    co_return *id;
}

task<result<nvme::identify_namespace>> controller::identify_namespace(uint32_t nsid) {
    auto id = std::make_unique<nvme::identify_namespace>();
    auto c = make_admin(nvme::admin_opcode::identify, nsid);
    c.cdw10 = uint8_t(nvme::cns::namespace_data);
    auto r = co_await admin_cmd(c, {reinterpret_cast<std::byte*>(id.get()), sizeof *id});
    if (!r) co_return r.err();
    co_return *id;
}

task<result<nvme::identify_namespace>> controller::refresh_namespace(uint32_t nsid) {
    auto it = ns_data_.find(nsid);
    if (it == ns_data_.end()) co_return error{EINVAL};
    auto id = co_await identify_namespace(nsid);
    if (!id) co_return id.err();
    // In place: the data stay where ns objects made meanwhile look for them.
    *ns_data_[nsid] = id.value();
    co_return id.value();
}

task<result<std::vector<uint32_t>>> controller::active_namespaces() {
    std::vector<uint32_t> list(1024);
    auto c = make_admin(nvme::admin_opcode::identify);
    c.cdw10 = uint8_t(nvme::cns::active_namespaces);
    auto r = co_await admin_cmd(c, std::as_writable_bytes(std::span(list)));
    if (!r) co_return r.err();
    std::erase(list, 0u);
    co_return list;
}

task<result<nvme::completion>> controller::get_log_page(uint8_t lid, uint64_t offset,
                                                        std::span<std::byte> out, uint32_t nsid) {
    if (out.empty() || out.size() % 4 != 0 || offset % 4 != 0) co_return error{EINVAL};
    uint32_t numd = uint32_t(out.size() / 4 - 1);  // 0's based dwords
    auto c = make_admin(nvme::admin_opcode::get_log_page, nsid);
    c.cdw10 = lid | ((numd & 0xffff) << 16);
    c.cdw11 = numd >> 16;
    c.cdw12 = uint32_t(offset);
    c.cdw13 = uint32_t(offset >> 32);
    iovec iov{out.data(), out.size()};
    co_return co_await admin_->submit(c, {}, {&iov, 1});
}

task<result<nvme::completion>> controller::get_features(nvme::feature fid, uint32_t cdw11,
                                                        uint32_t nsid) {
    auto c = make_admin(nvme::admin_opcode::get_features, nsid);
    c.cdw10 = uint8_t(fid);
    c.cdw11 = cdw11;
    co_return co_await admin_->submit(c);
}

task<result<nvme::completion>> controller::set_features(nvme::feature fid, uint32_t cdw11,
                                                        uint32_t nsid, bool save) {
    auto c = make_admin(nvme::admin_opcode::set_features, nsid);
    c.cdw10 = uint8_t(fid) | (save ? 1u << 31 : 0);
    c.cdw11 = cdw11;
    co_return co_await admin_->submit(c);
}

task<result<nvme::completion>> controller::keep_alive() {
    co_return co_await admin_->submit(make_admin(nvme::admin_opcode::keep_alive));
}

task<result<uint64_t>> controller::get_property(uint32_t offset, bool eight_bytes) {
    nvme::property_command p{};
    p.opcode = uint8_t(nvme::admin_opcode::fabrics);
    p.fctype = uint8_t(nvme::fabrics_type::property_get);
    p.attrib = eight_bytes ? 1 : 0;
    p.offset = offset;
    nvme::command c;
    std::memcpy(&c, &p, sizeof c);
    auto r = co_await admin_->submit(c);
    if (!r) co_return r.err();
    if (!nvme::status::from_field(r->status).ok()) co_return error{EIO};
    co_return uint64_t(r->dw0) | (eight_bytes ? uint64_t(r->dw1) << 32 : 0);
}

task<result<void>> controller::set_property(uint32_t offset, uint64_t value, bool eight_bytes) {
    nvme::property_command p{};
    p.opcode = uint8_t(nvme::admin_opcode::fabrics);
    p.fctype = uint8_t(nvme::fabrics_type::property_set);
    p.attrib = eight_bytes ? 1 : 0;
    p.offset = offset;
    p.value = value;
    nvme::command c;
    std::memcpy(&c, &p, sizeof c);
    auto r = co_await admin_->submit(c);
    if (!r) co_return r.err();
    if (!nvme::status::from_field(r->status).ok()) co_return error{EIO};
    co_return result<void>{};
}

}  // namespace weft::initiator
