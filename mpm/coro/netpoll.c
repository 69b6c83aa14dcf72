/* The netpoller: epoll, per-fd waiter slots, bare-fd watches (see coro.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "coro_int.h"
#include "module.h"
#include "pool.h"

#define ET_EVENTS    (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)
/* EPOLLEXCLUSIVE takes no EPOLLRDHUP; a listening socket needs only IN. */
#define EXCL_EVENTS  (EPOLLIN | EPOLLET | EPOLLEXCLUSIVE)
#define READ_EVENTS  (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)
#define WRITE_EVENTS (EPOLLOUT | EPOLLHUP | EPOLLERR)
#define MAX_EVENTS   256

_Static_assert((EPOLLIN | EPOLLOUT) <= UINT8_MAX, "latched edges fit a byte");

void coro_poller_init(coro_poller *p)
{
    struct epoll_event ev = { .events = EPOLLIN };

    memset(p, 0, sizeof *p);
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ev.data.fd = p->evfd;
    if (p->epfd < 0 || p->evfd < 0 ||
        epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->evfd, &ev) != 0) {
        /* Like running out of memory: no loop can exist without them. */
        fprintf(stderr, "quintet: cannot create the event loop: %s\n",
                strerror(errno));
        abort();
    }
}

void coro_poller_free(coro_poller *p)
{
    for (size_t i = 0; i < p->nchunks; i++)
        free(p->chunks[i]);
    free(p->chunks);
    close(p->evfd);
    close(p->epfd);
}

/* ---------------------------------------------------------------- slots */

static void on_watch_timer(coro_sched *s, coro_timer *t);

static coro_fdslot *slot_find(const coro_poller *p, int fd)
{
    size_t c;

    if (fd < 0)
        return NULL;
    c = (size_t)fd / CORO_SLOT_CHUNK;
    return c < p->nchunks && p->chunks[c] ? &p->chunks[c][fd % CORO_SLOT_CHUNK] : NULL;
}

static coro_fdslot *chunk_new(size_t c)
{
    coro_fdslot *chunk = qt_xcalloc(CORO_SLOT_CHUNK, sizeof *chunk);

    for (unsigned i = 0; i < CORO_SLOT_CHUNK; i++) {
        chunk[i].fd = (int)(c * CORO_SLOT_CHUNK + i);
        coro_timer_init(&chunk[i].watch_timer, on_watch_timer);
    }
    return chunk;
}

static coro_fdslot *slot_get(coro_poller *p, int fd)
{
    size_t c;

    if (fd < 0)
        return NULL;
    c = (size_t)fd / CORO_SLOT_CHUNK;
    if (c >= p->nchunks) {
        size_t n = p->nchunks ? p->nchunks : 4;

        while (n <= c)
            n *= 2;
        p->chunks = qt_xrealloc(p->chunks, n * sizeof *p->chunks);
        memset(p->chunks + p->nchunks, 0, (n - p->nchunks) * sizeof *p->chunks);
        p->nchunks = n;
    }
    if (!p->chunks[c])
        p->chunks[c] = chunk_new(c);
    return &p->chunks[c][fd % CORO_SLOT_CHUNK];
}

/* Directions somebody waits for on this fd, as epoll bits. */
static uint32_t slot_interest(const coro_fdslot *sl)
{
    return (sl->reader || sl->watch ? EPOLLIN : 0) | (sl->writer ? EPOLLOUT : 0);
}

/* ADD, or MOD when it is (or may still be) in the set; -1 with errno. */
static int ctl_set(coro_poller *p, coro_fdslot *sl, uint32_t events)
{
    struct epoll_event ev = { .events = events };

    ev.data.fd = sl->fd;
    if (sl->mode != CORO_FD_NONE &&
        epoll_ctl(p->epfd, EPOLL_CTL_MOD, sl->fd, &ev) == 0)
        return 0;
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, sl->fd, &ev) == 0)
        return 0;
    if (errno != EEXIST)
        return -1;
    /* Registered behind our back (fd reused): start over. */
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, sl->fd, NULL);
    return epoll_ctl(p->epfd, EPOLL_CTL_ADD, sl->fd, &ev);
}

