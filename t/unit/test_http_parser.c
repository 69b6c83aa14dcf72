/*
 * Unit tests for server/http_parser.c: a table of raw request heads (valid
 * ones and named smuggling/limit cases), each also fed split at every byte
 * boundary and one byte at a time; a table of chunked bodies fed the same
 * ways; and the small lookup helpers.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parser.h"

static const qt_http_limits defaults = { 8190, 8190, 100 };
/* Small limits so the limit rows stay short enough to split everywhere. */
static const qt_http_limits tiny = { 32, 32, 4 };

/* Copies n bytes into a buffer of exactly n bytes, so that a read past
 * the end shows up under a sanitizer or valgrind. */
static char *dup_exact(const char *p, size_t n)
{
    char *b = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(b);
    memcpy(b, p, n);
    return b;
}

static bool slice_is(qt_slice s, const char *lit)
{
    return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

/* ------------------------------------------------------- head parsing */

enum kind { GOOD, BAD };

typedef struct {
    const char *name;
    const char *raw;
    size_t len;
    enum kind kind;
    int status;                 /* BAD: expected *status */
    const qt_http_limits *lim;  /* NULL: defaults */
    size_t tail;                /* bytes after the head (body, next request) */
    /* GOOD: expected fields; zero values are the common case. */
    enum qt_method method;      /* QT_M_GET */
    const char *target;         /* NULL: "/" */
    bool http10;
    const char *host;           /* NULL: no Host */
    enum qt_body_framing framing;
    uint64_t content_length;
    bool no_keep_alive;
    bool expect_continue;
    bool expect_unknown;
    unsigned nheaders;          /* 0: not checked */
    const char *hname;          /* a header to look up with find_header */
    const char *hvalue;
} parse_row;

#define RAW(s) .raw = (s), .len = sizeof(s) - 1
#define OK_ROW(n, s, ...) { .name = (n), RAW(s), .kind = GOOD, __VA_ARGS__ }
#define ERR_ROW(n, s, st, ...) \
    { .name = (n), RAW(s), .kind = BAD, .status = (st), __VA_ARGS__ }
#define H11 "GET / HTTP/1.1\r\nHost: a\r\n"
#define POST11 "POST / HTTP/1.1\r\nHost: a\r\n"

static const parse_row rows[] = {
    /* ---- valid heads */
    OK_ROW("minimal 1.1", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
           .host = "example.com", .nheaders = 1),
    OK_ROW("1.0 without Host", "GET /x HTTP/1.0\r\n\r\n",
           .target = "/x", .http10 = true, .no_keep_alive = true),
    OK_ROW("1.0 keep-alive token", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
           .http10 = true),
    OK_ROW("1.0 keep-alive and close", "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
           .http10 = true, .no_keep_alive = true),
    OK_ROW("1.1 Connection close", H11 "Connection: close\r\n\r\n",
           .host = "a", .no_keep_alive = true),
    OK_ROW("1.1 close in a list, any case", H11 "Connection: Upgrade,  CLOSE \r\n\r\n",
           .host = "a", .no_keep_alive = true),
    OK_ROW("close in a second Connection field", H11 "Connection: foo\r\nConnection: close\r\n\r\n",
           .host = "a", .no_keep_alive = true),
    OK_ROW("closed is not the close token", H11 "Connection: closed\r\n\r\n", .host = "a"),
    OK_ROW("bare LF line ends", "GET / HTTP/1.1\nHost: a\n\n", .host = "a"),
    OK_ROW("mixed line ends", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\n", .host = "a",
           .hname = "x", .hvalue = "y"),
    OK_ROW("leading CRLFs skipped", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", .host = "a"),
    OK_ROW("leading bare LFs skipped", "\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", .host = "a"),
    OK_ROW("ten blank lines tolerated",
           "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
           .host = "a"),
    OK_ROW("browser request",
           "GET /index.html?q=1 HTTP/1.1\r\n"
           "Host: www.example.com\r\n"
           "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
           "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
           "Accept-Language: en-US,en;q=0.5\r\n"
           "Accept-Encoding: gzip, deflate, br\r\n"
           "Connection: keep-alive\r\n"
           "Cookie: a=b; session=\"xyz\"\r\n"
           "Upgrade-Insecure-Requests: 1\r\n"
           "Sec-Fetch-Dest: document\r\n"
           "If-None-Match: \"3e9-66175eb83628d\"\r\n\r\n",
           .target = "/index.html?q=1", .host = "www.example.com", .nheaders = 10,
           .hname = "accept-encoding", .hvalue = "gzip, deflate, br"),
    OK_ROW("value OWS trimmed", H11 "X-A: \t a b \t\r\n\r\n", .host = "a",
           .hname = "X-A", .hvalue = "a b"),
    OK_ROW("HTAB inside a value", H11 "X-A: a\tb\r\n\r\n", .host = "a",
           .hname = "x-a", .hvalue = "a\tb"),
    OK_ROW("empty value", H11 "X-E:\r\n\r\n", .host = "a", .hname = "X-E", .hvalue = ""),
    OK_ROW("obs-text in a value", H11 "X: caf\xc3\xa9\r\n\r\n", .host = "a",
           .hname = "X", .hvalue = "caf\xc3\xa9"),
    OK_ROW("obs-text in the target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
           .target = "/caf\xc3\xa9", .host = "a"),
    OK_ROW("POST with Content-Length and body", POST11 "Content-Length: 5\r\n\r\nhello",
           .tail = 5, .method = QT_M_POST, .host = "a", .framing = QT_BODY_LENGTH,
           .content_length = 5),
    OK_ROW("pipelined request after the head", H11 "\r\nGET /2 HTTP/1.1\r\n",
           .tail = 17, .host = "a"),
    OK_ROW("repeated identical Content-Length",
           POST11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n",
           .method = QT_M_POST, .host = "a", .framing = QT_BODY_LENGTH, .content_length = 5),
    OK_ROW("identical Content-Length list", POST11 "Content-Length: 5, 5\r\n\r\n",
           .method = QT_M_POST, .host = "a", .framing = QT_BODY_LENGTH, .content_length = 5),
    OK_ROW("Content-Length INT64_MAX", POST11 "Content-Length: 9223372036854775807\r\n\r\n",
           .method = QT_M_POST, .host = "a", .framing = QT_BODY_LENGTH,
           .content_length = UINT64_C(9223372036854775807)),
    OK_ROW("Content-Length leading zeros", POST11 "Content-Length: 007\r\n\r\n",
           .method = QT_M_POST, .host = "a", .framing = QT_BODY_LENGTH, .content_length = 7),
    OK_ROW("Content-Length zero", POST11 "Content-Length: 0\r\n\r\n",
           .method = QT_M_POST, .host = "a", .framing = QT_BODY_LENGTH),
    OK_ROW("Transfer-Encoding chunked", POST11 "Transfer-Encoding: chunked\r\n\r\n",
           .method = QT_M_POST, .host = "a", .framing = QT_BODY_CHUNKED),
    OK_ROW("TE coding is case-insensitive", POST11 "transfer-encoding: Chunked\r\n\r\n",
           .method = QT_M_POST, .host = "a", .framing = QT_BODY_CHUNKED),
    OK_ROW("TE with surrounding whitespace", POST11 "Transfer-Encoding:   chunked \t\r\n\r\n",
           .method = QT_M_POST, .host = "a", .framing = QT_BODY_CHUNKED),
    OK_ROW("TE with an empty list element", POST11 "Transfer-Encoding: , chunked\r\n\r\n",
           .method = QT_M_POST, .host = "a", .framing = QT_BODY_CHUNKED),
    OK_ROW("Expect 100-continue", POST11 "Expect: 100-continue\r\nContent-Length: 1\r\n\r\n",
           .method = QT_M_POST, .host = "a", .framing = QT_BODY_LENGTH,
           .content_length = 1, .expect_continue = true),
    OK_ROW("Expect is case-insensitive", H11 "Expect: 100-Continue\r\n\r\n",
           .host = "a", .expect_continue = true),
    OK_ROW("Expect unknown", H11 "Expect: something\r\n\r\n", .host = "a",
           .expect_unknown = true),
    OK_ROW("Expect 100-continue ignored on 1.0", "POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
           .method = QT_M_POST, .http10 = true, .no_keep_alive = true),
    OK_ROW("HTTP/1.2 served as 1.1", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", .host = "a"),
    OK_ROW("HTTP/1.9 served as 1.1", "GET / HTTP/1.9\r\nHost: a\r\n\r\n", .host = "a"),
    OK_ROW("lower-case method is an extension", "get / HTTP/1.1\r\nHost: a\r\n\r\n",
           .method = QT_M_OTHER, .host = "a"),
    OK_ROW("extension method", "PROPFIND /d HTTP/1.1\r\nHost: a\r\n\r\n",
           .method = QT_M_OTHER, .target = "/d", .host = "a"),
    OK_ROW("OPTIONS asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
           .method = QT_M_OPTIONS, .target = "*", .host = "a"),
    OK_ROW("absolute-form authority replaces Host",
           "GET http://Example.org:8080/p?q HTTP/1.1\r\nHost: other\r\n\r\n",
           .target = "http://Example.org:8080/p?q", .host = "Example.org:8080"),
    OK_ROW("https absolute-form without path",
           "GET HTTPS://example.org HTTP/1.1\r\nHost: example.org\r\n\r\n",
           .target = "HTTPS://example.org", .host = "example.org"),
    OK_ROW("CONNECT authority-form", "CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n",
           .method = QT_M_CONNECT, .target = "example.org:443", .host = "example.org:443"),
    OK_ROW("IPv6 literal Host", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", .host = "[::1]:8080"),
    OK_ROW("empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", .host = ""),
    OK_ROW("request line exactly at the limit", "GET /aaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n",
           .lim = &tiny, .target = "/aaaaaaaaaaaaaaaaaa", .host = "a"),
    OK_ROW("field line exactly at the limit", "GET / HTTP/1.1\r\nHost: aaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
           .lim = &tiny, .host = "aaaaaaaaaaaaaaaaaaaaaaaaaa"),
    OK_ROW("field count exactly at the limit", H11 "A: 1\r\nB: 2\r\nC: 3\r\n\r\n",
           .lim = &tiny, .host = "a", .nheaders = 4),

    /* ---- request smuggling: framing */
    ERR_ROW("CL.TE", POST11 "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX", 400),
    ERR_ROW("TE.CL", POST11 "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
    ERR_ROW("CL 0 with TE", POST11 "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ERR_ROW("double Content-Length differing", POST11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
    ERR_ROW("Content-Length list differing", POST11 "Content-Length: 5, 6\r\n\r\n", 400),
    ERR_ROW("Content-Length list trailing comma", POST11 "Content-Length: 5,\r\n\r\n", 400),
    ERR_ROW("Content-Length empty", POST11 "Content-Length:\r\n\r\n", 400),
    ERR_ROW("Content-Length plus sign", POST11 "Content-Length: +5\r\n\r\n", 400),
    ERR_ROW("Content-Length negative", POST11 "Content-Length: -1\r\n\r\n", 400),
    ERR_ROW("Content-Length hex", POST11 "Content-Length: 0x5\r\n\r\n", 400),
    ERR_ROW("Content-Length 2^63", POST11 "Content-Length: 9223372036854775808\r\n\r\n", 400),
    ERR_ROW("Content-Length 2^64 wraps", POST11 "Content-Length: 18446744073709551621\r\n\r\n", 400),
    ERR_ROW("Content-Length inner space", POST11 "Content-Length: 1 2\r\n\r\n", 400),
    ERR_ROW("Content-Length vertical tab", POST11 "Content-Length:\x0b" "5\r\n\r\n", 400),
    ERR_ROW("TE xchunked", POST11 "Transfer-Encoding: xchunked\r\n\r\n", 400),
    ERR_ROW("TE chunked then gzip", POST11 "Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    ERR_ROW("TE gzip only", POST11 "Transfer-Encoding: gzip\r\n\r\n", 400),
    ERR_ROW("TE identity", POST11 "Transfer-Encoding: identity\r\n\r\n", 400),
    ERR_ROW("TE gzip, chunked is not implemented", POST11 "Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
    ERR_ROW("TE gzip and chunked in two fields",
            POST11 "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
    ERR_ROW("TE chunked twice", POST11 "Transfer-Encoding: chunked, chunked\r\n\r\n", 400),
    ERR_ROW("TE chunked in two fields", POST11
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ERR_ROW("TE chunked with a parameter", POST11 "Transfer-Encoding: chunked;q=1\r\n\r\n", 400),
    ERR_ROW("TE on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ERR_ROW("TE space before colon", POST11 "Transfer-Encoding : chunked\r\n\r\n", 400),
    ERR_ROW("TE tab before colon", POST11 "Transfer-Encoding\t: chunked\r\n\r\n", 400),
    ERR_ROW("TE obs-fold", POST11 "Transfer-Encoding:\r\n chunked\r\n\r\n", 400),
    ERR_ROW("TE empty", POST11 "Transfer-Encoding:\r\n\r\n", 400),
    ERR_ROW("TE vertical tab", POST11 "Transfer-Encoding:\x0b" "chunked\r\n\r\n", 400),
    ERR_ROW("TE trailing NUL", POST11 "Transfer-Encoding: chunked\0\r\n\r\n", 400),

    /* ---- malformed field section */
    ERR_ROW("obs-fold", H11 "X: a\r\n b\r\n\r\n", 400),
    ERR_ROW("obs-fold with HTAB", H11 "X: a\r\n\tb\r\n\r\n", 400),
    ERR_ROW("first field line folded", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    ERR_ROW("NUL in a value", H11 "X: a\0b\r\n\r\n", 400),
    ERR_ROW("NUL in a name", H11 "X\0Y: a\r\n\r\n", 400),
    ERR_ROW("DEL in a value", H11 "X: a\x7f\r\n\r\n", 400),
    ERR_ROW("ESC in a value", H11 "X: \x1b[0m\r\n\r\n", 400),
    ERR_ROW("bare CR in a value", H11 "X: a\rb\r\n\r\n", 400),
    ERR_ROW("CR CR LF line end", H11 "X: a\r\r\n\r\n", 400),
    ERR_ROW("bare CR as the empty line", H11 "\rX", 400),
    ERR_ROW("bare CR before the request line", "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ERR_ROW("bare CR in the request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ERR_ROW("field without colon", H11 "NoColon\r\n\r\n", 400),
    ERR_ROW("empty field name", H11 ": x\r\n\r\n", 400),
    ERR_ROW("space inside a name", H11 "X Y: z\r\n\r\n", 400),
    ERR_ROW("eleven blank lines", "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n", 400),

    /* ---- Host */
    ERR_ROW("Host missing on 1.1", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400),
    ERR_ROW("Host doubled", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ERR_ROW("Host doubled with one value", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400),
    ERR_ROW("Host with backslash", "GET / HTTP/1.1\r\nHost: a\\b\r\n\r\n", 400),
    ERR_ROW("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
    ERR_ROW("Host with inner space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ERR_ROW("Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    ERR_ROW("absolute-form with userinfo", "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ERR_ROW("absolute-form empty authority", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ERR_ROW("absolute-form without Host", "GET http://a/ HTTP/1.1\r\n\r\n", 400),

    /* ---- limits */
    ERR_ROW("request line over the limit", "GET /aaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n", 414,
            .lim = &tiny),
    ERR_ROW("request line over the limit, bare LF", "GET /aaaaaaaaaaaaaaaaaaa HTTP/1.1\nHost: a\n\n", 414,
            .lim = &tiny),
    ERR_ROW("endless request line", "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 414,
            .lim = &tiny),
    ERR_ROW("field line over the limit", "GET / HTTP/1.1\r\nHost: aaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n", 431,
            .lim = &tiny),
    ERR_ROW("endless field line", "GET / HTTP/1.1\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 431,
            .lim = &tiny),
    ERR_ROW("endless field name", "GET / HTTP/1.1\r\nXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", 431,
            .lim = &tiny),
    ERR_ROW("too many fields", H11 "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 431, .lim = &tiny),

    /* ---- request line */
    ERR_ROW("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ERR_ROW("HTTP/3.0", "GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505),
    ERR_ROW("HTTP/0.9 version token", "GET / HTTP/0.9\r\n\r\n", 505),
    ERR_ROW("HTTP/1.11", "GET / HTTP/1.11\r\nHost: a\r\n\r\n", 400),
    ERR_ROW("HTTP/1", "GET / HTTP/1\r\nHost: a\r\n\r\n", 400),
    ERR_ROW("HTTP/11.0", "GET / HTTP/11.0\r\nHost: a\r\n\r\n", 400),
    ERR_ROW("lower-case protocol", "GET / http/1.1\r\nHost: a\r\n\r\n", 400),
    ERR_ROW("HTTP/1.x", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", 400),
    ERR_ROW("trailing space after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
    ERR_ROW("HTTP/0.9 request without version", "GET /\r\n\r\n", 400),
    ERR_ROW("two spaces after the method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ERR_ROW("two spaces before the version", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ERR_ROW("tab as separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ERR_ROW("method with a delimiter", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ERR_ROW("empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ERR_ROW("tab in the target", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ERR_ROW("DEL in the target", "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ERR_ROW("NUL in the target", "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ERR_ROW("extra token after version", "GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", 400),
};

#define NROWS ((int)(sizeof(rows) / sizeof(rows[0])))

static const qt_http_limits *row_limits(const parse_row *r)
{
    return r->lim ? r->lim : &defaults;
}

static void check_fields(const parse_row *r, const char *buf, const qt_http_request *q)
{
    const char *target = r->target ? r->target : "/";

    ck_assert_msg(q->method == r->method, "%s: method %d", r->name, q->method);
    ck_assert_msg(slice_is(q->target, target), "%s: target", r->name);
    ck_assert_msg(q->target.p >= buf && q->target.p < buf + r->len, "%s: slice", r->name);
    ck_assert_int_eq(q->version_major, 1);
    ck_assert_msg(q->version_minor == (r->http10 ? 0 : 1), "%s: minor", r->name);
    ck_assert_msg(q->has_host == (r->host != NULL), "%s: has_host", r->name);
    ck_assert_msg(slice_is(q->host, r->host ? r->host : ""), "%s: host '%.*s'",
                  r->name, (int)q->host.n, q->host.p);
    ck_assert_msg(q->framing == r->framing, "%s: framing %d", r->name, q->framing);
    if (r->framing == QT_BODY_LENGTH)
        ck_assert_msg(q->content_length == r->content_length, "%s: length", r->name);
    ck_assert_msg(q->keep_alive == !r->no_keep_alive, "%s: keep_alive", r->name);
    ck_assert_msg(q->expect_continue == r->expect_continue, "%s: continue", r->name);
    ck_assert_msg(q->expect_unknown == r->expect_unknown, "%s: expect", r->name);
    if (r->nheaders)
        ck_assert_msg(q->nheaders == r->nheaders, "%s: nheaders %u", r->name, q->nheaders);
    if (r->hname) {
        const qt_header *h = qt_http_find_header(q, r->hname);
        ck_assert_msg(h != NULL, "%s: %s missing", r->name, r->hname);
        ck_assert_msg(slice_is(h->value, r->hvalue), "%s: value '%.*s'", r->name,
                      (int)h->value.n, h->value.p);
    }
}

/* Checks the outcome of parsing the whole row. */
static void check_result(const parse_row *r, const char *buf, ssize_t n,
                         int status, const qt_http_request *q)
{
    if (r->kind == BAD) {
        ck_assert_msg(n == QT_HTTP_ERROR, "%s: returned %zd", r->name, n);
        ck_assert_msg(status == r->status, "%s: status %d, want %d", r->name,
                      status, r->status);
        return;
    }
    ck_assert_msg(n == (ssize_t)(r->len - r->tail), "%s: returned %zd (status %d)",
                  r->name, n, status);
    check_fields(r, buf, q);
}

/* Checks what a strict prefix of k bytes gives. */
static void check_prefix(const parse_row *r, size_t k, ssize_t n, int status)
{
    if (r->kind == GOOD) {
        ck_assert_msg(n == QT_HTTP_INCOMPLETE, "%s: prefix %zu gave %zd (status %d)",
                      r->name, k, n, status);
        return;
    }
    /* A bad request may be refused early, but only with its own status. */
    ck_assert_msg(n == QT_HTTP_INCOMPLETE || (n == QT_HTTP_ERROR && status == r->status),
                  "%s: prefix %zu gave %zd status %d", r->name, k, n, status);
}

START_TEST(parse_whole)
{
    const parse_row *r = &rows[_i];
    qt_http_request *q = malloc(sizeof(*q));
    char *buf = dup_exact(r->raw, r->len);
    int status = 0;

    ssize_t n = qt_http_parse_request(buf, r->len, row_limits(r), q, &status);
    check_result(r, buf, n, status, q);
    free(buf);
    free(q);
}
END_TEST

/* Every prefix alone, then the whole input with the same request struct. */
START_TEST(parse_split_everywhere)
{
    const parse_row *r = &rows[_i];
    qt_http_request *q = malloc(sizeof(*q));
    size_t head = r->kind == GOOD ? r->len - r->tail : r->len;
    char *whole = dup_exact(r->raw, r->len);

    for (size_t k = 0; k < head; k++) {
        char *part = dup_exact(r->raw, k);
        int status = 0;
        ssize_t n = qt_http_parse_request(part, k, row_limits(r), q, &status);
        check_prefix(r, k, n, status);
        free(part);
        status = 0;
        n = qt_http_parse_request(whole, r->len, row_limits(r), q, &status);
        check_result(r, whole, n, status, q);
    }
    free(whole);
    free(q);
}
END_TEST

/* One byte at a time into a buffer that grows, as a socket would fill it. */
START_TEST(parse_byte_by_byte)
{
    const parse_row *r = &rows[_i];
    qt_http_request *q = malloc(sizeof(*q));
    char *buf = NULL;
    ssize_t n = QT_HTTP_INCOMPLETE;
    int status = 0;
    size_t k = 0;

    while (k < r->len && n == QT_HTTP_INCOMPLETE) {
        k++;
        buf = realloc(buf, k);
        ck_assert_ptr_nonnull(buf);
        memcpy(buf, r->raw, k);
        n = qt_http_parse_request(buf, k, row_limits(r), q, &status);
    }
    if (r->kind == GOOD)
        ck_assert_msg(k == r->len - r->tail, "%s: stopped at %zu", r->name, k);
    check_result(r, buf, n, status, q);
    free(buf);
    free(q);
}
END_TEST

/* ---------------------------------------------- limits at full scale */

static char *build_head(size_t target_len, unsigned extra_fields, size_t *len)
{
    size_t cap = target_len + 64 + extra_fields * 16;
    char *b = malloc(cap);
    size_t n = 0;

    ck_assert_ptr_nonnull(b);
    n += (size_t)sprintf(b, "GET /");
    memset(b + n, 'a', target_len - 1);
    n += target_len - 1;
    n += (size_t)sprintf(b + n, " HTTP/1.1\r\nHost: a\r\n");
    for (unsigned i = 0; i < extra_fields; i++)
        n += (size_t)sprintf(b + n, "X-%u: v\r\n", i);
    n += (size_t)sprintf(b + n, "\r\n");
    *len = n;
    return b;
}

START_TEST(default_request_line_limit)
{
    qt_http_request *q = malloc(sizeof(*q));
    int status = 0;
    size_t len;
    /* "GET " + target + " HTTP/1.1" is 8190 bytes: allowed. */
    char *b = build_head(8190 - 13, 0, &len);

    ck_assert_int_eq(qt_http_parse_request(b, len, &defaults, q, &status), (ssize_t)len);
    /* The same line cut before its LF is still waiting... */
    ck_assert_int_eq(qt_http_parse_request(b, 8190 + 1, &defaults, q, &status),
                     QT_HTTP_INCOMPLETE);
    free(b);

    /* ...and one byte more is a 414 at once, complete or not. */
    b = build_head(8191 - 13, 0, &len);
    status = 0;
    ck_assert_int_eq(qt_http_parse_request(b, len, &defaults, q, &status), QT_HTTP_ERROR);
    ck_assert_int_eq(status, 414);
    status = 0;
    ck_assert_int_eq(qt_http_parse_request(b, 8191, &defaults, q, &status), QT_HTTP_ERROR);
    ck_assert_int_eq(status, 414);
    free(b);
    free(q);
}
END_TEST

START_TEST(header_array_hard_cap)
{
    qt_http_limits many = { 8190, 8190, 100000 };
    qt_http_request *q = malloc(sizeof(*q));
    int status = 0;
    size_t len;
    char *b = build_head(2, QT_HTTP_MAX_HEADERS - 1, &len);

    ck_assert_int_eq(qt_http_parse_request(b, len, &many, q, &status), (ssize_t)len);
    ck_assert_uint_eq(q->nheaders, QT_HTTP_MAX_HEADERS);
    free(b);
    b = build_head(2, QT_HTTP_MAX_HEADERS, &len);
    ck_assert_int_eq(qt_http_parse_request(b, len, &many, q, &status), QT_HTTP_ERROR);
    ck_assert_int_eq(status, 431);
    free(b);
    free(q);
}
END_TEST

START_TEST(default_field_count_limit)
{
    qt_http_request *q = malloc(sizeof(*q));
    int status = 0;
    size_t len;
    char *b = build_head(2, 99, &len);   /* Host + 99 = 100 fields */

    ck_assert_int_eq(qt_http_parse_request(b, len, &defaults, q, &status), (ssize_t)len);
    free(b);
    b = build_head(2, 100, &len);
    ck_assert_int_eq(qt_http_parse_request(b, len, &defaults, q, &status), QT_HTTP_ERROR);
    ck_assert_int_eq(status, 431);
    free(b);
    free(q);
}
END_TEST

/* ------------------------------------- every byte at every position */

static bool value_byte_ok(unsigned c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool target_byte_ok(unsigned c)
{
    return c > 0x20 && c != 0x7f;
}

/* Word-at-a-time scans must agree with the byte classes at any offset
 * (and next to obs-text, which has the high bit the tricks rely on). */
START_TEST(value_bytes_everywhere)
{
    qt_http_request *q = malloc(sizeof(*q));
    char raw[96];

    for (unsigned c = 0; c < 256; c++) {
        for (size_t pos = 0; pos < 19; pos++) {
            int len = sprintf(raw, "GET / HTTP/1.1\r\nHost: a\r\nX: a");
            memset(raw + len, 0xc3, 20);
            raw[len + pos] = (char)c;
            len += 20;
            len += sprintf(raw + len, "b\r\n\r\n");
            int status = 0;
            ssize_t n = qt_http_parse_request(raw, (size_t)len, &defaults, q, &status);
            ck_assert_msg(value_byte_ok(c) ? n == len : (n == QT_HTTP_ERROR && status == 400),
                          "value byte 0x%02x at %zu: %zd", c, pos, n);
        }
    }
    free(q);
}
END_TEST

START_TEST(target_bytes_everywhere)
{
    qt_http_request *q = malloc(sizeof(*q));
    char raw[96];

    for (unsigned c = 0; c < 256; c++) {
        for (size_t pos = 0; pos < 19; pos++) {
            int len = sprintf(raw, "GET /");
            memset(raw + len, 'a', 20);
            raw[len + pos] = (char)c;
            len += 20;
            len += sprintf(raw + len, " HTTP/1.1\r\nHost: a\r\n\r\n");
            int status = 0;
            ssize_t n = qt_http_parse_request(raw, (size_t)len, &defaults, q, &status);
            ck_assert_msg(target_byte_ok(c) ? n == len : (n == QT_HTTP_ERROR && status == 400),
                          "target byte 0x%02x at %zu: %zd", c, pos, n);
        }
    }
    free(q);
}
END_TEST

/* ------------------------------------------------------- chunked bodies */

enum ch_kind { CH_DONE, CH_MORE, CH_BAD };

typedef struct {
    const char *name;
    const char *raw;
    size_t len;
    enum ch_kind kind;
    const char *payload;    /* decoded bytes (DONE, MORE) */
    const char *tail;       /* unconsumed input after the body (DONE) */
} chunk_row;

#define CH(n, s, k, pl, tl) { (n), (s), sizeof(s) - 1, (k), (pl), (tl) }

static const chunk_row chunk_rows[] = {
    CH("one chunk", "5\r\nhello\r\n0\r\n\r\n", CH_DONE, "hello", ""),
    CH("two chunks", "3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n", CH_DONE, "abc0123456789", ""),
    CH("lower-case hex", "a\r\n0123456789\r\n0\r\n\r\n", CH_DONE, "0123456789", ""),
    CH("empty body", "0\r\n\r\n", CH_DONE, "", ""),
    CH("leading zeros", "0005\r\nhello\r\n000\r\n\r\n", CH_DONE, "hello", ""),
    CH("extensions ignored", "5;foo=bar\r\nhello\r\n0;last\r\n\r\n", CH_DONE, "hello", ""),
    CH("quoted extension", "5;a=\"b c;d\"\r\nhello\r\n0\r\n\r\n", CH_DONE, "hello", ""),
    CH("BWS before an extension", "5 \t;a\r\nhello\r\n0\r\n\r\n", CH_DONE, "hello", ""),
    CH("trailers discarded", "5\r\nhello\r\n0\r\nX-Sum: 1\r\nY:\r\n\r\n", CH_DONE, "hello", ""),
    CH("pipelined request after the body", "5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n",
       CH_DONE, "hello", "GET / HTTP/1.1\r\n"),
    CH("pipelined bytes after trailers", "1\r\nx\r\n0\r\nT: v\r\n\r\nNEXT",
       CH_DONE, "x", "NEXT"),
    CH("body split mid-chunk", "5\r\nhel", CH_MORE, "hel", NULL),
    CH("waiting for the final CRLF", "2\r\nhi\r\n0\r\n", CH_MORE, "hi", NULL),
    CH("largest size accepted", "7fffffffffffffff\r\nab", CH_MORE, "ab", NULL),
    CH("overflow", "ffffffffffffffffff\r\n", CH_BAD, NULL, NULL),
    CH("sixteen f digits", "ffffffffffffffff\r\n", CH_BAD, NULL, NULL),
    CH("size 2^63", "8000000000000000\r\n", CH_BAD, NULL, NULL),
    CH("negative size", "-5\r\nhello\r\n0\r\n\r\n", CH_BAD, NULL, NULL),
    CH("plus sign", "+5\r\nhello\r\n0\r\n\r\n", CH_BAD, NULL, NULL),
    CH("0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", CH_BAD, NULL, NULL),
    CH("empty size line", "\r\nhello\r\n0\r\n\r\n", CH_BAD, NULL, NULL),
    CH("space before the size", " 5\r\nhello\r\n0\r\n\r\n", CH_BAD, NULL, NULL),
    CH("trailing space without extension", "5 \r\nhello\r\n0\r\n\r\n", CH_BAD, NULL, NULL),
    CH("garbage after the size", "5x\r\nhello\r\n0\r\n\r\n", CH_BAD, NULL, NULL),
    CH("missing CRLF after data", "5\r\nhelloXX0\r\n\r\n", CH_BAD, NULL, NULL),
    CH("data longer than announced", "3\r\nhello\r\n0\r\n\r\n", CH_BAD, NULL, NULL),
    CH("LF only after data", "5\r\nhello\n0\r\n\r\n", CH_BAD, NULL, NULL),
    CH("bare LF after the size", "5\nhello\r\n0\r\n\r\n", CH_BAD, NULL, NULL),
    CH("CR without LF after the size", "5\rhello\r\n0\r\n\r\n", CH_BAD, NULL, NULL),
    CH("control byte in an extension", "5;a\x01\r\nhello\r\n0\r\n\r\n", CH_BAD, NULL, NULL),
    CH("NUL in the size", "5\0\r\nhello\r\n0\r\n\r\n", CH_BAD, NULL, NULL),
    CH("trailer obs-fold", "0\r\nX: a\r\n b\r\n\r\n", CH_BAD, NULL, NULL),
    CH("trailer without colon", "0\r\nX\r\n\r\n", CH_BAD, NULL, NULL),
    CH("trailer with NUL", "0\r\nX: a\0\r\n\r\n", CH_BAD, NULL, NULL),
    CH("bare LF ends the trailers", "0\r\n\n", CH_BAD, NULL, NULL),
    CH("bare CR ends the trailers", "0\r\n\rX", CH_BAD, NULL, NULL),
};

#define NCHUNK ((int)(sizeof(chunk_rows) / sizeof(chunk_rows[0])))

typedef struct {
    char out[256];
    size_t out_len;
    char tail[256];
    size_t tail_len;
    int state;              /* CH_MORE until DONE or BAD */
} chunk_run;

/* Feeds one piece (a fresh writable copy) and records what came out. */
static void feed_piece(qt_chunked_decoder *d, chunk_run *run, const char *p, size_t n)
{
    if (run->state == CH_BAD)
        return;
    if (run->state == CH_DONE) {
        memcpy(run->tail + run->tail_len, p, n);
        run->tail_len += n;
        return;
    }
    char *buf = dup_exact(p, n);
    size_t len = n;
    ssize_t rc = qt_chunked_decode(d, buf, &len);
    if (rc == QT_CHUNKED_ERROR) {
        run->state = CH_BAD;
    } else {
        ck_assert_uint_le(len, n);
        memcpy(run->out + run->out_len, buf, len);
        run->out_len += len;
        if (rc >= 0) {
            ck_assert_int_le(rc, (ssize_t)n);
            run->state = CH_DONE;
            memcpy(run->tail, p + n - rc, (size_t)rc);
            run->tail_len = (size_t)rc;
        } else {
            ck_assert_int_eq(rc, QT_CHUNKED_MORE);
        }
    }
    free(buf);
}

static void check_run(const chunk_row *r, const chunk_run *run, const char *how)
{
    ck_assert_msg((int)run->state == (int)r->kind, "%s (%s): state %d", r->name, how,
                  run->state);
    if (r->kind == CH_BAD)
        return;
    ck_assert_msg(run->out_len == strlen(r->payload) &&
                  memcmp(run->out, r->payload, run->out_len) == 0,
                  "%s (%s): payload '%.*s'", r->name, how, (int)run->out_len, run->out);
    if (r->kind == CH_DONE)
        ck_assert_msg(run->tail_len == strlen(r->tail) &&
                      memcmp(run->tail, r->tail, run->tail_len) == 0,
                      "%s (%s): tail '%.*s'", r->name, how, (int)run->tail_len, run->tail);
}

static void run_pieces(const chunk_row *r, size_t split, size_t step, const char *how)
{
    qt_chunked_decoder d;
    chunk_run run = { .state = CH_MORE };

    qt_chunked_init(&d);
    if (step == 0) {
        feed_piece(&d, &run, r->raw, split);
        feed_piece(&d, &run, r->raw + split, r->len - split);
    } else {
        for (size_t i = 0; i < r->len; i += step)
            feed_piece(&d, &run, r->raw + i, 1);
    }
    check_run(r, &run, how);
}

START_TEST(chunked_whole)
{
    run_pieces(&chunk_rows[_i], chunk_rows[_i].len, 0, "whole");
}
END_TEST

START_TEST(chunked_split_everywhere)
{
    const chunk_row *r = &chunk_rows[_i];
    for (size_t k = 0; k <= r->len; k++)
        run_pieces(r, k, 0, "split");
}
END_TEST

START_TEST(chunked_byte_by_byte)
{
    run_pieces(&chunk_rows[_i], 0, 1, "bytewise");
}
END_TEST

START_TEST(chunked_size_line_bounded)
{
    qt_chunked_decoder d;
    size_t n = 5000;
    char *b = malloc(n);

    memset(b, 'a', n);
    memcpy(b, "5;x=", 4);
    qt_chunked_init(&d);
    size_t len = n;
    ck_assert_int_eq(qt_chunked_decode(&d, b, &len), QT_CHUNKED_ERROR);
    free(b);
}
END_TEST

START_TEST(chunked_trailer_count_bounded)
{
    qt_chunked_decoder d;
    char line[] = "X: y\r\n";
    size_t len;
    ssize_t rc = QT_CHUNKED_MORE;

    qt_chunked_init(&d);
    char start[] = "0\r\n";
    len = 3;
    ck_assert_int_eq(qt_chunked_decode(&d, start, &len), QT_CHUNKED_MORE);
    for (int i = 0; i < 1000 && rc == QT_CHUNKED_MORE; i++) {
        char piece[sizeof(line)];
        memcpy(piece, line, sizeof(line));
        len = sizeof(line) - 1;
        rc = qt_chunked_decode(&d, piece, &len);
    }
    ck_assert_int_eq(rc, QT_CHUNKED_ERROR);
}
END_TEST

START_TEST(chunked_large_chunk_streams)
{
    /* A chunk bigger than any one read arrives over many calls. */
    qt_chunked_decoder d;
    char head[] = "100000\r\n";
    char data[4096];
    size_t len = sizeof(head) - 1, total = 0;

    qt_chunked_init(&d);
    ck_assert_int_eq(qt_chunked_decode(&d, head, &len), QT_CHUNKED_MORE);
    ck_assert_uint_eq(len, 0);
    for (int i = 0; i < 256; i++) {
        memset(data, 'z', sizeof(data));
        len = sizeof(data);
        ck_assert_int_eq(qt_chunked_decode(&d, data, &len), QT_CHUNKED_MORE);
        total += len;
    }
    ck_assert_uint_eq(total, 0x100000);
    char end[] = "\r\n0\r\n\r\n";
    len = sizeof(end) - 1;
    ck_assert_int_eq(qt_chunked_decode(&d, end, &len), 0);
    ck_assert_uint_eq(len, 0);
}
END_TEST

/* ------------------------------------------------------------ helpers */

START_TEST(methods)
{
    static const struct { const char *s; enum qt_method m; } t[] = {
        { "GET", QT_M_GET }, { "HEAD", QT_M_HEAD }, { "POST", QT_M_POST },
        { "PUT", QT_M_PUT }, { "DELETE", QT_M_DELETE }, { "OPTIONS", QT_M_OPTIONS },
        { "TRACE", QT_M_TRACE }, { "CONNECT", QT_M_CONNECT }, { "PATCH", QT_M_PATCH },
        { "get", QT_M_OTHER }, { "GETS", QT_M_OTHER }, { "GE", QT_M_OTHER },
        { "", QT_M_OTHER }, { "PROPFIND", QT_M_OTHER }, { "POSTS", QT_M_OTHER },
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        qt_slice s = { t[i].s, strlen(t[i].s) };
        ck_assert_msg(qt_http_method_from(s) == t[i].m, "method %s", t[i].s);
    }
}
END_TEST

START_TEST(reasons)
{
    static const struct { int code; const char *reason; } t[] = {
        { 100, "Continue" }, { 101, "Switching Protocols" }, { 200, "OK" },
        { 204, "No Content" }, { 206, "Partial Content" }, { 301, "Moved Permanently" },
        { 304, "Not Modified" }, { 308, "Permanent Redirect" }, { 400, "Bad Request" },
        { 404, "Not Found" }, { 413, "Request Entity Too Large" },
        { 414, "Request-URI Too Long" }, { 416, "Requested Range Not Satisfiable" },
        { 417, "Expectation Failed" }, { 418, "I'm a teapot" }, { 431, "Request Header Fields Too Large" },
        { 451, "Unavailable For Legal Reasons" }, { 500, "Internal Server Error" },
        { 501, "Not Implemented" }, { 505, "HTTP Version Not Supported" },
        { 299, "Unknown" }, { 0, "Unknown" }, { 999, "Unknown" },
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        ck_assert_str_eq(qt_http_reason(t[i].code), t[i].reason);
    /* Every status the server may send has a phrase. */
    static const int used[] = {
        100, 101, 200, 201, 202, 203, 204, 205, 206, 300, 301, 302, 303, 304, 305, 307, 308,
        400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415,
        416, 417, 418, 421, 422, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505,
    };
    for (size_t i = 0; i < sizeof(used) / sizeof(used[0]); i++)
        ck_assert_msg(strcmp(qt_http_reason(used[i]), "Unknown") != 0, "%d", used[i]);
}
END_TEST

START_TEST(bodyless)
{
    ck_assert(qt_http_status_bodyless(100));
    ck_assert(qt_http_status_bodyless(101));
    ck_assert(qt_http_status_bodyless(204));
    ck_assert(qt_http_status_bodyless(304));
    ck_assert(!qt_http_status_bodyless(200));
    ck_assert(!qt_http_status_bodyless(205));
    ck_assert(!qt_http_status_bodyless(404));
}
END_TEST

START_TEST(find_header)
{
    static const char raw[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n";
    qt_http_request *q = malloc(sizeof(*q));
    int status = 0;

    ck_assert_int_eq(qt_http_parse_request(raw, sizeof(raw) - 1, &defaults, q, &status),
                     (ssize_t)sizeof(raw) - 1);
    const qt_header *h = qt_http_find_header(q, "X-DUP");
    ck_assert_ptr_nonnull(h);
    ck_assert(slice_is(h->value, "1"));   /* the first one */
    ck_assert(slice_is(h->name, "X-Dup"));
    ck_assert_ptr_null(qt_http_find_header(q, "X-Du"));
    ck_assert_ptr_null(qt_http_find_header(q, "X-Dupe"));
    ck_assert_ptr_nonnull(qt_http_find_header(q, "host"));
    free(q);
}
END_TEST

static Suite *parser_suite(void)
{
    Suite *s = suite_create("http_parser");
    TCase *tc = tcase_create("head");

    tcase_add_loop_test(tc, parse_whole, 0, NROWS);
    tcase_add_loop_test(tc, parse_split_everywhere, 0, NROWS);
    tcase_add_loop_test(tc, parse_byte_by_byte, 0, NROWS);
    tcase_add_test(tc, default_request_line_limit);
    tcase_add_test(tc, header_array_hard_cap);
    tcase_add_test(tc, default_field_count_limit);
    tcase_add_test(tc, value_bytes_everywhere);
    tcase_add_test(tc, target_bytes_everywhere);
    suite_add_tcase(s, tc);

    tc = tcase_create("chunked");
    tcase_add_loop_test(tc, chunked_whole, 0, NCHUNK);
    tcase_add_loop_test(tc, chunked_split_everywhere, 0, NCHUNK);
    tcase_add_loop_test(tc, chunked_byte_by_byte, 0, NCHUNK);
    tcase_add_test(tc, chunked_size_line_bounded);
    tcase_add_test(tc, chunked_trailer_count_bounded);
    tcase_add_test(tc, chunked_large_chunk_streams);
    suite_add_tcase(s, tc);

    tc = tcase_create("helpers");
    tcase_add_test(tc, methods);
    tcase_add_test(tc, reasons);
    tcase_add_test(tc, bodyless);
    tcase_add_test(tc, find_header);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(parser_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
