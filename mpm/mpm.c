/*
 * The MPM dispatch: the core waits through whichever MPM runs this process.
 *
 * Unit tests and one-off tools run with no MPM at all (qt_active_mpm NULL),
 * so each entry point falls back to plain blocking calls.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* accept4, pipe2, ppoll */
#endif
#include <errno.h>
#include <poll.h>
#include <time.h>

#include "mpm.h"

const qt_mpm *qt_active_mpm;

int64_t qt_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t qt_coarse_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t qt_deadline_after(int64_t ms)
{
    return qt_coarse_now_ms() + ms;
}

/* Milliseconds poll() may sleep before the deadline; -1 = forever. */
static int poll_timeout(int64_t deadline_ms)
{
    int64_t left;

    if (deadline_ms <= 0)
        return -1;
    left = deadline_ms - qt_now_ms();
    if (left < 0)
        return 0;
    return left > 60000 ? 60000 : (int)left;
}

int qt_poll_wait_fd(int fd, short events, int64_t deadline_ms)
{
    struct pollfd pfd = { .fd = fd, .events = events };

    for (;;) {
        int timeout = poll_timeout(deadline_ms);
        int n = poll(&pfd, 1, timeout);

        if (n > 0)
            return QT_OK;   /* POLLERR/POLLHUP too: the next syscall reports it */
        if (n < 0 && errno != EINTR)
            return QT_ERROR;
        /* A signal or a capped timeout: only the deadline ends the wait. */
        if (deadline_ms > 0 && qt_now_ms() >= deadline_ms)
            return QT_TIMEOUT;
    }
}

void qt_poll_sleep_ms(int64_t ms)
{
    struct timespec ts;

    if (ms <= 0)
        return;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000;
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int qt_wait_fd(int fd, short events, int64_t deadline_ms)
{
    if (qt_active_mpm && qt_active_mpm->wait_fd)
        return qt_active_mpm->wait_fd(fd, events, deadline_ms);
    return qt_poll_wait_fd(fd, events, deadline_ms);
}

void qt_sleep_ms(int64_t ms)
{
    if (qt_active_mpm && qt_active_mpm->sleep_ms)
        qt_active_mpm->sleep_ms(ms);
    else
        qt_poll_sleep_ms(ms);
}

void qt_run_blocking(void (*fn)(void *), void *arg)
{
    if (qt_active_mpm && qt_active_mpm->run_blocking)
        qt_active_mpm->run_blocking(fn, arg);
    else
        fn(arg);
}
