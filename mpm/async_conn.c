/*
 * Connection life cycle of the coroutine MPMs (see async_conn.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "async_conn.h"
#include "log.h"
#include "pool.h"

/*
 * What the MPM keeps per connection, from accept to close.  While the
 * connection is parked idle and released, only `saved` is left of it.
 */
struct qt_async_conn {
    qt_async_slab *slab;
    struct qt_async_conn *prev, *next;  /* idle list, oldest first; next:
                                           the slab's free list when free */
    union {
        qt_conn *c;                     /* !released */
        qt_conn_idle saved;             /* released */
    } u;
    bool released;
    bool idle;
    bool handshaken;
};

/*
 * Records come in slabs: thousands of idle connections made in a burst
 * then sit packed in a few pages, not scattered among the freed request
 * buffers of that burst, and an emptied slab goes back to malloc.
 */
#define SLAB_RECORDS 63

struct qt_async_slab {
    qt_async_set *set;
    qt_async_slab *prev, *next;        /* in set->partial or set->full */
    qt_async_conn *free;               /* records given back */
    unsigned used, carved;
    qt_async_conn rec[SLAB_RECORDS];
};

static void conn_serve(void *arg);

void qt_async_set_init(qt_async_set *set, const qt_async_ops *ops, void *owner)
{
    set->ops = ops;
    set->owner = owner;
    set->idle_head = set->idle_tail = NULL;
    set->partial = set->full = set->spare = NULL;
    atomic_init(&set->active, 0);
    atomic_init(&set->accepted, 0);
    atomic_init(&set->served, 0);
    atomic_init(&set->stopping, false);
    pthread_mutex_init(&set->lock, NULL);
}

static void slabs_free(qt_async_slab *sl)
{
    while (sl) {
        qt_async_slab *next = sl->next;

        free(sl);
        sl = next;
    }
}

/* Records still in use then belong to a child that is exiting anyway. */
void qt_async_set_destroy(qt_async_set *set)
{
    slabs_free(set->partial);
    slabs_free(set->full);
    free(set->spare);
    pthread_mutex_destroy(&set->lock);
}

/* ---------------------------------------------------------- records */

static void slab_link(qt_async_slab **list, qt_async_slab *sl)
{
    sl->prev = NULL;
    sl->next = *list;
    if (*list)
        (*list)->prev = sl;
    *list = sl;
}

static void slab_unlink(qt_async_slab **list, qt_async_slab *sl)
{
    if (sl->prev)
        sl->prev->next = sl->next;
    else
        *list = sl->next;
    if (sl->next)
        sl->next->prev = sl->prev;
}

/* Under set->lock. */
static qt_async_conn *rec_alloc(qt_async_set *set)
{
    qt_async_slab *sl = set->partial;
    qt_async_conn *ac;

    if (!sl) {
        sl = set->spare ? set->spare : qt_xmalloc(sizeof *sl);
        set->spare = NULL;
        sl->set = set;
        sl->free = NULL;
        sl->used = sl->carved = 0;
        slab_link(&set->partial, sl);
    }
    if (sl->free) {
        ac = sl->free;
        sl->free = ac->next;
    } else {
        ac = &sl->rec[sl->carved++];
    }
    if (++sl->used == SLAB_RECORDS) {
        slab_unlink(&set->partial, sl);
        slab_link(&set->full, sl);
    }
    memset(ac, 0, sizeof *ac);
    ac->slab = sl;
    return ac;
}

/* Under set->lock. */
static void rec_free(qt_async_set *set, qt_async_conn *ac)
{
    qt_async_slab *sl = ac->slab;

    if (sl->used-- == SLAB_RECORDS) {
        slab_unlink(&set->full, sl);
        slab_link(&set->partial, sl);
    }
    ac->next = sl->free;
    sl->free = ac;
    if (sl->used > 0)
        return;
    slab_unlink(&set->partial, sl);
    if (set->spare)
        free(sl);
    else
        set->spare = sl;
}

static qt_async_set *set_of(const qt_async_conn *ac)
{
    return ac->slab->set;
}

static int rec_fd(const qt_async_conn *ac)
{
    return ac->released ? ac->u.saved.fd : ac->u.c->fd;
}

