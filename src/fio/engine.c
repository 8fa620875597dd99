/* fio's side of the weft external ioengine:
 *
 *   fio --ioengine=external:/path/libweft_fio.so --addr=127.0.0.1 --port=4420 \
 *       --nqn=nqn.2026-11.io.weft:demo --nsid=1 --filename=weft0 ...
 *   or filename=127.0.0.1\:4420\:nqn.2026-11.io.weft\:demo\:1 (colons escaped
 *   for fio, which splits file names at ':').
 *
 * Design: one initiator controller (admin queue + one I/O queue) per fio
 * job thread, on a lone weft reactor that lives in that thread. Nothing
 * runs in the background: queue() spawns the command's coroutine, commit()
 * runs the reactor until idle (the PDUs of every command queued since go
 * out in one sendmsg; but see batching below), getevents() runs it and
 * waits on the reactor's ring until enough commands completed. So there is no
 * cross-thread handoff per I/O, and fio's own iodepth/batching decides how
 * commands share a send. The price: the keep-alive and the reconnect
 * backoff only advance while fio calls in, which fio does continuously
 * during a job (KATO is 30 s).
 *
 * Batching at depth: fio reaps one completion per getevents() by default
 * (iodepth_batch_complete_min/max = 1) and calls commit() before each.
 * Run naively, that is two io_uring_enter calls per command and fio in
 * lockstep with the wire. So commit() does not run the reactor when fio's
 * queue is full (its next call is getevents(), which sends) until a
 * quarter of the queue waits to go out (holding back more leaves the
 * target idle while fio works), and getevents() hands over completions
 * already received before running the reactor again: one run then moves
 * every completion and command that piled up meanwhile. At 4 KiB QD32
 * this took fio from 0.3x to about 1x of `weft nvme perf`
 * (bench/fio_bench.sh). Before sleeping, getevents() busy-polls for
 * weft_poll_us (50 us, as the engine's reactors), which buys latency at
 * low depth; 0 sleeps at once and an idle job never spins.
 *
 * fio calls get_file_size() from its main thread before the job threads
 * start (create_serialize), so it uses a short-lived connection of its
 * own; the job's connection is opened by init() in the job's thread.
 *
 * ABI: this file includes fio's internal headers (fio.h, optgroup.h) from
 * Debian's source package configured as Debian builds fio
 * (scripts/fio-source.sh), so thread_data, io_u and fio_file have the
 * installed /usr/bin/fio's layout; init() checks a few fields it can
 * cross-check and refuses to run on a mismatch rather than corrupt memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fio.h"
#include "optgroup.h"
#include "weft_fio.h"

struct weft_options {
    void* pad; /* fio keeps the thread_data pointer here */
    char* addr;
    unsigned int port;
    char* nqn;
    char* hostnqn;
    unsigned int nsid;
    unsigned int hdr_digest;
    unsigned int data_digest;
    unsigned int timeout_ms;
    unsigned int poll_us;
};

