/* Shared by the process-based MPMs (see mpm_common.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* accept4, pipe2, ppoll */
#endif
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"
#include "mpm_common.h"
#include "process.h"
#include "version.h"

/* ------------------------------------------------------------ directives */

typedef struct {
    const char *name;
    size_t offset;                    /* into qt_mpm_conf */
    int min, max;
} mpm_knob;

#define KNOB(n, field, lo, hi) { (n), offsetof(qt_mpm_conf, field), (lo), (hi) }
static const mpm_knob knobs[] = {
    KNOB("StartServers", start_servers, 0, 200000),
    KNOB("MinSpareServers", min_spare_servers, 0, 200000),
    KNOB("MaxSpareServers", max_spare_servers, 0, 200000),
    KNOB("MinSpareThreads", min_spare_threads, 0, INT_MAX),
    KNOB("MaxSpareThreads", max_spare_threads, 0, INT_MAX),
    KNOB("ThreadsPerChild", threads_per_child, 1, 100000),
    KNOB("ThreadLimit", thread_limit, 1, 100000),
    KNOB("ServerLimit", server_limit, 1, 200000),
    KNOB("MaxRequestWorkers", max_request_workers, 1, INT_MAX),
    KNOB("MaxClients", max_request_workers, 1, INT_MAX),
    KNOB("MaxConnectionsPerChild", max_connections_per_child, 0, INT_MAX),
    KNOB("MaxRequestsPerChild", max_connections_per_child, 0, INT_MAX),
    KNOB("GracefulShutdownTimeout", graceful_shutdown_timeout, 0, INT_MAX),
};

static const mpm_knob *find_knob(const char *name)
{
    for (size_t i = 0; i < sizeof knobs / sizeof knobs[0]; i++)
        if (strcasecmp(knobs[i].name, name) == 0)
            return &knobs[i];
    return NULL;
}

const char *qt_mpm_int_arg(qt_cmd *cmd, const char *arg, int min, int max,
                           int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(arg, &end, 10);
    if (errno || end == arg || *end)
        return qt_psprintf(cmd->pool, "'%s' is not a whole number", arg);
    if (v < min || v > max)
        return qt_psprintf(cmd->pool, "%ld is out of range (%d to %d)",
                           v, min, max);
    *out = (int)v;
    return NULL;
}

const char *qt_mpm_conf_set(qt_cmd *cmd, int argc, char **argv)
{
    const mpm_knob *k = find_knob(cmd->name);

    if (!k || !cmd->srv_conf || argc != 1)
        return "is not a setting of this MPM";
    return qt_mpm_int_arg(cmd, argv[0], k->min, k->max,
                          (int *)((char *)cmd->srv_conf + k->offset));
}

void *qt_mpm_server_conf(const qt_config *cfg)
{
    int i;

    if (!cfg || !cfg->mpm_module || !cfg->main || !cfg->main->mod)
        return NULL;
    i = qt_config_module_index(cfg, cfg->mpm_module);
    return i < 0 ? NULL : cfg->main->mod[i];
}

void qt_mpm_log_resuming(const qt_config *cfg)
{
    char tag[64];
    const char *name = cfg->mpm ? cfg->mpm->name : "none";

    snprintf(tag, sizeof tag, "mpm_%s", name);
    qt_log(QT_LOG_NOTICE, tag, "QT0110",
           "%s/%s (Unix) configured -- resuming normal operations; MPM %s",
           QT_SERVER_BASEPRODUCT, QT_SERVER_VERSION, name);
}

/* ------------------------------------------------------- child signals */

/* Signal state: the one kind of process-wide mutable state allowed. */
static volatile sig_atomic_t child_stop;
static const int *volatile close_on_stop;
static volatile size_t nclose_on_stop;

/*
 * Closing the child's copies of the listening sockets here, at once, is
 * what makes a graceful stop stop accepting: the kernel keeps a socket
 * listening while any process holds it, and a busy child may hold it for a
 * whole request.  close() is async-signal-safe; only the first stop does it,
 * so a second signal cannot close a number since reused.
 */
static void on_child_stop(int signo)
{
    int saved = errno;

    (void)signo;
    if (!child_stop)
        for (size_t i = 0; close_on_stop && i < nclose_on_stop; i++)
            close(close_on_stop[i]);
    child_stop = 1;
    errno = saved;
}

void qt_child_close_on_stop(const int *fds, size_t n)
{
    nclose_on_stop = 0;
    close_on_stop = fds;
    nclose_on_stop = n;
}

void qt_child_stop_signals(sigset_t *set, bool one_process)
{
    sigemptyset(set);
    if (one_process) {
        sigaddset(set, SIGTERM);
        sigaddset(set, SIGINT);
        sigaddset(set, SIGWINCH);
    } else {
        sigaddset(set, SIGUSR1);
    }
}

