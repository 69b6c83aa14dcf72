/*
 * fork: one process per connection, the cgi-bin era model.
 *
 * The master itself polls the listening sockets; for each connection it
 * accepts, it forks a child that serves that one connection (keep-alive
 * included) and exits.  At MaxRequestWorkers live children the master stops
 * polling the listeners, so further clients wait in the kernel's backlog
 * until a child exits.  SIGCHLD wakes the master through the signal pipe
 * and every exited child is reaped at once: there are never zombies.
 * Signals, reloads and reaping are mpm/supervisor.c's; accepting is the
 * master's wait there.
 *
 * What this model costs is visible in the benchmarks: a fork() and an
 * exit() per connection, and one whole process per concurrent client.
 *
 * Overload.  At the limit, keep-alive clients would hold every process
 * while the backlog waits forever; so while the server is full and clients
 * are waiting, each child closes its connection after the response in
 * progress (the scoreboard's no_keepalive flag), and the waiting clients
 * get their turn in accept order.
 *
 * A fork costs milliseconds, so the master also decides who is worth one.
 * A client that closed or reset its connection without sending anything
 * gets none: there is nothing to answer and nobody to answer.  A client
 * that sent something and then closed its side may be a half-closing
 * client waiting for its response, or one that gave up (wrk restarting, a
 * browser leaving): it gets a process, unless more clients wait behind it
 * than the free processes or one round of the master can take.  And the
 * master accepts at most ACCEPTS_PER_ROUND connections before it returns
 * to the supervisor, so exited children are reaped and signals acted on
 * however fast clients arrive.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* accept4, pipe2, ppoll */
#endif
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "supervisor.h"

#define TAG "mpm_fork"
#define MASTER_TICK_MS 1000        /* safety net; signals wake the master */
/*
 * Connections accepted per pass of the master loop: a pass forks for
 * milliseconds at most this many times, then reaps and takes signals.
 */
#define ACCEPTS_PER_ROUND 32

extern const qt_module mpm_fork_module;

/* A connection the master accepted, for the child it forks next. */
typedef struct pending {
    int fd;
    const qt_listener *l;
    const struct sockaddr_storage *peer;
    socklen_t len;
} pending;

/* The master's own state for one run() (qt_supervisor.data). */
typedef struct forkm {
    unsigned limit;                /* MaxRequestWorkers, within the scoreboard */
    unsigned live;                 /* children not yet reaped */
    size_t next_listener;          /* round robin among ready listeners */
    pending next;
} forkm;

static const qt_mpm_conf fork_defaults = {
    .server_limit = 256,
    .max_request_workers = 256,
    .threads_per_child = 1,
    .thread_limit = 1,
};

/* ------------------------------------------------------------ config */

static void *fork_create_server_conf(qt_pool *p)
{
    qt_mpm_conf *k = qt_pcalloc(p, sizeof *k);

    *k = fork_defaults;
    return k;
}

static int fork_post_config(qt_config *cfg, char *err, size_t errlen)
{
    qt_mpm_conf *k = qt_mpm_module_knobs(cfg, &mpm_fork_module);

    (void)err;
    (void)errlen;
    if (k)
        qt_mpm_clamp_workers(k, TAG);
    return QT_OK;
}

/* MaxRequestWorkers of the running config, within the scoreboard's rows. */
static void configure(qt_supervisor *sv)
{
    forkm *fm = sv->data;
    unsigned want = (unsigned)sv->conf->max_request_workers;

    if (want > sv->sb->nprocs) {
        qt_log(QT_LOG_WARN, TAG, "QT0223",
               "MaxRequestWorkers %u exceeds the ServerLimit of %u this server started "
               "with; keeping %u (stop and start the server to change it)",
               want, sv->sb->nprocs, sv->sb->nprocs);
        want = sv->sb->nprocs;
    }
    fm->limit = want;
    fm->live = qt_sb_live(sv->sb);
}

/* ------------------------------------------------------------- child */

static void serve(const qt_config *cfg, qt_sb_slot *slot, int fd,
                  const qt_listener *l, const struct sockaddr_storage *peer,
                  socklen_t len, volatile sig_atomic_t *stop,
                  const atomic_int *no_keepalive)
{
    qt_conn *c;

    qt_sb_set_state(slot, QT_SB_BUSY_READ);
    atomic_fetch_add(&slot->connections, 1);
    c = qt_conn_create(cfg, fd, l, (const struct sockaddr *)peer, len);
    c->scoreboard_slot = slot;
    qt_conn_run(c, stop, no_keepalive);
}

