/*
 * prefork: a pool of single-threaded child processes, each serving one
 * connection at a time for its whole life, keep-alive waits included.
 *
 * The master never serves.  It forks StartServers children, then once a
 * second keeps between MinSpareServers and MaxSpareServers of them idle,
 * replaces children that die, and turns signals into restarts and stops:
 * the loop is mpm/supervisor.c, this file gives it the child and the
 * spare policy (idle processes against Min/MaxSpareServers).
 * All children accept on the same non-blocking listening sockets, each
 * waiting in an epoll set of its own where the listeners are registered
 * EPOLLEXCLUSIVE: a new connection wakes one idle child, not all of them,
 * and no accept mutex is needed (a child that loses a race sees EAGAIN).
 *
 * Child life:  STARTING -> READY <-> BUSY ... -> exit when told (SIGUSR1 or
 * an older generation than the scoreboard's), after MaxConnectionsPerChild
 * connections, or when the master dies (EOF on the death pipe).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* accept4, pipe2, ppoll */
#endif
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "status.h"
#include "supervisor.h"

#define TAG "mpm_prefork"
#define CHILD_POLL_SECONDS 10     /* safety net; signals end the wait anyway */

extern const qt_module mpm_prefork_module;

/* One serving context: a child, or the master itself with -X. */
typedef struct child {
    const qt_config *cfg;
    qt_scoreboard *sb;
    unsigned proc;
    qt_sb_slot *slot;
    unsigned generation;
    int death_fd;                 /* -1 with -X */
    bool one_process;
    unsigned max_conns;           /* 0: unlimited */
    unsigned long served;
    size_t next_listener;         /* round robin among ready listeners */
    volatile sig_atomic_t *stop;
    sigset_t stop_set;            /* blocked except while waiting */
    sigset_t open_mask;
} child;

static const qt_mpm_conf prefork_defaults = {
    .start_servers = 5,
    .min_spare_servers = 5,
    .max_spare_servers = 10,
    .threads_per_child = 1,
    .thread_limit = 1,
    .server_limit = 256,
    .max_request_workers = 256,
    .max_connections_per_child = 0,
    .graceful_shutdown_timeout = 0,
};

/* ------------------------------------------------------------ config */

static void *prefork_create_server_conf(qt_pool *p)
{
    qt_mpm_conf *k = qt_pcalloc(p, sizeof *k);

    *k = prefork_defaults;
    return k;
}

/* Apache's check_config: fix impossible combinations, with a warning. */
static void clamp_knobs(qt_mpm_conf *k)
{
    qt_mpm_clamp_workers(k, TAG);
    if (k->min_spare_servers < 1) {
        qt_log(QT_LOG_WARN, TAG, "QT0202",
               "MinSpareServers of %d is too small, raising it to 1",
               k->min_spare_servers);
        k->min_spare_servers = 1;
    }
    if (k->max_spare_servers <= k->min_spare_servers)
        k->max_spare_servers = k->min_spare_servers + 1;
    if (k->start_servers > k->max_request_workers)
        k->start_servers = k->max_request_workers;
}

static int prefork_post_config(qt_config *cfg, char *err, size_t errlen)
{
    qt_mpm_conf *k = qt_mpm_module_knobs(cfg, &mpm_prefork_module);

    (void)err;
    (void)errlen;
    if (k)
        clamp_knobs(k);
    return QT_OK;
}

/* ------------------------------------------------------------- child */

static bool child_should_exit(const child *ch)
{
    if (*ch->stop)
        return true;
    if (!ch->one_process &&
        atomic_load(&ch->sb->running_generation) != ch->generation)
        return true;
    return ch->max_conns && ch->served >= ch->max_conns;
}

static void accept_failed(int err)
{
    switch (err) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
        return;                    /* another child won, or the client left */
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
        qt_log(QT_LOG_ERR, TAG, "QT0210",
               "(%d)%s: accept: out of resources, pausing", err, strerror(err));
        qt_poll_sleep_ms(100);     /* let connections finish before retrying */
        return;
    default:
        qt_log(QT_LOG_ERR, TAG, "QT0211", "(%d)%s: accept failed",
               err, strerror(err));
    }
}

