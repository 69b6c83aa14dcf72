/*
 * default-handler: files, directory redirects and indexes, listings.
 * Conditional requests and ranges are decided by range.c; this file does
 * the I/O around those decisions.
 */
#include "static.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "filecache.h"
#include "httpdate.h"
#include "log.h"
#include "mime.h"
#include "range.h"
#include "uri.h"

static const char *allow_list(const qt_request *r)
{
    return r->cfg->trace_enable ? "GET,HEAD,POST,OPTIONS,TRACE" : "GET,HEAD,POST,OPTIONS";
}

/* Methods a file understands; 0 to go on, or the status to answer. */
static int check_method(qt_request *r)
{
    switch (r->method_number) {
    case QT_M_GET:
    case QT_M_HEAD:
        return 0;
    case QT_M_POST:
        /* Apache answers a POST to a file with the file, body dropped. */
        return qt_discard_body(r) == QT_OK ? 0 : r->status;
    case QT_M_OPTIONS:
        qt_header_set(r, "Allow", allow_list(r));
        return qt_respond(r, 200, NULL, 0);
    case QT_M_OTHER:
        return 501;
    default:
        qt_header_set(r, "Allow", allow_list(r));
        return 405;
    }
}

/* ----------------------------------------------------------- directories */

static int redirect_with_slash(qt_request *r)
{
    const char *host = r->hostname ? r->hostname : r->server->server_name;
    int port = qt_request_port(r);
    const char *scheme = qt_request_scheme(r);
    bool default_port = port == (r->conn->tls ? 443 : 80);
    const char *loc = qt_psprintf(r->pool, "%s://%s%s%s/%s%s", scheme,
                                  host ? host : r->conn->local_ip,
                                  default_port ? "" : qt_psprintf(r->pool, ":%d", port),
                                  qt_uri_escape_path(r->pool, r->path),
                                  r->args ? "?" : "", r->args ? r->args : "");
    qt_header_set(r, "Location", loc);
    return 301;
}

static int try_index(qt_request *r)
{
    const char *const *idx = r->dir->directory_index;
    static const char *const fallback[] = { "index.html", NULL };
    if (r->dir->directory_index_disabled)
        return QT_DECLINED;
    for (idx = idx ? idx : fallback; *idx; idx++) {
        struct stat st;
        const char *name = *idx;
        if (name[0] == '/') {        /* a local URL such as /cgi-bin/index.cgi */
            return qt_internal_redirect(r, name);
        }
        const char *fn = qt_psprintf(r->pool, "%s/%s", r->filename, name);
        if (stat(fn, &st) == 0) {
            const char *url = qt_psprintf(r->pool, "%s%s%s%s", r->path, name,
                                          r->args ? "?" : "", r->args ? r->args : "");
            return qt_internal_redirect(r, url);
        }
    }
    return QT_DECLINED;
}

static int entry_cmp(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void listing_row(qt_request *r, qt_buf *b, const char *name, bool is_dir)
{
    qt_buf_puts(b, "<li><a href=\"");
    qt_buf_html_escape(b, qt_uri_escape_path(r->pool, name));
    qt_buf_puts(b, is_dir ? "/\">" : "\">");
    qt_buf_html_escape(b, name);
    qt_buf_puts(b, is_dir ? "/</a></li>\n" : "</a></li>\n");
}

static int listing(qt_request *r)
{
    struct dirent **ents = NULL;
    int n = scandir(r->filename, &ents, NULL, entry_cmp);
    if (n < 0)
        return 403;
    qt_buf b;
    qt_buf_init(&b);
    qt_buf_puts(&b, "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\">\n<html>\n<head>\n<title>Index of ");
    qt_buf_html_escape(&b, r->path);
    qt_buf_puts(&b, "</title>\n</head>\n<body>\n<h1>Index of ");
    qt_buf_html_escape(&b, r->path);
    qt_buf_puts(&b, "</h1>\n<ul>");
    if (strcmp(r->path, "/") != 0)
        qt_buf_puts(&b, "<li><a href=\"../\"> Parent Directory</a></li>\n");
    for (int i = 0; i < n; i++) {
        const char *name = ents[i]->d_name;
        if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
            struct stat st;
            const char *fn = qt_psprintf(r->pool, "%s/%s", r->filename, name);
            listing_row(r, &b, name, stat(fn, &st) == 0 && S_ISDIR(st.st_mode));
        }
        free(ents[i]);
    }
    free(ents);
    qt_buf_puts(&b, "</ul>\n</body></html>\n");
    char *body = qt_pstrndup(r->pool, b.data, b.len);
    size_t len = b.len;
    qt_buf_free(&b);
    qt_set_content_type(r, "text/html;charset=UTF-8");
    return qt_respond(r, 200, body, len);
}

