/*
 * The cgi-script handler: CGI/1.1 as Apache's mod_cgi runs it.
 *
 * The script is started with vfork + exec (never fork: under worker and
 * hybrid the server is a big threaded process), in its own directory, with
 * pipes for stdin, stdout and stderr and nothing else open.  The parent ends
 * are non-blocking and sit in one epoll set, and every wait is one
 * qt_wait_fd() on that set, so under event/hybrid a waiting script costs a
 * parked coroutine, not a thread.  Unlike mod_cgi, which writes the whole
 * request body before reading any output, both directions are served at
 * once: a script that echoes a large body (cat) cannot deadlock.
 *
 * The environment and the response head are built and parsed by the pure
 * functions of cgi_env.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgi_env.h"
#include "httpdate.h"
#include "log.h"
#include "mime.h"
#include "mpm.h"
#include "range.h"
#include "uri.h"

#define CGI_IO_BUF (64 * 1024)
#define CGI_MAX_HEAD (256 * 1024)       /* whole response head */
#define CGI_KILL_WAIT_MS 3000           /* SIGTERM -> SIGKILL, as Apache */
#define CGI_EXIT_GRACE_MS 20            /* a script that closed stdout is exiting */
#define CGI_STDERR_GRACE_MS 1000        /* stderr after stdout's EOF */
/* The handler an Action swaps in; the Action's type travels in the
 * HANDLER variable, which the action script sees as REDIRECT_HANDLER. */
#define QT_ACTION_HANDLER "cgi-action"

/* ------------------------------------------------------------ configuration */

typedef struct {
    bool set;
    struct rlimit lim;
} cgi_rlimit;

/* Action type script [virtual]: requests for a handler name or MIME type
 * become an internal redirect to a CGI script (Apache's mod_actions). */
typedef struct cgi_action {
    const char *type;                   /* handler name or MIME type */
    const char *script;                 /* local URL of the CGI */
    bool virtual_;                      /* no file needs to exist */
    struct cgi_action *next;
} cgi_action;

typedef struct {
    qt_cgi_envop *ops;                  /* SetEnv/PassEnv/UnsetEnv in order */
    int pass_auth;                      /* CGIPassAuth: -1 unset */
    int64_t timeout_ms;                 /* CGIScriptTimeout: -1 unset (Timeout) */
    cgi_rlimit cpu, mem, nproc;
    cgi_action *actions;                /* inner scope's first */
} cgi_dir_conf;

static void *cgi_create_dir(qt_pool *p)
{
    cgi_dir_conf *c = qt_pcalloc(p, sizeof *c);
    c->pass_auth = -1;
    c->timeout_ms = -1;
    return c;
}

static qt_cgi_envop *ops_copy(qt_pool *p, const qt_cgi_envop *ops, qt_cgi_envop *tail)
{
    if (!ops)
        return tail;
    qt_cgi_envop *op = qt_pmemdup(p, ops, sizeof *op);
    op->next = ops_copy(p, ops->next, tail);
    return op;
}

static cgi_action *actions_copy(qt_pool *p, const cgi_action *a, cgi_action *tail)
{
    if (!a)
        return tail;
    cgi_action *n = qt_pmemdup(p, a, sizeof *n);
    n->next = actions_copy(p, a->next, tail);
    return n;
}

static void *cgi_merge_dir(qt_pool *p, const void *base, const void *add)
{
    const cgi_dir_conf *b = base, *a = add;
    cgi_dir_conf *m = qt_pmemdup(p, a, sizeof *m);
    /* The outer scope's variables first, so the inner scope overrides. */
    m->ops = ops_copy(p, b->ops, ops_copy(p, a->ops, NULL));
    /* The first match wins, so the inner scope's actions go first. */
    m->actions = actions_copy(p, a->actions, b->actions);
    if (a->pass_auth < 0)
        m->pass_auth = b->pass_auth;
    if (a->timeout_ms < 0)
        m->timeout_ms = b->timeout_ms;
    if (!a->cpu.set)
        m->cpu = b->cpu;
    if (!a->mem.set)
        m->mem = b->mem;
    if (!a->nproc.set)
        m->nproc = b->nproc;
    return m;
}

static void add_op(qt_cmd *cmd, const char *name, const char *value)
{
    cgi_dir_conf *c = cmd->dir_conf;
    qt_cgi_envop *op = qt_pcalloc(cmd->pool, sizeof *op), **pp = &c->ops;
    op->name = qt_pstrdup(cmd->pool, name);
    op->value = value ? qt_pstrdup(cmd->pool, value) : NULL;
    while (*pp)
        pp = &(*pp)->next;
    *pp = op;
}

static const char *set_env(qt_cmd *cmd, int argc, char **argv)
{
    add_op(cmd, argv[0], argc > 1 ? argv[1] : "");
    return NULL;
}

/* PassEnv reads the server's environment once, when the config is read. */
static const char *pass_env(qt_cmd *cmd, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *v = getenv(argv[i]);
        if (v)
            add_op(cmd, argv[i], v);
        else
            qt_log(QT_LOG_WARN, "cgi", "QT0720", "%s:%u: PassEnv variable %s was undefined",
                   cmd->file, cmd->line, argv[i]);
    }
    return NULL;
}

static const char *unset_env(qt_cmd *cmd, int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        add_op(cmd, argv[i], NULL);
    return NULL;
}