static void serve_connection(child *ch, int fd, const qt_listener *l,
                             const struct sockaddr_storage *peer, socklen_t len)
{
    qt_conn *c;

    /* A graceful stop may now interrupt the keep-alive wait. */
    sigprocmask(SIG_SETMASK, &ch->open_mask, NULL);
    qt_sb_set_state(ch->slot, QT_SB_BUSY_READ);
    atomic_fetch_add(&ch->slot->connections, 1);
    c = qt_conn_create(ch->cfg, fd, l, (const struct sockaddr *)peer, len);
    c->scoreboard_slot = ch->slot;
    qt_conn_run(c, ch->stop, NULL);
    ch->served++;
    sigprocmask(SIG_BLOCK, &ch->stop_set, NULL);
}

/* Accepts on the first ready listener after the last one served. */
static void accept_one(child *ch, const struct pollfd *pfd,
                       const qt_listener *const *ls, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        size_t i = (ch->next_listener + k) % n;
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int fd;

        if (!(pfd[i].revents & POLLIN))
            continue;
        ch->next_listener = i + 1;
        fd = accept4(ls[i]->fd, (struct sockaddr *)&peer, &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            accept_failed(errno);
        else
            serve_connection(ch, fd, ls[i], &peer, len);
        return;
    }
}

static size_t count_listeners(const qt_config *cfg)
{
    size_t n = 0;

    for (const qt_listener *l = cfg->listeners; l; l = l->next)
        n += l->fd >= 0;
    return n;
}

/*
 * The accept loop.  The stop signals stay blocked except inside the wait
 * (epoll_pwait), so a stop that arrives between the check and the wait
 * still ends the wait.  The stop handler closes the listeners: a wait that
 * returned events and ran the handler on its way out must not accept.
 */
static int child_serve(child *ch)
{
    size_t n = count_listeners(ch->cfg), nfds = n + (ch->death_fd >= 0), i = 0;
    struct pollfd *pfd = qt_xcalloc(nfds ? nfds : 1, sizeof *pfd);
    const qt_listener **ls = qt_xcalloc(n ? n : 1, sizeof *ls);
    int *fds = qt_xcalloc(n ? n : 1, sizeof *fds);
    int ep;

    for (const qt_listener *l = ch->cfg->listeners; l; l = l->next)
        if (l->fd >= 0) {
            ls[i] = l;
            fds[i] = l->fd;
            pfd[i++] = (struct pollfd){ .fd = l->fd, .events = POLLIN };
        }
    if (ch->death_fd >= 0)
        pfd[n] = (struct pollfd){ .fd = ch->death_fd, .events = POLLIN };
    ep = qt_accept_set(pfd, nfds, n);
    sigprocmask(SIG_BLOCK, &ch->stop_set, &ch->open_mask);
    qt_child_close_on_stop(fds, n);
    while (!child_should_exit(ch)) {
        qt_sb_set_state(ch->slot, QT_SB_READY);
        if (qt_accept_wait(ep, pfd, nfds, CHILD_POLL_SECONDS * 1000, &ch->open_mask) <= 0)
            continue;              /* a signal or the tick: re-check */
        if (*ch->stop)
            break;
        if (ch->death_fd >= 0 && pfd[n].revents)
            break;                 /* the master is gone: so are we */
        accept_one(ch, pfd, ls, n);
    }
    qt_sb_set_state(ch->slot, QT_SB_GRACEFUL);
    qt_child_close_on_stop(NULL, 0);
    sigprocmask(SIG_SETMASK, &ch->open_mask, NULL);
    if (ep >= 0)
        close(ep);
    free(fds);
    free(ls);
    free(pfd);
    return 0;
}

static int child_run(qt_supervisor *sv, unsigned proc, bool one_process)
{
    child ch;

    memset(&ch, 0, sizeof ch);
    ch.cfg = sv->rt->cfg;
    ch.sb = sv->sb;
    ch.proc = proc;
    ch.slot = qt_sb_slot_at(sv->sb, proc, 0);
    ch.generation = atomic_load(&sv->sb->procs[proc].generation);
    ch.death_fd = sv->death_pipe[0];
    ch.one_process = one_process;
    ch.max_conns = one_process ? 0 : (unsigned)sv->conf->max_connections_per_child;
    ch.stop = qt_child_stop_flag();
    qt_child_stop_signals(&ch.stop_set, one_process);
    return child_serve(&ch);
}

/* ------------------------------------------------------------ master */

static int free_slot(const qt_supervisor *sv)
{
    unsigned limit = (unsigned)sv->conf->max_request_workers;

    if (limit > sv->sb->nprocs)
        limit = sv->sb->nprocs;
    for (unsigned i = 0; i < limit; i++)
        if (atomic_load(&sv->sb->procs[i].pid) == 0)
            return (int)i;
    return -1;
}