void qt_child_signals(bool one_process)
{
    /* No SA_RESTART: a wait must return so the loop sees the flag. */
    struct sigaction sa = { .sa_handler = on_child_stop };
    sigset_t set;

    sigemptyset(&sa.sa_mask);
    child_stop = 0;
    qt_child_stop_signals(&set, one_process);
    for (int signo = 1; signo < NSIG; signo++)
        if (sigismember(&set, signo) == 1)
            sigaction(signo, &sa, NULL);
    qt_signals_child();
    /* ^C in a foreground terminal reaches every process; the master decides. */
    if (!one_process)
        signal(SIGINT, SIG_IGN);
}

volatile sig_atomic_t *qt_child_stop_flag(void)
{
    return &child_stop;
}

/* ------------------------------------------------------ child tracking */

int qt_sb_find_pid(const qt_scoreboard *sb, pid_t pid)
{
    for (unsigned i = 0; i < sb->nprocs; i++)
        if (atomic_load(&sb->procs[i].pid) == pid)
            return (int)i;
    return -1;
}

unsigned qt_sb_live(const qt_scoreboard *sb)
{
    unsigned n = 0;

    for (unsigned i = 0; i < sb->nprocs; i++)
        n += atomic_load(&sb->procs[i].pid) > 0;
    return n;
}

void qt_sb_signal_all(qt_scoreboard *sb, int sig, bool old_only)
{
    unsigned gen = atomic_load(&sb->running_generation);

    for (unsigned i = 0; i < sb->nprocs; i++) {
        pid_t pid = atomic_load(&sb->procs[i].pid);

        if (pid <= 0)
            continue;
        if (old_only && atomic_load(&sb->procs[i].generation) == gen)
            continue;
        /* By pid, not process group: CGI scripts must not be hit. */
        kill(pid, sig);
    }
}

bool qt_mpm_reap(qt_scoreboard *sb, qt_child_exit *out)
{
    int status;
    pid_t pid;

    do
        pid = waitpid(-1, &status, WNOHANG);
    while (pid < 0 && errno == EINTR);
    if (pid <= 0)
        return false;
    out->pid = pid;
    out->status = status;
    out->slot = qt_sb_find_pid(sb, pid);
    out->generation = 0;
    out->quiescing = false;
    if (out->slot >= 0) {
        out->generation = atomic_load(&sb->procs[out->slot].generation);
        out->quiescing = atomic_load(&sb->procs[out->slot].quiescing) != 0;
        qt_sb_clear_process(sb, (unsigned)out->slot);
    }
    return true;
}

static void log_signal_exit(const qt_child_exit *e, bool stopping)
{
    int sig = WTERMSIG(e->status);

    if (stopping && (sig == SIGTERM || sig == SIGKILL))
        return;                         /* we asked for it */
    qt_log(QT_LOG_WARN, "core", "QT0120", "child pid %ld exit signal %s (%d)%s",
           (long)e->pid, strsignal(sig), sig,
           WCOREDUMP(e->status) ? ", possible coredump" : "");
}

bool qt_mpm_child_exited(const qt_scoreboard *sb, const qt_child_exit *e,
                         bool stopping)
{
    int code;

    if (WIFSIGNALED(e->status)) {
        log_signal_exit(e, stopping);
        return false;
    }
    if (!WIFEXITED(e->status))
        return false;
    code = WEXITSTATUS(e->status);
    if (code != QT_EXIT_CHILDFATAL)
        return false;
    if (e->generation != atomic_load(&sb->running_generation)) {
        qt_log(QT_LOG_NOTICE, "core", "QT0121",
               "ignoring fatal error in child pid %ld of a previous generation",
               (long)e->pid);
        return false;
    }
    qt_log(QT_LOG_ALERT, "core", "QT0122",
           "child pid %ld exit status %d: it cannot run with this configuration "
           "(see above) -- shutting down", (long)e->pid, code);
    return true;
}

static void reap_all(qt_scoreboard *sb)
{
    qt_child_exit e;

    while (qt_mpm_reap(sb, &e))
        qt_mpm_child_exited(sb, &e, true);
}

void qt_mpm_reclaim_children(qt_scoreboard *sb)
{
    static const int64_t resend_at[] = { 3000, 5000, 7000 };
    int64_t start = qt_now_ms();
    unsigned step = 0;
    bool killed = false;

    qt_sb_signal_all(sb, SIGTERM, false);
    for (reap_all(sb); qt_sb_live(sb) > 0; reap_all(sb)) {
        int64_t elapsed = qt_now_ms() - start;

        if (elapsed >= 10000) {
            qt_log(QT_LOG_ERR, "core", "QT0123",
                   "%u child processes did not exit; giving up on them",
                   qt_sb_live(sb));
            break;
        }
        if (step < 3 && elapsed >= resend_at[step]) {
            qt_sb_signal_all(sb, SIGTERM, false);
            step++;
        } else if (!killed && elapsed >= 9000) {
            qt_log(QT_LOG_WARN, "core", "QT0124",
                   "%u child processes still did not exit, sending a SIGKILL",
                   qt_sb_live(sb));
            qt_sb_signal_all(sb, SIGKILL, false);
            killed = true;
        }
        qt_poll_sleep_ms(20);
    }
}

