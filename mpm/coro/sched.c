/* Coroutines, the run queue and the loop (see coro.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coro_int.h"
#include "module.h"
#include "pool.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORO_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(CORO_ASAN)
#define CORO_ASAN 1
#endif
#ifdef CORO_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

/*
 * noipa: after a switch the code may run on another thread (hybrid), so
 * the compiler must not reuse a thread pointer or an errno address it
 * computed before the switch.  An opaque call forces a fresh read.
 */
#if defined(__clang__)
#define CORO_OPAQUE __attribute__((noinline))
#else
#define CORO_OPAQUE __attribute__((noinline, noipa))
#endif

#define STACK_MIN (16u * 1024u)
#define POLL_INTERVAL 61u

static _Thread_local coro_sched *tls_sched;

CORO_OPAQUE coro_sched *coro_sched_current(void)
{
    return tls_sched;
}

CORO_OPAQUE static void set_errno(int e)
{
    errno = e;
}

const coro_stack *coro_running_stack(void)
{
    coro_sched *s = tls_sched;

    if (s && s->current)
        return s->current->stack;
    return mt_running_stack();          /* the multi-thread runtime's */
}

int64_t coro_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ----------------------------------------------------------- ASan fibers */

static void asan_start(void **fake, const void *lo, size_t size)
{
#ifdef CORO_ASAN
    __sanitizer_start_switch_fiber(fake, lo, size);
#else
    (void)fake, (void)lo, (void)size;
#endif
}

static void asan_finish(void *fake, const void **old_lo, size_t *old_size)
{
#ifdef CORO_ASAN
    __sanitizer_finish_switch_fiber(fake, old_lo, old_size);
#else
    (void)fake, (void)old_lo, (void)old_size;
#endif
}

/* ------------------------------------------------------------ run queue */

static void enqueue(coro_sched *s, coro *co)
{
    co->state = CORO_READY;
    co->next = NULL;
    if (s->runq_tail)
        s->runq_tail->next = co;
    else
        s->runq_head = co;
    s->runq_tail = co;
    s->runnable++;
}

static coro *dequeue(coro_sched *s)
{
    coro *co = s->runq_head;

    if (!co)
        return NULL;
    s->runq_head = co->next;
    if (!s->runq_head)
        s->runq_tail = NULL;
    s->runnable--;
    return co;
}

/* ---------------------------------------------------------- coroutines */

static size_t usable_size(const coro *co)
{
    return (size_t)((const char *)co - co->stack->lo);
}

static void all_link(coro_sched *s, coro *co)
{
    co->all_prev = NULL;
    co->all_next = s->all;
    if (s->all)
        s->all->all_prev = co;
    s->all = co;
}

static void all_unlink(coro_sched *s, coro *co)
{
    if (co->all_prev)
        co->all_prev->all_next = co->all_next;
    else
        s->all = co->all_next;
    if (co->all_next)
        co->all_next->all_prev = co->all_prev;
}

static void coro_free(coro_sched *s, coro *co)
{
    coro_timer_disarm(&s->timers, &co->timer);
    all_unlink(s, co);
    coro_stack_put(&s->stacks, co->stack);
}

/*
 * Back to the loop.  errno is the running thread's, and another coroutine
 * will clobber it: keep ours on our own stack and put it back on resume.
 */
static void switch_out(coro *co)
{
    coro_sched *s = co->sched;
    int saved = errno;

    asan_start(co->state == CORO_DONE ? NULL : &co->asan_fake,
               s->main_lo, s->main_size);
    coro_ctx_switch(&co->ctx, &s->ctx);
    asan_finish(co->asan_fake, &co->sched->main_lo, &co->sched->main_size);
    set_errno(saved);
}

static void coro_main(void *arg)
{
    coro *co = arg;

    asan_finish(NULL, &co->sched->main_lo, &co->sched->main_size);
    set_errno(0);
    co->fn(co->arg);
    co->state = CORO_DONE;
    co->sched->live--;
    switch_out(co);                     /* never resumed: the loop frees us */
}

static void on_coro_timer(coro_sched *s, coro_timer *t)
{
    (void)s;
    coro_wake(container_of(t, coro, timer), QT_TIMEOUT);
}

coro *coro_spawn(coro_sched *s, void (*fn)(void *), void *arg)
{
    coro_stack *st = coro_stack_get(&s->stacks);
    coro *co;

    if (!st)
        return NULL;
    /* The coroutine's struct sits right under the stack header. */
    co = (coro *)(((uintptr_t)st - sizeof(coro)) & ~(uintptr_t)63);
    memset(co, 0, sizeof *co);
    co->sched = s;
    co->stack = st;
    co->fn = fn;
    co->arg = arg;
    co->wait_fd = -1;
    coro_timer_init(&co->timer, on_coro_timer);
    coro_ctx_init(&co->ctx, st->lo, usable_size(co), coro_main, co);
    all_link(s, co);
    s->live++;
    s->created++;
    enqueue(s, co);
    return co;
}

coro *coro_create(void (*fn)(void *), void *arg)
{
    coro_sched *s = coro_sched_current();

    return s ? coro_spawn(s, fn, arg) : NULL;
}

coro *coro_self(void)
{
    coro_sched *s = coro_sched_current();

    return s ? s->current : NULL;
}

void coro_yield(void)
{
    coro *co = coro_self();

    if (!co)
        return;
    enqueue(co->sched, co);
    switch_out(co);
}

int coro_park_self(coro_sched *s, int64_t deadline_ms)
{
    coro *co = s->current;

    if (deadline_ms > 0)
        coro_timer_arm(&s->timers, &co->timer, deadline_ms);
    co->state = CORO_PARKED;
    co->wake = QT_OK;
    switch_out(co);
    return co->wake;
}

