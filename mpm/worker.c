/*
 * worker: child processes of pooled threads, Apache's worker layout.
 *
 * Each child runs one listener thread and a fixed pool of ThreadsPerChild
 * worker threads, all created when the child starts and reused until it
 * exits.  The listener accepts only while some worker is idle, and hands
 * the socket over through a small FIFO; a worker serves that one
 * connection to the end, keep-alive waits included, blocking in poll().
 * So a waiting request (a slow backend, a keep-alive client) costs a whole
 * thread: cheaper than prefork's process, dearer than event's coroutine.
 *
 * The child's main thread serves nothing: it owns the signals and waits
 * for a reason to stop (SIGUSR1, a new generation, MaxConnectionsPerChild,
 * or the master's death), then stops the listener and lets the workers
 * finish the connections they hold.
 *
 * The master manages processes like prefork but counts idle *threads*
 * (scoreboard slots) against MinSpareThreads / MaxSpareThreads; the loop
 * itself is mpm/supervisor.c.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* accept4, pipe2, ppoll */
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "supervisor.h"

#define TAG "mpm_worker"
#define CHILD_TICK_SECONDS 1      /* the main thread re-checks the generation */
#define MAX_THREAD_LIMIT 20000
#define MAX_SERVER_LIMIT 20000

extern const qt_module mpm_worker_module;

static const qt_mpm_conf worker_defaults = {
    .start_servers = 3,
    .server_limit = 16,
    .threads_per_child = 25,
    .thread_limit = 64,
    .max_request_workers = 400,
    .min_spare_threads = 75,
    .max_spare_threads = 250,
    .max_connections_per_child = 0,
    .graceful_shutdown_timeout = 0,
};

/* ------------------------------------------------------------ config */

static void *worker_create_server_conf(qt_pool *p)
{
    qt_mpm_conf *k = qt_pcalloc(p, sizeof *k);

    *k = worker_defaults;
    return k;
}

static void clamp_threads(qt_mpm_conf *k)
{
    if (k->thread_limit > MAX_THREAD_LIMIT) {
        qt_log(QT_LOG_WARN, TAG, "QT0230", "ThreadLimit of %d exceeds the compile-time "
               "limit of %d, decreasing to match", k->thread_limit, MAX_THREAD_LIMIT);
        k->thread_limit = MAX_THREAD_LIMIT;
    }
    if (k->threads_per_child > k->thread_limit) {
        qt_log(QT_LOG_WARN, TAG, "QT0231", "ThreadsPerChild of %d exceeds ThreadLimit "
               "of %d, decreasing to match", k->threads_per_child, k->thread_limit);
        k->threads_per_child = k->thread_limit;
    }
    if (k->server_limit > MAX_SERVER_LIMIT)
        k->server_limit = MAX_SERVER_LIMIT;
}

/* Apache's check_config for worker: fix impossible combinations, warn. */
static void clamp_knobs(qt_mpm_conf *k)
{
    int tpc;

    clamp_threads(k);
    tpc = k->threads_per_child;
    if (k->max_request_workers < tpc)
        k->max_request_workers = tpc;
    if (k->max_request_workers > k->server_limit * tpc) {
        qt_log(QT_LOG_WARN, TAG, "QT0232", "MaxRequestWorkers of %d would require %d "
               "servers and would exceed ServerLimit of %d, decreasing to %d",
               k->max_request_workers, k->max_request_workers / tpc, k->server_limit,
               k->server_limit * tpc);
        k->max_request_workers = k->server_limit * tpc;
    }
    if (k->max_request_workers % tpc) {
        qt_log(QT_LOG_WARN, TAG, "QT0233", "MaxRequestWorkers of %d is not an integer "
               "multiple of ThreadsPerChild of %d, decreasing to nearest multiple %d",
               k->max_request_workers, tpc, k->max_request_workers / tpc * tpc);
        k->max_request_workers = k->max_request_workers / tpc * tpc;
    }
    if (k->min_spare_threads < 1)
        k->min_spare_threads = 1;
    if (k->max_spare_threads < k->min_spare_threads + tpc)
        k->max_spare_threads = k->min_spare_threads + tpc;
    if (k->start_servers > k->max_request_workers / tpc)
        k->start_servers = k->max_request_workers / tpc;
}

static int worker_post_config(qt_config *cfg, char *err, size_t errlen)
{
    qt_mpm_conf *k = qt_mpm_module_knobs(cfg, &mpm_worker_module);

    (void)err;
    (void)errlen;
    if (k)
        clamp_knobs(k);
    return QT_OK;
}

/* ------------------------------------------------- the connection queue */