static unsigned rec_requests(const qt_async_conn *ac)
{
    return ac->released ? ac->u.saved.requests : ac->u.c->requests;
}

/* Trades an idle connection for its record's saved part, when it can. */
static void conn_release(qt_async_conn *ac)
{
    qt_conn *c = ac->u.c;
    qt_conn_idle saved;

    if (qt_conn_release_idle(c, &saved)) {
        ac->u.saved = saved;
        ac->released = true;
    }
}

static qt_conn *conn_resume(qt_async_conn *ac)
{
    if (ac->released) {
        qt_conn *c = qt_conn_resume(set_of(ac)->cfg, &ac->u.saved);

        ac->released = false;
        ac->u.c = c;
        c->mpm_data = ac;
    }
    return ac->u.c;
}

/* ---------------------------------------------------------- idle list */

/* Under set->lock. */
static void idle_link(qt_async_set *set, qt_async_conn *ac)
{
    ac->idle = true;
    ac->next = NULL;
    ac->prev = set->idle_tail;
    if (set->idle_tail)
        set->idle_tail->next = ac;
    else
        set->idle_head = ac;
    set->idle_tail = ac;
}

/* Under set->lock. */
static void idle_unlink(qt_async_set *set, qt_async_conn *ac)
{
    if (!ac->idle)
        return;
    ac->idle = false;
    if (ac->prev)
        ac->prev->next = ac->next;
    else
        set->idle_head = ac->next;
    if (ac->next)
        ac->next->prev = ac->prev;
    else
        set->idle_tail = ac->prev;
}

static void idle_unlink_locked(qt_async_set *set, qt_async_conn *ac)
{
    pthread_mutex_lock(&set->lock);
    idle_unlink(set, ac);
    pthread_mutex_unlock(&set->lock);
}

/* Closes and frees the connection; it is off the idle list. */
static void conn_close(qt_async_conn *ac)
{
    qt_async_set *set = set_of(ac);

    set->ops->fd_forget(set->owner, rec_fd(ac));
    if (ac->released)
        qt_conn_close_idle(&ac->u.saved);
    else
        qt_conn_close(ac->u.c);
    pthread_mutex_lock(&set->lock);
    rec_free(set, ac);
    pthread_mutex_unlock(&set->lock);
}

/* On the runtime's own stack: the idle fd became readable, or its time
 * is up.  Counted active before the spawn: under hybrid the coroutine may
 * finish on another worker before mt_spawn() returns. */
static void on_idle_ready(int fd, int result, void *arg)
{
    qt_async_conn *ac = arg;
    qt_async_set *set = set_of(ac);

    (void)fd;
    idle_unlink_locked(set, ac);
    atomic_fetch_add(&set->active, 1);
    if (result != QT_OK || !set->ops->spawn(set->owner, conn_serve, ac)) {
        atomic_fetch_sub(&set->active, 1);
        conn_close(ac);                 /* idle: nothing to linger for */
    }
}

/*
 * Parks the bare fd until the next request or the deadline.  The watch
 * may fire on another worker before this returns: ac is not touched
 * after it is set.
 */
static void conn_idle(qt_async_conn *ac, int64_t deadline)
{
    qt_async_set *set = set_of(ac);

    conn_release(ac);
    pthread_mutex_lock(&set->lock);
    idle_link(set, ac);
    pthread_mutex_unlock(&set->lock);
    if (set->ops->watch_fd(set->owner, rec_fd(ac), deadline,
                           on_idle_ready, ac) == QT_OK)
        return;
    idle_unlink_locked(set, ac);
    conn_close(ac);
}

/* A coroutine per request burst: serve until idle or done. */
static void conn_serve(void *arg)
{
    qt_async_conn *ac = arg;
    qt_async_set *set = set_of(ac);
    qt_conn *c = conn_resume(ac);
    int rc = QT_CONN_CLOSE;
    unsigned slot = set->ops->slot_take(set->owner);

    c->scoreboard_slot = qt_sb_slot_at(set->sb, set->proc, slot);
    if (!ac->handshaken) {
        ac->handshaken = true;
        if (c->transport->handshake && c->transport->handshake(c) != QT_OK)
            goto done;
    }
    rc = qt_conn_serve(c);
done:
    set->ops->slot_give_back(set->owner, slot);
    c->scoreboard_slot = set->slot;
    atomic_fetch_add_explicit(&set->served, 1, memory_order_relaxed);
    set->ops->served(set->owner, atomic_fetch_sub(&set->active, 1));
    if (rc == QT_CONN_IDLE && !atomic_load(&set->stopping))
        conn_idle(ac, qt_conn_idle_deadline(c));
    else
        conn_close(ac);                 /* in the coroutine: lingering may wait */
}

