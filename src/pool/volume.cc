// The volume bdev and its channel: the I/O path of a volume.
//
// A channel belongs to one reactor and holds a channel of the pool's device
// on that reactor. Each I/O is cut at cluster boundaries; each piece reads
// the published map (volume.h) and goes straight to the device when its
// cluster is mapped and, for writes, not shared. Everything else (a first
// write, copy-on-write, deallocation, I/O while a management call has the
// volume frozen) goes to the pool's home reactor, so the fast path never
// takes a lock or allocates on the common case of a single-cluster I/O.
#include "pool/volume.h"

#include <algorithm>
#include <vector>

#include "bdev/iov.h"
#include "pool/engine.h"
#include "pool/pool.h"
#include "runtime/runtime.h"

namespace weft::pool {
namespace {

// The iovecs covering bytes [off, off + len) of `iov`.
std::vector<iovec> slice(std::span<const iovec> iov, uint64_t off, uint64_t len) {
    std::vector<iovec> out;
    for (const iovec& v : iov) {
        if (len == 0) break;
        if (off >= v.iov_len) {
            off -= v.iov_len;
            continue;
        }
        size_t n = std::min<uint64_t>(v.iov_len - off, len);
        out.push_back({static_cast<std::byte*>(v.iov_base) + off, n});
        off = 0;
        len -= n;
    }
    return out;
}

}  // namespace

volume_state::volume_state() {
    reactor* r = reactor::local_or_null();
    if (r && r->rt_or_null()) inflight_count = r->rt_or_null()->size();
    inflight_slots = std::make_unique<inflight_slot[]>(inflight_count);
}

std::atomic<int64_t>& volume_state::inflight_here() {
    reactor* r = reactor::local_or_null();
    return inflight_slots[r ? r->id() % inflight_count : 0].n;
}

int64_t volume_state::inflight() const {
    int64_t sum = 0;
    for (unsigned i = 0; i < inflight_count; ++i) sum += inflight_slots[i].n.load();
    return sum;
}

class volume_bdev final : public bdev::bdev {
  public:
    volume_bdev(properties p, std::shared_ptr<pool> owner, std::shared_ptr<volume_state> st)
        : bdev(std::move(p)), pool_(std::move(owner)), st_(std::move(st)) {}

    std::unique_ptr<weft::bdev::channel> open_channel() override;
    // Volumes change size through pool::resize_volume, which commits first.
    result<void> resize(uint64_t) override { return error{ENOTSUP}; }
    void publish_size(uint64_t n) {
        (void)apply_resize(n, [](uint64_t, uint64_t) -> result<void> { return {}; });
    }

    std::shared_ptr<pool> pool_;
    std::shared_ptr<volume_state> st_;
};

class volume_channel final : public weft::bdev::channel {
  public:
    volume_channel(volume_bdev* v, std::unique_ptr<weft::bdev::channel> base)
        : v_(v),
          base_(std::move(base)),
          eng_(*v->pool_->eng_),
          home_(v->pool_->home()),
          // Sizes are powers of two: shifts, not divisions, on the hot path.
          vshift_(unsigned(__builtin_ctzll(v->block_size()))),
          dshift_(unsigned(__builtin_ctzll(eng_.dev.block_size()))),
          cshift_(unsigned(__builtin_ctzll(eng_.cluster_size()))),
          data_offset_(eng_.geo().data_offset),
          inflight_(v->st_->inflight_here()) {}

