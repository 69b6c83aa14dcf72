/*
 * httpd: Apache's command line, then the daemon's start-up sequence.
 *
 *   parse options -> load config -> (-t -M -V: report, exit)
 *   -> (-k: signal a running server through its pid file, or start)
 *   -> bind listeners -> open logs -> detach -> pid file -> MPM run()
 *
 * Everything that can fail with a message for the user (config, bind,
 * logs) happens before detaching, so `httpd -k start` reports it on the
 * terminal and exits 1.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* accept4, pipe2, ppoll */
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"
#include "mpm.h"
#include "mpm_common.h"
#include "pool.h"
#include "process.h"
#include "version.h"

#ifndef QT_PREFIX
#define QT_PREFIX "/usr/local/quintet"
#endif
#define DEFAULT_CONFIG_FILE "conf/httpd.conf"
#define SERVER_DESCRIPTION QT_SERVER_BASEPRODUCT "/" QT_SERVER_VERSION " (Unix)"

enum mode { MODE_RUN, MODE_TEST, MODE_MODULES, MODE_VERSION, MODE_SETTINGS,
            MODE_COMPILED };

/* A NULL-terminated list of option arguments (copied into the pool as it grows). */
typedef struct {
    const char **v;
    size_t n;
} arglist;

typedef struct {
    qt_pool *pool;                   /* every string below that we built */
    qt_config_args args;
    arglist pre, post, defines;
    const char *file;                /* -f as given */
    const char *root;                /* -d as given */
    const char *signal;              /* -k argument */
    enum mode mode;
    bool one_process, foreground;
} options;

static void push(qt_pool *p, arglist *l, const char *s)
{
    const char **v = qt_palloc(p, (l->n + 2) * sizeof *v);

    if (l->n)
        memcpy(v, l->v, l->n * sizeof *v);
    v[l->n++] = s;
    v[l->n] = NULL;
    l->v = v;
}

static bool has_define(const options *o, const char *name)
{
    for (size_t i = 0; i < o->defines.n; i++)
        if (strcmp(o->defines.v[i], name) == 0)
            return true;
    return false;
}

static _Noreturn void usage(const char *prog)
{
    fprintf(stderr,
        "Usage: %s [-D name] [-d directory] [-f file]\n"
        "       %*s [-C \"directive\"] [-c \"directive\"]\n"
        "       %*s [-k start|restart|graceful|graceful-stop|stop]\n"
        "       %*s [-v] [-V] [-h] [-l] [-t] [-T] [-M] [-X]\n"
        "Options:\n"
        "  -D name            : define a name for use in <IfDefine name> directives\n"
        "  -d directory       : specify an alternate initial ServerRoot\n"
        "  -f file            : specify an alternate ServerConfigFile\n"
        "  -C \"directive\"     : process directive before reading config files\n"
        "  -c \"directive\"     : process directive after reading config files\n"
        "  -e level           : show startup errors of level (see LogLevel)\n"
        "  -E file            : log startup errors to file\n"
        "  -k signal          : control a running server through its pid file\n"
        "  -v                 : show version number\n"
        "  -V                 : show compile settings and the configured MPM\n"
        "  -h                 : list available command line options (this page)\n"
        "  -l                 : list compiled in modules\n"
        "  -M                 : list loaded modules (static and shared)\n"
        "  -t                 : run syntax check for config files\n"
        "  -T                 : start without DocumentRoot(s) check\n"
        "  -X                 : debug mode (only one worker, do not detach)\n",
        prog, (int)strlen(prog), "", (int)strlen(prog), "", (int)strlen(prog), "");
    exit(1);
}

/* -E file: startup errors go there instead of the terminal. */
static void redirect_stderr(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

    if (fd < 0) {
        fprintf(stderr, "httpd: cannot open error log %s: %s\n", path, strerror(errno));
        exit(1);
    }
    dup2(fd, STDERR_FILENO);
    close(fd);
}

static void startup_level(const char *name, const char *prog)
{
    int level = qt_log_level_from(name);

    if (level < 0)
        usage(prog);
    qt_log_set_level(level);
}

