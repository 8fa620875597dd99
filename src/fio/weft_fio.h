/* The C interface between fio's side of the engine (engine.c, compiled as
 * C against fio's own headers) and weft's initiator (backend.cc, C++).
 * fio's headers do not compile as C++, and weft's do not compile as C, so
 * this header is the only thing both sides see.
 *
 * Threading: a weft_fio_ctx belongs to the thread that opened it; every
 * call on it must come from that thread. It runs a lone weft reactor that
 * only moves when that thread calls weft_fio_kick() or weft_fio_reap().
 */
#ifndef WEFT_FIO_H
#define WEFT_FIO_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

struct weft_fio_target {
    const char* addr; /* IPv4 or IPv6 literal */
    unsigned port;
    const char* subnqn;
    const char* hostnqn; /* NULL or "": a stable default */
    int header_digest;
    int data_digest;
    unsigned queue_depth; /* fio's iodepth */
    unsigned timeout_ms;
    unsigned poll_us; /* busy-poll for completions this long before sleeping */
};

struct weft_fio_ctx;

enum weft_fio_op { WEFT_FIO_READ, WEFT_FIO_WRITE, WEFT_FIO_FLUSH, WEFT_FIO_TRIM };

/* Connects (controller with one I/O queue on this thread). NULL on failure,
 * with a sentence in err. */
struct weft_fio_ctx* weft_fio_open(const struct weft_fio_target* t, char* err, size_t errlen);
/* Namespace size and block size; -ENXIO when nsid is not active. */
int weft_fio_namespace(struct weft_fio_ctx* c, uint32_t nsid, uint64_t* bytes, uint32_t* block);
/* Starts one command; its completion comes out of weft_fio_reap() with
 * `cookie`. 0, or -EINVAL for an offset/length not on block boundaries or
 * longer than the controller's max transfer. */
int weft_fio_submit(struct weft_fio_ctx* c, enum weft_fio_op op, uint32_t nsid, uint64_t offset,
                    uint64_t len, void* buf, void* cookie);
/* Sends what was submitted (runs the reactor until idle, without waiting),
 * unless fio's queue is full and less than a quarter of it waits to go out:
 * then a later weft_fio_reap() sends it, the first that finds fewer than
 * `min` completions at hand. */
void weft_fio_kick(struct weft_fio_ctx* c);
/* Waits until at least `min` completions (or the timeout, NULL: none) and
 * returns up to `max` of them: cookies[i] and errs[i] (0 or a positive errno).
 * Completions already received are returned without running the reactor. */
unsigned weft_fio_reap(struct weft_fio_ctx* c, unsigned min, unsigned max,
                       const struct timespec* timeout, void** cookies, int* errs);
/* Waits until no command is in flight (their completions stay for
 * weft_fio_reap()): fio frees the I/O buffers after closing the files. */
void weft_fio_drain(struct weft_fio_ctx* c);
/* Drains, disconnects and frees. */
void weft_fio_close(struct weft_fio_ctx* c);
/* The host NQN used when none is given. */
void weft_fio_default_hostnqn(char* out, size_t len);

#ifdef __cplusplus
}
#endif

#endif
