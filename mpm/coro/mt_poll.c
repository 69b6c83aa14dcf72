/*
 * The shared netpoller, the timer heap and the blocking pool of the
 * multi-thread runtime (see mt_sched.h).  Lock order: a timer fire may
 * take an fd slot's lock while holding the heap's, never the reverse.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "mt_int.h"
#include "coro_int.h"
#include "module.h"
#include "mpm.h"
#include "pool.h"

#define ET_EVENTS    (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)
#define EXCL_EVENTS  (EPOLLIN | EPOLLET | EPOLLEXCLUSIVE)
#define READ_EVENTS  (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)
#define WRITE_EVENTS (EPOLLOUT | EPOLLHUP | EPOLLERR)
#define MAX_EVENTS   256
#define FIRE_BATCH   64
#define BLOCKING_DEFAULT 16u

static void on_timer_dummy(struct coro_sched *s, coro_timer *t)
{
    (void)s, (void)t;
}

/* Tells a coroutine's timer from an fd watch's in the shared heap. */
static void on_watch_timer(struct coro_sched *s, coro_timer *t)
{
    (void)s, (void)t;
}

void mt_poll_init(mt_sched *s)
{
    struct epoll_event ev = { .events = EPOLLIN };

    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ev.data.fd = s->evfd;
    if (s->epfd < 0 || s->evfd < 0 ||
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->evfd, &ev) != 0) {
        fprintf(stderr, "quintet: cannot create the netpoller: %s\n",
                strerror(errno));
        abort();
    }
    pthread_mutex_init(&s->chunk_lock, NULL);
    pthread_mutex_init(&s->tlock, NULL);
    pthread_mutex_init(&s->block_lock, NULL);
    pthread_cond_init(&s->block_cond, NULL);
    atomic_init(&s->next_timer, INT64_MAX);
    atomic_init(&s->poll_until, INT64_MAX);
}

void mt_poll_free(mt_sched *s)
{
    for (unsigned c = 0; c < MT_SLOT_CHUNKS; c++) {
        mt_fdslot *chunk = atomic_load(&s->chunks[c]);

        if (!chunk)
            continue;
        for (unsigned i = 0; i < MT_SLOT_CHUNK; i++)
            pthread_mutex_destroy(&chunk[i].lock);
        free(chunk);
    }
    close(s->evfd);
    close(s->epfd);
    coro_timer_heap_free(&s->timers);
    pthread_mutex_destroy(&s->chunk_lock);
    pthread_mutex_destroy(&s->tlock);
}

void mt_poll_break(mt_sched *s)
{
    uint64_t one = 1;
    int saved = errno;
    ssize_t rc = write(s->evfd, &one, sizeof one);

    (void)rc;                           /* full counter: a wake is pending */
    errno = saved;
}

/* ---------------------------------------------------------------- slots */

/* Slots never move nor die before the scheduler: lookups take no lock. */
static mt_fdslot *slot_find(mt_sched *s, int fd)
{
    mt_fdslot *chunk;

    if (fd < 0 || (unsigned)fd >= MT_SLOT_CHUNK * MT_SLOT_CHUNKS)
        return NULL;
    chunk = atomic_load_explicit(&s->chunks[fd / MT_SLOT_CHUNK],
                                 memory_order_acquire);
    return chunk ? &chunk[fd % MT_SLOT_CHUNK] : NULL;
}

static mt_fdslot *slot_get(mt_sched *s, int fd)
{
    mt_fdslot *sl = slot_find(s, fd), *chunk;
    unsigned c;

    if (sl || fd < 0 || (unsigned)fd >= MT_SLOT_CHUNK * MT_SLOT_CHUNKS)
        return sl;
    c = (unsigned)fd / MT_SLOT_CHUNK;
    pthread_mutex_lock(&s->chunk_lock);
    chunk = atomic_load(&s->chunks[c]);
    if (!chunk) {
        chunk = qt_xcalloc(MT_SLOT_CHUNK, sizeof *chunk);
        for (unsigned i = 0; i < MT_SLOT_CHUNK; i++) {
            pthread_mutex_init(&chunk[i].lock, NULL);
            chunk[i].fd = (int)(c * MT_SLOT_CHUNK + i);
            chunk[i].s = s;
            coro_timer_init(&chunk[i].watch_timer, on_watch_timer);
        }
        atomic_store_explicit(&s->chunks[c], chunk, memory_order_release);
    }
    pthread_mutex_unlock(&s->chunk_lock);
    return &chunk[fd % MT_SLOT_CHUNK];
}

