// The nexus: one volume mirrored over N children (replicas), as a bdev.
//
//   auto nx = co_await nexus::open({.id = vol, .size_bytes = 10 << 30,
//                                   .children = {"pool://p0/r1",
//                                   "nvmf://10.0.0.2:4420/nqn...:r2"}},
//                                  factory, &why);
//   target.add_namespace(nqn, nx.value()->bdev());   // hosts see one disk
//
// I/O (any reactor): writes, write-zeroes, deallocate, flush and FUA go to
// every writable child (in sync, or rebuilding) and complete when all have
// them; reads go to one in-sync child (the local one when there is one, else
// round robin) and are retried on another when one fails. A child that fails
// an I/O or does not answer within options::io_timeout is retired (stale),
// and the I/O then succeeds if every remaining in-sync child has it. The last
// in-sync child is never retired: its error goes back to the host.
//
// Membership lives on the children (format.h): each child's label holds the
// nexus's identity, a generation, which members are in sync, and a clean
// flag; its bitmap holds the regions that may differ between children. A
// retirement is durable on a majority of the previous in-sync children
// before a write that the retired child missed is acknowledged; without a
// majority the nexus holds writes (options::minority) until the children
// answer again or arbitrate(true). A write-intent bit is durable on every
// writable child before the first write to its region, and cleared lazily
// once every member is in sync, so that a child coming back, even after this
// nexus's engine crashed, is rebuilt only over the regions it missed.
// Remote children are fenced with an NVMe reservation: a nexus that finds a
// newer one's key stops serving ("superseded") instead of diverging.
//
// Limits: the I/O timeout bounds remote children (the initiator tears a
// connection down when a command outlives it); a local child's I/O is the
// kernel's and is waited for. The replicas' targets keep reservations in
// memory: a replica engine that restarts forgets who fenced it, so a nexus
// re-fences every child it reconnects and checks its label first.
//
// Threading: the nexus belongs to its home reactor (the one that opened it):
// every management call, membership change, bitmap write and rebuild runs
// there. The I/O path runs on any reactor without locks: it reads an
// immutable view of the children and counts itself in a per-reactor slot,
// and home waits for those counts (a grace period) before it frees a view,
// drops a child's channels or copies a region that writes may be touching.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bdev/bdev.h"
#include "nexus/child_device.h"
#include "nexus/label.h"
#include "runtime/result.h"
#include "runtime/task.h"

namespace weft::nexus {

struct options {
    std::chrono::milliseconds io_timeout{5000};
    uint64_t rebuild_rate = 256ull << 20;  // bytes/s of rebuild copying; 0: unlimited
    enum class minority_policy { wait, proceed } minority = minority_policy::wait;
    bool auto_rebuild = true;  // rebuild a returning remote child by itself
    // How often the write-intent bitmap is scanned for regions to clear.
    std::chrono::milliseconds clear_interval{5000};
    // How often a nexus holding writes retries its label writes.
    std::chrono::milliseconds retry_interval{1000};
    // Largest copy of a full rebuild (partial rebuilds copy whole regions).
    uint64_t copy_segment = 1ull << 20;
    // How often a full rebuild records its progress on the children (a
    // rebuild cut short resumes from there, even after a crash).
    std::chrono::milliseconds checkpoint_interval{5000};
};

enum class child_state { online, rebuilding, faulted };
enum class nexus_state { online, degraded, waiting, superseded, faulted };
const char* to_string(child_state s);
const char* to_string(nexus_state s);

struct rebuild_progress {
    std::string kind;   // "full" or "partial"
    std::string state;  // "running", "waiting"
    std::string source;
    uint64_t bytes_done = 0;
    uint64_t bytes_total = 0;
    double rate = 0;  // bytes/s
    double eta_seconds = 0;
};

struct rebuild_record {
    std::string child;
    std::string kind;
    int64_t start_unix_ms = 0;
    int64_t end_unix_ms = 0;
    uint64_t bytes = 0;
    std::string outcome;  // "done", "failed: ...", "cancelled: ..."
};

struct child_status {
    std::string uri;
    uuid id{};
    child_state state = child_state::faulted;
    std::string reason;
    bool local = false;
    bool reconnecting = false;
    std::optional<rebuild_progress> rebuild;
    uint64_t io_errors = 0;
};

struct nexus_status {
    uuid id{};
    uint64_t size_bytes = 0;
    nexus_state state = nexus_state::online;
    uint64_t generation = 0;
    std::vector<child_status> children;
    std::string waiting;  // why writes are held
    std::vector<rebuild_record> history;
    uint64_t dirty_regions = 0;
    uint64_t region_size = 0;
    uint64_t rebuilt_bytes = 0;  // copied by every rebuild so far
    uint64_t retirements = 0;
    options opt;
};

class nexus_impl;

class nexus {
  public:
    struct params {
        uuid id{};  // nil: a new nexus with a random UUID
        // 0 on re-creation: the children's label says. More than the label
        // says: the nexus grows to it as it opens (as resize()); less: EINVAL.
        uint64_t size_bytes = 0;
        std::vector<std::string> children;
        // Optional, by position: each child's UUID in the nexus, so that a
        // child that does not answer now keeps its place (nil: unknown; an
        // unknown child that does not answer is refused).
        std::vector<uuid> known_ids;
        options opt;
        // The arbiter's yes up front: re-create even when the in-sync
        // children given are not a majority of those the label lists.
        bool allow_minority = false;
    };

