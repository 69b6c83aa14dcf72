/*
 * The master of a process MPM (fork, prefork, worker, event), written once.
 *
 * qt_supervisor_run() is an MPM's whole run(): it maps the scoreboard,
 * forks children on it, turns signals into stops, restarts, graceful
 * restarts and graceful stops (reloading through qt_runtime_reload), reaps
 * children and hands the MPM what is its own business: how a child serves,
 * which children a generation starts with, and how spare capacity is kept.
 * Every child starts the same way: its signals, the death pipe (EOF: the
 * master is gone), the pid on its row, the privilege drop, child_init.
 * With -X the same ops serve in the calling process.
 *
 * An MPM describes itself with a const qt_supervisor_ops; NULL hooks do
 * nothing (or the default stated below).
 */
#ifndef QT_SUPERVISOR_H
#define QT_SUPERVISOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "mpm_common.h"

#define QT_SUPERVISOR_TICK_MS 1000     /* upkeep period; signals wake it anyway */
#define QT_SUPERVISOR_SPAWN_RATE 32    /* children forked per second, at most */

typedef struct qt_supervisor qt_supervisor;

typedef struct qt_supervisor_ops {
    const char *tag;                   /* log tag: "mpm_prefork" */
    const char *fork_failed_id;        /* message id of a failed fork */
    const char *death_pipe_id;         /* ... of a failed death pipe; NULL: no pipe */
    const qt_mpm_conf *defaults;       /* knobs when the MPM has no server conf */
    bool child_closes_listeners;       /* children serve an inherited connection */

    /* Scoreboard slots per process for sv->conf; NULL: 1. */
    unsigned (*slots)(const qt_supervisor *sv);
    /*
     * Serves, in a child whose row is `proc` or (one_process) in the -X
     * server; returns the exit status.  sv->death_pipe[0] is the pipe to
     * watch (-1 with -X).
     */
    int (*serve)(qt_supervisor *sv, unsigned proc, bool one_process);
    /* Before a fork: the slot states of row proc; NULL: slot 0 STARTING. */
    void (*mark_starting)(qt_supervisor *sv, unsigned proc);

    /* After sv->conf is set (start, reload): limits, the MPM's own state. */
    void (*configure)(qt_supervisor *sv);
    /* Forks the children a generation starts with (start and restarts). */
    void (*populate)(qt_supervisor *sv);
    /* Waits for something to do until deadline_ms; NULL: the signal pipe. */
    void (*wait)(qt_supervisor *sv, int64_t deadline_ms);
    /* A child exited without asking for a server stop. */
    void (*reaped)(qt_supervisor *sv, const qt_child_exit *e);
    /* Spare management: once a tick, or after every pass of the loop. */
    void (*upkeep)(qt_supervisor *sv);
    bool upkeep_every_pass;

    /* For qt_supervisor_keep_spares / _spawn_up_to / _replace_lost: */
    int (*free_row)(const qt_supervisor *sv);      /* -1: at the limit */
    int (*count_idle)(const qt_supervisor *sv, int *last);
    void (*log_busy)(const qt_supervisor *sv, int idle);
} qt_supervisor_ops;

struct qt_supervisor {
    const qt_supervisor_ops *ops;
    qt_runtime *rt;
    const qt_mpm_conf *conf;           /* knobs of rt->cfg */
    qt_scoreboard *sb;
    int death_pipe[2];                 /* children poll [0]; -1 when none */
    void *data;                        /* the MPM's own master state */
    int min_spare, max_spare;          /* idle units, set by configure */
    int spawn_rate;                    /* 1, 2, 4 ... QT_SUPERVISOR_SPAWN_RATE */
    bool limit_reported;               /* "reached MaxRequestWorkers" said once */
    int64_t replace_window_ms;         /* rate limit for immediate replacement */
    int replaced_in_window;
};

/* The MPM's run(): master loop, or the -X server.  data becomes sv->data. */
int qt_supervisor_run(const qt_supervisor_ops *ops, qt_runtime *rt, void *data);

/* The MPM's knobs in cfg (its server conf starts with them), or the defaults. */
const qt_mpm_conf *qt_supervisor_knobs(const qt_supervisor_ops *ops,
                                       const qt_config *cfg);
/*
 * For post_config: module m's own knobs when it is loaded, else NULL.
 * Warns and lowers MaxRequestWorkers above ServerLimit (QT0201).
 */
qt_mpm_conf *qt_mpm_module_knobs(qt_config *cfg, const qt_module *m);
void qt_mpm_clamp_workers(qt_mpm_conf *k, const char *tag);
/* After a reload: warns when ServerLimit changed (it cannot, until a stop). */
void qt_supervisor_warn_server_limit(const qt_supervisor *sv, const char *msg_id);

/* Forks the child of row proc; the child never returns.  -1 if fork failed. */
pid_t qt_supervisor_spawn(qt_supervisor *sv, unsigned proc);
/* Forks up to n children into ops->free_row() rows. */
void qt_supervisor_spawn_up_to(qt_supervisor *sv, int n);
/* Logs "server reached MaxRequestWorkers" once per generation. */
void qt_supervisor_at_limit(qt_supervisor *sv);
/* Children that may still be replaced in the current second. */
int qt_supervisor_replace_budget(qt_supervisor *sv);

/*
 * Apache's spare-server policy, as ops->upkeep: retires one idle child a
 * tick above max_spare, forks 1, 2, 4 ... 32 a tick below min_spare.
 */
void qt_supervisor_keep_spares(qt_supervisor *sv);
/*
 * As ops->reaped: a child of the running generation that nobody told to
 * exit is replaced at once (within the budget); CHILDSICK slows spawning.
 */
void qt_supervisor_replace_lost(qt_supervisor *sv, const qt_child_exit *e);

#endif
