/*
 * Connection life cycle of the coroutine MPMs (see async_conn.h).
 */
#include <errno.h>
#include <string.h>

#include "async_conn.h"
#include "log.h"

/* What the MPM keeps per connection (c->mpm_data, in c->pool). */
struct qt_async_conn {
    qt_conn *c;
    qt_async_set *set;
    struct qt_async_conn *prev, *next;  /* idle list, oldest first */
    bool idle;
    bool handshaken;
};

static void conn_serve(void *arg);

void qt_async_set_init(qt_async_set *set, const qt_async_ops *ops, void *owner)
{
    set->ops = ops;
    set->owner = owner;
    set->idle_head = set->idle_tail = NULL;
    atomic_init(&set->active, 0);
    atomic_init(&set->accepted, 0);
    atomic_init(&set->stopping, false);
    pthread_mutex_init(&set->lock, NULL);
}

void qt_async_set_destroy(qt_async_set *set)
{
    pthread_mutex_destroy(&set->lock);
}

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

/* Frees the connection (ac lives in its pool); it is off the idle list. */
static void conn_close(qt_async_conn *ac)
{
    qt_async_set *set = ac->set;

    set->ops->fd_forget(set->owner, ac->c->fd);
    qt_conn_close(ac->c);
}

/* On the runtime's own stack: the idle fd became readable, or its time
 * is up.  Counted active before the spawn: under hybrid the coroutine may
 * finish on another worker before mt_spawn() returns. */
static void on_idle_ready(int fd, int result, void *arg)
{
    qt_async_conn *ac = arg;
    qt_async_set *set = ac->set;

    (void)fd;
    idle_unlink_locked(set, ac);
    atomic_fetch_add(&set->active, 1);
    if (result != QT_OK || !set->ops->spawn(set->owner, conn_serve, ac)) {
        atomic_fetch_sub(&set->active, 1);
        conn_close(ac);                 /* idle: nothing to linger for */
    }
}

/* Parks the bare fd until the next request (or KeepAliveTimeout). */
static void conn_idle(qt_async_conn *ac)
{
    qt_async_set *set = ac->set;

    pthread_mutex_lock(&set->lock);
    idle_link(set, ac);
    pthread_mutex_unlock(&set->lock);
    if (set->ops->watch_fd(set->owner, ac->c->fd, qt_conn_idle_deadline(ac->c),
                           on_idle_ready, ac) == QT_OK)
        return;
    idle_unlink_locked(set, ac);
    conn_close(ac);
}

/* A coroutine per request burst: serve until idle or done. */
static void conn_serve(void *arg)
{
    qt_async_conn *ac = arg;
    qt_async_set *set = ac->set;
    qt_conn *c = ac->c;
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
    set->ops->served(set->owner, atomic_fetch_sub(&set->active, 1));
    if (rc == QT_CONN_IDLE && !atomic_load(&set->stopping))
        conn_idle(ac);
    else
        conn_close(ac);                 /* in the coroutine: lingering may wait */
}

bool qt_async_accepted(qt_async_set *set, int fd, const qt_listener *l,
                       const struct sockaddr_storage *peer, socklen_t len)
{
    qt_conn *c = qt_conn_create(set->cfg, fd, l, (const struct sockaddr *)peer, len);
    qt_async_conn *ac = qt_pcalloc(c->pool, sizeof *ac);
    unsigned long n;

    ac->c = c;
    ac->set = set;
    c->mpm_data = ac;
    c->scoreboard_slot = set->slot;
    n = atomic_fetch_add(&set->accepted, 1) + 1;
    atomic_fetch_add(&set->slot->connections, 1);
    if (set->ops->fd_register(set->owner, fd) != QT_OK)
        conn_close(ac);
    else
        conn_idle(ac);    /* no stack until the client speaks: a silent client costs an fd */
    return set->max_conns && n >= set->max_conns;
}

bool qt_async_shed_idle(qt_async_set *set)
{
    qt_async_conn *victim = NULL;

    pthread_mutex_lock(&set->lock);
    for (qt_async_conn *ac = set->idle_head; ac && !victim; ac = ac->next)
        if (ac->c->requests > 0 && set->ops->unwatch_fd(set->owner, ac->c->fd)) {
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
        if (ac->c->requests == 0 || !set->ops->unwatch_fd(set->owner, ac->c->fd))
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
