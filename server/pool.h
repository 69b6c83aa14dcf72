/*
 * Arenas (pools) with cleanup callbacks.
 *
 * Every object whose lifetime is "this connection" or "this request" is
 * allocated from a pool and freed all at once when the pool is cleared or
 * destroyed.  Resources that are not memory (file descriptors, child
 * processes) register a cleanup, which runs in reverse order of registration.
 *
 * Out-of-memory policy (the one policy for the whole project): allocation
 * failure is not recoverable in a server that has already promised to serve a
 * request, so every allocator here and qt_xmalloc() print a message and
 * abort().  Callers never check for NULL.
 */
#ifndef QT_POOL_H
#define QT_POOL_H

#include <stdarg.h>
#include <stddef.h>

typedef struct qt_pool qt_pool;

qt_pool *qt_pool_create(size_t first_block);
void qt_pool_destroy(qt_pool *p);
/* Runs the cleanups and frees every block but the first, ready for reuse. */
void qt_pool_clear(qt_pool *p);

void *qt_palloc(qt_pool *p, size_t n);
void *qt_pcalloc(qt_pool *p, size_t n);
char *qt_pstrdup(qt_pool *p, const char *s);
char *qt_pstrndup(qt_pool *p, const char *s, size_t n);
void *qt_pmemdup(qt_pool *p, const void *m, size_t n);
/* Concatenates the strings up to a NULL: the cheap path for building names. */
char *qt_pstrcat(qt_pool *p, ...) __attribute__((sentinel));
char *qt_psprintf(qt_pool *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
char *qt_pvsprintf(qt_pool *p, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Registers fn(data) to run when the pool is cleared or destroyed. */
void qt_pool_cleanup(qt_pool *p, void (*fn)(void *), void *data);
/* Runs and removes a registered cleanup early (e.g. a file closed by hand). */
void qt_pool_cleanup_run(qt_pool *p, void (*fn)(void *), void *data);
/* Bytes handed out since the last clear (for server-status and tests). */
size_t qt_pool_used(const qt_pool *p);

/* malloc family that aborts on failure (see the policy above). */
void *qt_xmalloc(size_t n);
void *qt_xcalloc(size_t n, size_t size);
void *qt_xrealloc(void *ptr, size_t n);
char *qt_xstrdup(const char *s);

#endif
