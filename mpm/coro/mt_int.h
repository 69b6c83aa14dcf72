/*
 * Internals of the multi-thread runtime (mt_sched.h), shared by
 * mt_sched.c (workers, coroutines, monitor), mt_runq.c (queues) and
 * mt_poll.c (netpoller, timers, blocking pool).
 */
#ifndef QT_MT_INT_H
#define QT_MT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "mt_sched.h"
#include "ctx.h"
#include "stack.h"
#include "timer.h"

#define mt_container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Why a coroutine switched back to its worker. */
enum mt_why { MT_WHY_YIELD, MT_WHY_PARK, MT_WHY_DONE };
/* Low bits of mt_coro.wake: has the worker finished switching it out? */
enum mt_sw { MT_SW_RUNNING = 0, MT_SW_PARKED = 1 };

typedef struct mt_worker mt_worker;

/* Lives at the top of its own stack. */
struct mt_coro {
    coro_ctx ctx;
    mt_sched *sched;
    mt_worker *worker;          /* running it now, or last */
    coro_stack *stack;
    void (*fn)(void *);
    void *arg;
    mt_coro *next;              /* inject queue */
    enum mt_why why;
    /* gen << 8 | result code << 2 | MT_SW_*; result code 0: waiting */
    _Atomic uint64_t wake;
    uint64_t gen;
    coro_timer timer;           /* under s->tlock */
    uint64_t timer_gen;
    int wait_fd;                /* fd whose slot names us, or -1 */
    void *asan_fake;
    void *tsan_fiber;           /* ThreadSanitizer builds */
};

/* The bounded ring: owner pushes at tail, anyone CASes head. */
typedef struct mt_ring {
    _Atomic uint32_t head;
    _Atomic uint32_t tail;
    _Atomic(mt_coro *) buf[MT_RING_SIZE];
} mt_ring;

enum mt_wstate { MT_W_FREE, MT_W_RUNNING, MT_W_EXITED };

struct mt_worker {
    mt_sched *s;
    int id;
    pthread_t thread;
    _Atomic int state;          /* enum mt_wstate */
    bool spare;
    mt_ring ring;
    _Atomic(mt_coro *) next;    /* next slot (LIFO) */
    unsigned next_runs;         /* next-slot runs in a row */
    unsigned tick;
    uint64_t rand;
    coro_ctx ctx;               /* the worker's own stack */
    coro_stack_pool stacks;
    _Atomic unsigned trim_seen; /* last mt_sched_trim() acted on */
    void *altstack;
    mt_coro *current;
    _Atomic uint64_t resumes;   /* the monitor's progress counter */
    _Atomic bool in_coro;
    bool stuck;                 /* the monitor's view (monitor thread only) */
    _Atomic int tid;            /* kernel thread id, for the monitor */
    _Atomic int cpu_clock;      /* its CPU-time clockid_t, for the monitor */
    const void *main_lo;        /* ASan: the worker's stack */
    size_t main_size;
    void *asan_fake;
    void *tsan_fiber;
    _Atomic unsigned long long switches, steals;
};

typedef struct mt_fdslot {
    pthread_mutex_t lock;
    int fd;
    int mode;                   /* enum coro_fd_mode values (coro_int.h) */
    uint32_t latched;
    mt_coro *reader, *writer;
    uint64_t reader_gen, writer_gen;
    coro_watch_fn *watch;
    void *watch_arg;
    bool watch_ready;           /* readable before the watch began */
    uint64_t watch_gen;         /* bumped when a watch begins or ends */
    coro_timer watch_timer;     /* under s->tlock */
    uint64_t watch_timer_gen;
    mt_sched *s;
} mt_fdslot;

#define MT_SLOT_CHUNK 1024u
#define MT_SLOT_CHUNKS 1024u   /* fds below 1M */

typedef struct mt_job {
    void (*fn)(void *);
    void *arg;
    mt_coro *co;
    uint64_t gen;
    struct mt_job *next;
} mt_job;

struct mt_sched {
    mt_opts opts;
    unsigned nworkers;          /* configured */
    mt_worker workers[MT_MAX_WORKERS + MT_MAX_SPARE];
    unsigned nslots_w;          /* worker entries in use (spares included) */
    _Atomic unsigned running;   /* worker threads running */