static void take_option(options *o, int c, const char *prog)
{
    switch (c) {
    case 'C': push(o->pool, &o->pre, optarg); break;
    case 'c': push(o->pool, &o->post, optarg); break;
    case 'D': push(o->pool, &o->defines, optarg); break;
    case 'd': o->root = optarg; break;
    case 'f': o->file = optarg; break;
    case 'k': o->signal = optarg; break;
    case 'e': startup_level(optarg, prog); break;
    case 'E': redirect_stderr(optarg); break;
    case 'T': o->args.skip_docroot_check = true; break;
    case 't': o->mode = MODE_TEST; break;
    case 'M': o->mode = MODE_MODULES; break;
    case 'v': o->mode = MODE_VERSION; break;
    case 'V': o->mode = MODE_SETTINGS; break;
    case 'l': o->mode = MODE_COMPILED; break;
    case 'X':
        push(o->pool, &o->defines, "ONE_PROCESS");
        push(o->pool, &o->defines, "FOREGROUND");
        break;
    default:
        usage(prog);
    }
}

static bool valid_signal(const char *k)
{
    static const char *const names[] = { "start", "stop", "restart", "graceful",
                                         "graceful-stop" };

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(k, names[i]) == 0)
            return true;
    return false;
}

static const char *join_path(qt_pool *p, const char *dir, const char *file)
{
    return qt_psprintf(p, "%s/%s", dir, file);
}

/* Relative to the current directory, made absolute: the daemon runs in /
 * and a reload must find the same files. */
static const char *absolute(qt_pool *p, const char *path)
{
    char cwd[4096];

    if (path[0] == '/' || !getcwd(cwd, sizeof cwd))
        return path;
    return join_path(p, cwd, path);
}

/* The config file: absolute as given, else against -d, else the current
 * directory if it is there, else the install prefix. */
static const char *config_file(const options *o)
{
    const char *f = o->file ? o->file : DEFAULT_CONFIG_FILE;

    if (f[0] == '/')
        return f;
    if (o->root)
        return join_path(o->pool, absolute(o->pool, o->root), f);
    if (access(f, F_OK) == 0)
        return absolute(o->pool, f);
    return join_path(o->pool, QT_PREFIX, f);
}

static void parse_options(options *o, int argc, char **argv)
{
    int c;

    opterr = 0;                      /* our usage text, not getopt's */
    while ((c = getopt(argc, argv, "C:c:D:d:e:E:f:k:vVlLtTSMhX")) != -1)
        take_option(o, c, argv[0]);
    if (optind < argc || (o->signal && !valid_signal(o->signal)))
        usage(argv[0]);
    /* DEBUG is Apache's spelling of -X. */
    o->one_process = has_define(o, "ONE_PROCESS") || has_define(o, "DEBUG");
    o->foreground = has_define(o, "FOREGROUND") || has_define(o, "NO_DETACH") ||
                    has_define(o, "DEBUG");
    o->args.config_file = config_file(o);
    o->args.server_root = o->root ? absolute(o->pool, o->root) : NULL;
    o->args.pre_directives = o->pre.v;
    o->args.post_directives = o->post.v;
    o->args.defines = o->defines.v;
}

/* --------------------------------------------------------- reports */

static void print_version(void)
{
    printf("Server version: %s\n", SERVER_DESCRIPTION);
    printf("Server built:   %s %s\n", __DATE__, __TIME__);
}

static void print_settings(const qt_config *cfg)
{
    const qt_mpm *m = cfg ? cfg->mpm : NULL;
    unsigned flags = m ? m->flags : 0;

    print_version();
    printf("Architecture:   %zu-bit\n", sizeof(void *) * 8);
    printf("Server MPM:     %s\n", m ? m->name : "");
    printf("  threaded:     %s\n", flags & QT_MPM_THREADED ? "yes (variable thread count)" : "no");
    printf("    forked:     %s\n", flags & QT_MPM_FORKED ? "yes (variable process count)" : "no");
    printf("  async:        %s\n", flags & QT_MPM_ASYNC ? "yes" : "no");
    printf("Server compiled with....\n");
    printf(" -D QT_PREFIX=\"%s\"\n", QT_PREFIX);
    printf(" -D HTTPD_ROOT=\"%s\"\n", QT_PREFIX);
    printf(" -D SERVER_CONFIG_FILE=\"%s\"\n", DEFAULT_CONFIG_FILE);
    printf(" -D DEFAULT_PIDLOG=\"logs/httpd.pid\"\n");
    printf(" -D DEFAULT_ERRORLOG=\"logs/error_log\"\n");
    printf(" -D AP_TYPES_CONFIG_FILE=\"conf/mime.types\"\n");
}