static const char *set_pass_auth(qt_cmd *cmd, int argc, char **argv)
{
    ((cgi_dir_conf *)cmd->dir_conf)->pass_auth = argv[0][0] == '1';
    return NULL;
}

/* "30" (seconds), "30s" or "500ms", as Apache's time-interval. */
static const char *set_timeout(qt_cmd *cmd, int argc, char **argv)
{
    char *end;
    errno = 0;
    long long v = strtoll(argv[0], &end, 10);
    if (errno || v < 0 || end == argv[0])
        return "expects a time in seconds (30, 30s or 500ms)";
    if (strcmp(end, "ms") == 0)
        ;
    else if (*end == '\0' || strcmp(end, "s") == 0)
        v *= 1000;
    else
        return "expects a time in seconds (30, 30s or 500ms)";
    ((cgi_dir_conf *)cmd->dir_conf)->timeout_ms = v;
    return NULL;
}

static bool rlimit_value(const char *s, rlim_t *out)
{
    if (strcasecmp(s, "max") == 0) {
        *out = RLIM_INFINITY;
        return true;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    *out = (rlim_t)v;
    return !errno && end != s && *end == '\0' && s[0] != '-';
}

/* RLimitCPU|MEM|NPROC soft [hard]: "max" means the current hard limit. */
static const char *set_rlimit(qt_cmd *cmd, int argc, char **argv)
{
    cgi_dir_conf *c = cmd->dir_conf;
    cgi_rlimit *l = strcasecmp(cmd->name, "RLimitCPU") == 0 ? &c->cpu
                  : strcasecmp(cmd->name, "RLimitMEM") == 0 ? &c->mem : &c->nproc;
    rlim_t soft, hard;
    if (!rlimit_value(argv[0], &soft) || (argc > 1 && !rlimit_value(argv[1], &hard)))
        return "expects a number or 'max'";
    l->set = true;
    l->lim.rlim_cur = soft;
    l->lim.rlim_max = argc > 1 ? hard : soft;
    return NULL;
}

static const char *set_action(qt_cmd *cmd, int argc, char **argv)
{
    if (argc > 2 && strcasecmp(argv[2], "virtual") != 0)
        return "the third argument must be 'virtual'";
    if (argv[1][0] != '/')
        return "the script must be a local URL path starting with '/'";
    cgi_dir_conf *c = cmd->dir_conf;
    cgi_action *a = qt_pcalloc(cmd->pool, sizeof *a);
    a->type = qt_pstrdup(cmd->pool, argv[0]);
    a->script = qt_pstrdup(cmd->pool, argv[1]);
    a->virtual_ = argc > 2;
    a->next = c->actions;
    c->actions = a;
    return NULL;
}

static const qt_directive cgi_directives[] = {
    { "SetEnv", QT_TAKE12, QT_CTX_ANY, set_env,
      "NAME [value]: an environment variable for CGI scripts" },
    { "PassEnv", QT_ONE_PLUS, QT_CTX_ANY, pass_env,
      "NAME...: pass these variables of the server's own environment to CGI scripts" },
    { "UnsetEnv", QT_ONE_PLUS, QT_CTX_ANY, unset_env,
      "NAME...: remove these variables from CGI scripts' environment" },
    { "CGIPassAuth", QT_FLAG, QT_CTX_ANY, set_pass_auth,
      "On|Off: pass Authorization and Proxy-Authorization to CGI scripts" },
    { "CGIScriptTimeout", QT_TAKE1, QT_CTX_ANY, set_timeout,
      "seconds: longest wait for output from a CGI script (default: Timeout)" },
    { "RLimitCPU", QT_TAKE12, QT_CTX_ANY, set_rlimit,
      "soft [hard]|max: CPU seconds for each CGI process" },
    { "RLimitMEM", QT_TAKE12, QT_CTX_ANY, set_rlimit,
      "soft [hard]|max: address space bytes for each CGI process" },
    { "RLimitNPROC", QT_TAKE12, QT_CTX_ANY, set_rlimit,
      "soft [hard]|max: processes of the CGI user" },
    { "Action", QT_TAKE23, QT_CTX_ANY, set_action,
      "handler-or-type /cgi-url [virtual]: run this CGI for such requests" },
    { 0 }
};

static int action_fixup(qt_request *r);
static int action_handler(qt_request *r);

const qt_module qt_cgi_module = {
    QT_MODULE_HEADER("cgi_module"),
    .directives = cgi_directives,
    .handlers = (const qt_handler[]){
        { "cgi-script", qt_cgi_handler },
        { QT_ACTION_HANDLER, action_handler },
        { 0 } },
    .create_dir_conf = cgi_create_dir,
    .merge_dir_conf = cgi_merge_dir,
    .fixups = action_fixup,
};

static const cgi_dir_conf *dir_conf(const qt_request *r)
{
    static const cgi_dir_conf defaults = { .pass_auth = -1, .timeout_ms = -1 };
    const cgi_dir_conf *c = qt_module_dir_conf(r, &qt_cgi_module);
    return c ? c : &defaults;
}

/* ------------------------------------------------------------ logging */

static void cgi_log(const qt_request *r, int level, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Like qt_rlog, tagged [cgi:level] as Apache's mod_cgi lines are. */
static void cgi_log(const qt_request *r, int level, const char *id, const char *fmt, ...)
{
    char client[96];
    snprintf(client, sizeof client, "%s:%d", r->conn->peer_ip, r->conn->peer_port);
    va_list ap;
    va_start(ap, fmt);
    qt_vlog(level, "cgi", id, client, fmt, ap);
    va_end(ap);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ------------------------------------------------------------ environment */

static const qt_request *first_request(const qt_request *r)
{
    while (r->prev)
        r = r->prev;
    return r;
}

static void fill_env_in(qt_request *r, const cgi_dir_conf *dc, qt_cgi_env_in *in)
{
    const qt_server *s = r->server;
    *in = (qt_cgi_env_in){
        .method = r->method, .protocol = r->protocol,
        /* REQUEST_URI is what the client asked for, across redirects */
        .request_uri = first_request(r)->unparsed_uri,
        .args = r->args, .path = r->path, .path_info = r->path_info,
        .path_translated = qt_cgi_translate(r->pool, s, r->path_info),
        .filename = r->filename,
        .headers = r->http.headers, .nheaders = r->http.nheaders,
        .pass_auth = dc->pass_auth == 1,
        .remote_addr = r->conn->peer_ip, .remote_port = r->conn->peer_port,
        .remote_user = r->user,
        .server_name = r->hostname && r->hostname[0] ? r->hostname : s->server_name,
        .server_port = qt_request_port(r),
        .server_addr = r->conn->local_ip, .server_admin = s->server_admin,
        .server_software = qt_server_banner(r->cfg), .server_signature = "",
        .document_root = s->document_root,
        .context_prefix = r->uri_prefix, .context_document_root = r->context_root,
        .scheme = qt_request_scheme(r), .https = r->conn->tls,
        .subprocess_env = qt_cgi_env_apply(r->pool, r->subprocess_env, dc->ops),
        .tz = getenv("TZ"), .ld_library_path = getenv("LD_LIBRARY_PATH"),
    };
    if (r->prev) {
        in->redirect_url = r->prev->path;
        in->redirect_query = r->prev->args;
        in->redirect_status = r->prev->status ? r->prev->status : 200;
    }
}

/* ------------------------------------------------------------ the process */

typedef struct {
    const qt_request *r;
    pid_t pid;                          /* 0 once reaped */
    int in, out, err;                   /* parent ends; -1 when closed */
    int ep;                             /* epoll set of the above (+ client) */
    bool in_watched;                    /* stdin is in the set (EPOLLOUT) */
} cgi_proc;

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* waitpid without blocking; true once the child is gone. */
static bool reaped(cgi_proc *p)
{
    if (p->pid <= 0)
        return true;
    int st;
    pid_t w = waitpid(p->pid, &st, WNOHANG);
    if (w == 0)
        return false;
    p->pid = 0;                         /* reaped, or ECHILD: not ours to wait */
    return true;
}

/*
 * Waits up to ms for the script to exit.  A pidfd becomes readable when the
 * process exits, so the wait goes through the MPM like any other (no
 * polling sleeps: a script usually exits right after closing its output,
 * and a sleep here would hold the worker for a millisecond per request).
 * Without pidfds (Linux < 5.3) it polls with a growing sleep.
 */
static bool reap_within(cgi_proc *p, int64_t ms)
{
    int64_t end = qt_now_ms() + ms, step = 1;
    if (reaped(p))
        return true;
    int pfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
    if (pfd >= 0) {
        bool done = false;
        while (!(done = reaped(p)) && qt_wait_fd(pfd, POLLIN, end) == QT_OK)
            ;
        close(pfd);
        return done || reaped(p);
    }
    while (!reaped(p)) {
        int64_t left = end - qt_now_ms();
        if (left <= 0)
            return false;
        qt_sleep_ms(step < left ? step : left);
        step = step * 2 > 100 ? 100 : step * 2;
    }
    return true;
}

static void blocking_wait(void *arg)
{
    cgi_proc *p = arg;
    while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    p->pid = 0;
}

/*
 * Never a zombie: a script still running when its request ends gets
 * SIGTERM, then SIGKILL after 3 s (Apache's kill_after_timeout).  The
 * signals go to the script's process group, so its own children go too.
 */
static void proc_cleanup(void *arg)
{
    cgi_proc *p = arg;
    close_fd(&p->in);
    close_fd(&p->out);
    close_fd(&p->err);
    close_fd(&p->ep);
    if (reap_within(p, CGI_EXIT_GRACE_MS))
        return;
    kill(-p->pid, SIGTERM);
    kill(p->pid, SIGTERM);
    if (reap_within(p, CGI_KILL_WAIT_MS))
        return;
    kill(-p->pid, SIGKILL);
    kill(p->pid, SIGKILL);
    qt_run_blocking(blocking_wait, p);   /* SIGKILL cannot be ignored: short */
}

/* A fresh pipe end's status flags are only its access mode, which F_SETFL
 * ignores: no F_GETFL round trip needed. */
static int nonblock(int fd)
{
    return fcntl(fd, F_SETFL, O_NONBLOCK);
}

/* Three pipes; child ends stay blocking, all ends close-on-exec. */
static int make_pipes(int child[3], cgi_proc *p)
{
    int fds[3][2];
    int made = 0;
    for (; made < 3; made++)
        if (pipe2(fds[made], O_CLOEXEC) < 0)
            goto fail;
    child[0] = fds[0][0];
    p->in = fds[0][1];
    p->out = fds[1][0];
    child[1] = fds[1][1];
    p->err = fds[2][0];
    child[2] = fds[2][1];
    if (nonblock(p->in) < 0 || nonblock(p->out) < 0 || nonblock(p->err) < 0)
        return -1;                      /* caller closes everything */
    return 0;
fail:
    while (made-- > 0) {
        close(fds[made][0]);
        close(fds[made][1]);
    }
    return -1;
}

static char *dir_of(qt_pool *pool, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return ".";
    return slash == path ? "/" : qt_pstrndup(pool, path, (size_t)(slash - path));
}

/* What the vfork child needs, prepared by the parent: the child may only
 * make system calls (it borrows the parent's memory and stack). */
typedef struct {
    int fd[3];                          /* become 0, 1, 2 */
    const char *dir, *script;
    char **argv, **envp;
    /* The child's errno if exec failed.  volatile: the compiler sees the
     * write only on a path that never returns (it cannot know the memory
     * is shared), and would otherwise assume the field is still 0. */
    volatile int err;
} spawn_args;

/* Highest descriptor to close by hand where close_range is missing. */
static int fd_limit(void)
{
    static int limit;
    struct rlimit rl;
    if (limit == 0)
        limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536
                ? (int)rl.rlim_cur : 65536;
    return limit;
}

/*
 * The child between vfork and exec.  All signals are blocked (the parent
 * blocked them), so no handler of the server can run here on the borrowed
 * memory until the mask is emptied right before execve.  By then the
 * script has its own process group, so only a signal aimed at its new pid
 * could reach it.  The standard signals go back to SIG_DFL: the server
 * ignores SIGPIPE (a script must not inherit that) and may ignore others.
 * Real-time signals are left alone: the server never ignores them (one its
 * launcher ignored stays ignored), and execve resets any handler.  That is
 * 31 system calls, not the 64 of glibc's posix_spawn, and no stack to map
 * and unmap (whose TLB flush is the costliest part of posix_spawn in a
 * threaded server).
 */
static void __attribute__((noreturn)) spawn_child(spawn_args *a)
{
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    sigset_t none;
    if (setpgid(0, 0) < 0)
        goto fail;
    for (int i = 0; i < 3; i++) {
        /* dup2 onto itself would keep close-on-exec: clear it instead */
        if (a->fd[i] == i ? fcntl(i, F_SETFD, 0) < 0 : dup2(a->fd[i], i) < 0)
            goto fail;
    }
    if (close_range(3, ~0U, 0) < 0)
        for (int fd = 3; fd < fd_limit(); fd++)
            close(fd);
    if (chdir(a->dir) < 0)
        goto fail;
    for (int sig = 1; sig < 32; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(a->script, a->argv, a->envp);
fail:
    a->err = errno;                     /* the parent reads it after we exit */
    _exit(127);
}

/* vfork in a frame of its own: the child never returns from it (spawn_child
 * ends in execve or _exit), and no local of the caller lives across it. */
static pid_t __attribute__((noinline)) vfork_child(spawn_args *a)
{
    pid_t pid = vfork();
    if (pid == 0)
        spawn_child(a);
    return pid;
}

/*
 * vfork + exec (the issue allows it; posix_spawn costs more here, see
 * spawn_child): the pipes on 0/1/2, every other fd closed (close_range,
 * so a descriptor some other code forgot to mark close-on-exec still does
 * not leak), cwd = the script's directory, default signal dispositions, an
 * empty signal mask, and a process group of its own for clean killing.
 * vfork suspends only this thread until the child has exec'ed or exited,
 * so an exec failure is known here.  Returns 0 or an errno.
 */
static int spawn(qt_pool *pool, cgi_proc *p, const int child[3], char **argv, char **envp,
                 const char *script)
{
    spawn_args a = {
        .fd = { child[0], child[1], child[2] },
        .dir = dir_of(pool, script), .script = script, .argv = argv, .envp = envp,
    };
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = vfork_child(&a);
    int err = pid < 0 ? errno : 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid > 0 && a.err) {
        err = a.err;                    /* it exited with 127: reap it now */
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        pid = 0;
    }
    p->pid = pid > 0 ? pid : 0;
    return err;
}

/*
 * RLimit*: set from outside right after the spawn (prlimit), so the vfork
 * child stays a plain sequence of system calls and a failure can be
 * logged.  The script runs unlimited for the few microseconds in between.
 */
static void apply_rlimits(const qt_request *r, const cgi_dir_conf *dc, pid_t pid)
{
    const struct { const cgi_rlimit *l; int res; const char *name; } lims[] = {
        { &dc->cpu, RLIMIT_CPU, "RLimitCPU" },
        { &dc->mem, RLIMIT_AS, "RLimitMEM" },
        { &dc->nproc, RLIMIT_NPROC, "RLimitNPROC" },
    };
    for (size_t i = 0; i < sizeof lims / sizeof lims[0]; i++) {
        if (!lims[i].l->set)
            continue;
        struct rlimit want = lims[i].l->lim, cur;
        /* "max" means the hard limit in force, as in Apache */
        if (prlimit(pid, lims[i].res, NULL, &cur) == 0) {
            if (want.rlim_max == RLIM_INFINITY || want.rlim_max > cur.rlim_max)
                want.rlim_max = cur.rlim_max;
            if (want.rlim_cur == RLIM_INFINITY || want.rlim_cur > want.rlim_max)
                want.rlim_cur = want.rlim_max;
        }
        if (prlimit(pid, lims[i].res, &want, NULL) < 0)
            cgi_log(r, QT_LOG_WARN, "QT0716", "%s for %s: %s", lims[i].name, r->filename,
                    strerror(errno));
    }
}

static int watch(cgi_proc *p, int fd, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.fd = fd };
    if (epoll_ctl(p->ep, EPOLL_CTL_ADD, fd, &ev) == 0)
        return 0;
    if (errno == EEXIST)
        return epoll_ctl(p->ep, EPOLL_CTL_MOD, fd, &ev);
    return -1;
}

/* Starts the script; returns 0 or the HTTP status to answer. */
static int start_script(qt_request *r, const cgi_dir_conf *dc, char **envp, cgi_proc *p)
{
    int child[3] = { -1, -1, -1 };
    *p = (cgi_proc){ .r = r, .in = -1, .out = -1, .err = -1, .ep = -1 };
    qt_pool_cleanup(r->pool, proc_cleanup, p);
    int rc = 500;
    if (make_pipes(child, p) < 0) {
        cgi_log(r, QT_LOG_ERR, "QT0710", "cannot create pipes for %s: %s", r->filename,
                strerror(errno));
        goto done;
    }
    p->ep = epoll_create1(EPOLL_CLOEXEC);
    if (p->ep < 0 || watch(p, p->out, EPOLLIN) < 0 || watch(p, p->err, EPOLLIN) < 0) {
        cgi_log(r, QT_LOG_ERR, "QT0710", "cannot watch the pipes of %s: %s", r->filename,
                strerror(errno));
        goto done;
    }
    char **argv = qt_cgi_argv(r->pool, r->filename, r->args);
    int err = spawn(r->pool, p, child, argv, envp, r->filename);
    if (err) {
        /* Apache logs the child's "(13)Permission denied: exec of ... failed" */
        cgi_log(r, QT_LOG_ERR, "QT0711", "(%d)%s: exec of '%s' failed", err, strerror(err),
                r->filename);
        cgi_log(r, QT_LOG_ERR, "QT0712", "End of script output before headers: %s",
                base_name(r->filename));
        goto done;
    }
    apply_rlimits(r, dc, p->pid);
    rc = 0;
done:
    for (int i = 0; i < 3; i++)
        if (child[i] >= 0)
            close(child[i]);
    return rc;
}

/* ------------------------------------------------------------ the exchange */

enum out_mode { OUT_HEAD, OUT_BODY, OUT_DISCARD };
enum after { AFTER_NONE, AFTER_LOCAL_REDIRECT };

typedef struct {
    qt_request *r;
    cgi_proc *p;
    bool nph;
    int64_t timeout_ms, deadline;

    char *inbuf;                        /* body bytes not yet in the pipe */
    size_t in_len, in_off;
    bool body_eof;                      /* all of the body read (or none) */

    enum out_mode mode;
    qt_buf head;                        /* unparsed response head */
    size_t head_total;                  /* head bytes parsed so far */
    qt_cgi_head h;
    bool out_eof, err_eof, client_gone, timed_out;
    int64_t err_deadline;
    qt_buf errline;                     /* partial stderr line */
    int status;                         /* error to answer, 0 if none */
    enum after after;
} cgi_run;

static void progress(cgi_run *x)
{
    x->deadline = qt_now_ms() + x->timeout_ms;
}

static void stderr_line(cgi_run *x, const char *s, size_t n)
{
    if (n && s[n - 1] == '\r')
        n--;
    cgi_log(x->r, QT_LOG_ERR, "QT0701", "stderr from %s: %.*s", x->r->filename, (int)n, s);
}

/* Each stderr line goes to the error log with the script's path. */
static void stderr_bytes(cgi_run *x, const char *s, size_t n)
{
    qt_buf *b = &x->errline;
    qt_buf_append(b, s, n);
    size_t start = 0;
    for (size_t i = 0; i < b->len; i++) {
        if (b->data[i] == '\n') {
            stderr_line(x, b->data + start, i - start);
            start = i + 1;
        }
    }
    if (b->len - start >= QT_CGI_MAX_LINE) {     /* an endless line: log in parts */
        stderr_line(x, b->data + start, b->len - start);
        start = b->len;
    }
    qt_buf_consume(b, start);
}

static void read_stderr(cgi_run *x)
{
    char buf[8192];
    for (;;) {
        ssize_t n = read(x->p->err, buf, sizeof buf);
        if (n > 0) {
            stderr_bytes(x, buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (x->errline.len)
            stderr_line(x, x->errline.data, x->errline.len);
        x->errline.len = 0;
        x->err_eof = true;
        epoll_ctl(x->p->ep, EPOLL_CTL_DEL, x->p->err, NULL);
        close_fd(&x->p->err);
        return;
    }
}

static const char *head_value(const qt_cgi_head *h, const char *name)
{
    for (const qt_kv *kv = h->headers; kv; kv = kv->next)
        if (strcasecmp(kv->name, name) == 0)
            return kv->value;
    return NULL;
}

/*
 * A GET whose script set no Status is conditional on the script's ETag and
 * Last-Modified, as in Apache (an explicit "Status: 200" opts out).
 * Returns 0, 304 or 412.
 */
static int conditional(qt_request *r, const qt_cgi_head *h)
{
    if (h->status || (r->method_number != QT_M_GET && r->method_number != QT_M_HEAD))
        return 0;
    const char *lm = head_value(h, "Last-Modified");
    time_t now = time(NULL), mtime;
    if (!lm || !qt_httpdate_parse(lm, &mtime) || mtime > now)
        mtime = now;                    /* unknown or future: "just changed" */
    qt_cond_headers c = {
        .if_match = qt_header_in(r, "If-Match"),
        .if_none_match = qt_header_in(r, "If-None-Match"),
        .if_modified_since = qt_header_in(r, "If-Modified-Since"),
        .if_unmodified_since = qt_header_in(r, "If-Unmodified-Since"),
    };
    return qt_cond_evaluate(&c, head_value(h, "ETag"), mtime, true);
}

/* The script's headers become the response's (Apache's rules). */
static void apply_head(cgi_run *x)
{
    qt_request *r = x->r;
    const qt_cgi_head *h = &x->h;
    for (const qt_kv *kv = h->headers; kv; kv = kv->next)
        qt_header_add(r, kv->name, kv->value);
    if (h->location && (h->status == 0 || h->status == 200)) {
        x->mode = OUT_DISCARD;          /* the script's body is not sent */
        if (h->location[0] == '/') {
            x->after = AFTER_LOCAL_REDIRECT;
            return;
        }
        qt_header_set(r, "Location", h->location);
        x->status = 302;
        return;
    }
    if (h->location)
        qt_header_set(r, "Location", h->location);
    r->status = h->status ? h->status : 200;
    r->status_line = h->status_line;
    if (h->content_type)
        qt_set_content_type(r, h->content_type);
    x->mode = OUT_BODY;
    int cond = conditional(r, h);
    if (cond == 304)
        r->status = 304;                /* headers only; the body is drained */
    else if (cond)
        x->status = cond;
    if (cond)
        x->mode = OUT_DISCARD;
}

static void head_failed(cgi_run *x, int rc)
{
    const char *name = base_name(x->r->filename);
    if (rc == QT_CGI_HEAD_STATUS)
        cgi_log(x->r, QT_LOG_ERR, "QT0703", "Invalid status line from script '%s': %s", name,
                x->h.bad);
    else if (rc == QT_CGI_HEAD_BAD)
        cgi_log(x->r, QT_LOG_ERR, "QT0703", "malformed header from script '%s': Bad header: %s",
                name, x->h.bad);
    else
        cgi_log(x->r, QT_LOG_ERR, "QT0703", "malformed header from script '%s': "
                "header line or head too long", name);
    x->mode = OUT_DISCARD;              /* drain the rest, then 500 */
    x->status = 500;
}

static int body_bytes(cgi_run *x, const char *s, size_t n, bool drained)
{
    if (n && qt_write(x->r, s, n) != QT_OK)
        return QT_ERROR;
    /* The client sees output as the script produces it. */
    return drained ? qt_flush(x->r) : QT_OK;
}

static int head_bytes(cgi_run *x, const char *s, size_t n)
{
    qt_buf_append(&x->head, s, n);
    size_t used;
    int rc = qt_cgi_head_parse(x->r->pool, &x->h, x->head.data, x->head.len, &used);
    x->head_total += used;
    if (rc == QT_CGI_HEAD_MORE && x->head_total > CGI_MAX_HEAD)
        rc = QT_CGI_HEAD_LONG;          /* endless header lines */
    qt_buf_consume(&x->head, used);
    if (rc == QT_CGI_HEAD_MORE)
        return QT_OK;
    if (rc != QT_CGI_HEAD_DONE) {
        head_failed(x, rc);
        return QT_OK;
    }
    apply_head(x);
    if (x->mode != OUT_BODY)
        return QT_OK;
    /* Headers go out now even without body bytes: a slow script's client
     * sees the response start as soon as the script decided it. */
    int w = body_bytes(x, x->head.data, x->head.len, true);
    qt_buf_free(&x->head);
    return w;
}

/* Reads what stdout has; QT_ERROR when the client is gone. */
static int read_stdout(cgi_run *x, char *buf)
{
    for (;;) {
        ssize_t n = read(x->p->out, buf, CGI_IO_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return QT_OK;
        if (n <= 0) {
            x->out_eof = true;
            x->err_deadline = qt_now_ms() + CGI_STDERR_GRACE_MS;
            epoll_ctl(x->p->ep, EPOLL_CTL_DEL, x->p->out, NULL);
            close_fd(&x->p->out);
            return QT_OK;
        }
        progress(x);
        bool drained = n < CGI_IO_BUF;
        int rc = QT_OK;
        if (x->mode == OUT_HEAD)
            rc = head_bytes(x, buf, (size_t)n);
        else if (x->mode == OUT_BODY)
            rc = body_bytes(x, buf, (size_t)n, drained);
        if (rc != QT_OK || drained)
            return rc;
    }
}

/* Writes pending body bytes to stdin with SIGPIPE held off this thread. */
static ssize_t pipe_write(int fd, const void *buf, size_t n)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t w = write(fd, buf, n);
    int e = errno;
    if (w < 0 && e == EPIPE) {
        struct timespec zero = { 0, 0 };
        sigtimedwait(&pipe_set, NULL, &zero);    /* consume our own SIGPIPE */
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return w;
}

static void unwatch_stdin(cgi_proc *p)
{
    if (p->in_watched)
        epoll_ctl(p->ep, EPOLL_CTL_DEL, p->in, NULL);
    p->in_watched = false;
}

static void close_stdin(cgi_run *x)
{
    if (x->p->in < 0)
        return;
    unwatch_stdin(x->p);
    close_fd(&x->p->in);
}

static void write_stdin(cgi_run *x)
{
    while (x->p->in >= 0 && x->in_off < x->in_len) {
        ssize_t w = pipe_write(x->p->in, x->inbuf + x->in_off, x->in_len - x->in_off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            x->p->in_watched = watch(x->p, x->p->in, EPOLLOUT) == 0;
            return;
        }
        if (w < 0) {
            /* The script stopped reading; the core drains the client's body. */
            cgi_log(x->r, QT_LOG_ERR, "QT0702", "Error writing request body to script %s: %s",
                    x->r->filename, strerror(errno));
            close_stdin(x);
            return;
        }
        x->in_off += (size_t)w;
        progress(x);
    }
    if (x->p->in >= 0 && x->in_off == x->in_len)
        unwatch_stdin(x->p);             /* no busy EPOLLOUT */
    if (x->p->in >= 0 && x->body_eof)
        close_stdin(x);                  /* the script sees EOF */
}

/* Reads the next piece of the (dechunked) body; may wait for the client. */
static int read_body(cgi_run *x)
{
    ssize_t n = qt_read_body(x->r, x->inbuf, CGI_IO_BUF);
    if (n < 0) {
        x->body_eof = true;
        x->status = x->r->status >= 400 ? x->r->status : 400;
        return QT_ERROR;
    }
    x->in_off = 0;
    x->in_len = (size_t)n;
    if (n == 0)
        x->body_eof = true;
    write_stdin(x);
    return QT_OK;
}

static bool wants_body(const cgi_run *x)
{
    return !x->body_eof && x->p->in >= 0 && x->in_off == x->in_len;
}

static bool finished(const cgi_run *x)
{
    return x->out_eof && (x->err_eof || qt_now_ms() >= x->err_deadline);
}

static int handle_events(cgi_run *x, const struct epoll_event *ev, int n, char *buf)
{
    for (int i = 0; i < n; i++) {
        int fd = ev[i].data.fd;
        if (fd == x->p->out && read_stdout(x, buf) != QT_OK)
            return QT_ERROR;
        else if (fd == x->p->err)
            read_stderr(x);
        else if (fd == x->p->in)
            write_stdin(x);
        else if (fd == x->r->conn->fd) {
            x->client_gone = true;      /* closed while the script ran */
            return QT_ERROR;
        }
    }
    return QT_OK;
}

static void timed_out(cgi_run *x)
{
    x->timed_out = true;
    cgi_log(x->r, QT_LOG_ERR, "QT0704", "Timeout waiting for output from CGI script %s",
            x->r->filename);
    if (x->mode == OUT_HEAD) {
        cgi_log(x->r, QT_LOG_ERR, "QT0705", "Script timed out before returning headers: %s",
                base_name(x->r->filename));
        x->status = 504;
    }
}

/* One wait for whichever pipe (or the client) is ready first. */
static int exchange(cgi_run *x)
{
    char *buf = qt_palloc(x->r->pool, CGI_IO_BUF);
    bool watching_client = false;
    while (!finished(x)) {
        if (!watching_client && x->body_eof) {
            /* A client that hangs up while the script runs stops it. */
            watch(x->p, x->r->conn->fd, EPOLLRDHUP);
            watching_client = true;
        }
        /* Take what is ready before parking: the MPM's netpoller may be
         * edge-triggered, and only a new readiness edge would wake us. */
        struct epoll_event ev[4];
        int n = epoll_wait(x->p->ep, ev, 4, 0);
        if (n < 0 && errno != EINTR)
            return QT_ERROR;
        if (n > 0) {
            if (handle_events(x, ev, n, buf) != QT_OK)
                return QT_ERROR;
            continue;
        }
        if (wants_body(x)) {
            if (read_body(x) != QT_OK)
                return QT_ERROR;
            continue;
        }
        int64_t deadline = x->out_eof ? x->err_deadline : x->deadline;
        int rc = qt_wait_fd(x->p->ep, POLLIN, deadline);
        if (rc == QT_ERROR)
            return QT_ERROR;
        if (rc == QT_TIMEOUT && !x->out_eof && qt_now_ms() >= x->deadline) {
            timed_out(x);
            return QT_ERROR;
        }
    }
    return QT_OK;
}

/* ------------------------------------------------------------ the handler */

/* Apache's checks, in its order; 0 to go on. */
static int check_script(qt_request *r)
{
    if (!r->script_alias && !(qt_dir_options(r->dir) & QT_OPT_EXECCGI)) {
        cgi_log(r, QT_LOG_ERR, "QT0706", "Options ExecCGI is off in this directory: %s",
                r->filename);
        return 403;
    }
    if (!r->filename)
        return 404;
    if (!r->have_finfo && stat(r->filename, &r->finfo) == 0)
        r->have_finfo = true;
    if (!r->have_finfo) {
        cgi_log(r, QT_LOG_ERR, "QT0707", "script not found or unable to stat: %s", r->filename);
        return 404;
    }
    if (S_ISDIR(r->finfo.st_mode)) {
        cgi_log(r, QT_LOG_ERR, "QT0708", "attempt to invoke directory as script: %s",
                r->filename);
        return 403;
    }
    if (r->path_info && r->path_info[0] && r->dir->accept_path_info == 0) {
        cgi_log(r, QT_LOG_ERR, "QT0709", "AcceptPathInfo off disallows user's path: %s%s",
                r->filename, r->path_info);
        return 404;
    }
    return 0;
}

/* Every REDIRECT_x of the new request, as Apache's internal redirect makes. */
static void redirect_vars(qt_request *r, const qt_kv *env)
{
    qt_kv *out = NULL;
    for (const qt_kv *kv = env; kv; kv = kv->next) {
        qt_kv *n = qt_palloc(r->pool, sizeof *n);
        n->name = qt_psprintf(r->pool, "REDIRECT_%s", kv->name);
        n->value = kv->value;
        n->next = out;
        out = n;
    }
    r->subprocess_env = out;
    qt_env_set(r, "REDIRECT_STATUS", "200");
}

static int finish(cgi_run *x, int rc, const qt_kv *env)
{
    qt_request *r = x->r;
    if (x->timed_out && x->mode == OUT_DISCARD)
        rc = QT_OK;                     /* as Apache: stop draining, go on */
    if (x->client_gone || (x->timed_out && r->headers_sent))
        r->conn->aborted = true;        /* no last chunk: the body is cut */
    if (rc == QT_OK && x->mode == OUT_HEAD) {
        cgi_log(r, QT_LOG_ERR, "QT0712", "%s: %s",
                x->h.nlines ? "Premature end of script headers"
                            : "End of script output before headers",
                base_name(r->filename));
        x->status = 500;
    }
    if (x->client_gone)
        cgi_log(r, QT_LOG_INFO, "QT0713", "client closed the connection; stopping %s",
                r->filename);
    if (x->status)
        return r->headers_sent ? QT_OK : x->status;
    if (rc != QT_OK)
        return r->headers_sent ? QT_OK : 500;
    if (x->after == AFTER_LOCAL_REDIRECT) {
        r->status = 200;
        redirect_vars(r, env);
        qt_internal_redirect(r, x->h.location);
        return QT_OK;
    }
    if (!x->nph && !r->headers_sent)
        qt_send_headers(r);
    return QT_OK;
}

/* ------------------------------------------------------------ Action */

static const cgi_action *action_for(const qt_request *r, const char *type)
{
    for (const cgi_action *a = dir_conf(r)->actions; a; a = a->next)
        if (strcasecmp(a->type, type) == 0)
            return a;
    return NULL;
}

/* As Apache: the handler name if one is set, else the file's MIME type. */
static const char *action_type(const qt_request *r)
{
    if (r->handler && strcasecmp(r->handler, "default-handler") != 0)
        return r->handler;
    if (!r->filename || !r->dir)
        return NULL;
    if (r->dir->force_type)
        return r->dir->force_type;
    return qt_mime_type_for(r->cfg->mime, r->dir->types_by_ext, r->filename);
}

/* After routing: a request an Action claims is given to action_handler. */
static int action_fixup(qt_request *r)
{
    if (!dir_conf(r)->actions)
        return QT_DECLINED;             /* the common case: no MIME lookup */
    const char *type = action_type(r);
    const cgi_action *a = type ? action_for(r, type) : NULL;
    if (!a)
        return QT_DECLINED;
    if (!a->virtual_ && !r->have_finfo) {
        cgi_log(r, QT_LOG_INFO, "QT0721", "File does not exist: %s",
                r->filename ? r->filename : r->path);
        return 404;
    }
    qt_env_set(r, "HANDLER", type);
    r->handler = QT_ACTION_HANDLER;
    return QT_OK;
}

/* The script gets the file as PATH_INFO (and so PATH_TRANSLATED), the
 * method and the body, and REDIRECT_STATUS=200, which php-cgi's
 * cgi.force_redirect insists on. */
static int action_handler(qt_request *r)
{
    const char *type = qt_env_get(r, "HANDLER");
    const cgi_action *a = type ? action_for(r, type) : NULL;
    if (!a)
        return QT_DECLINED;             /* SetHandler cgi-action by hand */
    const char *url = qt_psprintf(r->pool, "%s%s%s%s", a->script,
                                  qt_uri_escape_path(r->pool, r->path),
                                  r->args ? "?" : "", r->args ? r->args : "");
    redirect_vars(r, r->subprocess_env);
    return qt_internal_redirect_handler(r, url);
}

int qt_cgi_handler(qt_request *r)
{
    int st = check_script(r);
    if (st)
        return st;
    const cgi_dir_conf *dc = dir_conf(r);
    qt_cgi_env_in in;
    fill_env_in(r, dc, &in);
    qt_kv *env;
    char **envp;
    qt_cgi_build_env(r->pool, &in, &env, &envp);
    cgi_proc *p = qt_pcalloc(r->pool, sizeof *p);
    if ((st = start_script(r, dc, envp, p)) != 0)
        return st;
    cgi_run x = {
        .r = r, .p = p, .nph = qt_cgi_is_nph(r->filename),
        .timeout_ms = dc->timeout_ms >= 0 ? dc->timeout_ms : r->server->timeout_ms,
        .inbuf = qt_palloc(r->pool, CGI_IO_BUF),
        .body_eof = !qt_has_body(r),
    };
    progress(&x);
    qt_buf_init(&x.head);
    qt_buf_init(&x.errline);
    if (x.nph) {
        r->raw_output = true;           /* the script writes the status line */
        x.mode = OUT_BODY;
    }
    if (x.body_eof)
        close_stdin(&x);
    int rc = exchange(&x);
    if (!x.err_eof && p->err >= 0)
        read_stderr(&x);                /* what is already there */
    if (x.errline.len)
        stderr_line(&x, x.errline.data, x.errline.len);
    qt_buf_free(&x.head);
    qt_buf_free(&x.errline);
    if (rc != QT_OK)                    /* stop it now, not at the request's end */
        qt_pool_cleanup_run(r->pool, proc_cleanup, p);
    return finish(&x, rc, env);
}
