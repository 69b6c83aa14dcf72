/*
 * The connection life cycle shared by the coroutine MPMs (event, hybrid):
 * a connection holds a coroutine only while a request is in progress and
 * is a bare watched fd in between, on an idle list (oldest first) that
 * out-of-fd shedding and a graceful stop walk.  While idle, a plain TCP
 * connection is only a small record (conn.h's qt_conn_idle and the list
 * links, about 100 bytes, packed in slabs): its qt_conn, pool and buffers
 * are rebuilt when the client speaks again.  The MPM supplies its
 * runtime (mpm/coro/coro.h or mpm/coro/mt_sched.h) through qt_async_ops
 * and keeps its acceptors, scoreboard slot policy and stop sequence.
 *
 * Every function is safe from any worker thread: the counters are atomics
 * and the idle list has a mutex (uncontended under event's single thread).
 * No lock is held across a wait or a runtime call that may run a callback.
 */
#ifndef QT_MPM_ASYNC_CONN_H
#define QT_MPM_ASYNC_CONN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conn.h"
#include "scoreboard.h"

typedef void qt_async_watch_fn(int fd, int result, void *arg);

/* The runtime calls; owner is qt_async_set.owner (the MPM's child). */
typedef struct qt_async_ops {
    /* Starts fn(arg) as a coroutine; false if it could not. */
    bool (*spawn)(void *owner, void (*fn)(void *), void *arg);
    /* Registers a fresh connection's fd with the poller (no flags). */
    int (*fd_register)(void *owner, int fd);
    int (*watch_fd)(void *owner, int fd, int64_t deadline_ms,
                    qt_async_watch_fn *fn, void *arg);
    /* Cancels fd's watch; false when its callback already fired. */
    bool (*unwatch_fd)(void *owner, int fd);
    /* Undoes fd_register (and any watch); before close(fd). */
    void (*fd_forget)(void *owner, int fd);
    /* A scoreboard slot of the row for a serving coroutine; 0 = shared. */
    unsigned (*slot_take)(void *owner);
    void (*slot_give_back)(void *owner, unsigned slot);
    /* A served connection let go of its coroutine; was = active before. */
    void (*served)(void *owner, unsigned was);
    /* Parks the running coroutine (coro_sleep_ms / mt_sleep_ms). */
    void (*sleep_ms)(int64_t ms);
} qt_async_ops;

typedef struct qt_async_conn qt_async_conn;
typedef struct qt_async_slab qt_async_slab;

/* The connections of one child (embedded in the MPM's child struct). */
typedef struct qt_async_set {
    const qt_async_ops *ops;
    void *owner;
    const qt_config *cfg;
    qt_scoreboard *sb;
    unsigned proc;                /* row on the scoreboard */
    qt_sb_slot *slot;             /* the row's first slot (process state) */
    unsigned max_active;
    unsigned long max_conns;      /* MaxConnectionsPerChild, 0: none */
    _Atomic unsigned active;      /* connections holding a coroutine */
    _Atomic unsigned long accepted;
    _Atomic unsigned long served; /* serving coroutines finished */
    _Atomic bool stopping;
    pthread_mutex_t lock;         /* the idle list and the slabs */
    qt_async_conn *idle_head, *idle_tail;
    qt_async_slab *partial;       /* slabs with a free record */
    qt_async_slab *full;
    qt_async_slab *spare;         /* an empty one, against alloc/free churn */
} qt_async_set;

void qt_async_set_init(qt_async_set *set, const qt_async_ops *ops, void *owner);
void qt_async_set_destroy(qt_async_set *set);

/*
 * Takes a freshly accepted socket: the connection waits, without a
 * coroutine, until the client speaks.  True when this connection reached
 * MaxConnectionsPerChild (the caller then stops the child).
 */
bool qt_async_accepted(qt_async_set *set, int fd, const qt_listener *l,
                       const struct sockaddr_storage *peer, socklen_t len);

/* Out of descriptors: closes the oldest idle keep-alive connection. */
bool qt_async_shed_idle(qt_async_set *set);

/*
 * accept() failed with err: ignores what the client caused, sheds an idle
 * connection when out of descriptors, else logs (under the MPM's tag, with
 * its message ids for out-of-resources and other errors) and pauses.
 */
void qt_async_accept_failed(qt_async_set *set, int err, const char *tag,
                            const char *oom_id, const char *fail_id);

/* Marks the set stopping; false if it already was. */
bool qt_async_begin_stop(qt_async_set *set);

/* Graceful stop: closes the idle keep-alive connections (not the ones
 * that have not spoken yet: they are still owed a response). */
void qt_async_drop_idle(qt_async_set *set);

/*
 * The MPM's trimmer asks every period whether a burst is over: activity
 * since the last trim, none during the last period and nothing in flight.
 * True once per burst; the MPM then gives its stack caches and malloc's
 * free pages back.  Never under steady load, where the next requests
 * would only fault the pages in again.  One caller per set.
 */
typedef struct qt_async_trim {
    unsigned long last;           /* activity count at the previous call */
    unsigned long trimmed;        /* ... at the last trim */
} qt_async_trim;

bool qt_async_trim_due(qt_async_set *set, qt_async_trim *t);

#endif
