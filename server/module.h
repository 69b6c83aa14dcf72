/*
 * The module interface: what a loadable module (.so) exports.
 *
 * A module is one const struct filled with designated initializers; hooks it
 * does not need stay NULL.  `LoadModule hello_module modules/mod_hello.so`
 * dlopen()s the file and looks up the symbol `hello_module`.
 *
 * A module keeps no mutable globals: its settings live in the per-server and
 * per-directory structs the core creates through the hooks below, because
 * the worker and hybrid MPMs run many requests at once on several threads.
 *
 * Minimal handler module:
 *
 *     static int hello(qt_request *r) {
 *         qt_set_content_type(r, "text/plain");
 *         return qt_respond(r, 200, "Hello\n", 6);
 *     }
 *     const qt_module hello_module = {
 *         QT_MODULE_HEADER("hello_module"),
 *         .handlers = (const qt_handler[]){ { "hello", hello }, { 0 } },
 *     };
 */
#ifndef QT_MODULE_H
#define QT_MODULE_H

#include <stdbool.h>
#include <stddef.h>

#include "pool.h"

#define QT_MODULE_ABI 1
#define QT_MODULE_HEADER(n) .abi = QT_MODULE_ABI, .name = (n)

typedef struct qt_request qt_request;
typedef struct qt_conn qt_conn;
typedef struct qt_config qt_config;
typedef struct qt_server qt_server;
typedef struct qt_mpm qt_mpm;
typedef struct qt_filter_def qt_filter_def;

/*
 * The shared return vocabulary.  Handlers return QT_OK once they have sent a
 * response, QT_DECLINED to let the router's fallback answer, or an HTTP
 * status (>= 100) to have the core send that error page (ErrorDocument
 * applies).  I/O helpers return QT_OK, QT_AGAIN (would block; only seen by
 * the MPM layer) or QT_ERROR.
 */
enum {
    QT_OK = 0,
    QT_DECLINED = -1,
    QT_AGAIN = -2,
    QT_ERROR = -3,
    QT_TIMEOUT = -4,
    QT_CLOSED = -5      /* peer closed the connection */
};

/* Argument shapes a directive takes; the core checks the count. */
enum qt_args {
    QT_NO_ARGS,
    QT_TAKE1,
    QT_TAKE2,
    QT_TAKE12,
    QT_TAKE23,
    QT_TAKE123,
    QT_ONE_PLUS,   /* one or more */
    QT_FLAG,       /* On|Off -> argv[0] is "1" or "0" */
    QT_RAW_ARGS    /* argc 1, argv[0] is the raw text after ${} expansion */
};

/* Where a directive may appear. */
#define QT_CTX_MAIN   0x1u   /* main server, outside every section */
#define QT_CTX_VHOST  0x2u   /* inside <VirtualHost> */
#define QT_CTX_DIR    0x4u   /* inside <Directory>, <Location> or <Files> */
#define QT_CTX_SERVER (QT_CTX_MAIN | QT_CTX_VHOST)
#define QT_CTX_ANY    (QT_CTX_MAIN | QT_CTX_VHOST | QT_CTX_DIR)

/* What a directive setter is given. */
typedef struct qt_cmd {
    qt_config *cfg;          /* the configuration being built */
    qt_server *server;       /* main server or the enclosing <VirtualHost> */
    void *srv_conf;          /* this module's per-server struct (or NULL) */
    void *dir_conf;          /* this module's per-directory struct for the
                                current scope (or NULL) */
    unsigned ctx;            /* QT_CTX_* the directive appeared in */
    const char *file;
    unsigned line;
    const char *name;        /* directive name as written */
    qt_pool *pool;           /* lives as long as the configuration */
} qt_cmd;

/* Returns NULL on success or a message saying what is wrong (pool string or
 * literal); the core adds file, line and directive name. */
typedef const char *(*qt_directive_fn)(qt_cmd *cmd, int argc, char **argv);

typedef struct qt_directive {
    const char *name;
    enum qt_args args;
    unsigned contexts;
    qt_directive_fn set;
    const char *help;        /* "On|Off: whether ..." shown in errors */
} qt_directive;

typedef struct qt_handler {
    const char *name;        /* matched by SetHandler / AddHandler */
    int (*handle)(qt_request *r);
} qt_handler;

typedef struct qt_module {
    unsigned abi;                       /* QT_MODULE_ABI */
    const char *name;                   /* "hello_module", the LoadModule name */

    const qt_directive *directives;     /* terminated by { 0 } */
    const qt_handler *handlers;         /* terminated by { 0 } */
    const qt_filter_def *filters;       /* output filters, terminated by { 0 } */

    void *(*create_server_conf)(qt_pool *p);
    void *(*merge_server_conf)(qt_pool *p, const void *base, const void *add);
    void *(*create_dir_conf)(qt_pool *p);
    void *(*merge_dir_conf)(qt_pool *p, const void *base, const void *add);

    /* In the master after the whole config is read; may refuse it. */
    int (*post_config)(qt_config *cfg, char *err, size_t errlen);
    /* In every child (or thread pool) after privileges are dropped. */
    void (*child_init)(qt_config *cfg);

    const qt_mpm *mpm;                  /* non-NULL only in MPM modules */

    /*
     * Optional: a connection was just accepted (end of qt_conn_create),
     * before any byte is read.  A transport module installs itself here
     * (mod_ssl sets c->transport, c->transport_data and c->tls for
     * connections on its addresses).  Runs in the serving context; must
     * not block.
     */
    void (*conn_init)(qt_conn *c);
    /*
     * Optional: after routing, before the handler runs (internal redirects
     * included), in LoadModule order.  Returns QT_DECLINED or QT_OK to go
     * on, or an HTTP status to answer with instead of running the handler
     * (mod_ssl: 421 when Host and SNI name different servers).
     */
    int (*fixups)(qt_request *r);
} qt_module;

/* A module's own per-server / per-directory struct for this request. */
void *qt_module_server_conf(const qt_request *r, const qt_module *m);
void *qt_module_dir_conf(const qt_request *r, const qt_module *m);

#endif
