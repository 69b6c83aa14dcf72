/*
 * URL path handling: request-target splitting, percent-decoding and
 * dot-segment removal.  Pure functions; the router calls them once per
 * request so that nothing downstream ever sees an undecoded or relative path.
 */
#include "uri.h"

#include <string.h>

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes the two hex digits after a '%'; -1 if they are not hex. */
static int decode_pct(const char *s)
{
    int hi = hexval((unsigned char)s[0]);
    int lo = hi < 0 ? -1 : hexval((unsigned char)s[1]);

    return lo < 0 ? -1 : hi * 16 + lo;
}

static bool is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* ------------------------------------------------------------ splitting */

static bool prefix_caseeq(const char *s, size_t len, const char *pre)
{
    size_t n = strlen(pre);

    if (len < n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (c != (unsigned char)pre[i])
            return false;
    }
    return true;
}

/*
 * A request-target may hold neither whitespace nor controls (the parser
 * already split on SP), and '#' never: a fragment is client-side only
 * (RFC 9112 3.2), so its presence means a broken or hostile client.
 */
static bool target_chars_ok(const char *t, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c <= 0x20 || c == 0x7f || c == '#')
            return false;
    }
    return true;
}

/* host = IP-literal / IPv4 / reg-name, then optional ":" port digits.
 * Userinfo ('@') is forbidden in http(s) URIs (RFC 9110 4.2.4). */
static bool authority_ok(const char *a, size_t n)
{
    size_t i = 0;

    if (n == 0)
        return false;
    if (a[0] == '[') {
        while (i < n && a[i] != ']')
            i++;
        if (i == n)
            return false;
        i++;
    } else {
        while (i < n && a[i] != ':' && a[i] != '@' && a[i] != '[' && a[i] != ']')
            i++;
        if (i == 0)
            return false;
    }
    if (i == n)
        return true;
    if (a[i] != ':')
        return false;
    for (i++; i < n; i++)
        if (a[i] < '0' || a[i] > '9')
            return false;
    return true;
}

/* Splits "path[?query]" (t[0..len)) into pool strings; query NULL if no '?'. */
static void split_path_query(qt_pool *p, const char *t, size_t len,
                             const char **path, const char **query)
{
    const char *q = memchr(t, '?', len);
    size_t plen = q ? (size_t)(q - t) : len;

    *path = plen ? qt_pstrndup(p, t, plen) : "/";
    *query = q ? qt_pstrndup(p, q + 1, len - plen - 1) : NULL;
}

static int split_absolute(qt_pool *p, const char *t, size_t len,
                          const char **path, const char **query,
                          const char **host)
{
    size_t skip = prefix_caseeq(t, len, "http://") ? 7 : 8;
    const char *a = t + skip;
    size_t rest = len - skip, alen = 0;

    while (alen < rest && a[alen] != '/' && a[alen] != '?')
        alen++;
    if (!authority_ok(a, alen))
        return 400;
    *host = qt_pstrndup(p, a, alen);
    split_path_query(p, a + alen, rest - alen, path, query);
    return 0;
}

int qt_uri_split(qt_pool *p, const char *target, size_t len,
                 const char **path, const char **query, const char **host)
{
    *path = NULL;
    *query = NULL;
    *host = NULL;
    if (len == 0 || !target_chars_ok(target, len))
        return 400;
    if (len == 1 && target[0] == '*') {
        *path = "*";
        return 0;
    }
    if (target[0] == '/') {
        split_path_query(p, target, len, path, query);
        return 0;
    }
    if (prefix_caseeq(target, len, "http://") || prefix_caseeq(target, len, "https://"))
        return split_absolute(p, target, len, path, query, host);
    return 400;
}

/* --------------------------------------------------------- normalizing */

/*
 * Decodes src into dst (same size or larger).  Every %XX is decoded exactly
 * once, so "%252e" stays the literal "%2e" and can never become a dot.
 * A bad escape or a control character wins over an encoded slash (400
 * before 404), as Apache's unescaping reports.
 */
static int decode_path(const char *src, char *dst)
{
    bool enc_slash = false, bad = false;
    size_t o = 0;

    for (size_t i = 0; src[i] && !bad; i++) {
        int c = (unsigned char)src[i];
        if (c == '%') {
            c = decode_pct(src + i + 1);
            if (c < 0) {
                bad = true;
                break;
            }
            i += 2;
            enc_slash |= c == '/';
        }
        bad = is_ctl((unsigned char)c);
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    if (bad)
        return 400;
    return enc_slash ? 404 : 0;
}

/* Drops the last segment of out[0..*o) (which starts with '/').  False at root. */
static bool pop_segment(const char *out, size_t *o)
{
    if (*o == 0)
        return false;
    while (*o > 0 && out[*o - 1] != '/')
        (*o)--;
    (*o)--;   /* the '/' that began the segment */
    return true;
}

/*
 * RFC 3986 5.2.4 over the decoded path, segment by segment, with empty
 * segments merged (MergeSlashes On).  Segments are appended as "/seg", so
 * out never holds a trailing slash until the end.  In place: out never
 * runs ahead of the segment being read.
 */
static int remove_dots(char *s)
{
    size_t o = 0, i = 1;
    bool dir = false;   /* the path ends with a directory reference */

    while (s[i - 1]) {
        size_t start = i, n;
        while (s[i] && s[i] != '/')
            i++;
        n = i - start;
        dir = true;
        if (n == 2 && s[start] == '.' && s[start + 1] == '.') {
            if (!pop_segment(s, &o))
                return 400;   /* AH10244: above the root */
        } else if (n > 1 || (n == 1 && s[start] != '.')) {
            s[o++] = '/';
            memmove(s + o, s + start, n);
            o += n;
            dir = false;
        }
        if (s[i])
            i++;
        else
            break;
    }
    if (o == 0 || dir)
        s[o++] = '/';
    s[o] = '\0';
    return 0;
}

int qt_uri_normalize(qt_pool *p, const char *path, const char **out)
{
    char *buf;
    int rc;

    *out = NULL;
    if (path == NULL || path[0] != '/')
        return 400;
    buf = qt_palloc(p, strlen(path) + 1);
    rc = decode_path(path, buf);
    if (rc == 0)
        rc = remove_dots(buf);
    if (rc == 0)
        *out = buf;
    return rc;
}

int qt_uri_unescape(char *s)
{
    char *o = s;

    for (; *s; s++) {
        int c = (unsigned char)*s;
        if (c == '%') {
            c = decode_pct(s + 1);
            if (c <= 0)   /* a NUL would silently truncate the string */
                return -1;
            s += 2;
        }
        *o++ = (char)c;
    }
    *o = '\0';
    return 0;
}

/*
 * Bytes that stay literal in an escaped path: unreserved, the sub-delims
 * but the quote, ':' '@' and '/'.  The quote is escaped too so the result
 * can go inside an HTML attribute or a Location header as it is.
 */
static bool path_char_safe(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("-._~!$&()*+,;=:@/", c) != NULL;
}

char *qt_uri_escape_path(qt_pool *p, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    char *out, *o;

    for (const char *q = s; *q; q++)
        n += path_char_safe((unsigned char)*q) ? 1 : 3;
    out = o = qt_palloc(p, n + 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (path_char_safe(c)) {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}