    /* inject queue */
    pthread_mutex_t ilock;
    mt_coro *ihead, *itail;
    _Atomic unsigned ilen;

    /* idle workers */
    pthread_mutex_t idle_lock;
    pthread_cond_t idle_cond;
    _Atomic unsigned nidle;     /* parked on idle_cond */
    unsigned wakeups;           /* pending signals, under idle_lock */
    _Atomic unsigned nspinning;
    _Atomic unsigned nstuck;    /* workers the monitor saw stuck */

    /* netpoller */
    int epfd, evfd;
    _Atomic bool polling;       /* one worker owns epoll_wait */
    _Atomic unsigned poll_blocked;  /* ... and sleeps in it (0/1) */
    _Atomic int64_t poll_until; /* when that sleep ends, -1: never */
    _Atomic unsigned long polls;    /* epoll_wait returns, for the monitor */
    _Atomic unsigned ncpus;     /* CPUs the workers may run on */
    _Atomic(mt_fdslot *) chunks[MT_SLOT_CHUNKS];   /* MT_SLOT_CHUNK each */
    pthread_mutex_t chunk_lock;

    /* timers */
    pthread_mutex_t tlock;
    coro_timer_heap timers;
    _Atomic int64_t next_timer; /* earliest deadline, INT64_MAX: none */

    /* stacks for spawns from outside a worker */
    pthread_mutex_t slock;
    coro_stack_pool stacks;
    _Atomic unsigned trim_gen;  /* bumped by mt_sched_trim() */
    _Atomic unsigned trim_keep; /* stacks each worker keeps then */

    /* blocking pool */
    pthread_mutex_t block_lock;
    pthread_cond_t block_cond;
    mt_job *jhead, *jtail;
    unsigned bthreads, bidle;
    pthread_t bthread[64];
    bool bstop;

    /* monitor */
    pthread_t monitor;
    bool monitor_on;
    pthread_mutex_t mon_lock;
    pthread_cond_t mon_cond;

    _Atomic bool stop;
    _Atomic bool done;
    _Atomic unsigned live;
    _Atomic unsigned watches;
    _Atomic unsigned long long created, handoffs, spares;
    size_t stack_size;
    unsigned stack_cache;
};

/* mt_runq.c */
void mt_ring_init(mt_ring *r);
unsigned mt_ring_len(mt_ring *r);
/* Owner only; false when full. */
bool mt_ring_push(mt_ring *r, mt_coro *co);
/* Owner (or anyone: it CASes). */
mt_coro *mt_ring_pop(mt_ring *r);
/* Takes half of victim into out[] (at most MT_RING_SIZE / 2); count. */
unsigned mt_ring_grab(mt_ring *victim, mt_coro **out);
void mt_inject_push(mt_sched *s, mt_coro *co);
void mt_inject_push_batch(mt_sched *s, mt_coro **v, unsigned n);
mt_coro *mt_inject_pop(mt_sched *s);

/* mt_sched.c, for the others */
mt_worker *mt_worker_self(void);
/* Makes co runnable (on this worker's ring, else the inject queue). */
void mt_schedule(mt_sched *s, mt_coro *co);
/* The winning-waker step: one CAS on co->wake; true if it won. */
bool mt_wake(mt_coro *co, uint64_t gen, int result);
/* Wakes an idle worker (or the poller) because work appeared. */
void mt_notify(mt_sched *s);
/* Park protocol for the running coroutine (see mt_sched.h). */
uint64_t mt_park_prepare(mt_coro *co);
int mt_park_commit(mt_coro *co);
void mt_park_cancel(mt_coro *co);
void mt_maybe_done(mt_sched *s);

/* mt_poll.c */
void mt_poll_init(mt_sched *s);
void mt_poll_free(mt_sched *s);
/* Polls once (timeout ms, -1 forever) and dispatches; sigmask if set. */
void mt_poll(mt_sched *s, int timeout_ms);
void mt_poll_break(mt_sched *s);
/* Unlinks co from the fd slot it waited in. */
void mt_poll_unlink(mt_sched *s, mt_coro *co);
void mt_timer_arm_co(mt_sched *s, mt_coro *co, int64_t when);
void mt_timer_disarm_co(mt_sched *s, mt_coro *co);
void mt_timers_fire(mt_sched *s);
void mt_blocking_free(mt_sched *s);

#endif
