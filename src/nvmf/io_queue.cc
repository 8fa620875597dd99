#include "nvmf/io_queue.h"

#include <cstring>

#include "nvme/reservation.h"

namespace weft::nvmf {

namespace sc = nvme::sc;
using nvme::io_opcode;

namespace {
nvme::status from_errno(int rc) {
    switch (-rc) {
        case 0:
            return sc::success;
        case ERANGE:
            return sc::lba_out_of_range;
        case ENOSPC:
            return sc::capacity_exceeded;
        case EINVAL:
            return sc::invalid_field;
        case EROFS:
            return nvme::generic(0x20);  // namespace is write protected
        case EACCES:
            return sc::reservation_conflict;
        case ESTALE:
            // A nexus another one has superseded: this path is no good, the
            // host should use another (path-related status, retryable).
            return {nvme::sct::path, 0x00, false};
        default:
            return sc::internal_error;
    }
}

// A path that is not (non-)optimized serves no I/O command (Base 8.1.3.1):
// the host retries on another path.
nvme::status ana_status(nvme::ana_state s) {
    switch (s) {
        case nvme::ana_state::optimized:
        case nvme::ana_state::non_optimized:
            return sc::success;
        case nvme::ana_state::inaccessible:
            return sc::ana_inaccessible;
        case nvme::ana_state::persistent_loss:
            return sc::ana_persistent_loss;
        case nvme::ana_state::change:
            return sc::ana_transition;
    }
    return sc::ana_inaccessible;
}

bool writes_media(io_opcode op) {
    switch (op) {
        case io_opcode::write:
        case io_opcode::write_zeroes:
        case io_opcode::dataset_management:
        case io_opcode::write_uncorrectable:
            return true;
        default:
            return false;
    }
}
}  // namespace

io_queue::io_queue(std::shared_ptr<controller> ctrl) : ctrl_(std::move(ctrl)) {}

io_queue::ns_ref* io_queue::lookup(uint32_t nsid) {
    uint64_t g = ctrl_->subsys().ns_generation();
    if (g != gen_) {
        auto table = ctrl_->subsys().namespaces();
        std::map<uint32_t, ns_ref> next;
        for (auto& [id, n] : *table) {
            auto old = namespaces_.find(id);
            if (old != namespaces_.end() && old->second.n == n)
                next.emplace(id, std::move(old->second));
            else
                next.emplace(id,
                             ns_ref{n, std::shared_ptr<bdev::channel>(n->dev().open_channel())});
        }
        namespaces_.swap(next);
        gen_ = g;
    }
    auto it = namespaces_.find(nsid);
    return it == namespaces_.end() ? nullptr : &it->second;
}

task<void> io_queue::execute(request& r) {
    r.set(sc::success);
    if (!ctrl_->enabled()) {
        r.set(sc::command_sequence_error);
        co_return;
    }
    if (auto a = ana_status(ctrl_->subsys().ana_state()); !a.ok()) {
        r.set(a);
        co_return;
    }
    auto op = io_opcode(r.cmd.opcode);
    if (op == io_opcode::flush && r.cmd.nsid == 0xffffffff) {
        co_await flush(r);
        co_return;
    }
    ns_ref* ref = lookup(r.cmd.nsid);
    if (!ref) {
        r.set(sc::invalid_namespace);
        co_return;
    }
    ns& n = *ref->n;
    switch (op) {
        case io_opcode::reservation_register:
        case io_opcode::reservation_acquire:
        case io_opcode::reservation_release:
        case io_opcode::reservation_report:
            reservation(r, n);
            co_return;
        default:
            break;
    }
    if (!n.allows(ctrl_->hostid(), writes_media(op))) {
        r.set(sc::reservation_conflict);
        co_return;
    }
    switch (op) {
        case io_opcode::read:
            co_await read_write(r, *ref, false);
            break;
        case io_opcode::write:
            co_await read_write(r, *ref, true);
            break;
        case io_opcode::compare:
            co_await compare(r, *ref);
            break;
        case io_opcode::flush:
            r.set(from_errno(co_await ref->ch->flush()));
            break;
        case io_opcode::write_zeroes: {
            uint64_t slba = uint64_t(r.cmd.cdw10) | (uint64_t(r.cmd.cdw11) << 32);
            uint64_t nlb = (r.cmd.cdw12 & 0xffff) + 1;
            auto ch = ref->ch;
            if (int rc = n.dev().check_range(slba, nlb); rc < 0) {
                r.set(from_errno(rc));
                break;
            }
            // DEAC (bit 25) asks for deallocation where it reads back as zeroes.
            bool deac = r.cmd.cdw12 & (1u << 25);
            int rc = deac && n.dev().unmap_reads_zeroes() ? co_await ch->unmap(slba, nlb)
                                                          : co_await ch->write_zeroes(slba, nlb);
            r.set(from_errno(rc));
            break;
        }
        case io_opcode::dataset_management:
            co_await dataset_management(r, *ref);
            break;
        default:
            r.set(sc::invalid_opcode);
            break;
    }
}

task<void> io_queue::read_write(request& r, ns_ref ref, bool write) {
    uint64_t slba = uint64_t(r.cmd.cdw10) | (uint64_t(r.cmd.cdw11) << 32);
    uint32_t nlb = (r.cmd.cdw12 & 0xffff) + 1;
    bool fua = r.cmd.cdw12 & (1u << 30);
    bdev::bdev& dev = ref.n->dev();
    if (int rc = dev.check_range(slba, nlb); rc < 0) {
        r.set(sc::lba_out_of_range);
        co_return;
    }
    uint64_t bytes = uint64_t(nlb) * dev.block_size();
    if (bytes != r.data_len) {
        r.set(sc::sgl_data_length_invalid);
        co_return;
    }
    iovec iov{r.data.data(), r.data_len};
    int rc = write ? co_await ref.ch->write(slba, nlb, {&iov, 1}, fua)
                   : co_await ref.ch->read(slba, nlb, {&iov, 1});
    r.set(from_errno(rc));
    if (rc == 0) {
        if (write) {
            ctrl_->blocks_written += bytes / 512;
            ctrl_->write_cmds++;
        } else {
            ctrl_->blocks_read += bytes / 512;
            ctrl_->read_cmds++;
        }
    }
}

task<void> io_queue::compare(request& r, ns_ref ref) {
    uint64_t slba = uint64_t(r.cmd.cdw10) | (uint64_t(r.cmd.cdw11) << 32);
    uint32_t nlb = (r.cmd.cdw12 & 0xffff) + 1;
    bdev::bdev& dev = ref.n->dev();
    if (dev.check_range(slba, nlb) < 0) {
        r.set(sc::lba_out_of_range);
        co_return;
    }
    if (uint64_t(nlb) * dev.block_size() != r.data_len) {
        r.set(sc::sgl_data_length_invalid);
        co_return;
    }
    buffer media = buffer_pool::local().get(r.data_len);
    iovec iov{media.data(), r.data_len};
    int rc = co_await ref.ch->read(slba, nlb, {&iov, 1});
    if (rc < 0) {
        r.set(from_errno(rc));
        co_return;
    }
    if (std::memcmp(media.data(), r.data.data(), r.data_len) != 0) r.set(sc::compare_failure);
}

task<void> io_queue::dataset_management(request& r, ns_ref ref) {
    uint32_t nr = (r.cmd.cdw10 & 0xff) + 1;
    bool deallocate = r.cmd.cdw11 & (1u << 2);
    struct range {
        uint32_t cattr;
        uint32_t nlb;
        uint64_t slba;
    };
    static_assert(sizeof(range) == 16);
    if (r.data_len < nr * sizeof(range)) {
        r.set(sc::sgl_data_length_invalid);
        co_return;
    }
    if (!deallocate) co_return;  // attributes alone are hints
    bdev::bdev& dev = ref.n->dev();
    for (uint32_t i = 0; i < nr; ++i) {
        range rg;
        std::memcpy(&rg, r.data.data() + i * sizeof(range), sizeof rg);
        if (rg.nlb == 0) continue;
        if (dev.check_range(rg.slba, rg.nlb) < 0) {
            r.set(sc::lba_out_of_range);
            co_return;
        }
        int rc = co_await ref.ch->unmap(rg.slba, rg.nlb);
        if (rc < 0) {
            r.set(from_errno(rc));
            co_return;
        }
    }
}

task<void> io_queue::flush(request& r) {
    // NSID FFFFFFFFh: every namespace of the subsystem.
    lookup(1);
    std::vector<std::shared_ptr<bdev::channel>> chans;
    for (auto& [id, ref] : namespaces_) chans.push_back(ref.ch);
    for (auto& ch : chans) {
        int rc = co_await ch->flush();
        if (rc < 0) {
            r.set(from_errno(rc));
            co_return;
        }
    }
}

void io_queue::reservation(request& r, ns& n) {
    auto op = io_opcode(r.cmd.opcode);
    const host_id& host = ctrl_->hostid();
    unsigned action = r.cmd.cdw10 & 7;
    bool iekey = r.cmd.cdw10 & (1u << 3);
    auto type = nvme::reservation_type((r.cmd.cdw10 >> 8) & 0xff);
    nvme::reservation_keys keys{};
    size_t need = op == io_opcode::reservation_release ? 8 : 16;
    if (op != io_opcode::reservation_report) {
        if (r.data_len < need) return r.set(sc::sgl_data_length_invalid);
        std::memcpy(&keys, r.data.data(), need);
    }
    nvme::status s = n.with_reservations([&](reservation_state& st) -> nvme::status {
        switch (op) {
            case io_opcode::reservation_register:
                return st.register_key(host, ctrl_->cntlid(), action, iekey, keys.current,
                                       keys.other);
            case io_opcode::reservation_acquire:
                return st.acquire(host, action, iekey, type, keys.current, keys.other);
            case io_opcode::reservation_release:
                return st.release(host, action, iekey, type, keys.current);
            default: {
                // Fabrics hosts have 128-bit host IDs: only the extended report fits.
                if (!(r.cmd.cdw11 & 1)) return sc::host_id_inconsistent_format;
                uint64_t len = (uint64_t(r.cmd.cdw10) + 1) * 4;
                if (len > r.data_len) return sc::sgl_data_length_invalid;
                st.report({r.data.data(), size_t(len)});
                return sc::success;
            }
        }
    });
    r.set(s);
}

}  // namespace weft::nvmf
