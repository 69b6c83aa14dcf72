/*
 * Machine context switch: the only code that knows how registers are saved.
 *
 * Two implementations, chosen by configure: ctx.c + ctx_switch.S (default:
 * callee-saved registers and the FP control words are pushed on the
 * running stack and the stack pointers swapped, ~20 instructions, no
 * syscall) or ctx_ucontext.c (--with-ucontext: glibc makecontext/
 * swapcontext, portable and understood by every debugger, but each switch
 * makes an rt_sigprocmask syscall, about 35x slower).
 */
#ifndef QT_CORO_CTX_H
#define QT_CORO_CTX_H

#include <stddef.h>

/*
 * A suspended context.  asm: the saved stack pointer.  ucontext: the
 * ucontext_t (at the top of the coroutine's stack, or allocated by the
 * first switch away from a thread's own stack).
 */
typedef struct coro_ctx {
    void *sp;
} coro_ctx;

/*
 * Prepares ctx so that the first switch to it calls fn(arg) on the stack
 * [lo, lo + size).  fn must never return: it switches away for good.
 */
void coro_ctx_init(coro_ctx *ctx, void *lo, size_t size,
                   void (*fn)(void *), void *arg);

/* Saves the running context into from and resumes to. */
void coro_ctx_switch(coro_ctx *from, coro_ctx *to);

/* Frees what a switch stored in a context that coro_ctx_init never made. */
void coro_ctx_release(coro_ctx *ctx);

/* "asm" or "ucontext", for benchmarks and logs. */
extern const char coro_ctx_kind[];

#endif
