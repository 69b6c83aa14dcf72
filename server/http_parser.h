/*
 * Sans-I/O HTTP/1.1 request parser and chunked-body decoder (RFC 9112).
 *
 * Nothing here touches a socket: the caller owns the bytes and hands them in.
 * The head parser is re-entrant in the picohttpparser style: call it again
 * with the whole (grown) buffer each time more bytes arrive; it returns
 * QT_HTTP_INCOMPLETE until the blank line that ends the head is present, and
 * checks the limits on partial input, so an endless request line is refused
 * as soon as it passes LimitRequestLine.
 *
 * Strictness lives here: every request-smuggling defence of RFC 9112 is a
 * parse error with the status the server must answer (400, 414, 431, 501,
 * 505), and the connection is closed after it.
 */
#ifndef QT_HTTP_PARSER_H
#define QT_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

enum qt_method {
    QT_M_GET, QT_M_HEAD, QT_M_POST, QT_M_PUT, QT_M_DELETE, QT_M_OPTIONS,
    QT_M_TRACE, QT_M_CONNECT, QT_M_PATCH, QT_M_OTHER
};

enum qt_body_framing {
    QT_BODY_NONE,       /* no body */
    QT_BODY_LENGTH,     /* Content-Length: content_length bytes */
    QT_BODY_CHUNKED     /* Transfer-Encoding: chunked */
};

#define QT_HTTP_MAX_HEADERS 128   /* hard cap on the header array below */

typedef struct {
    qt_slice name;
    qt_slice value;       /* leading/trailing whitespace trimmed */
} qt_header;

typedef struct {
    size_t max_request_line;   /* LimitRequestLine (default 8190): over -> 414 */
    size_t max_field_size;     /* LimitRequestFieldSize (8190): over -> 431 */
    unsigned max_fields;       /* LimitRequestFields (100): over -> 431 */
} qt_http_limits;

typedef struct {
    enum qt_method method;
    qt_slice method_name;      /* as sent, e.g. "GET" */
    qt_slice target;           /* request-target as sent (origin, absolute, '*' ...) */
    int version_major;         /* 1 */
    int version_minor;         /* 0 or 1 */
    qt_slice request_line;     /* without CRLF, for logs (%r) */

    qt_header headers[QT_HTTP_MAX_HEADERS];
    unsigned nheaders;

    /* Derived from the headers while parsing. */
    qt_slice host;             /* Host value, empty if none */
    bool has_host;
    enum qt_body_framing framing;
    uint64_t content_length;   /* valid when framing == QT_BODY_LENGTH */
    bool keep_alive;           /* per version and Connection header */
    bool expect_continue;      /* Expect: 100-continue */
    bool expect_unknown;       /* another Expect value: answer 417 */
} qt_http_request;

#define QT_HTTP_INCOMPLETE 0   /* need more bytes */
#define QT_HTTP_ERROR (-1)     /* see *status */

/*
 * Parses the request head at the start of buf[0..len).  Leading empty lines
 * (CRLF) before the request line are skipped, as RFC 9112 allows.
 * Returns the number of bytes of the head (request line, fields and the empty
 * line) when it is complete, QT_HTTP_INCOMPLETE when more is needed, or
 * QT_HTTP_ERROR with *status set to the response code (400, 414, 431, 501,
 * 505).  Slices in req point into buf.
 */
ssize_t qt_http_parse_request(const char *buf, size_t len,
                              const qt_http_limits *limits,
                              qt_http_request *req, int *status);

/* First header named `name` (case-insensitive), or NULL. */
const qt_header *qt_http_find_header(const qt_http_request *req, const char *name);

/* Method token to enum (QT_M_OTHER for extension methods). */
enum qt_method qt_http_method_from(qt_slice name);

/*
 * Incremental chunked-body decoder.  Decodes in place: on return
 * buf[0..*len) holds the decoded payload bytes of this call.
 */
typedef struct {
    int state;             /* internal */
    uint64_t remaining;    /* bytes left in the current chunk */
    size_t line_len;       /* bytes of the current size/trailer line so far */
    unsigned trailers;     /* trailer fields seen */
} qt_chunked_decoder;

#define QT_CHUNKED_MORE (-2)    /* all input consumed, body not finished */
#define QT_CHUNKED_ERROR (-1)   /* malformed: answer 400 and close */

void qt_chunked_init(qt_chunked_decoder *d);
/*
 * Feeds buf[0..*len).  Returns QT_CHUNKED_MORE if the body is not finished
 * (all input used), QT_CHUNKED_ERROR on malformed input or an overflowing
 * size, or, when the last chunk and trailers are complete, the number of
 * input bytes that were NOT consumed (the start of a pipelined request,
 * found at the end of the original input: buf_orig + orig_len - ret).
 * In every non-error case *len is set to the decoded payload length now at
 * buf[0..*len).
 */
ssize_t qt_chunked_decode(qt_chunked_decoder *d, char *buf, size_t *len);

/* Reason phrase for a status code ("Not Found"); "Unknown" if none. */
const char *qt_http_reason(int status);

/* True if the status may not carry a body (1xx, 204, 304). */
bool qt_http_status_bodyless(int status);

#endif
