/*
 * fork: one process per connection, the cgi-bin era model.
 *
 * The master itself polls the listening sockets; for each connection it
 * accepts, it forks a child that serves that one connection (keep-alive
 * included) and exits.  At MaxRequestWorkers live children the master stops
 * polling the listeners, so further clients wait in the kernel's backlog
 * until a child exits.  SIGCHLD wakes the master through the signal pipe
 * and every exited child is reaped at once: there are never zombies.
 *
 * What this model costs is visible in the benchmarks: a fork() and an
 * exit() per connection, and one whole process per concurrent client.
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
#include "listen.h"
#include "log.h"
#include "mpm_common.h"
#include "process.h"

#define TAG "mpm_fork"
#define MASTER_TICK_MS 1000        /* safety net; signals wake the master */

extern const qt_module mpm_fork_module;

typedef struct fork_conf {
    qt_mpm_conf knobs;             /* first: qt_mpm_conf_set() writes here */
} fork_conf;

/* The master's state for one run(). */
typedef struct forkm {
    qt_runtime *rt;
    qt_scoreboard *sb;
    unsigned limit;                /* MaxRequestWorkers, within the scoreboard */
    unsigned live;                 /* children not yet reaped */
    bool limit_reported;
    size_t next_listener;          /* round robin among ready listeners */
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
    fork_conf *fc = qt_pcalloc(p, sizeof *fc);

    fc->knobs = fork_defaults;
    return fc;
}

static const qt_mpm_conf *knobs_of(const qt_config *cfg)
{
    const fork_conf *fc = qt_mpm_server_conf(cfg);

    return fc ? &fc->knobs : &fork_defaults;
}

static int fork_post_config(qt_config *cfg, char *err, size_t errlen)
{
    fork_conf *fc = qt_mpm_server_conf(cfg);

    (void)err;
    (void)errlen;
    if (!fc || cfg->mpm_module != &mpm_fork_module)
        return QT_OK;
    if (fc->knobs.max_request_workers > fc->knobs.server_limit) {
        qt_log(QT_LOG_WARN, TAG, "QT0201",
               "MaxRequestWorkers of %d exceeds ServerLimit of %d, decreasing to match",
               fc->knobs.max_request_workers, fc->knobs.server_limit);
        fc->knobs.max_request_workers = fc->knobs.server_limit;
    }
    return QT_OK;
}

/* MaxRequestWorkers of the running config, within the scoreboard's rows. */
static void apply_limit(forkm *fm)
{
    unsigned want = (unsigned)knobs_of(fm->rt->cfg)->max_request_workers;

    if (want > fm->sb->nprocs) {
        qt_log(QT_LOG_WARN, TAG, "QT0223",
               "MaxRequestWorkers %u exceeds the ServerLimit of %u this server started "
               "with; keeping %u (stop and start the server to change it)",
               want, fm->sb->nprocs, fm->sb->nprocs);
        want = fm->sb->nprocs;
    }
    fm->limit = want;
    fm->limit_reported = false;
}

/* ------------------------------------------------------------- child */

static void serve(const qt_config *cfg, qt_sb_slot *slot, int fd,
                  const qt_listener *l, const struct sockaddr_storage *peer,
                  socklen_t len, volatile sig_atomic_t *stop)
{
    qt_conn *c;

    qt_sb_set_state(slot, QT_SB_BUSY_READ);
    atomic_fetch_add(&slot->connections, 1);
    c = qt_conn_create(cfg, fd, l, (const struct sockaddr *)peer, len);
    c->scoreboard_slot = slot;
    qt_conn_run(c, stop);
}

/*
 * The child: its own copies of the listening sockets go at once, so that a
 * graceful stop (the master closes its copies) really stops accepting.
 * SIGUSR1 (graceful restart or stop) ends the connection after the
 * request in progress; TERM kills.
 */
static _Noreturn void child_main(forkm *fm, unsigned proc, int fd, const qt_listener *l,
                                 const struct sockaddr_storage *peer, socklen_t len)
{
    qt_config *cfg = fm->rt->cfg;
    qt_sb_slot *slot = qt_sb_slot_at(fm->sb, proc, 0);

    qt_child_signals(false);
    qt_listen_close(cfg);
    atomic_store(&fm->sb->procs[proc].pid, getpid());
    if (!qt_drop_privileges(cfg))
        _exit(QT_EXIT_CHILDFATAL);
    qt_child_init(cfg);
    serve(cfg, slot, fd, l, peer, len, qt_child_stop_flag());
    qt_sb_set_state(slot, QT_SB_DEAD);
    /* _exit: the master's atexit handlers and stdio buffers are not ours. */
    _exit(0);
}

