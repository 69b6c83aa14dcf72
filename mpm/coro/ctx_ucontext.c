/* The portable switch (configure --with-ucontext): glibc ucontext. */
#include <stdint.h>
#include <stdlib.h>
#include <ucontext.h>

#include "ctx.h"
#include "pool.h"

const char coro_ctx_kind[] = "ucontext";

/* Kept at the top of the coroutine's stack, under nothing else. */
typedef struct {
    ucontext_t uc;
    void (*fn)(void *);
    void *arg;
} first_frame;

/* makecontext passes only ints: the frame's address comes in two halves. */
static void start(unsigned hi, unsigned lo)
{
    first_frame *f = (first_frame *)(((uintptr_t)hi << 32) | lo);

    f->fn(f->arg);
    abort();                            /* fn never returns */
}

void coro_ctx_init(coro_ctx *ctx, void *lo, size_t size,
                   void (*fn)(void *), void *arg)
{
    uintptr_t top = ((uintptr_t)lo + size - sizeof(first_frame)) & ~(uintptr_t)63;
    first_frame *f = (first_frame *)top;
    uintptr_t addr = (uintptr_t)f;

    getcontext(&f->uc);
    f->fn = fn;
    f->arg = arg;
    f->uc.uc_stack.ss_sp = lo;
    f->uc.uc_stack.ss_size = top - (uintptr_t)lo;
    f->uc.uc_link = NULL;
    makecontext(&f->uc, (void (*)(void))start, 2,
                (unsigned)(addr >> 32), (unsigned)(addr & 0xffffffffu));
    ctx->sp = &f->uc;
}

void coro_ctx_switch(coro_ctx *from, coro_ctx *to)
{
    if (!from->sp)                      /* a thread's own stack, first time */
        from->sp = qt_xmalloc(sizeof(ucontext_t));
    swapcontext(from->sp, to->sp);
}

void coro_ctx_release(coro_ctx *ctx)
{
    free(ctx->sp);
    ctx->sp = NULL;
}
