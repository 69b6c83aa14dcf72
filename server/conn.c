/*
 * The connection loop, written once in blocking style for all five MPMs.
 *
 * One explicit state machine per connection:
 *
 *   READ_HEAD --parsed--> HANDLE --response done--> (keep-alive?)
 *       ^                                              |
 *       +------ pipelined bytes already buffered <-----+--> IDLE (return to MPM)
 *                                                      +--> CLOSE
 *
 * Waiting happens only inside qt_conn_read()/qt_conn_write() (io.c), which
 * ask the MPM to wait.  An idle connection keeps no request buffer: it is
 * freed before returning QT_CONN_IDLE, and event/hybrid then trade the
 * struct itself for a qt_conn_idle record (qt_conn_release_idle), so a
 * parked keep-alive connection costs little more than its fd.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "log.h"
#include "mpm.h"
#include "request.h"
#include "request_internal.h"
#include "scoreboard.h"

#define LINGER_MS 2000           /* per read while draining before close */
#define LINGER_TOTAL_MS 30000

/* Dotted quad by hand: glibc's inet_ntop goes through sprintf, and event
 * and hybrid format the addresses again on every resume from idle. */
static void ipv4_text(const struct in_addr *a, char *out)
{
    const unsigned char *b = (const unsigned char *)&a->s_addr;

    for (int i = 0; i < 4; i++) {
        unsigned v = b[i];

        if (v >= 100)
            *out++ = (char)('0' + v / 100);
        if (v >= 10)
            *out++ = (char)('0' + v / 10 % 10);
        *out++ = (char)('0' + v % 10);
        *out++ = i < 3 ? '.' : '\0';
    }
}

static void addr_text(const qt_sockaddr *ss, char *ip, size_t iplen, int *port)
{
    if (ss->sa.sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = &ss->in6;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, (socklen_t)iplen);
        *port = ntohs(s6->sin6_port);
    } else if (ss->sa.sa_family == AF_INET) {
        const struct sockaddr_in *s4 = &ss->in;
        if (iplen >= INET_ADDRSTRLEN)
            ipv4_text(&s4->sin_addr, ip);
        else
            inet_ntop(AF_INET, &s4->sin_addr, ip, (socklen_t)iplen);
        *port = ntohs(s4->sin_port);
    } else {
        snprintf(ip, iplen, "unknown");
        *port = 0;
    }
}

static bool listener_is_wildcard(const qt_listener *l)
{
    if (l->addr.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&l->addr)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (l->addr.ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&l->addr)->sin6_addr);
    return true;
}

/* The struct in a pool of its own, with what every connection starts with. */
static qt_conn *conn_alloc(const qt_config *cfg, int fd, const qt_listener *l)
{
    /* Sized for the struct and a transport's few bytes (mod_ssl's). */
    qt_pool *pool = qt_pool_create(sizeof(qt_conn) + 96);
    qt_conn *c = qt_pcalloc(pool, sizeof(*c));
    c->pool = pool;
    c->pool_base = (unsigned)qt_pool_used(pool);
    c->fd = fd;
    c->cfg = cfg;
    c->listener = l;
    c->transport = &qt_tcp_transport;
    c->keep_alive = true;
    qt_buf_init(&c->in);
    qt_buf_init(&c->out);
    return c;
}

static void conn_addr_texts(qt_conn *c)
{
    addr_text(&c->peer, c->peer_ip, sizeof(c->peer_ip), &c->peer_port);
    addr_text(&c->local, c->local_ip, sizeof(c->local_ip), &c->local_port);
}

qt_conn *qt_conn_create(const qt_config *cfg, int fd, const qt_listener *l,
                        const struct sockaddr *peer, socklen_t peerlen)
{
    qt_conn *c = conn_alloc(cfg, fd, l);
    if (peer && peerlen <= sizeof(c->peer))
        memcpy(&c->peer, peer, peerlen);
    /* The local address is the listener's unless it listens on a wildcard. */
    socklen_t len = sizeof(c->local);
    if (l && !listener_is_wildcard(l) && l->addrlen <= sizeof(c->local))
        memcpy(&c->local, &l->addr, l->addrlen);
    else
        getsockname(fd, &c->local.sa, &len);
    conn_addr_texts(c);
    /* Responses go out in one writev; Nagle would only delay pipelined ones. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->idle_since_ms = qt_coarse_now_ms();
    /* Transport modules (mod_ssl) take over the connection here. */
    for (size_t i = 0; i < cfg->nmodules; i++)
        if (cfg->modules[i]->conn_init)
            cfg->modules[i]->conn_init(c);
    return c;
}