static int directory(qt_request *r)
{
    size_t n = strlen(r->path);
    if (n == 0 || r->path[n - 1] != '/')
        return redirect_with_slash(r);
    int rc = try_index(r);
    if (rc != QT_DECLINED)
        return rc;
    if (qt_dir_options(r->dir) & QT_OPT_INDEXES)
        return listing(r);
    qt_rlog(r, QT_LOG_ERR, "QT0402", "Cannot serve directory %s: no DirectoryIndex file found "
            "and directory listings are off (Options -Indexes)", r->filename);
    return 403;
}

/* ----------------------------------------------------------- files */

/* A file's bytes: an open fd, or (small files) a copy in the request pool. */
typedef struct {
    int fd;
    const char *mem;
} file_src;

static int send_part(qt_request *r, const file_src *src, uint64_t off, uint64_t len)
{
    if (src->mem)
        return qt_write(r, src->mem + off, (size_t)len);
    return qt_sendfile(r, src->fd, (off_t)off, len);
}

static int send_ranges(qt_request *r, const file_src *src, const qt_range *rg, unsigned n,
                       uint64_t size, const char *type)
{
    r->status = 206;
    if (n == 1) {
        qt_header_set(r, "Content-Range", qt_psprintf(r->pool, "bytes %llu-%llu/%llu",
                      (unsigned long long)rg[0].first, (unsigned long long)rg[0].last,
                      (unsigned long long)size));
        qt_set_content_length(r, (int64_t)(rg[0].last - rg[0].first + 1));
        return send_part(r, src, rg[0].first, rg[0].last - rg[0].first + 1);
    }
    /* multipart/byteranges: compute the exact length first (no chunking). */
    const char *boundary = qt_psprintf(r->pool, "%08lx%08lx", (unsigned long)random(),
                                       (unsigned long)random());
    const char **parts = qt_palloc(r->pool, sizeof(*parts) * n);
    int64_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        parts[i] = qt_psprintf(r->pool, "\r\n--%s\r\n%s%s%sContent-Range: bytes %llu-%llu/%llu\r\n\r\n",
                               boundary, type ? "Content-Type: " : "", type ? type : "",
                               type ? "\r\n" : "", (unsigned long long)rg[i].first,
                               (unsigned long long)rg[i].last, (unsigned long long)size);
        total += (int64_t)strlen(parts[i]) + (int64_t)(rg[i].last - rg[i].first + 1);
    }
    const char *tail = qt_psprintf(r->pool, "\r\n--%s--\r\n", boundary);
    total += (int64_t)strlen(tail);
    qt_set_content_type(r, qt_psprintf(r->pool, "multipart/byteranges; boundary=%s", boundary));
    qt_set_content_length(r, total);
    for (unsigned i = 0; i < n; i++) {
        if (qt_write(r, parts[i], strlen(parts[i])) != QT_OK ||
            send_part(r, src, rg[i].first, rg[i].last - rg[i].first + 1) != QT_OK)
            return QT_OK;
    }
    qt_write(r, tail, strlen(tail));
    return QT_OK;
}

static void file_headers(qt_request *r, const char *etag, time_t mtime, const char *type)
{
    char date[QT_HTTPDATE_LEN];
    time_t now = time(NULL);
    qt_httpdate_format(mtime > now ? now : mtime, date);
    qt_header_set(r, "Last-Modified", date);
    qt_header_set(r, "ETag", etag);
    qt_header_set(r, "Accept-Ranges", "bytes");
    if (type)
        qt_set_content_type(r, type);
}