bool qt_async_accepted(qt_async_set *set, int fd, const qt_listener *l,
                       const struct sockaddr_storage *peer, socklen_t len)
{
    qt_conn *c = qt_conn_create(set->cfg, fd, l, (const struct sockaddr *)peer, len);
    qt_async_conn *ac;
    unsigned long n;

    pthread_mutex_lock(&set->lock);
    ac = rec_alloc(set);
    pthread_mutex_unlock(&set->lock);
    ac->u.c = c;
    c->mpm_data = ac;
    c->scoreboard_slot = set->slot;
    n = atomic_fetch_add(&set->accepted, 1) + 1;
    atomic_fetch_add(&set->slot->connections, 1);
    if (set->ops->fd_register(set->owner, fd) != QT_OK)
        conn_close(ac);
    else    /* no stack until the client speaks: a silent client costs an fd */
        conn_idle(ac, qt_conn_idle_deadline(c));
    return set->max_conns && n >= set->max_conns;
}

bool qt_async_shed_idle(qt_async_set *set)
{
    qt_async_conn *victim = NULL;

    pthread_mutex_lock(&set->lock);
    for (qt_async_conn *ac = set->idle_head; ac && !victim; ac = ac->next)
        if (rec_requests(ac) > 0 && set->ops->unwatch_fd(set->owner, rec_fd(ac))) {
            idle_unlink(set, ac);
            victim = ac;
        }
    pthread_mutex_unlock(&set->lock);
    if (victim)
        conn_close(victim);
    return victim != NULL;
}

void qt_async_accept_failed(qt_async_set *set, int err, const char *tag,
                            const char *oom_id, const char *fail_id)
{
    switch (err) {
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
        return;                         /* the client left already */
    case EMFILE:
    case ENFILE:
        if (qt_async_shed_idle(set))
            return;
        /* fall through */
    case ENOBUFS:
    case ENOMEM:
        qt_log(QT_LOG_ERR, tag, oom_id,
               "(%d)%s: accept: out of resources, pausing", err, strerror(err));
        set->ops->sleep_ms(100);
        return;
    default:
        qt_log(QT_LOG_ERR, tag, fail_id, "(%d)%s: accept failed",
               err, strerror(err));
        set->ops->sleep_ms(100);        /* never spin on a persistent error */
    }
}

bool qt_async_begin_stop(qt_async_set *set)
{
    return !atomic_exchange(&set->stopping, true);
}

void qt_async_drop_idle(qt_async_set *set)
{
    qt_async_conn *closing = NULL;

    pthread_mutex_lock(&set->lock);
    for (qt_async_conn *ac = set->idle_head, *next; ac; ac = next) {
        next = ac->next;
        /* A client that has not spoken yet is still owed a response (it
         * ends at its Timeout at the latest); a watch that fires right now
         * is the callback's to handle. */
        if (rec_requests(ac) == 0 || !set->ops->unwatch_fd(set->owner, rec_fd(ac)))
            continue;
        idle_unlink(set, ac);
        ac->next = closing;
        closing = ac;
    }
    pthread_mutex_unlock(&set->lock);
    while (closing) {
        qt_async_conn *ac = closing;

        closing = ac->next;
        conn_close(ac);
    }
}

bool qt_async_trim_due(qt_async_set *set, qt_async_trim *t)
{
    unsigned long now = atomic_load(&set->accepted) + atomic_load(&set->served);
    bool quiet = now == t->last;

    t->last = now;
    if (!quiet || now == t->trimmed || atomic_load(&set->stopping) ||
        atomic_load(&set->active) > 0)
        return false;
    t->trimmed = now;
    return true;
}