bool qt_conn_release_idle(qt_conn *c, qt_conn_idle *out)
{
    if (c->transport != &qt_tcp_transport || c->transport_data ||
        qt_pool_used(c->pool) != c->pool_base || c->rpool ||
        c->in.data || c->out.data || c->lingering || c->aborted)
        return false;
    *out = (qt_conn_idle){
        .listener = c->listener,
        .peer = c->peer,
        .local = c->local,
        .fd = c->fd,
        .requests = c->requests,
    };
    qt_pool_destroy(c->pool);
    return true;
}

/* Only what qt_conn_release_idle() saw can differ from a fresh conn: the
 * socket options and the modules' conn_init stay done. */
qt_conn *qt_conn_resume(const qt_config *cfg, const qt_conn_idle *saved)
{
    qt_conn *c = conn_alloc(cfg, saved->fd, saved->listener);
    c->peer = saved->peer;
    c->local = saved->local;
    conn_addr_texts(c);
    c->requests = saved->requests;
    c->idle_since_ms = qt_coarse_now_ms();
    return c;
}

void qt_conn_close_idle(const qt_conn_idle *saved)
{
    close(saved->fd);
}

int64_t qt_conn_idle_deadline(const qt_conn *c)
{
    const qt_server *s = c->cfg->main;
    int64_t t = c->requests == 0 ? s->timeout_ms : s->keep_alive_timeout_ms;
    return c->idle_since_ms + t;
}

/*
 * Reads until a whole request head is buffered.  Returns the head length,
 * 0 when the peer closed (or the wait expired) before sending anything, or
 * -status for an error to answer.
 */
static ssize_t read_head(qt_conn *c, const qt_server *s, qt_http_request *h)
{
    qt_http_limits lim = {
        .max_request_line = s->limit_request_line,
        .max_field_size = s->limit_request_field_size,
        .max_fields = s->limit_request_fields,
    };
    size_t max_head = s->limit_request_line + 4 +
                      (size_t)(s->limit_request_fields + 1) * (s->limit_request_field_size + 2);
    int64_t deadline = qt_deadline_after(s->timeout_ms);
    for (;;) {
        int status = 0;
        if (c->in.len > 0) {
            ssize_t n = qt_http_parse_request(c->in.data, c->in.len, &lim, h, &status);
            if (n > 0)
                return n;
            if (n < 0)
                return -status;
            if (c->in.len >= max_head)
                return -431;
        }
        qt_buf_reserve(&c->in, QT_READ_CHUNK);
        ssize_t r = qt_conn_read(c, c->in.data + c->in.len, c->in.cap - c->in.len, deadline);
        if (r > 0) {
            c->in.len += (size_t)r;
            continue;
        }
        if (c->in.len == 0)
            return 0;                 /* nothing started: a quiet close */
        return r == QT_TIMEOUT ? -408 : 0;
    }
}

/* Error before a request could be built: minimal response, then close. */
static void early_error(qt_conn *c, qt_pool *p, const qt_server *s, int status)
{
    qt_request *r = qt_request_new_bare(c, p, s);
    r->status = status;
    c->keep_alive = false;
    c->lingering = true;
    qt_send_error(r, status);
    qt_request_finish(r);
    qt_access_log(r);
}

/* server-status: this slot now runs this request (before routing, so a
 * slow handler shows up while it runs). */
static void note_request(qt_conn *c, const qt_http_request *h)
{
    if (!c->scoreboard_slot)
        return;
    qt_sb_note_request(c->scoreboard_slot, c->peer_ip,
                       qt_pstrndup(c->rpool, h->host.p, h->host.n),
                       qt_pstrndup(c->rpool, h->request_line.p, h->request_line.n));
}

static void serve_one(qt_conn *c, qt_request *r, size_t head_len)
{
    qt_request_start(r, head_len);
    note_request(c, &r->http);
    qt_request_process(r);
    while (r->redirected)      /* the response belongs to the last one */
        r = r->redirected;
    qt_request_finish(r);
    qt_sb_set_state(c->scoreboard_slot, QT_SB_LOGGING);
    qt_access_log(r);
    qt_sb_note_done(c->scoreboard_slot, r->bytes_sent);
}

/*
 * An event loop wakes an idle connection on the socket's next readiness
 * edge.  When the last read filled its buffer (a request body read to the
 * byte, with a pipelined request right behind it) or the transport holds
 * bytes, no edge may be left to come: read once without waiting first.
 * Returns the bytes added to c->in, QT_AGAIN when the connection is truly
 * idle, 0 or an error when it is over.
 */
