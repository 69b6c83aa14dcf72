/*
 * The I/O interface: blocking-style calls over non-blocking sockets.
 *
 * Each call first tries the operation; only when the kernel says EAGAIN does
 * it wait, through the running MPM (poll for the blocking MPMs, a parked
 * coroutine for event and hybrid).  errno is read right after each syscall
 * and never kept across a wait: under hybrid the wait may resume on another
 * thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "conn.h"
#include "mpm.h"

/* ------------------------------------------------------- plain TCP */

#define RETRY (-1000)   /* interrupted by a signal: call again */

/*
 * The one place a socket call's result becomes the transport vocabulary:
 * bytes, QT_AGAIN with c->want set, QT_ERROR, or RETRY.  errno is read
 * here, right after the call.
 */
static ssize_t tcp_result(qt_conn *c, ssize_t r, short want)
{
    if (r >= 0)
        return r;
    int e = errno;
    if (e == EINTR)
        return RETRY;
    if (e == EAGAIN || e == EWOULDBLOCK) {
        c->want = want;
        return QT_AGAIN;
    }
    return QT_ERROR;
}

static ssize_t tcp_recv(qt_conn *c, void *buf, size_t n)
{
    ssize_t r;
    do
        r = tcp_result(c, recv(c->fd, buf, n, MSG_DONTWAIT), POLLIN);
    while (r == RETRY);
    return r;
}

static ssize_t tcp_send(qt_conn *c, const struct iovec *iov, int iovcnt)
{
    struct msghdr mh = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
    ssize_t r;
    do
        r = tcp_result(c, sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT), POLLOUT);
    while (r == RETRY);
    return r;
}

static ssize_t tcp_sendfile(qt_conn *c, int fd, off_t *off, size_t n)
{
    ssize_t r;
    do
        r = tcp_result(c, sendfile(c->fd, fd, off, n), POLLOUT);
    while (r == RETRY);
    return r;
}

const qt_transport qt_tcp_transport = {
    .name = "tcp",
    .recv = tcp_recv,
    .send = tcp_send,
    .sendfile = tcp_sendfile,
};

/* ------------------------------------------ blocking keep-alive waits */

/*
 * Under fork, prefork and worker a connection has a process or thread to
 * itself, so its keep-alive wait may sleep inside recv(): one syscall per
 * request where poll() then recv() takes two.  For that the socket itself
 * turns blocking (O_NONBLOCK off, SO_RCVTIMEO = KeepAliveTimeout).  Which
 * transport a connection has says which mode its socket is in, so nothing
 * else needs to know: tcp_recv() and tcp_send() pass MSG_DONTWAIT, so every
 * call the core makes stays non-blocking in either mode, and sendfile(),
 * which has no such flag, turns the socket back to non-blocking first.
 */

#define TIMEO_SLACK_MS 10       /* a blocking recv may end this much late */

static const qt_transport tcp_blocking_transport;
static const qt_transport tcp_unblocked_transport;

static int set_nonblocking(int fd, bool on)
{
    return fcntl(fd, F_SETFL, on ? O_NONBLOCK : 0);
}

static ssize_t tcpb_sendfile(qt_conn *c, int fd, off_t *off, size_t n)
{
    if (set_nonblocking(c->fd, true) < 0)
        return QT_ERROR;
    c->transport = &tcp_unblocked_transport;
    return tcp_sendfile(c, fd, off, n);
}

/* Blocking socket: only the keep-alive wait blocks. */
static const qt_transport tcp_blocking_transport = {
    .name = "tcp",
    .recv = tcp_recv,
    .send = tcp_send,
    .sendfile = tcpb_sendfile,
};

/* Non-blocking again after a sendfile; SO_RCVTIMEO is already set. */
static const qt_transport tcp_unblocked_transport = {
    .name = "tcp",
    .recv = tcp_recv,
    .send = tcp_send,
    .sendfile = tcp_sendfile,
};

/* The connection's keep-alive timeout, the one SO_RCVTIMEO holds. */
static int64_t blocking_timeo_ms(const qt_conn *c)
{
    return c->cfg->main->keep_alive_timeout_ms;
}

/* Puts a plain TCP socket in blocking mode; false: wait with poll(). */
static bool make_blocking(qt_conn *c)
{
    int64_t ms = blocking_timeo_ms(c);

    if (c->transport == &tcp_blocking_transport)
        return true;
    if (c->transport == &qt_tcp_transport) {
        /* SO_RCVTIMEO 0 would mean forever. */
        struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = ms % 1000 * 1000 };
        if (ms <= 0 || setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
            return false;
    } else if (c->transport != &tcp_unblocked_transport) {
        return false;              /* TLS and other transports poll */
    }
    if (set_nonblocking(c->fd, false) < 0)
        return false;
    c->transport = &tcp_blocking_transport;
    return true;
}

void qt_conn_unblock(qt_conn *c)
{
    if (c->transport == &tcp_blocking_transport && set_nonblocking(c->fd, true) == 0)
        c->transport = &tcp_unblocked_transport;
}

/* One read of the wait: blocking when SO_RCVTIMEO ends it in time. */
static ssize_t wait_read(qt_conn *c, void *buf, size_t n, int64_t deadline)
{
    int64_t left = deadline - qt_now_ms();

    if (left <= 0)
        return QT_TIMEOUT;
    if (left + TIMEO_SLACK_MS >= blocking_timeo_ms(c))
        return recv(c->fd, buf, n, 0);
    int rc = qt_wait_fd(c->fd, POLLIN, deadline);
    if (rc != QT_OK)
        return rc;
    return recv(c->fd, buf, n, MSG_DONTWAIT);
}

