/*
 * The coroutine runtime shared by the event MPM and the hybrid M:N MPM.
 *
 * What a coroutine is.  A function running on its own small stack that
 * gives the CPU back only at well-defined points: coro_yield(), coro_park(),
 * coro_sleep_ms() and coro_wait_fd().  Nothing preempts it.  A scheduler
 * (coro_sched) owns the coroutines of one thread, a FIFO run queue, a timer
 * heap and an epoll netpoller; coro_sched_run() is its loop.  Switches are
 * asymmetric: a coroutine always switches back to the loop, which picks the
 * next one, so the loop is the one place that decides who runs.
 *
 * Who owns stacks.  The scheduler.  A stack is one mmap (MAP_NORESERVE, so
 * untouched pages cost nothing) with a PROT_NONE guard page below it; the
 * coroutine's own struct lives at the top of its stack, so creating one
 * costs no malloc.  A finished coroutine's stack goes back to the
 * scheduler's free list (bounded cache, the rest is unmapped), because an
 * mmap + mprotect pair costs 5-17 us.  Running into the guard page prints
 * "coroutine stack overflow (stack of N bytes)" and aborts; the handler
 * runs on a sigaltstack.  Each guarded stack costs 2 VMAs, so
 * vm.max_map_count (65530) caps a process near 32K live coroutines: that
 * is why idle connections hold no coroutine at all (coro_watch_fd).
 *
 * The fd registration rule.  A long-lived fd (a client socket, a listening
 * socket) is registered ONCE with coro_fd_register(): edge-triggered,
 * EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET, with one reader and one writer waiter
 * slot.  An edge that arrives while nobody waits is latched, so the next
 * wait returns at once.  Whoever registered an fd must call coro_fd_forget()
 * before closing it.  Any other fd (a CGI pipe, a backend socket) may be
 * waited on without registering: it is armed EPOLLONESHOT per wait (one
 * epoll_ctl), which stays correct when the fd number is closed and reused
 * behind the runtime's back.
 *
 * Timers.  One binary min-heap per scheduler keyed by monotonic ms (the
 * qt_now_ms() clock, CLOCK_MONOTONIC), ties broken in arming order.  Every
 * parked coroutine and every fd watch embeds its own timer node, so a
 * deadline costs no allocation.  The loop sleeps in epoll_wait until the
 * earliest deadline.
 *
 * Rules for code that runs in a coroutine (hybrid moves coroutines between
 * threads, so these are enforced now to keep event code hybrid-safe):
 *   - Read errno right after the syscall; never keep errno or its address
 *     across a switch.  (errno itself is saved and restored per coroutine.)
 *   - Never hold a pointer to a thread-local, nor a mutex, across a switch
 *     (any call that may yield, park, sleep or wait).
 *   - OpenSSL keeps its error queue per thread: clear it before an SSL_*
 *     call and read it before waiting.
 *   - Long CPU work stalls every connection of the loop: yield, or hand it
 *     to qt_run_blocking().
 *
 * Threads.  Every function below acts on the scheduler running on the
 * calling thread (the one inside coro_sched_run()), except coro_spawn(),
 * which names its scheduler so the loop can be seeded before it runs, and
 * coro_sched_wake() / coro_sched_stop(), which are safe from any thread and
 * from signal handlers.
 *
 * How hybrid extends this.  A scheduler becomes a worker: one per core, each
 * with a bounded 256-slot ring plus a LIFO slot (capped at 3 runs per tick)
 * instead of the FIFO list, a global inject queue checked every 61 ticks,
 * and idle workers stealing half of a random victim's ring.  The netpoller
 * becomes shared: one epoll set, one worker at a time blocked in
 * epoll_wait, the others parked on a futex, the eventfd used to break the
 * wait.  coro_ready() then pushes to the current worker's ring (or the
 * inject queue from a foreign thread), and a coroutine may resume on
 * another thread, which the rules above already allow.
 */
#ifndef QT_CORO_H
#define QT_CORO_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct coro coro;
typedef struct coro_sched coro_sched;

#define CORO_STACK_DEFAULT  (64u * 1024u)
#define CORO_STACK_CACHE_DEFAULT 64u

typedef struct coro_sched_opts {
    size_t stack_size;          /* usable bytes per stack; 0: 64 KiB */
    unsigned stack_cache;       /* free stacks kept mapped; 0: 64 */
    /*
     * Signals to unblock only while the loop sleeps in epoll_pwait (the
     * pselect pattern): a handler for one of them cannot slip in between
     * the check of its flag and the sleep.  NULL: the mask is not touched.
     */
    const sigset_t *poll_sigmask;
    /* Called on the loop's stack after every wake-up (not in a coroutine). */
    void (*tick)(coro_sched *s, void *arg);
    void *tick_arg;
} coro_sched_opts;

