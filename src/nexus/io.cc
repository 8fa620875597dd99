// The nexus's I/O path: a channel per reactor over the children's channels
// on that reactor. Writes fan out to every writable child, reads go to one
// in-sync child; failures and anything that needs the membership to change
// go to home (nexus.cc), and the common case never leaves this reactor.
#include <algorithm>

#include "nexus/nexus_impl.h"
#include "runtime/reactor.h"
#include "runtime/runtime.h"

namespace weft::nexus {
namespace {

enum class op { read, write, zeroes, unmap, flush };

}  // namespace

class nexus_channel final : public bdev::channel {
  public:
    nexus_channel(nexus_impl& nx, bdev::bdev& self)
        : nx_(nx),
          self_(self),
          slot_(nx.slot_here()),
          reactor_(reactor::local_or_null() ? reactor::local().id() : 0) {
        nx_.add_channel(reactor_, this);
    }
    ~nexus_channel() override { nx_.remove_channel(reactor_, this); }

    task<int> read(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov) override;
    task<int> write(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov, bool fua) override {
        if (int rc = self_.check_io(lba, nblocks, iov)) return ready(rc);
        return modify(op::write, lba, nblocks, iov, fua);
    }
    task<int> write_zeroes(uint64_t lba, uint64_t nblocks) override {
        if (int rc = self_.check_range(lba, nblocks)) return ready(rc);
        return modify(op::zeroes, lba, nblocks, {}, false);
    }
    task<int> unmap(uint64_t lba, uint64_t nblocks) override {
        if (int rc = self_.check_range(lba, nblocks)) return ready(rc);
        return modify(op::unmap, lba, nblocks, {}, false);
    }
    task<int> flush() override { return modify(op::flush, 0, 0, {}, false); }

    // On this channel's reactor, with no I/O of it in flight on that slot
    // (home waited for a grace period): forgets the child's channel.
    void drop(unsigned slot) {
        ch_[slot].reset();
        devs_[slot] = nullptr;
        std::erase_if(old_, [&](const old_channel& o) { return o.slot == slot; });
    }
    void drop_if(unsigned slot, const bdev::bdev* dev) {
        if (devs_[slot] == dev) {
            ch_[slot].reset();
            devs_[slot] = nullptr;
        }
        std::erase_if(old_, [&](const old_channel& o) { return o.slot == slot && o.dev == dev; });
    }

  private:
    static task<int> ready(int rc) { co_return rc; }

    bdev::channel* child_channel(const view& v, unsigned s) {
        bdev::bdev* d = v.dev[s].get();
        if (devs_[s] != d || !ch_[s]) {
            // A reconnected child: I/O of ours may still be in flight on its
            // old connection's channel, which lives until home, after a
            // grace period, says it may go (drop_if).
            if (ch_[s]) old_.push_back({s, devs_[s], std::move(ch_[s])});
            ch_[s] = d->open_channel();
            devs_[s] = d;
        }
        return ch_[s].get();
    }

    // One child's part of an I/O: the child's task itself (no extra frame).
    task<int> one(op o, const view& v, unsigned s, uint64_t lba, uint64_t n,
                  std::span<const iovec> iov, bool fua) {
        bdev::channel* c = child_channel(v, s);
        const uint64_t clba = lba + nx_.data_offset_;
        switch (o) {
            case op::read:
                return c->read(clba, uint32_t(n), iov);
            case op::write:
                return c->write(clba, uint32_t(n), iov, fua);
            case op::zeroes:
                return c->write_zeroes(clba, n);
            case op::unmap:
                return c->unmap(clba, n);
            case op::flush:
                return c->flush();
        }
        return ready(-EINVAL);
    }

