/*
 * The multi-thread coroutine runtime of the hybrid MPM (mpm/coro/mt_*):
 * run queues and stealing, fairness, mass creation, timers, migration
 * between threads, CPU-bound work, the netpoller and the blocking pool.
 * Assertions run on the test's thread after mt_sched_run() returns; the
 * coroutines only record what happened.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coro/mt_int.h"
#include "module.h"

static mt_sched *sched_new(unsigned threads, bool monitor)
{
    mt_opts o = { .threads = threads, .no_monitor = !monitor };

    return mt_sched_create(&o);
}

/* Fake coroutine pointers: the ring never dereferences them. */
static mt_coro *fake(uintptr_t i)
{
    return (mt_coro *)(uintptr_t)((i + 1) * 64);
}

/* --------------------------------------------------------------- ring */

static const struct {
    unsigned pushed, grabbed;
} grab_rows[] = {
    { 0, 0 }, { 1, 1 }, { 2, 1 }, { 3, 2 }, { 7, 4 }, { 255, 128 }, { 256, 128 },
};

START_TEST(ring_grab_takes_half_rounded_up)
{
    static mt_ring r;
    mt_coro *out[MT_RING_SIZE];
    unsigned n;

    mt_ring_init(&r);
    for (unsigned i = 0; i < grab_rows[_i].pushed; i++)
        ck_assert(mt_ring_push(&r, fake(i)));
    n = mt_ring_grab(&r, out);
    ck_assert_uint_eq(n, grab_rows[_i].grabbed);
    for (unsigned i = 0; i < n; i++)
        ck_assert_ptr_eq(out[i], fake(i));          /* oldest first */
    ck_assert_uint_eq(mt_ring_len(&r), grab_rows[_i].pushed - n);
    if (grab_rows[_i].pushed > n)
        ck_assert_ptr_eq(mt_ring_pop(&r), fake(n)); /* FIFO after the grab */
}
END_TEST

START_TEST(ring_is_bounded_and_fifo)
{
    static mt_ring r;

    mt_ring_init(&r);
    for (unsigned round = 0; round < 3; round++) {
        for (unsigned i = 0; i < MT_RING_SIZE; i++)
            ck_assert(mt_ring_push(&r, fake(i)));
        ck_assert(!mt_ring_push(&r, fake(999)));    /* full: bounded */
        for (unsigned i = 0; i < MT_RING_SIZE; i++)
            ck_assert_ptr_eq(mt_ring_pop(&r), fake(i));
        ck_assert_ptr_null(mt_ring_pop(&r));
    }
}
END_TEST

/* One owner pushing and popping, two thieves grabbing: each item is taken
 * exactly once. */
#define STEAL_ITEMS 200000u

typedef struct {
    mt_ring ring;
    _Atomic unsigned char seen[STEAL_ITEMS];
    _Atomic bool owner_done;
    _Atomic unsigned taken;
} steal_lab;

static void take(steal_lab *l, mt_coro *co)
{
    uintptr_t i = (uintptr_t)co / 64 - 1;

    atomic_fetch_add(&l->seen[i], 1);
    atomic_fetch_add(&l->taken, 1);
}

static void *thief(void *arg)
{
    steal_lab *l = arg;
    mt_coro *out[MT_RING_SIZE / 2];

    while (!atomic_load(&l->owner_done) || mt_ring_len(&l->ring) > 0) {
        unsigned n = mt_ring_grab(&l->ring, out);

        for (unsigned i = 0; i < n; i++)
            take(l, out[i]);
    }
    return NULL;
}

START_TEST(concurrent_steal_takes_each_item_once)
{
    steal_lab *l = calloc(1, sizeof *l);
    pthread_t t[2];
    mt_coro *co;

    mt_ring_init(&l->ring);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, thief, l), 0);
    for (unsigned i = 0; i < STEAL_ITEMS; i++) {
        while (!mt_ring_push(&l->ring, fake(i)))
            if ((co = mt_ring_pop(&l->ring)) != NULL)
                take(l, co);
        if (i % 3 == 0 && (co = mt_ring_pop(&l->ring)) != NULL)
            take(l, co);
    }
    atomic_store(&l->owner_done, true);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    while ((co = mt_ring_pop(&l->ring)) != NULL)
        take(l, co);
    ck_assert_uint_eq(atomic_load(&l->taken), STEAL_ITEMS);
    for (unsigned i = 0; i < STEAL_ITEMS; i++)
        ck_assert_msg(atomic_load(&l->seen[i]) == 1, "item %u taken %u times",
                      i, (unsigned)atomic_load(&l->seen[i]));
    free(l);
}
END_TEST

