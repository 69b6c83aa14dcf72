/* Daemon plumbing shared by main() and the MPMs: pid file, detaching. */
#ifndef QT_PROCESS_H
#define QT_PROCESS_H

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"

/* Forks into the background (setsid, chdir /, stdio to /dev/null). */
int qt_daemonize(char *err, size_t errlen);
/*
 * Tells the parent left behind by qt_daemonize() that startup finished (pid
 * file written), so it exits 0; if the daemon exits first the parent exits
 * 1.  No-op when the server did not detach.
 */
void qt_daemon_ready(void);
int qt_pidfile_write(const char *path, char *err, size_t errlen);
/* Pid in the file, 0 if missing, -1 if corrupt. */
pid_t qt_pidfile_read(const char *path);
void qt_pidfile_remove(const char *path);

/* When running as root: User and Group exist (checked before detaching and
 * before a reload, so a typo never starts children that cannot run). */
int qt_check_user(const qt_config *cfg, char *err, size_t errlen);

#endif