    // Not coroutines: the task io() returns is the only frame.
    task<int> read(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov) override {
        return io(false, lba, nblocks, iov, false);
    }
    task<int> write(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov, bool fua) override {
        return io(true, lba, nblocks, iov, fua);
    }
    task<int> flush() override { co_return co_await base_->flush(); }
    task<int> write_zeroes(uint64_t lba, uint64_t nblocks) override {
        co_return co_await unmap(lba, nblocks);
    }
    // Whole clusters are deallocated (home), partial ones zeroed: either way
    // the range reads as zeroes afterwards.
    task<int> unmap(uint64_t lba, uint64_t nblocks) override {
        if (v_->read_only()) co_return -EROFS;
        if (int rc = v_->check_range(lba, nblocks); rc != 0) co_return rc;
        const uint64_t bs = v_->block_size(), cs = eng_.cluster_size();
        uint64_t pos = lba * bs, end = (lba + nblocks) * bs;
        while (pos < end) {
            uint64_t l = pos / cs, off = pos % cs;
            if (off == 0 && end - pos >= cs) {
                uint64_t l1 = end / cs;  // whole clusters [l, l1)
                int rc = co_await on(home_, [&] { return eng_.unmap_clusters(*v_->st_, l, l1); });
                if (rc != 0) co_return rc;
                pos = l1 * cs;
                continue;
            }
            uint64_t len = std::min(cs - off, end - pos);
            int rc = co_await piece(true, l, off, len, {}, false);
            if (rc != 0) co_return rc;
            pos += len;
        }
        co_return 0;
    }

    // Mapped clusters hold data; unmapped ones read as zeroes.
    task<int> allocated(uint64_t lba, uint64_t nblocks,
                        std::vector<weft::bdev::channel::block_run>* runs) override {
        if (int rc = v_->check_range(lba, nblocks); rc != 0) co_return rc;
        runs->clear();
        if (nblocks == 0) co_return 0;
        map_array* a = v_->st_->map.load(std::memory_order_acquire);
        const uint64_t cblocks = eng_.cluster_size() >> vshift_;
        const uint64_t end = lba + nblocks;
        for (uint64_t l = lba / cblocks; l * cblocks < end && l < a->len; ++l) {
            if (a->e[l].load(std::memory_order_acquire) == unmapped) continue;
            uint64_t b0 = std::max(lba, l * cblocks), b1 = std::min(end, (l + 1) * cblocks);
            if (!runs->empty() && runs->back().lba + runs->back().nblocks == b0)
                runs->back().nblocks += b1 - b0;
            else
                runs->push_back({b0, b1 - b0});
        }
        co_return 0;
    }

  private:
    enum class route { done, device, home };

    // Reads and writes inside one cluster (nearly all of them) whose cluster
    // is mapped (and, for writes, not shared) go to the device from here,
    // in this one coroutine frame; the rest take the general path.
    task<int> io(bool write, uint64_t lba, uint32_t nblocks, std::span<const iovec> iov, bool fua) {
        if (write && v_->read_only()) co_return -EROFS;
        if (int rc = v_->check_io(lba, nblocks, iov); rc != 0) co_return rc;
        const uint64_t pos = lba << vshift_, len = uint64_t(nblocks) << vshift_;
        if (len != 0 && (pos >> cshift_) == ((pos + len - 1) >> cshift_)) {
            fast_guard g(*v_->st_, inflight_);
            if (g.ok()) {
                uint64_t plba = 0;
                int rc = 0;
                route r = classify(write, pos >> cshift_, pos & cmask(), iov, &plba, &rc);
                if (r == route::done) co_return rc;
                const uint32_t nb = uint32_t(len >> dshift_);
                if (r == route::device && !write) co_return co_await base_->read(plba, nb, iov);
                if (r == route::device) co_return co_await base_->write(plba, nb, iov, fua);
            }
        }
        co_return co_await rw(write, lba, nblocks, iov, fua);
    }

    uint64_t cmask() const { return (uint64_t(1) << cshift_) - 1; }

