// The nexus's insides, shared by its files: nexus.cc (open, membership,
// bitmap, management), io.cc (the channel: the I/O path on any reactor) and
// rebuild.cc (copying regions to a child that missed them). Not a public
// header: see nexus.h for the contract.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bdev/bdev.h"
#include "nexus/bitmap.h"
#include "nexus/nexus.h"
#include "pool/async_lock.h"
#include "runtime/abort.h"
#include "runtime/gate.h"
#include "runtime/io_epochs.h"
#include "runtime/wait_list.h"

namespace weft::nexus {

constexpr unsigned max_slots = format::max_members;

// One child as a list (a braced list in a co_await argument trips g++ 12).
struct child;
inline std::vector<child*> just(child* c) {
    return std::vector<child*>(1, c);
}

inline uint32_t bit(unsigned slot) {
    return uint32_t(1) << slot;
}

// What the I/O path reads: an immutable picture of the children. Home builds
// a new one for every change and frees an old one only after a grace period.
struct view {
    uint64_t version = 0;
    std::array<std::shared_ptr<bdev::bdev>, max_slots> dev;  // by slot; null: none
    std::array<uint8_t, max_slots> writers{};                // in sync or rebuilding
    std::array<uint8_t, max_slots> readers{};                // in sync
    uint8_t nwriters = 0;
    uint8_t nreaders = 0;
    int preferred = -1;        // a local in-sync child, read first
    bool hold_writes = false;  // a membership change is not durable yet: writes wait
    // No majority: this nexus may have been taken over elsewhere, so reads
    // wait too (they could return data the other side has overwritten).
    bool hold_reads = false;
    int fail_all = 0;  // -errno for every I/O (superseded, closed)
    // After an unclean close: regions whose bit is set may differ between
    // the in-sync children until resynced; reads of them go to this one.
    int resync_source = -1;
};

// One child of the nexus, as home sees it.
struct child {
    unsigned slot = 0;
    std::string uri;
    uuid id{};
    std::unique_ptr<child_device> dev;
    std::shared_ptr<bdev::bdev> bd;     // null while closed
    std::unique_ptr<bdev::channel> ch;  // home's: labels, bitmap, rebuild
    child_state state = child_state::faulted;
    std::string reason;
    // Its record in the label: in sync, or stale with [rebuild_from, size)
    // still to copy in full (size_bytes: only the bitmap's regions).
    format::member_state mstate = format::member_state::stale;
    uint64_t rebuild_from = 0;
    uint64_t label_seq = 0;  // of the label last written (or read) on it
    bool reconnecting = false;
    // Reconnect backoff: when it last came back, and how long its next
    // reconnect waits if it fails again soon (reopen_loop).
    std::chrono::steady_clock::time_point back_at{};
    std::chrono::milliseconds backoff{0};
    // A rebuild or resync is using its home channel (a connection it had
    // before a reconnect is closed only once that is over).
    unsigned busy = 0;
    bool removed = false;   // taken out of the nexus (background tasks let go)
    bool queued = false;    // waiting in the rebuild queue
    bool requeue = false;   // came back while its rebuild was ending
    uint64_t failures = 0;  // failures reported: a rebuild checks its source had none
    uint64_t io_errors = 0;
    int last_error = 0;  // of its last failed label write (-errno)
    // Its own bitmap as read when it came back: regions it may hold that the
    // others lack (writes of a nexus that was cut off); rebuilt too.
    std::unique_ptr<region_bitmap> own_bits;
    std::optional<rebuild_progress> progress;

    bool local() const { return dev && dev->local(); }
    bool writable() const {
        return state == child_state::online || state == child_state::rebuilding;
    }
};

class nexus_channel;

// ---- helpers shared by the nexus's files (util in nexus.cc) ----
error fail(std::string* why, int code, std::string msg);
std::string short_id(const uuid& u);
// Why a child failed, as the API shows it ("timeout", "unreachable", ...).
std::string reason_of(int rc);
uint16_t random_tag();
// Reads / writes (FUA) whole blocks at byte offset `off` of a child's channel.
task<int> read_bytes(bdev::channel& ch, uint32_t bs, uint64_t off, std::span<std::byte> out);
task<int> write_bytes(bdev::channel& ch, uint32_t bs, uint64_t off, std::span<const std::byte> in);

// A child device opened and its label read (open, add_child).
struct probe {
    std::string uri;
    uuid known{};
    std::unique_ptr<child_device> dev;
    std::shared_ptr<bdev::bdev> bd;
    std::string open_error;
    int open_err = 0;
    std::optional<label_info> label;
    int label_err = 0;  // ENODATA: blank; EUCLEAN: damaged; other: read error
    std::string label_why;
};
task<void> probe_child(probe& pr);

// io.cc
std::shared_ptr<bdev::bdev> make_nexus_bdev(std::shared_ptr<nexus_impl> nx, std::string name,
                                            bool volatile_cache, bool unmap_zeroes);
// Gives the nexus bdev a new size (its users and resize listeners see it).
void publish_size(bdev::bdev& b, uint64_t num_blocks);
void drop_child_channel(nexus_channel* c, unsigned slot);
// The same, only when the channel is of `dev` (a reconnected child's old one).
void drop_child_channel_if(nexus_channel* c, unsigned slot, const bdev::bdev* dev);

class nexus_impl {
  public:
    nexus_impl(uuid id, uint64_t size_bytes, uint32_t block_size, uint64_t region_size, options opt,
               child_factory f);
    ~nexus_impl();

