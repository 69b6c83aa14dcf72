/*
 * The MPM contract: how the one HTTP core runs under five process models.
 *
 * An MPM is a module (qt_module.mpm != NULL) loaded with LoadModule; exactly
 * one must be loaded.  The core owns the configuration, the listening
 * sockets, the pid file, logs and signals-as-flags; the MPM owns processes,
 * threads, coroutines, accept, and the stop/restart life cycle.
 *
 * 1. Serving.  For each accepted socket the MPM calls qt_conn_create() and
 *    then qt_conn_serve(), in whatever execution context it has (a forked
 *    process, a pooled process or thread, a coroutine).  qt_conn_serve()
 *    returns QT_CONN_IDLE when the connection is kept alive with no bytes
 *    pending: the MPM waits for readability (until qt_conn_idle_deadline())
 *    however it likes, then calls qt_conn_serve() again; an async MPM parks
 *    the bare fd without a stack.  QT_CONN_CLOSE means call qt_conn_close().
 *    qt_conn_run() is the whole loop for MPMs that block.
 *
 * 2. Waiting.  The core never blocks on a socket itself.  Every read, write,
 *    sendfile or handler wait that would block (EAGAIN) calls the running
 *    MPM's wait_fd() / sleep_ms():
 *      fork, prefork, worker: poll() with the deadline; the process or
 *                             thread blocks.
 *      event, hybrid:         park the current coroutine on the netpoller
 *                             and run something else; it resumes (on any
 *                             thread for hybrid) when the fd is ready or the
 *                             deadline passes.
 *    So handler code written once (static, CGI, modules) is correct under
 *    all five, and what waiting costs is decided here, by the MPM.
 *    Sockets are always non-blocking.  Callers read errno right after each
 *    syscall and never keep thread-local pointers across a wait: under
 *    hybrid the code after a wait may run on another thread.
 *
 * 3. Life cycle.  run() is the master loop.  It polls qt_signal_take() and
 *    acts: QT_SIG_STOP (TERM/INT: stop now), QT_SIG_RESTART (HUP) and
 *    QT_SIG_GRACEFUL (USR1) call qt_runtime_reload(), which builds the new
 *    configuration and keeps the old one if the new one is broken;
 *    QT_SIG_GRACEFUL_STOP (WINCH) closes the listeners and lets children
 *    finish.  Graceful means in-flight requests complete.  run() returns the
 *    process exit status.  With rt->one_process (-X) the MPM serves in the
 *    calling process with no children.
 */
#ifndef QT_MPM_H
#define QT_MPM_H

#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>

#include "module.h"
#include "config.h"

#define QT_MPM_FORKED    0x1u   /* serves in child processes */
#define QT_MPM_THREADED  0x2u   /* several serving threads per process */
#define QT_MPM_ASYNC     0x4u   /* connections are coroutines on an event loop */

typedef struct qt_status_report qt_status_report;

/* State shared between main() and the running MPM. */
typedef struct qt_runtime {
    qt_config *cfg;            /* current configuration (replaced on reload) */
    const qt_config_args *args;/* to reload with the same command line */
    bool one_process;          /* -X */
    bool foreground;           /* -DFOREGROUND or -X */
    pid_t master_pid;
} qt_runtime;

struct qt_mpm {
    const char *name;          /* "prefork", shown by -V and the logs */
    unsigned flags;            /* QT_MPM_* */

    /* The master loop; returns the exit status of the server. */
    int (*run)(qt_runtime *rt);

    /*
     * Waits until fd is ready for `events` (POLLIN / POLLOUT) or the
     * monotonic deadline (qt_now_ms() scale; <= 0 means none) passes.
     * Returns QT_OK, QT_TIMEOUT or QT_ERROR.
     */
    int (*wait_fd)(int fd, short events, int64_t deadline_ms);

    /* Suspends the current execution context for ms milliseconds. */
    void (*sleep_ms)(int64_t ms);

    /*
     * Optional: runs fn(arg) where blocking is harmless (a blocking pool
     * thread for hybrid) and returns when it is done.  NULL: called inline.
     */
    void (*run_blocking)(void (*fn)(void *), void *arg);

    /* Optional: fills the server-status report for this MPM. */
    void (*status)(qt_status_report *rep);
};

/* The MPM of this process, set once before any connection is served. */
extern const qt_mpm *qt_active_mpm;

/* Monotonic clock in milliseconds. */
int64_t qt_now_ms(void);

/* The same clock read at the kernel's tick (a few ms behind qt_now_ms, about
 * six times cheaper): for timeouts and bookkeeping on every request, never
 * for sleeps a client can measure. */
int64_t qt_coarse_now_ms(void);

/* A deadline `ms` from now for an I/O timeout (Timeout, KeepAliveTimeout). */
int64_t qt_deadline_after(int64_t ms);

/* Waits through the active MPM (see 2.).  Also for handler modules. */
int qt_wait_fd(int fd, short events, int64_t deadline_ms);
void qt_sleep_ms(int64_t ms);
void qt_run_blocking(void (*fn)(void *), void *arg);

/*
 * The blocking implementations, shared by fork, prefork and worker (and the
 * fallbacks above when no MPM runs): poll() / nanosleep() that retry after a
 * signal until the deadline really passes.
 */
int qt_poll_wait_fd(int fd, short events, int64_t deadline_ms);
void qt_poll_sleep_ms(int64_t ms);

/* Signals as flags (handlers only set a flag). */
enum qt_sig { QT_SIG_NONE, QT_SIG_STOP, QT_SIG_RESTART, QT_SIG_GRACEFUL,
              QT_SIG_GRACEFUL_STOP, QT_SIG_CHILD };
/* Installs the master's handlers for TERM INT HUP USR1 WINCH CHLD; PIPE ignored. */
void qt_signals_master(bool one_process);
/* Returns and clears the most urgent pending request (STOP first). */
enum qt_sig qt_signal_take(void);
/* A pipe whose read end becomes readable when a signal arrives, for poll(). */
int qt_signal_fd(void);
/*
 * In a freshly forked child: the master's handlers back to default (a
 * handler the child already installed is kept), PIPE still ignored, the
 * master's signal pipe closed, empty mask.
 */
void qt_signals_child(void);

/*
 * Re-reads the configuration with the original command line.  On success
 * swaps rt->cfg (listening sockets carried over, logs reopened), frees the
 * old one and returns true.  On failure logs why, keeps the running config
 * and returns false.  A change of MPM is refused.
 */
bool qt_runtime_reload(qt_runtime *rt);

/* setuid/setgid to User/Group when running as root; false on failure. */
bool qt_drop_privileges(const qt_config *cfg);

/* Calls every module's child_init hook. */
void qt_child_init(const qt_config *cfg);

#endif
