/*
 * The multi-thread (M:N) coroutine runtime of the hybrid MPM: many
 * coroutines on N worker threads of one process, after Go's G/M/P
 * scheduler and Tokio's multi-thread runtime.  It reuses the single-thread
 * runtime's parts (coro.h): the context switch (ctx.h: asm or ucontext),
 * the guarded, pooled stacks (stack.h) and the deadline heap (timer.h).
 *
 * Workers.  mt_sched_run() starts N workers (the calling thread is worker
 * 0).  Each owns a bounded 256-slot ring (lock-free: the owner pushes at
 * the tail, owner and thieves take at the head with a CAS) and a next slot
 * holding the coroutine a running coroutine woke last (a hand-off; the
 * netpoller and timers queue in order at the tail), run at most 3 times
 * in a row so two coroutines waking each other cannot starve the ring.
 * A full ring moves
 * half of itself to the global inject queue (a mutex-protected list, also
 * where foreign threads put work), which a worker checks every 61 ticks
 * and whenever its ring is empty.
 *
 * Finding work, in order: the ring, the inject queue, a non-blocking look
 * at the netpoller, then stealing half of a random victim's ring (4 rounds
 * over the workers; the last round may take the victim's next slot).  At
 * most half of the busy workers search at once (spinning thieves are
 * bounded).  A worker that found nothing either becomes THE poller (a CAS
 * on a flag: one worker at a time blocks in epoll_wait, until the earliest
 * timer) or parks on a condition variable.  New work wakes a parked
 * worker, or, when every idle worker is the poller, breaks its epoll_wait
 * through the eventfd.
 *
 * Parking and waking without lost or double wake-ups.  Every park has a
 * generation; wake_state = gen << 8 | result (0: still waiting).  A waker
 * (netpoller, timer, blocking pool, mt_ready) wins with one CAS from
 * "gen, waiting", so exactly one wake per park counts, and a stale waker
 * of an older park fails.  Wakers CAS while holding the lock of the source
 * that references the coroutine (fd slot or timer heap); the woken
 * coroutine unlinks itself from both under the same locks before it can
 * finish, so no waker ever touches a freed stack.  A coroutine is made
 * runnable only once its switch-out has completed: the winner and the
 * worker that switched it out both exchange a flag, and the second one
 * queues it.
 *
 * Netpoller.  One epoll set.  Long-lived fds are registered once,
 * EPOLLET, with a reader and a writer waiter slot and latched edges; other
 * fds are armed EPOLLONESHOT per wait (see coro.h, same rule).  Readiness
 * wakes the parked coroutine, which the dispatching worker queues on its
 * own ring (others steal it); it wakes a parked worker to take over the
 * polling, unless the busy workers already fill every CPU the process may
 * run on (taskset: see mt_notify).  Bare-fd watches (idle keep-alive
 * connections, no stack) call a function on a worker's own stack.
 *
 * Timers.  One min-heap under a mutex (timer.h); the earliest deadline is
 * published atomically so busy workers fire due timers with one load per
 * tick, and the poller sleeps until it.  No timer thread.
 *
 * Blocking pool.  mt_run_blocking() parks the coroutine and hands the job
 * to a pool thread (created on demand, at most 16, kept), so waitpid, DNS
 * or a slow open never stall a worker.
 *
 * Monitor.  A thread wakes every 5 ms (so a stuck worker is found 10 to
 * 15 ms after it started): a worker that stayed in the same
 * coroutine for more than 10 ms and either burnt CPU meanwhile (a
 * CPU-heavy handler) or sleeps in the kernel (a blocking call) is stuck;
 * one merely preempted by an overloaded machine is not.  A stuck worker's
 * ring and next slot move to the inject queue, and while fewer than N
 * workers are usable a spare worker is started (at most MT_MAX_SPARE; a
 * spare retires once it runs out of work and the others are back), so
 * the netpoller, the timers and the queue keep moving.  There is no
 * preemption: the stuck coroutine keeps its thread until it waits.
 *
 * Stacks.  As coro.h (guard page, overflow message), cached per worker
 * with a shared second level (see MT_STACK_CACHE_DEFAULT for why); the
 * MPM trims both after a burst (mt_sched_trim).
 * ASan fiber annotations as in sched.c, ThreadSanitizer fibers, and the
 * valgrind registration of stack.c.
 *
 * Migration rules (coro.h): errno is saved and restored per coroutine
 * across a switch and must be read right after each syscall; no
 * thread-local pointer and no mutex across a switch.  The accessors that
 * read this runtime's thread-locals are opaque calls, so the compiler
 * cannot reuse a value loaded on the previous thread.
 */
