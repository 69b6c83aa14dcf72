/* Coroutine stacks (see stack.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "stack.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define CORO_VALGRIND 1
#endif
#endif

#define ALTSTACK_SIZE (64u * 1024u)

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

void coro_stack_pool_init(coro_stack_pool *p, size_t size, unsigned max_cached)
{
    memset(p, 0, sizeof *p);
    p->page = (size_t)sysconf(_SC_PAGESIZE);
    p->size = round_up(size, p->page);
    p->max_cached = max_cached;
}

static void stack_unmap(coro_stack_pool *p, coro_stack *st)
{
#ifdef CORO_VALGRIND
    VALGRIND_STACK_DEREGISTER(st->vg_id);
#endif
    p->mapped--;
    munmap(st->lo - p->page, st->map_size);
}

/*
 * One mapping: [guard page][stack ... header].  The header is carved from
 * the top of the configured size so a stack is exactly the size the admin
 * asked for.  MAP_NORESERVE: only the pages a coroutine touches cost memory
 * or commit charge.
 */
static coro_stack *stack_map(coro_stack_pool *p)
{
    size_t hdr = round_up(sizeof(coro_stack), 64);
    size_t map_size = p->page + p->size;
    char *base;
    coro_stack *st;

    base = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    if (mprotect(base, p->page, PROT_NONE) != 0) {
        munmap(base, map_size);
        return NULL;
    }
    st = (coro_stack *)(base + map_size - hdr);
    st->lo = base + p->page;
    st->size = p->size;
    st->map_size = map_size;
    st->next = NULL;
#ifdef CORO_VALGRIND
    st->vg_id = VALGRIND_STACK_REGISTER(st->lo, (char *)st);
#endif
    p->mapped++;
    p->maps++;
    return st;
}

coro_stack *coro_stack_get(coro_stack_pool *p)
{
    coro_stack *st = p->free;

    if (!st)
        return stack_map(p);
    p->free = st->next;
    p->cached--;
    st->next = NULL;
    return st;
}

void coro_stack_put(coro_stack_pool *p, coro_stack *st)
{
    if (p->cached >= p->max_cached) {
        stack_unmap(p, st);
        return;
    }
    st->next = p->free;
    p->free = st;
    p->cached++;
}

/*
 * A kept stack still holds every page its deepest call touched, and a
 * burst leaves many such stacks: only the top page (header and coroutine
 * struct) has to stay; the rest reads back as zeros when next touched.
 */
static void stack_release_pages(const coro_stack_pool *p, coro_stack *st)
{
    char *top = (char *)((uintptr_t)st & ~(uintptr_t)(p->page - 1));

    if (top > st->lo)
        madvise(st->lo, (size_t)(top - st->lo), MADV_DONTNEED);
}

void coro_stack_pool_trim(coro_stack_pool *p, unsigned keep)
{
    while (p->free && p->cached > keep) {
        coro_stack *st = p->free;

        p->free = st->next;
        p->cached--;
        stack_unmap(p, st);
    }
    for (coro_stack *st = p->free; st; st = st->next)
        stack_release_pages(p, st);
}

void coro_stack_pool_drain(coro_stack_pool *p)
{
    while (p->free) {
        coro_stack *st = p->free;

        p->free = st->next;
        p->cached--;
        stack_unmap(p, st);
    }
}

/* ------------------------------------------------------ overflow report */

/* Async-signal-safe decimal formatting. */
static size_t format_size(char *out, size_t n)
{
    char tmp[24];
    size_t len = 0, i;

    do {
        tmp[len++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    for (i = 0; i < len; i++)
        out[i] = tmp[len - 1 - i];
    return len;
}

static void report_overflow(const coro_stack *st)
{
    static const char head[] = "coroutine stack overflow (stack of ";
    static const char tail[] = " bytes)\n";
    char msg[sizeof head + sizeof tail + 24];
    size_t len = sizeof head - 1;

    memcpy(msg, head, len);
    len += format_size(msg + len, st->size);
    memcpy(msg + len, tail, sizeof tail - 1);
    len += sizeof tail - 1;
    if (write(STDERR_FILENO, msg, len) < 0)
        _exit(134);
}

/*
 * A fault in the guard page of the running coroutine is an overflow: say
 * so and abort.  Anything else: restore the default action and return, so
 * the faulting instruction runs again and the process dies as it would
 * have without us (core dump included).
 */
static void on_segv(int sig, siginfo_t *si, void *uctx)
{
    const coro_stack *st = coro_running_stack();
    uintptr_t addr = (uintptr_t)si->si_addr;
    (void)uctx;

    if (st && addr < (uintptr_t)st->lo &&
        addr >= (uintptr_t)st->lo - (uintptr_t)sysconf(_SC_PAGESIZE)) {
        report_overflow(st);
        abort();
    }
    signal(sig, SIG_DFL);
}

void *coro_stack_guard_install(void)
{
    struct sigaction sa;
    stack_t ss, old;
    void *mem = NULL;

    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    /* The overflowed stack cannot run the handler: it needs its own. */
    if (sigaltstack(NULL, &old) == 0 && (old.ss_flags & SS_DISABLE)) {
        mem = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED)
            return NULL;
        ss.ss_sp = mem;
        ss.ss_size = ALTSTACK_SIZE;
        ss.ss_flags = 0;
        sigaltstack(&ss, NULL);
    }
    sigaction(SIGSEGV, &sa, NULL);
    return mem;
}

void coro_stack_guard_remove(void *altstack)
{
    stack_t ss;

    if (!altstack)
        return;
    memset(&ss, 0, sizeof ss);
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
    munmap(altstack, ALTSTACK_SIZE);
}
