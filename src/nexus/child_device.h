// Where a nexus child's blocks live: a device this engine can open, here (a
// pool volume) or on another node (a namespace reached over NVMe/TCP). The
// nexus opens, fences and closes children through this interface; the engine
// supplies the factory that turns a child URI into one.
//
// Child URIs (child_uri.h):
//   pool://POOL/VOLUME               a volume of a pool on this engine
//   nvmf://HOST:PORT/SUBNQN[/NSID]   a remote namespace (NSID 1 by default)
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "bdev/bdev.h"
#include "runtime/result.h"
#include "runtime/task.h"

namespace weft::nexus {

class child_device {
  public:
    virtual ~child_device() = default;

    virtual const std::string& uri() const = 0;
    // On this engine: reads prefer it, and it cannot be fenced.
    virtual bool local() const = 0;

    // Opens (for a remote child: connects) the device. The bdev stays valid
    // until close(); its channels are opened on any reactor. Home only.
    // Errors: ENOENT (no such volume), ECONNREFUSED / ETIMEDOUT / EHOSTUNREACH
    // (the node does not answer), EACCES (the target refuses our host NQN),
    // EINVAL (no such subsystem or namespace), with a sentence in `why`.
    virtual task<result<std::shared_ptr<bdev::bdev>>> open(std::string* why) = 0;
    // Closes what open() opened. requires: no channel of its bdev is left.
    virtual task<void> close() = 0;

    // Learns the device's size again (a remote namespace that grew on its
    // node: its bdev's size follows). A local device's bdev follows its
    // volume by itself: success. Home only, while open.
    virtual task<result<void>> refresh(std::string* why) {
        (void)why;
        co_return result<void>{};
    }

    // Takes the device for the nexus holding reservation key `key`: an NVMe
    // reservation Write Exclusive - Registrants Only, preempting holders and
    // registrants whose key is older (smaller: generation, then tag), so a
    // superseded nexus still running somewhere gets Reservation Conflict on
    // every write. EACCES when a newer key holds the device (this nexus has
    // been superseded). A local device has nothing to fence: success.
    virtual task<result<void>> fence(uint64_t key, std::string* why) {
        (void)key, (void)why;
        co_return result<void>{};
    }
    // Gives the reservation up (a clean close), best effort.
    virtual task<void> unfence(uint64_t key) {
        (void)key;
        co_return;
    }
};

// Reservation keys: the generation the nexus opened at in the high 48 bits,
// a random tag of its instance in the low 16 (never 0).
inline uint64_t fence_key(uint64_t generation, uint16_t tag) {
    return (generation << 16) | (tag ? tag : 1);
}
inline uint64_t fence_generation(uint64_t key) {
    return key >> 16;
}

// Makes the device for a child URI; nullptr-free: an error with a sentence
// for a URI it does not understand or a pool/volume that does not exist.
using child_factory =
    std::function<result<std::unique_ptr<child_device>>(const std::string& uri, std::string* why)>;

}  // namespace weft::nexus
