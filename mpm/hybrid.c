/*
 * hybrid: the M:N MPM.  ONE child process runs Threads worker threads (by
 * default one per online CPU) and multiplexes every connection's
 * coroutine onto them with the multi-thread runtime of mpm/coro/mt_sched.h
 * (Go's G/M/P and Tokio's multi-thread scheduler, written down there): a
 * bounded ring per worker plus a next slot, a global inject queue, work
 * stealing, one shared epoll netpoller, a timer heap, a blocking pool for
 * qt_run_blocking() and a monitor that rescues the queue of a worker stuck
 * in a CPU-heavy handler.  Waiting costs a parked coroutine, as under
 * event; CPU work spreads over every core, unlike event; a request may
 * start on one thread and finish on another.
 *
 * A connection holds a coroutine (a stack) only while a request is in
 * progress.  Between requests it is a bare fd watched by the netpoller
 * (mt_watch_fd), so idle keep-alive clients cost a descriptor and a few
 * hundred bytes.  After a burst a trimmer coroutine gives the stack
 * caches and malloc's free pages back (event's policy, async_conn.h).
 *
 * Directives (Apache names where they exist):
 *   Threads (online CPUs)    worker threads of the child (1 to 64).
 *   MaxRequestWorkers (400)  connections being served (holding a
 *                            coroutine) at once; idle ones not counted.
 *   MaxConnectionsPerChild (0), GracefulShutdownTimeout (0): as in Apache.
 *   ThreadStackSize (65536)  bytes of each coroutine's stack.
 *   StartServers, ServerLimit, ThreadsPerChild, ThreadLimit,
 *   Min/MaxSpareThreads      accepted, no effect: one child, no pool.
 *
 * The master is mpm/supervisor.c, as for event, with one child per
 * generation: a dead child is replaced, SIGUSR1 starts a new generation
 * and lets the old child drain, TERM stops, WINCH stops gracefully.  In the child the
 * stop signals are blocked in every thread and let through only while
 * the poller sleeps in epoll_pwait (the pselect pattern); the tick after
 * each poll acts on them.
 *
 * Shared state: the child's counters are atomics and its idle list (in
 * mpm/async_conn.c, shared with event) and free scoreboard slots have
 * mutexes, since the coroutines and watch callbacks touching them run on
 * any worker.  No lock is held across a wait.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* accept4 */
#endif
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "listen.h"
#include "log.h"
#include "mpm_common.h"
#include "process.h"
#include "status.h"
#include "supervisor.h"
#include "async_conn.h"
#include "coro/mt_sched.h"

#define TAG "mpm_hybrid"
#define PROC_ROWS 4               /* the child + generations draining */
#define ACCEPT_BURST 32
#define PAUSE_MS 50               /* re-check of the connection cap */
#define STACK_MIN_BYTES (16 * 1024)
#define STACK_MAX_BYTES (8 * 1024 * 1024)
#define SLOTS_MAX 1024
#define TRIM_PERIOD_MS 250        /* a burst is over after this long quiet */
#define TRIM_KEEP_STACKS 8        /* cached stacks kept in all after one */

extern const qt_module mpm_hybrid_module;

typedef struct hybrid_conf {
    qt_mpm_conf knobs;            /* first: qt_mpm_conf_set() writes here */
    int threads;                  /* 0: online CPUs */
    int stack_size;
} hybrid_conf;

static const hybrid_conf hybrid_defaults = {
    .knobs = {
        .start_servers = 1,
        .server_limit = PROC_ROWS,
        .threads_per_child = 25,
        .thread_limit = 64,
        .min_spare_threads = 75,
        .max_spare_threads = 250,
        .max_request_workers = 400,
    },
    .threads = 0,
    .stack_size = 64 * 1024,
};

/* ------------------------------------------------------------ config */

static void *hybrid_create_server_conf(qt_pool *p)
{
    hybrid_conf *hc = qt_pcalloc(p, sizeof *hc);

    *hc = hybrid_defaults;
    return hc;
}

static const hybrid_conf *conf_of(const qt_config *cfg)
{
    const hybrid_conf *hc = qt_mpm_server_conf(cfg);

    return hc ? hc : &hybrid_defaults;
}

static const char *set_threads(qt_cmd *cmd, int argc, char **argv)
{
    hybrid_conf *hc = cmd->srv_conf;

    (void)argc;
    return qt_mpm_int_arg(cmd, argv[0], 1, MT_MAX_WORKERS, &hc->threads);
}

