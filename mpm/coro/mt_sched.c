/* Workers, coroutines, idle parking and the monitor (see mt_sched.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mt_int.h"
#include "module.h"
#include "pool.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MT_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(MT_ASAN)
#define MT_ASAN 1
#endif
#ifdef MT_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(__SANITIZE_THREAD__)
#define MT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MT_TSAN 1
#endif
#endif
#ifdef MT_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* After a switch the code may run on another thread: opaque accessors make
 * the compiler fetch the thread pointer and errno address again. */
#if defined(__clang__)
#define MT_OPAQUE __attribute__((noinline))
#else
#define MT_OPAQUE __attribute__((noinline, noipa))
#endif

#define STACK_MIN (16u * 1024u)
#define STEAL_ROUNDS 4
/* The monitor looks every MT_STUCK_MS / 2: a stuck worker is found 10 to
 * 15 ms after it started (two looks 5 ms apart are its CPU evidence), and
 * a server whose CPU goes to its CGI scripts is not woken 500 times a
 * second.  The network unpolled since the last look, with workers parked,
 * gets one of them woken. */
#define MONITOR_TICK_MS (MT_STUCK_MS / 2)
#define MONITOR_AFFINITY_LOOKS 20     /* the workers' CPUs: every 100 ms */

static _Thread_local mt_worker *tls_worker;

MT_OPAQUE mt_worker *mt_worker_self(void)
{
    return tls_worker;
}

MT_OPAQUE static void set_errno(int e)
{
    errno = e;
}

mt_sched *mt_current(void)
{
    mt_worker *w = mt_worker_self();

    return w ? w->s : NULL;
}

int mt_worker_id(void)
{
    mt_worker *w = mt_worker_self();

    return w ? w->id : -1;
}

mt_coro *mt_self(void)
{
    mt_worker *w = mt_worker_self();

    return w ? w->current : NULL;
}

/* For the SIGSEGV handler (stack.c), through coro_running_stack(). */
const coro_stack *mt_running_stack(void)
{
    mt_worker *w = tls_worker;

    return w && w->current ? w->current->stack : NULL;
}

static void asan_start(void **fake, const void *lo, size_t size)
{
#ifdef MT_ASAN
    __sanitizer_start_switch_fiber(fake, lo, size);
#else
    (void)fake, (void)lo, (void)size;
#endif
}

static void asan_finish(void *fake, const void **old_lo, size_t *old_size)
{
#ifdef MT_ASAN
    __sanitizer_finish_switch_fiber(fake, old_lo, old_size);
#else
    (void)fake, (void)old_lo, (void)old_size;
#endif
}

/* ThreadSanitizer must know which stack runs: one fiber per coroutine, and
 * a switch is a synchronisation (flag 0), as it is for us. */
static void tsan_enter(void *fiber)
{
#ifdef MT_TSAN
    __tsan_switch_to_fiber(fiber, 0);
#else
    (void)fiber;
#endif
}

static void *tsan_fiber_new(void)
{
#ifdef MT_TSAN
    return __tsan_create_fiber(0);
#else
    return NULL;
#endif
}

static void tsan_fiber_free(void *fiber)
{
#ifdef MT_TSAN
    if (fiber)
        __tsan_destroy_fiber(fiber);
#else
    (void)fiber;
#endif
}

static void *tsan_fiber_self(void)
{
#ifdef MT_TSAN
    return __tsan_get_current_fiber();
#else
    return NULL;
#endif
}

/* ------------------------------------------------------- wake protocol */

#define WAKE_GEN(w)   ((w) >> 8)
#define WAKE_RES(w)   (((w) >> 2) & 0x3fu)
#define WAKE_SW(w)    ((w) & 0x3u)

static uint64_t result_code(int result)
{
    return result == QT_OK ? 1 : result == QT_TIMEOUT ? 2 : 3;
}

static int code_result(uint64_t code)
{
    return code == 1 ? QT_OK : code == 2 ? QT_TIMEOUT : QT_ERROR;
}

uint64_t mt_park_prepare(mt_coro *co)
{
    co->gen++;
    atomic_store(&co->wake, co->gen << 8);
    return co->gen;
}

bool mt_wake(mt_coro *co, uint64_t gen, int result)
{
    mt_sched *s = co->sched;
    uint64_t cur = atomic_load(&co->wake);

    for (;;) {
        if (WAKE_GEN(cur) != gen || WAKE_RES(cur) != 0)
            return false;               /* a stale waker, or a second one */
        if (atomic_compare_exchange_weak(&co->wake, &cur,
                (gen << 8) | (result_code(result) << 2) | WAKE_SW(cur)))
            break;
    }
    /* Still switching out: its worker will see the result and queue it. */
    if (WAKE_SW(cur) == MT_SW_PARKED)
        mt_schedule(s, co);
    return true;
}