typedef struct pending {
    int fd;
    const qt_listener *l;
    struct sockaddr_storage peer;
    socklen_t len;
} pending;

/* Accepted connections on their way from the listener to a worker. */
typedef struct wqueue {
    pthread_mutex_t lock;
    pthread_cond_t nonempty;      /* workers wait here */
    pthread_cond_t idler;         /* the listener waits for an idle worker */
    pending *ring;
    unsigned cap, head, count;
    unsigned idle;                /* workers waiting for a connection */
    bool stop_accepting;          /* the listener must return */
    bool closing;                 /* workers exit once the queue is empty */
} wqueue;

static void queue_init(wqueue *q, unsigned cap)
{
    memset(q, 0, sizeof *q);
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->nonempty, NULL);
    pthread_cond_init(&q->idler, NULL);
    q->ring = qt_xcalloc(cap, sizeof *q->ring);
    q->cap = cap;
}

static void queue_destroy(wqueue *q)
{
    pthread_cond_destroy(&q->idler);
    pthread_cond_destroy(&q->nonempty);
    pthread_mutex_destroy(&q->lock);
    free(q->ring);
}

/* Blocks until a worker is free to take one more connection. */
static bool queue_wait_idler(wqueue *q)
{
    bool ok;

    pthread_mutex_lock(&q->lock);
    while (q->idle <= q->count && !q->stop_accepting)
        pthread_cond_wait(&q->idler, &q->lock);
    ok = !q->stop_accepting;
    pthread_mutex_unlock(&q->lock);
    return ok;
}

static bool queue_push(wqueue *q, const pending *p)
{
    bool ok;

    pthread_mutex_lock(&q->lock);
    ok = q->count < q->cap;
    if (ok) {
        q->ring[(q->head + q->count++) % q->cap] = *p;
        pthread_cond_signal(&q->nonempty);
    }
    pthread_mutex_unlock(&q->lock);
    return ok;
}

/* Waits for a connection; false when the child is closing and none is left. */
static bool queue_pop(wqueue *q, qt_sb_slot *slot, pending *out)
{
    bool got;

    pthread_mutex_lock(&q->lock);
    q->idle++;
    qt_sb_set_state(slot, QT_SB_READY);
    pthread_cond_signal(&q->idler);
    while (q->count == 0 && !q->closing)
        pthread_cond_wait(&q->nonempty, &q->lock);
    got = q->count > 0;
    if (got) {
        *out = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    q->idle--;
    pthread_mutex_unlock(&q->lock);
    return got;
}

static void queue_set(wqueue *q, bool *flag)
{
    pthread_mutex_lock(&q->lock);
    *flag = true;
    pthread_cond_broadcast(&q->idler);
    pthread_cond_broadcast(&q->nonempty);
    pthread_mutex_unlock(&q->lock);
}

/* ------------------------------------------------------------- child */

typedef struct wchild wchild;

typedef struct wthread {
    wchild *ch;
    qt_sb_slot *slot;
    pthread_t tid;
    bool started;
} wthread;

struct wchild {
    const qt_config *cfg;
    qt_scoreboard *sb;
    unsigned proc;
    unsigned generation;
    bool one_process;
    int death_fd;                 /* -1 with -X */
    unsigned max_conns;           /* 0: unlimited */
    wqueue q;
    int wake[2];                  /* main -> listener: stop accepting */
    int done[2];                  /* listener -> main: MaxConnectionsPerChild */
    volatile sig_atomic_t quit;   /* workers: no more keep-alive requests */
    volatile sig_atomic_t *stop;  /* the stop signal's flag */
    pthread_t listener;
    bool listener_started;
    int nthreads;
    wthread *threads;
};

static void *worker_main(void *arg)
{
    wthread *w = arg;
    pending p;

    while (queue_pop(&w->ch->q, w->slot, &p)) {
        qt_conn *c;

        atomic_fetch_add(&w->slot->connections, 1);
        c = qt_conn_create(w->ch->cfg, p.fd, p.l, (const struct sockaddr *)&p.peer, p.len);
        c->scoreboard_slot = w->slot;
        qt_conn_run(c, &w->ch->quit, NULL);
    }
    qt_sb_set_state(w->slot, QT_SB_DEAD);
    return NULL;
}

static void accept_failed(int err)
{
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR ||
        err == ECONNABORTED || err == EPROTO)
        return;                    /* another child won, or the client left */
    qt_log(QT_LOG_ERR, TAG, "QT0210", "(%d)%s: accept failed", err, strerror(err));
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
        qt_poll_sleep_ms(100);     /* let connections finish before retrying */
}

