/*
 * The small-file cache: see filecache.h for the contract and the
 * staleness rules.  A chained hash table on the path plus an LRU list, one
 * per process, behind one mutex.
 */
#include "filecache.h"
#include "mpm.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NBUCKETS 1024u               /* power of two */
/* A file is cached only if its last change is in a second before the
 * previous one: a later write then always gets a different timestamp,
 * even on a filesystem with one-second timestamps. */
#define SETTLE_SECONDS 1

typedef struct fc_entry {
    struct fc_entry *chain;          /* next in the hash bucket */
    struct fc_entry *newer, *older;  /* LRU list */
    uint64_t hash;
    struct stat st;                  /* as when the bytes were read */
    int64_t checked_ms;              /* when st was last confirmed (coarse clock) */
    size_t cost;                     /* bytes charged against the budget */
    char *data;                      /* size bytes, right after path */
    char path[];
} fc_entry;

/* Process-wide state, like the error log: every thread of the process
 * shares it, and the lock is never held across a wait. */
static struct {
    pthread_mutex_t lock;
    fc_entry *buckets[NBUCKETS];
    fc_entry *newest, *oldest;
    size_t entries, bytes;
} cache = { .lock = PTHREAD_MUTEX_INITIALIZER };

static uint64_t path_hash(const char *s)
{
    uint64_t h = UINT64_C(14695981039346656037);       /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    return h;
}

static bool same_time(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static bool stat_same(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           same_time(a->st_mtim, b->st_mtim) && same_time(a->st_ctim, b->st_ctim);
}

/* ----------------------------------------------------------- list and table
 * Callers hold cache.lock. */

static void lru_unlink(fc_entry *e)
{
    *(e->newer ? &e->newer->older : &cache.newest) = e->older;
    *(e->older ? &e->older->newer : &cache.oldest) = e->newer;
}

static void lru_push_newest(fc_entry *e)
{
    e->newer = NULL;
    e->older = cache.newest;
    *(cache.newest ? &cache.newest->newer : &cache.oldest) = e;
    cache.newest = e;
}

static fc_entry **bucket_slot(uint64_t hash, const char *path)
{
    fc_entry **slot = &cache.buckets[hash & (NBUCKETS - 1)];
    while (*slot && ((*slot)->hash != hash || strcmp((*slot)->path, path) != 0))
        slot = &(*slot)->chain;
    return slot;
}

static void entry_remove(fc_entry **slot)
{
    fc_entry *e = *slot;
    *slot = e->chain;
    lru_unlink(e);
    cache.entries--;
    cache.bytes -= e->cost;
    free(e);
}

static void evict_to(size_t budget)
{
    while (cache.oldest && cache.bytes > budget) {
        fc_entry *old = cache.oldest;
        entry_remove(bucket_slot(old->hash, old->path));
    }
}

/* ----------------------------------------------------------- lookups */

/* A fresh stat agrees with the entry: trust it for another window.  One
 * that disagrees is left for the content lookup to drop. */
static void confirm(uint64_t hash, const char *path, const struct stat *st, int64_t now)
{
    pthread_mutex_lock(&cache.lock);
    fc_entry *e = *bucket_slot(hash, path);
    if (e && stat_same(&e->st, st))
        e->checked_ms = now;
    pthread_mutex_unlock(&cache.lock);
}

/* Copies a fresh entry's bytes into p; NULL on a miss (a stale entry is
 * dropped on the way). */
static const char *lookup(qt_pool *p, uint64_t hash, const char *path,
                          const struct stat *st)
{
    char *copy = NULL;

    pthread_mutex_lock(&cache.lock);
    fc_entry **slot = bucket_slot(hash, path);
    if (*slot && !stat_same(&(*slot)->st, st))
        entry_remove(slot);
    else if (*slot) {
        copy = qt_palloc(p, (size_t)st->st_size + 1);
        memcpy(copy, (*slot)->data, (size_t)st->st_size);
        lru_unlink(*slot);
        lru_push_newest(*slot);
    }
    pthread_mutex_unlock(&cache.lock);
    return copy;
}

static void insert(uint64_t hash, const char *path, const struct stat *st,
                   const char *data, size_t limit)
{
    size_t plen = strlen(path) + 1, cost = sizeof(fc_entry) + plen + (size_t)st->st_size;
    if (cost > limit / 4)            /* one file never takes over the budget */
        return;
    fc_entry *e = qt_xmalloc(cost);
    *e = (fc_entry){ .hash = hash, .st = *st, .checked_ms = qt_coarse_now_ms(),
                     .cost = cost };
    memcpy(e->path, path, plen);
    e->data = e->path + plen;
    memcpy(e->data, data, (size_t)st->st_size);

    pthread_mutex_lock(&cache.lock);
    fc_entry **slot = bucket_slot(hash, path);
    if (*slot)                       /* another thread was first */
        entry_remove(slot);
    e->chain = cache.buckets[hash & (NBUCKETS - 1)];
    cache.buckets[hash & (NBUCKETS - 1)] = e;
    lru_push_newest(e);
    cache.entries++;
    cache.bytes += cost;
    evict_to(limit);
    pthread_mutex_unlock(&cache.lock);
}

/* Reads the whole file into p.  NULL (errno set) if it cannot be opened or
 * no longer is the file the caller stat'ed: the caller then serves it the
 * uncached way, which reports the error. */
static char *read_file(qt_pool *p, const char *path, const struct stat *st)
{
    size_t size = (size_t)st->st_size, got = 0;
    char *data = NULL;
    struct stat now;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return NULL;
    if (fstat(fd, &now) != 0 || !stat_same(&now, st)) {
        errno = ESTALE;
        goto done;
    }
    data = qt_palloc(p, size + 1);
    while (got < size) {
        ssize_t n = read(fd, data + got, size - got);
        if (n <= 0) {
            data = NULL;
            errno = n == 0 ? ESTALE : errno;
            goto done;
        }
        got += (size_t)n;
    }
done:
    close(fd);
    return data;
}

const char *qt_filecache_get(qt_pool *p, const char *path, const struct stat *st,
                             size_t limit)
{
    uint64_t hash = path_hash(path);
    const char *data = limit ? lookup(p, hash, path, st) : NULL;
    if (data)
        return data;
    data = read_file(p, path, st);
    time_t settled = time(NULL) - SETTLE_SECONDS;
    if (data && limit && st->st_mtim.tv_sec < settled && st->st_ctim.tv_sec < settled)
        insert(hash, path, st, data, limit);
    return data;
}

int qt_filecache_stat(const char *path, struct stat *st, int64_t valid_ms)
{
    uint64_t hash = path_hash(path);
    int64_t now = qt_coarse_now_ms();
    bool hit = false;

    if (valid_ms > 0) {
        pthread_mutex_lock(&cache.lock);
        fc_entry *e = *bucket_slot(hash, path);
        if (e && now - e->checked_ms < valid_ms) {
            *st = e->st;
            hit = true;
        }
        pthread_mutex_unlock(&cache.lock);
    }
    if (hit)
        return 0;
    int rc = stat(path, st);
    if (rc == 0 && valid_ms > 0)
        confirm(hash, path, st, now);
    return rc;
}

void qt_filecache_clear(void)
{
    pthread_mutex_lock(&cache.lock);
    evict_to(0);
    pthread_mutex_unlock(&cache.lock);
}

void qt_filecache_stats(size_t *entries, size_t *bytes)
{
    pthread_mutex_lock(&cache.lock);
    *entries = cache.entries;
    *bytes = cache.bytes;
    pthread_mutex_unlock(&cache.lock);
}
