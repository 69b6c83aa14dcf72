/* The master of the process MPMs (see supervisor.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* pipe2 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"
#include "supervisor.h"

/* ------------------------------------------------------------ config */

const qt_mpm_conf *qt_supervisor_knobs(const qt_supervisor_ops *ops,
                                       const qt_config *cfg)
{
    const qt_mpm_conf *k = qt_mpm_server_conf(cfg);

    return k ? k : ops->defaults;
}

qt_mpm_conf *qt_mpm_module_knobs(qt_config *cfg, const qt_module *m)
{
    int i = qt_config_module_index(cfg, m);

    if (i < 0 || !cfg->main || !cfg->main->mod)
        return NULL;
    return cfg->main->mod[i];
}

void qt_mpm_clamp_workers(qt_mpm_conf *k, const char *tag)
{
    if (k->max_request_workers <= k->server_limit)
        return;
    qt_log(QT_LOG_WARN, tag, "QT0201",
           "MaxRequestWorkers of %d exceeds ServerLimit of %d, decreasing to match",
           k->max_request_workers, k->server_limit);
    k->max_request_workers = k->server_limit;
}

void qt_supervisor_warn_server_limit(const qt_supervisor *sv, const char *msg_id)
{
    if ((unsigned)sv->conf->server_limit == sv->sb->nprocs)
        return;
    qt_log(QT_LOG_WARN, sv->ops->tag, msg_id,
           "changing ServerLimit to %d from original %u is not allowed during "
           "restart; keeping %u (stop and start the server to change it)",
           sv->conf->server_limit, sv->sb->nprocs, sv->sb->nprocs);
}

static unsigned slots_of(const qt_supervisor *sv)
{
    return sv->ops->slots ? sv->ops->slots(sv) : 1;
}

/* The knobs of the running config; spawning starts slow again. */
static void apply_conf(qt_supervisor *sv)
{
    sv->conf = qt_supervisor_knobs(sv->ops, sv->rt->cfg);
    sv->spawn_rate = 1;
    sv->limit_reported = false;
    if (sv->ops->configure)
        sv->ops->configure(sv);
}

/* ------------------------------------------------------------- child */

static _Noreturn void child_main(qt_supervisor *sv, unsigned proc)
{
    qt_config *cfg = sv->rt->cfg;

    qt_child_signals(false);
    if (sv->death_pipe[1] >= 0)
        close(sv->death_pipe[1]);      /* else our own copy hides the EOF */
    /* A graceful stop closes the master's copies: ours must not keep them open. */
    if (sv->ops->child_closes_listeners)
        qt_listen_close(cfg);
    atomic_store(&sv->sb->procs[proc].pid, getpid());
    if (!qt_drop_privileges(cfg))
        _exit(QT_EXIT_CHILDFATAL);
    qt_child_init(cfg);
    /* _exit: the master's atexit handlers and stdio buffers are not ours. */
    _exit(sv->ops->serve(sv, proc, false));
}

pid_t qt_supervisor_spawn(qt_supervisor *sv, unsigned proc)
{
    pid_t pid;

    if (sv->ops->mark_starting)
        sv->ops->mark_starting(sv, proc);
    else
        qt_sb_set_state(qt_sb_slot_at(sv->sb, proc, 0), QT_SB_STARTING);
    pid = qt_mpm_spawn_as(sv->sb, proc, sv->ops->tag, sv->ops->fork_failed_id);
    if (pid == 0)
        child_main(sv, proc);
    return pid;
}

/* ------------------------------------------------------ spare children */

void qt_supervisor_spawn_up_to(qt_supervisor *sv, int n)
{
    for (int i = 0; i < n; i++) {
        int row = sv->ops->free_row(sv);

        if (row < 0 || qt_supervisor_spawn(sv, (unsigned)row) < 0)
            return;
    }
}

void qt_supervisor_at_limit(qt_supervisor *sv)
{
    if (!sv->limit_reported)
        qt_log(QT_LOG_ERR, sv->ops->tag, "QT0221", "server reached MaxRequestWorkers "
               "setting, consider raising the MaxRequestWorkers setting");
    sv->limit_reported = true;
}

