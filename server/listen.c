/*
 * Listening sockets.  The master binds them once; a reload hands the
 * sockets of addresses still configured to the new configuration, so a
 * graceful restart never refuses a connection.  Only sockets whose address
 * left the config are closed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* accept4, pipe2, ppoll */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listen.h"
#include "pool.h"

#define DEFAULT_BACKLOG 511

/* Fills l->addr from l->text ("1.2.3.4:80", "[::1]:80", "*:80", "80")
 * when the config left it empty. */
static bool parse_text(qt_listener *l)
{
    char host[128] = "0.0.0.0";
    const char *port = l->text, *colon = l->text ? strrchr(l->text, ':') : NULL;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&l->addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&l->addr;

    if (!l->text)
        return false;
    if (colon) {
        const char *h = l->text;
        size_t n = (size_t)(colon - h);

        if (h[0] == '[' && n >= 2 && h[n - 1] == ']')
            h++, n -= 2;
        if (n >= sizeof host)
            return false;
        if (!(n == 1 && h[0] == '*'))
            snprintf(host, sizeof host, "%.*s", (int)n, h);
        port = colon + 1;
    }
    memset(&l->addr, 0, sizeof l->addr);
    l->port = atoi(port);
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)l->port);
        l->addrlen = sizeof *in4;
        return true;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)l->port);
        l->addrlen = sizeof *in6;
        return true;
    }
    return false;
}

static bool same_address(const qt_listener *a, const qt_listener *b)
{
    const struct sockaddr_in *a4 = (const void *)&a->addr, *b4 = (const void *)&b->addr;
    const struct sockaddr_in6 *a6 = (const void *)&a->addr, *b6 = (const void *)&b->addr;

    if (a->addr.ss_family != b->addr.ss_family)
        return false;
    if (a->addr.ss_family == AF_INET)
        return a4->sin_port == b4->sin_port &&
               a4->sin_addr.s_addr == b4->sin_addr.s_addr;
    if (a->addr.ss_family == AF_INET6)
        return a6->sin6_port == b6->sin6_port &&
               memcmp(&a6->sin6_addr, &b6->sin6_addr, sizeof a6->sin6_addr) == 0;
    return false;
}

/* An open socket of `old` with l's address, or NULL. */
static qt_listener *find_open(qt_config *old, const qt_listener *l)
{
    for (qt_listener *o = old ? old->listeners : NULL; o; o = o->next)
        if (o->fd >= 0 && same_address(o, l))
            return o;
    return NULL;
}

static int bind_one(qt_listener *l, int backlog, char *err, size_t errlen)
{
    int one = 1;
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        goto fail;
    /* Restart without waiting for TIME_WAIT of the previous run. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        goto fail;
    /* "[::]:80" means IPv6 only; IPv4 clients get their own Listen. */
    if (l->addr.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
        goto fail;
    if (bind(fd, (struct sockaddr *)&l->addr, l->addrlen) < 0 ||
        listen(fd, backlog) < 0)
        goto fail;
    l->fd = fd;
    return 0;
fail:
    snprintf(err, errlen, "(%d)%s: could not bind to address %s",
             errno, strerror(errno), l->text ? l->text : "?");
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Binds what `old` cannot hand over; leaves `old` untouched on failure. */
static int bind_new(qt_config *cfg, qt_config *old, char *err, size_t errlen)
{
    int backlog = cfg->listen_backlog > 0 ? cfg->listen_backlog : DEFAULT_BACKLOG;
    size_t n = 0, i = 0;
    bool *mine;
    int rc = -1;

    for (qt_listener *l = cfg->listeners; l; l = l->next)
        n++;
    mine = qt_xcalloc(n, sizeof *mine);     /* bound by this call */
    for (qt_listener *l = cfg->listeners; l; l = l->next, i++) {
        if (l->addrlen == 0 && !parse_text(l)) {
            snprintf(err, errlen, "cannot parse listening address %s",
                     l->text ? l->text : "?");
            goto out;
        }
        if (l->fd >= 0 || find_open(old, l))
            continue;
        if (bind_one(l, backlog, err, errlen) < 0)
            goto out;
        mine[i] = true;
    }
    rc = 0;
out:
    i = 0;
    for (qt_listener *l = cfg->listeners; rc < 0 && l; l = l->next, i++) {
        if (mine[i]) {
            close(l->fd);
            l->fd = -1;
        }
    }
    free(mine);
    return rc;
}

int qt_listen_open(qt_config *cfg, qt_config *old, char *err, size_t errlen)
{
    if (!cfg->listeners) {
        snprintf(err, errlen, "no Listen directive: nothing to listen on");
        return -1;
    }
    if (bind_new(cfg, old, err, errlen) < 0)
        return -1;
    /* Cannot fail from here on: move the kept sockets, close the rest. */
    for (qt_listener *l = cfg->listeners; l; l = l->next) {
        qt_listener *o = l->fd < 0 ? find_open(old, l) : NULL;

        if (o) {
            l->fd = o->fd;
            o->fd = -1;
        }
    }
    if (old)
        qt_listen_close(old);
    return 0;
}

void qt_listen_close(qt_config *cfg)
{
    for (qt_listener *l = cfg->listeners; l; l = l->next) {
        if (l->fd >= 0)
            close(l->fd);
        l->fd = -1;
    }
}
