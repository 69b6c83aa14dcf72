/*
 * The scoreboard: one table in shared memory that the master and every
 * serving context write, and server-status reads.
 *
 * It is mapped (MAP_SHARED | MAP_ANONYMOUS) by the master before the first
 * fork, so every child sees the same pages at the same address.  A row per
 * process (pid, generation) and, under it, a slot per serving context
 * (prefork and fork: one; worker: one per thread; event/hybrid: one per
 * thread too).  Each slot is written only by its own context; the master
 * writes the process row.  Readers may see a string being rewritten, which
 * is fine for a status page; the counters and states are atomics.
 *
 * The core updates the slot in c->scoreboard_slot through the qt_sb_note_*
 * helpers, which accept NULL (no scoreboard: unit tests, tools).
 */
#ifndef QT_SCOREBOARD_H
#define QT_SCOREBOARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Slot states, in the order Apache's mod_status shows them. */
enum qt_sb_state {
    QT_SB_DEAD,          /* no process */
    QT_SB_STARTING,      /* forked, not yet accepting */
    QT_SB_READY,         /* idle, waiting for a connection */
    QT_SB_BUSY_READ,     /* reading a request */
    QT_SB_BUSY_WRITE,    /* running the handler, writing the response */
    QT_SB_KEEPALIVE,     /* waiting for the next request on a connection */
    QT_SB_LOGGING,       /* writing the access log */
    QT_SB_CLOSING,       /* lingering close */
    QT_SB_GRACEFUL       /* finishing its connection, then exiting */
};

typedef struct qt_sb_slot {
    atomic_int state;                 /* enum qt_sb_state */
    atomic_ulong requests;            /* served by this slot */
    atomic_ulong connections;
    atomic_ullong bytes;              /* response bytes sent */
    _Atomic int64_t last_used_ms;     /* qt_now_ms() of the last change */
    char client[48];                  /* "ip" of the current/last client */
    char vhost[64];
    char request[128];                /* current/last request line, truncated */
} qt_sb_slot;

typedef struct qt_sb_process {
    atomic_int pid;                   /* 0: free */
    atomic_uint generation;
    atomic_int quiescing;             /* told to finish and exit */
    _Atomic int64_t started_ms;
} qt_sb_process;

typedef struct qt_scoreboard {
    atomic_uint running_generation;   /* children of older generations exit */
    atomic_int no_keepalive;          /* full with clients waiting: close
                                         connections after each response */
    int64_t restart_time;             /* time(NULL) of the last (re)start */
    unsigned nprocs;                  /* ServerLimit */
    unsigned nslots;                  /* per process (ThreadLimit, or 1) */
    size_t size;                      /* bytes mapped */
    qt_sb_process *procs;             /* nprocs rows */
    qt_sb_slot *slots;                /* nprocs * nslots, row-major */
} qt_scoreboard;

/* Maps a zeroed scoreboard; aborts if the kernel refuses (as for OOM). */
qt_scoreboard *qt_scoreboard_create(unsigned nprocs, unsigned nslots);
void qt_scoreboard_destroy(qt_scoreboard *sb);

/* Slot `i` of process row `proc`. */
qt_sb_slot *qt_sb_slot_at(qt_scoreboard *sb, unsigned proc, unsigned i);
/* Clears a process row and its slots (master, after the child is reaped). */
void qt_sb_clear_process(qt_scoreboard *sb, unsigned proc);

/*
 * The scoreboard of this server, for server-status; set once by the MPM
 * before it forks (NULL when the MPM keeps none).
 */
void qt_scoreboard_set_current(qt_scoreboard *sb);
qt_scoreboard *qt_scoreboard_current(void);

/* Updates from the core; `slot` is c->scoreboard_slot and may be NULL. */
void qt_sb_set_state(void *slot, enum qt_sb_state state);
void qt_sb_note_request(void *slot, const char *client, const char *vhost,
                        const char *request_line);
void qt_sb_note_done(void *slot, uint64_t bytes);

const char *qt_sb_state_name(enum qt_sb_state state);

#endif
