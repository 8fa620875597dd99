// The NVM command set on one I/O queue: Read, Write (FUA), Flush, Write
// Zeroes, Dataset Management, Compare and the reservation commands.
//
// Belongs to the queue's reactor. Keeps its own snapshot of the subsystem's
// namespace table (refreshed when the generation moves) and one bdev channel
// per namespace, opened on this reactor.
#pragma once

#include <map>
#include <memory>

#include "bdev/bdev.h"
#include "nvmf/controller.h"
#include "nvmf/request.h"

namespace weft::nvmf {

class io_queue {
  public:
    explicit io_queue(std::shared_ptr<controller> ctrl);

    controller& ctrl() { return *ctrl_; }
    task<void> execute(request& r);

  private:
    struct ns_ref {
        std::shared_ptr<ns> n;
        std::shared_ptr<bdev::channel> ch;  // held by each command for its duration
    };
    // Looks up `nsid`, refreshing the snapshot first if it moved.
    ns_ref* lookup(uint32_t nsid);

    task<void> read_write(request& r, ns_ref ref, bool write);
    task<void> compare(request& r, ns_ref ref);
    task<void> dataset_management(request& r, ns_ref ref);
    task<void> flush(request& r);
    void reservation(request& r, ns& n);

    std::shared_ptr<controller> ctrl_;
    uint64_t gen_ = ~uint64_t(0);
    std::map<uint32_t, ns_ref> namespaces_;
};

}  // namespace weft::nvmf
