/*
 * What a coroutine switch costs: the raw context switch, a yield through
 * the scheduler, and a coroutine's whole life (create, run, finish).
 * Build with `make bench/micro/ctxswitch_bench`; configure --with-ucontext
 * to measure the portable switch instead of the assembly one.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "coro/coro.h"
#include "coro/ctx.h"

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* ----------------------------------------------------- raw ping-pong */

typedef struct {
    coro_ctx main, co;
    unsigned long n;
} pingpong;

static void ponger(void *arg)
{
    pingpong *p = arg;

    for (;;)
        coro_ctx_switch(&p->co, &p->main);
}

static double bench_raw(unsigned long n)
{
    size_t size = 64 * 1024;
    void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    pingpong p = { .n = n };
    double t0;

    if (stack == MAP_FAILED)
        abort();
    coro_ctx_init(&p.co, stack, size, ponger, &p);
    t0 = now_ns();
    for (unsigned long i = 0; i < n; i++)
        coro_ctx_switch(&p.main, &p.co);
    t0 = (now_ns() - t0) / (2.0 * (double)n);   /* two switches per round */
    coro_ctx_release(&p.main);
    munmap(stack, size);
    return t0;
}

/* ------------------------------------------------------ scheduler yield */

static void yielder(void *arg)
{
    unsigned long n = *(unsigned long *)arg;

    for (unsigned long i = 0; i < n; i++)
        coro_yield();
}

static double bench_yield(unsigned long n)
{
    coro_sched *s = coro_sched_create(NULL);
    double t0;

    coro_spawn(s, yielder, &n);
    coro_spawn(s, yielder, &n);
    t0 = now_ns();
    coro_sched_run(s);
    t0 = (now_ns() - t0) / (2.0 * (double)n);
    coro_sched_destroy(s);
    return t0;
}

/* ------------------------------------------------------ create + finish */

static void nothing(void *arg)
{
    (void)arg;
}

static void spawner(void *arg)
{
    unsigned long n = *(unsigned long *)arg;

    for (unsigned long i = 0; i < n; i++) {
        coro_create(nothing, NULL);
        if (i % 32 == 31)
            coro_yield();
    }
}

static double bench_lifecycle(unsigned long n)
{
    coro_sched *s = coro_sched_create(NULL);
    double t0;

    coro_spawn(s, spawner, &n);
    t0 = now_ns();
    coro_sched_run(s);
    t0 = (now_ns() - t0) / (double)n;
    coro_sched_destroy(s);
    return t0;
}

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 5000000ul;

    if (n == 0 || n > 1000000000ul)
        n = 5000000ul;
    printf("switch: %s, %lu rounds\n", coro_ctx_kind, n);
    printf("raw context switch        %7.1f ns\n", bench_raw(n));
    printf("yield through scheduler   %7.1f ns per yield\n", bench_yield(n));
    printf("create + run + finish     %7.1f ns per coroutine\n",
           bench_lifecycle(n / 10 ? n / 10 : 1));
    return 0;
}
