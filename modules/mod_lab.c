/*
 * mod_lab: handlers that stand in for real application work, for the
 * benchmarks and the MPM tests.  Each one waits or computes through the
 * handler wait API, so what it costs depends on the MPM: a sleeping
 * request holds a process under prefork, a thread under worker and only a
 * parked coroutine under event and hybrid.
 *
 *     LoadModule lab_module modules/mod_lab.so
 *     <Location /lab>
 *         SetHandler lab
 *     </Location>
 *
 *   /lab/hello            a tiny fixed response
 *   /lab/sleep?ms=N       answers after N ms (qt_sleep_ms), N <= 60000
 *   /lab/hash?kb=N        SHA-256 over N KiB (CPU work), N <= 65536
 *   /lab/backend?port=P   sends a line to 127.0.0.1:P, answers its reply
 */
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "module.h"
#include "mpm.h"
#include "request.h"

#define MAX_SLEEP_MS 60000
#define MAX_HASH_KB 65536
#define BACKEND_TIMEOUT_MS 5000
#define BACKEND_REPLY_MAX 4096

static const char hello_body[] = "hello from lab\n";

/* Value of integer query parameter `name`, clamped to [0, max]; -1 if absent or bad. */
static long query_long(const qt_request *r, const char *name, long max)
{
    size_t len = strlen(name);

    for (const char *a = r->args; a && *a; ) {
        size_t n = strcspn(a, "&;");
        if (n > len && strncmp(a, name, len) == 0 && a[len] == '=') {
            char *end;
            long v = strtol(a + len + 1, &end, 10);
            if (end == a + len + 1 || (end != a + n) || v < 0)
                return -1;
            return v > max ? max : v;
        }
        a += n + (a[n] != '\0');
    }
    return -1;
}

static int text(qt_request *r, const char *body, size_t len)
{
    qt_set_content_type(r, "text/plain");
    qt_header_set(r, "Cache-Control", "no-store");
    return qt_respond(r, 200, body, len);
}

static int lab_hello(qt_request *r)
{
    return text(r, hello_body, sizeof hello_body - 1);
}

static int lab_sleep(qt_request *r)
{
    long ms = query_long(r, "ms", MAX_SLEEP_MS);
    const char *body;

    if (ms < 0)
        return 400;
    qt_sleep_ms(ms);
    body = qt_psprintf(r->pool, "slept %ld ms\n", ms);
    return text(r, body, strlen(body));
}

/* Hashes kb KiB of a fixed pattern; hex digest into out[65]. */
static bool sha256_kib(long kb, char out[65])
{
    unsigned char block[1024], md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = false;

    if (!ctx)
        return false;
    for (size_t i = 0; i < sizeof block; i++)
        block[i] = (unsigned char)i;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto cleanup;
    for (long i = 0; i < kb; i++)
        if (EVP_DigestUpdate(ctx, block, sizeof block) != 1)
            goto cleanup;
    if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
        goto cleanup;
    for (unsigned i = 0; i < mdlen && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    ok = true;
cleanup:
    EVP_MD_CTX_free(ctx);
    return ok;
}

static int lab_hash(qt_request *r)
{
    long kb = query_long(r, "kb", MAX_HASH_KB);
    char hex[65] = "";
    const char *body;

    if (kb < 0)
        return 400;
    if (!sha256_kib(kb, hex))
        return 500;
    body = qt_psprintf(r->pool, "sha256 %ld KiB %s\n", kb, hex);
    return text(r, body, strlen(body));
}

/* One line out, one reply back (up to its first newline or EOF). */
static ssize_t backend_round_trip(int fd, const char *line, char *buf, size_t cap,
                                  int64_t deadline)
{
    size_t have = 0;

    if (qt_fd_write(fd, line, strlen(line), deadline) != QT_OK)
        return QT_ERROR;
    while (have < cap && !memchr(buf, '\n', have)) {
        ssize_t n = qt_fd_read(fd, buf + have, cap - have, deadline);
        if (n < 0)
            return n;
        if (n == 0)
            break;
        have += (size_t)n;
    }
    return (ssize_t)have;
}

static int lab_backend(qt_request *r)
{
    long port = query_long(r, "port", 65535);
    int64_t deadline = qt_now_ms() + BACKEND_TIMEOUT_MS;
    char *reply = qt_palloc(r->pool, BACKEND_REPLY_MAX);
    ssize_t n;
    int fd;

    if (port < 1)
        return 400;
    fd = qt_tcp_connect("127.0.0.1", (int)port, deadline);
    if (fd < 0)
        return 502;
    n = backend_round_trip(fd, "ping from lab\n", reply, BACKEND_REPLY_MAX, deadline);
    close(fd);
    if (n == QT_TIMEOUT)
        return 504;
    if (n <= 0)
        return 502;
    return text(r, reply, (size_t)n);
}

static const struct {
    const char *name;
    int (*fn)(qt_request *r);
} endpoints[] = {
    { "hello", lab_hello },
    { "sleep", lab_sleep },
    { "hash", lab_hash },
    { "backend", lab_backend },
};

/* Routes on the last path segment, wherever <Location> mounted us. */
static int lab_handler(qt_request *r)
{
    const char *slash = strrchr(r->path, '/');
    const char *leaf = slash ? slash + 1 : r->path;

    if (r->method_number != QT_M_GET && r->method_number != QT_M_HEAD)
        return 405;
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++)
        if (strcmp(leaf, endpoints[i].name) == 0)
            return endpoints[i].fn(r);
    return 404;
}

const qt_module lab_module = {
    QT_MODULE_HEADER("lab_module"),
    .handlers = (const qt_handler[]){ { "lab", lab_handler }, { NULL, NULL } },
};
