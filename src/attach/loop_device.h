// Loop devices over a file, with the kernel's own ioctls (what util-linux's
// losetup does): the block device a FUSE-served disk becomes.
//
//   auto dev = loop_attach("/run/weft/attach/v/mnt/disk", {.block_size = 4096});
//   ... mkfs, mount "/dev/loopN" ...
//   loop_detach(*dev);
//
// These block while the kernel reads the device (a partition scan): call
// them off the reactor that serves the file.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/result.h"

namespace weft::attach {

struct loop_options {
    uint32_t block_size = 512;  // the device's logical block size: the disk's
    bool direct_io = true;      // no second page cache under the device's own
    bool read_only = false;
};

// A free loop device bound to `file`: "/dev/loopN". Direct I/O falls back
// to buffered when the kernel refuses it for this file.
result<std::string> loop_attach(const std::string& file, loop_options o);
// Unbinds it. EBUSY while anything else has it open (a mounted file
// system, an application), and it stays bound.
result<void> loop_detach(const std::string& device);
// Re-reads the backing file's size (after the disk grew).
result<void> loop_set_capacity(const std::string& device);
// The file a loop device is bound to ("" when it is free).
std::string loop_backing_file(const std::string& device);

}  // namespace weft::attach