static ssize_t read_unannounced(qt_conn *c)
{
    if (!c->read_full && !(c->transport->pending && c->transport->pending(c)))
        return QT_AGAIN;
    qt_buf_reserve(&c->in, QT_READ_CHUNK);
    size_t room = c->in.cap - c->in.len;
    ssize_t r = c->transport->recv(c, c->in.data + c->in.len, room);
    c->read_full = r == (ssize_t)room;
    if (r > 0)
        c->in.len += (size_t)r;
    return r;
}

int qt_conn_serve(qt_conn *c)
{
    const qt_server *s = c->cfg->main;
    if (!c->rpool)
        c->rpool = qt_pool_create(16384);   /* a request and its head fit */
    for (;;) {
        qt_request *r = qt_request_alloc(c, c->rpool);
        qt_sb_set_state(c->scoreboard_slot, QT_SB_BUSY_READ);
        ssize_t n = read_head(c, s, &r->http);
        if (n == 0)
            return QT_CONN_CLOSE;
        if (n < 0) {
            early_error(c, c->rpool, s, (int)-n);
            return QT_CONN_CLOSE;
        }
        serve_one(c, r, (size_t)n);
        c->requests++;
        qt_buf_consume(&c->in, c->in_pos);
        c->in_pos = 0;
        qt_pool_clear(c->rpool);
        if (!c->keep_alive || c->aborted)
            return QT_CONN_CLOSE;
        c->idle_since_ms = qt_coarse_now_ms();
        ssize_t more = c->in.len ? 1 : read_unannounced(c);
        if (more == 0 || (more < 0 && more != QT_AGAIN))
            return QT_CONN_CLOSE;
        if (more == QT_AGAIN) {
            /* Idle: under event/hybrid give the buffers back, so a parked
             * connection costs little more than its fd.  A process or
             * thread MPM keeps them: the context is held anyway. */
            if (qt_active_mpm && (qt_active_mpm->flags & QT_MPM_ASYNC)) {
                qt_buf_free(&c->in);
                qt_buf_free(&c->out);
                qt_pool_destroy(c->rpool);
                c->rpool = NULL;
            }
            qt_sb_set_state(c->scoreboard_slot, QT_SB_KEEPALIVE);
            return QT_CONN_IDLE;
        }
    }
}

/*
 * Lingering close: after our FIN, read and drop what the client still sends
 * so that closing with unread data does not make the kernel send a reset
 * that could destroy the response before the client reads it.
 */
static void linger(qt_conn *c)
{
    if (shutdown(c->fd, SHUT_WR) < 0)
        return;
    char junk[512];
    int64_t end = qt_now_ms() + LINGER_TOTAL_MS;
    for (;;) {
        int64_t now = qt_now_ms();
        if (now >= end)
            return;
        int64_t deadline = now + LINGER_MS < end ? now + LINGER_MS : end;
        ssize_t r = recv(c->fd, junk, sizeof(junk), 0);
        if (r == 0)
            return;
        if (r < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            if (e != EAGAIN && e != EWOULDBLOCK)
                return;
            if (qt_wait_fd(c->fd, POLLIN, deadline) != QT_OK)
                return;
        }
    }
}

void qt_conn_close(qt_conn *c)
{
    if (c->transport->shutdown && !c->aborted)
        c->transport->shutdown(c);
    if (c->lingering && !c->aborted)
        linger(c);
    if (c->transport->release)
        c->transport->release(c);
    close(c->fd);
    qt_buf_free(&c->in);
    qt_buf_free(&c->out);
    if (c->rpool)
        qt_pool_destroy(c->rpool);
    qt_pool_destroy(c->pool);
}

/* The response then says Connection: close (see settle_keep_alive()). */
static void maybe_drop_keepalive(qt_conn *c, const atomic_int *no_keepalive)
{
    if (no_keepalive && atomic_load_explicit(no_keepalive, memory_order_relaxed))
        c->keep_alive = false;
}

void qt_conn_run(qt_conn *c, volatile sig_atomic_t *stop_keepalive,
                 const atomic_int *no_keepalive)
{
    if (c->transport->handshake && c->transport->handshake(c) != QT_OK)
        goto close;
    maybe_drop_keepalive(c, no_keepalive);
    while (qt_conn_serve(c) == QT_CONN_IDLE) {
        if (stop_keepalive && *stop_keepalive)
            break;
        if (qt_conn_wait_request(c, qt_conn_idle_deadline(c)) != QT_OK)
            break;
        maybe_drop_keepalive(c, no_keepalive);
    }
close:
    /* A lingering close reads the socket with plain recv() calls. */
    if (c->lingering)
        qt_conn_unblock(c);
    qt_conn_close(c);
}