    // ---- shared with the I/O path (any reactor) ----
    std::atomic<view*> view_{nullptr};
    // The regions [r0, r1) a rebuild is copying, as (r0 << 32 | r1); 0: none.
    std::atomic<uint64_t> window_{0};
    // The I/O in flight per reactor: grace() waits for what started before.
    io_epochs epochs_;
    unsigned nslots_ = 1;                      // reactors (channels_ has a list for each)
    std::unique_ptr<region_bitmap> durable_;   // on the children's bitmaps
    std::unique_ptr<region_bitmap> touched_;   // written since the last clear pass
    std::unique_ptr<region_bitmap> clearing_;  // cleared in memory, not yet on disk
    const uuid id_;
    uint64_t size_bytes_;  // home (grows: resize.cc)
    const uint32_t block_size_;
    const uint64_t region_size_;
    const unsigned region_shift_;  // log2(region_size_ / block_size_): LBA -> region
    const uint64_t data_offset_;   // child LBA of nexus LBA 0
    unsigned home_ = 0;

    io_epochs::slot& slot_here() { return epochs_.here(); }
    uint64_t region_of(uint64_t lba) const { return lba >> region_shift_; }
    bool window_overlaps(uint64_t r0, uint64_t r1) const {
        uint64_t w = window_.load();
        return w && r0 < (w & 0xffffffff) && (w >> 32) < r1;
    }
    // Channels register on their own reactor (a list per reactor).
    void add_channel(unsigned reactor, nexus_channel* c);
    void remove_channel(unsigned reactor, nexus_channel* c);

    // ---- called by the I/O path on home ----
    // Makes the bits of [r0, r1) durable on every writable child (batched
    // with concurrent callers). 0 or -errno.
    task<int> set_bits(uint64_t r0, uint64_t r1);
    // Waits until writes to [r0, r1) may go (not held, not being copied),
    // or (read) until reads are no longer held.
    task<void> wait_unblocked(uint64_t r0, uint64_t r1, bool read = false);
    // A write or flush failed on some children: retires them, then says
    // whether the I/O may be acknowledged (0) or which error it returns.
    struct failure {
        unsigned slot;
        int rc;
    };
    task<int> resolve_write(uint32_t sent, uint32_t ok, std::span<const failure> failed);
    // A read failed on a child (any reactor): home retires it in the background.
    void read_failed(unsigned slot, int rc);
    std::atomic<int64_t> reports_in_flight_{0};

    // ---- home ----
    task<void> close(bool clean);
    task<void> close_cleanly();
    bool clean_closed_ = false;
    nexus_status status() const;
    task<result<void>> add_child(const std::string& uri, std::string* why);
    task<result<void>> remove_child(const std::string& ref, std::string* why);
    task<result<void>> fault_child(const std::string& ref, std::string* why);
    task<result<void>> online_child(const std::string& ref, std::string* why);
    task<result<void>> repoint_child(const std::string& ref, const std::string& uri,
                                     std::string* why);
    task<result<void>> arbitrate(bool allow, std::string* why);
    std::vector<std::string> child_uris() const;
    std::vector<uuid> child_ids() const;
    // resize.cc: grows the nexus (nexus::resize); the checks (every open
    // child holds the new size, the bitmap covers it); and the growth itself
    // with no I/O inside the nexus (held, or no bdev yet), committed.
    task<result<void>> grow(uint64_t size, std::string* why);
    task<result<void>> check_growth(uint64_t size, std::string* why);
    task<result<void>> grow_quiet(uint64_t size, std::string* why);

  private:
    friend class nexus_channel;

    friend class nexus;

    // views and grace periods
    void publish();
    task<void> grace();
    task<void> reclaim_views();
    task<void> drop_channels(unsigned slot);

