/*
 * server-status: a built-in handler rendering the shared scoreboard, in
 * HTML or, with `?auto`, as "Key: value" lines like Apache's mod_status.
 *
 * It reads a table other processes write at the same time: counters and
 * states are atomics, strings may be caught half rewritten (harmless on a
 * status page; they are always NUL-terminated within their arrays).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "mpm.h"
#include "request.h"
#include "scoreboard.h"
#include "status.h"
#include "version.h"

/* Totals over the whole scoreboard. */
typedef struct sb_totals {
    unsigned long accesses;
    unsigned long long bytes;
    unsigned busy, idle, processes, stopping;
} sb_totals;

void qt_status_add(struct qt_status_report *rep, const char *key, const char *fmt, ...)
{
    qt_status_item *it = qt_pcalloc(rep->pool, sizeof *it);
    char value[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    it->key = qt_pstrdup(rep->pool, key);
    it->value = qt_pstrdup(rep->pool, value);
    *rep->tail = it;
    rep->tail = &it->next;
}

/* Apache's scoreboard letters, so existing parsers read ours. */
static char state_char(int state)
{
    static const char letters[] = {
        [QT_SB_DEAD] = '.', [QT_SB_STARTING] = 'S', [QT_SB_READY] = '_',
        [QT_SB_BUSY_READ] = 'R', [QT_SB_BUSY_WRITE] = 'W', [QT_SB_KEEPALIVE] = 'K',
        [QT_SB_LOGGING] = 'L', [QT_SB_CLOSING] = 'C', [QT_SB_GRACEFUL] = 'G',
    };

    if (state < 0 || (size_t)state >= sizeof letters)
        return '?';
    return letters[state];
}

/* Apache counts as busy every live slot that is neither ready nor starting. */
static void count_slot(sb_totals *t, const qt_sb_slot *s)
{
    int state = atomic_load(&s->state);

    t->accesses += atomic_load(&s->requests);
    t->bytes += atomic_load(&s->bytes);
    if (state == QT_SB_READY)
        t->idle++;
    else if (state != QT_SB_DEAD && state != QT_SB_STARTING)
        t->busy++;
}

static void totals_of(qt_scoreboard *sb, sb_totals *t)
{
    memset(t, 0, sizeof *t);
    for (unsigned p = 0; sb && p < sb->nprocs; p++) {
        if (atomic_load(&sb->procs[p].pid) > 0) {
            t->processes++;
            t->stopping += atomic_load(&sb->procs[p].quiescing) != 0;
        }
        for (unsigned i = 0; i < sb->nslots; i++)
            count_slot(t, qt_sb_slot_at(sb, p, i));
    }
}

static void scoreboard_line(qt_buf *b, qt_scoreboard *sb)
{
    for (unsigned p = 0; sb && p < sb->nprocs; p++)
        for (unsigned i = 0; i < sb->nslots; i++)
            qt_buf_append(b, &(char){ state_char(atomic_load(&qt_sb_slot_at(sb, p, i)->state)) }, 1);
}

/* The MPM's own figures (coroutines ...), if it reports any. */
static qt_status_item *mpm_items(qt_request *r)
{
    struct qt_status_report rep = { .pool = r->pool };

    rep.tail = &rep.items;
    if (r->cfg->mpm && r->cfg->mpm->status)
        r->cfg->mpm->status(&rep);
    return rep.items;
}

static const char *mpm_name(const qt_request *r)
{
    return r->cfg->mpm ? r->cfg->mpm->name : "none";
}

static void render_auto(qt_request *r, qt_buf *b, qt_scoreboard *sb)
{
    sb_totals t;
    long uptime = sb ? (long)(time(NULL) - sb->restart_time) : 0;
    double up = uptime > 0 ? (double)uptime : 1.0;

    totals_of(sb, &t);
    qt_buf_printf(b, "%s\n", r->server->server_name ? r->server->server_name : "localhost");
    qt_buf_printf(b, "ServerVersion: %s/%s\n", QT_SERVER_BASEPRODUCT, QT_SERVER_VERSION);
    qt_buf_printf(b, "ServerMPM: %s\n", mpm_name(r));
    qt_buf_printf(b, "ServerUptimeSeconds: %ld\n", uptime);
    qt_buf_printf(b, "Total Accesses: %lu\n", t.accesses);
    qt_buf_printf(b, "Total kBytes: %llu\n", t.bytes / 1024);
    qt_buf_printf(b, "Uptime: %ld\n", uptime);
    qt_buf_printf(b, "ReqPerSec: %g\n", (double)t.accesses / up);
    qt_buf_printf(b, "BytesPerSec: %g\n", (double)t.bytes / up);
    qt_buf_printf(b, "BytesPerReq: %g\n",
                  t.accesses ? (double)t.bytes / (double)t.accesses : 0.0);
    qt_buf_printf(b, "BusyWorkers: %u\n", t.busy);
    qt_buf_printf(b, "IdleWorkers: %u\n", t.idle);
    qt_buf_printf(b, "Processes: %u\n", t.processes);
    qt_buf_printf(b, "Stopping: %u\n", t.stopping);
    for (const qt_status_item *it = mpm_items(r); it; it = it->next)
        qt_buf_printf(b, "%s: %s\n", it->key, it->value);
    qt_buf_puts(b, "Scoreboard: ");
    scoreboard_line(b, sb);
    qt_buf_puts(b, "\n");
}

/* ------------------------------------------------------------------ HTML */

static void html_summary(qt_request *r, qt_buf *b, qt_scoreboard *sb)
{
    sb_totals t;
    long uptime = sb ? (long)(time(NULL) - sb->restart_time) : 0;

    totals_of(sb, &t);
    qt_buf_printf(b, "<dl><dt>Server Version: %s/%s</dt>\n<dt>Server MPM: ",
                  QT_SERVER_BASEPRODUCT, QT_SERVER_VERSION);
    qt_buf_html_escape(b, mpm_name(r));
    qt_buf_printf(b, "</dt>\n<dt>Server uptime: %ld seconds</dt>\n"
                  "<dt>Total accesses: %lu - Total Traffic: %llu kB</dt>\n"
                  "<dt>%u requests currently being processed, %u idle workers</dt>\n"
                  "<dt>%u processes, %u stopping</dt>\n",
                  uptime, t.accesses, t.bytes / 1024, t.busy, t.idle,
                  t.processes, t.stopping);
    for (const qt_status_item *it = mpm_items(r); it; it = it->next) {
        qt_buf_puts(b, "<dt>");
        qt_buf_html_escape(b, it->key);
        qt_buf_puts(b, ": ");
        qt_buf_html_escape(b, it->value);
        qt_buf_puts(b, "</dt>\n");
    }
    qt_buf_puts(b, "</dl>\n<pre>");
    scoreboard_line(b, sb);
    qt_buf_puts(b, "</pre>\n");
}

static const char legend[] =
    "<p>Scoreboard Key:<br>\n"
    "\"<b><code>_</code></b>\" Waiting for Connection, "
    "\"<b><code>S</code></b>\" Starting up, "
    "\"<b><code>R</code></b>\" Reading Request,<br>\n"
    "\"<b><code>W</code></b>\" Sending Reply, "
    "\"<b><code>K</code></b>\" Keepalive (read), "
    "\"<b><code>L</code></b>\" Logging, "
    "\"<b><code>C</code></b>\" Closing connection,<br>\n"
    "\"<b><code>G</code></b>\" Gracefully finishing, "
    "\"<b><code>.</code></b>\" Open slot with no current process</p>\n";

static void html_row(qt_buf *b, qt_scoreboard *sb, unsigned p, unsigned i)
{
    const qt_sb_slot *s = qt_sb_slot_at(sb, p, i);
    int state = atomic_load(&s->state);

    qt_buf_printf(b, "<tr><td>%u-%u</td><td>%d</td><td>%lu/%lu</td><td><b>%c</b></td>"
                  "<td>%.1f</td><td>", p, i, atomic_load(&sb->procs[p].pid),
                  atomic_load(&s->connections), atomic_load(&s->requests),
                  state_char(state), (double)atomic_load(&s->bytes) / 1024.0);
    qt_buf_html_escape(b, s->client);
    qt_buf_puts(b, "</td><td>");
    qt_buf_html_escape(b, s->vhost);
    qt_buf_puts(b, "</td><td>");
    qt_buf_html_escape(b, s->request);
    qt_buf_puts(b, "</td></tr>\n");
}

/* A row per slot that is live or has served: idle history stays visible. */
static void html_slots(qt_buf *b, qt_scoreboard *sb)
{
    qt_buf_puts(b, "<table border=\"0\"><tr><th>Srv</th><th>PID</th><th>Conn/Acc</th>"
                "<th>M</th><th>kB</th><th>Client</th><th>VHost</th><th>Request</th></tr>\n");
    for (unsigned p = 0; sb && p < sb->nprocs; p++)
        for (unsigned i = 0; i < sb->nslots; i++) {
            const qt_sb_slot *s = qt_sb_slot_at(sb, p, i);

            if (atomic_load(&s->state) != QT_SB_DEAD || atomic_load(&s->requests) > 0)
                html_row(b, sb, p, i);
        }
    qt_buf_puts(b, "</table>\n");
}

static void render_html(qt_request *r, qt_buf *b, qt_scoreboard *sb)
{
    qt_buf_puts(b, "<!DOCTYPE html>\n<html><head><title>Server Status</title></head>\n"
                "<body><h1>Server Status for ");
    qt_buf_html_escape(b, r->server->server_name ? r->server->server_name : "localhost");
    qt_buf_puts(b, "</h1>\n");
    html_summary(r, b, sb);
    qt_buf_puts(b, legend);
    html_slots(b, sb);
    qt_buf_puts(b, "</body></html>\n");
}

static bool wants_auto(const qt_request *r)
{
    const char *a = r->args;

    /* "?auto" alone or among other options ("?refresh=5&auto"). */
    while (a && *a) {
        size_t n = strcspn(a, "&;");
        if (n == 4 && strncmp(a, "auto", 4) == 0)
            return true;
        a += n + (a[n] != '\0');
    }
    return false;
}

static int status_handler(qt_request *r)
{
    qt_scoreboard *sb = qt_scoreboard_current();
    bool text = wants_auto(r);
    qt_buf b;
    int rc;

    if (r->method_number != QT_M_GET && r->method_number != QT_M_HEAD)
        return 405;
    qt_buf_init(&b);
    if (text)
        render_auto(r, &b, sb);
    else
        render_html(r, &b, sb);
    qt_set_content_type(r, text ? "text/plain; charset=ISO-8859-1"
                                : "text/html; charset=ISO-8859-1");
    qt_header_set(r, "Cache-Control", "no-cache");
    rc = qt_respond(r, 200, b.data, b.len);
    qt_buf_free(&b);
    return rc;
}

const qt_module qt_status_module = {
    QT_MODULE_HEADER("status_module"),
    .handlers = (const qt_handler[]){ { "server-status", status_handler }, { NULL, NULL } },
};
