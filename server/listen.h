/* Listening sockets: bound by the master, kept across reloads. */
#ifndef QT_LISTEN_H
#define QT_LISTEN_H

#include "config.h"

/*
 * Binds every Listen of cfg.  Sockets of `old` (may be NULL) with the same
 * address are taken over instead of re-bound, so a reload never refuses a
 * connection; those no longer configured are closed.  -1 with err.
 */
int qt_listen_open(qt_config *cfg, qt_config *old, char *err, size_t errlen);
void qt_listen_close(qt_config *cfg);

#endif