/* ----------------------------------------------------- create / finish */

typedef struct {
    mt_sched *s;
    unsigned total, batch;
    _Atomic unsigned done;
    _Atomic unsigned threads_seen;  /* bit per worker */
} mass;

static void mass_child(void *arg)
{
    mass *m = arg;

    atomic_fetch_or(&m->threads_seen, 1u << (mt_worker_id() & 31));
    atomic_fetch_add(&m->done, 1);
}

static void mass_spawner(void *arg)
{
    mass *m = arg;

    for (unsigned i = 0; i < m->total; i++) {
        ck_assert_ptr_nonnull(mt_spawn(m->s, mass_child, m));
        if (i % m->batch == m->batch - 1)
            mt_yield();
    }
}

/* ThreadSanitizer makes a fiber per coroutine, which costs milliseconds. */
#if defined(__SANITIZE_THREAD__)
#define MASS_TOTAL 5000u
#else
#define MASS_TOTAL 100000u
#endif

START_TEST(create_finish_100k_on_two_workers)
{
    mass m = { .total = MASS_TOTAL, .batch = 50 };
    mt_stats st;

    m.s = sched_new(2, false);
    ck_assert_ptr_nonnull(mt_spawn(m.s, mass_spawner, &m));
    mt_sched_run(m.s);
    mt_sched_stats(m.s, &st);
    ck_assert_uint_eq(atomic_load(&m.done), MASS_TOTAL);
    ck_assert_uint_eq(st.live, 0);
    ck_assert_uint_eq(st.created, MASS_TOTAL + 1);
    /* Idle worker 1 stole from worker 0, the only spawner. */
    ck_assert_uint_gt(st.steals, 0);
    ck_assert_uint_eq(atomic_load(&m.threads_seen), 3u);
    mt_sched_destroy(m.s);
}
END_TEST

/* -------------------------------------------------------------- fairness */

typedef struct {
    mt_coro *peer;
    _Atomic unsigned pings;
    _Atomic bool stop;
    _Atomic unsigned short_done_at;   /* pings when the yielder finished */
} pingpong;

/* Two coroutines waking each other through the next slot, forever (until
 * told): without the cap of 3 they would starve the ring. */
static void ping(void *arg)
{
    pingpong *pp = arg;

    while (!atomic_load(&pp->stop)) {
        atomic_fetch_add(&pp->pings, 1);
        if (pp->peer)
            mt_ready(pp->peer);
        mt_park_until(coro_now_ms() + 1000);
    }
    if (pp->peer)
        mt_ready(pp->peer);
}

static pingpong pp_a, pp_b;

static void yielder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        mt_yield();
    atomic_store(&pp_a.short_done_at, atomic_load(&pp_a.pings));
    atomic_store(&pp_a.stop, true);
    atomic_store(&pp_b.stop, true);
}

START_TEST(next_slot_cannot_starve_the_ring)
{
    mt_sched *s = sched_new(1, false);
    mt_coro *a, *b;

    memset(&pp_a, 0, sizeof pp_a);
    memset(&pp_b, 0, sizeof pp_b);
    a = mt_spawn(s, ping, &pp_a);
    b = mt_spawn(s, ping, &pp_b);
    pp_a.peer = b;
    pp_b.peer = a;
    mt_spawn(s, yielder, NULL);
    mt_sched_run(s);
    /* The yielder needed 100 turns; each turn lets the pair run <= 3 + 1. */
    ck_assert_uint_gt(atomic_load(&pp_a.short_done_at), 0);
    ck_assert_uint_lt(atomic_load(&pp_a.short_done_at), 100 * 8);
    mt_sched_destroy(s);
}
END_TEST

#define MAX_TEST_WORKERS 4

typedef struct {
    /* Hog turns per worker: the fairness bound holds per run queue, so it
     * is counted per worker.  A global count would also measure how the
     * OS shared the CPUs between the worker threads, which a test cannot
     * control (a descheduled worker lets the other run its hogs alone). */
    _Atomic unsigned long long hog_turns[MAX_TEST_WORKERS];
    unsigned long long gap_sum;      /* written by the short one only */
    unsigned gap_samples;
    _Atomic bool stop;
} hogging;