void mt_park_cancel(mt_coro *co)
{
    uint64_t cur = co->gen << 8;

    atomic_compare_exchange_strong(&co->wake, &cur,
                                   (co->gen << 8) | (result_code(QT_OK) << 2));
}

/* On the worker's stack, right after a park's switch-out completed. */
static void park_settle(mt_worker *w, mt_coro *co)
{
    uint64_t cur = atomic_load(&co->wake);

    for (;;) {
        if (WAKE_RES(cur) != 0) {       /* woken while switching out */
            mt_schedule(w->s, co);
            return;
        }
        if (atomic_compare_exchange_weak(&co->wake, &cur, cur | MT_SW_PARKED))
            return;
    }
}

/* --------------------------------------------------------- run queues */

static void push_tail(mt_worker *w, mt_coro *co)
{
    mt_coro *batch[MT_RING_SIZE / 2 + 1];
    unsigned n;

    if (mt_ring_push(&w->ring, co))
        return;
    /* Full: half of it goes to the inject queue, like Go's runqputslow. */
    n = mt_ring_grab(&w->ring, batch);
    batch[n++] = co;
    mt_inject_push_batch(w->s, batch, n);
}

/*
 * One coroutine queued on a worker that is awake is work for that worker,
 * not a reason to wake another: a futex wake and a thief that finds
 * nothing would cost more than the request.  A second one is work to
 * share.  (A worker stuck in the first is the monitor's job.)
 */
static void share_if_more(mt_worker *w)
{
    if (mt_ring_len(&w->ring) + (atomic_load(&w->next) != NULL) > 1)
        mt_notify(w->s);
}

void mt_schedule(mt_sched *s, mt_coro *co)
{
    mt_worker *w = mt_worker_self();

    if (w && w->s == s && w->current) {
        /* Woken by a running coroutine (a hand-off): it runs next, while
         * its data is cache-warm; the previous one goes to the back. */
        mt_coro *old = atomic_exchange(&w->next, co);

        if (old)
            push_tail(w, old);
    } else if (w && w->s == s) {
        push_tail(w, co);               /* timers, netpoller: in order */
    } else {
        mt_inject_push(s, co);
        mt_notify(s);
        return;
    }
    share_if_more(w);
}

static bool work_visible(mt_sched *s)
{
    if (atomic_load(&s->ilen) > 0)
        return true;
    for (unsigned i = 0; i < s->nslots_w; i++)
        if (atomic_load(&s->workers[i].state) == MT_W_RUNNING &&
            mt_ring_len(&s->workers[i].ring) > 0)
            return true;
    return false;
}

static void wake_one(mt_sched *s)
{
    pthread_mutex_lock(&s->idle_lock);
    if (atomic_load(&s->nidle) > s->wakeups) {
        s->wakeups++;
        pthread_cond_signal(&s->idle_cond);
    }
    pthread_mutex_unlock(&s->idle_lock);
}

static void wake_all(mt_sched *s)
{
    pthread_mutex_lock(&s->idle_lock);
    pthread_cond_broadcast(&s->idle_cond);
    pthread_mutex_unlock(&s->idle_lock);
    mt_poll_break(s);
    pthread_mutex_lock(&s->mon_lock);
    pthread_cond_signal(&s->mon_cond);
    pthread_mutex_unlock(&s->mon_lock);
}

/*
 * Work appeared.  A spinning thief will find it (it looks again before it
 * sleeps); so will the busy workers if they already fill every CPU the
 * process may run on (taskset, a cpuset): a woken worker could only take
 * turns with them, at the price of a futex wake and two thread switches.
 * Else wake a parked worker; else, if the only idle worker sleeps in
 * epoll_wait, break it.  The counters are read with read-modify-writes:
 * they pair with the idle side's "announce (RMW), then look at the queues"
 * like a fence would, and ThreadSanitizer understands them.
 */
void mt_notify(mt_sched *s)
{
    unsigned idle, polling, away, running;

    if (atomic_load(&s->nspinning) > 0)
        return;
    idle = atomic_fetch_add(&s->nidle, 0);
    polling = atomic_fetch_or(&s->poll_blocked, 0);
    /* Busy: running coroutines or looking for work; stuck ones do not count. */
    away = idle + polling + atomic_load(&s->nstuck);
    running = atomic_load(&s->running);
    if (running > away &&
        running - away >= atomic_load_explicit(&s->ncpus, memory_order_relaxed))
        return;
    if (idle > 0)
        wake_one(s);
    else if (polling)
        mt_poll_break(s);
}