/*
 * Like Apache: while idle stays under the minimum, fork 1, 2, 4 ... 32
 * children a tick (not just the shortfall: under a rising load the
 * shortfall is back a second later, and a connection waits meanwhile).
 */
static void spawn_for_spares(qt_supervisor *sv, int idle)
{
    if (sv->ops->free_row(sv) < 0) {
        qt_supervisor_at_limit(sv);
        sv->spawn_rate = 1;
        return;
    }
    if (sv->spawn_rate >= 8)
        sv->ops->log_busy(sv, idle);
    qt_supervisor_spawn_up_to(sv, sv->spawn_rate);
    if (sv->spawn_rate < QT_SUPERVISOR_SPAWN_RATE)
        sv->spawn_rate *= 2;
}

void qt_supervisor_keep_spares(qt_supervisor *sv)
{
    int last;
    int idle = sv->ops->count_idle(sv, &last);

    if (idle > sv->max_spare && last >= 0) {
        qt_mpm_retire(sv->sb, (unsigned)last);   /* one a tick, like Apache */
        sv->spawn_rate = 1;
    } else if (idle < sv->min_spare) {
        spawn_for_spares(sv, idle);
    } else {
        sv->spawn_rate = 1;
    }
}

int qt_supervisor_replace_budget(qt_supervisor *sv)
{
    int64_t now = qt_now_ms();

    if (now - sv->replace_window_ms >= 1000) {
        sv->replace_window_ms = now;
        sv->replaced_in_window = 0;
    }
    return QT_SUPERVISOR_SPAWN_RATE - sv->replaced_in_window;
}

/*
 * Replaced at once rather than at the next tick, so the pool never sits
 * empty; within the budget, so a child that crashes at start cannot
 * fork-bomb the machine.
 */
void qt_supervisor_replace_lost(qt_supervisor *sv, const qt_child_exit *e)
{
    if (WIFEXITED(e->status) && WEXITSTATUS(e->status) == QT_EXIT_CHILDSICK) {
        sv->spawn_rate = 1;
        return;
    }
    if (e->slot < 0 || e->quiescing ||
        e->generation != atomic_load(&sv->sb->running_generation))
        return;
    if (qt_supervisor_replace_budget(sv) > 0) {
        sv->replaced_in_window++;
        qt_supervisor_spawn_up_to(sv, 1);
    }
}

/* ------------------------------------------------------------ master */

static void populate(qt_supervisor *sv)
{
    if (sv->ops->populate)
        sv->ops->populate(sv);
}

static void hard_restart(qt_supervisor *sv)
{
    qt_log(QT_LOG_NOTICE, sv->ops->tag, "QT0112", "SIGHUP received.  Attempting to restart");
    if (!qt_runtime_reload(sv->rt))
        return;
    qt_mpm_reclaim_children(sv->sb);
    qt_mpm_new_generation(sv->sb, sv->rt->cfg);
    apply_conf(sv);
    populate(sv);
    qt_mpm_log_resuming(sv->rt->cfg);
}

/* Children of the old generation finish their request, then exit. */
static void graceful_restart(qt_supervisor *sv)
{
    qt_log(QT_LOG_NOTICE, sv->ops->tag, "QT0113", "Graceful restart requested, doing restart");
    if (!qt_runtime_reload(sv->rt))
        return;
    qt_mpm_new_generation(sv->sb, sv->rt->cfg);
    apply_conf(sv);
    qt_mpm_retire_old(sv->sb);
    populate(sv);
    qt_mpm_log_resuming(sv->rt->cfg);
}

/* Acts on one signal; returns the exit status, or -1 to keep running. */
static int on_signal(qt_supervisor *sv, enum qt_sig sig)
{
    switch (sig) {
    case QT_SIG_STOP:
        qt_log(QT_LOG_NOTICE, sv->ops->tag, "QT0111", "caught SIGTERM, shutting down");
        qt_mpm_reclaim_children(sv->sb);
        return 0;
    case QT_SIG_GRACEFUL_STOP:
        qt_mpm_graceful_stop(sv->rt, sv->sb, sv->conf->graceful_shutdown_timeout,
                             sv->ops->tag);
        return 0;
    case QT_SIG_RESTART:
        hard_restart(sv);
        return -1;
    case QT_SIG_GRACEFUL:
        graceful_restart(sv);
        return -1;
    default:
        return -1;                     /* SIGCHLD: reaped below */
    }
}