static uint32_t slot_interest(const mt_fdslot *sl)
{
    return (sl->reader || sl->watch ? EPOLLIN : 0) | (sl->writer ? EPOLLOUT : 0);
}

static int ctl_set(mt_sched *s, mt_fdslot *sl, uint32_t events)
{
    struct epoll_event ev = { .events = events };

    ev.data.fd = sl->fd;
    if (sl->mode != CORO_FD_NONE &&
        epoll_ctl(s->epfd, EPOLL_CTL_MOD, sl->fd, &ev) == 0)
        return 0;
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, sl->fd, &ev) == 0)
        return 0;
    if (errno != EEXIST)
        return -1;
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, sl->fd, NULL);
    return epoll_ctl(s->epfd, EPOLL_CTL_ADD, sl->fd, &ev);
}

static int arm_oneshot(mt_sched *s, mt_fdslot *sl, uint32_t want)
{
    if (ctl_set(s, sl, want | slot_interest(sl) | EPOLLRDHUP | EPOLLONESHOT) != 0)
        return -1;
    sl->mode = CORO_FD_ONESHOT;
    return 0;
}

int mt_fd_register(mt_sched *s, int fd, unsigned flags)
{
    mt_fdslot *sl = slot_get(s, fd);
    uint32_t events = (flags & CORO_FD_EXCLUSIVE) ? EXCL_EVENTS : ET_EVENTS;
    int rc = QT_OK;

    if (!sl)
        return QT_ERROR;
    pthread_mutex_lock(&sl->lock);
    if (sl->mode != CORO_FD_ET) {
        if (ctl_set(s, sl, events) == 0) {
            sl->mode = CORO_FD_ET;
            sl->latched = 0;
        } else {
            rc = QT_ERROR;
        }
    }
    pthread_mutex_unlock(&sl->lock);
    return rc;
}

/* ------------------------------------------------------------ timers */

static void publish_next(mt_sched *s)
{
    int64_t next = coro_timer_next(&s->timers);

    atomic_store(&s->next_timer, next < 0 ? INT64_MAX : next);
}

/* An earlier deadline than the sleeping poller knows: break its sleep. */
static void timer_armed(mt_sched *s, int64_t when)
{
    int64_t until;

    if (!atomic_fetch_or(&s->poll_blocked, 0))
        return;
    until = atomic_load(&s->poll_until);
    if (until == INT64_MIN || when < until)
        mt_poll_break(s);
}

void mt_timer_arm_co(mt_sched *s, mt_coro *co, int64_t when)
{
    pthread_mutex_lock(&s->tlock);
    co->timer.fire = on_timer_dummy;
    co->timer_gen = co->gen;
    coro_timer_arm(&s->timers, &co->timer, when);
    publish_next(s);
    pthread_mutex_unlock(&s->tlock);
    timer_armed(s, when);
}

void mt_timer_disarm_co(mt_sched *s, mt_coro *co)
{
    /* Unlocked peek is safe: only this coroutine arms its timer, and a
     * fire that popped it is done with it once it dropped the lock. */
    pthread_mutex_lock(&s->tlock);
    if (coro_timer_armed(&co->timer)) {
        coro_timer_disarm(&s->timers, &co->timer);
        publish_next(s);
    }
    pthread_mutex_unlock(&s->tlock);
}

static void watch_timer_arm(mt_sched *s, mt_fdslot *sl, uint64_t gen, int64_t when)
{
    pthread_mutex_lock(&s->tlock);
    sl->watch_timer_gen = gen;
    coro_timer_arm(&s->timers, &sl->watch_timer, when);
    publish_next(s);
    pthread_mutex_unlock(&s->tlock);
    timer_armed(s, when);
}

static void watch_timer_disarm(mt_sched *s, mt_fdslot *sl)
{
    pthread_mutex_lock(&s->tlock);
    if (coro_timer_armed(&sl->watch_timer)) {
        coro_timer_disarm(&s->timers, &sl->watch_timer);
        publish_next(s);
    }
    pthread_mutex_unlock(&s->tlock);
}

static void watch_end(mt_sched *s)
{
    if (atomic_fetch_sub(&s->watches, 1) == 1)
        mt_maybe_done(s);
}