void mt_maybe_done(mt_sched *s)
{
    if (atomic_load(&s->live) == 0 && atomic_load(&s->watches) == 0) {
        atomic_store(&s->done, true);
        wake_all(s);
    }
}

/* ---------------------------------------------------------- coroutines */

static size_t usable_size(const mt_coro *co)
{
    return (size_t)((const char *)co - co->stack->lo);
}

static void switch_out(mt_coro *co)
{
    int saved = errno;
    mt_worker *w = co->worker;

    asan_start(co->why == MT_WHY_DONE ? NULL : &co->asan_fake,
               w->main_lo, w->main_size);
    tsan_enter(w->tsan_fiber);
    coro_ctx_switch(&co->ctx, &w->ctx);
    /* Possibly another worker now: co->worker was updated by resume(). */
    w = co->worker;
    asan_finish(co->asan_fake, &w->main_lo, &w->main_size);
    set_errno(saved);
}

static void coro_main(void *arg)
{
    mt_coro *co = arg;

    asan_finish(NULL, &co->worker->main_lo, &co->worker->main_size);
    set_errno(0);
    co->fn(co->arg);
    co->why = MT_WHY_DONE;
    switch_out(co);                     /* never resumed */
}

static void on_timer_dummy(struct coro_sched *s, coro_timer *t)
{
    (void)s, (void)t;                   /* mt_poll.c dispatches by type */
}

/* The worker's cache first, then the shared one, then a new mapping. */
static coro_stack *stack_get(mt_sched *s, mt_worker *w)
{
    coro_stack *st;

    if (w && w->s == s && w->stacks.free)
        return coro_stack_get(&w->stacks);
    pthread_mutex_lock(&s->slock);
    st = coro_stack_get(&s->stacks);
    pthread_mutex_unlock(&s->slock);
    return st;
}

static void stack_put(mt_sched *s, mt_worker *w, coro_stack *st)
{
    if (w->stacks.cached < w->stacks.max_cached) {
        coro_stack_put(&w->stacks, st);
        return;
    }
    pthread_mutex_lock(&s->slock);
    coro_stack_put(&s->stacks, st);     /* unmapped if this one is full too */
    pthread_mutex_unlock(&s->slock);
}

mt_coro *mt_spawn(mt_sched *s, void (*fn)(void *), void *arg)
{
    mt_worker *w = mt_worker_self();
    coro_stack *st = stack_get(s, w);
    mt_coro *co;

    if (!st)
        return NULL;
    co = (mt_coro *)(((uintptr_t)st - sizeof(mt_coro)) & ~(uintptr_t)63);
    memset(co, 0, sizeof *co);
    co->sched = s;
    co->stack = st;
    co->fn = fn;
    co->arg = arg;
    co->wait_fd = -1;
    atomic_init(&co->wake, result_code(QT_OK) << 2);  /* not waiting */
    coro_timer_init(&co->timer, on_timer_dummy);
    coro_ctx_init(&co->ctx, st->lo, usable_size(co), coro_main, co);
    co->tsan_fiber = tsan_fiber_new();
    atomic_fetch_add(&s->live, 1);
    atomic_fetch_add(&s->created, 1);
    if (w && w->s == s) {
        push_tail(w, co);
        share_if_more(w);
    } else {
        mt_inject_push(s, co);
        mt_notify(s);
    }
    return co;
}

void mt_yield(void)
{
    mt_coro *co = mt_self();

    if (!co)
        return;
    /* Queued by the worker after the switch: a thief must never resume a
     * coroutine whose stack is still switching out. */
    co->why = MT_WHY_YIELD;
    switch_out(co);
}

int mt_park_commit(mt_coro *co)
{
    mt_sched *s = co->sched;

    co->why = MT_WHY_PARK;
    switch_out(co);
    /* Unlink from every source that may still name us, under its lock. */
    if (co->wait_fd >= 0)
        mt_poll_unlink(s, co);
    mt_timer_disarm_co(s, co);
    return code_result(WAKE_RES(atomic_load(&co->wake)));
}

int mt_park_until(int64_t deadline_ms)
{
    mt_coro *co = mt_self();

    if (!co)
        return QT_ERROR;
    mt_park_prepare(co);
    if (deadline_ms > 0)
        mt_timer_arm_co(co->sched, co, deadline_ms);
    return mt_park_commit(co);
}

void mt_ready(mt_coro *co)
{
    uint64_t cur = atomic_load(&co->wake);

    if (WAKE_RES(cur) == 0)
        mt_wake(co, WAKE_GEN(cur), QT_OK);
}