static const char *set_stack_size(qt_cmd *cmd, int argc, char **argv)
{
    hybrid_conf *hc = cmd->srv_conf;

    (void)argc;
    return qt_mpm_int_arg(cmd, argv[0], STACK_MIN_BYTES, STACK_MAX_BYTES,
                          &hc->stack_size);
}

/* Scoreboard slots of the child: one per connection served at once. */
static unsigned slots_of(const hybrid_conf *hc)
{
    int n = hc->knobs.max_request_workers;

    return n < 1 ? 1 : n > SLOTS_MAX ? SLOTS_MAX : (unsigned)n;
}

/* -------------------------------------------------------------- child */

typedef struct hy_child hy_child;

typedef struct hy_listener {
    hy_child *ch;
    const qt_listener *l;
    mt_coro *acceptor;            /* under ch->lock: NULL once ending */
    _Atomic bool paused;          /* at the connection cap */
} hy_listener;

struct hy_child {
    qt_async_set conns;           /* life cycle: mpm/async_conn.h */
    const qt_config *cfg;
    qt_scoreboard *sb;
    unsigned proc;
    qt_sb_slot *slot;             /* the row's first slot (process state) */
    unsigned generation;
    bool one_process;
    mt_sched *sched;
    hy_listener *ls;
    size_t nls;
    pthread_mutex_t lock;         /* the free slots, trimmer */
    unsigned *free_slots;         /* scoreboard slots 1.. not in use */
    unsigned nfree;
    mt_coro *trimmer;             /* under lock: NULL once it is ending */
    volatile sig_atomic_t *stop_flag;
    int death_fd;
};

static void begin_stop(hy_child *ch);

/* ---------------------------------------- the runtime, for async_conn */

static bool hy_spawn(void *owner, void (*fn)(void *), void *arg)
{
    hy_child *ch = owner;

    return mt_spawn(ch->sched, fn, arg) != NULL;
}

static int hy_fd_register(void *owner, int fd)
{
    hy_child *ch = owner;

    return mt_fd_register(ch->sched, fd, 0);
}

static int hy_watch_fd(void *owner, int fd, int64_t deadline_ms,
                       qt_async_watch_fn *fn, void *arg)
{
    hy_child *ch = owner;

    return mt_watch_fd(ch->sched, fd, deadline_ms, fn, arg);
}

static bool hy_unwatch_fd(void *owner, int fd)
{
    hy_child *ch = owner;

    return mt_unwatch_fd(ch->sched, fd);
}

static void hy_fd_forget(void *owner, int fd)
{
    hy_child *ch = owner;

    mt_fd_forget(ch->sched, fd);
}

/* Each serving coroutine gets a slot of its own while slots last; the
 * others share the row's first one (as under event).  A free list under
 * a lock, not event's scan of flags: any worker may take or give back. */
static unsigned slot_take(void *owner)
{
    hy_child *ch = owner;
    unsigned i = 0;

    pthread_mutex_lock(&ch->lock);
    if (ch->nfree > 0)
        i = ch->free_slots[--ch->nfree];
    pthread_mutex_unlock(&ch->lock);
    return i;
}

static void slot_give_back(void *owner, unsigned i)
{
    hy_child *ch = owner;

    if (i == 0)
        return;
    qt_sb_set_state(qt_sb_slot_at(ch->sb, ch->proc, i), QT_SB_READY);
    pthread_mutex_lock(&ch->lock);
    ch->free_slots[ch->nfree++] = i;
    pthread_mutex_unlock(&ch->lock);
}

/*
 * Wakes the paused acceptors, or (all) every acceptor and the trimmer.
 * Under the lock, which they take to clear their pointer before they
 * end: a coroutine cannot finish, and its stack serve another, while we
 * wake it.
 */
static void wake_helpers(hy_child *ch, bool all)
{
    pthread_mutex_lock(&ch->lock);
    for (size_t i = 0; i < ch->nls; i++) {
        mt_coro *co = ch->ls[i].acceptor;

        if (co && (all || atomic_load(&ch->ls[i].paused)))
            mt_ready(co);
    }
    if (all && ch->trimmer)
        mt_ready(ch->trimmer);
    pthread_mutex_unlock(&ch->lock);
}

static void resume_acceptors(hy_child *ch)
{
    wake_helpers(ch, false);
}

