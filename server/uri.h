/*
 * URL path handling, done once, in the router: percent-decoding, dot-segment
 * removal, slash merging.  Pure functions, no I/O.
 */
#ifndef QT_URI_H
#define QT_URI_H

#include <stdbool.h>
#include <stddef.h>

#include "pool.h"

/*
 * Splits a request-target into path and query.  Accepts origin-form
 * ("/a?b"), absolute-form ("http://host:port/a?b": *host set to "host:port")
 * and "*".  Returns 0, or 400 for anything else.
 */
int qt_uri_split(qt_pool *p, const char *target, size_t len,
                 const char **path, const char **query, const char **host);

/*
 * Decodes %XX in path and normalizes it: merges repeated slashes and
 * removes "." and ".." segments (RFC 3986 5.2.4).  Returns 0 and *out, or:
 *   400 for a bad %-escape, a decoded NUL or control character, or ".."
 *       climbing above "/";
 *   404 for an encoded slash (%2F), as Apache with AllowEncodedSlashes Off.
 * The input must start with '/'.  A trailing slash is kept.
 */
int qt_uri_normalize(qt_pool *p, const char *path, const char **out);

/* Percent-decodes s (for query parameters: '+' is not special). -1 on a bad escape. */
int qt_uri_unescape(char *s);

/* Percent-encodes the characters a path segment may not hold. */
char *qt_uri_escape_path(qt_pool *p, const char *s);

#endif
