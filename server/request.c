/*
 * One request: building it from the parsed head, routing it to a handler,
 * and reading its body.  The response side is in response.c.
 */
#include "request.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "log.h"
#include "mpm.h"
#include "request_internal.h"
#include "router.h"
#include "static.h"
#include "uri.h"

/* ----------------------------------------------------------- building */

static int64_t wall_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static void request_init(qt_request *r, qt_conn *c, qt_pool *p)
{
    r->pool = p;
    r->conn = c;
    r->cfg = c->cfg;
    r->server = c->cfg->main;
    r->start_us = wall_us();
    r->method = "-";
    r->protocol = "HTTP/1.1";
    qt_response_init(r);
}

qt_request *qt_request_alloc(qt_conn *c, qt_pool *p)
{
    /* Clearing the 4 KiB header array per request showed up as the top
     * cost of a small static response: clear around it instead. */
    qt_request *r = qt_palloc(p, sizeof(*r));
    size_t head = offsetof(qt_request, http) + offsetof(qt_http_request, headers);
    size_t tail = offsetof(qt_request, http) + offsetof(qt_http_request, nheaders);
    memset(r, 0, head);
    memset((char *)r + tail, 0, sizeof(*r) - tail);
    request_init(r, c, p);
    return r;
}

qt_request *qt_request_new_bare(qt_conn *c, qt_pool *p, const qt_server *s)
{
    qt_request *r = qt_request_alloc(c, p);
    r->server = s;
    r->protocol = "HTTP/1.0";   /* we do not know what the client speaks */
    r->http.version_major = 1;
    r->http.version_minor = 0;
    c->in_pos = c->in.len;
    return r;
}

/* Host: lower-cased name without the port; false if it is not a valid host. */
static bool host_from(qt_pool *p, qt_slice v, const char **out)
{
    size_t n = v.n;
    const char *s = v.p;
    if (n > 0 && s[0] == '[') {
        const char *end = memchr(s, ']', n);
        if (!end)
            return false;
        n = (size_t)(end - s) + 1;
    } else {
        const char *colon = memchr(s, ':', n);
        if (colon)
            n = (size_t)(colon - s);
    }
    if (n > 1 && s[n - 1] == '.')      /* "example.com." names example.com */
        n--;
    char *h = qt_pstrndup(p, s, n);
    for (char *q = h; *q; q++) {
        unsigned char ch = (unsigned char)*q;
        if (!isalnum(ch) && !strchr("-._[]:", ch))
            return false;
        *q = (char)tolower(ch);
    }
    *out = h;
    return true;
}

static const char *protocol_name(const qt_http_request *h)
{
    return h->version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
}

void qt_request_start(qt_request *r, size_t head_len)
{
    qt_conn *c = r->conn;
    qt_pool *p = r->pool;
    const qt_http_request *h = &r->http;
    c->in_pos = head_len;
    r->method_number = h->method;
    r->method = qt_pstrndup(p, h->method_name.p, h->method_name.n);
    r->unparsed_uri = qt_pstrndup(p, h->target.p, h->target.n);
    r->protocol = protocol_name(h);
    r->header_only = h->method == QT_M_HEAD;
    if (h->framing == QT_BODY_LENGTH)
        r->body_remaining = h->content_length;
    else if (h->framing == QT_BODY_CHUNKED)
        qt_chunked_init(&r->chunked);
    else
        r->body_done = true;
}

/* Turns the target into path, args and hostname; 0 or an error status. */
static int parse_target(qt_request *r)
{
    const char *raw_path = NULL, *abs_host = NULL;
    int st = qt_uri_split(r->pool, r->unparsed_uri, strlen(r->unparsed_uri),
                          &raw_path, &r->args, &abs_host);
    if (st)
        return st;
    qt_slice host = r->http.host;
    if (abs_host)     /* absolute-form wins over Host (RFC 9112 3.2.2) */
        host = (qt_slice){ abs_host, strlen(abs_host) };
    if (host.n > 0 && !host_from(r->pool, host, &r->hostname))
        return 400;
    if (strcmp(raw_path, "*") == 0) {
        r->path = "*";
        return 0;
    }
    return qt_uri_normalize(r->pool, raw_path, &r->path);
}