/* Accepts one connection from l for the queue; false when the child is full. */
static bool accept_one(wchild *ch, const qt_listener *l, unsigned long *accepted)
{
    pending p = { .l = l, .len = sizeof p.peer };

    p.fd = accept4(l->fd, (struct sockaddr *)&p.peer, &p.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (p.fd < 0) {
        accept_failed(errno);
        return true;
    }
    if (!queue_push(&ch->q, &p))
        close(p.fd);               /* cannot happen: we wait for an idler first */
    ++*accepted;
    return !(ch->max_conns && *accepted >= ch->max_conns);
}

static size_t listener_pollset(const wchild *ch, struct pollfd **pfd,
                               const qt_listener ***ls)
{
    size_t n = 0;

    for (const qt_listener *l = ch->cfg->listeners; l; l = l->next)
        n++;
    *pfd = qt_xcalloc(n + 1, sizeof **pfd);
    *ls = qt_xcalloc(n + 1, sizeof **ls);
    n = 0;
    for (const qt_listener *l = ch->cfg->listeners; l; l = l->next)
        if (l->fd >= 0) {
            (*ls)[n] = l;
            (*pfd)[n++] = (struct pollfd){ .fd = l->fd, .events = POLLIN };
        }
    (*pfd)[n] = (struct pollfd){ .fd = ch->wake[0], .events = POLLIN };
    return n;
}

/*
 * The listener: all children wait on the same non-blocking sockets, with
 * EPOLLEXCLUSIVE (qt_accept_set), so a connection wakes one listener; one
 * that loses a race sees EAGAIN.  It accepts only while a worker
 * is idle, so a connection never waits in our queue behind a busy thread
 * when another child could take it.
 */
static void *listener_main(void *arg)
{
    wchild *ch = arg;
    struct pollfd *pfd;
    const qt_listener **ls;
    size_t n = listener_pollset(ch, &pfd, &ls), next = 0;
    int ep = qt_accept_set(pfd, n + 1, n);
    unsigned long accepted = 0;
    bool more = true;

    while (more && queue_wait_idler(&ch->q)) {
        if (qt_accept_wait(ep, pfd, n + 1, -1, NULL) <= 0)
            continue;
        if (pfd[n].revents)
            break;                 /* told to stop */
        for (size_t k = 0; k < n && more; k++) {
            size_t i = (next + k) % n;
            if (pfd[i].revents & POLLIN) {
                more = accept_one(ch, ls[i], &accepted);
                next = i + 1;
                break;
            }
        }
    }
    if (!more && write(ch->done[1], "x", 1) < 0) {
        /* The main thread's tick notices the flag below anyway. */
    }
    if (ep >= 0)
        close(ep);
    /* Our copies go now: the kernel stops queueing for us once all are closed. */
    for (size_t i = 0; i < n; i++)
        close(pfd[i].fd);
    free(ls);
    free(pfd);
    return NULL;
}

static bool start_threads(wchild *ch)
{
    sigset_t all, old;
    bool ok = true;

    /*
     * Threads are born with every signal blocked but SIGCHLD: the main
     * thread takes them.  SIGCHLD is SIG_DFL (ignored) in a child, and the
     * kernel drops a CGI script's exit signal at once only if the thread
     * that spawned the script does not block it; blocked there, it would
     * be queued for the process and wake the main thread once per script.
     */
    sigfillset(&all);
    sigdelset(&all, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int i = 0; i < ch->nthreads && ok; i++) {
        wthread *w = &ch->threads[i];
        ok = pthread_create(&w->tid, NULL, worker_main, w) == 0;
        w->started = ok;
    }
    if (ok)
        ok = pthread_create(&ch->listener, NULL, listener_main, ch) == 0;
    ch->listener_started = ok;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!ok)
        qt_log(QT_LOG_ALERT, TAG, "QT0234", "(%d)%s: unable to create a thread",
               errno, strerror(errno));
    return ok;
}

/* Stops accepting, then lets every worker finish what it holds. */
static void stop_threads(wchild *ch)
{
    ch->quit = 1;
    queue_set(&ch->q, &ch->q.stop_accepting);
    if (write(ch->wake[1], "x", 1) < 0) {
        /* A full pipe already wakes the listener. */
    }
    if (ch->listener_started)
        pthread_join(ch->listener, NULL);
    queue_set(&ch->q, &ch->q.closing);
    for (int i = 0; i < ch->nthreads; i++)
        if (ch->threads[i].started)
            pthread_join(ch->threads[i].tid, NULL);
}

