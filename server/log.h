/*
 * Error log (ErrorLog, LogLevel) and access logs (LogFormat, CustomLog).
 *
 * Error log lines read like Apache's:
 *   [Mon Nov 30 12:00:00.123456 2026] [core:error] [pid 42] [client 127.0.0.1:5555] QT0404: message
 * Every message has a stable id so a stranger can grep for it.
 * The log files are opened by the master (before privileges are dropped)
 * and inherited by children; qt_log_reopen() on a graceful restart makes
 * logrotate work.
 */
#ifndef QT_LOG_H
#define QT_LOG_H

#include <stdarg.h>

#include "config.h"

enum qt_log_level {
    QT_LOG_EMERG, QT_LOG_ALERT, QT_LOG_CRIT, QT_LOG_ERR, QT_LOG_WARN,
    QT_LOG_NOTICE, QT_LOG_INFO, QT_LOG_DEBUG, QT_LOG_TRACE1
};

/* "warn" -> QT_LOG_WARN; -1 if unknown. */
int qt_log_level_from(const char *name);

/* Opens ErrorLog and every CustomLog of cfg; error in err. stderr until then. */
int qt_log_open(qt_config *cfg, char *err, size_t errlen);
/* Reopens the files for a new config (graceful restart / logrotate). */
int qt_log_reopen(qt_config *cfg, char *err, size_t errlen);
/* Closes files owned by cfg. */
void qt_log_close(qt_config *cfg);
/* Closes one access log file (a pool cleanup of the config). */
void qt_log_close_file(qt_logfile *lf);
/* Sets the level threshold used by qt_log(); also done by qt_log_open. */
void qt_log_set_level(int level);
/* Module tag printed in [module:level]; default "core". */

void qt_log(int level, const char *module, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void qt_vlog(int level, const char *module, const char *id, const char *client,
             const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

typedef struct qt_request qt_request;
/* Same, with [client ip:port] from the request. */
void qt_rlog(const qt_request *r, int level, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes one line per CustomLog of the request's server. */
void qt_access_log(const qt_request *r);

#endif