static void yield_hog(void *arg)
{
    hogging *h = arg;

    while (!atomic_load(&h->stop)) {
        atomic_fetch_add(&h->hog_turns[mt_worker_id()], 1);
        mt_yield();
    }
}

static void short_yielder(void *arg)
{
    hogging *h = arg;

    for (int i = 0; i < 1000; i++) {
        int w = mt_worker_id();
        unsigned long long before = atomic_load(&h->hog_turns[w]);

        mt_yield();
        if (mt_worker_id() == w) {      /* not migrated meanwhile */
            h->gap_sum += atomic_load(&h->hog_turns[w]) - before;
            h->gap_samples++;
        }
    }
    atomic_store(&h->stop, true);
}

START_TEST(yielding_coroutines_share_the_workers)
{
    mt_sched *s = sched_new(_i + 1, false);
    hogging h = { 0 };

    for (int i = 0; i < 4; i++)
        mt_spawn(s, yield_hog, &h);
    mt_spawn(s, short_yielder, &h);
    mt_sched_run(s);        /* returning at all: the short one was not starved */
    /* Round robin: between two turns of the short one, each hog that shares
     * its queue runs about once (4 hogs at most, fewer with 2 workers). */
    ck_assert_uint_gt(h.gap_samples, 0);
    ck_assert_uint_le(h.gap_sum, 3ull * 4 * h.gap_samples);
    if (_i == 0)            /* one worker: every one of the 1000 turns counts */
        ck_assert_uint_eq(h.gap_samples, 1000);
    ck_assert_uint_gt(h.gap_sum, 0);        /* the hogs did run meanwhile */
    mt_sched_destroy(s);
}
END_TEST

/* ---------------------------------------------------------------- timers */

#define NTIMERS 24

typedef struct {
    _Atomic unsigned next;
    int order[NTIMERS];
} timer_log;

typedef struct {
    timer_log *log;
    int ms;
    int64_t deadline, woke;
} sleeper;

static void sleep_and_log(void *arg)
{
    sleeper *sl = arg;

    sl->deadline = coro_now_ms() + sl->ms;
    mt_sleep_ms(sl->ms);
    sl->woke = coro_now_ms();
    sl->log->order[atomic_fetch_add(&sl->log->next, 1)] = sl->ms;
}

/*
 * Row 0, one worker: they wake in deadline order.  Row 1, two workers:
 * two sleepers due in the same pass may run side by side, so only "none
 * wakes early, all wake" holds.
 */
START_TEST(timers_fire_in_deadline_order)
{
    mt_sched *s = sched_new(_i + 1, true);
    timer_log log = { 0 };
    sleeper sl[NTIMERS];

    for (int i = 0; i < NTIMERS; i++) {
        sl[i].log = &log;
        sl[i].ms = 5 + ((i * 7) % NTIMERS) * 8;     /* shuffled, 8 ms apart */
        mt_spawn(s, sleep_and_log, &sl[i]);
    }
    mt_sched_run(s);
    ck_assert_uint_eq(atomic_load(&log.next), NTIMERS);
    for (int i = 0; i < NTIMERS; i++)
        ck_assert_int_ge(sl[i].woke, sl[i].deadline);
    for (int i = 1; i < NTIMERS && _i == 0; i++)
        ck_assert_msg(log.order[i - 1] < log.order[i], "%d fired before %d",
                      log.order[i - 1], log.order[i]);
    mt_sched_destroy(s);
}
END_TEST

/* -------------------------------------------------------------- migration */

/* &errno through an opaque call: the compiler may not reuse the address
 * it computed on the previous thread (that reuse is the migration bug). */
#ifdef __clang__
#define OPAQUE __attribute__((noinline, optnone))
#else
#define OPAQUE __attribute__((noinline, noipa))
#endif
OPAQUE static int *errno_address(void)
{
    return &errno;
}

typedef struct {
    int first_worker, resumed_worker;
    int *errno_before, *errno_after;
    int errno_value;
    unsigned long canary;
    _Atomic bool stop;
} migration;