static bool child_should_exit(const wchild *ch)
{
    if (*ch->stop)
        return true;
    return !ch->one_process &&
           atomic_load(&ch->sb->running_generation) != ch->generation;
}

/* The main thread: waits, with the stop signals open only inside ppoll(). */
static void child_wait(wchild *ch)
{
    struct pollfd pfd[2] = {
        { .fd = ch->done[0], .events = POLLIN },
        { .fd = ch->death_fd, .events = POLLIN },
    };
    const struct timespec tick = { CHILD_TICK_SECONDS, 0 };
    sigset_t stop_set, open_mask;

    qt_child_stop_signals(&stop_set, ch->one_process);
    sigprocmask(SIG_BLOCK, &stop_set, &open_mask);
    while (!child_should_exit(ch)) {
        if (ppoll(pfd, ch->death_fd >= 0 ? 2 : 1, &tick, &open_mask) <= 0)
            continue;
        if (pfd[0].revents || pfd[1].revents)
            break;                 /* recycled, or the master is gone */
    }
    sigprocmask(SIG_SETMASK, &open_mask, NULL);
}

/* Threads a child runs: ThreadsPerChild, within the scoreboard's row. */
static int threads_per_child(const qt_supervisor *sv)
{
    int tpc = sv->conf->threads_per_child;

    return tpc < (int)sv->sb->nslots ? tpc : (int)sv->sb->nslots;
}

static void child_setup(wchild *ch, const qt_supervisor *sv, unsigned proc,
                        bool one_process)
{
    memset(ch, 0, sizeof *ch);
    ch->cfg = sv->rt->cfg;
    ch->sb = sv->sb;
    ch->proc = proc;
    ch->generation = atomic_load(&sv->sb->procs[proc].generation);
    ch->one_process = one_process;
    ch->death_fd = sv->death_pipe[0];
    ch->max_conns = one_process ? 0 : (unsigned)sv->conf->max_connections_per_child;
    ch->stop = qt_child_stop_flag();
    ch->nthreads = threads_per_child(sv);
    ch->threads = qt_xcalloc((size_t)ch->nthreads, sizeof *ch->threads);
    for (int i = 0; i < ch->nthreads; i++) {
        ch->threads[i].ch = ch;
        ch->threads[i].slot = qt_sb_slot_at(sv->sb, proc, (unsigned)i);
    }
    queue_init(&ch->q, (unsigned)ch->nthreads + 1);
    if (pipe2(ch->wake, O_CLOEXEC) < 0 || pipe2(ch->done, O_CLOEXEC) < 0) {
        qt_log(QT_LOG_ALERT, TAG, "QT0235", "(%d)%s: cannot create the child's pipes",
               errno, strerror(errno));
        _exit(QT_EXIT_CHILDSICK);
    }
}

/* Runs a set-up child to its end; returns its exit status. */
static int child_serve(wchild *ch)
{
    int rc = 0;

    if (!start_threads(ch))
        rc = QT_EXIT_CHILDSICK;
    else
        child_wait(ch);
    for (int i = 0; i < ch->nthreads; i++)
        if (atomic_load(&ch->threads[i].slot->state) == QT_SB_READY)
            qt_sb_set_state(ch->threads[i].slot, QT_SB_GRACEFUL);
    stop_threads(ch);
    queue_destroy(&ch->q);
    free(ch->threads);
    return rc;
}
static int child_run(qt_supervisor *sv, unsigned proc, bool one_process)
{
    wchild ch;

    child_setup(&ch, sv, proc, one_process);
    return child_serve(&ch);
}

/* ------------------------------------------------------------ master */

static unsigned slots(const qt_supervisor *sv)
{
    return (unsigned)sv->conf->thread_limit;
}

static void mark_starting(qt_supervisor *sv, unsigned proc)
{
    for (unsigned i = 0; i < sv->sb->nslots; i++)
        qt_sb_set_state(qt_sb_slot_at(sv->sb, proc, i),
                        (int)i < threads_per_child(sv) ? QT_SB_STARTING : QT_SB_DEAD);
}

static bool is_active(const qt_supervisor *sv, unsigned i)
{
    const qt_sb_process *p = &sv->sb->procs[i];

    return atomic_load(&p->pid) > 0 && !atomic_load(&p->quiescing) &&
           atomic_load(&p->generation) == atomic_load(&sv->sb->running_generation);
}

/* A free row for a new child, unless MaxRequestWorkers is reached. */
static int free_row(const qt_supervisor *sv)
{
    int active = 0, row = -1;
    int max_procs = sv->conf->max_request_workers / threads_per_child(sv);

    for (unsigned i = 0; i < sv->sb->nprocs; i++) {
        if (is_active(sv, i))
            active++;
        else if (row < 0 && atomic_load(&sv->sb->procs[i].pid) == 0)
            row = (int)i;
    }
    return active < max_procs ? row : -1;
}

