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
#include "coro/coro.h"

#define ACCEPT_BURST 32           /* accepts before letting others run */
#define STACK_MIN_BYTES (16 * 1024)
#define STACK_MAX_BYTES (8 * 1024 * 1024)

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

/* What the MPM keeps per connection (c->mpm_data, in c->pool). */
typedef struct ev_conn {
    qt_conn *c;
    ev_child *ch;
    struct ev_conn *prev, *next;  /* idle list, oldest first */
    bool idle;
    bool handshaken;
} ev_conn;

struct ev_child {
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
    unsigned active;              /* connections holding a coroutine */
    unsigned max_active;
    unsigned long open;           /* connections open */
    unsigned long accepted;
    coro *trimmer;                    /* gives freed memory back after bursts */
    unsigned long max_conns;      /* MaxConnectionsPerChild, 0: none */
    ev_conn *idle_head, *idle_tail;
    volatile sig_atomic_t *stop_flag;
    int death_fd;                 /* EOF: the master is gone; -1 with -X */
    bool stopping;
};

static void conn_serve(void *arg);
static void begin_stop(ev_child *ch);

static void idle_link(ev_child *ch, ev_conn *ec)
{
    ec->idle = true;
    ec->next = NULL;
    ec->prev = ch->idle_tail;
    if (ch->idle_tail)
        ch->idle_tail->next = ec;
    else
        ch->idle_head = ec;
    ch->idle_tail = ec;
}

static void idle_unlink(ev_child *ch, ev_conn *ec)
{
    if (!ec->idle)
        return;
    ec->idle = false;
    if (ec->prev)
        ec->prev->next = ec->next;
    else
        ch->idle_head = ec->next;
    if (ec->next)
        ec->next->prev = ec->prev;
    else
        ch->idle_tail = ec->prev;
}

/* Frees the connection (and ec with its pool). */
static void conn_close(ev_conn *ec)
{
    ev_child *ch = ec->ch;

    idle_unlink(ch, ec);
    coro_fd_forget(ec->c->fd);
    ch->open--;
    qt_conn_close(ec->c);
}

/* On the loop's stack: the idle fd became readable, or its time is up. */
static void on_idle_ready(int fd, int result, void *arg)
{
    ev_conn *ec = arg;
    ev_child *ch = ec->ch;

    (void)fd;
    idle_unlink(ch, ec);
    if (result != QT_OK || !coro_spawn(ch->sched, conn_serve, ec)) {
        conn_close(ec);               /* idle: nothing to linger for */
        return;
    }
    ch->active++;
}

/* Parks the bare fd until the next request (or KeepAliveTimeout). */
static void conn_idle(ev_conn *ec)
{
    idle_link(ec->ch, ec);
    if (coro_watch_fd(ec->c->fd, qt_conn_idle_deadline(ec->c),
                      on_idle_ready, ec) != QT_OK)
        conn_close(ec);
}

static void resume_acceptors(ev_child *ch)
{
    if (ch->active >= ch->max_active)
        return;
    for (size_t i = 0; i < ch->nls; i++)
        if (ch->ls[i].paused)
            coro_ready(ch->ls[i].acceptor);
}

/*
 * Each serving coroutine gets a scoreboard slot of its own, so server-status
 * shows every request in flight; when more coroutines run than there are
 * slots, the extra ones share the first.
 */
static unsigned slot_take(ev_child *ch)
{
    for (unsigned i = 1; i < ch->sb->nslots; i++)
        if (!ch->slot_busy[i]) {
            ch->slot_busy[i] = 1;
            return i;
        }
    return 0;
}

static void slot_give_back(ev_child *ch, unsigned i)
{
    if (i == 0)
        return;
    ch->slot_busy[i] = 0;
    qt_sb_set_state(qt_sb_slot_at(ch->sb, ch->proc, i), QT_SB_READY);
}

/* A coroutine per request burst: serve until idle or done. */
static void conn_serve(void *arg)
{
    ev_conn *ec = arg;
    ev_child *ch = ec->ch;
    qt_conn *c = ec->c;
    int rc = QT_CONN_CLOSE;
    unsigned slot = slot_take(ch);

    c->scoreboard_slot = qt_sb_slot_at(ch->sb, ch->proc, slot);

    if (!ec->handshaken) {
        ec->handshaken = true;
        if (c->transport->handshake && c->transport->handshake(c) != QT_OK)
            goto done;
    }
    rc = qt_conn_serve(c);
done:
    slot_give_back(ch, slot);
    c->scoreboard_slot = ch->slot;
    ch->active--;
    resume_acceptors(ch);
    if (rc == QT_CONN_IDLE && !ch->stopping)
        conn_idle(ec);
    else
        conn_close(ec);               /* in the coroutine: lingering may wait */
}

