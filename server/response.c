/*
 * The response side: output headers, framing (Content-Length, chunked or
 * close-delimited), output filters, error pages and ErrorDocument.
 *
 * The head is built into c->out and goes out with the first body bytes in
 * one writev, so a small response costs one write syscall.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "http_serialize.h"
#include "httpdate.h"
#include "log.h"
#include "mpm.h"
#include "request.h"
#include "request_internal.h"
#include "version.h"

void qt_response_init(qt_request *r)
{
    r->status = 200;
    r->content_length = -1;
}

static int64_t deadline(const qt_request *r)
{
    return qt_deadline_after(r->server->timeout_ms);
}

/* ----------------------------------------------------------- headers out */

static qt_kv *kv_new(qt_request *r, const char *name, const char *value)
{
    qt_kv *kv = qt_palloc(r->pool, sizeof(*kv));
    kv->name = qt_pstrdup(r->pool, name);
    kv->value = qt_pstrdup(r->pool, value);
    kv->next = NULL;
    return kv;
}

void qt_header_add(qt_request *r, const char *name, const char *value)
{
    qt_kv **tail = &r->headers_out;
    while (*tail)
        tail = &(*tail)->next;
    *tail = kv_new(r, name, value);
}

void qt_header_unset(qt_request *r, const char *name)
{
    for (qt_kv **p = &r->headers_out; *p;) {
        if (strcasecmp((*p)->name, name) == 0)
            *p = (*p)->next;
        else
            p = &(*p)->next;
    }
}

void qt_header_set(qt_request *r, const char *name, const char *value)
{
    qt_header_unset(r, name);
    qt_header_add(r, name, value);
}

const char *qt_header_out(const qt_request *r, const char *name)
{
    for (const qt_kv *kv = r->headers_out; kv; kv = kv->next)
        if (strcasecmp(kv->name, name) == 0)
            return kv->value;
    return NULL;
}

void qt_set_content_type(qt_request *r, const char *type)
{
    r->content_type = type ? qt_pstrdup(r->pool, type) : NULL;
}

void qt_set_content_length(qt_request *r, int64_t len)
{
    r->content_length = len;
}

const char *qt_request_scheme(const qt_request *r)
{
    return r->conn->tls ? "https" : "http";
}

int qt_request_port(const qt_request *r)
{
    const qt_header *h = qt_http_find_header(&r->http, "Host");
    if (h) {
        const char *end = h->value.p + h->value.n;
        const char *colon = NULL;
        for (const char *p = h->value.p; p < end; p++)
            if (*p == ':')
                colon = p;
            else if (*p == ']')
                colon = NULL;
        if (colon && colon + 1 < end)
            return atoi(qt_pstrndup(r->pool, colon + 1, (size_t)(end - colon - 1)));
    }
    return r->conn->local_port;
}

/* ----------------------------------------------------------- the head */

const char *qt_server_banner(const qt_config *cfg)
{
    switch (cfg->server_tokens) {
    case QT_TOKENS_PROD: return QT_SERVER_BASEPRODUCT;
    case QT_TOKENS_MAJOR: return QT_SERVER_BASEPRODUCT "/" QT_SERVER_MAJOR;
    case QT_TOKENS_MINOR: return QT_SERVER_BASEPRODUCT "/" QT_SERVER_MINOR;
    case QT_TOKENS_MINIMAL: return QT_SERVER_BASEPRODUCT "/" QT_SERVER_VERSION;
    case QT_TOKENS_OS:
    case QT_TOKENS_FULL:
    default: return QT_SERVER_BASEPRODUCT "/" QT_SERVER_VERSION " (Unix)";
    }
}

/* The Date header changes once a second: format it once a second per thread. */
static const char *date_now(void)
{
    static __thread char cached[QT_HTTPDATE_LEN];
    static __thread time_t cached_at;
    time_t now = time(NULL);
    if (now != cached_at) {
        qt_httpdate_format(now, cached);
        cached_at = now;
    }
    return cached;
}

static bool status_forces_close(int status)
{
    switch (status) {
    case 400: case 408: case 411: case 413: case 414: case 431:
    case 500: case 501: case 503:
        return true;
    default:
        return false;
    }
}

/* Decides keep-alive for this response, before its head goes out. */
static void settle_keep_alive(qt_request *r)
{
    qt_conn *c = r->conn;
    const qt_server *s = r->server;
    bool ka = c->keep_alive && r->http.keep_alive && s->keep_alive && !r->close_after &&
              !status_forces_close(r->status) &&
              (s->max_keep_alive_requests == 0 || c->requests + 1 < s->max_keep_alive_requests);
    c->keep_alive = ka;
}

