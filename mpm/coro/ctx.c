/* Initial frames for the assembly switch in ctx_switch.S. */
#include <stdint.h>
#include <string.h>

#include "ctx.h"

const char coro_ctx_kind[] = "asm";

void coro_ctx_trampoline(void);

/*
 * The frame coro_ctx_switch pops on the first switch to a new context,
 * lowest address first.  Its "return" lands in the trampoline with the
 * stack 16-byte aligned, as a call instruction expects.
 */
#if defined(__x86_64__)
typedef struct {
    uint32_t mxcsr;
    uint16_t fpucw, pad;
    void *r15, *r14, *r13, *r12, *rbx, *rbp;
    void *ret;
} first_frame;

static void fill(first_frame *f, void (*fn)(void *), void *arg)
{
    f->mxcsr = 0x1F80;                  /* the ABI's initial values */
    f->fpucw = 0x037F;
    f->r12 = (void *)(uintptr_t)fn;
    f->r13 = arg;
    f->ret = (void *)(uintptr_t)coro_ctx_trampoline;
}
#elif defined(__aarch64__)
typedef struct {
    void *x19, *x20, *x21_28[8], *x29, *x30;
    double d8_15[8];
    uint64_t fpcr, pad;
} first_frame;

static void fill(first_frame *f, void (*fn)(void *), void *arg)
{
    f->x19 = (void *)(uintptr_t)fn;
    f->x20 = arg;
    f->x30 = (void *)(uintptr_t)coro_ctx_trampoline;
}
#else
#error "no coroutine switch for this CPU: configure --with-ucontext"
#endif

/* Must match the pushes in ctx_switch.S. */
#if defined(__x86_64__)
_Static_assert(sizeof(first_frame) == 64, "7 registers + control words");
#else
_Static_assert(sizeof(first_frame) == 176, "12 x + 8 d registers + fpcr");
#endif

void coro_ctx_init(coro_ctx *ctx, void *lo, size_t size,
                   void (*fn)(void *), void *arg)
{
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
    first_frame *f = (first_frame *)(top - sizeof(first_frame));

    memset(f, 0, sizeof *f);
    fill(f, fn, arg);
    ctx->sp = f;
}

void coro_ctx_release(coro_ctx *ctx)
{
    ctx->sp = NULL;
}
