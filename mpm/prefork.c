/*
 * prefork: a pool of single-threaded child processes, each serving one
 * connection at a time for its whole life, keep-alive waits included.
 *
 * The master never serves.  It forks StartServers children, then once a
 * second keeps between MinSpareServers and MaxSpareServers of them idle,
 * replaces children that die, and turns signals into restarts and stops.
 * All children accept on the same non-blocking listening sockets: on Linux
 * a connection wakes them all but only one accept4() wins (the others see
 * EAGAIN), so no accept mutex is needed.
 *
 * Child life:  STARTING -> READY <-> BUSY ... -> exit when told (SIGUSR1 or
 * an older generation than the scoreboard's), after MaxConnectionsPerChild
 * connections, or when the master dies (EOF on the death pipe).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* accept4, pipe2, ppoll */
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "listen.h"
#include "log.h"
#include "mpm_common.h"
#include "process.h"
#include "status.h"

#define MAX_SPAWN_RATE 32         /* children forked per second, at most */
#define CHILD_POLL_SECONDS 10     /* safety net; signals end the wait anyway */

extern const qt_module mpm_prefork_module;

typedef struct prefork_conf {
    qt_mpm_conf knobs;            /* first: qt_mpm_conf_set() writes here */
} prefork_conf;

/* The master's state for one run(). */
typedef struct prefork {
    qt_runtime *rt;
    const qt_mpm_conf *conf;
    qt_scoreboard *sb;
    int death_pipe[2];            /* children poll [0]: EOF = master gone */
    int spawn_rate;               /* 1, 2, 4 ... MAX_SPAWN_RATE */
    bool limit_reported;          /* "reached MaxRequestWorkers" said once */
    int64_t replace_window_ms;    /* rate limit for immediate replacement */
    int replaced_in_window;
} prefork;

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
    prefork_conf *pc = qt_pcalloc(p, sizeof *pc);

    pc->knobs = prefork_defaults;
    return pc;
}

static const qt_mpm_conf *knobs_of(const qt_config *cfg)
{
    const prefork_conf *pc = qt_mpm_server_conf(cfg);

    return pc ? &pc->knobs : &prefork_defaults;
}