/* ------------------------------------------------------------ master */

static int free_row(const forkm *fm)
{
    for (unsigned i = 0; i < fm->sb->nprocs; i++)
        if (atomic_load(&fm->sb->procs[i].pid) == 0)
            return (int)i;
    return -1;
}

/* Forks the child for an accepted connection; the master keeps no copy. */
static void hand_off(forkm *fm, int fd, const qt_listener *l,
                     const struct sockaddr_storage *peer, socklen_t len)
{
    int row = free_row(fm);
    pid_t pid;

    if (row < 0) {
        close(fd);                 /* cannot happen while live < limit */
        return;
    }
    qt_sb_set_state(qt_sb_slot_at(fm->sb, (unsigned)row, 0), QT_SB_STARTING);
    pid = qt_mpm_spawn(fm->sb, (unsigned)row, TAG);
    if (pid == 0)
        child_main(fm, (unsigned)row, fd, l, peer, len);
    close(fd);
    if (pid > 0)
        fm->live++;
    else
        qt_poll_sleep_ms(100);     /* out of processes: let some exit */
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

/* Accepts what is pending on listener l, as long as a child may start. */
static void accept_pending(forkm *fm, const qt_listener *l)
{
    while (fm->live < fm->limit) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            accept_failed(errno);
            return;
        }
        hand_off(fm, fd, l, &peer, len);
    }
}

/* Fills pfd: [0] the signal pipe, then the listeners if a child may start. */
static size_t build_pollset(forkm *fm, struct pollfd *pfd, const qt_listener **ls,
                            size_t max)
{
    size_t n = 1;

    pfd[0] = (struct pollfd){ .fd = qt_signal_fd(), .events = POLLIN };
    if (fm->live >= fm->limit) {
        if (!fm->limit_reported)
            qt_log(QT_LOG_ERR, TAG, "QT0221", "server reached MaxRequestWorkers "
                   "setting, consider raising the MaxRequestWorkers setting");
        fm->limit_reported = true;
        return n;                  /* the kernel's backlog holds the rest */
    }
    for (const qt_listener *l = fm->rt->cfg->listeners; l && n < max; l = l->next)
        if (l->fd >= 0) {
            ls[n] = l;
            pfd[n++] = (struct pollfd){ .fd = l->fd, .events = POLLIN };
        }
    return n;
}

static size_t count_listeners(const qt_config *cfg)
{
    size_t n = 0;

    for (const qt_listener *l = cfg->listeners; l; l = l->next)
        n++;
    return n;
}

/* One wait of the master: accepts on ready listeners, round robin. */
static void accept_round(forkm *fm)
{
    size_t max = count_listeners(fm->rt->cfg) + 1;
    struct pollfd *pfd = qt_xcalloc(max, sizeof *pfd);
    const qt_listener **ls = qt_xcalloc(max, sizeof *ls);
    size_t n = build_pollset(fm, pfd, ls, max);

    if (poll(pfd, n, MASTER_TICK_MS) > 0 && n > 1) {
        for (size_t k = 0; k < n - 1; k++) {
            size_t i = 1 + (fm->next_listener + k) % (n - 1);

            if (pfd[i].revents & POLLIN)
                accept_pending(fm, ls[i]);
        }
        fm->next_listener++;
    }
    free(ls);
    free(pfd);
}

/* Reaps every exited child; true if one asked for a server stop. */
static bool reap_children(forkm *fm)
{
    qt_child_exit e;
    bool fatal = false;

    while (qt_mpm_reap(fm->sb, &e)) {
        if (e.slot >= 0 && fm->live > 0)
            fm->live--;
        if (qt_mpm_child_exited(fm->sb, &e, false))
            fatal = true;
    }
    if (fm->live < fm->limit)
        fm->limit_reported = false;
    return fatal;
}

static void hard_restart(forkm *fm)
{
    qt_log(QT_LOG_NOTICE, TAG, "QT0112", "SIGHUP received.  Attempting to restart");
    if (!qt_runtime_reload(fm->rt))
        return;
    qt_mpm_reclaim_children(fm->sb);
    fm->live = qt_sb_live(fm->sb);
    qt_mpm_new_generation(fm->sb, fm->rt->cfg);
    apply_limit(fm);
    qt_mpm_log_resuming(fm->rt->cfg);
}

