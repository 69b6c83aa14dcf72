/*
 * Arenas: a list of blocks handed out by bumping a pointer.  Clearing keeps
 * the first block so a connection's pool costs no malloc per request.
 */
#include "pool.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 16u

typedef struct block {
    struct block *next;
    size_t size;          /* usable bytes after the header */
    size_t used;
} block;

typedef struct cleanup {
    void (*fn)(void *);
    void *data;
    struct cleanup *next;
} cleanup;

struct qt_pool {
    block *first;         /* kept across clears */
    block *cur;
    size_t used_total;
    cleanup *cleanups;    /* most recent first */
};

static void oom(size_t n)
{
    fprintf(stderr, "quintet: out of memory allocating %zu bytes\n", n);
    abort();
}

void *qt_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *qt_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *qt_xrealloc(void *ptr, size_t n)
{
    void *p = realloc(ptr, n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

char *qt_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(qt_xmalloc(n), s, n);
}

static char *block_data(block *b)
{
    return (char *)b + ((sizeof(block) + ALIGN - 1) & ~(size_t)(ALIGN - 1));
}

static block *block_new(size_t size)
{
    size_t hdr = (sizeof(block) + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    block *b = qt_xmalloc(hdr + size);
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

qt_pool *qt_pool_create(size_t first_block)
{
    /* The pool and its first block are one allocation: a connection's pool
     * is most of what an idle connection costs under event and hybrid. */
    size_t size = first_block ? first_block : 4096;
    size_t hdr = (sizeof(qt_pool) + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    size_t bhdr = (sizeof(block) + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    char *mem = qt_xmalloc(hdr + bhdr + size);
    qt_pool *p = (qt_pool *)mem;
    block *b = (block *)(mem + hdr);
    b->next = NULL;
    b->size = size;
    b->used = 0;
    p->first = b;
    p->cur = b;
    p->used_total = 0;
    p->cleanups = NULL;
    return p;
}

static void run_cleanups(qt_pool *p)
{
    while (p->cleanups) {
        cleanup *c = p->cleanups;
        p->cleanups = c->next;   /* unlink first: a cleanup may allocate */
        c->fn(c->data);
    }
}

static void free_blocks(block *b)
{
    while (b) {
        block *next = b->next;
        free(b);
        b = next;
    }
}

void qt_pool_clear(qt_pool *p)
{
    run_cleanups(p);
    free_blocks(p->first->next);
    p->first->next = NULL;
    p->first->used = 0;
    p->cur = p->first;
    p->used_total = 0;
}

void qt_pool_destroy(qt_pool *p)
{
    if (!p)
        return;
    run_cleanups(p);
    free_blocks(p->first->next);   /* the first block lives inside p */
    free(p);
}

void *qt_palloc(qt_pool *p, size_t n)
{
    size_t need = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    block *b = p->cur;
    if (need < n)
        oom(n);
    if (b->size - b->used < need) {
        /* Big requests get a block of their own; small ones a fresh block
         * twice the current size, so a growing pool makes few mallocs. */
        size_t size = b->size * 2;
        if (size < need)
            size = need;
        b = block_new(size);
        b->next = p->cur->next;
        p->cur->next = b;
        p->cur = b;
    }
    void *m = block_data(b) + b->used;
    b->used += need;
    p->used_total += need;
    return m;
}

void *qt_pcalloc(qt_pool *p, size_t n)
{
    return memset(qt_palloc(p, n), 0, n);
}

void *qt_pmemdup(qt_pool *p, const void *m, size_t n)
{
    return memcpy(qt_palloc(p, n), m, n);
}

char *qt_pstrndup(qt_pool *p, const char *s, size_t n)
{
    char *d = qt_palloc(p, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *qt_pstrdup(qt_pool *p, const char *s)
{
    return s ? qt_pstrndup(p, s, strlen(s)) : NULL;
}

char *qt_pstrcat(qt_pool *p, ...)
{
    va_list ap;
    size_t total = 0;
    va_start(ap, p);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *))
        total += strlen(s);
    va_end(ap);
    char *out = qt_palloc(p, total + 1), *w = out;
    va_start(ap, p);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *)) {
        size_t n = strlen(s);
        memcpy(w, s, n);
        w += n;
    }
    va_end(ap);
    *w = '\0';
    return out;
}

char *qt_pvsprintf(qt_pool *p, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        n = 0;
    char *s = qt_palloc(p, (size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

char *qt_psprintf(qt_pool *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = qt_pvsprintf(p, fmt, ap);
    va_end(ap);
    return s;
}

void qt_pool_cleanup(qt_pool *p, void (*fn)(void *), void *data)
{
    cleanup *c = qt_palloc(p, sizeof(*c));
    c->fn = fn;
    c->data = data;
    c->next = p->cleanups;
    p->cleanups = c;
}

void qt_pool_cleanup_run(qt_pool *p, void (*fn)(void *), void *data)
{
    for (cleanup **pc = &p->cleanups; *pc; pc = &(*pc)->next) {
        if ((*pc)->fn == fn && (*pc)->data == data) {
            cleanup *c = *pc;
            *pc = c->next;
            c->fn(c->data);
            return;
        }
    }
}

size_t qt_pool_used(const qt_pool *p)
{
    return p->used_total;
}