static void print_modules(const qt_config *cfg)
{
    printf("Loaded Modules:\n");
    for (size_t i = 0; i < cfg->nmodules; i++) {
        bool shared = cfg->dl_handles && cfg->dl_handles[i];

        printf(" %s (%s)\n", cfg->modules[i]->name, shared ? "shared" : "static");
    }
}

static int print_compiled(void)
{
    printf("Compiled in modules:\n  core.c\n");
    return 0;
}

/* ------------------------------------------------------------- -k */

typedef enum { NOT_RUNNING, RUNNING, CORRUPT } run_state;

static run_state running_server(const qt_config *cfg, pid_t *pid)
{
    *pid = qt_pidfile_read(qt_config_path(cfg, cfg->pid_file));
    if (*pid < 0)
        return CORRUPT;
    /* Our own pid in the file (a container reusing pid 1) is not a server. */
    if (*pid == 0 || *pid == getpid())
        return NOT_RUNNING;
    return kill(*pid, 0) == 0 || errno == EPERM ? RUNNING : NOT_RUNNING;
}

static int send_signal(pid_t pid, int sig)
{
    if (kill(pid, sig) == 0)
        return 0;
    fprintf(stderr, "httpd: (%d)%s: failed to send signal %d to pid %ld\n",
            errno, strerror(errno), sig, (long)pid);
    return 1;
}

static void say_not_running(pid_t pid)
{
    if (pid > 0)
        printf("httpd (pid %ld?) not running\n", (long)pid);
    else
        printf("httpd (no pid file) not running\n");
}

/* Apache's ap_signal_server(): -1 means "go on and start the server". */
static int signal_server(const options *o, const qt_config *cfg)
{
    pid_t pid;
    run_state st = running_server(cfg, &pid);
    int sig = 0;

    if (st == CORRUPT) {
        fprintf(stderr, "httpd: the pid file %s is unreadable or corrupt\n",
                qt_config_path(cfg, cfg->pid_file));
        return 1;
    }
    if (strcmp(o->signal, "start") == 0) {
        if (st == NOT_RUNNING)
            return -1;
        printf("httpd (pid %ld) already running\n", (long)pid);
        return 0;
    }
    if (strcmp(o->signal, "restart") == 0 || strcmp(o->signal, "graceful") == 0) {
        if (st == NOT_RUNNING) {
            printf("httpd not running, trying to start\n");
            return -1;
        }
        sig = o->signal[0] == 'r' ? SIGHUP : SIGUSR1;
    } else {
        sig = strcmp(o->signal, "stop") == 0 ? SIGTERM : SIGWINCH;
        if (st == NOT_RUNNING) {
            say_not_running(pid);
            return 0;
        }
    }
    return send_signal(pid, sig);
}

/* -------------------------------------------------------- start-up */

static bool open_everything(qt_config *cfg)
{
    char err[1024];

    if (qt_check_user(cfg, err, sizeof err) < 0) {
        qt_log(QT_LOG_EMERG, "core", "QT0130", "%s", err);
        return false;
    }
    if (qt_listen_open(cfg, NULL, err, sizeof err) < 0) {
        qt_log(QT_LOG_EMERG, "core", "QT0101", "%s", err);
        qt_log(QT_LOG_EMERG, "core", "QT0102", "no listening sockets available, shutting down");
        return false;
    }
    if (qt_log_open(cfg, err, sizeof err) < 0) {
        qt_log(QT_LOG_EMERG, "core", "QT0103", "%s; unable to open logs", err);
        return false;
    }
    return true;
}