    // With a fast_guard held: where a piece inside logical cluster l goes.
    // `device`: to *plba on the pool's device; `done`: answered (*rc);
    // `home`: the slow path. A write with empty `iov` zeroes.
    route classify(bool write, uint64_t l, uint64_t off, std::span<const iovec> iov, uint64_t* plba,
                   int* rc) {
        volume_state& st = *v_->st_;
        if (st.deleted.load(std::memory_order_relaxed)) {
            *rc = -ENODEV;
            return route::done;
        }
        map_array* a = st.map.load(std::memory_order_acquire);
        if (l >= a->len) {  // raced with a shrink
            *rc = -ERANGE;
            return route::done;
        }
        uint32_t e = a->e[l].load(std::memory_order_acquire);
        if (!write) {
            if (e == unmapped) {
                bdev::iov_zero(iov);
                *rc = 0;
                return route::done;
            }
            e &= ~shared_bit;
        } else if (e == unmapped || (e & shared_bit)) {
            if (e == unmapped && iov.empty()) {  // zeroes on zeroes
                *rc = 0;
                return route::done;
            }
            return route::home;
        }
        *plba = (data_offset_ + (uint64_t(e) << cshift_) + off) >> dshift_;
        return route::device;
    }

    task<int> rw(bool write, uint64_t lba, uint32_t nblocks, std::span<const iovec> iov, bool fua) {
        const uint64_t bs = v_->block_size(), cs = eng_.cluster_size();
        uint64_t pos = lba * bs, end = pos + uint64_t(nblocks) * bs;
        if (nblocks == 0) co_return 0;
        if (pos / cs == (end - 1) / cs)  // one cluster, no copy of iovecs
            co_return co_await piece(write, pos / cs, pos % cs, end - pos, iov, fua);
        for (uint64_t done = 0; pos < end;) {
            uint64_t len = std::min(cs - pos % cs, end - pos);
            auto part = slice(iov, done, len);
            int rc = co_await piece(write, pos / cs, pos % cs, len, part, fua);
            if (rc != 0) co_return rc;
            pos += len;
            done += len;
        }
        co_return 0;
    }

    // One piece inside logical cluster l. A write with empty `iov` zeroes.
    task<int> piece(bool write, uint64_t l, uint64_t off, uint64_t len, std::span<const iovec> iov,
                    bool fua) {
        volume_state& st = *v_->st_;
        {
            fast_guard g(st, inflight_);
            if (g.ok()) {
                uint64_t plba = 0;
                int rc = 0;
                route r = classify(write, l, off, iov, &plba, &rc);
                if (r == route::done) co_return rc;
                const uint32_t nb = uint32_t(len >> dshift_);
                if (r == route::device && !write) co_return co_await base_->read(plba, nb, iov);
                if (r == route::device && iov.empty())
                    co_return co_await base_->write_zeroes(plba, nb);
                if (r == route::device) co_return co_await base_->write(plba, nb, iov, fua);
            }
        }
        // Home, outside the guard: home may be waiting for it to drain.
        using k = pool_engine::io_kind;
        co_return co_await on(home_, [&] {
            return eng_.slow_io(st, write ? k::write : k::read, l, off, len, iov, fua);
        });
    }

    volume_bdev* v_;
    std::unique_ptr<weft::bdev::channel> base_;
    pool_engine& eng_;
    unsigned home_;
    unsigned vshift_, dshift_, cshift_;
    uint64_t data_offset_;
    std::atomic<int64_t>& inflight_;  // this reactor's slot (a channel stays on its reactor)
};

std::unique_ptr<weft::bdev::channel> volume_bdev::open_channel() {
    return std::make_unique<volume_channel>(this, pool_->device()->open_channel());
}

std::shared_ptr<bdev::bdev> make_volume_bdev(std::shared_ptr<pool> p,
                                             std::shared_ptr<volume_state> st) {
    const volume_meta& m = st->meta;
    bdev::bdev::properties props{
        .name = m.name,
        .block_size = p->device()->block_size(),
        .num_blocks = m.size_bytes / p->device()->block_size(),
        .volatile_write_cache = p->device()->volatile_write_cache(),
        .unmap_reads_zeroes = true,
        .read_only = m.read_only(),
    };
    auto b = std::make_shared<volume_bdev>(std::move(props), std::move(p), st);
    st->bdevs.push_back(b);
    return b;
}

void publish_volume_size(bdev::bdev& b, uint64_t num_blocks) {
    static_cast<volume_bdev&>(b).publish_size(num_blocks);
}

}  // namespace weft::pool
