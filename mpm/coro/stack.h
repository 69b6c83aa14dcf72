/*
 * Coroutine stacks: guarded mmap regions, pooled per scheduler, and the
 * SIGSEGV handler that names a guard-page hit.
 */
#ifndef QT_CORO_STACK_H
#define QT_CORO_STACK_H

#include <stddef.h>

/* Lives at the very top of its own mapping; the stack grows down below it. */
typedef struct coro_stack {
    char *lo;                   /* lowest usable byte (guard page below) */
    size_t size;                /* from lo to the end, this header included */
    size_t map_size;            /* guard page + size */
    struct coro_stack *next;    /* free list */
    unsigned vg_id;             /* valgrind stack id */
} coro_stack;

typedef struct coro_stack_pool {
    size_t size;                /* usable bytes per stack */
    size_t page;
    unsigned max_cached;
    unsigned cached;
    unsigned mapped;            /* in use + cached */
    unsigned long long maps;    /* mmap calls so far */
    coro_stack *free;
} coro_stack_pool;

void coro_stack_pool_init(coro_stack_pool *p, size_t size, unsigned max_cached);
/* After a burst: unmaps free stacks beyond `keep` and gives the pages
 * the kept ones touched back to the kernel (all but the header's). */
void coro_stack_pool_trim(coro_stack_pool *p, unsigned keep);
/* Unmaps every cached stack; stacks still in use must be put back first. */
void coro_stack_pool_drain(coro_stack_pool *p);
/* NULL when the kernel refuses the mapping. */
coro_stack *coro_stack_get(coro_stack_pool *p);
void coro_stack_put(coro_stack_pool *p, coro_stack *st);

/*
 * Per thread: an alternate signal stack (unless one is set already) and
 * the process-wide SIGSEGV handler.  Returns the mapping to pass to
 * coro_stack_guard_remove(), or NULL if none was installed.
 */
void *coro_stack_guard_install(void);
void coro_stack_guard_remove(void *altstack);

/* The stack this thread runs on, NULL off coroutines; async-signal-safe.
 * Provided by the scheduler. */
const coro_stack *coro_running_stack(void);
/* The same for the multi-thread runtime (mt_sched.c). */
const coro_stack *mt_running_stack(void);

#endif
