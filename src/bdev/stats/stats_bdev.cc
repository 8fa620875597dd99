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

class stats_bdev final : public wrapper_bdev {
  public:
    stats_bdev(std::shared_ptr<bdev> inner, std::shared_ptr<io_stats> stats)
        : wrapper_bdev(std::move(inner)), stats_(std::move(stats)) {}

    std::unique_ptr<channel> open_channel() override {
        auto* r = reactor::local_or_null();
        return std::make_unique<stats_channel>(inner()->open_channel(),
                                               stats_->slot(r ? r->id() : 0), block_size());
    }

  private:
    std::shared_ptr<io_stats> stats_;
};

}  // namespace

std::shared_ptr<bdev> make_stats_bdev(std::shared_ptr<bdev> inner,
                                      std::shared_ptr<io_stats> stats) {
    return std::make_shared<stats_bdev>(std::move(inner), std::move(stats));
}

}  // namespace weft::bdev