    // labels and membership
    label_info label_for(const child& c) const;
    task<uint32_t> write_labels(std::vector<child*> targets, int* conflict);
    // Commits the in-memory membership (generation + 1) on every open child.
    // It must reach a majority of durable_in_sync_ (`prev_total`: their
    // number counting members without a slot, at open), or the policy or the
    // arbiter allows less. may_wait: without a majority, hold writes and
    // retry (a failure the nexus found itself); otherwise give up with
    // EAGAIN (a request) -- unless this commit retired children itself.
    task<result<void>> commit(bool may_wait, std::string* why, unsigned prev_total = 0);
    // In sync now and at the last commit: the children the "never retire
    // the last in-sync child" rule counts.
    unsigned durably_in_sync() const {
        return unsigned(std::popcount(in_sync_mask() & durable_in_sync_));
    }
    // A child leaves the in-sync set (in memory; the caller commits, with
    // retiring_ counted so that writes wait for the commit).
    void mark_retired(child& c, const std::string& reason);
    void end_retiring();
    uint32_t in_sync_mask() const;
    // Marks children stale and commits; never retires the last in-sync one.
    // With may_wait false (a request) and no majority, nothing changes: EAGAIN.
    task<result<void>> retire(std::vector<child*> cs, std::string reason, bool may_wait = true,
                              std::string* why = nullptr);
    void supersede(const std::string& why);
    task<void> retire_in_background(unsigned slot, int rc);

    // bitmap
    task<int> write_bitmap_blocks(std::vector<uint64_t> blocks, const region_bitmap* add,
                                  bool clearing = false);
    task<bool> flush_writable();
    task<void> flush_bits();
    task<void> clear_loop();
    task<result<void>> read_bitmap(child& c, region_bitmap& into, std::string* why);

    // children
    child* find_child(const std::string& ref);
    child* at_slot(unsigned slot);
    task<void> reopen_loop(std::shared_ptr<child> c);
    task<void> close_old_device(std::shared_ptr<child> c, std::unique_ptr<child_device> dev,
                                std::shared_ptr<bdev::bdev> bd, std::unique_ptr<bdev::channel> ch);
    wait_list busy_changed_;
    // Counts a rebuild or resync using a child for as long as it lives.
    struct busy_hold {
        busy_hold(nexus_impl& nx, child* c) : nx(nx), c(c) { ++c->busy; }
        ~busy_hold() {
            if (--c->busy == 0) nx.busy_changed_.notify_all();
        }
        busy_hold(const busy_hold&) = delete;
        busy_hold& operator=(const busy_hold&) = delete;
        nexus_impl& nx;
        child* c;
    };
    task<void> close_child(child* c);

    // rebuild (rebuild.cc)
    void queue_rebuild(child* c);
    task<void> rebuild_worker();
    task<result<void>> rebuild(child* t, std::string* outcome);
    task<result<void>> resync(std::string* outcome);
    // Copies nexus bytes [off, off + len) from src to dsts (skipping what
    // src has not allocated: those blocks are deallocated on dsts). On
    // failure *who is the child that failed.
    task<int> copy_range(child& src, std::vector<child*> dsts, uint64_t off, uint64_t len,
                         uint64_t* copied, child** who);
    child* pick_source(const child* except) const;
    task<void> throttle(uint64_t bytes);
    void set_window(uint64_t r0, uint64_t r1);
    void clear_window();

    options opt_;
    child_factory factory_;
    std::vector<std::shared_ptr<child>> children_;
    std::shared_ptr<child> shared(child* c) const;
    std::vector<std::vector<nexus_channel*>> channels_;  // by reactor
    std::vector<view*> retired_views_;
    uint64_t next_view_ = 1;

    uint64_t generation_ = 0;
    uint32_t durable_in_sync_ = 0;  // the in-sync set of the last commit
    uint64_t fence_key_ = 0;
    bool clean_at_open_ = true;
    bool resync_pending_ = false;
    int resync_source_ = -1;
    unsigned retiring_ = 0;   // retirements whose commit is not durable yet: writes wait
    bool paused_ = false;     // pause(): writes wait
    bool resizing_ = false;   // grow(): every I/O waits
    uint64_t pause_seq_ = 0;  // which pause() a lapsing timer belongs to
    wait_list retired_;       // a retirement's commit finished
    bool superseded_ = false;
    bool opened_ = false;  // open() finished: background tasks may start
    bool closing_ = false;
    bool closed_ = false;
    std::string superseded_why_;
    std::string waiting_;  // writes held, and why
    bool arbiter_yes_ = false;
    wait_list arbiter_changed_;
    wait_list unblocked_;  // the window moved or writes were released

    pool::async_lock md_lock_;  // label and bitmap writes

    // bitmap bits requested and not yet durable (batched)
    std::unique_ptr<region_bitmap> pending_;
    bool pending_any_ = false;
    bool flushing_ = false;
    uint64_t flush_round_ = 0, flush_done_ = 0;
    wait_list flushed_;

    std::deque<std::shared_ptr<child>> rebuild_queue_;  // null: the resync
    bool rebuilding_ = false;
    child* rebuild_target_ = nullptr;
    wait_list rebuild_changed_;
    bool cancel_rebuild_ = false;
    std::vector<rebuild_record> history_;
    uint64_t rebuilt_bytes_ = 0;
    uint64_t retirements_ = 0;
    std::chrono::steady_clock::time_point throttle_start_{};
    uint64_t throttle_bytes_ = 0;

    abort_source stop_;  // background sleeps
    gate bg_;            // background tasks (clear loop, reconnects, rebuilds)
};

}  // namespace weft::nexus