static struct fio_option options[] = {
    {.name = "addr",
     .lname = "weft target address",
     .type = FIO_OPT_STR_STORE,
     .off1 = offsetof(struct weft_options, addr),
     .help = "NVMe/TCP target IP address",
     .category = FIO_OPT_C_ENGINE,
     .group = FIO_OPT_G_INVALID},
    {.name = "port",
     .lname = "weft target port",
     .type = FIO_OPT_INT,
     .off1 = offsetof(struct weft_options, port),
     .def = "4420",
     .help = "NVMe/TCP port",
     .category = FIO_OPT_C_ENGINE,
     .group = FIO_OPT_G_INVALID},
    {.name = "nqn",
     .lname = "weft subsystem NQN",
     .type = FIO_OPT_STR_STORE,
     .off1 = offsetof(struct weft_options, nqn),
     .help = "subsystem NQN",
     .category = FIO_OPT_C_ENGINE,
     .group = FIO_OPT_G_INVALID},
    {.name = "hostnqn",
     .lname = "weft host NQN",
     .type = FIO_OPT_STR_STORE,
     .off1 = offsetof(struct weft_options, hostnqn),
     .help = "host NQN (default: /etc/nvme/hostnqn or one from the machine id)",
     .category = FIO_OPT_C_ENGINE,
     .group = FIO_OPT_G_INVALID},
    {.name = "nsid",
     .lname = "weft namespace",
     .type = FIO_OPT_INT,
     .off1 = offsetof(struct weft_options, nsid),
     .def = "1",
     .help = "namespace ID",
     .category = FIO_OPT_C_ENGINE,
     .group = FIO_OPT_G_INVALID},
    {.name = "hdr_digest",
     .lname = "weft header digest",
     .type = FIO_OPT_BOOL,
     .off1 = offsetof(struct weft_options, hdr_digest),
     .def = "0",
     .help = "PDU header digests (CRC32C)",
     .category = FIO_OPT_C_ENGINE,
     .group = FIO_OPT_G_INVALID},
    {.name = "data_digest",
     .lname = "weft data digest",
     .type = FIO_OPT_BOOL,
     .off1 = offsetof(struct weft_options, data_digest),
     .def = "0",
     .help = "PDU data digests (CRC32C)",
     .category = FIO_OPT_C_ENGINE,
     .group = FIO_OPT_G_INVALID},
    {.name = "weft_timeout_ms",
     .lname = "weft command timeout",
     .type = FIO_OPT_INT,
     .off1 = offsetof(struct weft_options, timeout_ms),
     .def = "30000",
     .help = "connect and per-command timeout, ms",
     .category = FIO_OPT_C_ENGINE,
     .group = FIO_OPT_G_INVALID},
    {.name = "weft_poll_us",
     .lname = "weft completion polling",
     .type = FIO_OPT_INT,
     .off1 = offsetof(struct weft_options, poll_us),
     .def = "50",
     .minval = 0,
     .maxval = 1000000,
     .help = "busy-poll for completions this long (us) before sleeping; 0: sleep at once",
     .category = FIO_OPT_C_ENGINE,
     .group = FIO_OPT_G_INVALID},
    {.name = NULL},
};

/* A job's state: its connection and the completions getevents() returned. */
struct weft_job {
    struct weft_fio_ctx* ctx;
    struct io_u** events;
    void** cookies;
    int* errs;
    unsigned max_events;
};

/* Where a file's I/O goes, parsed from its name or the engine options. */
struct weft_file_target {
    char addr[64];
    unsigned port;
    char nqn[224];
    unsigned nsid;
};

/* "ADDR:PORT:NQN:NSID": NQN may hold colons; the last field is the NSID
 * when numeric. Returns 0 when the name is not of that form. */
static int parse_filename(const char* name, struct weft_file_target* t) {
    const char* first = strchr(name, ':');
    const char* last = strrchr(name, ':');
    if (!first || first == last || first - name >= (long)sizeof(t->addr)) return 0;
    const char* second = strchr(first + 1, ':');
    if (!second) return 0;
    memcpy(t->addr, name, first - name);
    t->addr[first - name] = 0;
    t->port = (unsigned)strtoul(first + 1, NULL, 10);
    char* end = NULL;
    unsigned long nsid = strtoul(last + 1, &end, 10);
    const char* nqn_end = name + strlen(name);
    if (end && *end == 0 && last > second && nsid > 0) {
        t->nsid = (unsigned)nsid;
        nqn_end = last;
    }
    size_t n = nqn_end - (second + 1);
    if (n == 0 || n >= sizeof(t->nqn) || t->port == 0 || t->port > 65535) return 0;
    memcpy(t->nqn, second + 1, n);
    t->nqn[n] = 0;
    return 1;
}

