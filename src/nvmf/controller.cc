#include "nvmf/controller.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "nvme/identify.h"
#include "nvme/log_pages.h"
#include "nvmf/target.h"
#include "runtime/reactor.h"
#include "runtime/uring_op.h"

namespace weft::nvmf {

namespace sc = nvme::sc;
using nvme::admin_opcode;

controller::controller(target& tgt, std::shared_ptr<subsystem> ss, std::string hostnqn,
                       host_id hostid, uint32_t kato_ms, controller_limits limits,
                       unsigned home_reactor)
    : target_(tgt),
      subsys_(std::move(ss)),
      hostnqn_(std::move(hostnqn)),
      hostid_(hostid),
      limits_(limits),
      home_(home_reactor),
      kato_ms_(kato_ms),
      last_keep_alive_(std::chrono::steady_clock::now()) {}

controller::~controller() = default;

void controller::start() {
    // KATO 0: no keep-alive (e.g. a discovery controller), until a Set
    // Features Keep Alive Timer asks for one and calls this again.
    if (kato_ms_ == 0 || watchdog_running_ || shut_down_) return;
    watchdog_running_ = true;
    auto self = shared_from_this();
    reactor::local().spawn([](std::shared_ptr<controller> c) -> task<void> {
        co_await c->keep_alive_watchdog();
        c->watchdog_running_ = false;
    }(self));
}

task<void> controller::keep_alive_watchdog() {
    // Checked at half the timeout: a controller dies between KATO and 1.5 KATO
    // after the host's last Keep Alive, never before KATO.
    while (!shut_down_) {
        auto kato = std::chrono::milliseconds(kato_ms_);
        int rc = co_await sleep(kato / 2).abort_with(stop_);
        if (rc == -ECANCELED || shut_down_) co_return;
        // Set Features cleared KATO meanwhile: the timer is disabled.
        if (kato_ms_ == 0) co_return;
        if (std::chrono::steady_clock::now() - last_keep_alive_ > kato) {
            spdlog::warn("controller {} of {} (host {}): keep-alive timeout ({} ms), tearing down",
                         cntlid_, subsys_->nqn(), hostnqn_, kato_ms_);
            shutdown("keep-alive timeout");
            co_return;
        }
    }
}

nvme::status controller::add_io_queue(uint16_t qid, uint16_t sqsize, unsigned reactor,
                                      std::weak_ptr<queue_link> link) {
    if (!enabled()) return sc::command_sequence_error;
    // A discovery controller has an admin queue only (NVMe-oF 1.1, 5).
    if (is_discovery()) return sc::connect_invalid_parameters;
    std::lock_guard lock(queues_mutex_);
    uint32_t granted = num_queues_granted_ ? num_queues_granted_ : limits_.max_io_queues;
    if (qid == 0 || qid > granted) return sc::connect_invalid_parameters;
    if (sqsize == 0 || sqsize >= limits_.max_queue_depth) return sc::connect_invalid_parameters;
    for (auto& q : io_queues_)
        if (q.qid == qid) return sc::connect_invalid_parameters;
    io_queues_.push_back({qid, reactor, std::move(link)});
    return sc::success;
}

void controller::remove_io_queue(uint16_t qid) {
    std::lock_guard lock(queues_mutex_);
    std::erase_if(io_queues_, [&](auto& q) { return q.qid == qid; });
}

void controller::shutdown(const char* why) {
    if (shut_down_.exchange(true, std::memory_order_acq_rel)) return;
    ready_.store(false, std::memory_order_release);
    spdlog::info("controller {} of {} (host {}) ends: {}", cntlid_, subsys_->nqn(), hostnqn_, why);
    stop_.request_abort();
    for (auto* w : aers_) {
        w->cancelled = true;
        reactor::local().schedule(w->h);
    }
    aers_.clear();
    subsys_->unregister_controller(cntlid_);
    std::vector<io_queue_entry> queues;
    {
        std::lock_guard lock(queues_mutex_);
        queues.swap(io_queues_);
    }
    // Each queue closes on its own reactor; it holds its own reference.
    for (auto& q : queues) {
        auto* w = new std::weak_ptr<queue_link>(q.link);
        reactor::local().send(q.reactor, {[](void* p) {
                                              auto* wp = static_cast<std::weak_ptr<queue_link>*>(p);
                                              if (auto l = wp->lock()) l->close_from_controller();
                                              delete wp;
                                          },
                                          w});
    }
    if (auto l = admin_link_.lock()) l->close_from_controller();
}

// ---- properties -------------------------------------------------------------

void controller::property_get(request& r) {
    auto& pc = reinterpret_cast<const nvme::property_command&>(r.cmd);
    bool eight = (pc.attrib & 7) == 1;
    uint64_t v = 0;
    switch (pc.offset) {
        case nvme::reg::cap:
            // TO: 500 ms units; 10 s is plenty for a target that is ready at once.
            v = nvme::make_cap(uint16_t(limits_.max_queue_depth - 1), 20);
            break;
        case nvme::reg::vs:
            v = nvme::version(1, 3);
            break;
        case nvme::reg::cc:
            v = cc_.raw;
            break;
        case nvme::reg::csts:
            v = csts_;
            break;
        default:
            return r.set(sc::invalid_field);
    }
    if (eight != (pc.offset == nvme::reg::cap)) return r.set(sc::invalid_field);
    r.cpl.dw0 = uint32_t(v);
    r.cpl.dw1 = uint32_t(v >> 32);
}

void controller::property_set(request& r) {
    auto& pc = reinterpret_cast<const nvme::property_command&>(r.cmd);
    if (pc.offset != nvme::reg::cc || (pc.attrib & 7) != 0) return r.set(sc::invalid_field);
    nvme::cc_reg next{uint32_t(pc.value)};
    nvme::cc_reg prev = cc_;
    cc_ = next;
    if (next.en() && !prev.en()) {
        // Fabrics controllers only take SQE 64 / CQE 16 bytes and 4 KiB pages.
        if (next.iosqes() != 6 || next.iocqes() != 4 || next.mps() != 0 || next.css() != 0) {
            csts_ |= nvme::csts_bits::cfs;
            return;
        }
        csts_ |= nvme::csts_bits::rdy;
        ready_.store(true, std::memory_order_release);
    } else if (!next.en() && prev.en()) {
        // Controller reset: CSTS is back to its reset value (RDY, CFS and
        // SHST 0, Base 2.0 3.7.2); the host re-creates its I/O queues.
        csts_ = 0;
        ready_.store(false, std::memory_order_release);
    }
    if (next.shn() && !prev.shn()) {
        csts_ = (csts_ & ~(3u << 2)) | nvme::csts_bits::shst_complete;
        ready_.store(false, std::memory_order_release);
    } else if (!next.shn() && prev.shn()) {
        csts_ &= ~(3u << 2);  // no shutdown to report any more (as Linux nvmet)
    }
}

// ---- admin dispatch ---------------------------------------------------------

task<void> controller::execute_admin(request& r) {
    r.set(sc::success);
    auto op = admin_opcode(r.cmd.opcode);
    if (op == admin_opcode::fabrics) {
        switch (nvme::fabrics_type(nvme::fctype_of(r.cmd))) {
            case nvme::fabrics_type::property_get:
                property_get(r);
                break;
            case nvme::fabrics_type::property_set:
                property_set(r);
                break;
            case nvme::fabrics_type::connect:
                r.set(sc::command_sequence_error);
                break;
            default:
                r.set(sc::invalid_opcode);
                break;
        }
        co_return;
    }
    if (!enabled()) {
        r.set(sc::command_sequence_error);
        co_return;
    }
    if (op == admin_opcode::keep_alive) last_keep_alive_ = std::chrono::steady_clock::now();
    switch (op) {
        case admin_opcode::identify:
            identify(r);
            break;
        case admin_opcode::get_log_page:
            get_log_page(r);
            break;
        case admin_opcode::get_features:
            get_features(r);
            break;
        case admin_opcode::set_features:
            set_features(r);
            break;
        case admin_opcode::keep_alive:
            break;
        case admin_opcode::async_event_request:
            co_await async_event(r);
            break;
        case admin_opcode::abort:
            // Commands here complete promptly; report "not aborted" (dw0 bit 0).
            r.cpl.dw0 = 1;
            break;
        default:
            r.set(sc::invalid_opcode);
            break;
    }
}

// ---- identify ---------------------------------------------------------------

void controller::identify_controller(request& r) {
    nvme::identify_controller id{};
    id.vid = 0x1b36;  // the QEMU/Red Hat PCI vendor, as software targets commonly use
    id.ssvid = id.vid;
    nvme::set_ascii(id.sn, subsys_->serial());
    nvme::set_ascii(id.mn, subsys_->model());
    nvme::set_ascii(id.fr, "weft0.1");
    id.rab = 6;
    id.cmic = nvme::ctrl_bits::cmic_multi_controller;
    // MDTS in units of 4 KiB pages as a power of two.
    uint8_t mdts = 0;
    while ((4096u << mdts) < limits_.max_transfer) ++mdts;
    id.mdts = mdts;
    id.cntlid = cntlid_;
    id.ver = nvme::version(1, 3);
    id.cntrltype = is_discovery() ? 2 : 1;
    id.aerl = 3;  // four outstanding AERs
    id.lpa = nvme::ctrl_bits::lpa_extended_data;
    id.elpe = 0;
    id.kas = 10;  // 1 s granularity
    id.sqes = 0x66;
    id.cqes = 0x44;
    id.maxcmd = limits_.max_queue_depth;
    id.sgls = nvme::ctrl_bits::sgls_supported | nvme::ctrl_bits::sgls_offset;
    id.msdbd = 1;
    id.ioccsz = (64 + limits_.in_capsule_data) / 16;
    id.iorcsz = 1;
    id.icdoff = 0;
    nvme::set_nqn(id.subnqn, subsys_->nqn());
    if (!is_discovery()) {
        id.oaes = nvme::ctrl_bits::oaes_namespace_attribute | nvme::ctrl_bits::oaes_ana_change;
        id.nn = subsystem::max_namespaces;
        id.mnan = subsystem::max_namespaces;
        // ANA: one group, this path's state in it (subsystem.h).
        id.cmic |= nvme::ctrl_bits::cmic_ana;
        id.anacap = nvme::ctrl_bits::anacap_states;
        id.anatt = 10;  // seconds a path may stay in "change"
        id.anagrpmax = 1;
        id.nanagrpid = 1;
        id.oncs = nvme::ctrl_bits::oncs_compare | nvme::ctrl_bits::oncs_dsm |
                  nvme::ctrl_bits::oncs_write_zeroes | nvme::ctrl_bits::oncs_reservations;
        id.vwc = nvme::ctrl_bits::vwc_present | nvme::ctrl_bits::vwc_flush_broadcast;
        id.wctemp = 0x0157;  // 343 K
        id.cctemp = 0x0175;  // 373 K
        id.awun = 0;
        id.awupf = 0;
    }
    // Power state 0: 25 W maximum, as an example a host can print.
    uint16_t mp = 2500;
    std::memcpy(id.psd[0].raw, &mp, 2);
    r.reply(&id, sizeof id);
}

void controller::identify(request& r) {
    auto cns = nvme::cns(r.cmd.cdw10 & 0xff);
    if (cns == nvme::cns::controller) return identify_controller(r);
    if (is_discovery()) return r.set(sc::invalid_field);
    auto table = subsys_->namespaces();
    uint32_t nsid = r.cmd.nsid;
    switch (cns) {
        case nvme::cns::namespace_data: {
            if (nsid == 0 || (nsid > subsystem::max_namespaces && nsid != 0xffffffff))
                return r.set(sc::invalid_namespace);
            nvme::identify_namespace id{};
            auto it = table->find(nsid);
            if (it != table->end()) {
                const ns& n = *it->second;
                uint64_t blocks = n.dev().num_blocks();
                id.nsze = id.ncap = id.nuse = blocks;
                id.nlbaf = 0;
                id.flbas = 0;
                id.lbaf[0].lbads = uint8_t(std::countr_zero(n.dev().block_size()));
                id.nmic = 1;       // may be attached to several controllers
                id.rescap = 0x7e;  // all six reservation types
                id.dlfeat = n.dev().unmap_reads_zeroes() ? 0x09 : 0x00;  // zeroes after deallocate
                id.nows = 0;
                std::memcpy(id.nguid, n.ids().nguid.data(), 16);
                std::memcpy(id.eui64, n.ids().eui64.data(), 8);
                id.anagrpid = subsystem::ana_group;
            }
            // An inactive NSID in range answers zeroes, as the spec says.
            return r.reply(&id, sizeof id);
        }
        case nvme::cns::active_namespaces: {
            if (nsid >= 0xfffffffe) return r.set(sc::invalid_namespace);
            uint32_t list[1024] = {};
            size_t n = 0;
            for (auto it = table->upper_bound(nsid); it != table->end() && n < 1024; ++it)
                list[n++] = it->first;
            return r.reply(list, sizeof list);
        }
        case nvme::cns::namespace_descriptors: {
            auto it = table->find(nsid);
            if (it == table->end()) return r.set(sc::invalid_namespace);
            const ns_ids& ids = it->second->ids();
            std::byte out[4096] = {};
            size_t off = 0;
            auto add = [&](nvme::nidt type, const void* p, uint8_t len) {
                nvme::ns_descriptor_header h{uint8_t(type), len, 0};
                std::memcpy(out + off, &h, sizeof h);
                std::memcpy(out + off + sizeof h, p, len);
                off += sizeof h + len;
            };
            add(nvme::nidt::eui64, ids.eui64.data(), 8);
            add(nvme::nidt::nguid, ids.nguid.data(), 16);
            add(nvme::nidt::uuid, ids.uuid.data(), 16);
            uint8_t csi = 0;  // NVM command set
            add(nvme::nidt::csi, &csi, 1);
            return r.reply(out, sizeof out);
        }
        default:
            return r.set(sc::invalid_field);
    }
}

// ---- log pages --------------------------------------------------------------

namespace {
void put_u128(uint8_t (&field)[16], uint64_t v) {
    std::memset(field, 0, 16);
    std::memcpy(field, &v, 8);
}
}  // namespace

void controller::get_log_page(request& r) {
    auto lid = nvme::log_id(r.cmd.cdw10 & 0xff);
    bool rae = r.cmd.cdw10 & (1u << 15);
    uint64_t numd = ((uint64_t(r.cmd.cdw11 & 0xffff) << 16) | (r.cmd.cdw10 >> 16)) + 1;
    uint64_t offset = uint64_t(r.cmd.cdw12) | (uint64_t(r.cmd.cdw13) << 32);
    if (numd * 4 > r.data_len) return r.set(sc::sgl_data_length_invalid);
    if (offset & 3) return r.set(sc::invalid_field);
    // Builds the page, then copies the window [offset, offset + length).
    auto send = [&](const void* page, size_t size) {
        if (offset > size) return r.set(sc::invalid_field);
        r.reply(static_cast<const std::byte*>(page) + offset, size - offset);
    };
    if (is_discovery()) {
        if (lid != nvme::log_id::discovery) return r.set(sc::invalid_log_page);
        return discovery_log(r, offset);
    }
    switch (lid) {
        case nvme::log_id::error_information: {
            nvme::error_log_entry e{};
            return send(&e, sizeof e);
        }
        case nvme::log_id::smart_health: {
            nvme::smart_log s{};
            s.temperature = 300;
            s.available_spare = 100;
            s.available_spare_threshold = 10;
            // Data units: thousands of 512-byte units, rounded up.
            put_u128(s.data_units_read, (blocks_read.load() + 999) / 1000);
            put_u128(s.data_units_written, (blocks_written.load() + 999) / 1000);
            put_u128(s.host_reads, read_cmds.load());
            put_u128(s.host_writes, write_cmds.load());
            put_u128(s.power_cycles, 1);
            return send(&s, sizeof s);
        }
        case nvme::log_id::firmware_slot: {
            nvme::firmware_slot_log f{};
            f.afi = 1;
            nvme::set_ascii(f.frs[0], "weft0.1");
            return send(&f, sizeof f);
        }
        case nvme::log_id::changed_namespaces: {
            nvme::changed_namespace_log l{};
            if (changed_overflow_) {
                l.nsid[0] = 0xffffffff;
            } else {
                std::sort(changed_nsids_.begin(), changed_nsids_.end());
                for (size_t i = 0; i < changed_nsids_.size(); ++i) l.nsid[i] = changed_nsids_[i];
            }
            send(&l, sizeof l);
            if (!rae) {
                changed_nsids_.clear();
                changed_overflow_ = false;
                event_masked_[ev_namespace] = false;
                deliver_events();
            }
            return;
        }
        case nvme::log_id::asymmetric_namespace_access: {
            const bool groups_only = (r.cmd.cdw10 >> 8) & 1;  // LSP bit 0: RGO
            std::vector<std::byte> page = ana_log_page(groups_only);
            send(page.data(), page.size());
            if (!rae) {
                event_masked_[ev_ana] = false;
                deliver_events();
            }
            return;
        }
        default:
            return r.set(sc::invalid_log_page);
    }
}

// One group (every namespace is in group 1) with this path's state.
std::vector<std::byte> controller::ana_log_page(bool groups_only) const {
    auto table = subsys_->namespaces();
    nvme::ana_log_header h{};
    h.chgcnt = subsys_->ana_change_count();
    h.ngrps = 1;
    nvme::ana_group_descriptor d{};
    d.grpid = subsystem::ana_group;
    d.nnsids = groups_only ? 0 : uint32_t(table->size());
    d.chgcnt = h.chgcnt;
    d.state = uint8_t(subsys_->ana_state());
    std::vector<std::byte> page(sizeof h + sizeof d + 4 * d.nnsids);
    std::memcpy(page.data(), &h, sizeof h);
    std::memcpy(page.data() + sizeof h, &d, sizeof d);
    size_t off = sizeof h + sizeof d;
    if (!groups_only)
        for (auto& [nsid, n] : *table) {
            std::memcpy(page.data() + off, &nsid, 4);
            off += 4;
        }
    return page;
}

void controller::discovery_log(request& r, uint64_t offset) {
    std::vector<std::byte> page = target_.discovery_log_page(hostnqn_);
    if (offset > page.size()) return r.set(sc::invalid_field);
    r.reply(page.data() + offset, page.size() - offset);
}

// ---- features ---------------------------------------------------------------

void controller::get_features(request& r) {
    auto fid = nvme::feature(r.cmd.cdw10 & 0xff);
    unsigned sel = (r.cmd.cdw10 >> 8) & 7;
    if (sel == 3) {  // supported capabilities: everything changeable, nothing saveable
        r.cpl.dw0 = 0x4;
        return;
    }
    switch (fid) {
        case nvme::feature::arbitration:
            r.cpl.dw0 = arbitration_;
            break;
        case nvme::feature::power_management:
            r.cpl.dw0 = power_state_;
            break;
        case nvme::feature::temperature_threshold:
            r.cpl.dw0 = temp_threshold_;
            break;
        case nvme::feature::error_recovery:
            r.cpl.dw0 = error_recovery_;
            break;
        case nvme::feature::volatile_write_cache:
            r.cpl.dw0 = vwc_enabled_ ? 1 : 0;
            break;
        case nvme::feature::number_of_queues: {
            uint32_t n = (num_queues_granted_ ? num_queues_granted_ : limits_.max_io_queues) - 1;
            r.cpl.dw0 = n | (n << 16);
            break;
        }
        case nvme::feature::interrupt_coalescing:
        case nvme::feature::write_atomicity:
            r.cpl.dw0 = 0;
            break;
        case nvme::feature::async_event_configuration:
            r.cpl.dw0 = aec_;
            break;
        case nvme::feature::keep_alive_timer:
            r.cpl.dw0 = kato_ms_;
            break;
        case nvme::feature::host_identifier:
            if (!(r.cmd.cdw11 & 1)) return r.set(sc::invalid_field);  // fabrics: 128-bit only
            r.reply(hostid_.data(), hostid_.size());
            break;
        default:
            r.set(sc::invalid_field);
            break;
    }
}

void controller::set_features(request& r) {
    auto fid = nvme::feature(r.cmd.cdw10 & 0xff);
    if (r.cmd.cdw10 & (1u << 31)) return r.set(sc::feature_not_saveable);
    uint32_t v = r.cmd.cdw11;
    switch (fid) {
        case nvme::feature::arbitration:
            arbitration_ = v;
            break;
        case nvme::feature::power_management:
            if ((v & 0x1f) != 0) return r.set(sc::invalid_field);  // one power state
            power_state_ = v;
            break;
        case nvme::feature::temperature_threshold:
            temp_threshold_ = v & 0xffff;
            break;
        case nvme::feature::error_recovery:
            error_recovery_ = v;
            break;
        case nvme::feature::volatile_write_cache:
            vwc_enabled_ = v & 1;
            break;
        case nvme::feature::number_of_queues: {
            uint32_t nsqr = (v & 0xffff) + 1, ncqr = (v >> 16) + 1;
            if ((v & 0xffff) == 0xffff || (v >> 16) == 0xffff) return r.set(sc::invalid_field);
            // Once I/O queues exist the count may not change (Base 5.27.1.7).
            // Under the lock: Connects on other reactors read it.
            std::lock_guard lock(queues_mutex_);
            if (!io_queues_.empty()) return r.set(sc::command_sequence_error);
            num_queues_granted_ = std::min<uint32_t>({nsqr, ncqr, limits_.max_io_queues});
            r.cpl.dw0 = (num_queues_granted_ - 1) | ((num_queues_granted_ - 1) << 16);
            break;
        }
        case nvme::feature::async_event_configuration:
            aec_ = v;
            break;
        case nvme::feature::keep_alive_timer:
            kato_ms_ = v;
            last_keep_alive_ = std::chrono::steady_clock::now();
            start();  // a timer from KATO 0 (no watchdog yet); no-op when one runs
            break;
        case nvme::feature::host_identifier:
            return r.set(sc::command_sequence_error);
        case nvme::feature::interrupt_coalescing:
        case nvme::feature::write_atomicity:
            break;
        default:
            return r.set(sc::invalid_field);
    }
}

// ---- asynchronous events ----------------------------------------------------

void controller::on_home(void (*fn)(controller&, uint32_t), uint32_t arg) {
    reactor* here = reactor::local_or_null();
    if (here && here->id() == home_) {
        if (!shut_down_) fn(*this, arg);
        return;
    }
    struct msg {
        std::weak_ptr<controller> w;
        void (*fn)(controller&, uint32_t);
        uint32_t arg;
    };
    auto* m = new msg{weak_from_this(), fn, arg};
    reactor::local().send(home_, {[](void* p) {
                                      auto* m = static_cast<msg*>(p);
                                      if (auto c = m->w.lock(); c && !c->shut_down_)
                                          m->fn(*c, m->arg);
                                      delete m;
                                  },
                                  m});
}

void controller::namespace_changed(uint32_t nsid) {
    on_home(
        [](controller& c, uint32_t nsid) {
            auto& l = c.changed_nsids_;
            if (std::find(l.begin(), l.end(), nsid) == l.end()) {
                if (l.size() >= 1024)
                    c.changed_overflow_ = true;
                else
                    l.push_back(nsid);
            }
            if (c.aec_ & nvme::aec_namespace_attribute) {
                c.event_pending_[ev_namespace] = true;
                c.deliver_events();
            }
        },
        nsid);
}

void controller::ana_changed() {
    on_home(
        [](controller& c, uint32_t) {
            if (c.aec_ & nvme::aec_ana_change) {
                c.event_pending_[ev_ana] = true;
                c.deliver_events();
            }
        },
        0);
}

void controller::deliver_events() {
    // One notice per event type until the host reads its log (Base 5.2).
    static constexpr uint32_t notice[ev_kinds] = {nvme::aen_namespace_changed,
                                                  nvme::aen_ana_change};
    for (int k = 0; k < ev_kinds && !aers_.empty(); ++k) {
        if (!event_pending_[k] || event_masked_[k]) continue;
        aer_waiter* w = aers_.front();
        aers_.pop_front();
        w->dw0 = notice[k];
        event_pending_[k] = false;
        event_masked_[k] = true;
        reactor::local().schedule(w->h);
    }
}

task<void> controller::async_event(request& r) {
    if (aers_.size() >= 4) {
        r.set(sc::async_event_limit_exceeded);
        co_return;
    }
    aer_waiter w;
    struct awaiter {
        controller* c;
        aer_waiter* w;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) {
            w->h = h;
            c->aers_.push_back(w);
            c->deliver_events();
        }
        void await_resume() const noexcept {}
    };
    co_await awaiter{this, &w};
    if (w.cancelled) {
        r.set(sc::abort_sq_deleted);
        co_return;
    }
    r.cpl.dw0 = w.dw0;
}

}  // namespace weft::nvmf
