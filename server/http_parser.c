/*
 * Sans-I/O HTTP/1.1 request-head parser and chunked-body decoder
 * (RFC 9112), strict about everything that enables request smuggling.
 *
 * The head parser keeps no state between calls: each call parses the whole
 * buffer again, as picohttpparser does.  That is cheap (one pass, no
 * allocation, table lookups and 8-bytes-at-a-time scans of long values) and
 * makes the caller's life simple.
 */
#include <stdint.h>
#include <string.h>

#include "http_parser.h"

/* ------------------------------------------------------------ classes */

enum {
    C_TCHAR = 1,    /* RFC 9110 token character */
    C_VALUE = 2,    /* field-content or OWS: HTAB, SP, VCHAR, obs-text */
    C_TARGET = 4,   /* request-target byte: VCHAR or obs-text */
    C_HOST = 8      /* reg-name, IP-literal and port characters */
};

static const unsigned char cls[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0,  2,  0,  0,  0,  0,  0,  0,  /* 0x00 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x10 */
     2, 15,  6,  7, 15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15,  6,  /* 0x20 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 14,  6, 14,  6,  6,  /* 0x30 */
     6, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,  /* 0x40 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14,  6, 14,  7, 15,  /* 0x50 */
     7, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,  /* 0x60 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,  6,  7,  6, 15,  0,  /* 0x70 */
     6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0x80 */
     6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0x90 */
     6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xa0 */
     6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xb0 */
     6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xc0 */
     6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xd0 */
     6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xe0 */
     6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xf0 */
};

static inline bool is_class(char c, unsigned cl)
{
    return (cls[(unsigned char)c] & cl) != 0;
}

static inline bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static inline char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

/* ASCII case-insensitive equality of a slice and a lower-case literal. */
static bool slice_is(qt_slice s, const char *lit, size_t n)
{
    if (s.n != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower(s.p[i]) != lit[i])
            return false;
    return true;
}
#define SLICE_IS(s, lit) slice_is((s), (lit), sizeof(lit) - 1)

/*
 * Word-at-a-time scanning: stop_mask() flags the bytes of a little-endian
 * word that are below `below` or DEL.  A flag may be wrong only above a
 * correct one, so the lowest flag is exactly the first stop byte.
 */
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

static inline uint64_t stop_mask(uint64_t x, unsigned below)
{
    uint64_t del = x ^ (ONES * 0x7f);
    return ((x - ONES * below) & ~x & HIGHS) | ((del - ONES) & ~del & HIGHS);
}

/* Returns the first byte in [p, end) not in class cl; below is the
 * smallest byte value of the class other than HTAB. */
static const char *scan_class(const char *p, const char *end, unsigned cl,
                              unsigned below)
{
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (end - p >= 8) {
        uint64_t x, m;
        memcpy(&x, p, sizeof(x));
        m = stop_mask(x, below);
        if (m == 0) {
            p += 8;
            continue;
        }
        p += __builtin_ctzll(m) / 8;
        if (!is_class(*p, cl))
            return p;
        p++;    /* an HTAB inside a value */
    }
#endif
    while (p < end && is_class(*p, cl))
        p++;
    return p;
}

/* Returns the first non-token byte in [p, end).  Names are short, so the
 * unrolled table test, not a vector scan, is what pays here. */
static const char *scan_token(const char *p, const char *end)
{
    while (end - p >= 8) {
        const unsigned char *u = (const unsigned char *)p;
        if (!(cls[u[0]] & cls[u[1]] & cls[u[2]] & cls[u[3]] &
              cls[u[4]] & cls[u[5]] & cls[u[6]] & cls[u[7]] & C_TCHAR))
            break;
        p += 8;
    }
    while (p < end && is_class(*p, C_TCHAR))
        p++;
    return p;
}

/* ------------------------------------------------------- head parser */

enum { P_OK, P_AGAIN, P_ERROR };

#define MAX_BLANK_LINES 10  /* empty lines tolerated before a request line */

typedef struct {
    const char *p;              /* next byte to parse */
    const char *end;
    const qt_http_limits *lim;
    qt_http_request *req;
    int status;                 /* set with P_ERROR */
    unsigned max_fields;
    /* Framing and connection facts gathered over all field lines. */
    bool has_cl, has_te, te_last_chunked, te_bad, te_unknown;
    unsigned te_chunked;
    bool conn_close, conn_keep_alive;
} parser;

