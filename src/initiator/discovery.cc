#include "initiator/discovery.h"

#include <cstring>
#include <memory>

#include "nvme/fabrics.h"
#include "nvme/log_pages.h"

namespace weft::initiator {

namespace {

constexpr int max_rereads = 4;
constexpr uint64_t max_records = 4096;  // 4 MiB of log: more is a broken target

task<result<std::vector<discovery_entry>>> read_log(controller& c) {
    constexpr auto lid = uint8_t(nvme::log_id::discovery);
    for (int round = 0; round < max_rereads; ++round) {
        nvme::discovery_log_header h{};
        auto hb = std::as_writable_bytes(std::span(&h, 1));
        auto r = co_await c.get_log_page(lid, 0, hb);
        if (!r) co_return r.err();
        if (!nvme::status::from_field(r->status).ok()) co_return error{EIO};
        if (h.numrec > max_records) co_return error{EPROTO};
        std::vector<nvme::discovery_log_entry> recs(h.numrec);
        if (!recs.empty()) {
            r = co_await c.get_log_page(lid, sizeof h, std::as_writable_bytes(std::span(recs)));
            if (!r) co_return r.err();
            if (!nvme::status::from_field(r->status).ok()) co_return error{EIO};
        }
        nvme::discovery_log_header again{};
        r = co_await c.get_log_page(lid, 0, std::as_writable_bytes(std::span(&again, 1)));
        if (!r) co_return r.err();
        if (again.genctr != h.genctr) continue;  // changed while we read it
        std::vector<discovery_entry> out;
        for (const auto& e : recs) {
            discovery_entry d;
            d.trtype = e.trtype;
            d.adrfam = e.adrfam;
            d.subtype = e.subtype;
            d.portid = e.portid;
            d.cntlid = e.cntlid;
            d.treq = e.treq;
            d.sectype = e.tsas[0];
            d.traddr = std::string(nvme::get_str(e.traddr));
            d.trsvcid = std::string(nvme::get_str(e.trsvcid));
            d.subnqn = std::string(nvme::get_str(e.subnqn));
            // Fixed-width fields may be padded with spaces.
            for (auto* s : {&d.traddr, &d.trsvcid, &d.subnqn})
                while (!s->empty() && s->back() == ' ') s->pop_back();
            out.push_back(std::move(d));
        }
        co_return out;
    }
    co_return error{EAGAIN};
}

task<result<std::vector<discovery_entry>>> discover_with(controller_options* raw) {
    std::unique_ptr<controller_options> co(raw);
    auto c = co_await controller::connect(*co);
    if (!c) co_return c.err();
    auto entries = co_await read_log(*c.value());
    co_await c.value()->disconnect();
    co_return entries;
}

}  // namespace

// Not a coroutine: GCC 12 frees a by-value coroutine parameter built from a
// braced list twice, so the options move to the heap before any suspension.
task<result<std::vector<discovery_entry>>> discover(discovery_options opt) {
    auto co = std::make_unique<controller_options>();
    co->address = opt.address;
    co->subnqn = std::string(nvme::discovery_nqn);
    co->hostnqn = std::move(opt.hostnqn);
    co->hostid = opt.hostid;
    co->io_queues = 0;
    co->admin_depth = 8;
    co->kato_ms = 0;  // a short-lived discovery connection needs none
    co->command_timeout = opt.timeout;
    co->connect_timeout = opt.timeout;
    co->discovery = true;
    co->tls_key = std::move(opt.tls_key);
    return discover_with(co.release());
}

}  // namespace weft::initiator