static void accept_failed(int err)
{
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR ||
        err == ECONNABORTED || err == EPROTO)
        return;                    /* the client left before we got to it */
    qt_log(QT_LOG_ERR, TAG, "QT0210", "(%d)%s: accept failed", err, strerror(err));
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
        qt_poll_sleep_ms(100);     /* let connections finish before retrying */
}

/* -X: accept and serve in this process, one connection at a time. */
static void serve_here(qt_supervisor *sv)
{
    const qt_config *cfg = sv->rt->cfg;
    qt_sb_slot *slot = qt_sb_slot_at(sv->sb, 0, 0);
    volatile sig_atomic_t *stop = qt_child_stop_flag();
    const qt_listener *l = cfg->listeners;

    while (!*stop && l) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int fd;

        qt_sb_set_state(slot, QT_SB_READY);
        if (qt_poll_wait_fd(l->fd, POLLIN, qt_now_ms() + MASTER_TICK_MS) != QT_OK)
            continue;
        fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            accept_failed(errno);
        else
            serve(cfg, slot, fd, l, &peer, len, stop, NULL);
        l = l->next ? l->next : cfg->listeners;
    }
}

/*
 * The child serves the one connection it was forked for.  SIGUSR1
 * (graceful restart or stop) ends it after the request in progress; TERM
 * kills.
 */
static int child_run(qt_supervisor *sv, unsigned proc, bool one_process)
{
    const pending *p = &((forkm *)sv->data)->next;
    qt_sb_slot *slot = qt_sb_slot_at(sv->sb, proc, 0);

    if (one_process) {
        serve_here(sv);
        return 0;
    }
    serve(sv->rt->cfg, slot, p->fd, p->l, p->peer, p->len, qt_child_stop_flag(),
          &sv->sb->no_keepalive);
    qt_sb_set_state(slot, QT_SB_DEAD);
    return 0;
}

/* ------------------------------------------------------------ master */

static int free_row(const qt_supervisor *sv)
{
    for (unsigned i = 0; i < sv->sb->nprocs; i++)
        if (atomic_load(&sv->sb->procs[i].pid) == 0)
            return (int)i;
    return -1;
}

/*
 * Forks the child for an accepted connection; the master keeps no copy.
 * False if the fork failed: the round ends, so exited children are reaped
 * before the next try.
 */
static bool hand_off(qt_supervisor *sv, int fd, const qt_listener *l,
                     const struct sockaddr_storage *peer, socklen_t len)
{
    forkm *fm = sv->data;
    int row = free_row(sv);
    pid_t pid;

    if (row < 0) {
        close(fd);                 /* cannot happen while live < limit */
        return true;
    }
    fm->next = (pending){ .fd = fd, .l = l, .peer = peer, .len = len };
    pid = qt_supervisor_spawn(sv, (unsigned)row);
    close(fd);
    if (pid < 0) {
        qt_poll_sleep_ms(100);     /* out of processes: let some exit */
        return false;
    }
    fm->live++;
    return true;
}

/* Clients in a listener's accept queue (Linux reports it in TCP_INFO). */
static unsigned backlog_len(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;

    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return 0;                  /* not TCP: never skip anyone */
    return ti.tcpi_unacked;
}

/* What an accepted client left us before it got a process. */
typedef enum peer_state {
    PEER_THERE,                    /* connected, still sending */
    PEER_CLOSED_AFTER_DATA,        /* half-closed after a request, or gave up */
    PEER_GONE,                     /* reset, or closed without a byte */
} peer_state;

static peer_state peer_state_of(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
    int unread = 0;

    if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
        return PEER_THERE;
    if (p.revents & (POLLHUP | POLLERR))
        return PEER_GONE;          /* a reset: no response can reach it */
    if (ioctl(fd, FIONREAD, &unread) == 0 && unread == 0)
        return PEER_GONE;          /* it can no longer send a request */
    return PEER_CLOSED_AFTER_DATA;
}

/*
 * Worth a fork: a client still there, always; one that closed after
 * sending, unless that fork would delay more clients than one round of the
 * master or the free processes can take.
 */
static bool worth_a_child(const forkm *fm, const qt_listener *l, int fd)
{
    unsigned waiting;

    switch (peer_state_of(fd)) {
    case PEER_THERE:
        return true;
    case PEER_GONE:
        return false;
    default:
        waiting = backlog_len(l->fd);
        return waiting < ACCEPTS_PER_ROUND && waiting < fm->limit - fm->live;
    }
}

/*
 * Accepts what is pending on listener l, as long as a child may start and
 * at most *budget connections (counted down here).
 */