static int file_target(struct thread_data* td, struct fio_file* f, struct weft_file_target* t) {
    struct weft_options* o = td->eo;
    memset(t, 0, sizeof(*t));
    t->port = o->port ? o->port : 4420;
    t->nsid = o->nsid ? o->nsid : 1;
    if (parse_filename(f->file_name, t)) return 0;
    if (!o->addr || !o->nqn) {
        log_err(
            "weft: %s is not ADDR:PORT:NQN[:NSID] and the addr= and nqn= options are not "
            "both set\n",
            f->file_name);
        return 1;
    }
    snprintf(t->addr, sizeof(t->addr), "%s", o->addr);
    snprintf(t->nqn, sizeof(t->nqn), "%s", o->nqn);
    return 0;
}

static struct weft_fio_ctx* connect_target(struct thread_data* td,
                                           const struct weft_file_target* t) {
    struct weft_options* o = td->eo;
    struct weft_fio_target w = {
        .addr = t->addr,
        .port = t->port,
        .subnqn = t->nqn,
        .hostnqn = o->hostnqn,
        .header_digest = (int)o->hdr_digest,
        .data_digest = (int)o->data_digest,
        .queue_depth = td->o.iodepth,
        .timeout_ms = o->timeout_ms,
        .poll_us = o->poll_us,
    };
    char err[512];
    struct weft_fio_ctx* ctx = weft_fio_open(&w, err, sizeof(err));
    if (!ctx) log_err("%s\n", err);
    return ctx;
}

static int weft_get_file_size(struct thread_data* td, struct fio_file* f) {
    struct weft_file_target t;
    uint64_t bytes = 0;
    uint32_t block = 0;
    if (fio_file_size_known(f)) return 0;
    if (file_target(td, f, &t)) return 1;
    struct weft_fio_ctx* ctx = connect_target(td, &t);
    if (!ctx) return 1;
    int rc = weft_fio_namespace(ctx, t.nsid, &bytes, &block);
    weft_fio_close(ctx);
    if (rc) {
        log_err("weft: namespace %u does not exist on %s\n", t.nsid, t.nqn);
        return 1;
    }
    f->real_file_size = bytes;
    fio_file_set_size_known(f);
    return 0;
}

/* The cheap ABI checks: fields whose values we can predict. A header of
 * another fio version or configuration moves them. */
static int abi_matches(struct thread_data* td) {
    extern struct ioengine_ops ioengine;
    return td->io_ops && td->io_ops->queue == ioengine.queue && td->eo && td->o.iodepth >= 1 &&
           td->o.iodepth <= 65536 && td->o.nr_files >= 1 && td->o.name != NULL;
}

static int weft_init(struct thread_data* td) {
    struct weft_job* job;
    struct weft_file_target t;
    if (!abi_matches(td)) {
        log_err(
            "weft: this libweft_fio.so was built against headers of another fio version or "
            "configuration than the running fio (%s); rebuild it after "
            "scripts/fio-source.sh\n",
            fio_version_string);
        return 1;
    }
    if (td->o.nr_files < 1 || !td->files || !td->files[0]) {
        log_err("weft: the job has no file\n");
        return 1;
    }
    if (file_target(td, td->files[0], &t)) return 1;
    job = calloc(1, sizeof(*job));
    if (!job) return 1;
    job->max_events = td->o.iodepth;
    job->events = calloc(job->max_events, sizeof(*job->events));
    job->cookies = calloc(job->max_events, sizeof(*job->cookies));
    job->errs = calloc(job->max_events, sizeof(*job->errs));
    job->ctx = connect_target(td, &t);
    td->io_ops_data = job;
    if (!job->events || !job->cookies || !job->errs || !job->ctx) return 1;
    return 0;
}

static void weft_cleanup(struct thread_data* td) {
    struct weft_job* job = td->io_ops_data;
    if (!job) return;
    if (job->ctx) weft_fio_close(job->ctx);
    free(job->events);
    free(job->cookies);
    free(job->errs);
    free(job);
    td->io_ops_data = NULL;
}

