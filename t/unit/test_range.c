/*
 * Range and conditional requests (server/range.c) and HTTP-dates
 * (server/httpdate.c), which the conditionals are built on.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpdate.h"
#include "pool.h"
#include "range.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------ ranges */

#define NONE QT_RANGE_NONE
#define OK QT_RANGE_OK
#define UNSAT QT_RANGE_UNSATISFIABLE

static const struct {
    const char *name, *header;
    uint64_t size;
    enum qt_range_result rc;
    const char *want;          /* "a-b,c-d" for OK rows */
} range_rows[] = {
    /* RFC 9110 14.1.2, representation of 10000 bytes */
    { "rfc first 500", "bytes=0-499", 10000, OK, "0-499" },
    { "rfc second 500", "bytes=500-999", 10000, OK, "500-999" },
    { "rfc final 500 suffix", "bytes=-500", 10000, OK, "9500-9999" },
    { "rfc final 500 open", "bytes=9500-", 10000, OK, "9500-9999" },
    { "rfc first and last", "bytes=0-0,-1", 10000, OK, "0-0,9999-9999" },
    { "rfc adjacent merged", "bytes=500-600,601-999", 10000, OK, "500-999" },
    { "rfc overlapping merged", "bytes=500-700,601-999", 10000, OK, "500-999" },
    /* RFC 9110 14.1.1 example with whitespace after commas */
    { "rfc three ranges", "bytes=0-999, 4500-5499, -1000", 10000, OK,
      "0-999,4500-5499,9000-9999" },
    /* RFC 9110 14.6 multipart example */
    { "rfc multipart", "bytes=500-999,7000-7999", 8000, OK, "500-999,7000-7999" },
    { "whole file", "bytes=0-", 10000, OK, "0-9999" },
    { "single byte", "bytes=5-5", 10, OK, "5-5" },
    { "unit case-insensitive", "Bytes=0-1", 10, OK, "0-1" },
    { "leading whitespace", "  bytes=0-1", 10, OK, "0-1" },
    { "whitespace around comma", "bytes=0-1 ,\t3-4", 10, OK, "0-1,3-4" },
    { "empty list elements", "bytes=,0-1,, 3-4 ,", 10, OK, "0-1,3-4" },
    { "unsorted sorted", "bytes=6-7,0-1", 10, OK, "0-1,6-7" },
    { "adjacent unsorted merged", "bytes=5-9,0-4", 10, OK, "0-9" },
    { "gap of one kept", "bytes=0-3,5-9", 10, OK, "0-3,5-9" },
    { "contained merged", "bytes=0-100,50-60", 1000, OK, "0-100" },
    { "suffix overlapping open", "bytes=-100,9000-", 10000, OK, "9000-9999" },
    { "last clipped", "bytes=9000-20000", 10000, OK, "9000-9999" },
    { "last max clipped", "bytes=0-18446744073709551615", 10, OK, "0-9" },
    { "suffix larger than file", "bytes=-20000", 10000, OK, "0-9999" },
    { "unsatisfiable one ignored", "bytes=10000-,0-1", 10000, OK, "0-1" },
    { "unsatisfiable open", "bytes=10000-", 10000, UNSAT, NULL },
    { "unsatisfiable closed", "bytes=10000-20000", 10000, UNSAT, NULL },
    { "unsatisfiable all", "bytes=10000-,20000-30000", 10000, UNSAT, NULL },
    { "unsatisfiable max first", "bytes=18446744073709551615-", 10, UNSAT, NULL },
    { "zero suffix", "bytes=-0", 10000, UNSAT, NULL },
    { "empty file open", "bytes=0-", 0, UNSAT, NULL },
    { "empty file suffix", "bytes=-1", 0, UNSAT, NULL },
    { "first after last", "bytes=500-400", 10000, NONE, NULL },
    { "one invalid spoils all", "bytes=0-1,5-2", 10000, NONE, NULL },
    { "other unit", "items=0-1", 10000, NONE, NULL },
    { "no equals", "bytes 0-1", 10000, NONE, NULL },
    { "space before equals", "bytes =0-1", 10000, NONE, NULL },
    { "no specs", "bytes=", 10000, NONE, NULL },
    { "only commas", "bytes=, ,", 10000, NONE, NULL },
    { "lone dash", "bytes=-", 10000, NONE, NULL },
    { "no dash", "bytes=5", 10000, NONE, NULL },
    { "letters", "bytes=a-b", 10000, NONE, NULL },
    { "two dashes", "bytes=1-2-3", 10000, NONE, NULL },
    { "negative suffix", "bytes=--1", 10000, NONE, NULL },
    { "space inside spec", "bytes=0 - 1", 10000, NONE, NULL },
    { "trailing garbage", "bytes=0-1;x", 10000, NONE, NULL },
    { "missing comma", "bytes=0-1 3-4", 10000, NONE, NULL },
    { "first overflow", "bytes=18446744073709551616-", 10000, NONE, NULL },
    { "last overflow", "bytes=0-99999999999999999999", 10000, NONE, NULL },
    { "suffix overflow", "bytes=-18446744073709551616", 10000, NONE, NULL },
    { "empty header", "", 10000, NONE, NULL },
    /* CVE-2011-3192 ("Apache Killer") used 5-0 style reversed ranges */
    { "CVE-2011-3192 reversed", "bytes=0-,5-0,5-1,5-2,5-3", 10000, NONE, NULL },
};