static bool write_pidfile(const qt_config *cfg)
{
    char err[1024];
    const char *path = qt_config_path(cfg, cfg->pid_file);

    if (qt_pidfile_read(path) != 0)
        qt_log(QT_LOG_WARN, "core", "QT0104",
               "pid file %s overwritten -- Unclean shutdown of previous run?", path);
    if (qt_pidfile_write(path, err, sizeof err) == 0)
        return true;
    qt_log(QT_LOG_EMERG, "core", "QT0104", "%s", err);
    return false;
}

/* Only our own pid file: a server started during a graceful stop owns it now. */
static void remove_pidfile(const qt_config *cfg)
{
    const char *path = qt_config_path(cfg, cfg->pid_file);

    if (qt_pidfile_read(path) == getpid())
        qt_pidfile_remove(path);
}

static int serve(const options *o, qt_config *cfg)
{
    char err[1024];
    qt_runtime rt = { .cfg = cfg, .args = &o->args,
                      .one_process = o->one_process, .foreground = o->foreground };
    int rc;

    if (!open_everything(cfg))
        return 1;
    if (!o->foreground && qt_daemonize(err, sizeof err) < 0) {
        qt_log(QT_LOG_EMERG, "core", "QT0100", "%s", err);
        return 1;
    }
    rt.master_pid = getpid();
    qt_signals_master(o->one_process);
    if (!write_pidfile(cfg))
        return 1;
    qt_active_mpm = cfg->mpm;
    qt_mpm_log_resuming(cfg);
    qt_daemon_ready();
    rc = cfg->mpm->run(&rt);
    /* The MPM may have reloaded: rt.cfg is the configuration now running. */
    remove_pidfile(rt.cfg);
    qt_listen_close(rt.cfg);
    qt_config_free(rt.cfg);
    return rc;
}

static qt_config *load(const options *o, bool quiet)
{
    char err[1024];
    qt_config *cfg = qt_config_load(&o->args, err, sizeof err);

    if (!cfg && !quiet)
        fprintf(stderr, "httpd: %s\n", err);
    if (cfg && !cfg->mpm && !quiet) {
        fprintf(stderr, "httpd: No MPM loaded.\n");
        qt_config_free(cfg);
        cfg = NULL;
    }
    return cfg;
}

static int report(const options *o, qt_config *cfg)
{
    switch (o->mode) {
    case MODE_TEST:
        fprintf(stderr, "Syntax OK\n");
        break;
    case MODE_MODULES:
        print_modules(cfg);
        break;
    default:
        break;
    }
    qt_config_free(cfg);
    return 0;
}

static int run(options *o, int argc, char **argv)
{
    qt_config *cfg;
    int rc;

    parse_options(o, argc, argv);
    if (o->mode == MODE_VERSION) {
        print_version();
        return 0;
    }
    if (o->mode == MODE_COMPILED)
        return print_compiled();
    cfg = load(o, o->mode == MODE_SETTINGS);
    if (o->mode == MODE_SETTINGS) {
        print_settings(cfg);
        if (cfg)
            qt_config_free(cfg);
        return 0;
    }
    if (!cfg)
        return 1;
    if (o->mode != MODE_RUN)
        return report(o, cfg);
    if (o->signal && (rc = signal_server(o, cfg)) >= 0) {
        qt_config_free(cfg);
        return rc;
    }
    return serve(o, cfg);
}

/*
 * glibc gives the top of the heap back to the kernel as soon as more than
 * a few hundred KiB are free there.  A process that serves one request at
 * a time (prefork, fork, each worker thread's arena) then shrinks and
 * regrows its heap around every request that needs a large block (a
 * deflate stream is about 270 KiB), and every regrowth page-faults the
 * block in again: four times the CPU of a gzip response.  Keep up to
 * 8 MiB; the event and hybrid MPMs still trim explicitly after bursts.
 */
static void tune_malloc(void)
{
    mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
}

int main(int argc, char **argv)
{
    tune_malloc();
    options o = { .mode = MODE_RUN, .pool = qt_pool_create(1024) };
    int rc = run(&o, argc, argv);

    qt_pool_destroy(o.pool);
    return rc;
}