void mt_sleep_ms(int64_t ms)
{
    mt_coro *co = mt_self();
    int64_t deadline = coro_now_ms() + (ms > 0 ? ms : 0);

    if (!co) {
        coro_sleep_ms(ms);              /* blocks the thread */
        return;
    }
    /* An early mt_ready() does not cut the sleep short. */
    do
        mt_park_until(deadline);
    while (coro_now_ms() < deadline);
}

/* A retiring spare's cache goes to the shared one: unmapping it would
 * cost a TLB shootdown per stack. */
static void stacks_to_shared(mt_sched *s, mt_worker *w)
{
    pthread_mutex_lock(&s->slock);
    while (w->stacks.free)
        coro_stack_put(&s->stacks, coro_stack_get(&w->stacks));
    pthread_mutex_unlock(&s->slock);
}

/* ------------------------------------------------------------- workers */

static void finish(mt_worker *w, mt_coro *co)
{
    mt_sched *s = w->s;

    tsan_fiber_free(co->tsan_fiber);
    stack_put(s, w, co->stack);
    if (atomic_fetch_sub(&s->live, 1) == 1)
        mt_maybe_done(s);
}

static void bump(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static void bump_ull(_Atomic unsigned long long *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static void resume(mt_worker *w, mt_coro *co)
{
    co->worker = w;
    w->current = co;
    /* Single writer: plain relaxed stores, no locked instruction. */
    bump(&w->resumes);
    bump_ull(&w->switches);
    atomic_store_explicit(&w->in_coro, true, memory_order_relaxed);
    asan_start(&w->asan_fake, co->stack->lo, usable_size(co));
    tsan_enter(co->tsan_fiber);
    coro_ctx_switch(&w->ctx, &co->ctx);
    asan_finish(w->asan_fake, NULL, NULL);
    atomic_store_explicit(&w->in_coro, false, memory_order_relaxed);
    w->current = NULL;
    switch (co->why) {
    case MT_WHY_YIELD:
        push_tail(w, co);
        break;
    case MT_WHY_PARK:
        park_settle(w, co);
        break;
    case MT_WHY_DONE:
        finish(w, co);
        break;
    }
}

/* The next slot wins at most MT_NEXT_CAP times in a row (starvation). */
static mt_coro *next_local(mt_worker *w)
{
    mt_coro *co;

    if (w->next_runs < MT_NEXT_CAP &&
        atomic_load_explicit(&w->next, memory_order_relaxed) &&
        (co = atomic_exchange(&w->next, NULL)) != NULL) {
        w->next_runs++;
        return co;
    }
    w->next_runs = 0;
    if ((co = mt_ring_pop(&w->ring)) != NULL)
        return co;
    if (!atomic_load_explicit(&w->next, memory_order_relaxed))
        return NULL;
    return atomic_exchange(&w->next, NULL);
}

static uint64_t xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Half of one victim's ring; the last round also takes its next slot. */
static mt_coro *steal_from(mt_worker *w, mt_worker *v, bool take_next)
{
    mt_coro *batch[MT_RING_SIZE / 2];
    unsigned n = mt_ring_grab(&v->ring, batch);

    if (n == 0)
        return take_next ? atomic_exchange(&v->next, NULL) : NULL;
    for (unsigned i = 0; i + 1 < n; i++)
        push_tail(w, batch[i]);
    atomic_fetch_add_explicit(&w->steals, n, memory_order_relaxed);
    return batch[n - 1];
}

static mt_coro *steal_round(mt_worker *w, bool take_next)
{
    mt_sched *s = w->s;
    unsigned n = s->nslots_w, start = (unsigned)(xorshift(&w->rand) % n);

    for (unsigned i = 0; i < n; i++) {
        mt_worker *v = &s->workers[(start + i) % n];
        mt_coro *co;

        if (v == w || atomic_load(&v->state) != MT_W_RUNNING)
            continue;
        if ((co = steal_from(w, v, take_next)) != NULL)
            return co;
    }
    return NULL;
}

/* Bounded spinning: at most half of the busy workers search at once. */
static mt_coro *steal(mt_worker *w)
{
    mt_sched *s = w->s;
    unsigned busy = atomic_load(&s->running) - atomic_load(&s->nidle);
    mt_coro *co = NULL;

    if (2 * atomic_load(&s->nspinning) >= busy)
        return NULL;
    atomic_fetch_add(&s->nspinning, 1);
    for (int r = 0; r < STEAL_ROUNDS && !co; r++)
        co = steal_round(w, r == STEAL_ROUNDS - 1);
    atomic_fetch_sub(&s->nspinning, 1);
    /* The last thief leaving with a haul: more may wait for a thief. */
    if (co && mt_ring_len(&w->ring) > 0)
        mt_notify(s);
    return co;
}

static void poll_nonblocking(mt_sched *s)
{
    bool expect = false;

    if (!atomic_compare_exchange_strong(&s->polling, &expect, true))
        return;
    mt_poll(s, 0);
    atomic_store(&s->polling, false);
}

static bool timers_due(mt_sched *s)
{
    int64_t next = atomic_load_explicit(&s->next_timer, memory_order_relaxed);

    return next != INT64_MAX && next <= coro_now_ms();
}

static mt_coro *find_work(mt_worker *w)
{
    mt_sched *s = w->s;
    mt_coro *co;

    /* Fairness: timers, the inject queue and the network every 61 ticks
     * (reading the clock can be a syscall on a VM: not every tick). */
    if (++w->tick % MT_INJECT_INTERVAL == 0) {
        if (timers_due(s))
            mt_timers_fire(s);
        if ((co = mt_inject_pop(s)) != NULL)
            return co;
        poll_nonblocking(s);
    }
    if ((co = next_local(w)) != NULL)
        return co;
    if (timers_due(s))
        mt_timers_fire(s);
    if ((co = next_local(w)) != NULL || (co = mt_inject_pop(s)) != NULL)
        return co;
    poll_nonblocking(s);
    if ((co = next_local(w)) != NULL)
        return co;
    return steal(w);
}

static int poll_timeout(mt_sched *s)
{
    int64_t next = atomic_load(&s->next_timer), left;

    if (next == INT64_MAX)
        return -1;
    left = next - coro_now_ms();
    if (left <= 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

static bool finished(mt_sched *s)
{
    return atomic_load(&s->stop) || atomic_load(&s->done);
}

/* The one worker allowed to sleep in epoll_wait, until the next timer. */
static void be_poller(mt_worker *w)
{
    mt_sched *s = w->s;
    int timeout;

    atomic_store(&s->poll_until, INT64_MIN);
    atomic_exchange(&s->poll_blocked, 1);
    timeout = poll_timeout(s);
    atomic_store(&s->poll_until, timeout < 0 ? INT64_MAX : coro_now_ms() + timeout);
    /* Announced before this last look: a notifier now breaks the wait. */
    if (work_visible(s) || finished(s))
        timeout = 0;
    mt_poll(s, timeout);
    atomic_store(&s->poll_blocked, 0);
    atomic_store(&s->polling, false);
    mt_timers_fire(s);
    /* Found work: hand the netpoller to a parked worker. */
    if (mt_ring_len(&w->ring) > 0 || atomic_load(&w->next))
        mt_notify(s);
}

/* More usable workers than configured: a spare may go. */
static bool surplus(mt_sched *s)
{
    return atomic_load(&s->running) - atomic_load(&s->nstuck) > s->nworkers;
}

static void idle_park(mt_worker *w)
{
    mt_sched *s = w->s;

    pthread_mutex_lock(&s->idle_lock);
    atomic_fetch_add(&s->nidle, 1);
    while (s->wakeups == 0 && !work_visible(s) && !finished(s) &&
           atomic_load(&s->polling) && !(w->spare && surplus(s)) &&
           atomic_load(&w->trim_seen) == atomic_load(&s->trim_gen))
        pthread_cond_wait(&s->idle_cond, &s->idle_lock);
    if (s->wakeups > 0)
        s->wakeups--;
    atomic_fetch_sub(&s->nidle, 1);
    pthread_mutex_unlock(&s->idle_lock);
}

static void go_idle(mt_worker *w)
{
    bool expect = false;

    if (atomic_compare_exchange_strong(&w->s->polling, &expect, true))
        be_poller(w);
    else
        idle_park(w);
}

/* Only the owner touches its cache: each worker trims its own. */
static void trim_own(mt_worker *w)
{
    mt_sched *s = w->s;
    unsigned keep = atomic_load(&s->trim_keep) / s->nworkers;

    coro_stack_pool_trim(&w->stacks, keep ? keep : 1);
    atomic_store(&w->trim_seen, atomic_load(&s->trim_gen));
}

static void worker_loop(mt_worker *w)
{
    mt_sched *s = w->s;
    clockid_t clock;

    tls_worker = w;
    atomic_store(&w->tid, (int)gettid());
    if (pthread_getcpuclockid(pthread_self(), &clock) == 0)
        atomic_store(&w->cpu_clock, (int)clock);
    w->tsan_fiber = tsan_fiber_self();
    w->altstack = coro_stack_guard_install();
    while (!finished(s)) {
        mt_coro *co = find_work(w);

        if (co) {
            resume(w, co);
            continue;
        }
        /* A spare retires when it runs out of work and enough workers
         * are usable again. */
        if (w->spare && surplus(s))
            break;
        if (atomic_load(&w->trim_seen) != atomic_load(&s->trim_gen))
            trim_own(w);
        go_idle(w);
    }
    stacks_to_shared(s, w);
    coro_stack_guard_remove(w->altstack);
    w->altstack = NULL;
    tls_worker = NULL;
    coro_ctx_release(&w->ctx);
}

static void *worker_main(void *arg)
{
    mt_worker *w = arg;

    worker_loop(w);
    atomic_fetch_sub(&w->s->running, 1);
    atomic_store(&w->state, MT_W_EXITED);
    return NULL;
}

static void worker_init(mt_sched *s, unsigned i, bool spare)
{
    mt_worker *w = &s->workers[i];

    w->s = s;
    w->id = (int)i;
    w->spare = spare;
    w->rand = 0x9E3779B97F4A7C15ull * (i + 1);
    w->next_runs = 0;
    atomic_store(&w->trim_seen, atomic_load(&s->trim_gen));
    mt_ring_init(&w->ring);
    atomic_store(&w->next, NULL);
    coro_stack_pool_init(&w->stacks, s->stack_size, s->stack_cache);
}

static bool start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
    return pthread_create(t, NULL, fn, arg) == 0;
}

static bool start_worker(mt_sched *s, unsigned i, bool spare)
{
    mt_worker *w = &s->workers[i];

    worker_init(s, i, spare);
    atomic_fetch_add(&s->running, 1);
    atomic_store(&w->state, MT_W_RUNNING);
    if (start_thread(&w->thread, worker_main, w))
        return true;
    atomic_fetch_sub(&s->running, 1);
    atomic_store(&w->state, MT_W_FREE);
    return false;
}

/* ------------------------------------------------------------- monitor */

/*
 * The CPUs the workers may run on together (taskset, a cpuset): no more
 * than that many run side by side.  Before the workers start, the calling
 * thread's.  The monitor looks again now and then: affinity can change at
 * run time (taskset -p).
 */
static unsigned workers_cpus(mt_sched *s)
{
    cpu_set_t all, one;

    CPU_ZERO(&all);
    for (unsigned i = 0; i < s->nslots_w; i++) {
        mt_worker *w = &s->workers[i];
        int tid = atomic_load(&w->tid);

        if (atomic_load(&w->state) != MT_W_RUNNING || tid == 0)
            continue;
        if (sched_getaffinity(tid, sizeof one, &one) != 0)
            return MT_MAX_WORKERS;      /* unknown: no limit */
        CPU_OR(&all, &all, &one);
    }
    if (CPU_COUNT(&all) == 0 && sched_getaffinity(0, sizeof all, &all) != 0)
        return MT_MAX_WORKERS;
    return CPU_COUNT(&all) > 0 ? (unsigned)CPU_COUNT(&all) : MT_MAX_WORKERS;
}

/* Moves a stuck worker's queue to the inject queue; count. */
static unsigned rescue(mt_sched *s, mt_worker *w)
{
    mt_coro *batch[MT_RING_SIZE / 2];
    mt_coro *co;
    unsigned n, moved = 0;

    while ((n = mt_ring_grab(&w->ring, batch)) > 0) {
        mt_inject_push_batch(s, batch, n);
        moved += n;
    }
    if ((co = atomic_exchange(&w->next, NULL)) != NULL) {
        mt_inject_push(s, co);
        moved++;
    }
    return moved;
}

static void start_spare(mt_sched *s)
{
    for (unsigned i = s->nworkers; i < s->nslots_w; i++) {
        mt_worker *w = &s->workers[i];
        int st = atomic_load(&w->state);

        if (st == MT_W_RUNNING)
            continue;
        if (st == MT_W_EXITED)
            pthread_join(w->thread, NULL);
        atomic_store(&w->state, MT_W_FREE);
        if (start_worker(s, i, true))
            atomic_fetch_add(&s->spares, 1);
        return;
    }
}

/*
 * The worker's CPU clock is read only once it stayed in one coroutine
 * for a tick: under load it resumes another within every tick, and a
 * clock read per worker per tick (a syscall) would cost every request.
 */
typedef struct mon_track {
    uint64_t resumes;
    int64_t since;              /* in the same coroutine since then */
    int64_t cpu_at;             /* when cpu_since was read; -1: not yet */
    int64_t cpu_since;          /* the worker's CPU time then, ms */
} mon_track;

static int64_t cpu_ms(mt_worker *w)
{
    struct timespec ts;

    if (clock_gettime((clockid_t)atomic_load(&w->cpu_clock), &ts) != 0)
        return -1;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Blocked in the kernel (a blocking call in a handler), not runnable. */
static bool sleeping_in_kernel(mt_worker *w)
{
    char path[64], buf[256], *p;
    ssize_t n;
    int fd;

    snprintf(path, sizeof path, "/proc/self/task/%d/stat", atomic_load(&w->tid));
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return false;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    p = strrchr(buf, ')');
    return p && p[1] == ' ' && (p[2] == 'S' || p[2] == 'D');
}

/*
 * Same coroutine for MT_STUCK_MS: stuck if it burnt the CPU meanwhile (a
 * CPU-heavy handler: half of the time since its clock was read) or
 * sleeps in a blocking call.  A worker that was merely preempted (the
 * machine is overloaded) is not: a spare thread would only add to the load.
 */
static bool really_stuck(mt_worker *w, const mon_track *t, int64_t now)
{
    int64_t cpu = cpu_ms(w);

    return cpu < 0 || 2 * (cpu - t->cpu_since) >= now - t->cpu_at ||
           sleeping_in_kernel(w);
}

/* Fewer usable workers than configured: a spare makes up for one. */
static void stuck_worker(mt_sched *s, mt_worker *w)
{
    if (rescue(s, w) > 0)
        atomic_fetch_add(&s->handoffs, 1);
    if (atomic_load(&s->running) - atomic_load(&s->nstuck) < s->nworkers)
        start_spare(s);
    else
        mt_notify(s);
}

static void monitor_check(mt_sched *s, mon_track *tr, unsigned long *polls_seen, int64_t now)
{
    unsigned long polls;

    for (unsigned i = 0; i < s->nslots_w; i++) {
        mt_worker *w = &s->workers[i];
        uint64_t r = atomic_load_explicit(&w->resumes, memory_order_relaxed);
        bool running = atomic_load(&w->state) == MT_W_RUNNING;
        bool in_coro = running && atomic_load_explicit(&w->in_coro, memory_order_relaxed);

        if (!in_coro || r != tr[i].resumes) {
            tr[i].resumes = r;
            tr[i].since = now;
            tr[i].cpu_at = -1;
            if (w->stuck) {
                w->stuck = false;
                atomic_fetch_sub(&s->nstuck, 1);
            }
            continue;
        }
        if (tr[i].cpu_at < 0) {
            tr[i].cpu_at = now;
            tr[i].cpu_since = cpu_ms(w);
        }
        /* Judged over a window of CPU evidence, not a single tick. */
        if (now - tr[i].since < MT_STUCK_MS ||
            (!w->stuck && now - tr[i].cpu_at < MT_STUCK_MS / 2))
            continue;
        if (!w->stuck && !really_stuck(w, &tr[i], now)) {
            tr[i].since = now;
            tr[i].cpu_at = -1;
            continue;
        }
        tr[i].since = now;              /* at most once per period */
        if (!w->stuck) {
            w->stuck = true;
            atomic_fetch_add(&s->nstuck, 1);
        }
        stuck_worker(s, w);
    }
    /* Nobody has watched the network or the timers since the last look,
     * and others are parked.  (Not at once: under a light load the one
     * awake worker is often busy for a moment, and is back soon.) */
    polls = atomic_load_explicit(&s->polls, memory_order_relaxed);
    if (!atomic_load(&s->polling) && atomic_load(&s->nidle) > 0 && polls == *polls_seen)
        wake_one(s);
    *polls_seen = polls;
    /* The stuck workers are back: parked spares may retire. */
    if (surplus(s) && atomic_load(&s->nidle) > 0) {
        pthread_mutex_lock(&s->idle_lock);
        pthread_cond_broadcast(&s->idle_cond);
        pthread_mutex_unlock(&s->idle_lock);
    }
}

static void *monitor_main(void *arg)
{
    mt_sched *s = arg;
    mon_track tr[MT_MAX_WORKERS + MT_MAX_SPARE];
    unsigned looks = 0;
    unsigned long polls_seen = 0;

    /* Named for top -H and the tests, which tell it from the workers. */
    pthread_setname_np(pthread_self(), "httpd-monitor");
    memset(tr, 0, sizeof tr);
    for (unsigned i = 0; i < MT_MAX_WORKERS + MT_MAX_SPARE; i++)
        tr[i].cpu_at = -1;
    pthread_mutex_lock(&s->mon_lock);
    while (!finished(s)) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += MONITOR_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->mon_cond, &s->mon_lock, &ts);
        pthread_mutex_unlock(&s->mon_lock);
        if (++looks % MONITOR_AFFINITY_LOOKS == 0)
            atomic_store_explicit(&s->ncpus, workers_cpus(s), memory_order_relaxed);
        monitor_check(s, tr, &polls_seen, coro_now_ms());
        pthread_mutex_lock(&s->mon_lock);
    }
    pthread_mutex_unlock(&s->mon_lock);
    return NULL;
}

/* ------------------------------------------------------- create / run */

static unsigned online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : n > MT_MAX_WORKERS ? MT_MAX_WORKERS : (unsigned)n;
}

mt_sched *mt_sched_create(const mt_opts *opts)
{
    mt_sched *s = qt_xcalloc(1, sizeof *s);

    if (opts)
        s->opts = *opts;
    s->nworkers = s->opts.threads ? s->opts.threads : online_cpus();
    if (s->nworkers > MT_MAX_WORKERS)
        s->nworkers = MT_MAX_WORKERS;
    s->nslots_w = s->nworkers + (s->opts.no_monitor ? 0 : MT_MAX_SPARE);
    atomic_init(&s->ncpus, workers_cpus(s));
    s->stack_size = s->opts.stack_size ? s->opts.stack_size : CORO_STACK_DEFAULT;
    if (s->stack_size < STACK_MIN)
        s->stack_size = STACK_MIN;
    s->stack_cache = s->opts.stack_cache ? s->opts.stack_cache
                                         : MT_STACK_CACHE_DEFAULT;
    coro_stack_pool_init(&s->stacks, s->stack_size, MT_SHARED_STACK_CACHE);
    for (unsigned i = 0; i < s->nworkers; i++)
        worker_init(s, i, false);
    pthread_mutex_init(&s->ilock, NULL);
    pthread_mutex_init(&s->idle_lock, NULL);
    pthread_cond_init(&s->idle_cond, NULL);
    pthread_mutex_init(&s->slock, NULL);
    pthread_mutex_init(&s->mon_lock, NULL);
    pthread_cond_init(&s->mon_cond, NULL);
    mt_poll_init(s);
    return s;
}

void mt_sched_destroy(mt_sched *s)
{
    mt_blocking_free(s);
    mt_poll_free(s);
    for (unsigned i = 0; i < s->nworkers; i++)
        coro_stack_pool_drain(&s->workers[i].stacks);
    coro_stack_pool_drain(&s->stacks);
    pthread_mutex_destroy(&s->ilock);
    pthread_mutex_destroy(&s->idle_lock);
    pthread_cond_destroy(&s->idle_cond);
    pthread_mutex_destroy(&s->slock);
    pthread_mutex_destroy(&s->mon_lock);
    pthread_cond_destroy(&s->mon_cond);
    free(s);
}

static void join_workers(mt_sched *s)
{
    for (unsigned i = 1; i < s->nslots_w; i++) {
        mt_worker *w = &s->workers[i];

        if (atomic_load(&w->state) != MT_W_FREE)
            pthread_join(w->thread, NULL);
        atomic_store(&w->state, MT_W_FREE);
    }
}

void mt_sched_run(mt_sched *s)
{
    mt_worker *w0 = &s->workers[0];

    atomic_store(&s->done, atomic_load(&s->live) == 0 &&
                           atomic_load(&s->watches) == 0);
    atomic_store(&w0->state, MT_W_RUNNING);
    atomic_store(&s->running, 1);
    for (unsigned i = 1; i < s->nworkers; i++)
        start_worker(s, i, false);
    s->monitor_on = !s->opts.no_monitor &&
                    start_thread(&s->monitor, monitor_main, s);
    worker_loop(w0);
    wake_all(s);
    if (s->monitor_on)
        pthread_join(s->monitor, NULL);
    join_workers(s);
    atomic_store(&w0->state, MT_W_FREE);
    atomic_store(&s->running, 0);
    atomic_store(&s->stop, false);
}

void mt_sched_stop(mt_sched *s)
{
    atomic_store(&s->stop, true);
    wake_all(s);
}

void mt_sched_trim(mt_sched *s, unsigned keep)
{
    pthread_mutex_lock(&s->slock);
    coro_stack_pool_trim(&s->stacks, 0);
    pthread_mutex_unlock(&s->slock);
    atomic_store(&s->trim_keep, keep);
    atomic_fetch_add(&s->trim_gen, 1);
    wake_all(s);                        /* parked workers trim when they wake */
}

void mt_sched_stats(mt_sched *s, mt_stats *out)
{
    memset(out, 0, sizeof *out);
    out->workers = s->nworkers;
    out->live = atomic_load(&s->live);
    out->watches = atomic_load(&s->watches);
    out->created = atomic_load(&s->created);
    out->handoffs = atomic_load(&s->handoffs);
    out->spares = atomic_load(&s->spares);
    for (unsigned i = 0; i < s->nslots_w; i++) {
        out->steals += atomic_load(&s->workers[i].steals);
        out->switches += atomic_load(&s->workers[i].switches);
    }
}