/* Writes ranges as "a-b,c-d". */
static void format_ranges(const qt_range *r, unsigned n, char *out, size_t len)
{
    size_t o = 0;

    out[0] = '\0';
    for (unsigned i = 0; i < n && o < len; i++)
        o += (size_t)snprintf(out + o, len - o, "%s%llu-%llu", i ? "," : "",
                              (unsigned long long)r[i].first,
                              (unsigned long long)r[i].last);
}

START_TEST(test_range_parse)
{
    qt_pool *p = qt_pool_create(1024);
    qt_range *r;
    unsigned n;
    char got[256];
    enum qt_range_result rc = qt_range_parse(p, range_rows[_i].header,
                                             range_rows[_i].size, &r, &n);

    ck_assert_msg(rc == range_rows[_i].rc, "%s: rc %d, want %d",
                  range_rows[_i].name, rc, range_rows[_i].rc);
    if (rc == OK) {
        format_ranges(r, n, got, sizeof got);
        ck_assert_msg(strcmp(got, range_rows[_i].want) == 0, "%s: got %s, want %s",
                      range_rows[_i].name, got, range_rows[_i].want);
    } else {
        ck_assert_msg(n == 0, "%s: n %u for a non-OK result", range_rows[_i].name, n);
    }
    qt_pool_destroy(p);
}
END_TEST

START_TEST(test_range_null_header)
{
    qt_pool *p = qt_pool_create(1024);
    qt_range *r;
    unsigned n;

    ck_assert_int_eq(qt_range_parse(p, NULL, 100, &r, &n), NONE);
    qt_pool_destroy(p);
}
END_TEST

/* "bytes=0-0,2-2,4-4,..." with count ranges: none merge. */
static char *many_ranges(qt_pool *p, unsigned count, bool overlapping)
{
    char *h = qt_palloc(p, 16 + count * 24), *o = h;

    o += sprintf(o, "bytes=");
    for (unsigned i = 0; i < count; i++)
        o += overlapping ? sprintf(o, "%s0-%u", i ? "," : "", i)
                         : sprintf(o, "%s%u-%u", i ? "," : "", 2 * i, 2 * i);
    return h;
}

static const struct {
    const char *name;
    unsigned count;
    bool overlapping;
    enum qt_range_result rc;
    unsigned n;
} many_rows[] = {
    { "MaxRanges exactly", QT_MAX_RANGES, false, OK, QT_MAX_RANGES },
    { "MaxRanges plus one", QT_MAX_RANGES + 1, false, NONE, 0 },
    { "far too many", 5000, false, NONE, 0 },
    /* CVE-2011-3192: many overlapping ranges collapse into one part */
    { "CVE-2011-3192 overlapping", QT_MAX_RANGES, true, OK, 1 },
};