    // Builds a nexus on the calling reactor (its home), or re-creates one
    // from children that carry its label (nexus.h above). Errors, with a
    // sentence: EINVAL (bad URI, duplicate child, sizes or block sizes that
    // do not fit, a child of another nexus), ENOENT (no such local volume),
    // ENODEV (no in-sync child reachable), EAGAIN (no majority),
    // EACCES (a newer nexus holds the children), EIO.
    static task<result<std::shared_ptr<nexus>>> open(params p, child_factory f, std::string* why);

    ~nexus();
    nexus(const nexus&) = delete;
    nexus& operator=(const nexus&) = delete;

    // Stops rebuilds, writes the bitmap and a clean label, releases the
    // reservations and closes the children. requires: on home, and the bdev
    // is no longer served (no I/O can come). clean = false leaves the
    // children as a crash would (tests).
    task<void> close(bool clean = true);

    const uuid& id() const;
    uint64_t size_bytes() const;
    unsigned home() const;
    // The nexus as a bdev (hosts see size_bytes). Lives as long as the nexus.
    std::shared_ptr<bdev::bdev> bdev() const;
    // The URIs of the children and their UUIDs, in order (what re-creates
    // this nexus).
    std::vector<std::string> child_uris() const;
    std::vector<uuid> child_ids() const;
    nexus_status status() const;  // home

    // Management (home), each with a sentence in `why` when it fails:
    // EEXIST duplicate child, ENOENT unknown child, EINVAL bad URI or size,
    // EBUSY it would retire the last in-sync child, EAGAIN no majority.
    task<result<void>> add_child(const std::string& uri, std::string* why);
    task<result<void>> remove_child(const std::string& uri_or_uuid, std::string* why);
    task<result<void>> fault_child(const std::string& uri_or_uuid, std::string* why);
    task<result<void>> online_child(const std::string& uri_or_uuid, std::string* why);
    // Points a child at another URI (its node serves it at a new address):
    // it keeps its place (UUID) in the nexus, is retired first if it was
    // writable, reconnected there and rebuilt over what it missed only. The
    // device found there must carry this child's label (else it is not
    // used: "not this nexus's child any more"). Same URI: nothing to do.
    task<result<void>> repoint_child(const std::string& uri_or_uuid, const std::string& uri,
                                     std::string* why);
    // The arbiter's answer while writes are held (EINVAL when they are not).
    task<result<void>> arbitrate(bool allow, std::string* why);

    // Holds new writes (reads go on) and returns once every write in flight
    // has completed on the children: each in-sync child then holds the same
    // data, so that snapshots of them taken now are one consistent snapshot.
    // The pause lapses by itself after `timeout` (a caller that died must not
    // freeze the volume); resume() says whether it still held (false: it had
    // lapsed, or there was none, and what was done meanwhile may not be
    // consistent). Pausing again while paused restarts the timeout. Home.
    task<void> pause(std::chrono::milliseconds timeout);
    bool resume();

    // Grows the nexus to `size_bytes` once every open child holds it plus
    // its metadata (grow the children first; a remote child's new size is
    // read from its node). Every I/O waits a moment while the bitmaps grow,
    // the size is committed in the labels (a nexus re-created from them has
    // it), and then hosts see it through the bdev's resize listeners. The
    // same size: nothing to do. Errors, with a sentence: EINVAL (smaller,
    // not whole blocks, a child too small, more than the bitmap's regions
    // cover), EBUSY (a rebuild or another resize is running: try again once
    // it is done), EAGAIN (no majority), ESTALE, ENODEV. Home.
    task<result<void>> resize(uint64_t size_bytes, std::string* why);

  private:
    nexus(std::shared_ptr<nexus_impl> impl, std::shared_ptr<bdev::bdev> dev);
    std::shared_ptr<nexus_impl> impl_;
    std::shared_ptr<bdev::bdev> bdev_;
};

// Makes a device blank for a new nexus: zeroes over its label and bitmap
// (the first format::metadata_bytes). For the clones of a nexus's children
// taken from one consistent snapshot: their labels name the origin's nexus,
// their data are the same, and a new nexus over blank children takes every
// one as in sync. requires: no nexus uses the device.
task<result<void>> clear_child_label(child_device& d, std::string* why);

// Reads the label of a device (and counts its bitmap's set bits) without
// building a nexus: ENODATA when it has none, EUCLEAN when it is damaged.
task<result<label_info>> read_child_label(child_device& d, uint64_t* dirty_regions,
                                          std::string* why);

}  // namespace weft::nexus
