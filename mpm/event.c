/*
 * event: StartServers child processes, each ONE thread running an event
 * loop (mpm/coro).  A connection holds a coroutine, and so a stack, only
 * while a request is in progress; while it waits for the next request
 * (keep-alive, or a fresh connection that has not spoken yet) it is a bare
 * fd watched by the loop, which is what lets a child hold thousands of
 * idle clients.  Every wait of the core (read, write, sendfile, a handler's
 * backend) parks the coroutine and the loop runs the others.  The price:
 * CPU-heavy work in one request stalls every connection of its child.
 *
 * Listening sockets: the master's, inherited by every child and registered
 * in each child's epoll set with EPOLLEXCLUSIVE, so a new connection wakes
 * one child, not all of them (SO_REUSEPORT per child would balance better
 * but needs sockets the master does not own, and loses queued connections
 * when a child exits).  A child at its connection cap takes its listeners
 * out of its epoll set, so the wake-ups go to the others.
 *
 * Directives, accepted under Apache's names so one config serves every
 * MPM; what they mean here:
 *   StartServers (3)          children, each one event-loop thread; a dead
 *                             child is replaced at once.
 *   ServerLimit (16)          processes alive at once, the old generation
 *                             still draining after a graceful restart
 *                             included.
 *   MaxRequestWorkers (400)   connections being served (holding a
 *                             coroutine) at once, server-wide: each child
 *                             stops accepting above its share,
 *                             MaxRequestWorkers / StartServers rounded up.
 *                             Idle connections do not count; only file
 *                             descriptors bound them (the soft RLIMIT_NOFILE
 *                             is raised to the hard one), and when accept()
 *                             runs out of them the oldest idle keep-alive
 *                             connection is closed to make room.
 *   MaxConnectionsPerChild (0) a child that accepted this many stops
 *                             accepting, finishes and is replaced.
 *   ThreadStackSize (65536)   bytes of each coroutine's stack.
 *   GracefulShutdownTimeout (0) as in Apache.
 *   ThreadsPerChild, ThreadLimit, MinSpareThreads, MaxSpareThreads,
 *   AsyncRequestWorkerFactor  accepted and checked, no effect: there is
 *                             no thread pool to size (coroutines are made
 *                             on demand) and idle connections cost no
 *                             worker.
 *
 * The master is mpm/supervisor.c: it keeps StartServers children of the
 * running generation, replacing lost ones at once.
 *
 * Signals as in prefork: TERM stops at once; USR1 (graceful restart) and
 * WINCH (graceful stop) make a child stop accepting, close its idle
 * keep-alive connections, finish the requests in flight, and exit.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* accept4 */
#endif
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "supervisor.h"
#include "async_conn.h"
#include "coro/coro.h"

#define ACCEPT_BURST 32           /* accepts before letting others run */
#define STACK_MIN_BYTES (16 * 1024)
#define STACK_MAX_BYTES (8 * 1024 * 1024)
#define TRIM_PERIOD_MS 250        /* a burst is over after this long quiet */
#define TRIM_KEEP_STACKS 8        /* cached stacks kept (one page each) */

extern const qt_module mpm_event_module;

typedef struct event_conf {
    qt_mpm_conf knobs;            /* first: qt_mpm_conf_set() writes here */
    int stack_size;               /* ThreadStackSize */
} event_conf;

static const event_conf event_defaults = {
    .knobs = {
        .start_servers = 3,
        .min_spare_threads = 75,
        .max_spare_threads = 250,
        .threads_per_child = 25,
        .thread_limit = 64,
        .server_limit = 16,
        .max_request_workers = 400,
        .max_connections_per_child = 0,
        .graceful_shutdown_timeout = 0,
    },
    .stack_size = 64 * 1024,
};

/* ------------------------------------------------------------ config */

static void *event_create_server_conf(qt_pool *p)
{
    event_conf *ec = qt_pcalloc(p, sizeof *ec);

    *ec = event_defaults;
    return ec;
}

static const event_conf *conf_of(const qt_config *cfg)
{
    const event_conf *ec = qt_mpm_server_conf(cfg);

    return ec ? ec : &event_defaults;
}

/* Coroutines one child may serve at once: its share of MaxRequestWorkers. */
static unsigned active_per_child(const event_conf *ec)
{
    unsigned children = ec->knobs.start_servers > 0 ? (unsigned)ec->knobs.start_servers : 1;
    unsigned n = ((unsigned)ec->knobs.max_request_workers + children - 1) / children;
    return n == 0 ? 1 : n;
}

