/*
 * Error log and access logs.
 *
 * The file descriptors are opened by the master and inherited by children;
 * the only process-wide state is the error log fd and the level, written
 * while the process is single-threaded (startup, reload in the master) and
 * read afterwards.  Each line is one write(2) on an O_APPEND fd, so lines
 * from many processes never interleave.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "access_format.h"
#include "conn.h"
#include "request.h"
#include "tls.h"

struct qt_logfile {
    int fd;
    const char *path;
};

static int error_fd = STDERR_FILENO;
static int error_level = QT_LOG_WARN;

static const char *const level_names[] = {
    "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug",
    "trace1", "trace2", "trace3", "trace4", "trace5", "trace6", "trace7", "trace8"
};
#define NLEVELS (int)(sizeof(level_names) / sizeof(level_names[0]))

int qt_log_level_from(const char *name)
{
    for (int i = 0; i < NLEVELS; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

void qt_log_set_level(int level)
{
    error_level = level;
}

static int open_append(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        snprintf(err, errlen, "could not open log file %s: %s", path, strerror(errno));
    return fd;
}

/* Opens each distinct CustomLog path once; servers sharing a path share the fd. */
static int open_custom_logs(qt_config *cfg, qt_server *s, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->nlogs; i++) {
        qt_custom_log *cl = &s->logs[i];
        if (cl->file)
            continue;
        qt_logfile *lf = qt_palloc(cfg->pool, sizeof(*lf));
        lf->path = cl->path;
        lf->fd = open_append(cl->path, err, errlen);
        if (lf->fd < 0)
            return -1;
        qt_pool_cleanup(cfg->pool, (void (*)(void *))qt_log_close_file, lf);
        for (size_t j = i; j < s->nlogs; j++)
            if (!s->logs[j].file && strcmp(s->logs[j].path, cl->path) == 0)
                s->logs[j].file = lf;
    }
    return 0;
}

void qt_log_close_file(qt_logfile *lf)
{
    if (lf->fd >= 0)
        close(lf->fd);
    lf->fd = -1;
}

int qt_log_open(qt_config *cfg, char *err, size_t errlen)
{
    int fd = open_append(cfg->error_log, err, errlen);
    if (fd < 0)
        return -1;
    if (open_custom_logs(cfg, cfg->main, err, errlen) < 0)
        goto fail;
    for (size_t i = 0; i < cfg->nvhosts; i++)
        if (open_custom_logs(cfg, cfg->vhosts[i], err, errlen) < 0)
            goto fail;
    if (error_fd != STDERR_FILENO)
        close(error_fd);
    error_fd = fd;
    error_level = cfg->log_level;
    return 0;
fail:
    close(fd);
    return -1;
}

int qt_log_reopen(qt_config *cfg, char *err, size_t errlen)
{
    return qt_log_open(cfg, err, errlen);
}

void qt_log_close(qt_config *cfg)
{
    (void)cfg;  /* CustomLog fds close with cfg->pool's cleanups */
}

static void format_time(char *out, size_t n)
{
    struct timeval tv;
    struct tm tm;
    char base[32];
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    strftime(base, sizeof(base), "%a %b %d %H:%M:%S", &tm);
    snprintf(out, n, "%s.%06ld %d", base, (long)tv.tv_usec, tm.tm_year + 1900);
}

void qt_vlog(int level, const char *module, const char *id, const char *client,
             const char *fmt, va_list ap)
{
    /* As Apache, notices (start, stop, restart) are logged whatever the level. */
    if (level > error_level && level != QT_LOG_NOTICE)
        return;
    char line[4096], when[96];
    format_time(when, sizeof(when));
    int n = snprintf(line, sizeof(line), "[%s] [%s:%s] [pid %ld] ", when,
                     module ? module : "core",
                     level_names[level < NLEVELS ? level : NLEVELS - 1],
                     (long)getpid());
    if (client && n >= 0 && (size_t)n < sizeof(line))
        n += snprintf(line + n, sizeof(line) - (size_t)n, "[client %s] ", client);
    if (id && n >= 0 && (size_t)n < sizeof(line))
        n += snprintf(line + n, sizeof(line) - (size_t)n, "%s: ", id);
    if (n >= 0 && (size_t)n < sizeof(line))
        n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(error_fd, line, (size_t)n);
    (void)w;  /* nowhere left to report a failing error log */
}

void qt_log(int level, const char *module, const char *id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    qt_vlog(level, module, id, NULL, fmt, ap);
    va_end(ap);
}

void qt_rlog(const qt_request *r, int level, const char *id, const char *fmt, ...)
{
    char client[96];
    snprintf(client, sizeof(client), "%s:%d", r->conn->peer_ip, r->conn->peer_port);
    va_list ap;
    va_start(ap, fmt);
    qt_vlog(level, "core", id, client, fmt, ap);
    va_end(ap);
}

static const char *hdr_in(const void *ctx, const char *name)
{
    return qt_header_in(ctx, name);
}

static const char *hdr_out(const void *ctx, const char *name)
{
    const qt_request *r = ctx;
    if (strcasecmp(name, "Content-Type") == 0)
        return r->content_type;
    return qt_header_out(r, name);
}

static const char *env_get(const void *ctx, const char *name)
{
    const char *v = qt_env_get(ctx, name);
    return v ? v : getenv(name);
}

/* %{SSL_PROTOCOL}x and friends (mod_ssl's variables). */
static const char *note_get(const void *ctx, const char *name)
{
    const qt_request *r = ctx;
    return qt_tls_var(r->pool, r->conn, name);
}

static void fill_values(const qt_request *r, qt_access_values *v)
{
    const qt_request *first = r;
    while (first->prev)
        first = first->prev;
    memset(v, 0, sizeof(*v));
    v->remote_ip = r->conn->peer_ip;
    v->remote_user = r->user;
    v->time_sec = (time_t)(first->start_us / 1000000);
    v->time_usec = (long)(first->start_us % 1000000);
    v->request_line = qt_pstrndup(r->pool, first->http.request_line.p,
                                  first->http.request_line.n);
    v->method = first->method;
    v->path = first->path;
    v->query = first->args;
    v->protocol = first->protocol;
    v->status = r->status;
    v->orig_status = first->status;
    v->bytes = r->bytes_sent;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    v->duration_us = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec - first->start_us;
    v->server_name = r->server->server_name;
    v->local_port = r->conn->local_port;
    v->filename = r->filename;
    v->header_in = hdr_in;
    v->header_out = hdr_out;
    v->env = env_get;
    v->note = note_get;
    v->ctx = r;
}

void qt_access_log(const qt_request *r)
{
    const qt_server *s = r->server;
    if (s->nlogs == 0)
        return;
    qt_access_values v;
    fill_values(r, &v);
    char stackbuf[1024];
    qt_buf out = { stackbuf, 0, sizeof(stackbuf) };
    for (size_t i = 0; i < s->nlogs; i++) {
        const qt_custom_log *cl = &s->logs[i];
        if (!cl->file || cl->file->fd < 0 || !cl->compiled)
            continue;
        out.len = 0;
        qt_access_format_render(cl->compiled, &v, &out);
        ssize_t w = write(cl->file->fd, out.data, out.len);
        (void)w;
        /* A long line made qt_buf grow onto the heap: give the stack back. */
        if (out.data != stackbuf) {
            free(out.data);
            out = (qt_buf){ stackbuf, 0, sizeof(stackbuf) };
        }
    }
}
