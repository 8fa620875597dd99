#include "bdev/error/error_bdev.h"

namespace weft::bdev {

void fault_control::inject(fault f) {
    ops_.store(0);
    err_.store(f.err > 0 ? f.err : EIO);
    remaining_.store(f.count ? int64_t(f.count) : -1);
    skip_.store(f.after);
    ops_.store(f.ops);
}

int fault_control::take(uint32_t op) {
    if (!(ops_.load(std::memory_order_relaxed) & op)) return 0;
    for (int64_t skip = skip_.load(); skip > 0;)
        if (skip_.compare_exchange_weak(skip, skip - 1)) return 0;
    int64_t left = remaining_.load();
    for (;;) {
        if (left == 0) return 0;
        if (left < 0) break;
        if (remaining_.compare_exchange_weak(left, left - 1)) break;
    }
    if (left == 1) ops_.store(0);  // the last one: disarm
    injected_.fetch_add(1, std::memory_order_relaxed);
    return -err_.load();
}

namespace {

class error_channel final : public channel {
  public:
    error_channel(std::unique_ptr<channel> inner, fault_control& f)
        : inner_(std::move(inner)), f_(f) {}

    task<int> read(uint64_t lba, uint32_t n, std::span<const iovec> iov) override {
        if (int rc = f_.take(fault_ops::read)) return ready(rc);
        return inner_->read(lba, n, iov);
    }
    task<int> write(uint64_t lba, uint32_t n, std::span<const iovec> iov, bool fua) override {
        if (int rc = f_.take(fault_ops::write)) return ready(rc);
        return inner_->write(lba, n, iov, fua);
    }
    task<int> flush() override {
        if (int rc = f_.take(fault_ops::flush)) return ready(rc);
        return inner_->flush();
    }
    task<int> write_zeroes(uint64_t lba, uint64_t n) override {
        if (int rc = f_.take(fault_ops::write)) return ready(rc);
        return inner_->write_zeroes(lba, n);
    }
    task<int> unmap(uint64_t lba, uint64_t n) override {
        if (int rc = f_.take(fault_ops::write)) return ready(rc);
        return inner_->unmap(lba, n);
    }
    task<int> allocated(uint64_t lba, uint64_t n, std::vector<block_run>* runs) override {
        if (int rc = f_.take(fault_ops::read)) return ready(rc);
        return inner_->allocated(lba, n, runs);
    }

  private:
    static task<int> ready(int rc) { co_return rc; }
    std::unique_ptr<channel> inner_;
    fault_control& f_;
};

class error_bdev final : public wrapper_bdev {
  public:
    error_bdev(std::shared_ptr<bdev> inner, std::shared_ptr<fault_control> f)
        : wrapper_bdev(std::move(inner)), f_(std::move(f)) {}

    std::unique_ptr<channel> open_channel() override {
        return std::make_unique<error_channel>(inner()->open_channel(), *f_);
    }

  private:
    std::shared_ptr<fault_control> f_;
};

}  // namespace

std::shared_ptr<bdev> make_error_bdev(std::shared_ptr<bdev> inner,
                                      std::shared_ptr<fault_control> faults) {
    return std::make_shared<error_bdev>(std::move(inner), std::move(faults));
}

}  // namespace weft::bdev
