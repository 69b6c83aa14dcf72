/*
 * A client connection and its I/O interface.
 *
 * The core is written in blocking style: qt_conn_read() returns when bytes
 * arrived, the deadline passed or the peer closed.  Underneath, the socket is
 * non-blocking and "would block" becomes a wait through the running MPM
 * (see mpm/mpm.h).  TLS is a transport (qt_transport) under this interface,
 * so the code above never knows whether bytes are encrypted.
 */
#ifndef QT_CONN_H
#define QT_CONN_H

#include <stdbool.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "buf.h"
#include "config.h"
#include "pool.h"

typedef struct qt_conn qt_conn;

#define QT_READ_CHUNK 4096            /* socket reads grow c->in by this */

/* An IPv4 or IPv6 socket address in 28 bytes (sockaddr_storage is 128:
 * it matters when 10,000 idle connections each hold two). */
typedef union {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
} qt_sockaddr;

/*
 * A transport moves bytes; every call is non-blocking and returns the byte
 * count, 0 for end of stream (recv), or QT_AGAIN with c->want set to
 * POLLIN/POLLOUT, or QT_ERROR.
 */
typedef struct qt_transport {
    const char *name;                 /* "tcp", "tls" */
    ssize_t (*recv)(qt_conn *c, void *buf, size_t n);
    ssize_t (*send)(qt_conn *c, const struct iovec *iov, int iovcnt);
    /* NULL: the core falls back to pread + send. */
    ssize_t (*sendfile)(qt_conn *c, int fd, off_t *off, size_t n);
    /* Optional: runs once before the first request (TLS handshake). */
    int (*handshake)(qt_conn *c);
    /* Optional: orderly shutdown of the stream before close. */
    void (*shutdown)(qt_conn *c);
    /* Optional: frees transport state. */
    void (*release)(qt_conn *c);
    /* Optional: true while the transport holds received bytes that the
     * socket no longer shows (TLS records read ahead): never idle then. */
    bool (*pending)(const qt_conn *c);
} qt_transport;

extern const qt_transport qt_tcp_transport;

struct qt_conn {
    int fd;
    unsigned pool_base;               /* c->pool bytes used by the struct
                                         alone: more means a module keeps
                                         state there */
    const qt_config *cfg;
    const qt_listener *listener;
    const qt_transport *transport;
    void *transport_data;
    short want;                       /* POLLIN/POLLOUT after QT_AGAIN */

    qt_pool *pool;                    /* lives as long as the connection */
    qt_buf in;                        /* received, not yet consumed bytes;
                                         freed while idle */
    size_t in_pos;                    /* bytes of `in` consumed by the current
                                         request (head and body) */
    qt_buf out;                       /* response head waiting to go out with
                                         the first body bytes */
    qt_pool *rpool;                   /* request pool, cleared per request */
    qt_sockaddr peer, local;
    char peer_ip[48];                 /* text forms (INET6_ADDRSTRLEN is 46) */
    int peer_port;
    char local_ip[48];
    int local_port;

    unsigned requests;                /* served on this connection */
    bool keep_alive;                  /* may serve another request */
    bool lingering;                   /* unread input may remain: linger on close */
    bool aborted;                     /* client gone or I/O error */
    bool read_full;                   /* the last read filled its buffer: the
                                         socket may hold more, unannounced */
    bool tls;                         /* transport is TLS (HTTPS=on) */
    int64_t idle_since_ms;
    void *mpm_data;                   /* for the MPM's bookkeeping */
    void *scoreboard_slot;            /* server-status slot of the serving context */
};

enum { QT_CONN_IDLE = 1, QT_CONN_CLOSE = 2 };

/*
 * Takes ownership of fd, which must already be non-blocking and close-on-exec
 * (accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC): the MPM's accept saves the
 * extra syscalls.  peer is the address accept4 returned.
 */
qt_conn *qt_conn_create(const qt_config *cfg, int fd, const qt_listener *l,
                        const struct sockaddr *peer, socklen_t peerlen);
/* Serves requests until idle (QT_CONN_IDLE) or done (QT_CONN_CLOSE). */
int qt_conn_serve(qt_conn *c);
/* When an idle connection should be dropped (KeepAliveTimeout). */
int64_t qt_conn_idle_deadline(const qt_conn *c);
/* Lingering close when needed, then frees everything. */
void qt_conn_close(qt_conn *c);

/*
 * An idle keep-alive connection reduced to what brings it back: event and
 * hybrid park this instead of the whole qt_conn (about a quarter of its
 * size, and no pool), so a silent client costs little more than its fd.
 */
typedef struct qt_conn_idle {
    const qt_listener *listener;
    qt_sockaddr peer, local;
    int fd;
    unsigned requests;
} qt_conn_idle;

/*
 * Frees an idle connection but not its fd, saving in *out what
 * qt_conn_resume() needs, when nothing else hangs on it: a plain TCP
 * transport, no buffers, nothing a module put in its pool.  False (and c
 * untouched) otherwise: a TLS connection keeps its session while idle.
 */
bool qt_conn_release_idle(qt_conn *c, qt_conn_idle *out);
/* The connection again, as it was when released. */
qt_conn *qt_conn_resume(const qt_config *cfg, const qt_conn_idle *saved);
/* Closes a released connection (nothing is left to send or drain). */
void qt_conn_close_idle(const qt_conn_idle *saved);
/*
 * The loop of the MPMs that give a connection a process or thread of its
 * own (fork, prefork, worker): serve, wait for the next request with
 * qt_conn_wait_request(), close.  Stops waiting once *stop_keepalive is
 * set (may be NULL).  While *no_keepalive (may be NULL) is set, the next
 * response closes the connection: the fork MPM's way to let the clients
 * queued behind a full server in.
 */
void qt_conn_run(qt_conn *c, volatile sig_atomic_t *stop_keepalive,
                 const atomic_int *no_keepalive);

/*
 * (io.c) Waits until the next request's first bytes arrive on an idle
 * keep-alive connection, or the deadline passes, and reads them into
 * c->in.  A plain TCP socket is made blocking for it, and stays so (the
 * core's calls stay non-blocking through the transport): one recv() per
 * request where poll() then recv() takes two.  Other transports poll and
 * leave the bytes to qt_conn_serve().  QT_OK, or QT_CLOSED, QT_TIMEOUT,
 * QT_ERROR: close the connection.
 */
int qt_conn_wait_request(qt_conn *c, int64_t deadline);
/* (io.c) Non-blocking again, before raw socket calls (linger). */
void qt_conn_unblock(qt_conn *c);

/* Blocking-style I/O with a monotonic deadline (ms; <= 0: none). */
ssize_t qt_conn_read(qt_conn *c, void *buf, size_t n, int64_t deadline);
int qt_conn_write(qt_conn *c, const void *buf, size_t n, int64_t deadline);
int qt_conn_writev(qt_conn *c, struct iovec *iov, int iovcnt, int64_t deadline);
int qt_conn_sendfile(qt_conn *c, int fd, off_t off, uint64_t n, int64_t deadline);

/* Plain-fd helpers for handler modules (backends, pipes), same semantics. */
ssize_t qt_fd_read(int fd, void *buf, size_t n, int64_t deadline);
int qt_fd_write(int fd, const void *buf, size_t n, int64_t deadline);
/* Non-blocking connect to host:port through the MPM's wait; fd or QT_*. */
int qt_tcp_connect(const char *host, int port, int64_t deadline);

#endif
