/*
 * Daemon plumbing: detaching, the pid file, signals as flags, privileges,
 * and the reload that swaps in a new configuration only if it is valid.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* accept4, pipe2, ppoll */
#endif
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"
#include "mpm.h"
#include "process.h"

/* ------------------------------------------------------------- signals */

/*
 * Signal state is process-wide by nature: the handlers may only touch
 * sig_atomic_t flags and write(2) to the self-pipe that wakes the master.
 */
static volatile sig_atomic_t pending[QT_SIG_CHILD + 1];
static int sig_pipe[2] = { -1, -1 };

static const int master_signals[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1,
                                      SIGWINCH, SIGCHLD };
#define N_MASTER_SIGNALS (sizeof master_signals / sizeof master_signals[0])

static enum qt_sig sig_kind(int signo)
{
    switch (signo) {
    case SIGTERM: case SIGINT: return QT_SIG_STOP;
    case SIGHUP:               return QT_SIG_RESTART;
    case SIGUSR1:              return QT_SIG_GRACEFUL;
    case SIGWINCH:             return QT_SIG_GRACEFUL_STOP;
    default:                   return QT_SIG_CHILD;
    }
}

static void on_master_signal(int signo)
{
    int saved = errno;

    pending[sig_kind(signo)] = 1;
    if (sig_pipe[1] >= 0 && write(sig_pipe[1], "s", 1) < 0) {
        /* A full pipe already wakes the master: nothing to do. */
    }
    errno = saved;
}

static void install(int signo, void (*fn)(int))
{
    struct sigaction sa = { .sa_handler = fn };

    sigemptyset(&sa.sa_mask);
    if (fn != SIG_IGN && fn != SIG_DFL)
        sa.sa_flags = SA_RESTART;     /* the self-pipe wakes poll() anyway */
    sigaction(signo, &sa, NULL);
}

void qt_signals_master(bool one_process)
{
    sigset_t all;

    if (sig_pipe[0] < 0 && pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) < 0)
        sig_pipe[0] = sig_pipe[1] = -1;   /* flags still work; wake-up is by timeout */
    for (size_t i = 0; i < N_MASTER_SIGNALS; i++)
        install(master_signals[i], on_master_signal);
    /* -X: like Apache, restarts are not caught in one-process mode. */
    if (one_process) {
        install(SIGHUP, SIG_IGN);
        install(SIGUSR1, SIG_IGN);
    }
    install(SIGPIPE, SIG_IGN);
    sigemptyset(&all);
    for (size_t i = 0; i < N_MASTER_SIGNALS; i++)
        sigaddset(&all, master_signals[i]);
    sigprocmask(SIG_UNBLOCK, &all, NULL);
}

enum qt_sig qt_signal_take(void)
{
    static const enum qt_sig order[] = { QT_SIG_STOP, QT_SIG_GRACEFUL_STOP,
                                         QT_SIG_RESTART, QT_SIG_GRACEFUL,
                                         QT_SIG_CHILD };
    char drain[64];

    while (sig_pipe[0] >= 0 && read(sig_pipe[0], drain, sizeof drain) > 0)
        ;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        if (pending[order[i]]) {
            pending[order[i]] = 0;
            return order[i];
        }
    }
    return QT_SIG_NONE;
}

int qt_signal_fd(void)
{
    return sig_pipe[0];
}

/*
 * Only the master's own handlers go back to default: a child that already
 * installed its handler (prefork's SIGUSR1) keeps it, so a signal sent
 * right after fork() is never lost.  PIPE stays ignored: a write to a
 * client that went away must fail with EPIPE, not kill the child.
 */
