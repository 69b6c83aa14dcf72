/*
 * The streaming gzip transform (see deflate.h).  Output leaves through the
 * caller's emit callback one buffer at a time, so memory stays bounded no
 * matter how long the stream is: nothing is ever buffered whole.
 */
#include "deflate.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "module.h"

#define GZIP_WINDOW (15 + 16)        /* 32 KiB window, gzip wrapper */
#define MEM_LEVEL 8

int qt_deflate_init(qt_deflate *d, int level)
{
    memset(&d->zs, 0, sizeof(d->zs));
    d->finished = false;
    if (level < 1 || level > 9)
        level = Z_DEFAULT_COMPRESSION;
    d->ready = deflateInit2(&d->zs, level, Z_DEFLATED, GZIP_WINDOW, MEM_LEVEL,
                            Z_DEFAULT_STRATEGY) == Z_OK;
    return d->ready ? QT_OK : QT_ERROR;
}

/*
 * Runs deflate with `mode` until zlib has taken all input and, for a flush
 * or finish, has nothing more to say.  zlib signals "done" for those by
 * leaving room in the output buffer.
 */
static int run(qt_deflate *d, int mode, qt_deflate_emit emit, void *arg)
{
    for (;;) {
        d->zs.next_out = d->out;
        d->zs.avail_out = sizeof(d->out);
        int z = deflate(&d->zs, mode);
        if (z == Z_STREAM_ERROR)
            return QT_ERROR;
        size_t have = sizeof(d->out) - d->zs.avail_out;
        if (have > 0) {
            int rc = emit(arg, d->out, have);
            if (rc != QT_OK)
                return rc;
        }
        if (mode == Z_FINISH && z == Z_STREAM_END)
            return QT_OK;
        if (mode != Z_FINISH && d->zs.avail_in == 0 && d->zs.avail_out > 0)
            return QT_OK;
    }
}

int qt_deflate_feed(qt_deflate *d, const void *in, size_t n, qt_deflate_emit emit, void *arg)
{
    if (!d->ready || d->finished)
        return QT_ERROR;
    const unsigned char *p = in;
    while (n > 0) {
        /* avail_in is a uInt: feed very large inputs in slices. */
        uInt take = n > (1u << 30) ? (1u << 30) : (uInt)n;
        d->zs.next_in = (Bytef *)p;
        d->zs.avail_in = take;
        int rc = run(d, Z_NO_FLUSH, emit, arg);
        if (rc != QT_OK)
            return rc;
        p += take;
        n -= take;
    }
    return QT_OK;
}

int qt_deflate_flush(qt_deflate *d, qt_deflate_emit emit, void *arg)
{
    if (!d->ready || d->finished)
        return QT_ERROR;
    d->zs.next_in = NULL;
    d->zs.avail_in = 0;
    return run(d, Z_SYNC_FLUSH, emit, arg);
}

int qt_deflate_finish(qt_deflate *d, qt_deflate_emit emit, void *arg)
{
    if (!d->ready || d->finished)
        return QT_ERROR;
    d->zs.next_in = NULL;
    d->zs.avail_in = 0;
    int rc = run(d, Z_FINISH, emit, arg);
    if (rc == QT_OK)
        d->finished = true;
    return rc;
}

void qt_deflate_end(qt_deflate *d)
{
    if (d->ready)
        deflateEnd(&d->zs);
    d->ready = false;
}

/* ------------------------------------------------------- HTTP helpers */

static bool is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* The q of one element's parameters (after the coding); -1 if malformed. */
static double element_q(const char *p, const char *end)
{
    double q = 1.0;
    while (p < end) {
        while (p < end && (is_ows(*p) || *p == ';'))
            p++;
        if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            char num[16];
            size_t n = 0;
            for (p += 2; p < end && !is_ows(*p) && *p != ';' && n < sizeof(num) - 1; p++)
                num[n++] = *p;
            num[n] = '\0';
            char *stop;
            q = strtod(num, &stop);
            if (n == 0 || *stop || q < 0 || q > 1)
                return -1;
        }
        while (p < end && *p != ';')
            p++;
    }
    return q;
}

bool qt_accepts_gzip(const char *ae)
{
    if (!ae)
        return false;
    double gzip_q = -2, star_q = -2;     /* -2: not named */
    const char *p = ae;
    while (*p) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        while (p < end && is_ows(*p))
            p++;
        const char *tok = p;
        while (p < end && *p != ';' && !is_ows(*p))
            p++;
        size_t n = (size_t)(p - tok);
        double q = element_q(p, end);
        if ((n == 4 && strncasecmp(tok, "gzip", 4) == 0) ||
            (n == 6 && strncasecmp(tok, "x-gzip", 6) == 0))
            gzip_q = q > gzip_q ? q : gzip_q;
        else if (n == 1 && *tok == '*')
            star_q = q;
        p = *end ? end + 1 : end;
    }
    double q = gzip_q > -2 ? gzip_q : star_q;
    return q > 0;
}

char *qt_etag_gzip(qt_pool *p, const char *etag)
{
    if (!etag)
        return NULL;
    size_t n = strlen(etag);
    size_t pre = strncmp(etag, "W/", 2) == 0 ? 2 : 0;
    if (n < pre + 2 || etag[pre] != '"' || etag[n - 1] != '"')
        return NULL;
    return qt_psprintf(p, "%.*s-gzip\"", (int)(n - 1), etag);
}

char *qt_etag_list_ungzip(qt_pool *p, const char *list)
{
    if (!list || !strstr(list, "-gzip\""))
        return NULL;
    char *out = qt_pstrdup(p, list);
    const char *s = list;
    const char *hit;
    while ((hit = strstr(s, "-gzip\"")) != NULL) {
        const char *open = hit;
        while (open > list && open[-1] != '"')
            open--;
        if (open > list)         /* found the opening quote of this tag */
            out = qt_psprintf(p, "%s, \"%.*s\"", out, (int)(hit - open), open);
        s = hit + 6;
    }
    return out;
}