/* Arms an unregistered fd for one event in the directions waited for. */
static int arm_oneshot(coro_poller *p, coro_fdslot *sl, uint32_t want)
{
    if (ctl_set(p, sl, want | slot_interest(sl) | EPOLLRDHUP | EPOLLONESHOT) != 0)
        return -1;
    sl->mode = CORO_FD_ONESHOT;
    return 0;
}

/* ----------------------------------------------------------- register */

int coro_fd_register(int fd, unsigned flags)
{
    coro_sched *s = coro_sched_current();
    coro_fdslot *sl = s ? slot_get(&s->poll, fd) : NULL;
    uint32_t events = (flags & CORO_FD_EXCLUSIVE) ? EXCL_EVENTS : ET_EVENTS;

    if (!sl)
        return QT_ERROR;
    if (sl->mode == CORO_FD_ET)
        return QT_OK;
    if (ctl_set(&s->poll, sl, events) != 0)
        return QT_ERROR;
    sl->mode = CORO_FD_ET;
    sl->latched = 0;
    return QT_OK;
}

static void watch_cancel(coro_sched *s, coro_fdslot *sl)
{
    if (!sl->watch)
        return;
    sl->watch = NULL;
    sl->watch_ready = false;
    coro_timer_disarm(&s->timers, &sl->watch_timer);
    s->watches--;
}

void coro_fd_forget(int fd)
{
    coro_sched *s = coro_sched_current();
    coro_fdslot *sl = s ? slot_find(&s->poll, fd) : NULL;

    if (!sl)
        return;
    watch_cancel(s, sl);
    /* Waiters on an fd about to be closed must not sleep forever. */
    if (sl->reader)
        coro_wake(sl->reader, QT_ERROR);
    if (sl->writer)
        coro_wake(sl->writer, QT_ERROR);
    if (sl->mode != CORO_FD_NONE)
        epoll_ctl(s->poll.epfd, EPOLL_CTL_DEL, fd, NULL);
    sl->mode = CORO_FD_NONE;
    sl->latched = 0;
}

/* ------------------------------------------------------------- waiting */

/* Off coroutines there is nothing to switch to: block the thread. */
static int poll_blocking(int fd, short events, int64_t deadline_ms)
{
    struct pollfd pfd = { .fd = fd, .events = events };

    for (;;) {
        int timeout = -1, rc;

        if (deadline_ms > 0) {
            int64_t left = deadline_ms - coro_now_ms();

            if (left <= 0)
                return QT_TIMEOUT;
            timeout = left > INT_MAX ? INT_MAX : (int)left;
        }
        rc = poll(&pfd, 1, timeout);
        if (rc > 0)
            return (pfd.revents & POLLNVAL) ? QT_ERROR : QT_OK;
        if (rc < 0 && errno != EINTR)
            return QT_ERROR;
    }
}

int coro_wait_fd(int fd, short events, int64_t deadline_ms)
{
    coro_sched *s = coro_sched_current();
    coro *co = s ? s->current : NULL;
    uint32_t want = ((events & POLLIN) ? EPOLLIN : 0) |
                    ((events & POLLOUT) ? EPOLLOUT : 0);
    coro_fdslot *sl;

    if (!co)
        return poll_blocking(fd, events, deadline_ms);
    sl = slot_get(&s->poll, fd);
    if (!sl || !want || (want & slot_interest(sl)))
        return QT_ERROR;
    if (sl->mode == CORO_FD_ET && (sl->latched & want)) {
        sl->latched &= ~want;           /* the edge we missed: try again */
        return QT_OK;
    }
    if (sl->mode != CORO_FD_ET && arm_oneshot(&s->poll, sl, want) != 0)
        /* EPERM: a regular file, which poll() also calls always ready. */
        return errno == EPERM ? QT_OK : QT_ERROR;
    if (want & EPOLLIN)
        sl->reader = co;
    if (want & EPOLLOUT)
        sl->writer = co;
    co->wait_fd = fd;
    return coro_park_self(s, deadline_ms);
}

