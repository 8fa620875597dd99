#include "initiator/nvmf_bdev.h"

#include <algorithm>

#include "nvme/identify.h"

namespace weft::initiator {

int to_errno(const result<nvme::status>& r) {
    if (!r) return -r.err().code;
    const nvme::status& s = r.value();
    if (s.ok()) return 0;
    if (s == nvme::sc::lba_out_of_range) return -ERANGE;
    if (s.type == nvme::sct::generic && s.code == nvme::sc::reservation_conflict.code)
        return -EACCES;  // another host holds a reservation
    if (s == nvme::sc::invalid_field) return -EINVAL;
    if (s.type == nvme::sct::command_specific && s.code == 0x82) return -EROFS;  // write protected
    return -EIO;
}

namespace {

class nvmf_channel final : public weft::bdev::channel {
  public:
    nvmf_channel(bdev::bdev& dev, ns n) : dev_(dev), ns_(n) {}

    task<int> read(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov) override {
        if (int rc = dev_.check_io(lba, nblocks, iov)) co_return rc;
        if (nblocks == 0) co_return 0;
        co_return co_await split(lba, nblocks, iov, false, false);
    }
    task<int> write(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov, bool fua) override {
        if (int rc = dev_.check_io(lba, nblocks, iov)) co_return rc;
        if (nblocks == 0) co_return 0;
        co_return co_await split(lba, nblocks, iov, true, fua);
    }
    task<int> flush() override { co_return to_errno(co_await ns_.flush()); }
    task<int> write_zeroes(uint64_t lba, uint64_t nblocks) override {
        if (int rc = dev_.check_range(lba, nblocks)) co_return rc;
        for (uint64_t done = 0; done < nblocks;) {
            uint32_t n = uint32_t(std::min<uint64_t>(nblocks - done, 0x10000));
            int rc = to_errno(co_await ns_.write_zeroes(lba + done, n));
            if (rc) co_return rc;
            done += n;
        }
        co_return 0;
    }
    task<int> unmap(uint64_t lba, uint64_t nblocks) override {
        if (int rc = dev_.check_range(lba, nblocks)) co_return rc;
        for (uint64_t done = 0; done < nblocks;) {
            uint32_t n = uint32_t(std::min<uint64_t>(nblocks - done, 0xffffffffu));
            int rc = to_errno(co_await ns_.deallocate(lba + done, n));
            if (rc) co_return rc;
            done += n;
        }
        co_return 0;
    }

  private:
    // Splits an I/O larger than the controller's MDTS into commands that fit.
    task<int> split(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov, bool write,
                    bool fua) {
        uint32_t bs = dev_.block_size();
        uint32_t max_blocks = std::max<uint32_t>(ns_.ctrl().max_transfer() / bs, 1);
        max_blocks = std::min<uint32_t>(max_blocks, 0x10000);
        if (nblocks <= max_blocks) {
            auto r = write ? co_await ns_.write(lba, nblocks, iov, fua)
                           : co_await ns_.read(lba, nblocks, iov);
            co_return to_errno(r);
        }
        std::vector<iovec> part;
        for (uint32_t done = 0; done < nblocks;) {
            uint32_t n = std::min(nblocks - done, max_blocks);
            part.clear();
            size_t off = size_t(done) * bs, len = size_t(n) * bs;
            for (const iovec& v : iov) {
                if (len == 0) break;
                if (off >= v.iov_len) {
                    off -= v.iov_len;
                    continue;
                }
                size_t k = std::min(v.iov_len - off, len);
                part.push_back({static_cast<char*>(v.iov_base) + off, k});
                len -= k;
                off = 0;
            }
            auto r = write ? co_await ns_.write(lba + done, n, part, fua)
                           : co_await ns_.read(lba + done, n, part);
            if (int rc = to_errno(r)) co_return rc;
            done += n;
        }
        co_return 0;
    }

    bdev::bdev& dev_;
    ns ns_;
};

class nvmf_bdev final : public weft::bdev::bdev {
  public:
    nvmf_bdev(properties p, controller& c, uint32_t nsid)
        : bdev(std::move(p)), ctrl_(c), nsid_(nsid) {}

    std::unique_ptr<weft::bdev::channel> open_channel() override {
        return std::make_unique<nvmf_channel>(*this, ns(ctrl_, nsid_));
    }
    // The size is the remote namespace's; it changes there, not here
    // (rescan() learns it).
    result<void> resize(uint64_t) override { return error{ENOTSUP}; }

    task<result<uint64_t>> rescan() {
        auto id = co_await ctrl_.refresh_namespace(nsid_);
        if (!id) co_return id.err();
        const uint64_t n = id.value().nsze;
        auto r = apply_resize(n, [](uint64_t, uint64_t) { return result<void>{}; });
        if (!r) co_return r.err();
        co_return n;
    }

  private:
    controller& ctrl_;
    uint32_t nsid_;
};

}  // namespace

task<result<uint64_t>> rescan(bdev::bdev& b) {
    auto* nb = dynamic_cast<nvmf_bdev*>(&b);
    if (!nb) co_return error{EINVAL};
    co_return co_await nb->rescan();
}

std::unique_ptr<bdev::bdev> make_nvmf_bdev(std::string name, controller& c, uint32_t nsid) {
    const nvme::identify_namespace* id = c.namespace_data(nsid);
    if (!id) return nullptr;
    ns n(c, nsid);
    bdev::bdev::properties p;
    p.name = std::move(name);
    p.block_size = n.block_size();
    p.num_blocks = n.num_blocks();
    p.volatile_write_cache = c.identity().vwc & nvme::ctrl_bits::vwc_present;
    p.unmap_reads_zeroes = (id->dlfeat & 7) == 1;  // deallocated blocks read as zeroes
    p.read_only = false;
    return std::make_unique<nvmf_bdev>(std::move(p), c, nsid);
}

}  // namespace weft::initiator