/* The watch of generation gen, if still pending, fires. */
static void watch_fire_gen(mt_sched *s, mt_fdslot *sl, uint64_t gen)
{
    coro_watch_fn *fn;
    void *arg;
    int result;

    pthread_mutex_lock(&sl->lock);
    if (!sl->watch || sl->watch_gen != gen) {
        pthread_mutex_unlock(&sl->lock);
        return;
    }
    fn = sl->watch;
    arg = sl->watch_arg;
    result = sl->watch_ready ? QT_OK : QT_TIMEOUT;
    sl->watch = NULL;
    sl->watch_gen++;
    pthread_mutex_unlock(&sl->lock);
    fn(sl->fd, result, arg);
    watch_end(s);                       /* after fn: it may spawn work */
}

/*
 * Coroutine deadlines wake under the heap lock (the coroutine unlinks
 * its timer under it before it can finish); watch deadlines fire after
 * it is dropped, since their function may arm timers again.
 */
void mt_timers_fire(mt_sched *s)
{
    mt_fdslot *due[FIRE_BATCH];
    uint64_t gens[FIRE_BATCH];
    unsigned nd = 0;
    coro_timer *t;
    int64_t now;

    if (pthread_mutex_trylock(&s->tlock) != 0)
        return;                         /* another worker is at it */
    now = coro_now_ms();
    while (nd < FIRE_BATCH && (t = coro_timer_pop_due(&s->timers, now)) != NULL) {
        if (t->fire == on_watch_timer) {
            mt_fdslot *sl = mt_container_of(t, mt_fdslot, watch_timer);

            due[nd] = sl;
            gens[nd++] = sl->watch_timer_gen;
        } else {
            mt_coro *co = mt_container_of(t, mt_coro, timer);

            mt_wake(co, co->timer_gen, QT_TIMEOUT);
        }
    }
    publish_next(s);
    pthread_mutex_unlock(&s->tlock);
    for (unsigned i = 0; i < nd; i++)
        watch_fire_gen(s, due[i], gens[i]);
}

/* ------------------------------------------------------------- waiting */

/* Why a wait cannot begin (QT_ERROR), QT_OK to return at once, or 1. */
static int wait_begin(mt_sched *s, mt_fdslot *sl, mt_coro *co, uint32_t want)
{
    if (want & slot_interest(sl))
        return QT_ERROR;                /* that direction has a waiter */
    if (sl->mode == CORO_FD_ET && (sl->latched & want)) {
        sl->latched &= ~want;           /* the edge we missed: try again */
        return QT_OK;
    }
    if (sl->mode != CORO_FD_ET && arm_oneshot(s, sl, want) != 0)
        return errno == EPERM ? QT_OK : QT_ERROR;   /* EPERM: regular file */
    if (want & EPOLLIN) {
        sl->reader = co;
        sl->reader_gen = co->gen;
    }
    if (want & EPOLLOUT) {
        sl->writer = co;
        sl->writer_gen = co->gen;
    }
    co->wait_fd = sl->fd;
    return 1;
}

int mt_wait_fd(int fd, short events, int64_t deadline_ms)
{
    mt_coro *co = mt_self();
    uint32_t want = ((events & POLLIN) ? EPOLLIN : 0) |
                    ((events & POLLOUT) ? EPOLLOUT : 0);
    mt_fdslot *sl;
    int rc;

    if (!co)
        return qt_poll_wait_fd(fd, events, deadline_ms);
    sl = slot_get(co->sched, fd);
    if (!sl || !want)
        return QT_ERROR;
    mt_park_prepare(co);
    pthread_mutex_lock(&sl->lock);
    rc = wait_begin(co->sched, sl, co, want);
    pthread_mutex_unlock(&sl->lock);
    if (rc != 1) {
        mt_park_cancel(co);
        return rc;
    }
    if (deadline_ms > 0)
        mt_timer_arm_co(co->sched, co, deadline_ms);
    return mt_park_commit(co);
}

void mt_poll_unlink(mt_sched *s, mt_coro *co)
{
    mt_fdslot *sl = slot_find(s, co->wait_fd);

    co->wait_fd = -1;
    if (!sl)
        return;
    pthread_mutex_lock(&sl->lock);
    if (sl->reader == co && sl->reader_gen == co->gen)
        sl->reader = NULL;
    if (sl->writer == co && sl->writer_gen == co->gen)
        sl->writer = NULL;
    pthread_mutex_unlock(&sl->lock);
}