START_TEST(test_range_many)
{
    qt_pool *p = qt_pool_create(4096);
    qt_range *r;
    unsigned n;
    const char *h = many_ranges(p, many_rows[_i].count, many_rows[_i].overlapping);

    ck_assert_msg(qt_range_parse(p, h, 100000, &r, &n) == many_rows[_i].rc, "%s",
                  many_rows[_i].name);
    ck_assert_msg(n == many_rows[_i].n, "%s: n %u", many_rows[_i].name, n);
    if (many_rows[_i].overlapping)
        ck_assert(r[0].first == 0 && r[0].last == QT_MAX_RANGES - 1);
    qt_pool_destroy(p);
}
END_TEST

/* ------------------------------------------------------------ etags */

static const struct {
    const char *name;
    uint64_t size;
    int64_t mtime_usec;
    bool weak;
    const char *want;
} etag_rows[] = {
    /* the example Apache served (apache.md section 7) */
    { "apache example", 0x3e9, 0x66175eb83628dLL, false, "\"3e9-66175eb83628d\"" },
    { "weak", 0x3e9, 0x66175eb83628dLL, true, "W/\"3e9-66175eb83628d\"" },
    { "empty epoch", 0, 0, false, "\"0-0\"" },
    { "large", 0x123456789abULL, 1700000000000000LL, false, "\"123456789ab-60a24181e4000\"" },
};

START_TEST(test_etag_make)
{
    qt_pool *p = qt_pool_create(1024);

    ck_assert_str_eq(qt_etag_make(p, etag_rows[_i].size, etag_rows[_i].mtime_usec,
                                  etag_rows[_i].weak), etag_rows[_i].want);
    qt_pool_destroy(p);
}
END_TEST

static const struct {
    const char *name, *list, *etag;
    bool weak, want;
} match_rows[] = {
    { "strong equal", "\"a\"", "\"a\"", false, true },
    { "weak cmp equal", "\"a\"", "\"a\"", true, true },
    { "different", "\"b\"", "\"a\"", true, false },
    { "strong cmp weak etag", "\"a\"", "W/\"a\"", false, false },
    { "weak cmp weak etag", "\"a\"", "W/\"a\"", true, true },
    { "strong cmp weak list", "W/\"a\"", "\"a\"", false, false },
    { "weak cmp weak list", "W/\"a\"", "\"a\"", true, true },
    { "both weak strong cmp", "W/\"a\"", "W/\"a\"", false, false },
    { "both weak weak cmp", "W/\"a\"", "W/\"a\"", true, true },
    { "list second", "\"x\", \"a\"", "\"a\"", false, true },
    { "list no spaces", "\"x\",\"y\",\"a\"", "\"a\"", false, true },
    { "list none", "\"x\", \"y\"", "\"a\"", true, false },
    { "star", "*", "\"a\"", false, true },
    { "star padded", " * ", "W/\"a\"", false, true },
    { "star no etag", "*", NULL, false, true },
    { "tag no etag", "\"a\"", NULL, true, false },
    { "comma inside tag", "\"a,b\"", "\"a,b\"", false, true },
    { "comma inside tag prefix", "\"a,b\"", "\"a\"", true, false },
    { "empty elements", ", ,\"a\"", "\"a\"", false, true },
    { "prefix is not equal", "\"ab\"", "\"a\"", true, false },
    { "unquoted", "a", "\"a\"", true, false },
    { "unterminated", "\"a", "\"a\"", true, false },
    { "missing comma", "\"x\" \"a\"", "\"a\"", true, false },
    { "empty", "", "\"a\"", true, false },
    { "case matters", "\"A\"", "\"a\"", true, false },
};

START_TEST(test_etag_match)
{
    bool got = qt_etag_list_match(match_rows[_i].list, match_rows[_i].etag,
                                  match_rows[_i].weak);

    ck_assert_msg(got == match_rows[_i].want, "%s: got %d", match_rows[_i].name, got);
}
END_TEST

/* ---------------------------------------------------- conditional requests */

#define ETAG "\"3e9-5a1b\""
#define WETAG "W/\"3e9-5a1b\""
#define MTIME ((time_t)784111777)                 /* 1994-11-06 08:49:37 */
#define D_EQ "Sun, 06 Nov 1994 08:49:37 GMT"
#define D_BEFORE "Sun, 06 Nov 1994 08:49:36 GMT"
#define D_AFTER "Sun, 06 Nov 1994 08:49:38 GMT"
#define D_850 "Sunday, 06-Nov-94 08:49:37 GMT"
#define D_FUTURE "Fri, 01 Jan 2100 00:00:00 GMT"
#define D_BAD "yesterday"