    // Several children at once: the first in this frame, the others as
    // spawned tasks; resumes when all are done.
    struct join {
        unsigned pending = 0;
        std::coroutine_handle<> waiter;
        void done() {
            if (--pending == 0 && waiter) reactor::local().schedule(waiter);
        }
        auto wait() {
            struct awaiter {
                join* j;
                bool await_ready() const noexcept { return j->pending == 0; }
                void await_suspend(std::coroutine_handle<> h) noexcept { j->waiter = h; }
                void await_resume() const noexcept {}
            };
            return awaiter{this};
        }
    };
    static task<void> fan_child(task<int> t, int* out, join* j) {
        *out = co_await std::move(t);
        j->done();
    }

    unsigned pick_reader(const view& v, uint64_t lba, uint64_t n) {
        if (v.resync_source >= 0 && n > 0) {
            uint64_t r0 = nx_.region_of(lba), r1 = nx_.region_of(lba + n - 1) + 1;
            for (uint64_t r = r0; r < r1; ++r)
                if (nx_.durable_->test(r)) return unsigned(v.resync_source);
        }
        if (v.preferred >= 0) return unsigned(v.preferred);
        return v.readers[rr_++ % v.nreaders];
    }

    task<int> modify(op o, uint64_t lba, uint64_t n, std::span<const iovec> iov, bool fua);

