/*
 * A per-process cache of small static files' bytes (FileCacheSize).
 *
 * Serving a 1 KiB file costs open, pread and close on top of the stat the
 * router already takes: half the system calls of a keep-alive request.  The
 * cache keeps the bytes of small files and hands out a copy when the
 * router's fresh stat still matches the cached one (device, inode, size,
 * mtime and ctime to the nanosecond), so a change to a file is seen on the
 * very next request, as without a cache.  Files changed within the last
 * second or two are not cached: a write that lands in the same timestamp
 * tick as our read could otherwise go unnoticed.
 *
 * FileCacheValid trades that for one system call less: for that many
 * seconds after a cached file's stat was last confirmed, the router's
 * stat is answered from the cache too (lighttpd's default stat cache works
 * the same way), so a change can go unseen for that long.  0 restores the
 * stat on every request.
 *
 * One cache per process, shared by its threads behind a mutex that is never
 * held across a wait (so hybrid's migrating coroutines are safe).  Eviction
 * is least recently used, over entry bytes including bookkeeping.
 */
#ifndef QT_FILECACHE_H
#define QT_FILECACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "pool.h"

/* Files larger than this are never cached: sendfile serves them with no
 * copy at all. */
#define QT_FILECACHE_MAX_FILE (64 * 1024)

/*
 * The bytes of the regular file `path`, whose stat the caller has just
 * taken, copied into pool p (so they outlive any eviction).  Reads the file
 * on a miss and caches it if it fits `limit` (the process's byte budget,
 * 0 = no caching).  Returns NULL with errno set if the file cannot be read.
 */
const char *qt_filecache_get(qt_pool *p, const char *path, const struct stat *st,
                             size_t limit);

/*
 * stat(2) for the router: answered from the cache, with no system call,
 * when path is cached and its stat was confirmed less than valid_ms ago.
 */
int qt_filecache_stat(const char *path, struct stat *st, int64_t valid_ms);

/* Drops every entry (tests; a process that wants its memory back). */
void qt_filecache_clear(void);

/* Entries and bytes held now (server-status, tests). */
void qt_filecache_stats(size_t *entries, size_t *bytes);

#endif