#ifndef QT_MT_SCHED_H
#define QT_MT_SCHED_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coro.h"

typedef struct mt_sched mt_sched;
typedef struct mt_coro mt_coro;

#define MT_MAX_WORKERS 64
#define MT_MAX_SPARE 4
#define MT_RING_SIZE 256u
#define MT_NEXT_CAP 3u
#define MT_INJECT_INTERVAL 61u
#define MT_STUCK_MS 10
/*
 * Stack caches: per worker, backed by a shared one.  Larger than the
 * single-thread runtime's 64 because in a multi-threaded process every
 * munmap is a TLB shootdown (an IPI to each CPU running a worker), and
 * stacks drift from the worker that spawns (the poller) to the ones that
 * finish: without the shared level a burst of short requests mapped and
 * unmapped a stack per request.  8192 cached stacks are 16K VMAs.
 */
#define MT_STACK_CACHE_DEFAULT 256u
#define MT_SHARED_STACK_CACHE 8192u

typedef struct mt_opts {
    unsigned threads;           /* workers; 0: online CPUs */
    size_t stack_size;          /* usable bytes per stack; 0: 64 KiB */
    unsigned stack_cache;       /* free stacks kept per worker; 0: 256 */
    unsigned blocking_max;      /* blocking pool threads; 0: 16 */
    bool no_monitor;            /* tests: no stuck-worker rescue */
    /* Signals unblocked only while the poller sleeps (pselect pattern). */
    const sigset_t *poll_sigmask;
    /* Called on a worker's own stack after every epoll wake-up. */
    void (*tick)(mt_sched *s, void *arg);
    void *tick_arg;
} mt_opts;

typedef struct mt_stats {
    unsigned workers;           /* configured */
    unsigned live;              /* coroutines not finished */
    unsigned watches;
    unsigned long long created;
    unsigned long long steals;  /* coroutines moved by stealing */
    unsigned long long handoffs;/* rings rescued by the monitor */
    unsigned long long spares;  /* spare workers started */
    unsigned long long switches;
} mt_stats;

/* ------------------------------------------------------------- scheduler */

mt_sched *mt_sched_create(const mt_opts *opts);
/* After mt_sched_run returned.  Coroutines still parked leak their stack. */
void mt_sched_destroy(mt_sched *s);
/* Runs the workers until mt_sched_stop() or until nothing is alive. */
void mt_sched_run(mt_sched *s);
/* Any thread, async-signal-unsafe. */
void mt_sched_stop(mt_sched *s);
void mt_sched_stats(mt_sched *s, mt_stats *out);
/*
 * After a burst (any thread): the shared stack cache is emptied and each
 * worker trims its own cache (coro_stack_pool_trim) to its share of keep
 * when it next runs out of work; idle workers are woken for it.
 */
void mt_sched_trim(mt_sched *s, unsigned keep);
/* The scheduler of the calling worker thread, or NULL. */
mt_sched *mt_current(void);
/* Index of the calling worker thread, or -1 (tests: migration). */
int mt_worker_id(void);

/* ------------------------------------------------------------ coroutines */

/* Any thread.  NULL when no stack can be mapped. */
mt_coro *mt_spawn(mt_sched *s, void (*fn)(void *), void *arg);
mt_coro *mt_self(void);
void mt_yield(void);
/* Parks until mt_ready() (QT_OK) or the deadline (QT_TIMEOUT; <= 0 none). */
int mt_park_until(int64_t deadline_ms);
/* Any thread; wakes co if it is parked (or about to park). */
void mt_ready(mt_coro *co);
void mt_sleep_ms(int64_t ms);
/* Runs fn(arg) on a blocking-pool thread; inline outside a coroutine. */
void mt_run_blocking(void (*fn)(void *), void *arg);

/* ------------------------------------------------------------- netpoller */

int mt_fd_register(mt_sched *s, int fd, unsigned flags);  /* CORO_FD_* */
void mt_fd_forget(mt_sched *s, int fd);
/* As coro_wait_fd(); poll() outside a coroutine. */
int mt_wait_fd(int fd, short events, int64_t deadline_ms);
/* As coro_watch_fd(); fn runs on some worker's own stack. */
int mt_watch_fd(mt_sched *s, int fd, int64_t deadline_ms,
                coro_watch_fn *fn, void *arg);
/* True if the watch was pending and is now cancelled (fn will not run). */
bool mt_unwatch_fd(mt_sched *s, int fd);

#endif
