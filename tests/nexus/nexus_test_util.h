// Children for nexus tests: RAM bdevs behind an error-injecting layer, named
// by pool:// URIs, that can also be made unreachable (as a remote child
// whose node is down) or "remote" (not preferred for reads, reconnected).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "bdev/bdev.h"
#include "bdev/bdev_test_util.h"
#include "bdev/error/error_bdev.h"
#include "nexus/nexus.h"
#include "runtime/test_util.h"

namespace weft::nexus::test {

using bdev::test::fill;
using bdev::test::mismatch;

struct mem_disk {
    std::shared_ptr<bdev::bdev> raw;  // the data, reachable behind everything
    std::shared_ptr<bdev::fault_control> faults = std::make_shared<bdev::fault_control>();
    std::shared_ptr<bdev::bdev> dev;  // raw behind the error layer
    bool reachable = true;
    bool local = true;
    int opens = 0;
};

class mem_device final : public child_device {
  public:
    mem_device(std::string uri, std::shared_ptr<mem_disk> d)
        : uri_(std::move(uri)), d_(std::move(d)) {}
    const std::string& uri() const override { return uri_; }
    bool local() const override { return d_->local; }
    task<result<std::shared_ptr<bdev::bdev>>> open(std::string* why) override {
        if (!d_->reachable) {
            if (why) *why = "connection refused";
            co_return error{ECONNREFUSED};
        }
        ++d_->opens;
        co_return d_->dev;
    }
    task<void> close() override { co_return; }

  private:
    std::string uri_;
    std::shared_ptr<mem_disk> d_;
};

class mem_rig {
  public:
    // A thin pool volume (a pool on a RAM disk) as pool://t/<name>: a source
    // that can tell which blocks it holds (bdev::channel::allocated).
    std::shared_ptr<mem_disk> add_volume(const std::string& name, std::shared_ptr<bdev::bdev> vol) {
        auto d = std::make_shared<mem_disk>();
        d->raw = vol;
        d->dev = bdev::make_error_bdev(d->raw, d->faults);
        disks_[uri(name)] = d;
        return d;
    }
    // A RAM disk of `bytes` as pool://t/<name>.
    std::shared_ptr<mem_disk> add(const std::string& name, uint64_t bytes, bool local = true) {
        auto d = std::make_shared<mem_disk>();
        d->raw = std::shared_ptr<bdev::bdev>(bdev::make_malloc_bdev(name, bytes / 512, 512));
        d->dev = bdev::make_error_bdev(d->raw, d->faults);
        d->local = local;
        disks_[uri(name)] = d;
        return d;
    }
    // The disk `name` also as pool://t/<other>, reachable on its own (the
    // same device at a new address).
    std::shared_ptr<mem_disk> alias(const std::string& other, const std::string& name) {
        auto d = std::make_shared<mem_disk>(*disks_.at(uri(name)));
        d->reachable = true;
        disks_[uri(other)] = d;
        return d;
    }
    static std::string uri(const std::string& name) { return "pool://t/" + name; }
    child_factory factory() {
        return [this](const std::string& u,
                      std::string* why) -> result<std::unique_ptr<child_device>> {
            auto it = disks_.find(u);
            if (it == disks_.end()) {
                if (why) *why = "no volume " + u;
                return error{ENOENT};
            }
            return std::unique_ptr<child_device>(new mem_device(u, it->second));
        };
    }
    std::shared_ptr<mem_disk> at(const std::string& name) { return disks_.at(uri(name)); }

  private:
    std::map<std::string, std::shared_ptr<mem_disk>> disks_;
};

}  // namespace weft::nexus::test