/* Idle children of the running generation; *last gets the last of them. */
static int count_idle(const qt_supervisor *sv, int *last)
{
    unsigned gen = atomic_load(&sv->sb->running_generation);
    int idle = 0;

    *last = -1;
    for (unsigned i = 0; i < sv->sb->nprocs; i++) {
        const qt_sb_process *p = &sv->sb->procs[i];
        int state = atomic_load(&qt_sb_slot_at(sv->sb, i, 0)->state);

        if (atomic_load(&p->pid) <= 0 || atomic_load(&p->generation) != gen ||
            atomic_load(&p->quiescing))
            continue;
        /* A starting child will be idle in a moment: count it, or we overshoot. */
        if (state <= QT_SB_READY) {
            idle++;
            *last = (int)i;
        }
    }
    return idle;
}

static void log_busy(const qt_supervisor *sv, int idle)
{
    qt_log(QT_LOG_INFO, TAG, "QT0222", "server seems busy (you may need to "
           "increase StartServers, or Min/MaxSpareServers), spawning %d children, "
           "there are %d idle, and %u total children", sv->spawn_rate, idle,
           qt_sb_live(sv->sb));
}

static void configure(qt_supervisor *sv)
{
    qt_supervisor_warn_server_limit(sv, "QT0223");
    sv->min_spare = sv->conf->min_spare_servers;
    sv->max_spare = sv->conf->max_spare_servers;
}

static void populate(qt_supervisor *sv)
{
    qt_supervisor_spawn_up_to(sv, sv->conf->start_servers);
}

/* server-status extras (the core already counts processes and states). */
static void prefork_status(qt_status_report *rep)
{
    qt_scoreboard *sb = qt_scoreboard_current();

    if (!sb)
        return;
    qt_status_add(rep, "Generation", "%u", atomic_load(&sb->running_generation));
    qt_status_add(rep, "ServerLimit", "%u", sb->nprocs);
}

/* ------------------------------------------------------------ module */

static const qt_supervisor_ops prefork_ops = {
    .tag = TAG,
    .fork_failed_id = "QT0220",
    .death_pipe_id = "QT0224",
    .defaults = &prefork_defaults,
    .serve = child_run,
    .configure = configure,
    .populate = populate,
    .reaped = qt_supervisor_replace_lost,
    .upkeep = qt_supervisor_keep_spares,
    .free_row = free_slot,
    .count_idle = count_idle,
    .log_busy = log_busy,
};

static int prefork_run(qt_runtime *rt)
{
    return qt_supervisor_run(&prefork_ops, rt, NULL);
}

static const qt_directive prefork_directives[] = {
    QT_MPM_DIRECTIVE("StartServers", "number of child processes created at startup (5)"),
    QT_MPM_DIRECTIVE("MinSpareServers", "minimum number of idle children (5)"),
    QT_MPM_DIRECTIVE("MaxSpareServers", "maximum number of idle children (10)"),
    QT_MPM_DIRECTIVE("ServerLimit", "upper limit on MaxRequestWorkers; fixed until a full restart (256)"),
    QT_MPM_DIRECTIVE("MaxRequestWorkers", "maximum number of simultaneous connections (256)"),
    QT_MPM_DIRECTIVE("MaxClients", "old name of MaxRequestWorkers"),
    QT_MPM_DIRECTIVE("MaxConnectionsPerChild", "connections a child serves before it exits; 0 = no limit"),
    QT_MPM_DIRECTIVE("MaxRequestsPerChild", "old name of MaxConnectionsPerChild"),
    QT_MPM_DIRECTIVE("GracefulShutdownTimeout", "seconds a graceful stop waits for children; 0 = forever"),
    { 0 },
};

static const qt_mpm prefork_mpm = {
    .name = "prefork",
    .flags = QT_MPM_FORKED,
    .run = prefork_run,
    .wait_fd = qt_poll_wait_fd,
    .sleep_ms = qt_poll_sleep_ms,
    .status = prefork_status,
};

const qt_module mpm_prefork_module = {
    QT_MODULE_HEADER("mpm_prefork_module"),
    .directives = prefork_directives,
    .create_server_conf = prefork_create_server_conf,
    .post_config = prefork_post_config,
    .mpm = &prefork_mpm,
};
