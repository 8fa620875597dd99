// An error-injecting bdev (in the manner of SPDK's error bdev): passes I/O
// through to another bdev, and fails the operations it is told to, so that
// tests can make a replica return errors on command. Disarmed, it costs one
// relaxed atomic load per I/O.
//
//   auto faults = std::make_shared<bdev::fault_control>();
//   auto dev = bdev::make_error_bdev(inner, faults);
//   faults->inject({.ops = bdev::fault_ops::write, .err = EIO, .count = 10});
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "bdev/bdev.h"

namespace weft::bdev {

namespace fault_ops {
constexpr uint32_t read = 1u << 0;
constexpr uint32_t write = 1u << 1;  // write, write zeroes, unmap
constexpr uint32_t flush = 1u << 2;
constexpr uint32_t any = read | write | flush;
}  // namespace fault_ops

struct fault {
    uint32_t ops = 0;    // fault_ops bits; 0 clears
    int err = EIO;       // positive errno the operations fail with
    uint32_t count = 0;  // fail this many, then pass again (0: until cleared)
    uint32_t after = 0;  // let this many pass first (a crash at the n-th write)
};

// Shared by every channel of the error bdevs it is given to (any reactor).
class fault_control {
  public:
    void inject(fault f);
    void clear() { inject({}); }
    // The errno (negative) an operation of kind `op` fails with now, or 0.
    int take(uint32_t op);
    uint64_t injected() const { return injected_.load(std::memory_order_relaxed); }

  private:
    std::atomic<uint32_t> ops_{0};
    std::atomic<int> err_{EIO};
    std::atomic<int64_t> remaining_{0};  // < 0: no limit
    std::atomic<int64_t> skip_{0};
    std::atomic<uint64_t> injected_{0};
};

std::shared_ptr<bdev> make_error_bdev(std::shared_ptr<bdev> inner,
                                      std::shared_ptr<fault_control> faults);

}  // namespace weft::bdev
