/*
 * A pure streaming gzip transform over zlib: bytes in, bytes out through a
 * callback, no I/O of its own.  mod_deflate wraps it as an output filter;
 * t/unit/test_deflate.c round-trips it through inflate.
 *
 *     qt_deflate d;
 *     qt_deflate_init(&d, 6);
 *     qt_deflate_feed(&d, data, n, emit, arg);   any number of times
 *     qt_deflate_flush(&d, emit, arg);           optional: Z_SYNC_FLUSH, so the
 *                                                client can decode all fed so far
 *     qt_deflate_finish(&d, emit, arg);          gzip trailer
 *     qt_deflate_end(&d);                        always, frees zlib's state
 *
 * emit(arg, p, n) receives each piece of output (n > 0) and returns QT_OK
 * or an error, which stops the transform and is returned to the caller.
 */
#ifndef QT_DEFLATE_H
#define QT_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <zlib.h>

#include "pool.h"

#define QT_DEFLATE_OUT 16384        /* output is handed on in pieces this big */

typedef int (*qt_deflate_emit)(void *arg, const void *p, size_t n);

typedef struct qt_deflate {
    z_stream zs;
    bool ready;                      /* deflateInit2 succeeded: end must run */
    bool finished;                   /* trailer written */
    unsigned char out[QT_DEFLATE_OUT];
} qt_deflate;

/* level 1..9 (or -1 for zlib's default 6); QT_OK or QT_ERROR. */
int qt_deflate_init(qt_deflate *d, int level);
int qt_deflate_feed(qt_deflate *d, const void *in, size_t n, qt_deflate_emit emit, void *arg);
int qt_deflate_flush(qt_deflate *d, qt_deflate_emit emit, void *arg);
int qt_deflate_finish(qt_deflate *d, qt_deflate_emit emit, void *arg);
void qt_deflate_end(qt_deflate *d);

/* ---- HTTP helpers for the gzip variant (pure string functions) */

/*
 * Does this Accept-Encoding allow gzip?  q-values are honoured ("gzip;q=0"
 * refuses, as does a malformed q); "x-gzip" counts as gzip; "*" applies
 * when gzip is not named.  No header (NULL): no.
 */
bool qt_accepts_gzip(const char *accept_encoding);
/* The gzip variant's ETag: "abc" -> "abc-gzip", W/"abc" -> W/"abc-gzip";
 * NULL for a value that is not a quoted entity tag. */
char *qt_etag_gzip(qt_pool *p, const char *etag);
/* An If-None-Match / If-Match list with the plain tag added after each
 * "...-gzip" one, so the handler's own comparison matches the variant the
 * client holds; NULL if the list names no gzip variant. */
char *qt_etag_list_ungzip(qt_pool *p, const char *list);

#endif
