/*
 * What the process-based MPMs (fork, prefork, worker) share: their tuning
 * directives, child bookkeeping on the scoreboard, the child's graceful-stop
 * flag and the master's stop sequence.  Lives in libquintet, so an MPM
 * module (.so) calls it from the httpd binary.
 */
#ifndef QT_MPM_COMMON_H
#define QT_MPM_COMMON_H

#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#include "config.h"
#include "conn.h"
#include "module.h"
#include "mpm.h"
#include "scoreboard.h"

/* Child exit statuses the master reacts to (Apache's APEXIT_* values). */
#define QT_EXIT_CHILDINIT  3    /* setup failed: retry at the normal rate */
#define QT_EXIT_CHILDSICK  7    /* temporary shortage: slow down spawning */
#define QT_EXIT_CHILDFATAL 15   /* cannot ever work (User, ...): stop the server */

/*
 * The tuning knobs, as one struct at the start of every process MPM's
 * server conf so a single setter serves them all.  An MPM sets its
 * defaults in create_server_conf; knobs it does not list keep theirs.
 */
typedef struct qt_mpm_conf {
    int start_servers;
    int min_spare_servers, max_spare_servers;
    int min_spare_threads, max_spare_threads;
    int threads_per_child, thread_limit;
    int server_limit;
    int max_request_workers;          /* MaxRequestWorkers / MaxClients */
    int max_connections_per_child;    /* 0: never recycle */
    int graceful_shutdown_timeout;    /* seconds; 0: wait forever */
} qt_mpm_conf;

/*
 * Setter for every qt_mpm_conf directive, chosen by cmd->name (old names
 * MaxClients and MaxRequestsPerChild included); cmd->srv_conf must start
 * with a qt_mpm_conf.  Use QT_MPM_DIRECTIVE() in the module's table.
 */
const char *qt_mpm_conf_set(qt_cmd *cmd, int argc, char **argv);
#define QT_MPM_DIRECTIVE(name, help) \
    { (name), QT_TAKE1, QT_CTX_MAIN, qt_mpm_conf_set, (help) }
/*
 * Parses a whole number in [min, max] into *out; NULL, or the error text
 * (in cmd->pool), for an MPM's own integer directives.
 */
const char *qt_mpm_int_arg(qt_cmd *cmd, const char *arg, int min, int max,
                           int *out);

/* The running MPM module's server conf (main server), or NULL. */
void *qt_mpm_server_conf(const qt_config *cfg);

/* "Quintet/0.1.0 (Unix) configured -- resuming normal operations" + MPM. */
void qt_mpm_log_resuming(const qt_config *cfg);

/*
 * In a new child: SIGUSR1 sets the flag returned by qt_child_stop_flag()
 * (finish the current connection, then exit) and SIGINT is ignored (the
 * master decides).  In one-process mode (-X), where the server is the
 * master, TERM, INT and WINCH set the flag instead and USR1/HUP stay
 * ignored.  The handlers go in before the master's are reset, so a signal
 * sent right after fork() is never lost.
 */
void qt_child_signals(bool one_process);
/* The signals qt_child_signals() turns into the stop flag. */
void qt_child_stop_signals(sigset_t *set, bool one_process);
volatile sig_atomic_t *qt_child_stop_flag(void);
/*
 * The listening fds the stop signal closes at once (NULL, 0 to forget
 * them).  Call with the stop signals blocked; after a stop the caller must
 * not use or close these numbers again.
 */
void qt_child_close_on_stop(const int *fds, size_t n);

/*
 * The accept wait of a prefork child or a worker child's listener thread.
 * pfd[0..nfds-1] name the fds: the listening sockets first, then the
 * first `exclusive` ones are listeners and the rest (a death or wake
 * pipe) are ordinary.  Listeners go into an epoll set with EPOLLEXCLUSIVE,
 * so a new connection wakes one idle child instead of every child (the
 * thundering herd: with 100 idle children, poll() woke 100 processes
 * whose accept4() all but one failed).  Returns the epoll fd, or -1
 * (out of descriptors), which qt_accept_wait() takes as "use ppoll()".
 */
