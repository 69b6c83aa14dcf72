/*
 * Apache LogFormat strings: compiled once at config time, rendered per
 * request into a caller buffer with no allocation.
 *
 * Tokens: %h %a %l %u %t %{fmt}t %r %m %U %q %H %s %>s %b %B %D %T %{ms}T
 * %{Name}i %{Name}o %{VAR}e %v %V %p %P %f %% and "\n" "\t" "\"" escapes.
 * Nicknames: common, combined (defined by default).
 */
#ifndef QT_ACCESS_FORMAT_H
#define QT_ACCESS_FORMAT_H

#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "pool.h"

typedef struct qt_access_format qt_access_format;

/* The values a format can print; NULL strings print "-". */
typedef struct {
    const char *remote_ip;          /* %h %a */
    const char *remote_user;        /* %u */
    time_t time_sec;                /* %t (request start) */
    long time_usec;
    const char *request_line;       /* %r */
    const char *method;             /* %m */
    const char *path;               /* %U */
    const char *query;              /* %q (without '?') */
    const char *protocol;           /* %H */
    int status;                     /* %s %>s */
    int orig_status;                /* %<s (before internal redirect) */
    uint64_t bytes;                 /* %b %B */
    int64_t duration_us;            /* %D %T */
    const char *server_name;        /* %v %V */
    int local_port;                 /* %p */
    long pid;                       /* %P (0: getpid() when rendered) */
    const char *filename;           /* %f */
    /* Header and env lookups: return NULL if absent. */
    const char *(*header_in)(const void *ctx, const char *name);
    const char *(*header_out)(const void *ctx, const char *name);
    const char *(*env)(const void *ctx, const char *name);
    const char *(*note)(const void *ctx, const char *name);  /* %{X}x extension tokens */
    const void *ctx;
} qt_access_values;

/* NULL with a message in err for an unknown token. */
qt_access_format *qt_access_format_compile(qt_pool *p, const char *fmt,
                                           char *err, size_t errlen);
/* Appends one line (with '\n') to out.  Strings from the request are
 * escaped as Apache does (\xhh for control characters, \" and \\). */
void qt_access_format_render(const qt_access_format *f, const qt_access_values *v,
                             qt_buf *out);

#endif