static void migrant(void *arg)
{
    migration *m = arg;
    unsigned long canary = 0xC0FFEE;     /* on our stack: must survive */

    m->first_worker = mt_worker_id();
    m->errno_before = errno_address();
    for (int i = 0; i < 2000 && mt_worker_id() == m->first_worker; i++) {
        errno = EDOM;
        mt_sleep_ms(1);
        m->errno_value = *errno_address();
        canary += 0;
    }
    m->resumed_worker = mt_worker_id();
    m->errno_after = errno_address();
    m->canary = canary;
    atomic_store(&m->stop, true);
}

/* Keeps the other worker busy now and then so wake-ups land on both. */
static void jitter(void *arg)
{
    migration *m = arg;

    while (!atomic_load(&m->stop)) {
        int64_t until = coro_now_ms() + 2;

        while (coro_now_ms() < until)
            ;
        mt_sleep_ms(1);
    }
}

START_TEST(coroutine_resumes_on_another_thread_with_its_errno)
{
    mt_sched *s = sched_new(2, true);
    migration m = { .first_worker = -1 };

    mt_spawn(s, migrant, &m);
    mt_spawn(s, jitter, &m);
    mt_sched_run(s);
    ck_assert_int_ge(m.first_worker, 0);
    ck_assert_int_ge(m.resumed_worker, 0);
    ck_assert_int_ne(m.resumed_worker, m.first_worker);
    ck_assert_ptr_ne(m.errno_before, m.errno_after);   /* another thread's */
    ck_assert_int_eq(m.errno_value, EDOM);
    ck_assert_uint_eq(m.canary, 0xC0FFEE);
    mt_sched_destroy(s);
}
END_TEST

/* ---------------------------------------------------------- CPU-bound */

typedef struct {
    _Atomic int64_t hog_end;
    _Atomic int64_t last_small_end;
    _Atomic unsigned small_done;
} cpu_lab;

static void cpu_hog(void *arg)
{
    cpu_lab *c = arg;
    int64_t until = coro_now_ms() + 1500;   /* 75x what the others need: a wide margin on a loaded machine */

    while (coro_now_ms() < until)
        ;                               /* never yields */
    atomic_store(&c->hog_end, coro_now_ms());
}

static void small_sleeper(void *arg)
{
    cpu_lab *c = arg;

    for (int i = 0; i < 10; i++)
        mt_sleep_ms(2);
    atomic_store(&c->last_small_end, coro_now_ms());
    atomic_fetch_add(&c->small_done, 1);
}

/* Row 0: two workers, the other one steals.  Row 1: one worker, the
 * monitor hands the queue to a spare. */
START_TEST(cpu_bound_coroutine_does_not_block_the_others)
{
    mt_sched *s = sched_new(_i == 0 ? 2 : 1, true);
    cpu_lab c = { 0 };
    mt_stats st;

    mt_spawn(s, cpu_hog, &c);
    for (int i = 0; i < 20; i++)
        mt_spawn(s, small_sleeper, &c);
    mt_sched_run(s);
    mt_sched_stats(s, &st);
    ck_assert_uint_eq(atomic_load(&c.small_done), 20);
    ck_assert_msg(atomic_load(&c.last_small_end) < atomic_load(&c.hog_end),
                  "the others finished %lld ms after the hog",
                  (long long)(atomic_load(&c.last_small_end) - atomic_load(&c.hog_end)));
    if (_i == 1)
        ck_assert_uint_ge(st.spares, 1);
    mt_sched_destroy(s);
}
END_TEST

/* ----------------------------------------------------------- netpoller */

typedef struct {
    int fds[2];
    int read_rc, timeout_rc, forget_rc;
    char got;
    mt_sched *s;
    mt_coro *reader;
} fd_lab;

static void fd_reader(void *arg)
{
    fd_lab *f = arg;
    char c;

    f->timeout_rc = mt_wait_fd(f->fds[0], POLLIN, coro_now_ms() + 20);
    f->read_rc = mt_wait_fd(f->fds[0], POLLIN, coro_now_ms() + 5000);
    if (read(f->fds[0], &c, 1) == 1)
        f->got = c;
    /* Registered fd: forget (before a close) wakes the waiter. */
    f->forget_rc = mt_wait_fd(f->fds[0], POLLIN, coro_now_ms() + 5000);
}

static void fd_writer(void *arg)
{
    fd_lab *f = arg;

    mt_sleep_ms(60);
    ck_assert_int_eq(write(f->fds[1], "x", 1), 1);
    mt_sleep_ms(30);
    mt_fd_forget(f->s, f->fds[0]);
}