void coro_poller_unlink(coro_sched *s, coro *co)
{
    coro_fdslot *sl = slot_find(&s->poll, co->wait_fd);

    co->wait_fd = -1;
    if (!sl)
        return;
    if (sl->reader == co)
        sl->reader = NULL;
    if (sl->writer == co)
        sl->writer = NULL;
}

/* ------------------------------------------------------------- watches */

static void watch_fire(coro_sched *s, coro_fdslot *sl, int result)
{
    coro_watch_fn *fn = sl->watch;
    void *arg = sl->watch_arg;

    watch_cancel(s, sl);
    fn(sl->fd, result, arg);
}

static void on_watch_timer(coro_sched *s, coro_timer *t)
{
    coro_fdslot *sl = container_of(t, coro_fdslot, watch_timer);

    watch_fire(s, sl, sl->watch_ready ? QT_OK : QT_TIMEOUT);
}

/* A latched edge may be stale (the bytes were read since): ask the kernel. */
static bool readable_now(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };

    return poll(&pfd, 1, 0) > 0;
}

int coro_watch_fd(int fd, int64_t deadline_ms, coro_watch_fn *fn, void *arg)
{
    coro_sched *s = coro_sched_current();
    coro_fdslot *sl = s ? slot_get(&s->poll, fd) : NULL;

    if (!sl || (slot_interest(sl) & EPOLLIN))
        return QT_ERROR;
    sl->watch_ready = false;
    if (sl->mode == CORO_FD_ET && (sl->latched & EPOLLIN)) {
        sl->latched &= ~EPOLLIN;
        sl->watch_ready = readable_now(fd);
    }
    if (sl->mode != CORO_FD_ET && arm_oneshot(&s->poll, sl, EPOLLIN) != 0)
        return QT_ERROR;
    sl->watch = fn;
    sl->watch_arg = arg;
    s->watches++;
    /* Already readable: fire from the timer pass, never from in here. */
    if (sl->watch_ready)
        coro_timer_arm(&s->timers, &sl->watch_timer, 0);
    else if (deadline_ms > 0)
        coro_timer_arm(&s->timers, &sl->watch_timer, deadline_ms);
    return QT_OK;
}

void coro_unwatch_fd(int fd)
{
    coro_sched *s = coro_sched_current();
    coro_fdslot *sl = s ? slot_find(&s->poll, fd) : NULL;

    if (sl)
        watch_cancel(s, sl);
}

/* ------------------------------------------------------------ dispatch */

static void dispatch(coro_sched *s, coro_fdslot *sl, uint32_t ev)
{
    bool et = sl->mode == CORO_FD_ET;

    if (ev & WRITE_EVENTS) {
        if (sl->writer)
            coro_wake(sl->writer, QT_OK);
        else if (et)
            sl->latched |= EPOLLOUT;
    }
    if (ev & READ_EVENTS) {
        if (sl->reader)
            coro_wake(sl->reader, QT_OK);
        else if (sl->watch)
            watch_fire(s, sl, QT_OK);   /* last: it may close the fd */
        else if (et)
            sl->latched |= EPOLLIN;
    }
    /* A one-shot fired for one direction; re-arm for whoever still waits. */
    if (sl->mode == CORO_FD_ONESHOT && slot_interest(sl))
        arm_oneshot(&s->poll, sl, 0);
}

static void drain_wakeups(int evfd)
{
    uint64_t n;
    ssize_t rc = read(evfd, &n, sizeof n);

    (void)rc;                           /* EAGAIN: already drained */
}

void coro_poller_poll(coro_sched *s, int timeout_ms)
{
    struct epoll_event evs[MAX_EVENTS];
    int n;

    if (s->opts.poll_sigmask)
        n = epoll_pwait(s->poll.epfd, evs, MAX_EVENTS, timeout_ms,
                        s->opts.poll_sigmask);
    else
        n = epoll_wait(s->poll.epfd, evs, MAX_EVENTS, timeout_ms);
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        coro_fdslot *sl;

        if (fd == s->poll.evfd) {
            drain_wakeups(fd);
            continue;
        }
        sl = slot_find(&s->poll, fd);
        if (sl)
            dispatch(s, sl, evs[i].events);
    }
}