int coro_park_until(int64_t deadline_ms)
{
    coro_sched *s = coro_sched_current();

    if (!s || !s->current)
        return QT_ERROR;
    return coro_park_self(s, deadline_ms);
}

int coro_park(void)
{
    return coro_park_until(0);
}

void coro_wake(coro *co, int result)
{
    coro_sched *s = co->sched;

    if (co->state != CORO_PARKED)
        return;
    coro_timer_disarm(&s->timers, &co->timer);
    if (co->wait_fd >= 0)
        coro_poller_unlink(s, co);
    co->wake = result;
    enqueue(s, co);
}

void coro_ready(coro *co)
{
    coro_wake(co, QT_OK);
}

void coro_sleep_ms(int64_t ms)
{
    coro_sched *s = coro_sched_current();
    int64_t deadline = coro_now_ms() + (ms > 0 ? ms : 0);

    if (!s || !s->current) {
        struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

        while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        return;
    }
    /* An early coro_ready() does not cut the sleep short. */
    do
        coro_park_self(s, deadline);
    while (coro_now_ms() < deadline);
}

/* ------------------------------------------------------------ the loop */

static void resume(coro_sched *s, coro *co)
{
    s->current = co;
    co->state = CORO_RUNNING;
    s->switches++;
    asan_start(&s->asan_fake, co->stack->lo, usable_size(co));
    coro_ctx_switch(&s->ctx, &co->ctx);
    asan_finish(s->asan_fake, NULL, NULL);
    s->current = NULL;
    if (co->state == CORO_DONE)
        coro_free(s, co);
}

/* One turn: those runnable now; whoever yields runs in the next turn, after
 * the netpoller had its say. */
static void run_ready(coro_sched *s)
{
    unsigned n = s->runnable;
    coro *co;

    while (n-- > 0 && (co = dequeue(s)) != NULL)
        resume(s, co);
}

static int poll_timeout(const coro_sched *s)
{
    int64_t next;

    if (s->runq_head)
        return 0;
    next = coro_timer_next(&s->timers);
    if (next < 0)
        return -1;
    next -= coro_now_ms();
    if (next <= 0)
        return 0;
    return next > INT_MAX ? INT_MAX : (int)next;
}

static void fire_timers(coro_sched *s)
{
    int64_t now;
    coro_timer *t;

    if (coro_timer_next(&s->timers) < 0)
        return;
    now = coro_now_ms();
    while ((t = coro_timer_pop_due(&s->timers, now)) != NULL)
        t->fire(s, t);
}

static bool has_work(const coro_sched *s)
{
    return !atomic_load(&s->stop) && (s->live > 0 || s->watches > 0);
}

void coro_sched_run(coro_sched *s)
{
    coro_sched *prev = tls_sched;

    tls_sched = s;
    s->altstack = coro_stack_guard_install();
    while (has_work(s)) {
        run_ready(s);
        if (!has_work(s))
            break;
        /*
         * While coroutines stay runnable, a non-blocking epoll_wait every
         * turn would cost more than the turn itself: look at the network
         * every POLL_INTERVAL turns only (Go and Tokio use 61 too).
         */
        if (s->runq_head && ++s->busy_turns < POLL_INTERVAL) {
            fire_timers(s);
            continue;
        }
        s->busy_turns = 0;
        coro_poller_poll(s, poll_timeout(s));
        fire_timers(s);
        if (s->opts.tick)
            s->opts.tick(s, s->opts.tick_arg);
    }
    atomic_store(&s->stop, false);
    coro_stack_guard_remove(s->altstack);
    s->altstack = NULL;
    tls_sched = prev;
}

void coro_sched_trim(coro_sched *s, unsigned keep_stacks)
{
    coro_stack_pool_trim(&s->stacks, keep_stacks);
}

void coro_sched_stop(coro_sched *s)
{
    atomic_store(&s->stop, true);
    coro_sched_wake(s);
}

void coro_sched_wake(coro_sched *s)
{
    uint64_t one = 1;
    int saved = errno;                  /* may run in a signal handler */
    /* A failure means the counter is full: a wake-up is pending anyway. */
    ssize_t rc = write(s->poll.evfd, &one, sizeof one);

    (void)rc;
    errno = saved;
}

/* ------------------------------------------------------- create/destroy */

coro_sched *coro_sched_create(const coro_sched_opts *opts)
{
    coro_sched *s = qt_xcalloc(1, sizeof *s);
    size_t size;

    if (opts)
        s->opts = *opts;
    size = s->opts.stack_size ? s->opts.stack_size : CORO_STACK_DEFAULT;
    if (size < STACK_MIN)
        size = STACK_MIN;
    coro_stack_pool_init(&s->stacks, size, s->opts.stack_cache ?
                         s->opts.stack_cache : CORO_STACK_CACHE_DEFAULT);
    atomic_init(&s->stop, false);
    coro_poller_init(&s->poll);
    return s;
}

void coro_sched_destroy(coro_sched *s)
{
    while (s->all) {
        coro *co = s->all;

        if (co->wait_fd >= 0)
            coro_poller_unlink(s, co);
        coro_free(s, co);
    }
    coro_stack_pool_drain(&s->stacks);
    coro_poller_free(&s->poll);
    coro_timer_heap_free(&s->timers);
    coro_ctx_release(&s->ctx);
    free(s);
}

void coro_sched_stats(const coro_sched *s, coro_stats *out)
{
    memset(out, 0, sizeof *out);
    out->live = s->live;
    out->runnable = s->runnable;
    out->watches = s->watches;
    out->stacks_mapped = s->stacks.mapped;
    out->stacks_cached = s->stacks.cached;
    out->created = s->created;
    out->stack_maps = s->stacks.maps;
    out->switches = s->switches;
}