/* Idle threads of active children (starting ones count: they soon will be). */
static int count_idle(const qt_supervisor *sv, int *last)
{
    int idle = 0, tpc = threads_per_child(sv);

    *last = -1;
    for (unsigned i = 0; i < sv->sb->nprocs; i++) {
        if (!is_active(sv, i))
            continue;
        for (int t = 0; t < tpc; t++) {
            int state = atomic_load(&qt_sb_slot_at(sv->sb, i, (unsigned)t)->state);
            idle += state == QT_SB_READY || state == QT_SB_STARTING;
        }
        *last = (int)i;
    }
    return idle;
}

static void log_busy(const qt_supervisor *sv, int idle)
{
    qt_log(QT_LOG_INFO, TAG, "QT0222", "server seems busy (you may need to increase "
           "StartServers, ThreadsPerChild or Min/MaxSpareThreads), spawning %d "
           "children, there are around %d idle threads, and %u total children",
           sv->spawn_rate, idle, qt_sb_live(sv->sb));
}

static void configure(qt_supervisor *sv)
{
    const qt_mpm_conf *k = sv->conf;

    if ((unsigned)k->server_limit != sv->sb->nprocs ||
        (unsigned)k->thread_limit != sv->sb->nslots)
        qt_log(QT_LOG_WARN, TAG, "QT0223", "changing ServerLimit or ThreadLimit is not "
               "allowed during restart; keeping %u and %u (stop and start the server "
               "to change them)", sv->sb->nprocs, sv->sb->nslots);
    sv->min_spare = k->min_spare_threads;
    sv->max_spare = k->max_spare_threads;
}

static void populate(qt_supervisor *sv)
{
    qt_supervisor_spawn_up_to(sv, sv->conf->start_servers);
}

static const qt_supervisor_ops worker_ops = {
    .tag = TAG,
    .fork_failed_id = "QT0220",
    .death_pipe_id = "QT0224",
    .defaults = &worker_defaults,
    .slots = slots,
    .serve = child_run,
    .mark_starting = mark_starting,
    .configure = configure,
    .populate = populate,
    .reaped = qt_supervisor_replace_lost,
    .upkeep = qt_supervisor_keep_spares,
    .free_row = free_row,
    .count_idle = count_idle,
    .log_busy = log_busy,
};

static int worker_run(qt_runtime *rt)
{
    return qt_supervisor_run(&worker_ops, rt, NULL);
}

/* ------------------------------------------------------------ module */

static const qt_directive worker_directives[] = {
    QT_MPM_DIRECTIVE("StartServers", "number of child processes created at startup (3)"),
    QT_MPM_DIRECTIVE("ServerLimit", "maximum number of child processes; fixed until a full restart (16)"),
    QT_MPM_DIRECTIVE("ThreadsPerChild", "worker threads in each child process (25)"),
    QT_MPM_DIRECTIVE("ThreadLimit", "upper limit on ThreadsPerChild; fixed until a full restart (64)"),
    QT_MPM_DIRECTIVE("MaxRequestWorkers", "maximum number of simultaneous connections (400)"),
    QT_MPM_DIRECTIVE("MaxClients", "old name of MaxRequestWorkers"),
    QT_MPM_DIRECTIVE("MinSpareThreads", "minimum number of idle threads, over all children (75)"),
    QT_MPM_DIRECTIVE("MaxSpareThreads", "maximum number of idle threads, over all children (250)"),
    QT_MPM_DIRECTIVE("MaxConnectionsPerChild", "connections a child serves before it exits; 0 = no limit"),
    QT_MPM_DIRECTIVE("MaxRequestsPerChild", "old name of MaxConnectionsPerChild"),
    QT_MPM_DIRECTIVE("GracefulShutdownTimeout", "seconds a graceful stop waits for children; 0 = forever"),
    { 0 },
};

static const qt_mpm worker_mpm = {
    .name = "worker",
    .flags = QT_MPM_FORKED | QT_MPM_THREADED,
    .run = worker_run,
    .wait_fd = qt_poll_wait_fd,
    .sleep_ms = qt_poll_sleep_ms,
};

const qt_module mpm_worker_module = {
    QT_MODULE_HEADER("mpm_worker_module"),
    .directives = worker_directives,
    .create_server_conf = worker_create_server_conf,
    .post_config = worker_post_config,
    .mpm = &worker_mpm,
};