static void choose_framing(qt_request *r)
{
    if (qt_http_status_bodyless(r->status)) {
        r->content_length = -1;
        return;
    }
    if (r->content_length >= 0 || r->header_only)
        return;
    if (r->http.version_minor >= 1)
        r->chunked_out = true;
    else
        r->conn->keep_alive = false;   /* close-delimited body */
}

/* Bodyless responses (204, 304) still ask each filter, so that it can
 * set the headers its variant would carry (Vary, ETag); it declines. */
static void start_filters(qt_request *r)
{
    if (r->raw_output)
        return;
    qt_active_filter **tail = &r->filters;
    for (size_t i = 0; i < r->cfg->nmodules; i++) {
        const qt_filter_def *f = r->cfg->modules[i]->filters;
        for (; f && f->name; f++) {
            void *ctx = NULL;
            if (f->start(r, &ctx) != QT_OK)
                continue;
            qt_active_filter *af = qt_pcalloc(r->pool, sizeof(*af));
            af->def = f;
            af->ctx = ctx;
            *tail = af;
            tail = &af->next;
        }
    }
}

static void build_head(qt_request *r)
{
    qt_conn *c = r->conn;
    enum qt_conn_header conn_hdr = QT_CONN_HDR_NONE;
    if (!c->keep_alive)
        conn_hdr = QT_CONN_HDR_CLOSE;
    else if (r->http.version_minor == 0)
        conn_hdr = QT_CONN_HDR_KEEPALIVE;   /* 1.0 keep-alive must be confirmed */
    unsigned max = r->server->max_keep_alive_requests;
    qt_response_head h = {
        .status = r->status,
        .status_line = r->status_line,
        .date = date_now(),
        .server = qt_server_banner(r->cfg),
        .fields = r->headers_out,
        .content_type = r->content_type,
        .content_length = r->content_length,
        .chunked = r->chunked_out,
        .connection = conn_hdr,
        .keepalive_timeout_s = r->server->keep_alive_timeout_ms / 1000,
        .keepalive_max = max ? max - c->requests - 1 : 100,
    };
    qt_http_serialize_head(&c->out, &h);
}

/* Prepares the head in c->out; it leaves with the first body bytes. */
int qt_send_headers(qt_request *r)
{
    if (r->headers_sent)
        return QT_OK;
    r->headers_sent = true;
    if (r->redirect_status && r->status == 200)
        r->status = r->redirect_status;   /* ErrorDocument keeps the error */
    if (r->raw_output)
        return QT_OK;
    start_filters(r);
    settle_keep_alive(r);
    choose_framing(r);
    build_head(r);
    return QT_OK;
}

/* Writes pending head bytes plus up to three more pieces in one writev. */
static int emit(qt_request *r, const void *a, size_t an, const void *b, size_t bn,
                const void *c3, size_t cn)
{
    qt_conn *c = r->conn;
    struct iovec iov[4];
    int n = 0;
    if (c->out.len)
        iov[n++] = (struct iovec){ c->out.data, c->out.len };
    if (an)
        iov[n++] = (struct iovec){ (void *)a, an };
    if (bn)
        iov[n++] = (struct iovec){ (void *)b, bn };
    if (cn)
        iov[n++] = (struct iovec){ (void *)c3, cn };
    if (n == 0)
        return QT_OK;
    int rc = qt_conn_writev(c, iov, n, deadline(r));
    c->out.len = 0;
    return rc == QT_OK ? QT_OK : QT_ERROR;
}

static bool body_suppressed(const qt_request *r)
{
    return r->header_only || qt_http_status_bodyless(r->status);
}

/* Bytes after the filters: framing, then the transport. */
static int body_out(qt_request *r, const void *data, size_t n, bool flush)
{
    if (r->conn->aborted)
        return QT_ERROR;
    if (body_suppressed(r) || n == 0)
        return flush ? emit(r, NULL, 0, NULL, 0, NULL, 0) : QT_OK;
    r->bytes_sent += n;
    if (!r->chunked_out)
        return emit(r, data, n, NULL, 0, NULL, 0);
    char hdr[20];
    size_t hn = qt_http_chunk_header(hdr, n);
    return emit(r, hdr, hn, data, n, "\r\n", 2);
}

int qt_filter_pass(qt_request *r, const void *data, size_t n, bool flush)
{
    qt_active_filter *self = r->filter_cur;
    qt_active_filter *next = self ? self->next : NULL;
    if (!next)
        return body_out(r, data, n, flush);
    r->filter_cur = next;
    int rc = next->def->write(r, next->ctx, data, n, flush, false);
    r->filter_cur = self;
    return rc;
}