int qt_conn_wait_request(qt_conn *c, int64_t deadline)
{
    if (!make_blocking(c))
        return qt_wait_fd(c->fd, POLLIN, deadline);
    qt_buf_reserve(&c->in, QT_READ_CHUNK);
    for (;;) {
        ssize_t r = wait_read(c, c->in.data + c->in.len, c->in.cap - c->in.len, deadline);
        if (r > 0) {
            c->in.len += (size_t)r;
            return QT_OK;
        }
        if (r == 0)
            return QT_CLOSED;
        if (r != -1)
            return (int)r;         /* the deadline passed */
        int e = errno;
        /* EAGAIN: SO_RCVTIMEO expired, EINTR: a signal; the deadline decides. */
        if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR) {
            c->aborted = true;
            return QT_ERROR;
        }
    }
}

/* ------------------------------------------------ connection calls */

static int wait_conn(qt_conn *c, int64_t deadline)
{
    int rc = qt_wait_fd(c->fd, c->want, deadline);
    if (rc != QT_OK)
        c->aborted = true;
    return rc;
}

ssize_t qt_conn_read(qt_conn *c, void *buf, size_t n, int64_t deadline)
{
    for (;;) {
        ssize_t r = c->transport->recv(c, buf, n);
        if (r != QT_AGAIN) {
            if (r < 0)
                c->aborted = true;
            c->read_full = r == (ssize_t)n;
            return r;
        }
        int rc = wait_conn(c, deadline);
        if (rc != QT_OK)
            return rc;
    }
}

int qt_conn_writev(qt_conn *c, struct iovec *iov, int iovcnt, int64_t deadline)
{
    while (iovcnt > 0) {
        if (iov->iov_len == 0) {
            iov++;
            iovcnt--;
            continue;
        }
        ssize_t r = c->transport->send(c, iov, iovcnt > IOV_MAX ? IOV_MAX : iovcnt);
        if (r == QT_AGAIN) {
            int rc = wait_conn(c, deadline);
            if (rc != QT_OK)
                return rc;
            continue;
        }
        if (r < 0) {
            c->aborted = true;
            return QT_ERROR;
        }
        size_t done = (size_t)r;
        while (iovcnt > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return QT_OK;
}

int qt_conn_write(qt_conn *c, const void *buf, size_t n, int64_t deadline)
{
    struct iovec iov = { (void *)buf, n };
    return qt_conn_writev(c, &iov, 1, deadline);
}

/* Fallback for transports without sendfile (TLS without kTLS). */
static int copy_file(qt_conn *c, int fd, off_t off, uint64_t n, int64_t deadline)
{
    char buf[16384];
    while (n > 0) {
        size_t want = n < sizeof(buf) ? (size_t)n : sizeof(buf);
        ssize_t r = pread(fd, buf, want, off);
        if (r <= 0)
            return QT_ERROR;   /* file shrank under us: the length is a lie now */
        int rc = qt_conn_write(c, buf, (size_t)r, deadline);
        if (rc != QT_OK)
            return rc;
        off += r;
        n -= (uint64_t)r;
    }
    return QT_OK;
}

int qt_conn_sendfile(qt_conn *c, int fd, off_t off, uint64_t n, int64_t deadline)
{
    if (!c->transport->sendfile)
        return copy_file(c, fd, off, n, deadline);
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t r = c->transport->sendfile(c, fd, &off, chunk);
        if (r == QT_AGAIN) {
            int rc = wait_conn(c, deadline);
            if (rc != QT_OK)
                return rc;
            continue;
        }
        if (r <= 0) {
            c->aborted = true;
            return QT_ERROR;
        }
        n -= (uint64_t)r;
    }
    return QT_OK;
}

/* ------------------------------------------------ plain fds (pipes, backends) */

ssize_t qt_fd_read(int fd, void *buf, size_t n, int64_t deadline)
{
    for (;;) {
        ssize_t r = read(fd, buf, n);
        if (r >= 0)
            return r;
        int e = errno;
        if (e == EINTR)
            continue;
        if (e != EAGAIN && e != EWOULDBLOCK)
            return QT_ERROR;
        int rc = qt_wait_fd(fd, POLLIN, deadline);
        if (rc != QT_OK)
            return rc;
    }
}

int qt_fd_write(int fd, const void *buf, size_t n, int64_t deadline)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r >= 0) {
            p += r;
            n -= (size_t)r;
            continue;
        }
        int e = errno;
        if (e == EINTR)
            continue;
        if (e != EAGAIN && e != EWOULDBLOCK)
            return QT_ERROR;
        int rc = qt_wait_fd(fd, POLLOUT, deadline);
        if (rc != QT_OK)
            return rc;
    }
    return QT_OK;
}

/* Connects to a numeric host (no DNS: name lookups would block the loop). */
int qt_tcp_connect(const char *host, int port, int64_t deadline)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
    struct addrinfo *ai = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    if (getaddrinfo(host, portstr, &hints, &ai) != 0)
        return QT_ERROR;
    int rc = QT_ERROR;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto out;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        goto connected;
    if (errno != EINPROGRESS)
        goto fail;
    rc = qt_wait_fd(fd, POLLOUT, deadline);
    if (rc != QT_OK)
        goto fail;
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr != 0) {
        rc = QT_ERROR;
        goto fail;
    }
connected:
    freeaddrinfo(ai);
    return fd;
fail:
    close(fd);
out:
    freeaddrinfo(ai);
    return rc;
}