static int serve_file(qt_request *r, const file_src *src)
{
    const struct stat *st = &r->finfo;
    uint64_t size = (uint64_t)st->st_size;
    int64_t mtime_us = (int64_t)st->st_mtim.tv_sec * 1000000 + st->st_mtim.tv_nsec / 1000;
    bool weak = st->st_mtim.tv_sec >= time(NULL) - 1;   /* changed this very second */
    const char *etag = qt_etag_make(r->pool, size, mtime_us, weak);
    /* A fixup may have decided the type already (mod_deflate serving
     * file.gz for file keeps file's type). */
    const char *type = r->content_type ? r->content_type
                     : r->dir->force_type ? r->dir->force_type
                     : qt_mime_type_for(r->cfg->mime, r->dir->types_by_ext, r->filename);
    qt_cond_headers ch = {
        .if_match = qt_header_in(r, "If-Match"),
        .if_none_match = qt_header_in(r, "If-None-Match"),
        .if_modified_since = qt_header_in(r, "If-Modified-Since"),
        .if_unmodified_since = qt_header_in(r, "If-Unmodified-Since"),
    };
    bool get_head = r->method_number == QT_M_GET || r->method_number == QT_M_HEAD;
    int st_cond = qt_cond_evaluate(&ch, etag, st->st_mtim.tv_sec, get_head);
    if (st_cond == 304) {
        file_headers(r, etag, st->st_mtim.tv_sec, NULL);
        return qt_respond(r, 304, NULL, 0);
    }
    if (st_cond)
        return st_cond;
    file_headers(r, etag, st->st_mtim.tv_sec, type);
    const char *range = r->method_number == QT_M_GET ? qt_header_in(r, "Range") : NULL;
    const char *if_range = qt_header_in(r, "If-Range");
    if (range && (!if_range || qt_if_range_ok(if_range, etag, st->st_mtim.tv_sec))) {
        qt_range *rg = NULL;
        unsigned n = 0;
        switch (qt_range_parse(r->pool, range, size, &rg, &n)) {
        case QT_RANGE_OK:
            return send_ranges(r, src, rg, n, size, type);
        case QT_RANGE_UNSATISFIABLE:
            qt_header_set(r, "Content-Range", qt_psprintf(r->pool, "bytes */%llu",
                                                          (unsigned long long)size));
            return 416;
        case QT_RANGE_NONE:
            break;
        }
    }
    r->status = 200;
    qt_set_content_length(r, (int64_t)size);
    send_part(r, src, 0, size);
    return QT_OK;
}

static void close_fd(void *p)
{
    close((int)(intptr_t)p);
}

int qt_static_handler(qt_request *r)
{
    int st = check_method(r);
    if (st)
        return st;
    if (r->headers_sent)                       /* OPTIONS answered */
        return QT_OK;
    if (!r->have_finfo) {
        qt_rlog(r, QT_LOG_INFO, "QT0404", "File does not exist: %s",
                r->filename ? r->filename : r->path);
        return 404;
    }
    if (r->path_info && *r->path_info && r->dir->accept_path_info != 1)
        return 404;
    if (S_ISDIR(r->finfo.st_mode))
        return directory(r);
    if (!S_ISREG(r->finfo.st_mode))
        return 403;
    file_src src = { .fd = -1 };
    /* Small files come from memory (filecache.h); any trouble reading
     * them falls through to the plain path, which reports it. */
    if (r->finfo.st_size <= QT_FILECACHE_MAX_FILE)
        src.mem = qt_filecache_get(r->pool, r->filename, &r->finfo, r->cfg->file_cache_size);
    if (src.mem)
        return serve_file(r, &src);
    src.fd = open(r->filename, O_RDONLY | O_CLOEXEC);
    if (src.fd < 0)
        return errno == EACCES ? 403 : 404;
    qt_pool_cleanup(r->pool, close_fd, (void *)(intptr_t)src.fd);
    return serve_file(r, &src);
}