static int filtered_write(qt_request *r, const void *data, size_t n, bool flush, bool eof)
{
    if (!r->filters)
        return body_out(r, data, n, flush || eof);
    r->filter_cur = r->filters;
    int rc = r->filters->def->write(r, r->filters->ctx, data, n, flush, eof);
    r->filter_cur = NULL;
    return rc;
}

int qt_write(qt_request *r, const void *buf, size_t n)
{
    if (!r->headers_sent)
        qt_send_headers(r);
    if (r->raw_output) {
        r->bytes_sent += n;
        return qt_conn_write(r->conn, buf, n, deadline(r)) == QT_OK ? QT_OK : QT_ERROR;
    }
    if (n == 0)
        return QT_OK;
    return filtered_write(r, buf, n, false, false);
}

int qt_flush(qt_request *r)
{
    if (!r->headers_sent)
        qt_send_headers(r);
    if (r->raw_output)
        return QT_OK;
    return filtered_write(r, NULL, 0, true, false);
}

#define SMALL_FILE (64 * 1024)

int qt_sendfile(qt_request *r, int fd, off_t off, uint64_t len)
{
    if (!r->headers_sent)
        qt_send_headers(r);
    if (body_suppressed(r) && !r->raw_output)
        return emit(r, NULL, 0, NULL, 0, NULL, 0);
    /* Through filters, chunking, or small enough to share the head's
     * writev: read the bytes.  Otherwise let the kernel copy them. */
    if (r->filters || r->chunked_out || r->raw_output || len <= SMALL_FILE) {
        char *buf = qt_palloc(r->pool, len < SMALL_FILE ? (size_t)len : SMALL_FILE);
        while (len > 0) {
            size_t want = len < SMALL_FILE ? (size_t)len : SMALL_FILE;
            ssize_t got = pread(fd, buf, want, off);
            if (got <= 0)
                return QT_ERROR;
            if (qt_write(r, buf, (size_t)got) != QT_OK)
                return QT_ERROR;
            off += got;
            len -= (uint64_t)got;
        }
        return QT_OK;
    }
    if (emit(r, NULL, 0, NULL, 0, NULL, 0) != QT_OK)
        return QT_ERROR;
    r->bytes_sent += len;
    return qt_conn_sendfile(r->conn, fd, off, len, deadline(r)) == QT_OK ? QT_OK : QT_ERROR;
}

int qt_respond(qt_request *r, int status, const void *body, size_t len)
{
    r->status = status;
    r->content_length = (int64_t)len;
    qt_send_headers(r);
    if (len == 0 || body_suppressed(r))
        return emit(r, NULL, 0, NULL, 0, NULL, 0);
    return qt_write(r, body, len);
}

/* ----------------------------------------------------------- finishing */

void qt_request_finish(qt_request *r)
{
    qt_conn *c = r->conn;
    if (!r->headers_sent) {
        if (r->content_length < 0)
            r->content_length = 0;
        qt_send_headers(r);
    }
    /* An aborted response must not end with a valid last chunk: the client
     * would take a cut-off body for a whole one. */
    if (!r->raw_output && !c->aborted) {
        if (r->filters)
            filtered_write(r, NULL, 0, true, true);
        if (r->chunked_out && !body_suppressed(r))
            emit(r, QT_HTTP_LAST_CHUNK, sizeof(QT_HTTP_LAST_CHUNK) - 1, NULL, 0, NULL, 0);
        else
            emit(r, NULL, 0, NULL, 0, NULL, 0);
    }
    if (r->raw_output)
        c->keep_alive = false;
    /* Drain an unread body so the next request starts at the right byte. */
    qt_request *first = r;
    while (first->prev)
        first = first->prev;
    if (c->keep_alive && !c->aborted && !first->body_done &&
        qt_discard_body(first) != QT_OK)
        c->keep_alive = false;
    if (!c->keep_alive)
        c->lingering = !first->body_done || status_forces_close(r->status);
}

/* ----------------------------------------------------------- errors */