/* Children of the old generation finish their request, then exit. */
static void graceful_restart(forkm *fm)
{
    qt_log(QT_LOG_NOTICE, TAG, "QT0113", "Graceful restart requested, doing restart");
    if (!qt_runtime_reload(fm->rt))
        return;
    qt_mpm_new_generation(fm->sb, fm->rt->cfg);
    qt_mpm_retire_old(fm->sb);
    apply_limit(fm);
    qt_mpm_log_resuming(fm->rt->cfg);
}

/* Acts on one signal; returns the exit status, or -1 to keep running. */
static int on_signal(forkm *fm, enum qt_sig sig)
{
    switch (sig) {
    case QT_SIG_STOP:
        qt_log(QT_LOG_NOTICE, TAG, "QT0111", "caught SIGTERM, shutting down");
        qt_mpm_reclaim_children(fm->sb);
        return 0;
    case QT_SIG_GRACEFUL_STOP:
        qt_mpm_graceful_stop(fm->rt, fm->sb,
                             knobs_of(fm->rt->cfg)->graceful_shutdown_timeout, TAG);
        return 0;
    case QT_SIG_RESTART:
        hard_restart(fm);
        return -1;
    case QT_SIG_GRACEFUL:
        graceful_restart(fm);
        return -1;
    default:
        return -1;                 /* SIGCHLD: reaped below */
    }
}

static int master_loop(forkm *fm)
{
    for (;;) {
        enum qt_sig sig;
        int rc;

        accept_round(fm);
        while ((sig = qt_signal_take()) != QT_SIG_NONE)
            if ((rc = on_signal(fm, sig)) >= 0)
                return rc;
        if (reap_children(fm)) {
            qt_mpm_reclaim_children(fm->sb);
            return 1;
        }
    }
}

static int master_run(qt_runtime *rt)
{
    forkm fm = { .rt = rt };
    int rc;

    fm.sb = qt_scoreboard_create((unsigned)knobs_of(rt->cfg)->server_limit, 1);
    atomic_store(&fm.sb->running_generation, rt->cfg->generation);
    qt_scoreboard_set_current(fm.sb);
    apply_limit(&fm);
    rc = master_loop(&fm);
    qt_scoreboard_destroy(fm.sb);
    return rc;
}

/* -X: accept and serve in this process, one connection at a time. */
static int one_process_run(qt_runtime *rt)
{
    qt_scoreboard *sb = qt_scoreboard_create(1, 1);
    volatile sig_atomic_t *stop = qt_child_stop_flag();
    const qt_listener *l = rt->cfg->listeners;
    int rc = 1;

    qt_scoreboard_set_current(sb);
    atomic_store(&sb->procs[0].pid, getpid());
    qt_child_signals(true);
    if (!qt_drop_privileges(rt->cfg))
        goto cleanup;
    qt_child_init(rt->cfg);
    while (!*stop && l) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int fd;

        qt_sb_set_state(qt_sb_slot_at(sb, 0, 0), QT_SB_READY);
        if (qt_poll_wait_fd(l->fd, POLLIN, qt_now_ms() + MASTER_TICK_MS) != QT_OK)
            continue;
        fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            accept_failed(errno);
        else
            serve(rt->cfg, qt_sb_slot_at(sb, 0, 0), fd, l, &peer, len, stop);
        l = l->next ? l->next : rt->cfg->listeners;
    }
    qt_log(QT_LOG_NOTICE, TAG, "QT0111", "caught SIGTERM, shutting down");
    rc = 0;
cleanup:
    qt_scoreboard_destroy(sb);
    return rc;
}

static int fork_run(qt_runtime *rt)
{
    return rt->one_process ? one_process_run(rt) : master_run(rt);
}

/* ------------------------------------------------------------ module */

static const qt_directive fork_directives[] = {
    QT_MPM_DIRECTIVE("ServerLimit", "upper limit on MaxRequestWorkers; fixed until a full restart (256)"),
    QT_MPM_DIRECTIVE("MaxRequestWorkers", "maximum number of simultaneous connections, one process each (256)"),
    QT_MPM_DIRECTIVE("MaxClients", "old name of MaxRequestWorkers"),
    QT_MPM_DIRECTIVE("GracefulShutdownTimeout", "seconds a graceful stop waits for children; 0 = forever"),
    { NULL },
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
