/*
 * HTTP-date (RFC 9110 5.6.7).  Formatting uses fixed English names, never
 * strftime, so that a server started under another locale still speaks
 * HTTP; parsing accepts the three historical forms and nothing else.
 */
#include "httpdate.h"

#include <string.h>

static const char wday_short[7][4] = {
    "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
};
static const char *const wday_long[7] = {
    "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"
};
static const char month_short[12][4] = {
    "Jan", "Feb", "Mar", "Apr", "May", "Jun",
    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

static char *put_digits(char *o, int v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        o[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return o + width;
}

void qt_httpdate_format(time_t t, char out[QT_HTTPDATE_LEN])
{
    struct tm tm;
    char *o = out;
    int year;

    if (gmtime_r(&t, &tm) == NULL) {
        time_t zero = 0;
        gmtime_r(&zero, &tm);
    }
    /* IMF-fixdate has room for four year digits only. */
    year = tm.tm_year + 1900;
    year = year < 0 ? 0 : year > 9999 ? 9999 : year;
    memcpy(o, wday_short[tm.tm_wday], 3);
    o += 3;
    *o++ = ',';
    *o++ = ' ';
    o = put_digits(o, tm.tm_mday, 2);
    *o++ = ' ';
    memcpy(o, month_short[tm.tm_mon], 3);
    o += 3;
    *o++ = ' ';
    o = put_digits(o, year, 4);
    *o++ = ' ';
    o = put_digits(o, tm.tm_hour, 2);
    *o++ = ':';
    o = put_digits(o, tm.tm_min, 2);
    *o++ = ':';
    o = put_digits(o, tm.tm_sec, 2);
    memcpy(o, " GMT", 5);
}

/* ---------------------------------------------------------------- parsing */

/* Reads exactly n digits at *sp. */
static bool digits(const char **sp, int n, int *v)
{
    const char *s = *sp;
    int x = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    *sp = s + n;
    return true;
}

static bool lit(const char **sp, const char *want)
{
    size_t n = strlen(want);

    if (strncmp(*sp, want, n) != 0)
        return false;
    *sp += n;
    return true;
}

static bool month(const char **sp, int *mon)
{
    for (int i = 0; i < 12; i++) {
        if (strncmp(*sp, month_short[i], 3) == 0) {
            *mon = i;
            *sp += 3;
            return true;
        }
    }
    return false;
}

/* "hh:mm:ss" */
static bool clock_time(const char **sp, struct tm *tm)
{
    return digits(sp, 2, &tm->tm_hour) && lit(sp, ":")
        && digits(sp, 2, &tm->tm_min) && lit(sp, ":")
        && digits(sp, 2, &tm->tm_sec);
}

/* Which weekday name starts s; -1 if none. */
static int weekday(const char *s, bool long_form)
{
    for (int i = 0; i < 7; i++) {
        const char *name = long_form ? wday_long[i] : wday_short[i];
        if (strncmp(s, name, strlen(name)) == 0)
            return i;
    }
    return -1;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" */
static bool parse_imf(const char *s, struct tm *tm)
{
    if (weekday(s, false) < 0)
        return false;
    s += 3;
    return lit(&s, ", ") && digits(&s, 2, &tm->tm_mday) && lit(&s, " ")
        && month(&s, &tm->tm_mon) && lit(&s, " ")
        && digits(&s, 4, &tm->tm_year) && lit(&s, " ")
        && clock_time(&s, tm) && lit(&s, " GMT") && *s == '\0';
}

/*
 * RFC 9110 5.6.7: a two-digit year more than 50 years in the future is
 * the most recent past year with those last two digits.
 */
static int full_year(int yy)
{
    time_t now = time(NULL);
    struct tm tm;
    int cur = gmtime_r(&now, &tm) ? tm.tm_year + 1900 : 1970;
    int year = cur - cur % 100 + yy;

    if (year > cur + 50)
        year -= 100;
    return year;
}

/* "Sunday, 06-Nov-94 08:49:37 GMT" */
static bool parse_rfc850(const char *s, struct tm *tm)
{
    int wd = weekday(s, true);
    int yy;

    if (wd < 0)
        return false;
    s += strlen(wday_long[wd]);
    if (!(lit(&s, ", ") && digits(&s, 2, &tm->tm_mday) && lit(&s, "-")
          && month(&s, &tm->tm_mon) && lit(&s, "-") && digits(&s, 2, &yy)
          && lit(&s, " ") && clock_time(&s, tm) && lit(&s, " GMT") && *s == '\0'))
        return false;
    tm->tm_year = full_year(yy);
    return true;
}

/* "Sun Nov  6 08:49:37 1994": the day is space-padded to two characters. */
static bool parse_asctime(const char *s, struct tm *tm)
{
    if (weekday(s, false) < 0)
        return false;
    s += 3;
    if (!(lit(&s, " ") && month(&s, &tm->tm_mon) && lit(&s, " ")))
        return false;
    if (*s == ' ') {
        s++;
        if (!digits(&s, 1, &tm->tm_mday))
            return false;
    } else if (!digits(&s, 2, &tm->tm_mday)) {
        return false;
    }
    return lit(&s, " ") && clock_time(&s, tm) && lit(&s, " ")
        && digits(&s, 4, &tm->tm_year) && *s == '\0';
}

static bool fields_valid(const struct tm *tm)
{
    static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int y = tm->tm_year;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    if (tm->tm_mday < 1 || tm->tm_mday > mdays[tm->tm_mon])
        return false;
    if (tm->tm_mon == 1 && tm->tm_mday == 29 && !leap)
        return false;
    /* 60 is a leap second; timegm folds it into the next minute. */
    return tm->tm_hour < 24 && tm->tm_min < 60 && tm->tm_sec <= 60;
}

bool qt_httpdate_parse(const char *s, time_t *t)
{
    struct tm tm;

    if (s == NULL)
        return false;
    memset(&tm, 0, sizeof tm);
    if (!parse_imf(s, &tm) && !parse_rfc850(s, &tm) && !parse_asctime(s, &tm))
        return false;
    if (!fields_valid(&tm))
        return false;
    tm.tm_year -= 1900;   /* the parsers leave the full year */
    *t = timegm(&tm);
    return true;
}
