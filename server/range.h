/*
 * Range requests (RFC 9110 14) and conditional requests (RFC 9110 13):
 * pure decisions about a representation of known size, mtime and ETag.
 */
#ifndef QT_RANGE_H
#define QT_RANGE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "pool.h"

#define QT_MAX_RANGES 200    /* Apache's MaxRanges default: more -> full 200 */

typedef struct {
    uint64_t first;
    uint64_t last;           /* inclusive */
} qt_range;

enum qt_range_result {
    QT_RANGE_NONE,           /* no/invalid/too many ranges: send 200 */
    QT_RANGE_OK,             /* *ranges holds n >= 1 satisfiable ranges (sorted, merged) */
    QT_RANGE_UNSATISFIABLE   /* 416 */
};

/* Parses a Range header value against a representation of `size` bytes. */
enum qt_range_result qt_range_parse(qt_pool *p, const char *header, uint64_t size,
                                    qt_range **ranges, unsigned *n);

/* Builds the strong ETag "size-mtime_usec" in hex, as Apache's default FileETag.
 * weak=true prefixes W/ (file changed less than a second before now). */
const char *qt_etag_make(qt_pool *p, uint64_t size, int64_t mtime_usec, bool weak);

/* Does an If-None-Match / If-Match list match etag?  weak: weak comparison. */
bool qt_etag_list_match(const char *list, const char *etag, bool weak);

typedef struct {
    const char *if_match, *if_none_match, *if_modified_since,
               *if_unmodified_since, *if_range;
} qt_cond_headers;

/*
 * RFC 9110 13.2.2 evaluation order.  Returns 0 to proceed, 304 (for GET/HEAD)
 * or 412.  is_get_head: method is GET or HEAD.
 */
int qt_cond_evaluate(const qt_cond_headers *h, const char *etag, time_t mtime,
                     bool is_get_head);

/* If-Range: true if the range may be honoured (strong ETag match or exact date). */
bool qt_if_range_ok(const char *if_range, const char *etag, time_t mtime);

#endif