/* ----------------------------------------------------------- processing */

static int handle_trace(qt_request *r)
{
    if (r->cfg->trace_enable == 0)
        return 405;
    if (qt_has_body(r) && r->cfg->trace_enable != 2)
        return 413;
    qt_set_content_type(r, "message/http");
    r->status = 200;
    const qt_http_request *h = &r->http;
    if (qt_write(r, h->request_line.p, h->request_line.n) != QT_OK ||
        qt_write(r, "\r\n", 2) != QT_OK)
        return QT_OK;
    for (unsigned i = 0; i < h->nheaders; i++) {
        const qt_header *hd = &h->headers[i];
        qt_write(r, hd->name.p, hd->name.n);
        qt_write(r, ": ", 2);
        qt_write(r, hd->value.p, hd->value.n);
        qt_write(r, "\r\n", 2);
    }
    qt_write(r, "\r\n", 2);
    return QT_OK;
}

static int options_star(qt_request *r)
{
    r->status = 200;
    qt_set_content_length(r, 0);
    return QT_OK;
}

/* Checks every request must pass before routing; 0 or a status. */
static int precheck(qt_request *r)
{
    if (r->http.version_minor >= 1 && !r->http.has_host)
        return 400;
    if (r->http.expect_unknown)
        return 417;
    uint64_t limit = r->server->limit_request_body;
    if (limit && r->http.framing == QT_BODY_LENGTH && r->http.content_length > limit)
        return 413;
    return 0;
}

typedef int (*handler_fn)(qt_request *);

static handler_fn find_handler(qt_request *r)
{
    if (!r->handler || strcmp(r->handler, "default-handler") == 0)
        return qt_static_handler;
    handler_fn fn = qt_config_find_handler(r->cfg, r->handler);
    if (!fn) {
        /* Apache serves the file when no module claims the handler name. */
        qt_rlog(r, QT_LOG_WARN, "QT0300", "handler \"%s\" not found for %s, using default-handler",
                r->handler, r->filename ? r->filename : r->path);
        return qt_static_handler;
    }
    return fn;
}

/* The modules' fixups hooks, in LoadModule order; 0 or a status. */
static int run_fixups(qt_request *r)
{
    for (size_t i = 0; i < r->cfg->nmodules; i++) {
        int (*fix)(qt_request *) = r->cfg->modules[i]->fixups;
        int rc = fix ? fix(r) : QT_DECLINED;
        if (rc >= 100)
            return rc;
    }
    return 0;
}

/* Routes and runs the handler for r (also used by internal redirects). */
static void dispatch(qt_request *r)
{
    int st = qt_route(r);
    if (!st)
        st = run_fixups(r);
    if (st) {
        qt_send_error(r, st);
        return;
    }
    handler_fn handler = find_handler(r);
    int rc = handler(r);
    if (rc == QT_DECLINED && handler != qt_static_handler)
        rc = qt_static_handler(r);     /* a handler that passes: serve the file */
    if (rc >= 100)
        qt_send_error(r, rc);
}

void qt_request_process(qt_request *r)
{
    int st = parse_target(r);
    if (st == 0)
        r->server = qt_select_vhost(r->cfg, r->conn, r->hostname);
    if (st == 0)
        st = precheck(r);
    if (st) {
        r->conn->keep_alive = false;
        qt_send_error(r, st);
        return;
    }
    if (r->method_number == QT_M_TRACE) {
        st = handle_trace(r);
    } else if (strcmp(r->path, "*") == 0) {
        st = r->method_number == QT_M_OPTIONS ? options_star(r) : 400;
    } else {
        dispatch(r);
        return;
    }
    if (st >= 100)
        qt_send_error(r, st);
}

