#include "bdev/stats/stats_bdev.h"

#include <chrono>

#include "runtime/reactor.h"

namespace weft::bdev {

namespace {

uint64_t now_ns() {
    return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count());
}

class stats_channel final : public channel {
  public:
    stats_channel(std::unique_ptr<channel> inner, io_slot& s, uint32_t block_size)
        : inner_(std::move(inner)), s_(s), block_size_(block_size) {}

    task<int> read(uint64_t lba, uint32_t n, std::span<const iovec> iov) override {
        uint64_t t0 = begin();
        int rc = co_await inner_->read(lba, n, iov);
        end(rc, t0, &s_.reads, &s_.read_bytes, &s_.read_latency, uint64_t(n) * block_size_);
        co_return rc;
    }
    task<int> write(uint64_t lba, uint32_t n, std::span<const iovec> iov, bool fua) override {
        uint64_t t0 = begin();
        int rc = co_await inner_->write(lba, n, iov, fua);
        end(rc, t0, &s_.writes, &s_.write_bytes, &s_.write_latency, uint64_t(n) * block_size_);
        co_return rc;
    }
    task<int> flush() override {
        uint64_t t0 = begin();
        int rc = co_await inner_->flush();
        end(rc, t0, &s_.other_ops, nullptr, nullptr, 0);
        co_return rc;
    }
    task<int> write_zeroes(uint64_t lba, uint64_t n) override {
        uint64_t t0 = begin();
        int rc = co_await inner_->write_zeroes(lba, n);
        end(rc, t0, &s_.other_ops, nullptr, nullptr, 0);
        co_return rc;
    }
    task<int> unmap(uint64_t lba, uint64_t n) override {
        uint64_t t0 = begin();
        int rc = co_await inner_->unmap(lba, n);
        end(rc, t0, &s_.other_ops, nullptr, nullptr, 0);
        co_return rc;
    }

    task<int> allocated(uint64_t lba, uint64_t n, std::vector<block_run>* runs) override {
        return inner_->allocated(lba, n, runs);
    }

  private:
    uint64_t begin() {
        s_.in_flight.store(s_.in_flight.load(std::memory_order_relaxed) + 1,
                           std::memory_order_relaxed);
        return now_ns();
    }
    void end(int rc, uint64_t t0, std::atomic<uint64_t>* ops, std::atomic<uint64_t>* bytes,
             io_slot::histogram* lat, uint64_t nbytes) {
        s_.in_flight.store(s_.in_flight.load(std::memory_order_relaxed) - 1,
                           std::memory_order_relaxed);
        if (rc != 0) {
            io_slot::bump(s_.errors);
            return;
        }
        io_slot::bump(*ops);
        if (bytes) io_slot::bump(*bytes, nbytes);
        if (lat) io_slot::record(*lat, now_ns() - t0);
    }

    std::unique_ptr<channel> inner_;
    io_slot& s_;
    uint32_t block_size_;
};

class stats_bdev final : public bdev {
  public:
    stats_bdev(std::shared_ptr<bdev> inner, std::shared_ptr<io_stats> stats)
        : bdev(properties{.name = inner->name(),
                          .block_size = inner->block_size(),
                          .num_blocks = inner->num_blocks(),
                          .volatile_write_cache = inner->volatile_write_cache(),
                          .unmap_reads_zeroes = inner->unmap_reads_zeroes(),
                          .read_only = inner->read_only()}),
          inner_(std::move(inner)),
          stats_(std::move(stats)) {
        listener_ = inner_->add_resize_listener([this](uint64_t, uint64_t n) {
            (void)apply_resize(n, [](uint64_t, uint64_t) { return result<void>{}; });
        });
    }
    ~stats_bdev() override { inner_->remove_resize_listener(listener_); }

    std::unique_ptr<channel> open_channel() override {
        auto* r = reactor::local_or_null();
        return std::make_unique<stats_channel>(inner_->open_channel(),
                                               stats_->slot(r ? r->id() : 0), block_size());
    }
    // The inner bdev's listener publishes the new size here.
    result<void> resize(uint64_t new_num_blocks) override { return inner_->resize(new_num_blocks); }

  private:
    std::shared_ptr<bdev> inner_;
    std::shared_ptr<io_stats> stats_;
    uint64_t listener_ = 0;
};

}  // namespace

std::shared_ptr<bdev> make_stats_bdev(std::shared_ptr<bdev> inner,
                                      std::shared_ptr<io_stats> stats) {
    return std::make_shared<stats_bdev>(std::move(inner), std::move(stats));
}

}  // namespace weft::bdev
