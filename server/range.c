/*
 * Range (RFC 9110 14) and conditional request (RFC 9110 13) decisions.
 * Pure: the static handler supplies size, mtime and ETag and acts on the
 * answer.
 */
#include "range.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "httpdate.h"

static const char *skip_ows(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* ---------------------------------------------------------------- ranges */

/* One range-spec as written; a suffix range keeps its length in last. */
typedef struct {
    uint64_t first, last;
    bool suffix;
} raw_range;

/* Reads 1*DIGIT; false on no digits or on uint64 overflow. */
static bool parse_u64(const char **sp, uint64_t *v)
{
    const char *s = *sp;
    uint64_t x = 0;

    if (*s < '0' || *s > '9')
        return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (x > (UINT64_MAX - d) / 10)
            return false;
        x = x * 10 + d;
    }
    *v = x;
    *sp = s;
    return true;
}

/* range-spec = first "-" [last] / "-" suffix-length.  first > last is invalid. */
static bool parse_spec(const char **sp, raw_range *r)
{
    const char *s = *sp;

    r->suffix = *s == '-';
    if (r->suffix) {
        s++;
        if (!parse_u64(&s, &r->last))
            return false;
    } else {
        if (!parse_u64(&s, &r->first) || *s++ != '-')
            return false;
        r->last = UINT64_MAX;
        if (*s >= '0' && *s <= '9' && !parse_u64(&s, &r->last))
            return false;
        if (r->first > r->last)
            return false;
    }
    *sp = s;
    return true;
}

/*
 * Parses the range-set after "bytes=" into raw[0..cap).  Empty list
 * elements are allowed (RFC 9110 5.6.1.2); at least one range-spec is
 * required.  Returns the count (cap + 1 when there are more than cap),
 * or 0 for invalid syntax.
 */
static unsigned parse_set(const char *s, raw_range *raw, unsigned cap)
{
    unsigned n = 0;

    for (;;) {
        s = skip_ows(s);
        if (*s != ',' && *s != '\0') {
            if (n == cap)
                return cap + 1;
            if (!parse_spec(&s, &raw[n]))
                return 0;
            n++;
            s = skip_ows(s);
        }
        if (*s == '\0')
            break;
        if (*s++ != ',')
            return 0;
    }
    return n;
}

/* Resolves a range against size; false if it is not satisfiable. */
static bool resolve(const raw_range *r, uint64_t size, qt_range *out)
{
    if (size == 0)
        return false;
    if (r->suffix) {
        if (r->last == 0)
            return false;
        out->first = r->last >= size ? 0 : size - r->last;
        out->last = size - 1;
        return true;
    }
    if (r->first >= size)
        return false;
    out->first = r->first;
    out->last = r->last < size - 1 ? r->last : size - 1;
    return true;
}

static int cmp_range(const void *a, const void *b)
{
    const qt_range *x = a, *y = b;

    return x->first < y->first ? -1 : x->first > y->first;
}

/* Sorts and merges overlapping or adjacent ranges; returns the new count.
 * Merging is what defeats the overlapping-ranges amplification attack
 * (CVE-2011-3192). */
static unsigned merge(qt_range *r, unsigned n)
{
    unsigned o = 0;

    qsort(r, n, sizeof *r, cmp_range);
    for (unsigned i = 1; i < n; i++) {
        if (r[i].first <= r[o].last || r[i].first - r[o].last == 1) {
            if (r[i].last > r[o].last)
                r[o].last = r[i].last;
        } else {
            r[++o] = r[i];
        }
    }
    return o + 1;
}

/* The range unit is case-insensitive (RFC 9110 14.1); only "bytes" exists. */
static bool bytes_unit(const char *s)
{
    static const char want[] = "bytes=";

    for (size_t i = 0; i < sizeof want - 1; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != want[i])
            return false;
    }
    return true;
}

/* An upper bound on the range-specs in s, capped at one past the limit. */
static unsigned max_specs(const char *s)
{
    unsigned n = 1;

    for (; *s && n <= QT_MAX_RANGES; s++)
        n += *s == ',';
    return n;
}

enum qt_range_result qt_range_parse(qt_pool *p, const char *header, uint64_t size,
                                    qt_range **ranges, unsigned *n)
{
    raw_range *raw;
    qt_range *out;
    unsigned cap, count, good = 0;

    *ranges = NULL;
    *n = 0;
    if (header == NULL)
        return QT_RANGE_NONE;
    header = skip_ows(header);
    if (!bytes_unit(header))
        return QT_RANGE_NONE;
    header += 6;
    cap = max_specs(header);
    raw = qt_palloc(p, cap * sizeof *raw);
    count = parse_set(header, raw, cap);
    if (count == 0 || count > QT_MAX_RANGES)
        return QT_RANGE_NONE;
    out = qt_palloc(p, count * sizeof *out);
    for (unsigned i = 0; i < count; i++)
        good += resolve(&raw[i], size, &out[good]);
    if (good == 0)
        return QT_RANGE_UNSATISFIABLE;
    *n = merge(out, good);
    *ranges = out;
    return QT_RANGE_OK;
}

