#include "http_serialize.h"

#include <string.h>

#include "http_parser.h"

/* A value with CR or LF would let a handler forge headers: never send it. */
static bool safe_value(const char *v)
{
    return strpbrk(v, "\r\n") == NULL;
}

static void field(qt_buf *b, const char *name, const char *value)
{
    if (!safe_value(name) || !safe_value(value))
        return;
    qt_buf_puts(b, name);
    qt_buf_append(b, ": ", 2);
    qt_buf_puts(b, value);
    qt_buf_append(b, "\r\n", 2);
}

void qt_http_serialize_head(qt_buf *b, const qt_response_head *h)
{
    qt_buf_reserve(b, 256);
    qt_buf_append(b, "HTTP/1.1 ", 9);
    if (h->status_line && safe_value(h->status_line)) {
        qt_buf_puts(b, h->status_line);
    } else {
        qt_buf_put_u64(b, (uint64_t)(h->status > 0 ? h->status : 500));
        qt_buf_append(b, " ", 1);
        qt_buf_puts(b, qt_http_reason(h->status));
    }
    qt_buf_append(b, "\r\n", 2);
    if (h->date)
        field(b, "Date", h->date);
    if (h->server)
        field(b, "Server", h->server);
    for (const qt_kv *f = h->fields; f; f = f->next)
        field(b, f->name, f->value);
    bool bodyless = qt_http_status_bodyless(h->status);
    if (h->content_type && !bodyless)
        field(b, "Content-Type", h->content_type);
    if (h->content_length >= 0 && !bodyless) {
        qt_buf_append(b, "Content-Length: ", 16);
        qt_buf_put_u64(b, (uint64_t)h->content_length);
        qt_buf_append(b, "\r\n", 2);
    }
    else if (h->chunked && !bodyless)
        qt_buf_puts(b, "Transfer-Encoding: chunked\r\n");
    if (h->connection == QT_CONN_HDR_CLOSE)
        qt_buf_puts(b, "Connection: close\r\n");
    else if (h->connection == QT_CONN_HDR_KEEPALIVE)
        qt_buf_printf(b, "Keep-Alive: timeout=%lld, max=%u\r\nConnection: Keep-Alive\r\n",
                      (long long)h->keepalive_timeout_s, h->keepalive_max);
    qt_buf_append(b, "\r\n", 2);
}

size_t qt_http_chunk_header(char out[20], size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t len = 0;
    do {
        tmp[len++] = hex[n & 0xf];
        n >>= 4;
    } while (n && len < sizeof(tmp));
    for (size_t i = 0; i < len; i++)
        out[i] = tmp[len - 1 - i];
    out[len] = '\r';
    out[len + 1] = '\n';
    return len + 2;
}