/* Scoreboard slots per child: one per coroutine, up to 1024 (the rest share). */
static unsigned slots_per_child(const event_conf *ec)
{
    unsigned n = active_per_child(ec);
    return n > 1024 ? 1024 : n;
}

static const char *set_stack_size(qt_cmd *cmd, int argc, char **argv)
{
    event_conf *ec = cmd->srv_conf;

    (void)argc;
    return qt_mpm_int_arg(cmd, argv[0], STACK_MIN_BYTES, STACK_MAX_BYTES,
                          &ec->stack_size);
}

/* Apache allows fractions ("1.5"); the value has no effect here. */
static const char *set_async_factor(qt_cmd *cmd, int argc, char **argv)
{
    char *end;
    double v;

    (void)argc;
    errno = 0;
    v = strtod(argv[0], &end);
    if (errno || end == argv[0] || *end || !isfinite(v) || v < 0)
        return qt_psprintf(cmd->pool, "'%s' is not a non-negative number", argv[0]);
    return NULL;
}

static int event_post_config(qt_config *cfg, char *err, size_t errlen)
{
    int i = qt_config_module_index(cfg, &mpm_event_module);
    qt_mpm_conf *k;

    (void)err;
    (void)errlen;
    if (i < 0 || !cfg->main || !cfg->main->mod || !cfg->main->mod[i])
        return QT_OK;
    k = &((event_conf *)cfg->main->mod[i])->knobs;
    if (k->start_servers < 1)
        k->start_servers = 1;
    if (k->start_servers > k->server_limit) {
        qt_log(QT_LOG_WARN, "mpm_event", "QT0301",
               "StartServers of %d exceeds ServerLimit of %d, decreasing to match",
               k->start_servers, k->server_limit);
        k->start_servers = k->server_limit;
    }
    return QT_OK;
}

/* -------------------------------------------------------------- child */

typedef struct ev_child ev_child;

typedef struct ev_listener {
    ev_child *ch;
    const qt_listener *l;
    coro *acceptor;
    bool paused;                  /* out of the epoll set: at the cap */
} ev_listener;

struct ev_child {
    qt_async_set conns;           /* life cycle: mpm/async_conn.h */
    const qt_config *cfg;
    qt_scoreboard *sb;
    qt_sb_slot *slot;             /* the process's first slot (idle state) */
    unsigned proc;                /* row on the scoreboard */
    unsigned char *slot_busy;     /* one flag per scoreboard slot of this row */
    unsigned generation;
    bool one_process;
    coro_sched *sched;
    ev_listener *ls;
    size_t nls;
    coro *trimmer;                    /* gives freed memory back after bursts */
    volatile sig_atomic_t *stop_flag;
    int death_fd;                 /* EOF: the master is gone; -1 with -X */
};

static void begin_stop(ev_child *ch);

/* ---------------------------------------- the runtime, for async_conn */

static bool ev_spawn(void *owner, void (*fn)(void *), void *arg)
{
    ev_child *ch = owner;

    return coro_spawn(ch->sched, fn, arg) != NULL;
}

static int ev_fd_register(void *owner, int fd)
{
    (void)owner;
    return coro_fd_register(fd, 0);
}

static int ev_watch_fd(void *owner, int fd, int64_t deadline_ms,
                       qt_async_watch_fn *fn, void *arg)
{
    (void)owner;
    return coro_watch_fd(fd, deadline_ms, fn, arg);
}

/* One thread: a watch cannot be firing while we cancel it. */
static bool ev_unwatch_fd(void *owner, int fd)
{
    (void)owner;
    coro_unwatch_fd(fd);
    return true;
}

static void ev_fd_forget(void *owner, int fd)
{
    (void)owner;
    coro_fd_forget(fd);
}

/*
 * Each serving coroutine gets a scoreboard slot of its own, so server-status
 * shows every request in flight; when more coroutines run than there are
 * slots, the extra ones share the first.
 */
static unsigned slot_take(void *owner)
{
    ev_child *ch = owner;

    for (unsigned i = 1; i < ch->sb->nslots; i++)
        if (!ch->slot_busy[i]) {
            ch->slot_busy[i] = 1;
            return i;
        }
    return 0;
}