/* ------------------------------------------------------------- entity tags */

static char *put_hex(char *w, uint64_t v)
{
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 0xf];
        v >>= 4;
    } while (v);
    while (n)
        *w++ = tmp[--n];
    return w;
}

/* Per static response: hand-formatted, printf cost several times more. */
const char *qt_etag_make(qt_pool *p, uint64_t size, int64_t mtime_usec, bool weak)
{
    char *out = qt_palloc(p, 2 + 1 + 16 + 1 + 16 + 1 + 1), *w = out;
    if (weak) {
        *w++ = 'W';
        *w++ = '/';
    }
    *w++ = '"';
    w = put_hex(w, size);
    *w++ = '-';
    w = put_hex(w, (uint64_t)mtime_usec);
    *w++ = '"';
    *w = '\0';
    return out;
}

/* An entity-tag split into its weakness and its opaque-tag (quotes included). */
typedef struct {
    bool weak;
    const char *opaque;
    size_t len;
} etag_view;

/* Reads [W/] DQUOTE *etagc DQUOTE at *sp; false if malformed. */
static bool parse_etag(const char **sp, etag_view *e)
{
    const char *s = *sp, *end;

    e->weak = s[0] == 'W' && s[1] == '/';
    if (e->weak)
        s += 2;
    if (*s != '"')
        return false;
    end = strchr(s + 1, '"');
    if (end == NULL)
        return false;
    e->opaque = s;
    e->len = (size_t)(end + 1 - s);
    *sp = end + 1;
    return true;
}

/* Strong comparison needs both tags strong; weak comparison ignores W/. */
static bool etag_eq(const etag_view *a, const etag_view *b, bool weak)
{
    if (!weak && (a->weak || b->weak))
        return false;
    return a->len == b->len && memcmp(a->opaque, b->opaque, a->len) == 0;
}

bool qt_etag_list_match(const char *list, const char *etag, bool weak)
{
    etag_view want, e;
    const char *s;

    if (list == NULL)
        return false;
    /* "*" matches any current representation, with or without a tag. */
    s = skip_ows(list);
    if (s[0] == '*' && *skip_ows(s + 1) == '\0')
        return true;
    s = etag;
    if (etag == NULL || !parse_etag(&s, &want))
        return false;
    for (s = list;;) {
        s = skip_ows(s);
        if (*s == '\0')
            return false;
        if (*s != ',') {
            if (!parse_etag(&s, &e))
                return false;
            if (etag_eq(&want, &e, weak))
                return true;
            s = skip_ows(s);
            if (*s != ',' && *s != '\0')
                return false;
        }
        if (*s == ',')
            s++;
    }
}

/* ------------------------------------------------------ conditional requests */

/* Parses an HTTP-date header; false if absent or invalid (then it is ignored). */
static bool header_date(const char *v, time_t *t)
{
    return v != NULL && qt_httpdate_parse(skip_ows(v), t);
}

/* Steps 1-2 of RFC 9110 13.2.2: the preconditions that can only fail (412). */
static bool write_preconditions_ok(const qt_cond_headers *h, const char *etag,
                                   time_t mtime)
{
    time_t since;

    if (h->if_match != NULL)
        return qt_etag_list_match(h->if_match, etag, false);
    if (header_date(h->if_unmodified_since, &since))
        return mtime <= since;
    return true;
}

int qt_cond_evaluate(const qt_cond_headers *h, const char *etag, time_t mtime,
                     bool is_get_head)
{
    time_t since;

    if (!write_preconditions_ok(h, etag, mtime))
        return 412;
    if (h->if_none_match != NULL) {
        if (!qt_etag_list_match(h->if_none_match, etag, true))
            return 0;
        return is_get_head ? 304 : 412;
    }
    /* A date later than now is invalid (RFC 9110 13.1.3): ignore it. */
    if (is_get_head && header_date(h->if_modified_since, &since)
        && since <= time(NULL) && mtime <= since)
        return 304;
    return 0;
}

bool qt_if_range_ok(const char *if_range, const char *etag, time_t mtime)
{
    etag_view want, have;
    const char *s;
    time_t t;

    if (if_range == NULL)
        return true;
    s = skip_ows(if_range);
    if (*s == '"' || (s[0] == 'W' && s[1] == '/')) {
        const char *e = etag;
        if (etag == NULL || !parse_etag(&s, &have) || !parse_etag(&e, &want))
            return false;
        return *skip_ows(s) == '\0' && etag_eq(&want, &have, false);
    }
    return qt_httpdate_parse(s, &t) && t == mtime;
}