static int weft_open_file(struct thread_data* td, struct fio_file* f) {
    struct weft_job* job = td->io_ops_data;
    struct weft_file_target t;
    uint64_t bytes;
    uint32_t block;
    if (file_target(td, f, &t)) return 1;
    /* One connection per job: every file must be a namespace of it. */
    if (weft_fio_namespace(job->ctx, t.nsid, &bytes, &block)) {
        log_err("weft: namespace %u of %s is not on this job's controller\n", t.nsid, t.nqn);
        return 1;
    }
    f->engine_data = (void*)(uintptr_t)t.nsid;
    return 0;
}

static int weft_close_file(struct thread_data* td, struct fio_file* f) {
    struct weft_job* job = td->io_ops_data;
    /* fio may close files with commands still in the engine (a job that
     * ends early, as with latency_target) and frees their buffers next. */
    if (job && job->ctx) weft_fio_drain(job->ctx);
    f->engine_data = NULL;
    return 0;
}

static enum fio_q_status weft_queue(struct thread_data* td, struct io_u* io_u) {
    struct weft_job* job = td->io_ops_data;
    enum weft_fio_op op;
    int rc;
    fio_ro_check(td, io_u);
    switch (io_u->ddir) {
        case DDIR_READ:
            op = WEFT_FIO_READ;
            break;
        case DDIR_WRITE:
            op = WEFT_FIO_WRITE;
            break;
        case DDIR_SYNC:
        case DDIR_DATASYNC:
            op = WEFT_FIO_FLUSH;
            break;
        case DDIR_TRIM:
            op = WEFT_FIO_TRIM;
            break;
        default:
            io_u->error = EINVAL;
            return FIO_Q_COMPLETED;
    }
    rc = weft_fio_submit(job->ctx, op, (uint32_t)(uintptr_t)io_u->file->engine_data, io_u->offset,
                         io_u->xfer_buflen, io_u->xfer_buf, io_u);
    if (rc) {
        io_u->error = -rc;
        return FIO_Q_COMPLETED;
    }
    return FIO_Q_QUEUED;
}

static int weft_commit(struct thread_data* td) {
    struct weft_job* job = td->io_ops_data;
    weft_fio_kick(job->ctx);
    return 0;
}

static int weft_getevents(struct thread_data* td, unsigned int min, unsigned int max,
                          const struct timespec* t) {
    struct weft_job* job = td->io_ops_data;
    unsigned i, n;
    if (max > job->max_events) max = job->max_events;
    n = weft_fio_reap(job->ctx, min, max, t, job->cookies, job->errs);
    for (i = 0; i < n; ++i) {
        struct io_u* io_u = job->cookies[i];
        io_u->error = job->errs[i];
        io_u->resid = job->errs[i] ? io_u->xfer_buflen : 0;
        job->events[i] = io_u;
    }
    return (int)n;
}

static struct io_u* weft_event(struct thread_data* td, int event) {
    struct weft_job* job = td->io_ops_data;
    return job->events[event];
}

/* fio looks this symbol up by name in an external engine. */
__attribute__((visibility("default"))) struct ioengine_ops ioengine = {
    .name = "weft",
    .version = FIO_IOOPS_VERSION,
    /* No local file behind the name; no extending; fio's disk stats do not
     * know the target. */
    .flags = FIO_DISKLESSIO | FIO_NOEXTEND | FIO_NODISKUTIL | FIO_RAWIO,
    .init = weft_init,
    .queue = weft_queue,
    .commit = weft_commit,
    .getevents = weft_getevents,
    .event = weft_event,
    .cleanup = weft_cleanup,
    .open_file = weft_open_file,
    .close_file = weft_close_file,
    .get_file_size = weft_get_file_size,
    .option_struct_size = sizeof(struct weft_options),
    .options = options,
};
