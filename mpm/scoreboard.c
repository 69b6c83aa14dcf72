/* The shared-memory scoreboard (see scoreboard.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* accept4, pipe2, ppoll */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "mpm.h"
#include "scoreboard.h"

/* Set once in the master before any fork; children inherit it read-only. */
static qt_scoreboard *current_scoreboard;

qt_scoreboard *qt_scoreboard_create(unsigned nprocs, unsigned nslots)
{
    size_t head = sizeof(qt_scoreboard);
    size_t procs = (size_t)nprocs * sizeof(qt_sb_process);
    size_t slots = (size_t)nprocs * nslots * sizeof(qt_sb_slot);
    size_t size = head + procs + slots;
    unsigned char *mem;
    qt_scoreboard *sb;

    mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        /* Same policy as an allocation failure: nothing sane to do. */
        fprintf(stderr, "quintet: cannot map a %zu-byte scoreboard\n", size);
        abort();
    }
    sb = (qt_scoreboard *)mem;          /* the kernel hands out zeroed pages */
    sb->nprocs = nprocs;
    sb->nslots = nslots;
    sb->size = size;
    sb->procs = (qt_sb_process *)(mem + head);
    sb->slots = (qt_sb_slot *)(mem + head + procs);
    sb->restart_time = time(NULL);
    return sb;
}

void qt_scoreboard_destroy(qt_scoreboard *sb)
{
    if (!sb)
        return;
    if (current_scoreboard == sb)
        current_scoreboard = NULL;
    munmap(sb, sb->size);
}

qt_sb_slot *qt_sb_slot_at(qt_scoreboard *sb, unsigned proc, unsigned i)
{
    return &sb->slots[(size_t)proc * sb->nslots + i];
}

void qt_sb_clear_process(qt_scoreboard *sb, unsigned proc)
{
    qt_sb_process *p = &sb->procs[proc];

    for (unsigned i = 0; i < sb->nslots; i++)
        atomic_store(&qt_sb_slot_at(sb, proc, i)->state, QT_SB_DEAD);
    atomic_store(&p->quiescing, 0);
    atomic_store(&p->generation, 0);
    atomic_store(&p->pid, 0);
}

void qt_scoreboard_set_current(qt_scoreboard *sb)
{
    current_scoreboard = sb;
}

qt_scoreboard *qt_scoreboard_current(void)
{
    return current_scoreboard;
}

void qt_sb_set_state(void *slot, enum qt_sb_state state)
{
    qt_sb_slot *s = slot;

    if (!s)
        return;
    atomic_store(&s->state, (int)state);
    atomic_store(&s->last_used_ms, qt_coarse_now_ms());
}

/* Bounded copy that always terminates; status pages show a prefix. */
/* Truncating copy; per request, so no snprintf. */
static void copy_field(char *dst, size_t size, const char *src)
{
    size_t n = src ? strnlen(src, size - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

void qt_sb_note_request(void *slot, const char *client, const char *vhost,
                        const char *request_line)
{
    qt_sb_slot *s = slot;

    if (!s)
        return;
    copy_field(s->client, sizeof s->client, client);
    copy_field(s->vhost, sizeof s->vhost, vhost);
    copy_field(s->request, sizeof s->request, request_line);
    atomic_fetch_add(&s->requests, 1);
    qt_sb_set_state(s, QT_SB_BUSY_WRITE);
}

void qt_sb_note_done(void *slot, uint64_t bytes)
{
    qt_sb_slot *s = slot;

    if (!s)
        return;
    atomic_fetch_add(&s->bytes, bytes);
}

const char *qt_sb_state_name(enum qt_sb_state state)
{
    static const char *const names[] = {
        [QT_SB_DEAD] = "dead", [QT_SB_STARTING] = "starting",
        [QT_SB_READY] = "ready", [QT_SB_BUSY_READ] = "reading",
        [QT_SB_BUSY_WRITE] = "writing", [QT_SB_KEEPALIVE] = "keepalive",
        [QT_SB_LOGGING] = "logging", [QT_SB_CLOSING] = "closing",
        [QT_SB_GRACEFUL] = "graceful",
    };

    if ((unsigned)state >= sizeof names / sizeof names[0])
        return "unknown";
    return names[state];
}