START_TEST(wait_fd_wakes_times_out_and_forget_errors)
{
    fd_lab f = { .s = sched_new(2, true) };

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, f.fds), 0);
    if (_i == 1)
        ck_assert_int_eq(mt_fd_register(f.s, f.fds[0], 0), QT_OK);
    mt_spawn(f.s, fd_reader, &f);
    mt_spawn(f.s, fd_writer, &f);
    mt_sched_run(f.s);
    ck_assert_int_eq(f.timeout_rc, QT_TIMEOUT);
    ck_assert_int_eq(f.read_rc, QT_OK);
    ck_assert_int_eq(f.got, 'x');
    ck_assert_int_eq(f.forget_rc, _i == 1 ? QT_ERROR : QT_ERROR);
    close(f.fds[0]);
    close(f.fds[1]);
    mt_sched_destroy(f.s);
}
END_TEST

typedef struct {
    int fds[2];
    _Atomic int result;
    _Atomic int calls;
} watch_lab;

static void on_watch(int fd, int result, void *arg)
{
    watch_lab *w = arg;

    (void)fd;
    atomic_store(&w->result, result);
    atomic_fetch_add(&w->calls, 1);
}

static void poke(void *arg)
{
    watch_lab *w = arg;

    mt_sleep_ms(20);
    ck_assert_int_eq(write(w->fds[1], "y", 1), 1);
}

/* Row 0: readable wakes the watch (no coroutine holds it); row 1: timeout. */
START_TEST(watch_fires_without_a_coroutine)
{
    mt_sched *s = sched_new(2, true);
    watch_lab w = { .result = 99 };

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, w.fds), 0);
    ck_assert_int_eq(mt_fd_register(s, w.fds[0], 0), QT_OK);
    ck_assert_int_eq(mt_watch_fd(s, w.fds[0], coro_now_ms() + (_i ? 30 : 5000),
                                 on_watch, &w), QT_OK);
    if (_i == 0)
        mt_spawn(s, poke, &w);
    mt_sched_run(s);                    /* returns: nothing left to wait */
    ck_assert_int_eq(atomic_load(&w.calls), 1);
    ck_assert_int_eq(atomic_load(&w.result), _i ? QT_TIMEOUT : QT_OK);
    ck_assert(!mt_unwatch_fd(s, w.fds[0]));         /* already fired */
    mt_fd_forget(s, w.fds[0]);
    close(w.fds[0]);
    close(w.fds[1]);
    mt_sched_destroy(s);
}
END_TEST

/*
 * Consecutive watches of one fd (a keep-alive connection's requests) each
 * keep their own deadline.  Row 0: the ended watch's sooner deadline must
 * not fire the next one early; row 1: its far deadline must not delay the
 * next one's sooner deadline (else the test times out); row 2: after
 * readiness ended the first watch, its deadline passing must not fire a
 * second watch that has none.
 */
typedef struct {
    mt_sched *s;
    int fds[2];
    int row;
    int64_t due;                /* the deadline that must fire */
    bool second_pending;
    _Atomic int calls, result;
    _Atomic int64_t fired_at;
} relabel_lab;

static void on_relabel(int fd, int result, void *arg)
{
    relabel_lab *l = arg;

    (void)fd;
    atomic_store(&l->fired_at, coro_now_ms());
    atomic_store(&l->result, result);
    atomic_fetch_add(&l->calls, 1);
}

static void relabel_readiness(relabel_lab *l, int fd)
{
    char c;

    /* 300 ms: readiness, written right away, must win even on a slow run. */
    ck_assert_int_eq(mt_watch_fd(l->s, fd, coro_now_ms() + 300, on_relabel, l), QT_OK);
    ck_assert_int_eq(write(l->fds[1], "y", 1), 1);
    for (int i = 0; i < 1000 && atomic_load(&l->calls) == 0; i++)
        mt_sleep_ms(5);
    ck_assert_int_eq(read(fd, &c, 1), 1);
    ck_assert_int_eq(mt_watch_fd(l->s, fd, 0, on_relabel, l), QT_OK);
    mt_sleep_ms(400);                   /* past the first watch's deadline */
    l->second_pending = mt_unwatch_fd(l->s, fd);
}