static void slot_give_back(void *owner, unsigned i)
{
    ev_child *ch = owner;

    if (i == 0)
        return;
    ch->slot_busy[i] = 0;
    qt_sb_set_state(qt_sb_slot_at(ch->sb, ch->proc, i), QT_SB_READY);
}

static void resume_acceptors(ev_child *ch)
{
    if (ch->conns.active >= ch->conns.max_active)
        return;
    for (size_t i = 0; i < ch->nls; i++)
        if (ch->ls[i].paused)
            coro_ready(ch->ls[i].acceptor);
}

static void on_served(void *owner, unsigned was)
{
    ev_child *ch = owner;

    (void)was;
    resume_acceptors(ch);
}

static const qt_async_ops ev_async_ops = {
    .spawn = ev_spawn,
    .fd_register = ev_fd_register,
    .watch_fd = ev_watch_fd,
    .unwatch_fd = ev_unwatch_fd,
    .fd_forget = ev_fd_forget,
    .slot_take = slot_take,
    .slot_give_back = slot_give_back,
    .served = on_served,
    .sleep_ms = coro_sleep_ms,
};

/* ---------------------------------------------------------- accepting */

/* At the cap: leave the epoll set until a served connection finishes. */
static void pause_accepting(ev_listener *el)
{
    el->paused = true;
    coro_fd_forget(el->l->fd);
    coro_park();
    el->paused = false;
    if (!el->ch->conns.stopping)
        coro_fd_register(el->l->fd, CORO_FD_EXCLUSIVE);
}

static void acceptor(void *arg)
{
    ev_listener *el = arg;
    ev_child *ch = el->ch;
    unsigned burst = 0;

    if (coro_fd_register(el->l->fd, CORO_FD_EXCLUSIVE) != QT_OK)
        qt_log(QT_LOG_ERR, "mpm_event", "QT0312", "(%d)%s: cannot watch %s",
               errno, strerror(errno), el->l->text);
    while (!ch->conns.stopping) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int fd, err;

        if (ch->conns.active >= ch->conns.max_active) {
            pause_accepting(el);
            continue;
        }
        fd = accept4(el->l->fd, (struct sockaddr *)&peer, &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
        err = errno;
        if (fd >= 0) {
            if (qt_async_accepted(&ch->conns, fd, el->l, &peer, len))
                begin_stop(ch);
            if (++burst % ACCEPT_BURST == 0)
                coro_yield();
        } else if (err == EAGAIN || err == EWOULDBLOCK) {
            coro_wait_fd(el->l->fd, POLLIN, 0);
        } else {
            qt_async_accept_failed(&ch->conns, err, "mpm_event",
                                   "QT0310", "QT0311");
        }
    }
    /* Our copy only: the master keeps the socket for the next children. */
    coro_fd_forget(el->l->fd);
    close(el->l->fd);
    el->acceptor = NULL;
}

/*
 * Graceful: stop accepting, drop the idle keep-alive connections (Apache
 * does the same), let the requests in flight finish.  The loop returns
 * when no coroutine and no watch is left.
 */
static void begin_stop(ev_child *ch)
{
    if (!qt_async_begin_stop(&ch->conns))
        return;
    qt_sb_set_state(ch->slot, QT_SB_GRACEFUL);
    if (ch->trimmer)
        coro_ready(ch->trimmer);
    for (size_t i = 0; i < ch->nls; i++)
        if (ch->ls[i].acceptor)
            coro_ready(ch->ls[i].acceptor);
    qt_async_drop_idle(&ch->conns);
    if (ch->death_fd >= 0)
        coro_unwatch_fd(ch->death_fd);
}
static void on_master_gone(int fd, int result, void *arg)
{
    (void)fd;
    (void)result;
    begin_stop(arg);
}

/*
 * After a burst, freed request buffers stay in malloc's free lists and the
 * cached coroutine stacks keep the pages they touched, all resident.  Once
 * a burst is over (activity since the last trim, none in the last period,
 * nothing in flight), hand them back: idle connections are then all that
 * memory pays for.  Never under steady load, where the next request would
 * only fault the pages in again.  begin_stop() wakes this coroutine so it
 * ends with the child.
 */
static void trimmer(void *arg)
{
    ev_child *ch = arg;
    qt_async_trim t = { 0, 0 };

    while (!ch->conns.stopping) {
        coro_park_until(qt_now_ms() + TRIM_PERIOD_MS);
        if (qt_async_trim_due(&ch->conns, &t)) {
            coro_sched_trim(ch->sched, TRIM_KEEP_STACKS);
            malloc_trim(0);
        }
    }
}