void qt_signals_child(void)
{
    sigset_t none;

    for (size_t i = 0; i < N_MASTER_SIGNALS; i++) {
        struct sigaction old;

        sigaction(master_signals[i], NULL, &old);
        if (old.sa_handler == on_master_signal)
            install(master_signals[i], SIG_DFL);
        pending[sig_kind(master_signals[i])] = 0;
    }
    install(SIGPIPE, SIG_IGN);
    for (int i = 0; i < 2; i++) {
        if (sig_pipe[i] >= 0)
            close(sig_pipe[i]);
        sig_pipe[i] = -1;
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* ----------------------------------------------------------- detaching */

/* Write end of the pipe the detached child reports readiness on. */
static int ready_fd = -1;

static void stdio_to_null(void)
{
    struct stat st;
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

    if (fd < 0)
        return;
    dup2(fd, STDIN_FILENO);
    dup2(fd, STDOUT_FILENO);
    /* The log layer may have put ErrorLog on stderr: keep a file there.
     * A terminal or a pipe must go, or `httpd -k start | cat` never ends. */
    if (fstat(STDERR_FILENO, &st) < 0 || !S_ISREG(st.st_mode))
        dup2(fd, STDERR_FILENO);
    if (fd > STDERR_FILENO)
        close(fd);
}

/* The parent waits for qt_daemon_ready() so `httpd -k start` returns only
 * once the pid file exists; EOF without a byte means startup failed. */
static void parent_wait_and_exit(int rfd)
{
    char c;
    ssize_t n;

    do
        n = read(rfd, &c, 1);
    while (n < 0 && errno == EINTR);
    _exit(n == 1 ? 0 : 1);
}

int qt_daemonize(char *err, size_t errlen)
{
    int fds[2];
    pid_t pid;

    if (pipe2(fds, O_CLOEXEC) < 0)
        goto fail;
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        goto fail;
    }
    if (pid > 0) {
        close(fds[1]);
        parent_wait_and_exit(fds[0]);
    }
    close(fds[0]);
    ready_fd = fds[1];
    if (setsid() < 0 || chdir("/") < 0)
        goto fail;
    stdio_to_null();
    return 0;
fail:
    snprintf(err, errlen, "(%d)%s: cannot detach from the terminal",
             errno, strerror(errno));
    return -1;
}

void qt_daemon_ready(void)
{
    if (ready_fd < 0)
        return;
    if (write(ready_fd, "r", 1) < 0) {
        /* The parent is gone: nobody to tell. */
    }
    close(ready_fd);
    ready_fd = -1;
}

/* ------------------------------------------------------------ pid file */

int qt_pidfile_write(const char *path, char *err, size_t errlen)
{
    char tmp[4096], line[32];
    int fd, len, rc = -1;

    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    len = snprintf(line, sizeof line, "%ld\n", (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        goto out;
    /* tmp + rename: a reader (`-k stop`) never sees a half-written file. */
    if (write(fd, line, (size_t)len) != len || close(fd) < 0) {
        if (fd >= 0)
            close(fd);
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) < 0) {
        unlink(tmp);
        goto out;
    }
    rc = 0;
out:
    if (rc < 0)
        snprintf(err, errlen, "(%d)%s: could not create pid file %s",
                 errno, strerror(errno), path);
    return rc;
}

pid_t qt_pidfile_read(const char *path)
{
    char buf[32], *end;
    ssize_t n;
    long pid;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    errno = 0;
    pid = strtol(buf, &end, 10);
    if (errno || end == buf || (*end && *end != '\n') || pid <= 0 || pid > INT32_MAX)
        return -1;
    return (pid_t)pid;
}

void qt_pidfile_remove(const char *path)
{
    if (path && unlink(path) < 0 && errno != ENOENT)
        qt_log(QT_LOG_WARN, "core", "QT0105", "(%d)%s: could not remove pid file %s",
               errno, strerror(errno), path);
}

/* -------------------------------------------------------------- reload */

static void reload_refused(const char *why)
{
    qt_log(QT_LOG_ERR, "core", "QT0106",
           "reload refused: %s; still serving the previous configuration", why);
}

/* Listeners and logs of the new config; undoes the listeners on failure. */
static bool take_over(qt_config *cfg, qt_config *old, char *err, size_t errlen)
{
    char undo[256];

    if (qt_listen_open(cfg, old, err, errlen) < 0)
        return false;
    if (qt_log_reopen(cfg, err, errlen) == 0)
        return true;
    if (qt_listen_open(old, cfg, undo, sizeof undo) < 0)
        qt_log(QT_LOG_ERR, "core", "QT0107", "restoring the listeners: %s", undo);
    qt_listen_close(cfg);
    return false;
}

/* A PidFile that moved with the reload moves on disk too. */
static void follow_pidfile(const qt_config *old, const qt_config *cfg)
{
    char err[512];
    const char *from = qt_config_path(old, old->pid_file);
    const char *to = qt_config_path(cfg, cfg->pid_file);

    if (strcmp(from, to) == 0)
        return;
    if (qt_pidfile_write(to, err, sizeof err) < 0) {
        qt_log(QT_LOG_ERR, "core", "QT0104", "%s", err);
        return;
    }
    qt_pidfile_remove(from);
}

bool qt_runtime_reload(qt_runtime *rt)
{
    char err[1024];
    qt_config *old = rt->cfg;
    qt_config *cfg = qt_config_load(rt->args, err, sizeof err);

    if (!cfg)
        goto refused;
    if (!cfg->mpm || !old->mpm || strcmp(cfg->mpm->name, old->mpm->name) != 0) {
        snprintf(err, sizeof err, "the MPM cannot be changed by a restart "
                 "(running %s, configured %s); stop and start the server",
                 old->mpm ? old->mpm->name : "none",
                 cfg->mpm ? cfg->mpm->name : "none");
        goto refused;
    }
    if (qt_check_user(cfg, err, sizeof err) < 0 || !take_over(cfg, old, err, sizeof err))
        goto refused;
    cfg->generation = old->generation + 1;
    follow_pidfile(old, cfg);
    rt->cfg = cfg;
    qt_log_close(old);
    qt_config_free(old);
    return true;
refused:
    if (cfg)
        qt_config_free(cfg);
    reload_refused(err);
    return false;
}

/* ----------------------------------------------------------- privileges */

/* "name" or "#123"; false if unknown. */
static bool lookup_uid(const char *name, uid_t *uid, gid_t *gid)
{
    struct passwd *pw;

    if (name[0] == '#') {
        *uid = (uid_t)strtoul(name + 1, NULL, 10);
        pw = getpwuid(*uid);
        *gid = pw ? pw->pw_gid : (gid_t)*uid;
        return true;
    }
    pw = getpwnam(name);
    if (!pw)
        return false;
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return true;
}

static bool lookup_gid(const char *name, gid_t *gid)
{
    struct group *gr;

    if (name[0] == '#') {
        *gid = (gid_t)strtoul(name + 1, NULL, 10);
        return true;
    }
    gr = getgrnam(name);
    if (gr)
        *gid = gr->gr_gid;
    return gr != NULL;
}

static bool switch_to(const char *user, uid_t uid, gid_t gid)
{
    if (setgid(gid) < 0) {
        qt_log(QT_LOG_ALERT, "core", "QT0131", "(%d)%s: setgid: unable to set group id to %ld",
               errno, strerror(errno), (long)gid);
        return false;
    }
    if (user[0] != '#' && initgroups(user, gid) < 0) {
        qt_log(QT_LOG_ALERT, "core", "QT0132", "(%d)%s: initgroups: unable to set groups for %s",
               errno, strerror(errno), user);
        return false;
    }
    if (user[0] == '#' && setgroups(1, &gid) < 0)
        return false;
    if (setuid(uid) < 0) {
        qt_log(QT_LOG_ALERT, "core", "QT0133", "(%d)%s: setuid: unable to change to uid %ld",
               errno, strerror(errno), (long)uid);
        return false;
    }
    return true;
}

int qt_check_user(const qt_config *cfg, char *err, size_t errlen)
{
    uid_t uid;
    gid_t gid;

    if (geteuid() != 0 || !cfg->user)
        return 0;
    if (!lookup_uid(cfg->user, &uid, &gid)) {
        snprintf(err, errlen, "User %s: no such user", cfg->user);
        return -1;
    }
    if (cfg->group && !lookup_gid(cfg->group, &gid)) {
        snprintf(err, errlen, "Group %s: no such group", cfg->group);
        return -1;
    }
    return 0;
}

/*
 * Only root can switch, and only root needs to.  Without a User directive
 * the children keep the master's identity (a test run as root in a private
 * temp dir would otherwise lose access to its own files).
 */
bool qt_drop_privileges(const qt_config *cfg)
{
    uid_t uid;
    gid_t gid;

    if (geteuid() != 0 || !cfg->user)
        return true;
    if (!lookup_uid(cfg->user, &uid, &gid)) {
        qt_log(QT_LOG_ALERT, "core", "QT0130", "User %s: no such user", cfg->user);
        return false;
    }
    if (cfg->group && !lookup_gid(cfg->group, &gid)) {
        qt_log(QT_LOG_ALERT, "core", "QT0130", "Group %s: no such group", cfg->group);
        return false;
    }
    return switch_to(cfg->user, uid, gid);
}

void qt_child_init(const qt_config *cfg)
{
    for (size_t i = 0; i < cfg->nmodules; i++)
        if (cfg->modules[i]->child_init)
            cfg->modules[i]->child_init((qt_config *)cfg);
}