/* The request body's read state, handed from one request to another. */
static void move_body(qt_request *to, const qt_request *from)
{
    to->body_remaining = from->body_remaining;
    to->chunked = from->chunked;
    to->body_started = from->body_started;
    to->body_done = from->body_done;
    to->continue_sent = from->continue_sent;
    to->body_read = from->body_read;
}

static int redirect(qt_request *r, const char *url, bool keep_method)
{
    qt_request *nr = qt_pcalloc(r->pool, sizeof(*nr));
    request_init(nr, r->conn, r->pool);
    nr->http = r->http;
    nr->prev = r;
    nr->server = r->server;
    nr->start_us = r->start_us;
    nr->method_number = QT_M_GET;
    nr->method = "GET";
    nr->protocol = r->protocol;
    nr->hostname = r->hostname;
    nr->unparsed_uri = qt_pstrdup(r->pool, url);
    nr->header_only = r->header_only;
    nr->body_done = true;            /* the body belonged to the first request */
    nr->subprocess_env = r->subprocess_env;
    if (r->redirect_status)
        nr->redirect_status = r->redirect_status;
    const char *host = NULL;
    int st = qt_uri_split(nr->pool, url, strlen(url), &nr->path, &nr->args, &host);
    if (st == 0)
        st = qt_uri_normalize(nr->pool, nr->path, &nr->path);
    /* The redirect chain depth is bounded: a loop answers 500. */
    unsigned depth = 0;
    for (qt_request *p = r; p; p = p->prev)
        depth++;
    if (st == 0 && depth > 10) {
        qt_rlog(r, QT_LOG_ERR, "QT0301", "more than 10 internal redirects, last to %s", url);
        st = 500;
    }
    if (keep_method) {
        nr->method_number = r->method_number;
        nr->method = r->method;
        move_body(nr, r);
    }
    r->redirected = nr;
    if (st)
        qt_send_error(nr, st);
    else
        dispatch(nr);
    if (keep_method)
        move_body(r, nr);            /* the core drains what is left from r */
    return QT_OK;
}

int qt_internal_redirect(qt_request *r, const char *url)
{
    return redirect(r, url, false);
}

int qt_internal_redirect_handler(qt_request *r, const char *url)
{
    return redirect(r, url, true);
}

/* ----------------------------------------------------------- headers in */

const char *qt_header_in(const qt_request *r, const char *name)
{
    const qt_header *h = qt_http_find_header(&r->http, name);
    if (!h)
        return NULL;
    return qt_pstrndup(r->pool, h->value.p, h->value.n);
}

/* ----------------------------------------------------------- env */

void qt_env_set(qt_request *r, const char *name, const char *value)
{
    for (qt_kv *kv = r->subprocess_env; kv; kv = kv->next) {
        if (strcmp(kv->name, name) == 0) {
            kv->value = qt_pstrdup(r->pool, value);
            return;
        }
    }
    qt_kv *kv = qt_palloc(r->pool, sizeof(*kv));
    kv->name = qt_pstrdup(r->pool, name);
    kv->value = qt_pstrdup(r->pool, value);
    kv->next = r->subprocess_env;
    r->subprocess_env = kv;
}

const char *qt_env_get(const qt_request *r, const char *name)
{
    for (const qt_kv *kv = r->subprocess_env; kv; kv = kv->next)
        if (strcmp(kv->name, name) == 0)
            return kv->value;
    return NULL;
}

/* ----------------------------------------------------------- body */

bool qt_has_body(const qt_request *r)
{
    return r->http.framing != QT_BODY_NONE && !(r->http.framing == QT_BODY_LENGTH &&
                                                 r->http.content_length == 0);
}

static int send_continue(qt_request *r)
{
    r->continue_sent = true;
    if (!r->http.expect_continue || r->http.version_minor < 1 || r->headers_sent)
        return QT_OK;
    /* Only if the body has not started arriving already. */
    if (r->conn->in.len > r->conn->in_pos)
        return QT_OK;
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    return qt_conn_write(r->conn, msg, sizeof(msg) - 1,
                         qt_deadline_after(r->server->timeout_ms));
}