static const struct {
    const char *name;
    const char *im, *inm, *ims, *ius;
    const char *etag;
    bool get;
    int want;
} cond_rows[] = {
    { "no conditions", NULL, NULL, NULL, NULL, ETAG, true, 0 },
    { "no conditions POST", NULL, NULL, NULL, NULL, ETAG, false, 0 },
    /* If-Match: strong comparison, 412 on failure whatever the method */
    { "IM match", ETAG, NULL, NULL, NULL, ETAG, true, 0 },
    { "IM match in list", "\"x\", " ETAG, NULL, NULL, NULL, ETAG, false, 0 },
    { "IM mismatch GET", "\"x\"", NULL, NULL, NULL, ETAG, true, 412 },
    { "IM mismatch PUT", "\"x\"", NULL, NULL, NULL, ETAG, false, 412 },
    { "IM star", "*", NULL, NULL, NULL, ETAG, false, 0 },
    { "IM weak current etag", WETAG, NULL, NULL, NULL, WETAG, true, 412 },
    { "IM strong vs weak current", ETAG, NULL, NULL, NULL, WETAG, true, 412 },
    /* If-Unmodified-Since, only without If-Match */
    { "IUS modified since", NULL, NULL, NULL, D_BEFORE, ETAG, true, 412 },
    { "IUS modified since POST", NULL, NULL, NULL, D_BEFORE, ETAG, false, 412 },
    { "IUS equal", NULL, NULL, NULL, D_EQ, ETAG, true, 0 },
    { "IUS after", NULL, NULL, NULL, D_AFTER, ETAG, false, 0 },
    { "IUS invalid ignored", NULL, NULL, NULL, D_BAD, ETAG, true, 0 },
    { "IUS ignored with IM", ETAG, NULL, NULL, D_BEFORE, ETAG, true, 0 },
    { "IM fails before IUS", "\"x\"", NULL, NULL, D_AFTER, ETAG, true, 412 },
    /* If-None-Match: weak comparison, 304 for GET/HEAD else 412 */
    { "INM match GET", NULL, ETAG, NULL, NULL, ETAG, true, 304 },
    { "INM match POST", NULL, ETAG, NULL, NULL, ETAG, false, 412 },
    { "INM weak header matches", NULL, WETAG, NULL, NULL, ETAG, true, 304 },
    { "INM weak current matches", NULL, ETAG, NULL, NULL, WETAG, true, 304 },
    { "INM mismatch", NULL, "\"x\"", NULL, NULL, ETAG, true, 0 },
    { "INM mismatch POST", NULL, "\"x\"", NULL, NULL, ETAG, false, 0 },
    { "INM star GET", NULL, "*", NULL, NULL, ETAG, true, 304 },
    { "INM star POST", NULL, "*", NULL, NULL, ETAG, false, 412 },
    { "IM passes then INM", ETAG, ETAG, NULL, NULL, ETAG, true, 304 },
    { "IM fails before INM", "\"x\"", ETAG, NULL, NULL, ETAG, true, 412 },
    { "IUS fails before INM", NULL, ETAG, NULL, D_BEFORE, ETAG, true, 412 },
    /* If-Modified-Since: GET/HEAD only, only without If-None-Match */
    { "IMS equal", NULL, NULL, D_EQ, NULL, ETAG, true, 304 },
    { "IMS later", NULL, NULL, D_AFTER, NULL, ETAG, true, 304 },
    { "IMS earlier", NULL, NULL, D_BEFORE, NULL, ETAG, true, 0 },
    { "IMS rfc850", NULL, NULL, D_850, NULL, ETAG, true, 304 },
    { "IMS future ignored", NULL, NULL, D_FUTURE, NULL, ETAG, true, 0 },
    { "IMS invalid ignored", NULL, NULL, D_BAD, NULL, ETAG, true, 0 },
    { "IMS POST ignored", NULL, NULL, D_EQ, NULL, ETAG, false, 0 },
    { "INM mismatch beats IMS", NULL, "\"x\"", D_EQ, NULL, ETAG, true, 0 },
    { "INM match beats IMS", NULL, ETAG, D_BEFORE, NULL, ETAG, true, 304 },
    { "IUS fails before IMS", NULL, NULL, D_EQ, D_BEFORE, ETAG, true, 412 },
};