/* After every wake-up of the loop: a stop signal, or a newer generation. */
static void on_tick(coro_sched *s, void *arg)
{
    ev_child *ch = arg;

    (void)s;
    if (ch->conns.stopping)
        return;
    if (*ch->stop_flag ||
        (!ch->one_process &&
         atomic_load(&ch->sb->running_generation) != ch->generation))
        begin_stop(ch);
}

static void child_start(void *arg)
{
    ev_child *ch = arg;

    if (ch->death_fd >= 0)
        coro_watch_fd(ch->death_fd, 0, on_master_gone, ch);
    for (size_t i = 0; i < ch->nls; i++)
        ch->ls[i].acceptor = coro_spawn(ch->sched, acceptor, &ch->ls[i]);
    ch->trimmer = coro_spawn(ch->sched, trimmer, ch);
    qt_sb_set_state(ch->slot, QT_SB_READY);
    /* A stop that arrived while starting must not wait for a first event. */
    on_tick(ch->sched, ch);
}

static void setup_listeners(ev_child *ch)
{
    size_t n = 0, i = 0;

    for (const qt_listener *l = ch->cfg->listeners; l; l = l->next)
        n += l->fd >= 0;
    ch->ls = qt_xcalloc(n ? n : 1, sizeof *ch->ls);
    for (const qt_listener *l = ch->cfg->listeners; l; l = l->next)
        if (l->fd >= 0)
            ch->ls[i++] = (ev_listener){ .ch = ch, .l = l };
    ch->nls = n;
}

static int child_serve(ev_child *ch)
{
    const event_conf *ec = conf_of(ch->cfg);
    sigset_t stop_set, open_mask;
    coro_sched_opts opts = {
        .stack_size = (size_t)ec->stack_size,
        .tick = on_tick,
        .tick_arg = ch,
    };
    ch->conns.max_active = active_per_child(ec);
    /* Keep a stack per coroutine that may run at once: under a burst of
     * waiting requests, mapping and unmapping stacks would cost more than
     * the requests (the trimmer gives them back afterwards). */
    opts.stack_cache = ch->conns.max_active < 4096 ? ch->conns.max_active : 4096;
    setup_listeners(ch);
    qt_mpm_raise_fd_limit();          /* idle connections cost only fds */
    /* The stop signals get through only while the loop sleeps (pselect). */
    qt_child_stop_signals(&stop_set, ch->one_process);
    sigprocmask(SIG_BLOCK, &stop_set, &open_mask);
    opts.poll_sigmask = &open_mask;
    ch->sched = coro_sched_create(&opts);
    coro_spawn(ch->sched, child_start, ch);
    coro_sched_run(ch->sched);
    coro_sched_destroy(ch->sched);
    sigprocmask(SIG_SETMASK, &open_mask, NULL);
    free(ch->ls);
    free(ch->slot_busy);
    return 0;
}

static int child_run(qt_supervisor *sv, unsigned proc, bool one_process)
{
    ev_child ch;
    int rc;

    memset(&ch, 0, sizeof ch);
    ch.cfg = sv->rt->cfg;
    ch.sb = sv->sb;
    ch.slot = qt_sb_slot_at(sv->sb, proc, 0);
    ch.proc = proc;
    ch.slot_busy = qt_xcalloc(sv->sb->nslots, 1);
    ch.generation = atomic_load(&sv->sb->procs[proc].generation);
    ch.one_process = one_process;
    ch.death_fd = sv->death_pipe[0];
    ch.stop_flag = qt_child_stop_flag();
    qt_async_set_init(&ch.conns, &ev_async_ops, &ch);
    ch.conns.cfg = ch.cfg;
    ch.conns.sb = ch.sb;
    ch.conns.proc = proc;
    ch.conns.slot = ch.slot;
    ch.conns.max_conns = one_process ? 0 : (unsigned long)sv->conf->max_connections_per_child;
    rc = child_serve(&ch);
    qt_async_set_destroy(&ch.conns);
    return rc;
}

/* ------------------------------------------------------------- master */

static unsigned slots(const qt_supervisor *sv)
{
    return slots_per_child(conf_of(sv->rt->cfg));
}