/* ------------------------------------------------------------- watches */

static bool readable_now(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };

    return poll(&pfd, 1, 0) > 0;
}

int mt_watch_fd(mt_sched *s, int fd, int64_t deadline_ms,
                coro_watch_fn *fn, void *arg)
{
    mt_fdslot *sl = slot_get(s, fd);
    uint64_t gen;
    bool ready = false;

    if (!sl)
        return QT_ERROR;
    pthread_mutex_lock(&sl->lock);
    if ((slot_interest(sl) & EPOLLIN) ||
        (sl->mode != CORO_FD_ET && arm_oneshot(s, sl, EPOLLIN) != 0)) {
        pthread_mutex_unlock(&sl->lock);
        return QT_ERROR;
    }
    if (sl->mode == CORO_FD_ET && (sl->latched & EPOLLIN)) {
        sl->latched &= ~EPOLLIN;
        ready = readable_now(fd);
    }
    sl->watch = fn;
    sl->watch_arg = arg;
    sl->watch_ready = ready;
    gen = ++sl->watch_gen;
    atomic_fetch_add(&s->watches, 1);
    pthread_mutex_unlock(&sl->lock);
    /* Already readable: fire from the timer pass, never from in here. */
    if (ready)
        watch_timer_arm(s, sl, gen, 0);
    else if (deadline_ms > 0)
        watch_timer_arm(s, sl, gen, deadline_ms);
    return QT_OK;
}

/* Under sl->lock: ends the pending watch; true if there was one. */
static bool watch_cancel_locked(mt_fdslot *sl)
{
    if (!sl->watch)
        return false;
    sl->watch = NULL;
    sl->watch_ready = false;
    sl->watch_gen++;
    return true;
}

bool mt_unwatch_fd(mt_sched *s, int fd)
{
    mt_fdslot *sl = slot_find(s, fd);
    bool cancelled;

    if (!sl)
        return false;
    pthread_mutex_lock(&sl->lock);
    cancelled = watch_cancel_locked(sl);
    pthread_mutex_unlock(&sl->lock);
    if (cancelled) {
        watch_timer_disarm(s, sl);
        watch_end(s);
    }
    return cancelled;
}

void mt_fd_forget(mt_sched *s, int fd)
{
    mt_fdslot *sl = slot_find(s, fd);
    bool cancelled;

    if (!sl)
        return;
    pthread_mutex_lock(&sl->lock);
    cancelled = watch_cancel_locked(sl);
    /* Waiters on an fd about to be closed must not sleep forever. */
    if (sl->reader)
        mt_wake(sl->reader, sl->reader_gen, QT_ERROR);
    if (sl->writer)
        mt_wake(sl->writer, sl->writer_gen, QT_ERROR);
    sl->reader = sl->writer = NULL;
    if (sl->mode != CORO_FD_NONE)
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
    sl->mode = CORO_FD_NONE;
    sl->latched = 0;
    pthread_mutex_unlock(&sl->lock);
    if (cancelled) {
        watch_timer_disarm(s, sl);
        watch_end(s);
    }
}

/* ------------------------------------------------------------ dispatch */

/* Wakes the waiter of one direction; an edge nobody took is latched. */
static void wake_dir(mt_fdslot *sl, mt_coro **who, uint64_t gen, uint32_t dir)
{
    bool woke = *who && mt_wake(*who, gen, QT_OK);

    *who = NULL;
    if (!woke && sl->mode == CORO_FD_ET)
        sl->latched |= dir;
}

static void dispatch(mt_sched *s, mt_fdslot *sl, uint32_t ev)
{
    coro_watch_fn *fn = NULL;
    void *arg = NULL;

    pthread_mutex_lock(&sl->lock);
    if (ev & WRITE_EVENTS)
        wake_dir(sl, &sl->writer, sl->writer_gen, EPOLLOUT);
    if (ev & READ_EVENTS) {
        if (!sl->reader && sl->watch) {
            fn = sl->watch;
            arg = sl->watch_arg;
            watch_cancel_locked(sl);
        } else {
            wake_dir(sl, &sl->reader, sl->reader_gen, EPOLLIN);
        }
    }
    if (sl->mode == CORO_FD_ONESHOT && slot_interest(sl))
        arm_oneshot(s, sl, 0);
    pthread_mutex_unlock(&sl->lock);
    if (fn) {
        watch_timer_disarm(s, sl);
        fn(sl->fd, QT_OK, arg);         /* last: it may close the fd */
        watch_end(s);
    }
}