static void relabel_driver(void *arg)
{
    relabel_lab *l = arg;
    int fd = l->fds[0];
    int64_t now = coro_now_ms();

    if (l->row == 2) {
        relabel_readiness(l, fd);
        return;
    }
    ck_assert_int_eq(mt_watch_fd(l->s, fd, now + (l->row ? 600000 : 20),
                                 on_relabel, l), QT_OK);
    ck_assert(mt_unwatch_fd(l->s, fd));
    l->due = now + (l->row ? 30 : 120);
    ck_assert_int_eq(mt_watch_fd(l->s, fd, l->due, on_relabel, l), QT_OK);
}

START_TEST(each_watch_keeps_its_own_deadline)
{
    relabel_lab l = { .s = sched_new(2, true), .row = _i, .result = 99 };

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, l.fds), 0);
    ck_assert_int_eq(mt_fd_register(l.s, l.fds[0], 0), QT_OK);
    mt_spawn(l.s, relabel_driver, &l);
    mt_sched_run(l.s);
    ck_assert_int_eq(atomic_load(&l.calls), 1);
    if (_i == 2) {
        ck_assert_int_eq(atomic_load(&l.result), QT_OK);
        ck_assert(l.second_pending);
    } else {
        ck_assert_int_eq(atomic_load(&l.result), QT_TIMEOUT);
        ck_assert_int_ge(atomic_load(&l.fired_at), l.due);
    }
    mt_fd_forget(l.s, l.fds[0]);
    close(l.fds[0]);
    close(l.fds[1]);
    mt_sched_destroy(l.s);
}
END_TEST

/* -------------------------------------------------------- blocking pool */

typedef struct {
    _Atomic unsigned ticks;
    _Atomic bool done;
    unsigned ticks_during;
    int worker_thread_ran;
} block_lab;

static void slow_call(void *arg)
{
    block_lab *b = arg;

    b->worker_thread_ran = mt_worker_id();      /* -1: a pool thread */
    usleep(100 * 1000);
}

static void blocker(void *arg)
{
    block_lab *b = arg;
    unsigned before = atomic_load(&b->ticks);

    mt_run_blocking(slow_call, b);
    b->ticks_during = atomic_load(&b->ticks) - before;
    atomic_store(&b->done, true);
}

static void ticker(void *arg)
{
    block_lab *b = arg;

    while (!atomic_load(&b->done)) {
        atomic_fetch_add(&b->ticks, 1);
        mt_sleep_ms(2);
    }
}

START_TEST(run_blocking_does_not_stall_the_worker)
{
    mt_sched *s = sched_new(1, false);
    block_lab b = { 0 };

    mt_spawn(s, ticker, &b);
    mt_spawn(s, blocker, &b);
    mt_sched_run(s);
    ck_assert_int_eq(b.worker_thread_ran, -1);
    ck_assert_uint_ge(b.ticks_during, 10);          /* ~50 expected */
    mt_sched_destroy(s);
}
END_TEST

/* ------------------------------------------------------- stop, overflow */

static void park_forever(void *arg)
{
    (void)arg;
    mt_park_until(0);
}

static void stopper(void *arg)
{
    mt_sleep_ms(10);
    mt_sched_stop(arg);
}

START_TEST(stop_ends_run_with_coroutines_parked)
{
    mt_sched *s = sched_new(2, true);
    mt_stats st;

    mt_spawn(s, park_forever, NULL);
    mt_spawn(s, stopper, s);
    mt_sched_run(s);
    mt_sched_stats(s, &st);
    ck_assert_uint_eq(st.live, 1);
    mt_sched_destroy(s);
}
END_TEST

static int recurse(volatile char *prev, int depth)
{
    volatile char frame[512];

    frame[0] = (char)depth;
    frame[511] = prev ? prev[0] : 0;
    return depth > 1000000 ? frame[0] : recurse(frame, depth + 1) + frame[511];
}

static void overflow(void *arg)
{
    (void)arg;
    recurse(NULL, 0);
}