/* Only the drop from the cap wakes the acceptors (see pause_accepting). */
static void on_served(void *owner, unsigned was)
{
    hy_child *ch = owner;

    if (was == ch->conns.max_active)
        resume_acceptors(ch);
}

static const qt_async_ops hy_async_ops = {
    .spawn = hy_spawn,
    .fd_register = hy_fd_register,
    .watch_fd = hy_watch_fd,
    .unwatch_fd = hy_unwatch_fd,
    .fd_forget = hy_fd_forget,
    .slot_take = slot_take,
    .slot_give_back = slot_give_back,
    .served = on_served,
    .sleep_ms = mt_sleep_ms,
};

/* ---------------------------------------------------------- accepting */

/*
 * At the cap: park until a served connection finishes.  The deadline
 * covers the race between our check and the last one finishing.
 */
static void pause_accepting(hy_listener *el)
{
    atomic_store(&el->paused, true);
    if (atomic_load(&el->ch->conns.active) >= el->ch->conns.max_active)
        mt_park_until(qt_now_ms() + PAUSE_MS);
    atomic_store(&el->paused, false);
}

static void accept_one(hy_listener *el, unsigned *burst)
{
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    int fd = accept4(el->l->fd, (struct sockaddr *)&peer, &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    int err = errno;

    if (fd >= 0) {
        if (qt_async_accepted(&el->ch->conns, fd, el->l, &peer, len))
            begin_stop(el->ch);
        if (++*burst % ACCEPT_BURST == 0)
            mt_yield();
    } else if (err == EAGAIN || err == EWOULDBLOCK) {
        mt_wait_fd(el->l->fd, POLLIN, 0);
    } else {
        qt_async_accept_failed(&el->ch->conns, err, TAG,
                               "QT0350", "QT0351");
    }
}

static void acceptor(void *arg)
{
    hy_listener *el = arg;
    hy_child *ch = el->ch;
    unsigned burst = 0;

    if (mt_fd_register(ch->sched, el->l->fd, CORO_FD_EXCLUSIVE) != QT_OK)
        qt_log(QT_LOG_ERR, TAG, "QT0352", "(%d)%s: cannot watch %s",
               errno, strerror(errno), el->l->text);
    while (!atomic_load(&ch->conns.stopping)) {
        if (atomic_load(&ch->conns.active) >= ch->conns.max_active)
            pause_accepting(el);
        else
            accept_one(el, &burst);
    }
    pthread_mutex_lock(&ch->lock);
    el->acceptor = NULL;
    pthread_mutex_unlock(&ch->lock);
    /* Our copy only: the master keeps the socket for the next child. */
    mt_fd_forget(ch->sched, el->l->fd);
    close(el->l->fd);
}

/*
 * Graceful: stop accepting, drop the idle keep-alive connections, let the
 * requests in flight finish.  mt_sched_run() returns when no coroutine
 * and no watch is left.  Any thread, any stack.
 */
static void begin_stop(hy_child *ch)
{
    if (!qt_async_begin_stop(&ch->conns))
        return;
    qt_sb_set_state(ch->slot, QT_SB_GRACEFUL);
    wake_helpers(ch, true);
    qt_async_drop_idle(&ch->conns);
    if (ch->death_fd >= 0)
        mt_unwatch_fd(ch->sched, ch->death_fd);
}
static void on_master_gone(int fd, int result, void *arg)
{
    (void)fd;
    (void)result;
    begin_stop(arg);
}

/*
 * After a burst the stack caches (per worker and shared) and malloc's
 * free lists hold resident pages nothing uses.  The policy is event's
 * (qt_async_trim_due): once a burst is over, hand them back, so idle
 * connections are all the memory pays for.  begin_stop() wakes this
 * coroutine so it ends with the child.
 */
static void trimmer(void *arg)
{
    hy_child *ch = arg;
    qt_async_trim t = { 0, 0 };

    while (!atomic_load(&ch->conns.stopping)) {
        mt_park_until(qt_now_ms() + TRIM_PERIOD_MS);
        if (qt_async_trim_due(&ch->conns, &t)) {
            mt_sched_trim(ch->sched, TRIM_KEEP_STACKS);
            malloc_trim(0);
        }
    }
    pthread_mutex_lock(&ch->lock);
    ch->trimmer = NULL;
    pthread_mutex_unlock(&ch->lock);
}

/* After every poll: a stop signal, or a newer generation. */
static void on_tick(mt_sched *s, void *arg)
{
    hy_child *ch = arg;

    (void)s;
    if (atomic_load(&ch->conns.stopping))
        return;
    if (*ch->stop_flag ||
        (!ch->one_process &&
         atomic_load(&ch->sb->running_generation) != ch->generation))
        begin_stop(ch);
}

static void child_start(void *arg)
{
    hy_child *ch = arg;

    if (ch->death_fd >= 0)
        mt_watch_fd(ch->sched, ch->death_fd, 0, on_master_gone, ch);
    /* Under the lock: neither may end before its pointer is set. */
    pthread_mutex_lock(&ch->lock);
    for (size_t i = 0; i < ch->nls; i++)
        ch->ls[i].acceptor = mt_spawn(ch->sched, acceptor, &ch->ls[i]);
    if (!atomic_load(&ch->conns.stopping))
        ch->trimmer = mt_spawn(ch->sched, trimmer, ch);
    pthread_mutex_unlock(&ch->lock);
    qt_sb_set_state(ch->slot, QT_SB_READY);
}

static void setup_listeners(hy_child *ch)
{
    size_t n = 0, i = 0;

    for (const qt_listener *l = ch->cfg->listeners; l; l = l->next)
        n += l->fd >= 0;
    ch->ls = qt_xcalloc(n ? n : 1, sizeof *ch->ls);
    for (const qt_listener *l = ch->cfg->listeners; l; l = l->next)
        if (l->fd >= 0) {
            ch->ls[i].ch = ch;
            ch->ls[i].l = l;
            i++;
        }
    ch->nls = n;
}

static int child_serve(hy_child *ch)
{
    const hybrid_conf *hc = conf_of(ch->cfg);
    sigset_t stop_set, open_mask;
    mt_opts opts = {
        .threads = (unsigned)hc->threads,
        .stack_size = (size_t)hc->stack_size,
        .tick = on_tick,
        .tick_arg = ch,
    };

    ch->conns.max_active = (unsigned)hc->knobs.max_request_workers;
    setup_listeners(ch);
    qt_mpm_raise_fd_limit();
    /* Blocked in every thread (they inherit it); let through only while
     * the poller sleeps (pselect pattern). */
    qt_child_stop_signals(&stop_set, ch->one_process);
    pthread_sigmask(SIG_BLOCK, &stop_set, &open_mask);
    opts.poll_sigmask = &open_mask;
    ch->sched = mt_sched_create(&opts);
    mt_spawn(ch->sched, child_start, ch);
    mt_sched_run(ch->sched);
    mt_sched_destroy(ch->sched);
    pthread_sigmask(SIG_SETMASK, &open_mask, NULL);
    free(ch->ls);
    return 0;
}

static int child_run(qt_supervisor *sv, unsigned proc, bool one_process)
{
    hy_child ch;
    int rc;

    memset(&ch, 0, sizeof ch);
    ch.cfg = sv->rt->cfg;
    ch.sb = sv->sb;
    ch.proc = proc;
    ch.slot = qt_sb_slot_at(sv->sb, proc, 0);
    ch.generation = atomic_load(&sv->sb->procs[proc].generation);
    ch.one_process = one_process;
    ch.death_fd = sv->death_pipe[0];
    ch.stop_flag = qt_child_stop_flag();
    qt_async_set_init(&ch.conns, &hy_async_ops, &ch);
    ch.conns.cfg = ch.cfg;
    ch.conns.sb = ch.sb;
    ch.conns.proc = proc;
    ch.conns.slot = ch.slot;
    ch.conns.max_conns = one_process ? 0 : (unsigned long)sv->conf->max_connections_per_child;
    pthread_mutex_init(&ch.lock, NULL);
    ch.free_slots = qt_xcalloc(sv->sb->nslots, sizeof *ch.free_slots);
    for (unsigned i = sv->sb->nslots; i-- > 1;)
        ch.free_slots[ch.nfree++] = i;
    rc = child_serve(&ch);
    free(ch.free_slots);
    pthread_mutex_destroy(&ch.lock);
    qt_async_set_destroy(&ch.conns);
    return rc;
}

/* ------------------------------------------------------------- master */

static unsigned slots(const qt_supervisor *sv)
{
    return slots_of(conf_of(sv->rt->cfg));
}

/* The child of the running generation that was not told to exit, if any. */
static bool has_current_child(const qt_supervisor *sv)
{
    unsigned gen = atomic_load(&sv->sb->running_generation);

    for (unsigned i = 0; i < sv->sb->nprocs; i++) {
        const qt_sb_process *p = &sv->sb->procs[i];

        if (atomic_load(&p->pid) > 0 && atomic_load(&p->generation) == gen &&
            !atomic_load(&p->quiescing))
            return true;
    }
    return false;
}

/* One child per generation, whatever StartServers says. */
static void populate(qt_supervisor *sv)
{
    if (has_current_child(sv))
        return;
    for (unsigned i = 0; i < sv->sb->nprocs; i++)
        if (atomic_load(&sv->sb->procs[i].pid) == 0) {
            qt_supervisor_spawn(sv, i);
            return;
        }
}

/* After every pass: a lost child is replaced at once, within the budget. */
static void replace_lost(qt_supervisor *sv)
{
    if (has_current_child(sv) || qt_supervisor_replace_budget(sv) <= 0)
        return;
    populate(sv);
    sv->replaced_in_window += has_current_child(sv);
}

static const qt_supervisor_ops hybrid_ops = {
    .tag = TAG,
    .fork_failed_id = "QT0354",
    .death_pipe_id = "QT0353",
    .defaults = &hybrid_defaults.knobs,
    .slots = slots,
    .serve = child_run,
    .populate = populate,
    .upkeep = replace_lost,
    .upkeep_every_pass = true,
};

static int hybrid_run(qt_runtime *rt)
{
    return qt_supervisor_run(&hybrid_ops, rt, NULL);
}

/* server-status: what the runtime of this child is doing. */
static void hybrid_status(qt_status_report *rep)
{
    mt_sched *s = mt_current();
    mt_stats st;

    if (!s)
        return;
    mt_sched_stats(s, &st);
    qt_status_add(rep, "Threads", "%u", st.workers);
    qt_status_add(rep, "Coroutines", "%u", st.live);
    qt_status_add(rep, "WatchedIdleFds", "%u", st.watches);
    qt_status_add(rep, "CoroutinesCreated", "%llu", st.created);
    qt_status_add(rep, "Steals", "%llu", st.steals);
    qt_status_add(rep, "MonitorHandoffs", "%llu", st.handoffs);
    qt_status_add(rep, "SpareThreadsStarted", "%llu", st.spares);
}

/* ------------------------------------------------------------- module */

static const qt_directive hybrid_directives[] = {
    { "Threads", QT_TAKE1, QT_CTX_MAIN, set_threads,
      "worker threads of the child, coroutines spread over them (online CPUs)" },
    QT_MPM_DIRECTIVE("MaxRequestWorkers", "connections served at once; idle ones not counted (400)"),
    QT_MPM_DIRECTIVE("MaxClients", "old name of MaxRequestWorkers"),
    QT_MPM_DIRECTIVE("MaxConnectionsPerChild", "connections the child accepts before it is replaced; 0 = no limit"),
    QT_MPM_DIRECTIVE("MaxRequestsPerChild", "old name of MaxConnectionsPerChild"),
    QT_MPM_DIRECTIVE("GracefulShutdownTimeout", "seconds a graceful stop waits for the child; 0 = forever"),
    QT_MPM_DIRECTIVE("StartServers", "accepted for compatibility; no effect (one child)"),
    QT_MPM_DIRECTIVE("ServerLimit", "accepted for compatibility; no effect"),
    QT_MPM_DIRECTIVE("ThreadsPerChild", "accepted for compatibility; no effect (see Threads)"),
    QT_MPM_DIRECTIVE("ThreadLimit", "accepted for compatibility; no effect"),
    QT_MPM_DIRECTIVE("MinSpareThreads", "accepted for compatibility; no effect"),
    QT_MPM_DIRECTIVE("MaxSpareThreads", "accepted for compatibility; no effect"),
    { "ThreadStackSize", QT_TAKE1, QT_CTX_MAIN, set_stack_size,
      "bytes of stack per coroutine (65536)" },
    { 0 },
};

static const qt_mpm hybrid_mpm = {
    .name = "hybrid",
    .flags = QT_MPM_FORKED | QT_MPM_THREADED | QT_MPM_ASYNC,
    .run = hybrid_run,
    .wait_fd = mt_wait_fd,
    .sleep_ms = mt_sleep_ms,
    .run_blocking = mt_run_blocking,
    .status = hybrid_status,
};

const qt_module mpm_hybrid_module = {
    QT_MODULE_HEADER("mpm_hybrid_module"),
    .directives = hybrid_directives,
    .create_server_conf = hybrid_create_server_conf,
    .mpm = &hybrid_mpm,
};