int qt_accept_set(const struct pollfd *pfd, size_t nfds, size_t exclusive);
/*
 * Waits like ppoll(pfd, nfds, timeout, sigmask) (sigmask NULL: keep the
 * thread's mask; timeout_ms -1: no timeout) and sets pfd[i].revents.
 * Returns the number of ready fds, 0 on timeout, -1 with errno.
 */
int qt_accept_wait(int ep, struct pollfd *pfd, size_t nfds, int timeout_ms,
                   const sigset_t *sigmask);

/*
 * Raises the soft RLIMIT_NOFILE to the hard one: under event and hybrid,
 * idle connections are bounded by descriptors only.
 */
void qt_mpm_raise_fd_limit(void);

/* Slot of pid in sb->procs, or -1. */
int qt_sb_find_pid(const qt_scoreboard *sb, pid_t pid);
/* Processes with a pid in the scoreboard. */
unsigned qt_sb_live(const qt_scoreboard *sb);
/* Sends sig to every child; with old_only, only to older generations. */
void qt_sb_signal_all(qt_scoreboard *sb, int sig, bool old_only);

/* A reaped child. */
typedef struct qt_child_exit {
    pid_t pid;
    int slot;                         /* -1: not one of ours */
    unsigned generation;
    bool quiescing;                   /* it had been told to exit */
    int status;                       /* from waitpid */
} qt_child_exit;

/* Reaps one exited child without blocking and frees its slot. */
bool qt_mpm_reap(qt_scoreboard *sb, qt_child_exit *out);
/*
 * Logs an abnormal exit ("child pid N exit signal Killed (9)"); a TERM
 * during a stop is expected and not logged.  Returns true when the child
 * asked for the whole server to stop (QT_EXIT_CHILDFATAL, current
 * generation).
 */
bool qt_mpm_child_exited(const qt_scoreboard *sb, const qt_child_exit *e,
                         bool stopping);

/*
 * The stop sequence: TERM to every child, again at 3, 5 and 7 s, KILL at
 * 9 s, give up at 10 s.  Reaps as it goes; returns when none is left.
 */
void qt_mpm_reclaim_children(qt_scoreboard *sb);

/*
 * Graceful stop: waits for children to exit on their own (after the caller
 * told them), up to timeout_s seconds (0: forever); a STOP signal or the
 * timeout ends the wait with the stop sequence.
 */
void qt_mpm_drain_children(qt_scoreboard *sb, int timeout_s);

/*
 * Forks the child of scoreboard row `proc`: records generation and start
 * time, blocks every signal around fork() so the child can install its
 * own handlers first (qt_child_signals), and stores the pid.  Returns the
 * pid in the master, 0 in the child, -1 if fork failed (logged under
 * `tag`, row cleared).  Slot states are the caller's.
 */
pid_t qt_mpm_spawn(qt_scoreboard *sb, unsigned proc, const char *tag);
/* The same, logging a failed fork under message id msg_id. */
pid_t qt_mpm_spawn_as(qt_scoreboard *sb, unsigned proc, const char *tag,
                      const char *msg_id);
/* Marks row `proc` quiescing and sends its child SIGUSR1 (finish, exit). */
void qt_mpm_retire(qt_scoreboard *sb, unsigned proc);
/* Graceful restart: retires every child of an older generation. */
void qt_mpm_retire_old(qt_scoreboard *sb);
/* After a successful reload: the scoreboard's generation and restart time. */
void qt_mpm_new_generation(qt_scoreboard *sb, const qt_config *cfg);
/*
 * Graceful stop (WINCH): closes the listeners and the pid file so a new
 * server may start, retires every child and drains them.
 */
void qt_mpm_graceful_stop(qt_runtime *rt, qt_scoreboard *sb, int timeout_s,
                          const char *tag);

#endif
