/*
 * Internals shared by the scheduler (sched.c) and the netpoller
 * (netpoll.c).  Nothing outside mpm/coro/ includes this.
 */
#ifndef QT_CORO_INT_H
#define QT_CORO_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "coro.h"
#include "ctx.h"
#include "stack.h"
#include "timer.h"

#define container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

enum coro_state { CORO_READY, CORO_RUNNING, CORO_PARKED, CORO_DONE };

/* Lives at the top of its own stack (see coro_spawn). */
struct coro {
    coro_ctx ctx;
    coro_sched *sched;
    coro_stack *stack;
    void (*fn)(void *);
    void *arg;
    coro *next;                 /* run queue */
    coro *all_prev, *all_next;  /* every live coroutine, for destroy */
    enum coro_state state;
    int wake;                   /* what the last park returns */
    coro_timer timer;           /* deadline of a park, wait or sleep */
    int wait_fd;                /* fd slot(s) it waits in, or -1 */
    void *asan_fake;            /* ASan fake stack while switched out */
};

enum coro_fd_mode {
    CORO_FD_NONE,               /* not in the epoll set (as far as we know) */
    CORO_FD_ET,                 /* coro_fd_register: registered once */
    CORO_FD_ONESHOT             /* armed per wait */
};

/*
 * One per fd number, in chunks allocated on first use of a number in
 * their range and kept until the scheduler dies: every idle connection
 * has one, so it is kept small (64 bytes, no malloc of its own).
 */
typedef struct coro_fdslot {
    int fd;
    uint8_t mode;               /* enum coro_fd_mode */
    uint8_t latched;            /* ET edges seen with no waiter (EPOLLIN/OUT) */
    bool watch_ready;           /* readable before the watch began */
    coro *reader, *writer;
    coro_watch_fn *watch;       /* bare-fd watch, or NULL */
    void *watch_arg;
    coro_timer watch_timer;
} coro_fdslot;

#define CORO_SLOT_CHUNK 256u    /* fd slots per allocation */

typedef struct coro_poller {
    int epfd;
    int evfd;                   /* eventfd: coro_sched_wake */
    coro_fdslot **chunks;       /* by fd / CORO_SLOT_CHUNK */
    size_t nchunks;
} coro_poller;

struct coro_sched {
    coro_ctx ctx;               /* the loop's own context */
    coro *current;
    coro *runq_head, *runq_tail;
    coro *all;                  /* live coroutines */
    unsigned runnable;
    unsigned live;
    unsigned watches;
    unsigned busy_turns;        /* turns since the last epoll_wait */
    atomic_bool stop;
    coro_stack_pool stacks;
    coro_timer_heap timers;
    coro_poller poll;
    coro_sched_opts opts;
    void *altstack;
    unsigned long long created, switches;
    /* ASan: the loop's stack, learnt on the first switch into a coroutine. */
    const void *main_lo;
    size_t main_size;
    void *asan_fake;
};

/* sched.c, for netpoll.c */
int coro_park_self(coro_sched *s, int64_t deadline_ms);
void coro_wake(coro *co, int result);

/* netpoll.c, for sched.c */
void coro_poller_init(coro_poller *p);
void coro_poller_free(coro_poller *p);
/* Waits up to timeout ms (-1: forever) and dispatches what is ready. */
void coro_poller_poll(coro_sched *s, int timeout_ms);
/* Removes co from the fd slots it waits in (its wait ended otherwise). */
void coro_poller_unlink(coro_sched *s, coro *co);

#endif
