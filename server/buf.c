#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pool.h"

bool qt_slice_eq(qt_slice a, const char *s)
{
    size_t n = strlen(s);
    return a.n == n && memcmp(a.p, s, n) == 0;
}

bool qt_slice_caseeq(qt_slice a, const char *s)
{
    size_t n = strlen(s);
    return a.n == n && strncasecmp(a.p, s, n) == 0;
}

void qt_buf_init(qt_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void qt_buf_free(qt_buf *b)
{
    free(b->data);
    qt_buf_init(b);
}

void qt_buf_reserve(qt_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra)
        cap *= 2;
    b->data = qt_xrealloc(b->data, cap);
    b->cap = cap;
}

void qt_buf_append(qt_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    qt_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void qt_buf_puts(qt_buf *b, const char *s)
{
    qt_buf_append(b, s, strlen(s));
}

void qt_buf_vprintf(qt_buf *b, const char *fmt, va_list ap)
{
    /* Format straight into the spare room; only a miss formats twice. */
    qt_buf_reserve(b, 64);
    va_list ap2;
    va_copy(ap2, ap);
    size_t room = b->cap - b->len;
    int n = vsnprintf(b->data + b->len, room, fmt, ap2);
    va_end(ap2);
    if (n <= 0)
        return;
    if ((size_t)n >= room) {
        qt_buf_reserve(b, (size_t)n + 1);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    }
    b->len += (size_t)n;
}

void qt_buf_put_u64(qt_buf *b, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    qt_buf_reserve(b, n);
    for (size_t i = 0; i < n; i++)
        b->data[b->len + i] = tmp[n - 1 - i];
    b->len += n;
}

void qt_buf_printf(qt_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    qt_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void qt_buf_consume(qt_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void qt_buf_html_escape(qt_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': qt_buf_puts(b, "&amp;"); break;
        case '<': qt_buf_puts(b, "&lt;"); break;
        case '>': qt_buf_puts(b, "&gt;"); break;
        case '"': qt_buf_puts(b, "&quot;"); break;
        case '\'': qt_buf_puts(b, "&#39;"); break;
        default: qt_buf_append(b, s, 1);
        }
    }
}
