/*
 * Sans-I/O HTTP/1.1 response serializer: a response head and chunk framing
 * as bytes in a buffer.  The response layer (response.c) decides what goes
 * in; this file only decides how it is spelled on the wire.
 */
#ifndef QT_HTTP_SERIALIZE_H
#define QT_HTTP_SERIALIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum qt_conn_header { QT_CONN_HDR_NONE, QT_CONN_HDR_CLOSE, QT_CONN_HDR_KEEPALIVE };

typedef struct {
    int status;
    const char *status_line;      /* "404 Gone Fishing" overrides status + reason */
    const char *date;             /* IMF-fixdate */
    const char *server;           /* Server header, NULL for none */
    const qt_kv *fields;          /* in order */
    const char *content_type;     /* NULL: none */
    int64_t content_length;       /* -1: none */
    bool chunked;
    enum qt_conn_header connection;
    int64_t keepalive_timeout_s;  /* for QT_CONN_HDR_KEEPALIVE */
    unsigned keepalive_max;
} qt_response_head;

/*
 * Appends the head, ending with the empty line.  Statuses that carry no body
 * (1xx, 204, 304) never get Content-Type, Content-Length or chunking.
 * Field values containing CR or LF are dropped (response splitting).
 */
void qt_http_serialize_head(qt_buf *b, const qt_response_head *h);

/* Writes "<hex>\r\n" for a chunk of n bytes; returns its length (<= 20). */
size_t qt_http_chunk_header(char out[20], size_t n);

#define QT_HTTP_LAST_CHUNK "0\r\n\r\n"

#endif