/* Reaps every exited child; true if one asked for a server stop. */
static bool reap_children(qt_supervisor *sv)
{
    qt_child_exit e;
    bool fatal = false;

    while (qt_mpm_reap(sv->sb, &e)) {
        if (qt_mpm_child_exited(sv->sb, &e, false))
            fatal = true;
        else if (sv->ops->reaped)
            sv->ops->reaped(sv, &e);
    }
    return fatal;
}

static int master_loop(qt_supervisor *sv)
{
    int64_t next_upkeep = qt_now_ms() + QT_SUPERVISOR_TICK_MS;

    for (;;) {
        enum qt_sig sig;
        int rc;

        if (sv->ops->wait)
            sv->ops->wait(sv, next_upkeep);
        else
            qt_poll_wait_fd(qt_signal_fd(), POLLIN, next_upkeep);
        while ((sig = qt_signal_take()) != QT_SIG_NONE)
            if ((rc = on_signal(sv, sig)) >= 0)
                return rc;
        if (reap_children(sv)) {
            qt_mpm_reclaim_children(sv->sb);
            return 1;
        }
        if (sv->ops->upkeep_every_pass || qt_now_ms() >= next_upkeep) {
            if (sv->ops->upkeep)
                sv->ops->upkeep(sv);
            next_upkeep = qt_now_ms() + QT_SUPERVISOR_TICK_MS;
        }
    }
}

static int master_run(qt_supervisor *sv)
{
    int rc;

    sv->conf = qt_supervisor_knobs(sv->ops, sv->rt->cfg);
    if (sv->ops->death_pipe_id && pipe2(sv->death_pipe, O_CLOEXEC) < 0) {
        qt_log(QT_LOG_EMERG, sv->ops->tag, sv->ops->death_pipe_id,
               "(%d)%s: cannot create the death pipe", errno, strerror(errno));
        return 1;
    }
    sv->sb = qt_scoreboard_create((unsigned)sv->conf->server_limit, slots_of(sv));
    atomic_store(&sv->sb->running_generation, sv->rt->cfg->generation);
    qt_scoreboard_set_current(sv->sb);
    apply_conf(sv);
    populate(sv);
    rc = master_loop(sv);
    qt_scoreboard_destroy(sv->sb);
    if (sv->death_pipe[0] >= 0) {
        close(sv->death_pipe[0]);
        close(sv->death_pipe[1]);
    }
    return rc;
}

/* -X: serve in this process, no children; TERM stops after the connections. */
static int one_process_run(qt_supervisor *sv)
{
    qt_config *cfg = sv->rt->cfg;
    int rc = 1;

    sv->conf = qt_supervisor_knobs(sv->ops, cfg);
    sv->sb = qt_scoreboard_create(1, slots_of(sv));
    qt_scoreboard_set_current(sv->sb);
    atomic_store(&sv->sb->procs[0].pid, getpid());
    qt_child_signals(true);
    if (!qt_drop_privileges(cfg))
        goto cleanup;
    qt_child_init(cfg);
    rc = sv->ops->serve(sv, 0, true);
    qt_log(QT_LOG_NOTICE, sv->ops->tag, "QT0111", "caught SIGTERM, shutting down");
cleanup:
    qt_scoreboard_destroy(sv->sb);
    return rc;
}

int qt_supervisor_run(const qt_supervisor_ops *ops, qt_runtime *rt, void *data)
{
    qt_supervisor sv = {
        .ops = ops,
        .rt = rt,
        .death_pipe = { -1, -1 },
        .data = data,
        .spawn_rate = 1,
    };

    return rt->one_process ? one_process_run(&sv) : master_run(&sv);
}
