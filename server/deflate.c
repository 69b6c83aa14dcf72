/*
 * The streaming gzip transform (see deflate.h).  Output leaves through the
 * caller's emit callback one buffer at a time, so memory stays bounded no
 * matter how long the stream is: nothing is ever buffered whole.
 */
#include "deflate.h"

#include <string.h>

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
