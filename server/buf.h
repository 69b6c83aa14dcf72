/*
 * Byte slices and growable byte buffers.
 *
 * Bytes travel through the server as (pointer, length) slices that point
 * into a buffer owned by someone else; a qt_buf owns its bytes.
 */
#ifndef QT_BUF_H
#define QT_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *p;
    size_t n;
} qt_slice;

#define QT_SLICE_LIT(s) ((qt_slice){ (s), sizeof(s) - 1 })

bool qt_slice_eq(qt_slice a, const char *s);          /* exact */
bool qt_slice_caseeq(qt_slice a, const char *s);      /* ASCII case-insensitive */

/* A name/value list (headers, environment), allocated from a pool. */
typedef struct qt_kv {
    const char *name;
    const char *value;
    struct qt_kv *next;
} qt_kv;

typedef struct {
    char *data;
    size_t len;   /* bytes in use */
    size_t cap;   /* bytes allocated */
} qt_buf;

void qt_buf_init(qt_buf *b);
void qt_buf_free(qt_buf *b);              /* releases memory; b is empty again */
void qt_buf_reserve(qt_buf *b, size_t extra);
void qt_buf_append(qt_buf *b, const void *p, size_t n);
void qt_buf_puts(qt_buf *b, const char *s);
void qt_buf_printf(qt_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void qt_buf_vprintf(qt_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Appends v in decimal (no printf on hot paths). */
void qt_buf_put_u64(qt_buf *b, uint64_t v);
/* Drops the first n bytes, moving the rest to the front. */
void qt_buf_consume(qt_buf *b, size_t n);
/* Appends s with &, <, >, " and ' escaped for HTML text and attributes. */
void qt_buf_html_escape(qt_buf *b, const char *s);

#endif
