/*
 * One HTTP request and the response API handlers use.
 *
 * The core parses the head, routes, calls the handler, and finishes the
 * response.  A handler sets the status and headers, then writes the body
 * with qt_write()/qt_sendfile(); the first body write sends the head.
 * Framing (Content-Length, chunked, close-delimited), HEAD, and output
 * filters (gzip) are the core's business, not the handler's.
 */
#ifndef QT_REQUEST_H
#define QT_REQUEST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "conn.h"
#include "config.h"
#include "http_parser.h"
#include "pool.h"

/* An output filter (gzip): sits between qt_write() and the framing. */
struct qt_filter_def {
    const char *name;                  /* "DEFLATE" */
    /* Decides, once headers are known, whether to run; may edit headers.
     * Returns QT_OK to run (with *ctx set) or QT_DECLINED.  Also called for
     * bodyless responses (204, 304), so a filter can set the headers its
     * variant carries (Vary, ETag); it must decline those. */
    int (*start)(qt_request *r, void **ctx);
    /* Transforms data; eof on the last call.  Writes with qt_filter_pass(). */
    int (*write)(qt_request *r, void *ctx, const void *data, size_t n, bool flush, bool eof);
};

typedef struct qt_active_filter {
    const qt_filter_def *def;
    void *ctx;
    struct qt_active_filter *next;
} qt_active_filter;

struct qt_request {
    qt_pool *pool;                     /* freed when the request ends */
    qt_conn *conn;
    const qt_config *cfg;
    const qt_server *server;           /* the virtual host chosen */
    qt_request *prev;                  /* before an internal redirect */
    qt_request *redirected;            /* after an internal redirect */

    /* Request line, decoded. */
    enum qt_method method_number;
    const char *method;
    const char *unparsed_uri;          /* target as sent (REQUEST_URI) */
    const char *path;                  /* decoded, dot-segments removed */
    const char *args;                  /* query string, NULL if none */
    const char *hostname;              /* Host without port, lower-case */
    const char *protocol;              /* "HTTP/1.1" */
    int64_t start_us;                  /* wall clock at the first byte */

    /* Routing result (router.c). */
    const char *handler;               /* "default-handler", "cgi-script", ... */
    const char *filename;              /* file the URL maps to */
    const char *path_info;             /* trailing part after filename */
    const char *uri_prefix;            /* part of path matched by an Alias/ScriptAlias */
    const char *context_root;          /* its filesystem side (CONTEXT_DOCUMENT_ROOT) */
    const qt_dir_conf *dir;            /* merged per-directory config */
    struct stat finfo;                 /* valid if have_finfo */
    bool have_finfo;
    const char *user;                  /* authenticated user, NULL if none */
    bool script_alias;                 /* routed by ScriptAlias (CGI needs no ExecCGI) */
    int redirect_status;               /* ErrorDocument: the status to keep */
    qt_kv *subprocess_env;             /* SetEnv, REDIRECT_*; for CGI */

    /* Request body. */
    uint64_t body_remaining;           /* Content-Length bytes left */
    qt_chunked_decoder chunked;
    bool body_started;
    bool body_done;
    bool continue_sent;
    uint64_t body_read;

    /* Response. */
    int status;
    const char *status_line;           /* custom "404 Gone Fishing", or NULL */
    qt_kv *headers_out;
    const char *content_type;
    int64_t content_length;            /* -1: unknown */
    bool headers_sent;
    bool header_only;                  /* HEAD */
    bool chunked_out;
    bool close_after;                  /* force Connection: close */
    bool raw_output;                   /* nph-: bytes go to the client as is */
    uint64_t bytes_sent;               /* body bytes (%b), before framing */
    qt_active_filter *filters;         /* output filters, outermost first */
    qt_active_filter *filter_cur;      /* filter now running (qt_filter_pass) */
    const char *error_notes;           /* for the error log */

    /* The parsed head, last: its 4 KiB header array is filled by the
     * parser, never cleared (qt_request_alloc zeroes everything else). */
    qt_http_request http;
};

/* Input headers. */
const char *qt_header_in(const qt_request *r, const char *name);

/* Output headers (values copied into r->pool). */
void qt_header_set(qt_request *r, const char *name, const char *value);
void qt_header_add(qt_request *r, const char *name, const char *value);
void qt_header_unset(qt_request *r, const char *name);
const char *qt_header_out(const qt_request *r, const char *name);
void qt_set_content_type(qt_request *r, const char *type);
void qt_set_content_length(qt_request *r, int64_t len);

/* Body output.  Each returns QT_OK or QT_ERROR (client gone). */
int qt_send_headers(qt_request *r);
int qt_write(qt_request *r, const void *buf, size_t n);
int qt_sendfile(qt_request *r, int fd, off_t off, uint64_t len);
int qt_flush(qt_request *r);
/* Convenience: status, Content-Length and the whole body in one go. */
int qt_respond(qt_request *r, int status, const void *body, size_t len);
/* For output filters: passes transformed bytes on toward the client. */
int qt_filter_pass(qt_request *r, const void *data, size_t n, bool flush);

/*
 * Request body input, decoded (chunked) and limited by LimitRequestBody.
 * Sends "100 Continue" on first use when the client asked for it.
 * Returns bytes read, 0 at the end, or a negative QT_* code with r->status
 * set to the error to answer (400, 408, 413).
 */
ssize_t qt_read_body(qt_request *r, void *buf, size_t n);
/* Reads and drops the rest of the body (keeps the connection usable). */
int qt_discard_body(qt_request *r);
bool qt_has_body(const qt_request *r);

/* Env vars for subprocesses (SetEnv etc.). */
void qt_env_set(qt_request *r, const char *name, const char *value);
const char *qt_env_get(const qt_request *r, const char *name);

/*
 * Sends the error response for status (honouring ErrorDocument), unless
 * headers are already out.  Returns QT_OK.
 */
int qt_send_error(qt_request *r, int status);
/* Internal redirect to a local URL as GET (CGI Location, ErrorDocument). */
int qt_internal_redirect(qt_request *r, const char *url);
/* The same keeping the method and the unread body, for the new request to
 * read (Apache's ap_internal_redirect_handler; the Action directive). */
int qt_internal_redirect_handler(qt_request *r, const char *url);

/* The Server header per ServerTokens ("Quintet/0.1.0 (Unix)"). */
const char *qt_server_banner(const qt_config *cfg);

/* "http" or "https" */
const char *qt_request_scheme(const qt_request *r);
/* Port the client addressed (Host port, else the listener's). */
int qt_request_port(const qt_request *r);

#endif
