/* The deadline heap (see timer.h). */
#include <stdlib.h>

#include "pool.h"
#include "timer.h"

/* The sequence wraps: a tie between nodes armed 2^31 arms apart may
 * break the wrong way, which only swaps two equal deadlines. */
static bool before(const coro_timer *a, const coro_timer *b)
{
    return a->when < b->when ||
           (a->when == b->when && (int32_t)(a->seq - b->seq) < 0);
}

static void place(coro_timer_heap *h, size_t i, coro_timer *t)
{
    h->v[i] = t;
    t->idx = (uint32_t)i;
}

static void sift_up(coro_timer_heap *h, size_t i)
{
    coro_timer *t = h->v[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;

        if (!before(t, h->v[parent]))
            break;
        place(h, i, h->v[parent]);
        i = parent;
    }
    place(h, i, t);
}

static void sift_down(coro_timer_heap *h, size_t i)
{
    coro_timer *t = h->v[i];

    for (;;) {
        size_t child = 2 * i + 1;

        if (child >= h->n)
            break;
        if (child + 1 < h->n && before(h->v[child + 1], h->v[child]))
            child++;
        if (!before(h->v[child], t))
            break;
        place(h, i, h->v[child]);
        i = child;
    }
    place(h, i, t);
}

void coro_timer_heap_free(coro_timer_heap *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}

void coro_timer_arm(coro_timer_heap *h, coro_timer *t, int64_t when)
{
    coro_timer_disarm(h, t);
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v = qt_xrealloc(h->v, h->cap * sizeof *h->v);
    }
    t->when = when;
    t->seq = h->seq++;
    place(h, h->n++, t);
    sift_up(h, t->idx);
}

void coro_timer_disarm(coro_timer_heap *h, coro_timer *t)
{
    size_t i = t->idx;
    coro_timer *last;

    if (i == CORO_TIMER_IDLE)
        return;
    t->idx = CORO_TIMER_IDLE;
    last = h->v[--h->n];
    if (i == h->n)
        return;
    /* The last node fills the hole and moves whichever way it must. */
    place(h, i, last);
    if (i > 0 && before(last, h->v[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}

coro_timer *coro_timer_pop_due(coro_timer_heap *h, int64_t now)
{
    coro_timer *t;

    if (h->n == 0 || h->v[0]->when > now)
        return NULL;
    t = h->v[0];
    coro_timer_disarm(h, t);
    return t;
}

int64_t coro_timer_next(const coro_timer_heap *h)
{
    return h->n ? h->v[0]->when : -1;
}