START_TEST(test_cond)
{
    qt_cond_headers h = {
        .if_match = cond_rows[_i].im,
        .if_none_match = cond_rows[_i].inm,
        .if_modified_since = cond_rows[_i].ims,
        .if_unmodified_since = cond_rows[_i].ius,
    };
    int got = qt_cond_evaluate(&h, cond_rows[_i].etag, MTIME, cond_rows[_i].get);

    ck_assert_msg(got == cond_rows[_i].want, "%s: got %d, want %d",
                  cond_rows[_i].name, got, cond_rows[_i].want);
}
END_TEST

static const struct {
    const char *name, *if_range, *etag;
    bool want;
} if_range_rows[] = {
    { "absent", NULL, ETAG, true },
    { "etag equal", ETAG, ETAG, true },
    { "etag padded", "  " ETAG " ", ETAG, true },
    { "etag different", "\"x\"", ETAG, false },
    { "weak header never matches", WETAG, ETAG, false },
    { "weak current never matches", ETAG, WETAG, false },
    { "both weak", WETAG, WETAG, false },
    { "etag without current etag", ETAG, NULL, false },
    { "etag list not allowed", ETAG ", \"x\"", ETAG, false },
    { "date equal", D_EQ, ETAG, true },
    { "date rfc850 equal", D_850, ETAG, true },
    { "date earlier", D_BEFORE, ETAG, false },
    { "date later", D_AFTER, ETAG, false },
    { "garbage", D_BAD, ETAG, false },
    { "empty", "", ETAG, false },
};

START_TEST(test_if_range)
{
    bool got = qt_if_range_ok(if_range_rows[_i].if_range, if_range_rows[_i].etag, MTIME);

    ck_assert_msg(got == if_range_rows[_i].want, "%s: got %d",
                  if_range_rows[_i].name, got);
}
END_TEST

/* ------------------------------------------------------------ HTTP-dates */

static const struct {
    const char *name;
    time_t t;
    const char *s;
} format_rows[] = {
    { "rfc example", 784111777, "Sun, 06 Nov 1994 08:49:37 GMT" },
    { "epoch", 0, "Thu, 01 Jan 1970 00:00:00 GMT" },
    { "leap day", 951782400, "Tue, 29 Feb 2000 00:00:00 GMT" },
    { "end of 2038 problem", 2147483648LL, "Tue, 19 Jan 2038 03:14:08 GMT" },
    { "last four-digit second", 253402300799LL, "Fri, 31 Dec 9999 23:59:59 GMT" },
};

START_TEST(test_httpdate_format)
{
    char out[QT_HTTPDATE_LEN];
    time_t back;

    qt_httpdate_format(format_rows[_i].t, out);
    ck_assert_str_eq(out, format_rows[_i].s);
    ck_assert_msg(qt_httpdate_parse(out, &back) && back == format_rows[_i].t,
                  "%s: round trip", format_rows[_i].name);
}
END_TEST

