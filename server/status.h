/*
 * server-status: the built-in handler that renders the scoreboard
 * (`SetHandler server-status`; `?auto` for the machine-readable form).
 *
 * The running MPM may add its own figures (coroutines, parked keep-alive
 * connections ...) through qt_mpm.status: it is called in the process that
 * serves the status request and appends "Key: value" items with
 * qt_status_add(); they appear in both forms, in the order added.  Keys are
 * one word, like Apache's (ConnsAsyncKeepAlive).
 */
#ifndef QT_STATUS_H
#define QT_STATUS_H

#include "module.h"
#include "pool.h"

typedef struct qt_status_item {
    const char *key;
    const char *value;
    struct qt_status_item *next;
} qt_status_item;

struct qt_status_report {
    qt_pool *pool;                    /* the request's: for values */
    qt_status_item *items;            /* in the order added */
    qt_status_item **tail;
};

/* Appends "key: value" (value formatted into rep->pool). */
void qt_status_add(struct qt_status_report *rep, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The built-in module that registers the "server-status" handler. */
extern const qt_module qt_status_module;

#endif
