/*
 * Run queues of the multi-thread runtime (see mt_sched.h): the bounded
 * per-worker ring, lock-free with a single producer (its worker) and any
 * number of consumers (the worker and thieves, who CAS the head), and the
 * global inject queue.
 */
#include <stddef.h>

#include "mt_int.h"

void mt_ring_init(mt_ring *r)
{
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    for (unsigned i = 0; i < MT_RING_SIZE; i++)
        atomic_init(&r->buf[i], NULL);
}

unsigned mt_ring_len(mt_ring *r)
{
    uint32_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&r->tail, memory_order_acquire);

    return t - h <= MT_RING_SIZE ? t - h : 0;
}

/* The owner alone moves the tail, so only the head can race with it. */
bool mt_ring_push(mt_ring *r, mt_coro *co)
{
    uint32_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);

    if (t - h >= MT_RING_SIZE)
        return false;
    atomic_store_explicit(&r->buf[t % MT_RING_SIZE], co, memory_order_relaxed);
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    return true;
}

mt_coro *mt_ring_pop(mt_ring *r)
{
    for (;;) {
        uint32_t h = atomic_load_explicit(&r->head, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
        mt_coro *co;

        if (t == h)
            return NULL;
        co = atomic_load_explicit(&r->buf[h % MT_RING_SIZE], memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&r->head, &h, h + 1,
                memory_order_acq_rel, memory_order_relaxed))
            return co;
    }
}

/*
 * Half, rounded up, like Go's runqgrab.  The slots are read before the
 * CAS: if the CAS fails somebody else took them and the copies are
 * dropped; the owner never overwrites [head, tail) while we look.
 */
unsigned mt_ring_grab(mt_ring *victim, mt_coro **out)
{
    for (;;) {
        uint32_t h = atomic_load_explicit(&victim->head, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&victim->tail, memory_order_acquire);
        uint32_t n = t - h;

        n -= n / 2;
        if (n == 0)
            return 0;
        if (n > MT_RING_SIZE / 2)
            continue;                   /* head and tail read inconsistently */
        for (uint32_t i = 0; i < n; i++)
            out[i] = atomic_load_explicit(&victim->buf[(h + i) % MT_RING_SIZE],
                                          memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&victim->head, &h, h + n,
                memory_order_acq_rel, memory_order_relaxed))
            return n;
    }
}

/* ---------------------------------------------------------- inject queue */

static void inject_link(mt_sched *s, mt_coro *co)
{
    co->next = NULL;
    if (s->itail)
        s->itail->next = co;
    else
        s->ihead = co;
    s->itail = co;
}

void mt_inject_push(mt_sched *s, mt_coro *co)
{
    pthread_mutex_lock(&s->ilock);
    inject_link(s, co);
    atomic_fetch_add(&s->ilen, 1);
    pthread_mutex_unlock(&s->ilock);
}

void mt_inject_push_batch(mt_sched *s, mt_coro **v, unsigned n)
{
    pthread_mutex_lock(&s->ilock);
    for (unsigned i = 0; i < n; i++)
        inject_link(s, v[i]);
    atomic_fetch_add(&s->ilen, n);
    pthread_mutex_unlock(&s->ilock);
}

mt_coro *mt_inject_pop(mt_sched *s)
{
    mt_coro *co;

    /* Unlocked peek: most ticks find it empty and must stay cheap. */
    if (atomic_load_explicit(&s->ilen, memory_order_acquire) == 0)
        return NULL;
    pthread_mutex_lock(&s->ilock);
    co = s->ihead;
    if (co) {
        s->ihead = co->next;
        if (!s->ihead)
            s->itail = NULL;
        atomic_fetch_sub(&s->ilen, 1);
    }
    pthread_mutex_unlock(&s->ilock);
    return co;
}
