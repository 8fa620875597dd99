#include "initiator/ns.h"

namespace weft::initiator {

namespace {
// Read/Write/Write Zeroes dwords 10-12: SLBA and the 0's based block count.
void set_range(nvme::command& c, uint64_t lba, uint32_t nblocks) {
    c.cdw10 = uint32_t(lba);
    c.cdw11 = uint32_t(lba >> 32);
    c.cdw12 = (nblocks - 1) & 0xffff;
}
constexpr uint32_t fua_bit = 1u << 30;
constexpr uint32_t deac_bit = 1u << 25;
constexpr uint32_t dsm_ad = 1u << 2;
}  // namespace

ns::ns(controller& c, uint32_t nsid) : ctrl_(&c), nsid_(nsid) {
    if (const auto* id = c.namespace_data(nsid)) {
        block_size_ = 1u << id->lbaf[id->flbas & 0xf].lbads;
        num_blocks_ = id->nsze;
    }
}

task<result<nvme::completion>> ns::submit(nvme::command cmd, std::span<const iovec> out,
                                          std::span<const iovec> in) {
    queue* q = ctrl_->local_io();
    if (!q) co_return error{ENXIO};
    cmd.nsid = nsid_;
    co_return co_await q->submit(cmd, out, in);
}

task<result<nvme::status>> ns::status_of(nvme::command cmd, std::span<const iovec> out,
                                         std::span<const iovec> in) {
    auto r = co_await submit(cmd, out, in);
    if (!r) co_return r.err();
    co_return nvme::status::from_field(r->status);
}

task<result<nvme::status>> ns::read(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov) {
    if (nblocks == 0 || nblocks > 0x10000) co_return error{EINVAL};
    auto c = make_io(nvme::io_opcode::read, nsid_);
    set_range(c, lba, nblocks);
    co_return co_await status_of(c, {}, iov);
}

task<result<nvme::status>> ns::write(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov,
                                     bool fua) {
    if (nblocks == 0 || nblocks > 0x10000) co_return error{EINVAL};
    auto c = make_io(nvme::io_opcode::write, nsid_);
    set_range(c, lba, nblocks);
    if (fua) c.cdw12 |= fua_bit;
    co_return co_await status_of(c, iov, {});
}

task<result<nvme::status>> ns::flush() {
    co_return co_await status_of(make_io(nvme::io_opcode::flush, nsid_));
}

task<result<nvme::status>> ns::write_zeroes(uint64_t lba, uint32_t nblocks, bool deallocate) {
    if (nblocks == 0 || nblocks > 0x10000) co_return error{EINVAL};
    auto c = make_io(nvme::io_opcode::write_zeroes, nsid_);
    set_range(c, lba, nblocks);
    if (deallocate) c.cdw12 |= deac_bit;
    co_return co_await status_of(c);
}

task<result<nvme::status>> ns::deallocate(std::span<const dsm_range> ranges) {
    if (ranges.empty() || ranges.size() > 256) co_return error{EINVAL};
    auto c = make_io(nvme::io_opcode::dataset_management, nsid_);
    c.cdw10 = uint32_t(ranges.size() - 1);
    c.cdw11 = dsm_ad;
    iovec iov{const_cast<dsm_range*>(ranges.data()), ranges.size_bytes()};
    co_return co_await status_of(c, {&iov, 1});
}

task<result<nvme::status>> ns::deallocate(uint64_t lba, uint32_t nblocks) {
    dsm_range r{0, nblocks, lba};
    co_return co_await deallocate({&r, 1});
}

task<result<nvme::status>> ns::reservation_register(reservation_register_action a, uint64_t crkey,
                                                    uint64_t nrkey, bool iekey) {
    auto c = make_io(nvme::io_opcode::reservation_register, nsid_);
    c.cdw10 = uint32_t(a) | (iekey ? 1u << 3 : 0);
    nvme::reservation_keys keys{crkey, nrkey};
    iovec iov{&keys, sizeof keys};
    co_return co_await status_of(c, {&iov, 1});
}

task<result<nvme::status>> ns::reservation_acquire(reservation_acquire_action a,
                                                   nvme::reservation_type type, uint64_t crkey,
                                                   uint64_t prkey) {
    auto c = make_io(nvme::io_opcode::reservation_acquire, nsid_);
    c.cdw10 = uint32_t(a) | (uint32_t(type) << 8);
    nvme::reservation_keys keys{crkey, prkey};
    iovec iov{&keys, sizeof keys};
    co_return co_await status_of(c, {&iov, 1});
}

task<result<nvme::status>> ns::reservation_release(reservation_release_action a,
                                                   nvme::reservation_type type, uint64_t crkey) {
    auto c = make_io(nvme::io_opcode::reservation_release, nsid_);
    c.cdw10 = uint32_t(a) | (uint32_t(type) << 8);
    uint64_t key = crkey;
    iovec iov{&key, sizeof key};
    co_return co_await status_of(c, {&iov, 1});
}

task<result<nvme::status>> ns::reservation_report(std::span<std::byte> out) {
    if (out.size() < 64 || out.size() % 4 != 0) co_return error{EINVAL};
    auto c = make_io(nvme::io_opcode::reservation_report, nsid_);
    c.cdw10 = uint32_t(out.size() / 4 - 1);
    c.cdw11 = 1;  // EDS
    iovec iov{out.data(), out.size()};
    co_return co_await status_of(c, {}, {&iov, 1});
}

}  // namespace weft::initiator