    nexus_impl& nx_;
    bdev::bdev& self_;       // the nexus bdev (bounds checks)
    io_epochs::slot& slot_;  // this reactor's count of I/O in flight (nexus_impl::grace)
    unsigned reactor_;
    unsigned rr_ = 0;
    std::array<std::unique_ptr<bdev::channel>, max_slots> ch_;
    std::array<bdev::bdev*, max_slots> devs_{};
    struct old_channel {
        unsigned slot;
        bdev::bdev* dev;
        std::unique_ptr<bdev::channel> ch;
    };
    std::vector<old_channel> old_;
};

task<int> nexus_channel::read(uint64_t lba, uint32_t nblocks, std::span<const iovec> iov) {
    if (int rc = self_.check_io(lba, nblocks, iov)) co_return rc;
    if (nblocks == 0) co_return 0;
    for (;;) {
        auto g = io_epochs::enter(slot_);
        const view* v = nx_.view_.load();
        if (v->fail_all) co_return v->fail_all;
        if (v->hold_reads) {
            // No majority: another nexus may be writing elsewhere now.
            g.release();
            co_await on(nx_.home_, [&] { return nx_.wait_unblocked(0, 0, true); });
            continue;
        }
        if (v->nreaders == 0) co_return -EIO;
        uint32_t tried = 0;
        unsigned s = pick_reader(*v, lba, nblocks);
        for (;;) {
            int rc = co_await one(op::read, *v, s, lba, nblocks, iov, false);
            if (rc == 0) co_return 0;
            // Another in-sync child has the same data: try it, and let home
            // retire this one meanwhile.
            tried |= bit(s);
            nx_.read_failed(s, rc);
            int next = -1;
            for (unsigned i = 0; i < v->nreaders; ++i)
                if (!(tried & bit(v->readers[i]))) {
                    next = v->readers[i];
                    break;
                }
            if (next < 0) co_return rc;
            s = unsigned(next);
        }
    }
}

task<int> nexus_channel::modify(op o, uint64_t lba, uint64_t n, std::span<const iovec> iov,
                                bool fua) {
    if (o != op::flush && n == 0) co_return 0;
    const bool ranged = o != op::flush;
    const uint64_t r0 = ranged ? nx_.region_of(lba) : 0;
    const uint64_t r1 = ranged ? nx_.region_of(lba + n - 1) + 1 : 0;
    for (;;) {
        auto g = io_epochs::enter(slot_);
        const view* v = nx_.view_.load();
        if (v->fail_all) co_return v->fail_all;
        if (v->hold_writes || (ranged && nx_.window_overlaps(r0, r1))) {
            // Held (a membership change is not durable yet) or being copied
            // by a rebuild: wait at home, outside the count home may wait for.
            g.release();
            co_await on(nx_.home_, [&] { return nx_.wait_unblocked(r0, r1); });
            continue;
        }
        if (ranged) {
            for (uint64_t r = r0; r < r1; ++r) nx_.touched_->mark(r);
            if (!nx_.durable_->all_set(r0, r1)) {
                // The first write to these regions since they were cleared:
                // their bits go to the children's bitmaps first.
                int rc = co_await on(nx_.home_, [&] { return nx_.set_bits(r0, r1); });
                if (rc != 0) co_return rc;
                continue;  // the view may have changed meanwhile
            }
        }
        const unsigned nw = v->nwriters;
        if (nw == 0) co_return -EIO;
        int rcs[max_slots];
        if (nw == 1) {
            rcs[0] = co_await one(o, *v, v->writers[0], lba, n, iov, fua);
            if (rcs[0] == 0) co_return 0;
        } else {
            join j;
            j.pending = nw;
            for (unsigned i = 1; i < nw; ++i)
                reactor::local().spawn(
                    fan_child(one(o, *v, v->writers[i], lba, n, iov, fua), &rcs[i], &j));
            rcs[0] = co_await one(o, *v, v->writers[0], lba, n, iov, fua);
            j.done();
            co_await j.wait();
        }
        // The request was checked against the nexus: a child that refuses it
        // (even EINVAL or ERANGE) is a child that fails.
        uint32_t sent = 0, ok = 0;
        nexus_impl::failure failed[max_slots];
        unsigned nf = 0;
        for (unsigned i = 0; i < nw; ++i) {
            unsigned s = v->writers[i];
            sent |= bit(s);
            if (rcs[i] == 0)
                ok |= bit(s);
            else
                failed[nf++] = {s, rcs[i]};
        }
        if (nf == 0) co_return 0;
        // Some children failed: home retires them (durably) before this
        // write is acknowledged. The count stays held: home never waits for
        // a grace period while it resolves a write.
        co_return co_await on(nx_.home_, [&] {
            return nx_.resolve_write(sent, ok, std::span<const nexus_impl::failure>(failed, nf));
        });
    }
}

// ---- the bdev ---------------------------------------------------------------

namespace {

// Holds the nexus's insides alive: a channel left in an idle host queue
// after its namespace went away may outlive the nexus object itself.
class nexus_bdev final : public bdev::bdev {
  public:
    nexus_bdev(properties p, std::shared_ptr<nexus_impl> nx)
        : bdev(std::move(p)), nx_(std::move(nx)) {}
    std::unique_ptr<weft::bdev::channel> open_channel() override {
        return std::make_unique<nexus_channel>(*nx_, *this);
    }
    // Growing a nexus means growing every child first and committing the
    // size in the labels: nexus::resize(), which then calls publish().
    result<void> resize(uint64_t) override { return error{ENOTSUP}; }
    void publish(uint64_t n) {
        (void)apply_resize(n, [](uint64_t, uint64_t) { return result<void>{}; });
    }

  private:
    std::shared_ptr<nexus_impl> nx_;
};

}  // namespace

std::shared_ptr<bdev::bdev> make_nexus_bdev(std::shared_ptr<nexus_impl> nx, std::string name,
                                            bool volatile_cache, bool unmap_zeroes) {
    bdev::bdev::properties p;
    p.name = std::move(name);
    p.block_size = nx->block_size_;
    p.num_blocks = nx->size_bytes_ / nx->block_size_;
    p.volatile_write_cache = volatile_cache;
    p.unmap_reads_zeroes = unmap_zeroes;
    return std::make_shared<nexus_bdev>(std::move(p), std::move(nx));
}

void publish_size(bdev::bdev& b, uint64_t num_blocks) {
    static_cast<nexus_bdev&>(b).publish(num_blocks);
}

void drop_child_channel(nexus_channel* c, unsigned slot) {
    c->drop(slot);
}

void drop_child_channel_if(nexus_channel* c, unsigned slot, const bdev::bdev* dev) {
    c->drop_if(slot, dev);
}

}  // namespace weft::nexus
