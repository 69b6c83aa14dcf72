/*
 * CGI/1.1 (RFC 3875) as Apache's mod_cgi does it: the pure parts.
 *
 * Nothing here touches a process, a socket or a request: the environment is
 * built from plain inputs (qt_cgi_env_in) and the script's response head is
 * parsed from bytes, so both are unit-tested from tables.  server/cgi.c
 * fills the inputs from a qt_request and runs the script.
 */
#ifndef QT_CGI_ENV_H
#define QT_CGI_ENV_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "http_parser.h"
#include "pool.h"
#include "request.h"

/* The cgi-script handler and the built-in module holding the CGI directives
 * (SetEnv PassEnv UnsetEnv CGIPassAuth CGIScriptTimeout RLimitCPU/MEM/NPROC). */
int qt_cgi_handler(qt_request *r);
extern const qt_module qt_cgi_module;

/* Apache's PATH for scripts when none was configured (SetEnv/PassEnv PATH). */
#define QT_CGI_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Everything the environment is made of.  NULL strings are "not set". */
typedef struct qt_cgi_env_in {
    const char *method;              /* REQUEST_METHOD */
    const char *protocol;            /* SERVER_PROTOCOL */
    const char *request_uri;         /* raw target of the original request */
    const char *args;                /* QUERY_STRING (NULL -> "") */
    const char *path;                /* decoded URL path, path info included */
    const char *path_info;           /* trailing part after the script */
    const char *path_translated;     /* path_info mapped to a file */
    const char *filename;            /* SCRIPT_FILENAME */
    const qt_header *headers;        /* request header fields, wire order */
    unsigned nheaders;
    bool pass_auth;                  /* CGIPassAuth On */
    const char *remote_addr, *remote_host, *remote_user, *auth_type;
    int remote_port;
    const char *server_name;         /* HTML-escaped here */
    int server_port;
    const char *server_addr, *server_admin, *server_software, *server_signature;
    const char *document_root, *context_prefix, *context_document_root;
    const char *scheme;              /* REQUEST_SCHEME */
    bool https;                      /* HTTPS=on */
    const char *redirect_url;        /* r->prev: REDIRECT_URL */
    const char *redirect_query;      /* r->prev: REDIRECT_QUERY_STRING */
    int redirect_status;             /* r->prev: REDIRECT_STATUS unless in
                                        subprocess_env already; 0: none */
    const qt_kv *subprocess_env;     /* SetEnv/PassEnv/REDIRECT_*: overridden
                                        by the computed variables */
    const char *tz, *ld_library_path;/* server's own, passed on when set */
} qt_cgi_env_in;

/*
 * Builds the environment as a list (computed variables win over
 * subprocess_env, as in Apache) and as a NULL-terminated envp array.
 * Either out pointer may be NULL.
 */
void qt_cgi_build_env(qt_pool *p, const qt_cgi_env_in *in, qt_kv **list, char ***envp);

/* "HTTP_" name for a request header, or NULL when the header must not be
 * passed (odd characters, Proxy, Content-Type/Length, Authorization
 * without pass_auth). */
char *qt_cgi_header_var(qt_pool *p, qt_slice name, bool pass_auth);

/* SCRIPT_NAME: the path minus the path-info suffix. */
const char *qt_cgi_script_name(qt_pool *p, const char *path, const char *path_info);

/*
 * PATH_TRANSLATED as a sub-request would map path_info: through the
 * Alias/ScriptAlias prefixes of the server, else under the document root.
 * NULL when there is no path info or a Redirect matches.
 */
const char *qt_cgi_translate(qt_pool *p, const qt_server *s, const char *path_info);

/*
 * The old ISINDEX argv: a query string without '=' is split on '+', each
 * word percent-decoded and shell-escaped (as Apache does).  argv[0] is
 * script; NULL-terminated.
 */
char **qt_cgi_argv(qt_pool *p, const char *script, const char *args);

/* True for "nph-" scripts (by basename). */
bool qt_cgi_is_nph(const char *filename);

/* A SetEnv / UnsetEnv (PassEnv is a SetEnv with the value read at config
 * time), applied in order over a base list. */
typedef struct qt_cgi_envop {
    const char *name;
    const char *value;               /* NULL: unset */
    struct qt_cgi_envop *next;
} qt_cgi_envop;

qt_kv *qt_cgi_env_apply(qt_pool *p, const qt_kv *base, const qt_cgi_envop *ops);

/* ---------------------------------------------------------- the response head */

#define QT_CGI_MAX_LINE 8192        /* Apache's limit on a header line */

enum {
    QT_CGI_HEAD_MORE = 0,           /* need more bytes */
    QT_CGI_HEAD_DONE = 1,           /* blank line seen */
    QT_CGI_HEAD_BAD = -1,           /* a line without ':' */
    QT_CGI_HEAD_LONG = -2,          /* a line over QT_CGI_MAX_LINE */
    QT_CGI_HEAD_STATUS = -3         /* Status: not a valid 3-digit code */
};

typedef struct {
    int status;                     /* Status:, 0 if none */
    const char *status_line;        /* "418 I am a teapot" when a reason was given */
    const char *location;
    const char *content_type;       /* media type lower-cased, params kept */
    qt_kv *headers;                 /* the rest, in order; duplicates merged
                                       with ", " except Set-Cookie */
    unsigned nlines;                /* header lines seen */
    const char *bad;                /* first 30 chars of the offending line */
} qt_cgi_head;

/*
 * Parses complete lines of buf[0..len) into h (zeroed by the caller before
 * the first call).  *used is set to the bytes consumed; call again with the
 * unconsumed rest plus new bytes.  Content-Length and Transfer-Encoding from
 * the script are dropped: framing is the core's.
 */
int qt_cgi_head_parse(qt_pool *p, qt_cgi_head *h, const char *buf, size_t len,
                      size_t *used);

#endif
