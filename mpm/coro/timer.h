/*
 * Deadlines: a binary min-heap of intrusive timer nodes keyed by monotonic
 * ms.  Ties fire in arming order (a sequence number breaks them), so two
 * sleeps with the same deadline wake in the order they were asked for.
 * A node is 24 bytes: every idle connection holds one.
 */
#ifndef QT_CORO_TIMER_H
#define QT_CORO_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CORO_TIMER_IDLE UINT32_MAX

struct coro_sched;

typedef struct coro_timer {
    int64_t when;
    uint32_t seq;               /* arming order, compared modulo 2^32 */
    uint32_t idx;               /* position in the heap, or CORO_TIMER_IDLE */
    /* What the loop does when it is due (the node is already disarmed). */
    void (*fire)(struct coro_sched *s, struct coro_timer *t);
} coro_timer;

typedef struct coro_timer_heap {
    coro_timer **v;
    size_t n, cap;
    uint32_t seq;
} coro_timer_heap;

void coro_timer_heap_free(coro_timer_heap *h);

static inline void coro_timer_init(coro_timer *t,
                                   void (*fire)(struct coro_sched *, coro_timer *))
{
    t->idx = CORO_TIMER_IDLE;
    t->fire = fire;
}

static inline bool coro_timer_armed(const coro_timer *t)
{
    return t->idx != CORO_TIMER_IDLE;
}

/* Arms (or re-arms) t for `when`. */
void coro_timer_arm(coro_timer_heap *h, coro_timer *t, int64_t when);
/* Disarms t; harmless if it is not armed. */
void coro_timer_disarm(coro_timer_heap *h, coro_timer *t);
/* Removes and returns the earliest timer due at `now`, or NULL. */
coro_timer *coro_timer_pop_due(coro_timer_heap *h, int64_t now);
/* The earliest deadline, or -1 if no timer is armed. */
int64_t coro_timer_next(const coro_timer_heap *h);

#endif