START_TEST(stack_overflow_aborts_with_a_message)
{
    char buf[512] = "";
    size_t len = 0;
    int p[2], status;
    ssize_t n;
    pid_t pid;

    ck_assert_int_eq(pipe(p), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        mt_opts o = { .threads = 2, .stack_size = 64 * 1024 };
        mt_sched *s;

        close(p[0]);
        dup2(p[1], STDERR_FILENO);
        s = mt_sched_create(&o);
        mt_spawn(s, overflow, NULL);
        mt_sched_run(s);
        _exit(0);
    }
    close(p[1]);
    while (len < sizeof buf - 1 &&
           (n = read(p[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    close(p[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                  "child status %#x", status);
    ck_assert_msg(strstr(buf, "coroutine stack overflow (stack of 65536 bytes)"),
                  "stderr: %s", buf);
}
END_TEST

/* ------------------------------------------------------------ trimming */

#define BURST_COROS 600u
#define TRIM_KEEP 8u

typedef struct {
    mt_sched *s;
    bool trim;
    _Atomic bool go;
    _Atomic unsigned done;
} burst;

/* Every one parked until all are spawned: BURST_COROS stacks at once. */
static void burst_sleeper(void *arg)
{
    burst *b = arg;

    while (!atomic_load(&b->go))
        mt_sleep_ms(5);
    atomic_fetch_add(&b->done, 1);
}

static bool every_worker_trimmed(mt_sched *s)
{
    for (unsigned i = 0; i < s->nworkers; i++)
        if (atomic_load(&s->workers[i].trim_seen) != atomic_load(&s->trim_gen))
            return false;
    return true;
}

/* A burst of parked coroutines, then (row 1) a trim once it is over.
 * Waits on progress, not on time: the test timeout bounds the loops. */
static void burst_driver(void *arg)
{
    burst *b = arg;

    for (unsigned i = 0; i < BURST_COROS; i++)
        ck_assert_ptr_nonnull(mt_spawn(b->s, burst_sleeper, b));
    atomic_store(&b->go, true);
    /* live drops after a finished coroutine's stack went back. */
    while (atomic_load(&b->done) < BURST_COROS || atomic_load(&b->s->live) > 1)
        mt_sleep_ms(10);
    if (b->trim)
        mt_sched_trim(b->s, TRIM_KEEP);
    while (!every_worker_trimmed(b->s))
        mt_sleep_ms(5);                 /* the workers trim when idle */
}

static unsigned stacks_cached(mt_sched *s)
{
    unsigned n = s->stacks.cached;

    for (unsigned i = 0; i < s->nworkers; i++)
        n += s->workers[i].stacks.cached;
    return n;
}

START_TEST(trim_after_a_burst_unmaps_the_cached_stacks)
{
    burst b = { .trim = _i == 1 };

    b.s = sched_new(2, false);
    ck_assert_ptr_nonnull(mt_spawn(b.s, burst_driver, &b));
    mt_sched_run(b.s);
    /* Workers joined: their caches can be read.  The driver's own stack
     * went back to a cache after the trim. */
    if (b.trim)
        ck_assert_uint_le(stacks_cached(b.s), TRIM_KEEP + 1);
    else
        ck_assert_uint_ge(stacks_cached(b.s), BURST_COROS);
    mt_sched_destroy(b.s);
}
END_TEST

static Suite *mt_suite(void)
{
    Suite *s = suite_create("mt_sched");
    TCase *tc = tcase_create("runtime");

    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, ring_grab_takes_half_rounded_up, 0,
                        (int)(sizeof grab_rows / sizeof grab_rows[0]));
    tcase_add_test(tc, ring_is_bounded_and_fifo);
    tcase_add_test(tc, concurrent_steal_takes_each_item_once);
    tcase_add_test(tc, create_finish_100k_on_two_workers);
    tcase_add_test(tc, next_slot_cannot_starve_the_ring);
    tcase_add_loop_test(tc, yielding_coroutines_share_the_workers, 0, 2);
    tcase_add_loop_test(tc, timers_fire_in_deadline_order, 0, 2);
    tcase_add_test(tc, coroutine_resumes_on_another_thread_with_its_errno);
    tcase_add_loop_test(tc, cpu_bound_coroutine_does_not_block_the_others, 0, 2);
    tcase_add_loop_test(tc, wait_fd_wakes_times_out_and_forget_errors, 0, 2);
    tcase_add_loop_test(tc, watch_fires_without_a_coroutine, 0, 2);
    tcase_add_loop_test(tc, each_watch_keeps_its_own_deadline, 0, 3);
    tcase_add_test(tc, run_blocking_does_not_stall_the_worker);
    tcase_add_test(tc, stop_ends_run_with_coroutines_parked);
    tcase_add_test(tc, stack_overflow_aborts_with_a_message);
    tcase_add_loop_test(tc, trim_after_a_burst_unmaps_the_cached_stacks, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(mt_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