static void drain_wakeups(int evfd)
{
    uint64_t n;
    ssize_t rc = read(evfd, &n, sizeof n);

    (void)rc;
}

void mt_poll(mt_sched *s, int timeout_ms)
{
    struct epoll_event evs[MAX_EVENTS];
    int n;

    if (s->opts.poll_sigmask)
        n = epoll_pwait(s->epfd, evs, MAX_EVENTS, timeout_ms, s->opts.poll_sigmask);
    else
        n = epoll_wait(s->epfd, evs, MAX_EVENTS, timeout_ms);
    /* Awake now: timers armed by what we dispatch need no eventfd break. */
    atomic_store(&s->poll_blocked, 0);
    /* Only the one poller writes it: no read-modify-write needed. */
    atomic_store_explicit(&s->polls, atomic_load_explicit(&s->polls, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        mt_fdslot *sl;

        if (fd == s->evfd) {
            drain_wakeups(fd);
            continue;
        }
        if ((sl = slot_find(s, fd)) != NULL)
            dispatch(s, sl, evs[i].events);
    }
    if (s->opts.tick)
        s->opts.tick(s, s->opts.tick_arg);
}

/* -------------------------------------------------------- blocking pool */

static void *blocking_main(void *arg)
{
    mt_sched *s = arg;

    pthread_mutex_lock(&s->block_lock);
    for (;;) {
        mt_job *j;
        mt_coro *co;
        uint64_t gen;

        while (!s->jhead && !s->bstop) {
            s->bidle++;
            pthread_cond_wait(&s->block_cond, &s->block_lock);
            s->bidle--;
        }
        if (!s->jhead)
            break;
        j = s->jhead;
        s->jhead = j->next;
        if (!s->jhead)
            s->jtail = NULL;
        pthread_mutex_unlock(&s->block_lock);
        co = j->co;
        gen = j->gen;
        j->fn(j->arg);
        mt_wake(co, gen, QT_OK);        /* j lived on co's stack: done with it */
        pthread_mutex_lock(&s->block_lock);
    }
    pthread_mutex_unlock(&s->block_lock);
    return NULL;
}

/* Under block_lock: a thread for the new job unless one is idle. */
static bool blocking_thread_for_job(mt_sched *s)
{
    unsigned max = s->opts.blocking_max ? s->opts.blocking_max : BLOCKING_DEFAULT;
    sigset_t all, old;
    int rc;

    if (s->bidle > 0 || s->bthreads >= max ||
        s->bthreads >= sizeof s->bthread / sizeof s->bthread[0])
        return s->bthreads > 0;
    /* Pool threads take no signals: those are the workers' business. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = pthread_create(&s->bthread[s->bthreads], NULL, blocking_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        s->bthreads++;
    return s->bthreads > 0;
}

void mt_run_blocking(void (*fn)(void *), void *arg)
{
    mt_coro *co = mt_self();
    mt_sched *s;
    mt_job job = { .fn = fn, .arg = arg, .co = co };

    if (!co) {
        fn(arg);
        return;
    }
    s = co->sched;
    job.gen = mt_park_prepare(co);
    pthread_mutex_lock(&s->block_lock);
    if (!blocking_thread_for_job(s)) {
        pthread_mutex_unlock(&s->block_lock);
        mt_park_cancel(co);
        fn(arg);                        /* no thread at all: inline */
        return;
    }
    if (s->jtail)
        s->jtail->next = &job;
    else
        s->jhead = &job;
    s->jtail = &job;
    pthread_cond_signal(&s->block_cond);
    pthread_mutex_unlock(&s->block_lock);
    mt_park_commit(co);
}

void mt_blocking_free(mt_sched *s)
{
    pthread_mutex_lock(&s->block_lock);
    s->bstop = true;
    pthread_cond_broadcast(&s->block_cond);
    pthread_mutex_unlock(&s->block_lock);
    for (unsigned i = 0; i < s->bthreads; i++)
        pthread_join(s->bthread[i], NULL);
    s->bthreads = 0;
    pthread_mutex_destroy(&s->block_lock);
    pthread_cond_destroy(&s->block_cond);
}