/* Raw body bytes: buffered ones first, then the socket. */
static ssize_t read_raw(qt_request *r, void *buf, size_t n)
{
    qt_conn *c = r->conn;
    size_t avail = c->in.len - c->in_pos;
    if (avail > 0) {
        size_t k = avail < n ? avail : n;
        memcpy(buf, c->in.data + c->in_pos, k);
        c->in_pos += k;
        return (ssize_t)k;
    }
    return qt_conn_read(c, buf, n, qt_deadline_after(r->server->timeout_ms));
}

/* Puts back bytes read past the end of a chunked body (a pipelined request). */
static void unread(qt_request *r, const char *p, size_t n)
{
    qt_conn *c = r->conn;
    if (n <= c->in_pos && c->in.data && p >= c->in.data && p < c->in.data + c->in.len) {
        c->in_pos -= n;
        return;
    }
    /* Came straight from the socket: the buffer was empty (in_pos == len). */
    qt_buf_consume(&c->in, c->in_pos);
    c->in_pos = 0;
    qt_buf_append(&c->in, p, n);
}

static ssize_t body_error(qt_request *r, ssize_t rc)
{
    r->status = rc == QT_TIMEOUT ? 408 : 400;
    r->conn->keep_alive = false;
    r->body_done = true;
    return rc < 0 ? rc : QT_ERROR;
}

static ssize_t read_length(qt_request *r, void *buf, size_t n)
{
    if (r->body_remaining == 0) {
        r->body_done = true;
        return 0;
    }
    if (n > r->body_remaining)
        n = (size_t)r->body_remaining;
    ssize_t got = read_raw(r, buf, n);
    if (got <= 0)
        return body_error(r, got == 0 ? QT_CLOSED : got);
    r->body_remaining -= (uint64_t)got;
    if (r->body_remaining == 0)
        r->body_done = true;
    return got;
}

static ssize_t read_chunked(qt_request *r, char *buf, size_t n)
{
    qt_conn *c = r->conn;
    for (;;) {
        bool from_buffer = c->in.len > c->in_pos;
        ssize_t got = read_raw(r, buf, n);
        if (got <= 0)
            return body_error(r, got == 0 ? QT_CLOSED : got);
        size_t len = (size_t)got;
        ssize_t rc = qt_chunked_decode(&r->chunked, buf, &len);
        if (rc == QT_CHUNKED_ERROR)
            return body_error(r, QT_ERROR);
        if (rc >= 0) {
            /* Done: hand bytes past the body back to the connection. */
            if (rc > 0) {
                if (from_buffer)
                    c->in_pos -= (size_t)rc;
                else
                    unread(r, buf + got - rc, (size_t)rc);
            }
            r->body_done = true;
        }
        if (len > 0 || r->body_done)
            return (ssize_t)len;
    }
}

ssize_t qt_read_body(qt_request *r, void *buf, size_t n)
{
    if (r->body_done || n == 0)
        return 0;
    if (!r->continue_sent && send_continue(r) != QT_OK)
        return body_error(r, QT_ERROR);
    r->body_started = true;
    ssize_t got = r->http.framing == QT_BODY_CHUNKED ? read_chunked(r, buf, n)
                                                     : read_length(r, buf, n);
    if (got > 0) {
        r->body_read += (uint64_t)got;
        uint64_t limit = r->server->limit_request_body;
        if (limit && r->body_read > limit) {
            r->status = 413;
            r->conn->keep_alive = false;
            r->body_done = true;
            return QT_ERROR;
        }
    }
    return got;
}

int qt_discard_body(qt_request *r)
{
    char junk[8192];
    while (!r->body_done) {
        ssize_t n = qt_read_body(r, junk, sizeof(junk));
        if (n < 0)
            return QT_ERROR;
        if (n == 0)
            break;
    }
    return QT_OK;
}
