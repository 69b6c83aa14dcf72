/*
 * burst: a load client fast enough for the 10,000-coroutine test (Python
 * alone needs more CPU for 10,000 requests than the sleep they measure).
 *
 *   burst PORT COUNT PATH TIMEOUT_S
 *
 * Opens COUNT keep-alive connections to 127.0.0.1:PORT, then sends one
 * GET PATH on every one of them at once and reads every response.  Prints
 * one line:
 *   conns=N replies=N ok=N send_ms=T after_send_ms=T wall_ms=T
 * (ok: replies with status 200; after_send_ms: from the last request sent
 * to the last reply).  Exit 0 when every connection got a complete reply,
 * 1 otherwise, 2 on a usage or setup error.  Every wait is bounded by
 * TIMEOUT_S.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE           /* memmem */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_BATCH 1000      /* below the server's listen backlog */
#define REPLY_MAX 2048          /* a lab reply is a head and a short body */
#define MAX_EVENTS 512

typedef struct client {
    int fd;
    size_t len;
    bool done;
    char buf[REPLY_MAX];
} client;

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static bool raise_nofile(unsigned want)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return false;
    if (rl.rlim_cur >= want)
        return true;
    rl.rlim_cur = want <= rl.rlim_max ? want : rl.rlim_max;
    return setrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur >= want;
}

static int open_one(int ep, const struct sockaddr_in *sa, client *c)
{
    struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };

    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    if (connect(c->fd, (const struct sockaddr *)sa, sizeof *sa) != 0 &&
        errno != EINPROGRESS)
        return -1;
    return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* Connects clients [from, to) and waits until every one is writable. */
static bool connect_batch(int ep, const struct sockaddr_in *sa, client *cl,
                          unsigned from, unsigned to, double deadline)
{
    struct epoll_event evs[MAX_EVENTS];
    unsigned left = to - from;

    for (unsigned i = from; i < to; i++)
        if (open_one(ep, sa, &cl[i]) != 0) {
            perror("burst: connect");
            return false;
        }
    while (left > 0 && now_ms() < deadline) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, 100);

        for (int i = 0; i < n; i++) {
            client *c = evs[i].data.ptr;
            int err = 0;
            socklen_t len = sizeof err;

            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err != 0) {
                fprintf(stderr, "burst: connect: %s\n", strerror(err));
                return false;
            }
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            left--;
        }
    }
    return left == 0;
}

/* A complete reply: a head and Content-Length bytes of body. */
static bool reply_complete(const client *c)
{
    const char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    const char *cl;
    size_t body;

    if (!end)
        return false;
    body = c->len - (size_t)(end + 4 - c->buf);
    cl = memmem(c->buf, (size_t)(end - c->buf), "\r\nContent-Length:", 17);
    if (!cl)
        return true;                    /* no body announced */
    return body >= strtoul(cl + 17, NULL, 10);
}

/* Reads what c's socket holds; true once the reply is complete or ended. */
static bool read_reply(client *c)
{
    for (;;) {
        ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);

        if (n > 0) {
            c->len += (size_t)n;
            c->buf[c->len] = '\0';
            if (reply_complete(c) || c->len == sizeof c->buf - 1)
                return true;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return false;
        return true;                    /* EOF or error: counted as it is */
    }
}

static unsigned collect(int ep, unsigned count, double deadline,
                        double *last_reply)
{
    struct epoll_event evs[MAX_EVENTS];
    unsigned replies = 0;

    while (replies < count && now_ms() < deadline) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, 100);

        for (int i = 0; i < n; i++) {
            client *c = evs[i].data.ptr;

            if (c->done || !read_reply(c))
                continue;
            c->done = true;
            replies++;
            *last_reply = now_ms();
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        }
    }
    return replies;
}

static bool send_all(int ep, client *cl, unsigned count, const char *req)
{
    size_t len = strlen(req);

    for (unsigned i = 0; i < count; i++) {
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &cl[i] };

        if (write(cl[i].fd, req, len) != (ssize_t)len ||
            epoll_ctl(ep, EPOLL_CTL_ADD, cl[i].fd, &ev) != 0) {
            perror("burst: send");
            return false;
        }
    }
    return true;
}

static unsigned count_ok(const client *cl, unsigned count)
{
    unsigned ok = 0;

    for (unsigned i = 0; i < count; i++)
        ok += cl[i].done && strncmp(cl[i].buf, "HTTP/1.1 200 ", 13) == 0;
    return ok;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    char req[1024];
    unsigned count, replies = 0;
    double deadline, t0, t_sent, last = 0;
    client *cl = NULL;
    int ep = -1, rc = 2;

    if (argc != 5 || (count = (unsigned)strtoul(argv[2], NULL, 10)) == 0) {
        fprintf(stderr, "usage: burst PORT COUNT PATH TIMEOUT_S\n");
        return 2;
    }
    sa.sin_port = htons((unsigned short)atoi(argv[1]));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    deadline = now_ms() + atof(argv[4]) * 1e3;
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", argv[3]);
    if (!raise_nofile(count + 64)) {
        fprintf(stderr, "burst: RLIMIT_NOFILE too low for %u connections\n", count);
        goto cleanup;
    }
    cl = calloc(count, sizeof *cl);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (!cl || ep < 0)
        goto cleanup;
    for (unsigned i = 0; i < count; i++)
        cl[i].fd = -1;
    for (unsigned i = 0; i < count; i += CONNECT_BATCH) {
        unsigned to = count - i < CONNECT_BATCH ? count : i + CONNECT_BATCH;

        if (!connect_batch(ep, &sa, cl, i, to, deadline))
            goto cleanup;
    }
    t0 = now_ms();
    if (!send_all(ep, cl, count, req))
        goto cleanup;
    t_sent = now_ms();
    replies = collect(ep, count, deadline, &last);
    printf("conns=%u replies=%u ok=%u send_ms=%.1f after_send_ms=%.1f wall_ms=%.1f\n",
           count, replies, count_ok(cl, count), t_sent - t0,
           replies ? last - t_sent : -1.0, replies ? last - t0 : -1.0);
    rc = replies == count ? 0 : 1;
cleanup:
    if (cl)
        for (unsigned i = 0; i < count; i++)
            if (cl[i].fd >= 0)
                close(cl[i].fd);
    free(cl);
    if (ep >= 0)
        close(ep);
    return rc;
}