static void accept_pending(qt_supervisor *sv, const qt_listener *l, unsigned *budget)
{
    forkm *fm = sv->data;

    for (; *budget > 0 && fm->live < fm->limit; (*budget)--) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            accept_failed(errno);
            return;
        }
        if (!worth_a_child(fm, l, fd)) {
            close(fd);
        } else if (!hand_off(sv, fd, l, &peer, len)) {
            *budget = 0;           /* no more forks this round */
            return;
        }
    }
}

/* Full: tells the children to close after each response while clients wait. */
static void note_full(qt_supervisor *sv, struct pollfd *lfd, size_t n)
{
    bool waiting = n > 0 && poll(lfd, n, 0) > 0;

    atomic_store(&sv->sb->no_keepalive, waiting);
}

/* Fills pfd: [0] the signal pipe, then the listeners if a child may start. */
static size_t build_pollset(qt_supervisor *sv, struct pollfd *pfd,
                            const qt_listener **ls, size_t max)
{
    forkm *fm = sv->data;
    size_t n = 1;

    pfd[0] = (struct pollfd){ .fd = qt_signal_fd(), .events = POLLIN };
    for (const qt_listener *l = sv->rt->cfg->listeners; l && n < max; l = l->next)
        if (l->fd >= 0) {
            ls[n] = l;
            pfd[n++] = (struct pollfd){ .fd = l->fd, .events = POLLIN };
        }
    if (fm->live >= fm->limit) {
        qt_supervisor_at_limit(sv);
        note_full(sv, pfd + 1, n - 1);
        return 1;                  /* the kernel's backlog holds the rest */
    }
    if (atomic_load(&sv->sb->no_keepalive))
        atomic_store(&sv->sb->no_keepalive, 0);
    return n;
}

static size_t count_listeners(const qt_config *cfg)
{
    size_t n = 0;

    for (const qt_listener *l = cfg->listeners; l; l = l->next)
        n++;
    return n;
}

/* The master's wait: accepts on ready listeners, round robin. */
static void accept_round(qt_supervisor *sv, int64_t deadline_ms)
{
    forkm *fm = sv->data;
    size_t max = count_listeners(sv->rt->cfg) + 1;
    struct pollfd *pfd = qt_xcalloc(max, sizeof *pfd);
    const qt_listener **ls = qt_xcalloc(max, sizeof *ls);
    size_t n = build_pollset(sv, pfd, ls, max);
    unsigned budget = ACCEPTS_PER_ROUND;

    (void)deadline_ms;             /* nothing to upkeep: MASTER_TICK_MS */
    if (poll(pfd, n, MASTER_TICK_MS) > 0 && n > 1) {
        for (size_t k = 0; k < n - 1; k++) {
            size_t i = 1 + (fm->next_listener + k) % (n - 1);

            if (pfd[i].revents & POLLIN)
                accept_pending(sv, ls[i], &budget);
        }
        fm->next_listener++;
    }
    free(ls);
    free(pfd);
}

static void reaped(qt_supervisor *sv, const qt_child_exit *e)
{
    forkm *fm = sv->data;

    if (e->slot >= 0 && fm->live > 0)
        fm->live--;
    if (fm->live < fm->limit)
        sv->limit_reported = false;
}

static const qt_supervisor_ops fork_ops = {
    .tag = TAG,
    .fork_failed_id = "QT0220",
    .defaults = &fork_defaults,
    .child_closes_listeners = true,
    .serve = child_run,
    .configure = configure,
    .wait = accept_round,
    .reaped = reaped,
};

static int fork_run(qt_runtime *rt)
{
    forkm fm = { 0 };

    return qt_supervisor_run(&fork_ops, rt, &fm);
}

/* ------------------------------------------------------------ module */

static const qt_directive fork_directives[] = {
    QT_MPM_DIRECTIVE("ServerLimit", "upper limit on MaxRequestWorkers; fixed until a full restart (256)"),
    QT_MPM_DIRECTIVE("MaxRequestWorkers", "maximum number of simultaneous connections, one process each (256)"),
    QT_MPM_DIRECTIVE("MaxClients", "old name of MaxRequestWorkers"),
    QT_MPM_DIRECTIVE("GracefulShutdownTimeout", "seconds a graceful stop waits for children; 0 = forever"),
    { 0 },
};

static const qt_mpm fork_mpm = {
    .name = "fork",
    .flags = QT_MPM_FORKED,
    .run = fork_run,
    .wait_fd = qt_poll_wait_fd,
    .sleep_ms = qt_poll_sleep_ms,
};

const qt_module mpm_fork_module = {
    QT_MODULE_HEADER("mpm_fork_module"),
    .directives = fork_directives,
    .create_server_conf = fork_create_server_conf,
    .post_config = fork_post_config,
    .mpm = &fork_mpm,
};
