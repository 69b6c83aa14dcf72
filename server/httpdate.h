/* HTTP-date (RFC 9110 5.6.7): formatting and the three accepted parse forms. */
#ifndef QT_HTTPDATE_H
#define QT_HTTPDATE_H

#include <stdbool.h>
#include <time.h>

#define QT_HTTPDATE_LEN 30   /* "Sun, 06 Nov 1994 08:49:37 GMT" + NUL */

/* Writes IMF-fixdate of t into out (QT_HTTPDATE_LEN bytes). */
void qt_httpdate_format(time_t t, char out[QT_HTTPDATE_LEN]);
/* Parses IMF-fixdate, RFC 850 and asctime forms; false if invalid. */
bool qt_httpdate_parse(const char *s, time_t *t);

#endif