void qt_mpm_drain_children(qt_scoreboard *sb, int timeout_s)
{
    int64_t deadline = timeout_s > 0 ? qt_now_ms() + (int64_t)timeout_s * 1000 : 0;

    for (reap_all(sb); qt_sb_live(sb) > 0; reap_all(sb)) {
        if (deadline && qt_now_ms() >= deadline) {
            qt_log(QT_LOG_WARN, "core", "QT0125",
                   "GracefulShutdownTimeout of %d s expired; stopping %u children",
                   timeout_s, qt_sb_live(sb));
            break;
        }
        /* SIGCHLD writes to the signal pipe, so an exit ends the wait early. */
        qt_poll_wait_fd(qt_signal_fd(), POLLIN, qt_now_ms() + 1000);
        if (qt_signal_take() == QT_SIG_STOP) {
            qt_log(QT_LOG_NOTICE, "core", "QT0111", "caught SIGTERM, shutting down");
            break;
        }
    }
    if (qt_sb_live(sb) > 0)
        qt_mpm_reclaim_children(sb);
}

/* ------------------------------------------------ spawning and retiring */

pid_t qt_mpm_spawn(qt_scoreboard *sb, unsigned proc, const char *tag)
{
    return qt_mpm_spawn_as(sb, proc, tag, "QT0220");
}

pid_t qt_mpm_spawn_as(qt_scoreboard *sb, unsigned proc, const char *tag,
                      const char *msg_id)
{
    qt_sb_process *p = &sb->procs[proc];
    sigset_t all, old;
    pid_t pid;

    atomic_store(&p->generation, atomic_load(&sb->running_generation));
    atomic_store(&p->quiescing, 0);
    atomic_store(&p->started_ms, qt_now_ms());
    /* Held until the child has its own handlers (see qt_child_signals). */
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid = fork();
    if (pid == 0)
        return 0;                  /* the child unblocks in qt_child_signals */
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        qt_log(QT_LOG_ERR, tag, msg_id, "(%d)%s: fork: unable to fork a new child",
               errno, strerror(errno));
        qt_sb_clear_process(sb, proc);
        return -1;
    }
    atomic_store(&p->pid, pid);
    return pid;
}

void qt_mpm_retire(qt_scoreboard *sb, unsigned proc)
{
    pid_t pid = atomic_load(&sb->procs[proc].pid);

    atomic_store(&sb->procs[proc].quiescing, 1);
    if (pid > 0)
        kill(pid, SIGUSR1);
}

void qt_mpm_retire_old(qt_scoreboard *sb)
{
    unsigned gen = atomic_load(&sb->running_generation);

    for (unsigned i = 0; i < sb->nprocs; i++)
        if (atomic_load(&sb->procs[i].pid) > 0 &&
            atomic_load(&sb->procs[i].generation) != gen)
            atomic_store(&sb->procs[i].quiescing, 1);
    /* By pid from the scoreboard: CGI children of a child are not hit. */
    qt_sb_signal_all(sb, SIGUSR1, true);
}

void qt_mpm_new_generation(qt_scoreboard *sb, const qt_config *cfg)
{
    atomic_store(&sb->running_generation, cfg->generation);
    sb->restart_time = time(NULL);
}

void qt_mpm_graceful_stop(qt_runtime *rt, qt_scoreboard *sb, int timeout_s,
                          const char *tag)
{
    qt_log(QT_LOG_NOTICE, tag, "QT0114", "caught SIGWINCH, shutting down gracefully");
    qt_listen_close(rt->cfg);
    qt_pidfile_remove(qt_config_path(rt->cfg, rt->cfg->pid_file));
    for (unsigned i = 0; i < sb->nprocs; i++)
        if (atomic_load(&sb->procs[i].pid) > 0)
            qt_mpm_retire(sb, i);
    qt_mpm_drain_children(sb, timeout_s);
}

int qt_accept_set(const struct pollfd *pfd, size_t nfds, size_t exclusive)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);

    for (size_t i = 0; ep >= 0 && i < nfds; i++) {
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = i };

        if (i < exclusive)
            ev.events |= EPOLLEXCLUSIVE;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, pfd[i].fd, &ev) < 0) {
            close(ep);
            ep = -1;
        }
    }
    return ep;
}

int qt_accept_wait(int ep, struct pollfd *pfd, size_t nfds, int timeout_ms,
                   const sigset_t *sigmask)
{
    struct epoll_event ev[8];
    int n;

    if (ep < 0) {               /* no set (out of fds): every child wakes */
        struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000 };

        return ppoll(pfd, nfds, timeout_ms < 0 ? NULL : &ts, sigmask);
    }
    n = epoll_pwait(ep, ev, 8, timeout_ms, sigmask);
    for (size_t i = 0; i < nfds; i++)
        pfd[i].revents = 0;
    for (int k = 0; k < n; k++)
        if (ev[k].data.u64 < nfds)
            pfd[ev[k].data.u64].revents = (short)(ev[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP));
    return n;
}

void qt_mpm_raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}