/* Children of the running generation not told to exit. */
static unsigned current_children(const qt_supervisor *sv)
{
    unsigned gen = atomic_load(&sv->sb->running_generation), n = 0;

    for (unsigned i = 0; i < sv->sb->nprocs; i++) {
        const qt_sb_process *p = &sv->sb->procs[i];

        n += atomic_load(&p->pid) > 0 && atomic_load(&p->generation) == gen &&
             !atomic_load(&p->quiescing);
    }
    return n;
}

/* Tops the current generation up to StartServers, within ServerLimit. */
static void spawn_missing(qt_supervisor *sv, unsigned max_new)
{
    unsigned want = (unsigned)sv->conf->start_servers;
    unsigned have = current_children(sv);

    for (unsigned i = 0; i < sv->sb->nprocs && have < want && max_new > 0; i++) {
        if (atomic_load(&sv->sb->procs[i].pid) != 0)
            continue;
        if (qt_supervisor_spawn(sv, i) < 0)
            return;
        have++;
        max_new--;
    }
}

static void populate(qt_supervisor *sv)
{
    spawn_missing(sv, sv->sb->nprocs);
}

/* After every pass: lost children are replaced at once, within the budget. */
static void replace_lost(qt_supervisor *sv)
{
    unsigned before = current_children(sv);
    int budget = qt_supervisor_replace_budget(sv);

    if (budget <= 0)
        return;
    spawn_missing(sv, (unsigned)budget);
    sv->replaced_in_window += (int)(current_children(sv) - before);
}

static void configure(qt_supervisor *sv)
{
    qt_supervisor_warn_server_limit(sv, "QT0321");
}

static const qt_supervisor_ops event_ops = {
    .tag = "mpm_event",
    .fork_failed_id = "QT0320",
    .death_pipe_id = "QT0322",
    .defaults = &event_defaults.knobs,
    .slots = slots,
    .serve = child_run,
    .configure = configure,
    .populate = populate,
    .upkeep = replace_lost,
    .upkeep_every_pass = true,
};

static int event_run(qt_runtime *rt)
{
    return qt_supervisor_run(&event_ops, rt, NULL);
}

/* ------------------------------------------------------------- module */

static const qt_directive event_directives[] = {
    QT_MPM_DIRECTIVE("StartServers", "number of child processes, one event loop each (3)"),
    QT_MPM_DIRECTIVE("ServerLimit", "processes alive at once, draining ones included; fixed until a full restart (16)"),
    QT_MPM_DIRECTIVE("MaxRequestWorkers", "connections served at once, server-wide; idle ones not counted (400)"),
    QT_MPM_DIRECTIVE("MaxClients", "old name of MaxRequestWorkers"),
    QT_MPM_DIRECTIVE("MaxConnectionsPerChild", "connections a child accepts before it is replaced; 0 = no limit"),
    QT_MPM_DIRECTIVE("MaxRequestsPerChild", "old name of MaxConnectionsPerChild"),
    QT_MPM_DIRECTIVE("GracefulShutdownTimeout", "seconds a graceful stop waits for children; 0 = forever"),
    QT_MPM_DIRECTIVE("ThreadsPerChild", "accepted for compatibility; no effect (one loop thread per child)"),
    QT_MPM_DIRECTIVE("ThreadLimit", "accepted for compatibility; no effect"),
    QT_MPM_DIRECTIVE("MinSpareThreads", "accepted for compatibility; no effect"),
    QT_MPM_DIRECTIVE("MaxSpareThreads", "accepted for compatibility; no effect"),
    { "AsyncRequestWorkerFactor", QT_TAKE1, QT_CTX_MAIN, set_async_factor,
      "accepted for compatibility; no effect (idle connections hold no worker)" },
    { "ThreadStackSize", QT_TAKE1, QT_CTX_MAIN, set_stack_size,
      "bytes of stack per coroutine (65536)" },
    { 0 },
};

static const qt_mpm event_mpm = {
    .name = "event",
    .flags = QT_MPM_FORKED | QT_MPM_ASYNC,
    .run = event_run,
    .wait_fd = coro_wait_fd,
    .sleep_ms = coro_sleep_ms,
};

const qt_module mpm_event_module = {
    QT_MODULE_HEADER("mpm_event_module"),
    .directives = event_directives,
    .create_server_conf = event_create_server_conf,
    .post_config = event_post_config,
    .mpm = &event_mpm,
};