/* Apache's check_config: fix impossible combinations, with a warning. */
static void clamp_knobs(qt_mpm_conf *k)
{
    if (k->max_request_workers > k->server_limit) {
        qt_log(QT_LOG_WARN, "mpm_prefork", "QT0201",
               "MaxRequestWorkers of %d exceeds ServerLimit of %d, decreasing to match",
               k->max_request_workers, k->server_limit);
        k->max_request_workers = k->server_limit;
    }
    if (k->min_spare_servers < 1) {
        qt_log(QT_LOG_WARN, "mpm_prefork", "QT0202",
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
    prefork_conf *pc;
    int i = qt_config_module_index(cfg, &mpm_prefork_module);

    (void)err;
    (void)errlen;
    if (i < 0 || !cfg->main || !cfg->main->mod || !cfg->main->mod[i])
        return QT_OK;
    pc = cfg->main->mod[i];
    clamp_knobs(&pc->knobs);
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
        qt_log(QT_LOG_ERR, "mpm_prefork", "QT0210",
               "(%d)%s: accept: out of resources, pausing", err, strerror(err));
        qt_poll_sleep_ms(100);     /* let connections finish before retrying */
        return;
    default:
        qt_log(QT_LOG_ERR, "mpm_prefork", "QT0211", "(%d)%s: accept failed",
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
    qt_conn_run(c, ch->stop);
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
 * The accept loop.  The stop signals stay blocked except inside ppoll(), so
 * a stop that arrives between the check and the wait still ends the wait.
 */
static int child_serve(child *ch)
{
    size_t n = count_listeners(ch->cfg), nfds = n + (ch->death_fd >= 0), i = 0;
    struct pollfd *pfd = qt_xcalloc(nfds ? nfds : 1, sizeof *pfd);
    const qt_listener **ls = qt_xcalloc(n ? n : 1, sizeof *ls);
    int *fds = qt_xcalloc(n ? n : 1, sizeof *fds);
    const struct timespec tick = { CHILD_POLL_SECONDS, 0 };

    for (const qt_listener *l = ch->cfg->listeners; l; l = l->next)
        if (l->fd >= 0) {
            ls[i] = l;
            fds[i] = l->fd;
            pfd[i++] = (struct pollfd){ .fd = l->fd, .events = POLLIN };
        }
    if (ch->death_fd >= 0)
        pfd[n] = (struct pollfd){ .fd = ch->death_fd, .events = POLLIN };
    sigprocmask(SIG_BLOCK, &ch->stop_set, &ch->open_mask);
    qt_child_close_on_stop(fds, n);
    while (!child_should_exit(ch)) {
        qt_sb_set_state(ch->slot, QT_SB_READY);
        if (ppoll(pfd, nfds, &tick, &ch->open_mask) <= 0)
            continue;              /* a signal or the tick: re-check */
        if (ch->death_fd >= 0 && pfd[n].revents)
            break;                 /* the master is gone: so are we */
        accept_one(ch, pfd, ls, n);
    }
    qt_sb_set_state(ch->slot, QT_SB_GRACEFUL);
    qt_child_close_on_stop(NULL, 0);
    sigprocmask(SIG_SETMASK, &ch->open_mask, NULL);
    free(fds);
    free(ls);
    free(pfd);
    return 0;
}

static void child_setup(child *ch, const qt_config *cfg, qt_scoreboard *sb,
                        unsigned proc, bool one_process)
{
    memset(ch, 0, sizeof *ch);
    ch->cfg = cfg;
    ch->sb = sb;
    ch->proc = proc;
    ch->slot = qt_sb_slot_at(sb, proc, 0);
    ch->generation = atomic_load(&sb->procs[proc].generation);
    ch->death_fd = -1;
    ch->one_process = one_process;
    ch->max_conns = one_process ? 0 : (unsigned)knobs_of(cfg)->max_connections_per_child;
    ch->stop = qt_child_stop_flag();
    qt_child_stop_signals(&ch->stop_set, one_process);
}

static _Noreturn void child_main(prefork *pf, unsigned proc)
{
    child ch;

    qt_child_signals(false);
    close(pf->death_pipe[1]);
    child_setup(&ch, pf->rt->cfg, pf->sb, proc, false);
    ch.death_fd = pf->death_pipe[0];
    atomic_store(&pf->sb->procs[proc].pid, getpid());
    if (!qt_drop_privileges(ch.cfg))
        _exit(QT_EXIT_CHILDFATAL);
    qt_child_init(ch.cfg);
    /* _exit: the master's atexit handlers and stdio buffers are not ours. */
    _exit(child_serve(&ch));
}

/* ------------------------------------------------------------ master */

static int spawn(prefork *pf, unsigned proc)
{
    qt_sb_process *p = &pf->sb->procs[proc];
    sigset_t all, old;
    pid_t pid;

    atomic_store(&p->generation, atomic_load(&pf->sb->running_generation));
    atomic_store(&p->quiescing, 0);
    atomic_store(&p->started_ms, qt_now_ms());
    qt_sb_set_state(qt_sb_slot_at(pf->sb, proc, 0), QT_SB_STARTING);
    /* Held until the child has its own handlers (see qt_child_signals). */
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid = fork();
    if (pid == 0)
        child_main(pf, proc);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        qt_log(QT_LOG_ERR, "mpm_prefork", "QT0220", "(%d)%s: fork: unable to fork a new child",
               errno, strerror(errno));
        qt_sb_clear_process(pf->sb, proc);
        return -1;
    }
    atomic_store(&p->pid, pid);
    return 0;
}

static int free_slot(const prefork *pf)
{
    unsigned limit = (unsigned)pf->conf->max_request_workers;

    if (limit > pf->sb->nprocs)
        limit = pf->sb->nprocs;
    for (unsigned i = 0; i < limit; i++)
        if (atomic_load(&pf->sb->procs[i].pid) == 0)
            return (int)i;
    return -1;
}

static void spawn_up_to(prefork *pf, int n)
{
    for (int i = 0; i < n; i++) {
        int slot = free_slot(pf);

        if (slot < 0 || spawn(pf, (unsigned)slot) < 0)
            return;
    }
}

/* Tells child `proc` to finish its connection and exit. */
static void retire(prefork *pf, unsigned proc)
{
    pid_t pid = atomic_load(&pf->sb->procs[proc].pid);

    atomic_store(&pf->sb->procs[proc].quiescing, 1);
    if (pid > 0)
        kill(pid, SIGUSR1);
}

/* Idle children of the running generation; *last gets the last of them. */
static int count_idle(const prefork *pf, int *last)
{
    unsigned gen = atomic_load(&pf->sb->running_generation);
    int idle = 0;

    *last = -1;
    for (unsigned i = 0; i < pf->sb->nprocs; i++) {
        const qt_sb_process *p = &pf->sb->procs[i];
        int state = atomic_load(&qt_sb_slot_at(pf->sb, i, 0)->state);

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

/*
 * Like Apache: while idle stays under MinSpareServers, fork 1, 2, 4 ... 32
 * children a second (not just the shortfall: under a rising load the
 * shortfall is back a second later, and a connection waits meanwhile).
 */
static void spawn_for_spares(prefork *pf, int idle)
{
    int want = pf->spawn_rate;

    if (free_slot(pf) < 0) {
        if (!pf->limit_reported)
            qt_log(QT_LOG_ERR, "mpm_prefork", "QT0221", "server reached MaxRequestWorkers "
                   "setting, consider raising the MaxRequestWorkers setting");
        pf->limit_reported = true;
        pf->spawn_rate = 1;
        return;
    }
    if (pf->spawn_rate >= 8)
        qt_log(QT_LOG_INFO, "mpm_prefork", "QT0222", "server seems busy (you may need to "
               "increase StartServers, or Min/MaxSpareServers), spawning %d children, "
               "there are %d idle, and %u total children", want, idle, qt_sb_live(pf->sb));
    spawn_up_to(pf, want);
    if (pf->spawn_rate < MAX_SPAWN_RATE)
        pf->spawn_rate *= 2;
}

/* Once a second: keep the number of idle children within the spares. */
static void idle_maintenance(prefork *pf)
{
    int last;
    int idle = count_idle(pf, &last);

    if (idle > pf->conf->max_spare_servers && last >= 0) {
        retire(pf, (unsigned)last);      /* one per second, like Apache */
        pf->spawn_rate = 1;
    } else if (idle < pf->conf->min_spare_servers) {
        spawn_for_spares(pf, idle);
    } else {
        pf->spawn_rate = 1;
    }
}

/*
 * A child of the running generation that nobody told to exit (killed,
 * crashed, or done with MaxConnectionsPerChild) is replaced at once rather
 * than at the next upkeep tick, so the pool never sits empty; at most
 * MAX_SPAWN_RATE a second, so a child that crashes at start cannot
 * fork-bomb the machine.
 */
static void replace_lost(prefork *pf, const qt_child_exit *e)
{
    int64_t now = qt_now_ms();

    if (e->slot < 0 || e->quiescing ||
        e->generation != atomic_load(&pf->sb->running_generation))
        return;
    if (now - pf->replace_window_ms >= 1000) {
        pf->replace_window_ms = now;
        pf->replaced_in_window = 0;
    }
    if (pf->replaced_in_window++ < MAX_SPAWN_RATE)
        spawn_up_to(pf, 1);
}

/* Reaps every exited child; true if one asked for a server stop. */
static bool reap_children(prefork *pf)
{
    qt_child_exit e;
    bool fatal = false;

    while (qt_mpm_reap(pf->sb, &e)) {
        if (qt_mpm_child_exited(pf->sb, &e, false))
            fatal = true;
        else if (WIFEXITED(e.status) && WEXITSTATUS(e.status) == QT_EXIT_CHILDSICK)
            pf->spawn_rate = 1;
        else
            replace_lost(pf, &e);
    }
    return fatal;
}

/* After a successful reload: new knobs, new generation. */
static void new_generation(prefork *pf)
{
    const qt_mpm_conf *k = knobs_of(pf->rt->cfg);

    if ((unsigned)k->server_limit != pf->sb->nprocs)
        qt_log(QT_LOG_WARN, "mpm_prefork", "QT0223",
               "changing ServerLimit to %d from original %u is not allowed during "
               "restart; keeping %u (stop and start the server to change it)",
               k->server_limit, pf->sb->nprocs, pf->sb->nprocs);
    pf->conf = k;
    pf->spawn_rate = 1;
    pf->limit_reported = false;
    atomic_store(&pf->sb->running_generation, pf->rt->cfg->generation);
    pf->sb->restart_time = time(NULL);
}

static void hard_restart(prefork *pf)
{
    qt_log(QT_LOG_NOTICE, "mpm_prefork", "QT0112", "SIGHUP received.  Attempting to restart");
    if (!qt_runtime_reload(pf->rt))
        return;
    qt_mpm_reclaim_children(pf->sb);
    new_generation(pf);
    spawn_up_to(pf, pf->conf->start_servers);
    qt_mpm_log_resuming(pf->rt->cfg);
}

static void graceful_restart(prefork *pf)
{
    qt_log(QT_LOG_NOTICE, "mpm_prefork", "QT0113", "Graceful restart requested, doing restart");
    if (!qt_runtime_reload(pf->rt))
        return;
    new_generation(pf);
    for (unsigned i = 0; i < pf->sb->nprocs; i++)
        if (atomic_load(&pf->sb->procs[i].pid) > 0)
            atomic_store(&pf->sb->procs[i].quiescing, 1);
    /* By pid from the scoreboard: CGI children of a child are not hit. */
    qt_sb_signal_all(pf->sb, SIGUSR1, true);
    spawn_up_to(pf, pf->conf->start_servers);
    qt_mpm_log_resuming(pf->rt->cfg);
}

static void graceful_stop(prefork *pf)
{
    qt_log(QT_LOG_NOTICE, "mpm_prefork", "QT0114", "caught SIGWINCH, shutting down gracefully");
    /* A new server may start while this one drains. */
    qt_listen_close(pf->rt->cfg);
    qt_pidfile_remove(qt_config_path(pf->rt->cfg, pf->rt->cfg->pid_file));
    for (unsigned i = 0; i < pf->sb->nprocs; i++)
        retire(pf, i);
    qt_mpm_drain_children(pf->sb, pf->conf->graceful_shutdown_timeout);
}

/* Acts on one signal; returns the exit status, or -1 to keep running. */
static int on_signal(prefork *pf, enum qt_sig sig)
{
    switch (sig) {
    case QT_SIG_STOP:
        qt_log(QT_LOG_NOTICE, "mpm_prefork", "QT0111", "caught SIGTERM, shutting down");
        qt_mpm_reclaim_children(pf->sb);
        return 0;
    case QT_SIG_GRACEFUL_STOP:
        graceful_stop(pf);
        return 0;
    case QT_SIG_RESTART:
        hard_restart(pf);
        return -1;
    case QT_SIG_GRACEFUL:
        graceful_restart(pf);
        return -1;
    default:
        return -1;                 /* SIGCHLD: reaped below */
    }
}

static int master_loop(prefork *pf)
{
    int64_t next_upkeep = qt_now_ms() + 1000;

    for (;;) {
        enum qt_sig sig;
        int rc;

        qt_poll_wait_fd(qt_signal_fd(), POLLIN, next_upkeep);
        while ((sig = qt_signal_take()) != QT_SIG_NONE)
            if ((rc = on_signal(pf, sig)) >= 0)
                return rc;
        if (reap_children(pf)) {
            qt_mpm_reclaim_children(pf->sb);
            return 1;
        }
        if (qt_now_ms() >= next_upkeep) {
            idle_maintenance(pf);
            next_upkeep = qt_now_ms() + 1000;
        }
    }
}

static int master_run(qt_runtime *rt)
{
    prefork pf = { .rt = rt, .spawn_rate = 1, .death_pipe = { -1, -1 } };
    int rc;

    pf.conf = knobs_of(rt->cfg);
    if (pipe2(pf.death_pipe, O_CLOEXEC) < 0) {
        qt_log(QT_LOG_EMERG, "mpm_prefork", "QT0224", "(%d)%s: cannot create the death pipe",
               errno, strerror(errno));
        return 1;
    }
    pf.sb = qt_scoreboard_create((unsigned)pf.conf->server_limit, 1);
    atomic_store(&pf.sb->running_generation, rt->cfg->generation);
    qt_scoreboard_set_current(pf.sb);
    spawn_up_to(&pf, pf.conf->start_servers);
    rc = master_loop(&pf);
    qt_scoreboard_destroy(pf.sb);
    close(pf.death_pipe[0]);
    close(pf.death_pipe[1]);
    return rc;
}

/* -X: serve in this process, no children; TERM stops after the connection. */
static int one_process_run(qt_runtime *rt)
{
    qt_scoreboard *sb = qt_scoreboard_create(1, 1);
    child ch;

    qt_scoreboard_set_current(sb);
    atomic_store(&sb->procs[0].pid, getpid());
    qt_child_signals(true);
    child_setup(&ch, rt->cfg, sb, 0, true);
    if (!qt_drop_privileges(rt->cfg)) {
        qt_scoreboard_destroy(sb);
        return 1;
    }
    qt_child_init(rt->cfg);
    child_serve(&ch);
    qt_log(QT_LOG_NOTICE, "mpm_prefork", "QT0111", "caught SIGTERM, shutting down");
    qt_scoreboard_destroy(sb);
    return 0;
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

static int prefork_run(qt_runtime *rt)
{
    return rt->one_process ? one_process_run(rt) : master_run(rt);
}

/* ------------------------------------------------------------ module */

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
    { NULL },
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