typedef struct coro_stats {
    unsigned live;              /* coroutines created and not finished */
    unsigned runnable;
    unsigned watches;           /* bare-fd watches pending */
    unsigned stacks_mapped;     /* in use + cached */
    unsigned stacks_cached;
    unsigned long long created; /* coroutines ever created */
    unsigned long long stack_maps;  /* mmap calls for stacks */
    unsigned long long switches;    /* into coroutines */
} coro_stats;

/* --------------------------------------------------------------- scheduler */

/* opts may be NULL.  Aborts only if epoll/eventfd cannot be created. */
coro_sched *coro_sched_create(const coro_sched_opts *opts);
/* Frees everything, including coroutines that never finished. */
void coro_sched_destroy(coro_sched *s);
/*
 * Runs the loop on this thread until coro_sched_stop(), or until no
 * coroutine is alive and no fd is watched.
 */
void coro_sched_run(coro_sched *s);
/* Makes coro_sched_run() return at its next turn. */
void coro_sched_stop(coro_sched *s);
/* Unmaps cached free stacks beyond keep_stacks (memory back after a burst). */
void coro_sched_trim(coro_sched *s, unsigned keep_stacks);
/* Interrupts the loop's epoll_wait (any thread, async-signal-safe). */
void coro_sched_wake(coro_sched *s);
/* The scheduler running on this thread, or NULL. */
coro_sched *coro_sched_current(void);
void coro_sched_stats(const coro_sched *s, coro_stats *out);

/* -------------------------------------------------------------- coroutines */

/*
 * Creates a coroutine running fn(arg), runnable at the loop's next turn.
 * NULL when no stack can be mapped (address space or vm.max_map_count
 * exhausted): the caller refuses the work instead of aborting the server.
 */
coro *coro_spawn(coro_sched *s, void (*fn)(void *), void *arg);
/* coro_spawn() on the current scheduler. */
coro *coro_create(void (*fn)(void *), void *arg);
/* The running coroutine, or NULL on the loop's own stack. */
coro *coro_self(void);

/* Lets every other runnable coroutine run once.  No-op outside a coroutine. */
void coro_yield(void);
/*
 * Suspends the running coroutine until coro_ready() (QT_OK) or, with
 * coro_park_until(), the monotonic deadline (QT_TIMEOUT; <= 0: none).
 */
int coro_park(void);
int coro_park_until(int64_t deadline_ms);
/*
 * Makes a parked coroutine runnable; its park or wait returns QT_OK.
 * No-op if it is not parked.  Same thread as its scheduler.
 */
void coro_ready(coro *co);

/* Sleeps ms milliseconds; outside a coroutine the thread sleeps. */
void coro_sleep_ms(int64_t ms);

/* ----------------------------------------------------------------- netpoller */

#define CORO_FD_EXCLUSIVE 0x1u  /* EPOLLEXCLUSIVE: a listening socket shared
                                   by several processes' loops */

/* Registers fd once, edge-triggered (see the rule above).  QT_OK/QT_ERROR. */
int coro_fd_register(int fd, unsigned flags);
/* Undoes coro_fd_register and cancels a watch; call before close(fd). */
void coro_fd_forget(int fd);

/*
 * Parks the running coroutine until fd is ready for events (POLLIN and/or
 * POLLOUT) or the deadline passes (<= 0: none).  Returns QT_OK (ready, or
 * hung up / in error: the next syscall tells which), QT_TIMEOUT, or
 * QT_ERROR (bad fd, or another coroutine already waits on that direction).
 * Outside a coroutine it falls back to poll(), blocking the thread.
 */
int coro_wait_fd(int fd, short events, int64_t deadline_ms);

/*
 * Watches a bare fd for readability without a coroutine: fn(fd, QT_OK, arg)
 * runs on the loop's stack once it is readable (or hung up), or
 * fn(fd, QT_TIMEOUT, arg) at the deadline (<= 0: none).  One-shot.  A watch
 * keeps coro_sched_run() going.  QT_OK, or QT_ERROR if fd is unusable.
 */
typedef void coro_watch_fn(int fd, int result, void *arg);
int coro_watch_fd(int fd, int64_t deadline_ms, coro_watch_fn *fn, void *arg);
/* Cancels a pending watch (fn is not called). */
void coro_unwatch_fd(int fd);

/* CLOCK_MONOTONIC in ms, the same clock as qt_now_ms(). */
int64_t coro_now_ms(void);

#endif