static void conn_accepted(ev_listener *el, int fd,
                          const struct sockaddr_storage *peer, socklen_t len)
{
    ev_child *ch = el->ch;
    qt_conn *c = qt_conn_create(ch->cfg, fd, el->l, (const struct sockaddr *)peer, len);
    ev_conn *ec = qt_pcalloc(c->pool, sizeof *ec);

    ec->c = c;
    ec->ch = ch;
    c->mpm_data = ec;
    c->scoreboard_slot = ch->slot;
    ch->open++;
    ch->accepted++;
    atomic_fetch_add(&ch->slot->connections, 1);
    if (coro_fd_register(fd, 0) != QT_OK) {
        conn_close(ec);
        return;
    }
    /* No stack until the client speaks: a silent client costs an fd. */
    conn_idle(ec);
    if (ch->max_conns && ch->accepted >= ch->max_conns)
        begin_stop(ch);
}

/* Out of descriptors: the oldest idle keep-alive connection makes room. */
static bool shed_idle(ev_child *ch)
{
    for (ev_conn *ec = ch->idle_head; ec; ec = ec->next)
        if (ec->c->requests > 0) {
            conn_close(ec);             /* cancels its watch */
            return true;
        }
    return false;
}

static void accept_failed(ev_child *ch, int err)
{
    switch (err) {
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
        return;                       /* the client left already */
    case EMFILE:
    case ENFILE:
        if (shed_idle(ch))
            return;
        /* fall through */
    case ENOBUFS:
    case ENOMEM:
        qt_log(QT_LOG_ERR, "mpm_event", "QT0310",
               "(%d)%s: accept: out of resources, pausing", err, strerror(err));
        coro_sleep_ms(100);
        return;
    default:
        qt_log(QT_LOG_ERR, "mpm_event", "QT0311", "(%d)%s: accept failed",
               err, strerror(err));
        coro_sleep_ms(100);           /* never spin on a persistent error */
    }
}

/* At the cap: leave the epoll set until a served connection finishes. */
static void pause_accepting(ev_listener *el)
{
    el->paused = true;
    coro_fd_forget(el->l->fd);
    coro_park();
    el->paused = false;
    if (!el->ch->stopping)
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
    while (!ch->stopping) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int fd, err;

        if (ch->active >= ch->max_active) {
            pause_accepting(el);
            continue;
        }
        fd = accept4(el->l->fd, (struct sockaddr *)&peer, &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
        err = errno;
        if (fd >= 0) {
            conn_accepted(el, fd, &peer, len);
            if (++burst % ACCEPT_BURST == 0)
                coro_yield();
        } else if (err == EAGAIN || err == EWOULDBLOCK) {
            coro_wait_fd(el->l->fd, POLLIN, 0);
        } else {
            accept_failed(ch, err);
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
    ev_conn *ec, *next;

    if (ch->stopping)
        return;
    ch->stopping = true;
    qt_sb_set_state(ch->slot, QT_SB_GRACEFUL);
    if (ch->trimmer)
        coro_ready(ch->trimmer);
    for (size_t i = 0; i < ch->nls; i++)
        if (ch->ls[i].acceptor)
            coro_ready(ch->ls[i].acceptor);
    for (ec = ch->idle_head; ec; ec = next) {
        next = ec->next;
        /* A client that connected but has not spoken yet is still owed a
         * response; it ends at its Timeout at the latest. */
        if (ec->c->requests == 0)
            continue;
        conn_close(ec);
    }
    if (ch->death_fd >= 0)
        coro_unwatch_fd(ch->death_fd);
}

static void on_master_gone(int fd, int result, void *arg)
{
    (void)fd;
    (void)result;
    begin_stop(arg);
}

/* After every wake-up of the loop: a stop signal, or a newer generation. */
/*
 * After a burst, freed request buffers stay in malloc's free lists as
 * resident pages.  Once a second, if connections came and nothing is in
 * flight, hand them back: idle connections are then all that memory pays
 * for.  begin_stop() wakes this coroutine so it ends with the child.
 */
static void trimmer(void *arg)
{
    ev_child *ch = arg;
    unsigned long seen = 0;

    while (!ch->stopping) {
        coro_park_until(qt_now_ms() + 1000);
        if (ch->stopping || ch->active > 0 || ch->accepted == seen)
            continue;
        seen = ch->accepted;
        coro_sched_trim(ch->sched, CORO_STACK_CACHE_DEFAULT);
        malloc_trim(0);
    }
}

static void on_tick(coro_sched *s, void *arg)
{
    ev_child *ch = arg;

    (void)s;
    if (ch->stopping)
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
    ch->max_active = active_per_child(ec);
    /* Keep a stack per coroutine that may run at once: under a burst of
     * waiting requests, mapping and unmapping stacks would cost more than
     * the requests (the trimmer gives them back afterwards). */
    opts.stack_cache = ch->max_active < 4096 ? ch->max_active : 4096;
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

    memset(&ch, 0, sizeof ch);
    ch.cfg = sv->rt->cfg;
    ch.sb = sv->sb;
    ch.slot = qt_sb_slot_at(sv->sb, proc, 0);
    ch.proc = proc;
    ch.slot_busy = qt_xcalloc(sv->sb->nslots, 1);
    ch.generation = atomic_load(&sv->sb->procs[proc].generation);
    ch.one_process = one_process;
    ch.death_fd = sv->death_pipe[0];
    ch.max_conns = one_process ? 0 : (unsigned long)sv->conf->max_connections_per_child;
    ch.stop_flag = qt_child_stop_flag();
    return child_serve(&ch);
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
    { NULL },
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