static const char *error_message(const qt_request *r, int status)
{
    switch (status) {
    case 301: case 302: case 303: case 307: case 308:
        return "The document has moved.";
    case 400: return "Your browser sent a request that this server could not understand.";
    case 403: return "You don't have permission to access this resource.";
    case 404: return "The requested URL was not found on this server.";
    case 405: return "The requested method is not allowed for this URL.";
    case 408: return "The server timed out waiting for the request.";
    case 410: return "The requested resource is no longer available on this server.";
    case 411: return "A request of the requested method requires a valid Content-Length.";
    case 412: return "The precondition on the request evaluated to false.";
    case 413: return "The request body is larger than this server allows.";
    case 414: return "The requested URL's length exceeds the capacity limit for this server.";
    case 416: return "None of the range-specifier values in the Range request-header field overlap the current extent of the selected resource.";
    case 417: return "The expectation given in the Expect request-header field could not be met by this server.";
    case 431: return "The request header fields are larger than this server allows.";
    case 501: return "The requested method is not supported for this URL.";
    case 504: return "The gateway did not receive a timely response from the upstream server or application.";
    case 505: return "The HTTP version of the request is not supported by this server.";
    default:
        (void)r;
        return "The server encountered an internal error or misconfiguration and was unable to complete your request.";
    }
}

static void default_page(qt_request *r, int status, qt_buf *b)
{
    const char *reason = qt_http_reason(status);
    qt_buf_printf(b, "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n"
                     "<html><head>\n<title>%d %s</title>\n</head><body>\n<h1>%s</h1>\n<p>",
                  status, reason, reason);
    const char *loc = qt_header_out(r, "Location");
    if (loc && status >= 300 && status < 400) {
        qt_buf_puts(b, "The document has moved <a href=\"");
        qt_buf_html_escape(b, loc);
        qt_buf_puts(b, "\">here</a>.");
    } else {
        qt_buf_puts(b, error_message(r, status));
    }
    qt_buf_puts(b, "</p>\n</body></html>\n");
}

static const qt_errdoc *find_errdoc(const qt_request *r, int status)
{
    const qt_dir_conf *dc = r->dir ? r->dir : r->server->dir_defaults;
    for (const qt_errdoc *d = dc ? dc->error_docs : NULL; d; d = d->next)
        if (d->status == status)
            return d;
    return NULL;
}

/* REDIRECT_* variables for the ErrorDocument target, as Apache sets them. */
static void redirect_env(qt_request *r, int status)
{
    for (qt_kv *kv = r->subprocess_env; kv; kv = kv->next)
        if (strncmp(kv->name, "REDIRECT_", 9) != 0)
            qt_env_set(r, qt_psprintf(r->pool, "REDIRECT_%s", kv->name), kv->value);
    qt_env_set(r, "REDIRECT_STATUS", qt_psprintf(r->pool, "%d", status));
    qt_env_set(r, "REDIRECT_URL", r->path ? r->path : "");
    qt_env_set(r, "REDIRECT_REQUEST_METHOD", r->method);
    if (r->args)
        qt_env_set(r, "REDIRECT_QUERY_STRING", r->args);
    if (r->error_notes)
        qt_env_set(r, "REDIRECT_ERROR_NOTES", r->error_notes);
}

/* ErrorDocument; returns true if it produced the response. */
static bool error_document(qt_request *r, int status)
{
    const qt_errdoc *d = find_errdoc(r, status);
    if (!d || r->redirect_status)      /* no ErrorDocument for an ErrorDocument */
        return false;
    if (d->is_text) {
        qt_set_content_type(r, "text/html; charset=iso-8859-1");
        qt_respond(r, status, d->target, strlen(d->target));
        return true;
    }
    if (d->target[0] != '/') {
        qt_header_set(r, "Location", d->target);
        r->status = 302;
        return false;                  /* the 302 page is the default one */
    }
    redirect_env(r, status);
    r->redirect_status = status;
    qt_internal_redirect(r, d->target);
    return true;
}

int qt_error_page(qt_request *r, int status)
{
    r->status = status;
    if (error_document(r, status))
        return QT_OK;
    status = r->status;
    qt_buf body;
    qt_buf_init(&body);
    default_page(r, status, &body);
    char *copy = qt_pstrndup(r->pool, body.data, body.len);
    size_t len = body.len;
    qt_buf_free(&body);
    qt_set_content_type(r, "text/html; charset=iso-8859-1");
    qt_respond(r, status, copy, len);
    return QT_OK;
}

int qt_send_error(qt_request *r, int status)
{
    if (r->headers_sent) {
        r->conn->keep_alive = false;   /* too late for a page: cut it short */
        return QT_OK;
    }
    if (status == 405 && !qt_header_out(r, "Allow"))
        qt_header_set(r, "Allow", "GET,HEAD,POST,OPTIONS");
    if (status_forces_close(status))
        r->conn->keep_alive = false;
    r->content_length = -1;
    r->status_line = NULL;
    return qt_error_page(r, status);
}