static const struct {
    const char *name, *s;
    bool ok;
    time_t t;
} parse_rows[] = {
    { "imf-fixdate", "Sun, 06 Nov 1994 08:49:37 GMT", true, 784111777 },
    { "rfc850", "Sunday, 06-Nov-94 08:49:37 GMT", true, 784111777 },
    { "asctime", "Sun Nov  6 08:49:37 1994", true, 784111777 },
    { "asctime two-digit day", "Wed Nov 16 08:49:37 1994", true, 784975777 },
    { "rfc850 recent year", "Thursday, 01-Jan-15 00:00:00 GMT", true, 1420070400 },
    { "rfc850 year 00", "Saturday, 01-Jan-00 00:00:00 GMT", true, 946684800 },
    { "leap second", "Sat, 31 Dec 2016 23:59:60 GMT", true, 1483228800 },
    { "leap day", "Tue, 29 Feb 2000 00:00:00 GMT", true, 951782400 },
    { "empty", "", false, 0 },
    { "garbage", "yesterday", false, 0 },
    { "UTC not GMT", "Sun, 06 Nov 1994 08:49:37 UTC", false, 0 },
    { "one-digit day", "Sun, 6 Nov 1994 08:49:37 GMT", false, 0 },
    { "two-digit year imf", "Sun, 06 Nov 94 08:49:37 GMT", false, 0 },
    { "trailing space", "Sun, 06 Nov 1994 08:49:37 GMT ", false, 0 },
    { "trailing junk", "Sun, 06 Nov 1994 08:49:37 GMTx", false, 0 },
    { "truncated", "Sun, 06 Nov 1994 08:49", false, 0 },
    { "lower-case names", "sun, 06 nov 1994 08:49:37 GMT", false, 0 },
    { "bad weekday", "Fun, 06 Nov 1994 08:49:37 GMT", false, 0 },
    { "bad month", "Sun, 06 Nox 1994 08:49:37 GMT", false, 0 },
    { "31 February", "Sun, 31 Feb 1994 08:49:37 GMT", false, 0 },
    { "29 February 1900", "Thu, 29 Feb 1900 00:00:00 GMT", false, 0 },
    { "day zero", "Sun, 00 Nov 1994 08:49:37 GMT", false, 0 },
    { "hour 24", "Sun, 06 Nov 1994 24:00:00 GMT", false, 0 },
    { "minute 60", "Sun, 06 Nov 1994 08:60:00 GMT", false, 0 },
    { "second 61", "Sun, 06 Nov 1994 08:49:61 GMT", false, 0 },
    { "asctime single space", "Sun Nov 6 08:49:37 1994", false, 0 },
    { "asctime zero-padded", "Sun Nov 06 08:49:37 1994", true, 784111777 },
    { "rfc850 short weekday", "Sun, 06-Nov-94 08:49:37 GMT", false, 0 },
    { "rfc850 four-digit year", "Sunday, 06-Nov-1994 08:49:37 GMT", false, 0 },
    { "signs in digits", "Sun, +6 Nov 1994 08:49:37 GMT", false, 0 },
};

START_TEST(test_httpdate_parse)
{
    time_t t = -1;
    bool ok = qt_httpdate_parse(parse_rows[_i].s, &t);

    ck_assert_msg(ok == parse_rows[_i].ok, "%s: ok %d", parse_rows[_i].name, ok);
    if (ok)
        ck_assert_msg(t == parse_rows[_i].t, "%s: got %lld, want %lld",
                      parse_rows[_i].name, (long long)t, (long long)parse_rows[_i].t);
}
END_TEST

/* Every hour over a few years, including leap days, formats and parses back. */
START_TEST(test_httpdate_roundtrip)
{
    char out[QT_HTTPDATE_LEN];
    time_t back;

    for (time_t t = 946684800 - 86400 * 400; t < 946684800 + 86400 * 800; t += 3599) {
        qt_httpdate_format(t, out);
        ck_assert_msg(strlen(out) == QT_HTTPDATE_LEN - 1, "length of %s", out);
        ck_assert_msg(qt_httpdate_parse(out, &back) && back == t, "round trip of %s", out);
    }
}
END_TEST

static Suite *range_suite(void)
{
    Suite *s = suite_create("range");
    TCase *tr = tcase_create("range");
    TCase *tc = tcase_create("conditional");
    TCase *td = tcase_create("httpdate");

    tcase_add_loop_test(tr, test_range_parse, 0, N(range_rows));
    tcase_add_test(tr, test_range_null_header);
    tcase_add_loop_test(tr, test_range_many, 0, N(many_rows));
    tcase_add_loop_test(tc, test_etag_make, 0, N(etag_rows));
    tcase_add_loop_test(tc, test_etag_match, 0, N(match_rows));
    tcase_add_loop_test(tc, test_cond, 0, N(cond_rows));
    tcase_add_loop_test(tc, test_if_range, 0, N(if_range_rows));
    tcase_add_loop_test(td, test_httpdate_format, 0, N(format_rows));
    tcase_add_loop_test(td, test_httpdate_parse, 0, N(parse_rows));
    tcase_add_test(td, test_httpdate_roundtrip);
    suite_add_tcase(s, tr);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, td);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(range_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
