// A bdev over a namespace of a remote controller, so that any layer can
// stack on a remote disk. A channel is its reactor's I/O queue of the
// controller (ENXIO from every call on a reactor without one).
//
// Errors: the queue's transport errors pass through as -errno (-ENOTCONN,
// -ECONNRESET, -ETIMEDOUT); a failed NVMe status becomes -ERANGE (LBA out of
// range), -EROFS (write protected), -EINVAL (invalid field), -EACCES
// (reservation conflict: another host holds the namespace) or -EIO.
#pragma once

#include <memory>
#include <string>

#include "bdev/bdev.h"
#include "initiator/ns.h"

namespace weft::initiator {

// requires: `c` outlives the bdev, and `nsid` is one of c.namespace_ids()
// (nullptr otherwise).
std::unique_ptr<bdev::bdev> make_nvmf_bdev(std::string name, controller& c, uint32_t nsid);

// Reads the namespace's size again from its target (Identify Namespace, on
// the controller's home reactor) and gives it to the bdev, its users and its
// resize listeners: a remote namespace grows on its target, and this is how
// the bdev learns it. EINVAL when `b` is not an nvmf bdev, the admin
// command's error otherwise. Returns the size in blocks.
task<result<uint64_t>> rescan(bdev::bdev& b);

// The bdev result for a namespace call's result.
int to_errno(const result<nvme::status>& r);

}  // namespace weft::initiator