static int fail(parser *ps, int status)
{
    ps->status = status;
    return P_ERROR;
}

static void reset_request(qt_http_request *req)
{
    static const qt_slice empty = { "", 0 };

    req->method = QT_M_OTHER;
    req->method_name = req->target = req->request_line = empty;
    req->version_major = req->version_minor = 0;
    req->nheaders = 0;
    req->host = empty;
    req->has_host = false;
    req->framing = QT_BODY_NONE;
    req->content_length = 0;
    req->keep_alive = false;
    req->expect_continue = req->expect_unknown = false;
}

/* RFC 9112 2.2: ignore a few empty lines before the request line. */
static int skip_blank_lines(parser *ps)
{
    unsigned n = 0;

    while (ps->p < ps->end) {
        size_t eol;
        if (ps->p[0] == '\n')
            eol = 1;
        else if (ps->p[0] != '\r')
            return P_OK;
        else if (ps->end - ps->p < 2)
            return P_AGAIN;
        else if (ps->p[1] == '\n')
            eol = 2;
        else
            return fail(ps, 400);
        if (++n > MAX_BLANK_LINES)
            return fail(ps, 400);
        ps->p += eol;
    }
    return P_AGAIN;
}

/* "HTTP/" DIGIT "." DIGIT; any 1.x is served as 1.x's best, 1.1. */
static int parse_version(parser *ps, const char *v, const char *eol)
{
    if (eol - v != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' ||
        v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9')
        return fail(ps, 400);
    if (v[5] != '1')
        return fail(ps, 505);
    ps->req->version_major = 1;
    ps->req->version_minor = (v[7] == '0') ? 0 : 1;
    return P_OK;
}

/* method SP request-target SP HTTP-version, on a line known to be whole. */
static int split_request_line(parser *ps, const char *line, const char *eol)
{
    qt_http_request *req = ps->req;
    const char *p = line;

    p = scan_token(p, eol);
    if (p == line || p == eol || *p != ' ')
        return fail(ps, 400);
    req->method_name = (qt_slice){ line, (size_t)(p - line) };
    req->method = qt_http_method_from(req->method_name);

    const char *t = ++p;
    p = scan_class(p, eol, C_TARGET, 0x21);
    /* p == eol: no version at all, an HTTP/0.9 request. */
    if (p == t || p == eol || *p != ' ')
        return fail(ps, 400);
    req->target = (qt_slice){ t, (size_t)(p - t) };
    return parse_version(ps, p + 1, eol);
}

/* True if an unterminated line of avail bytes already passes max. */
static bool partial_line_over(const char *line, size_t avail, size_t max)
{
    if (avail <= max)
        return false;
    /* max bytes plus a CR: the LF may still come. */
    return !(avail == max + 1 && line[max] == '\r');
}

static int parse_request_line(parser *ps)
{
    const char *line = ps->p;
    size_t max = ps->lim->max_request_line;
    size_t avail = (size_t)(ps->end - line);
    size_t window = avail < max + 2 ? avail : max + 2;
    const char *lf = memchr(line, '\n', window);

    if (!lf)
        return partial_line_over(line, avail, max) ? fail(ps, 414) : P_AGAIN;
    const char *eol = (lf > line && lf[-1] == '\r') ? lf - 1 : lf;
    if ((size_t)(eol - line) > max)
        return fail(ps, 414);
    ps->req->request_line = (qt_slice){ line, (size_t)(eol - line) };
    ps->p = lf + 1;
    return split_request_line(ps, line, eol);
}

/* Walks the elements of a comma-separated field value. */
typedef struct {
    const char *p, *end;
    bool done;
} list_iter;

static list_iter list_of(qt_slice value)
{
    return (list_iter){ value.p, value.p + value.n, false };
}

/* Next element with OWS trimmed (may be empty); false after the last. */
static bool list_next(list_iter *it, qt_slice *elem)
{
    const char *p = it->p, *end = it->end;

    if (it->done)
        return false;
    while (p < end && is_ows(*p))
        p++;
    const char *s = p;
    while (p < end && *p != ',')
        p++;
    const char *e = p;
    while (e > s && is_ows(e[-1]))
        e--;
    *elem = (qt_slice){ s, (size_t)(e - s) };
    if (p == end)
        it->done = true;
    else
        it->p = p + 1;
    return true;
}

/* 1*DIGIT no larger than INT64_MAX, or false. */
static bool parse_length(qt_slice s, uint64_t *out)
{
    uint64_t v = 0;

    if (s.n == 0)
        return false;
    for (size_t i = 0; i < s.n; i++) {
        unsigned d = (unsigned)(unsigned char)s.p[i] - '0';
        if (d > 9 || v > (UINT64_C(0x7fffffffffffffff) - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* RFC 9112 6.3: repeated Content-Length values must all agree. */
static int on_content_length(parser *ps, qt_slice value)
{
    list_iter it = list_of(value);
    qt_slice elem;
    uint64_t n;

    while (list_next(&it, &elem)) {
        if (!parse_length(elem, &n))
            return fail(ps, 400);
        if (ps->has_cl && n != ps->req->content_length)
            return fail(ps, 400);
        ps->has_cl = true;
        ps->req->content_length = n;
    }
    return P_OK;
}

/* Collects codings; the verdict waits for the last Transfer-Encoding. */
static int on_transfer_encoding(parser *ps, qt_slice value)
{
    list_iter it = list_of(value);
    qt_slice elem;

    ps->has_te = true;
    while (list_next(&it, &elem)) {
        if (elem.n == 0)
            continue;   /* RFC 9110 5.6.1: empty list elements are ignored */
        size_t tok = 0;
        while (tok < elem.n && is_class(elem.p[tok], C_TCHAR))
            tok++;
        if (tok == 0)
            ps->te_bad = true;
        qt_slice name = { elem.p, tok };
        bool chunked = SLICE_IS(name, "chunked");
        /* chunked takes no parameters; anything after a token is one. */
        if (chunked && tok != elem.n)
            ps->te_bad = true;
        ps->te_chunked += chunked;
        ps->te_unknown |= !chunked;
        ps->te_last_chunked = chunked;
    }
    return P_OK;
}

static int on_connection(parser *ps, qt_slice value)
{
    list_iter it = list_of(value);
    qt_slice elem;

    while (list_next(&it, &elem)) {
        if (SLICE_IS(elem, "close"))
            ps->conn_close = true;
        else if (SLICE_IS(elem, "keep-alive"))
            ps->conn_keep_alive = true;
    }
    return P_OK;
}

static int on_expect(parser *ps, qt_slice value)
{
    list_iter it = list_of(value);
    qt_slice elem;

    while (list_next(&it, &elem)) {
        if (SLICE_IS(elem, "100-continue"))
            ps->req->expect_continue = true;
        else if (elem.n > 0)
            ps->req->expect_unknown = true;
    }
    return P_OK;
}

/* A Host value must be an authority without userinfo (RFC 9110 7.2). */
static bool valid_host(qt_slice h)
{
    for (size_t i = 0; i < h.n; i++)
        if (!is_class(h.p[i], C_HOST))
            return false;
    return true;
}

static int on_host(parser *ps, qt_slice value)
{
    /* RFC 9112 3.2: several Host lines or an invalid one is a 400. */
    if (ps->req->has_host || !valid_host(value))
        return fail(ps, 400);
    ps->req->has_host = true;
    ps->req->host = value;
    return P_OK;
}

/* Records what the core needs to know from the few fields it interprets. */
static int interpret_field(parser *ps, const qt_header *h)
{
    switch (h->name.n) {
    case 4:
        return SLICE_IS(h->name, "host") ? on_host(ps, h->value) : P_OK;
    case 6:
        return SLICE_IS(h->name, "expect") ? on_expect(ps, h->value) : P_OK;
    case 10:
        return SLICE_IS(h->name, "connection") ?
            on_connection(ps, h->value) : P_OK;
    case 14:
        return SLICE_IS(h->name, "content-length") ?
            on_content_length(ps, h->value) : P_OK;
    case 17:
        return SLICE_IS(h->name, "transfer-encoding") ?
            on_transfer_encoding(ps, h->value) : P_OK;
    default:
        return P_OK;
    }
}

/* Out of bytes inside a field line: wait, unless it is already too long. */
static int field_line_partial(parser *ps, const char *line, const char *upto)
{
    if ((size_t)(upto - line) > ps->lim->max_field_size)
        return fail(ps, 431);
    return P_AGAIN;
}

/* Empty line ending the head; *done set when found. */
static int parse_blank_line(parser *ps, bool *done)
{
    const char *p = ps->p;

    if (p[0] == '\n') {
        ps->p = p + 1;
        *done = true;
    } else if (p[0] == '\r') {
        if (ps->end - p < 2)
            return P_AGAIN;
        if (p[1] != '\n')
            return fail(ps, 400);
        ps->p = p + 2;
        *done = true;
    }
    return P_OK;
}

/* field-name ":" OWS field-value OWS (CR)LF */
static int parse_field_line(parser *ps, bool *done)
{
    const char *line = ps->p, *end = ps->end, *p = line;

    if (p == end)
        return P_AGAIN;
    if (*p == '\r' || *p == '\n')
        return parse_blank_line(ps, done);
    /* A leading SP/HTAB is obs-fold (RFC 9112 5.2): refused. */
    p = scan_token(p, end);
    if (p == end)
        return field_line_partial(ps, line, p);
    if (p == line || *p != ':')
        return fail(ps, 400);
    if (ps->req->nheaders >= ps->max_fields)
        return fail(ps, 431);
    qt_header *h = &ps->req->headers[ps->req->nheaders];
    h->name = (qt_slice){ line, (size_t)(p - line) };

    p++;
    while (p < end && is_ows(*p))
        p++;
    const char *v = p;
    p = scan_class(p, end, C_VALUE, 0x20);
    if (p == end)
        return field_line_partial(ps, line, p);
    const char *eol = p;
    if (*p == '\r') {
        if (end - p < 2)
            return field_line_partial(ps, line, p);
        if (p[1] != '\n')
            return fail(ps, 400);
        p++;
    }
    if (*p != '\n')
        return fail(ps, 400);   /* NUL, DEL or another control */
    if ((size_t)(eol - line) > ps->lim->max_field_size)
        return fail(ps, 431);
    while (eol > v && is_ows(eol[-1]))
        eol--;
    h->value = (qt_slice){ v, (size_t)(eol - v) };
    ps->p = p + 1;
    ps->req->nheaders++;
    return interpret_field(ps, h);
}

/* Absolute-form target: its authority replaces Host (RFC 9112 3.2.2). */
static int use_target_authority(parser *ps)
{
    qt_slice t = ps->req->target;
    size_t skip;

    if (t.n >= 7 && slice_is((qt_slice){ t.p, 7 }, "http://", 7))
        skip = 7;
    else if (t.n >= 8 && slice_is((qt_slice){ t.p, 8 }, "https://", 8))
        skip = 8;
    else
        return P_OK;
    const char *a = t.p + skip, *e = a, *end = t.p + t.n;
    while (e < end && *e != '/' && *e != '?' && *e != '#')
        e++;
    qt_slice auth = { a, (size_t)(e - a) };
    if (auth.n == 0 || !valid_host(auth))
        return fail(ps, 400);
    ps->req->host = auth;
    return P_OK;
}

static int decide_framing(parser *ps)
{
    qt_http_request *req = ps->req;

    if (ps->has_te) {
        /* Both framings at once is the classic smuggling vector. */
        if (ps->has_cl || req->version_minor == 0)
            return fail(ps, 400);
        if (ps->te_bad || !ps->te_last_chunked || ps->te_chunked > 1)
            return fail(ps, 400);
        if (ps->te_unknown)
            return fail(ps, 501);
        req->framing = QT_BODY_CHUNKED;
        req->content_length = 0;
    } else if (ps->has_cl) {
        req->framing = QT_BODY_LENGTH;
    }
    return P_OK;
}

static int finish_head(parser *ps)
{
    qt_http_request *req = ps->req;
    bool http11 = req->version_minor >= 1;

    if (http11 && !req->has_host)
        return fail(ps, 400);
    if (use_target_authority(ps) != P_OK || decide_framing(ps) != P_OK)
        return P_ERROR;
    req->keep_alive = !ps->conn_close && (http11 || ps->conn_keep_alive);
    /* RFC 9110 10.1.1: a 1.0 client cannot take an interim 100. */
    if (!http11)
        req->expect_continue = false;
    return P_OK;
}

static int parse_head(parser *ps)
{
    bool done = false;
    int rc = skip_blank_lines(ps);

    if (rc == P_OK)
        rc = parse_request_line(ps);
    while (rc == P_OK && !done)
        rc = parse_field_line(ps, &done);
    return rc == P_OK ? finish_head(ps) : rc;
}

ssize_t qt_http_parse_request(const char *buf, size_t len,
                              const qt_http_limits *limits,
                              qt_http_request *req, int *status)
{
    parser ps;

    memset(&ps, 0, sizeof(ps));
    ps.p = buf;
    ps.end = buf + len;
    ps.lim = limits;
    ps.req = req;
    ps.max_fields = limits->max_fields < QT_HTTP_MAX_HEADERS ?
        limits->max_fields : QT_HTTP_MAX_HEADERS;
    reset_request(req);

    switch (parse_head(&ps)) {
    case P_OK:
        return ps.p - buf;
    case P_AGAIN:
        return QT_HTTP_INCOMPLETE;
    default:
        *status = ps.status;
        return QT_HTTP_ERROR;
    }
}

const qt_header *qt_http_find_header(const qt_http_request *req, const char *name)
{
    size_t n = strlen(name);

    for (unsigned i = 0; i < req->nheaders; i++) {
        const qt_header *h = &req->headers[i];
        if (h->name.n != n)
            continue;
        size_t j = 0;
        while (j < n && lower(h->name.p[j]) == lower(name[j]))
            j++;
        if (j == n)
            return h;
    }
    return NULL;
}

enum qt_method qt_http_method_from(qt_slice m)
{
    /* Methods are case-sensitive (RFC 9110 9.1): "get" is an extension. */
#define IS(lit) (m.n == sizeof(lit) - 1 && memcmp(m.p, lit, m.n) == 0)
    switch (m.n) {
    case 3:
        return IS("GET") ? QT_M_GET : IS("PUT") ? QT_M_PUT : QT_M_OTHER;
    case 4:
        return IS("HEAD") ? QT_M_HEAD : IS("POST") ? QT_M_POST : QT_M_OTHER;
    case 5:
        return IS("TRACE") ? QT_M_TRACE : IS("PATCH") ? QT_M_PATCH : QT_M_OTHER;
    case 6:
        return IS("DELETE") ? QT_M_DELETE : QT_M_OTHER;
    case 7:
        return IS("OPTIONS") ? QT_M_OPTIONS :
               IS("CONNECT") ? QT_M_CONNECT : QT_M_OTHER;
    default:
        return QT_M_OTHER;
    }
#undef IS
}

/* ---------------------------------------------------- chunked decoder */

enum {
    CH_SIZE_FIRST,      /* first hex digit of a chunk-size */
    CH_SIZE,            /* more hex digits */
    CH_SIZE_BWS,        /* whitespace after the size: only ';' may follow */
    CH_EXT,             /* chunk extensions, ignored */
    CH_SIZE_LF,
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    CH_TRAILER_START,   /* start of a trailer line or of the final CRLF */
    CH_TRAILER_NAME,
    CH_TRAILER_VALUE,
    CH_TRAILER_LF,
    CH_END_LF,
    CH_DONE
};

#define CH_MAX_SIZE_LINE 4096       /* size plus extensions */
#define CH_MAX_TRAILER_LINE 8190
#define CH_MAX_TRAILERS 100

void qt_chunked_init(qt_chunked_decoder *d)
{
    memset(d, 0, sizeof(*d));
    d->state = CH_SIZE_FIRST;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Chunk bodies get CRLF only: lenient line ends here are what desyncs
 * front ends from back ends. */
static int chunk_digit(qt_chunked_decoder *d, char c)
{
    int h = hexval(c);

    if (h >= 0) {
        /* Sizes above INT64_MAX are refused, like Content-Length. */
        if (d->remaining > (UINT64_C(0x7fffffffffffffff) >> 4))
            return -1;
        d->remaining = d->remaining * 16 + (uint64_t)h;
        d->state = CH_SIZE;
    } else if (d->state == CH_SIZE_FIRST) {
        return -1;
    } else if (c == '\r') {
        d->state = CH_SIZE_LF;
    } else if (c == ';') {
        d->state = CH_EXT;
    } else if (is_ows(c)) {
        d->state = CH_SIZE_BWS;
    } else {
        return -1;
    }
    return 0;
}

static int chunk_size_byte(qt_chunked_decoder *d, char c)
{
    if (++d->line_len > CH_MAX_SIZE_LINE)
        return -1;
    switch (d->state) {
    case CH_SIZE_FIRST:
    case CH_SIZE:
        return chunk_digit(d, c);
    case CH_SIZE_BWS:
        if (c == ';')
            d->state = CH_EXT;
        return (c == ';' || is_ows(c)) ? 0 : -1;
    case CH_EXT:
        if (c == '\r')
            d->state = CH_SIZE_LF;
        return (c == '\r' || is_class(c, C_VALUE)) ? 0 : -1;
    default: /* CH_SIZE_LF */
        if (c != '\n')
            return -1;
        d->line_len = 0;
        d->state = d->remaining ? CH_DATA : CH_TRAILER_START;
        return 0;
    }
}

/* Trailer fields are checked for shape, counted and dropped. */
static int chunk_trailer_byte(qt_chunked_decoder *d, char c)
{
    if (++d->line_len > CH_MAX_TRAILER_LINE)
        return -1;
    switch (d->state) {
    case CH_TRAILER_START:
        d->state = (c == '\r') ? CH_END_LF : CH_TRAILER_NAME;
        return (c == '\r' || is_class(c, C_TCHAR)) ? 0 : -1;
    case CH_TRAILER_NAME:
        if (c == ':')
            d->state = CH_TRAILER_VALUE;
        return (c == ':' || is_class(c, C_TCHAR)) ? 0 : -1;
    case CH_TRAILER_VALUE:
        if (c == '\r')
            d->state = CH_TRAILER_LF;
        return (c == '\r' || is_class(c, C_VALUE)) ? 0 : -1;
    case CH_TRAILER_LF:
        if (c != '\n' || ++d->trailers > CH_MAX_TRAILERS)
            return -1;
        d->line_len = 0;
        d->state = CH_TRAILER_START;
        return 0;
    default: /* CH_END_LF */
        if (c != '\n')
            return -1;
        d->state = CH_DONE;
        return 0;
    }
}

static int chunk_framing_byte(qt_chunked_decoder *d, char c)
{
    switch (d->state) {
    case CH_DATA_CR:
        d->state = CH_DATA_LF;
        return c == '\r' ? 0 : -1;
    case CH_DATA_LF:
        d->state = CH_SIZE_FIRST;
        return c == '\n' ? 0 : -1;
    case CH_SIZE_FIRST: case CH_SIZE: case CH_SIZE_BWS: case CH_EXT:
    case CH_SIZE_LF:
        return chunk_size_byte(d, c);
    default:
        return chunk_trailer_byte(d, c);
    }
}

ssize_t qt_chunked_decode(qt_chunked_decoder *d, char *buf, size_t *len)
{
    const char *r = buf, *end = buf + *len;
    char *w = buf;

    while (r < end && d->state != CH_DONE) {
        if (d->state == CH_DATA) {
            size_t n = (size_t)(end - r);
            if (n > d->remaining)
                n = (size_t)d->remaining;
            if (w != r)
                memmove(w, r, n);
            w += n;
            r += n;
            d->remaining -= n;
            if (d->remaining == 0)
                d->state = CH_DATA_CR;
        } else if (chunk_framing_byte(d, *r++) != 0) {
            return QT_CHUNKED_ERROR;
        }
    }
    *len = (size_t)(w - buf);
    return d->state == CH_DONE ? (ssize_t)(end - r) : QT_CHUNKED_MORE;
}

/* ------------------------------------------------------------ statuses */

/* Apache's wording where it differs from RFC 9110, as its users expect. */
const char *qt_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Request Entity Too Large";
    case 414: return "Request-URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Requested Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Entity";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    default: return "Unknown";
    }
}

bool qt_http_status_bodyless(int status)
{
    return (status >= 100 && status < 200) || status == 204 || status == 304;
}
