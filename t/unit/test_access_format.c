/* LogFormat compilation and rendering (server/access_format.c). */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "access_format.h"
#include "buf.h"
#include "pool.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------- fake request */

typedef struct {
    const char *name, *value;
} pair;

typedef struct {
    const pair *in, *out, *env, *notes;
} fake_ctx;

static const char *lookup(const pair *list, const char *name)
{
    for (; list != NULL && list->name != NULL; list++)
        if (strcasecmp(list->name, name) == 0)
            return list->value;
    return NULL;
}

static const char *get_in(const void *ctx, const char *name)
{
    return lookup(((const fake_ctx *)ctx)->in, name);
}

static const char *get_out(const void *ctx, const char *name)
{
    return lookup(((const fake_ctx *)ctx)->out, name);
}

static const char *get_env(const void *ctx, const char *name)
{
    return lookup(((const fake_ctx *)ctx)->env, name);
}

static const char *get_note(const void *ctx, const char *name)
{
    return lookup(((const fake_ctx *)ctx)->notes, name);
}

static const pair base_in[] = {
    { "Referer", "http://www.example.com/start.html" },
    { "User-Agent", "Mozilla/4.08 [en] (Win98; I ;Nav)" },
    { NULL, NULL },
};
static const pair base_out[] = { { "Content-Type", "image/gif" }, { NULL, NULL } };
static const pair base_env[] = { { "HOME", "/root" }, { NULL, NULL } };
static const pair base_notes[] = { { "mynote", "noted" }, { NULL, NULL } };
static const fake_ctx base_ctx = { base_in, base_out, base_env, base_notes };

/* Hostile request data: quotes, backslashes, terminal escapes, CR LF, UTF-8. */
static const pair evil_in[] = {
    { "User-Agent", "a\"b\\c\td\x01\xc3\xa9" },
    { "X-Forwarded-For", "1.2.3.4\r\n5.6.7.8 - - [fake]" },
    { NULL, NULL },
};
static const fake_ctx evil_ctx = { evil_in, NULL, NULL, NULL };

enum { BASE, EVIL, EMPTY };

/* 10/Oct/2000:13:55:36 UTC, the example of Apache's documentation. */
#define T0 ((time_t)971186136)

static qt_access_values make_values(int which)
{
    qt_access_values v = {
        .remote_ip = "127.0.0.1", .remote_user = "frank",
        .time_sec = T0, .time_usec = 123456,
        .request_line = "GET /apache_pb.gif?x=1 HTTP/1.0",
        .method = "GET", .path = "/apache_pb.gif", .query = "x=1",
        .protocol = "HTTP/1.0", .status = 200, .orig_status = 302,
        .bytes = 2326, .duration_us = 1234567,
        .server_name = "www.example.com", .local_port = 8080, .pid = 4242,
        .filename = "/var/www/apache_pb.gif",
        .header_in = get_in, .header_out = get_out, .env = get_env,
        .note = get_note, .ctx = &base_ctx,
    };
    qt_access_values empty = { .time_sec = T0 };

    if (which == EVIL) {
        v.remote_user = "";
        v.request_line = "GET /\"x\\y\x1b[31m\n HTTP/1.1";
        v.path = "/a b\x7f";
        v.query = "a\"b";
        v.status = 404;
        v.bytes = 0;
        v.ctx = &evil_ctx;
    }
    return which == EMPTY ? empty : v;
}

/* ---------------------------------------------------------------- rows */

#define COMMON_LINE \
    "127.0.0.1 - frank [10/Oct/2000:13:55:36 +0000] \"GET /apache_pb.gif?x=1 HTTP/1.0\" 200 2326"
#define COMBINED_TAIL \
    " \"http://www.example.com/start.html\" \"Mozilla/4.08 [en] (Win98; I ;Nav)\""

static const struct {
    const char *name, *fmt;
    int values;
    const char *want;    /* without the final newline */
} render_rows[] = {
    { "common nickname", "common", BASE, COMMON_LINE },
    { "common spelled out", "%h %l %u %t \\\"%r\\\" %>s %b", BASE, COMMON_LINE },
    { "combined nickname", "combined", BASE, COMMON_LINE COMBINED_TAIL },
    { "combined spelled out",
      "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"", BASE,
      COMMON_LINE COMBINED_TAIL },
    { "client", "%h %a %l %u", BASE, "127.0.0.1 127.0.0.1 - frank" },
    { "request parts", "%m %U%q %H", BASE, "GET /apache_pb.gif?x=1 HTTP/1.0" },
    { "statuses", "%s %>s %<s", BASE, "200 200 302" },
    { "bytes", "%b %B", BASE, "2326 2326" },
    { "durations", "%D %T %{ms}T %{us}T %{s}T", BASE, "1234567 1 1234 1234567 1" },
    { "server", "%v %V %p %P", BASE, "www.example.com www.example.com 8080 4242" },
    { "filename", "%f", BASE, "/var/www/apache_pb.gif" },
    { "lookups", "%{Content-Type}o %{HOME}e %{mynote}x %{user-agent}i", BASE,
      "image/gif /root noted Mozilla/4.08 [en] (Win98; I ;Nav)" },
    { "missing lookups", "%{X-Missing}i %{X-Missing}o %{NOPE}e %{nope}x", BASE,
      "- - - -" },
    { "percent", "100%% %s%%", BASE, "100% 200%" },
    { "only literal", "hello", BASE, "hello" },
    { "empty format", "", BASE, "" },
    { "strftime", "%{%Y-%m-%d %H:%M:%S}t", BASE, "2000-10-10 13:55:36" },
    { "epoch units", "%{sec}t %{msec}t %{usec}t", BASE,
      "971186136 971186136123 971186136123456" },
    { "fractions", "%{msec_frac}t %{usec_frac}t", BASE, "123 123456" },
    { "begin prefix", "%{begin:%H:%M:%S}t %{begin:sec}t", BASE, "13:55:36 971186136" },
    /* start 36.123456 s + 1.234567 s = 37.358023 s */
    { "end prefix", "%{end:%H:%M:%S}t %{end:usec_frac}t", BASE, "13:55:37 358023" },
    { "format escapes", "a\\tb\\nc\\\"d\\\\e", BASE, "a\tb\nc\"d\\e" },
    { "other backslash kept", "a\\xb\\", BASE, "a\\xb\\" },
    { "condition met", "%200{Referer}i", BASE, "http://www.example.com/start.html" },
    { "condition list met", "%404,200{Referer}i", BASE, "http://www.example.com/start.html" },
    { "condition not met", "%400,501{Referer}i", BASE, "-" },
    { "negated condition", "%!200{Referer}i", BASE, "-" },
    { "negated list", "%!400,501{Referer}i", BASE, "http://www.example.com/start.html" },
    { "condition on status", "%!200>s", BASE, "-" },
    /* escaping of request-derived strings, as Apache's log escaping */
    { "CLF zero bytes", "%b %B", EVIL, "- 0" },
    { "empty user quoted", "%u", EVIL, "\"\"" },
    { "escaped request line", "\"%r\"", EVIL, "\"GET /\\\"x\\\\y\\x1b[31m\\n HTTP/1.1\"" },
    { "escaped header", "%{User-Agent}i", EVIL, "a\\\"b\\\\c\\td\\x01\\xc3\\xa9" },
    { "log injection CR LF", "%{X-Forwarded-For}i", EVIL,
      "1.2.3.4\\r\\n5.6.7.8 - - [fake]" },
    { "escaped path and query", "%U%q", EVIL, "/a b\\x7f?a\\\"b" },
    { "condition 404", "%404s %!404s", EVIL, "404 -" },
    { "absent values", "%h %l %u %r %s %<s %b %m %U%q %H %v %f", EMPTY,
      "- - - - - - - - - - - -" },
    { "absent lookup functions", "%{Referer}i %{X}o %{HOME}e %{n}x", EMPTY, "- - - -" },
    { "absent numbers", "%B %D %T %p", EMPTY, "0 0 0 0" },
};

/* %P with no pid given is the pid of the process that writes the line. */
START_TEST(test_pid_looked_up)
{
    qt_pool *p = qt_pool_create(1024);
    char err[128] = "", want[32];
    qt_access_values v;
    memset(&v, 0, sizeof(v));
    qt_access_format *f = qt_access_format_compile(p, "%P", err, sizeof err);
    ck_assert_ptr_nonnull(f);
    qt_buf out;
    qt_buf_init(&out);
    qt_access_format_render(f, &v, &out);
    snprintf(want, sizeof want, "%ld\n", (long)getpid());
    ck_assert_uint_eq(out.len, strlen(want));
    ck_assert(memcmp(out.data, want, out.len) == 0);
    qt_buf_free(&out);
    qt_pool_destroy(p);
}
END_TEST

START_TEST(test_render)
{
    qt_pool *p = qt_pool_create(1024);
    char err[128] = "";
    qt_access_format *f;
    qt_access_values v = make_values(render_rows[_i].values);
    qt_buf out;
    size_t wlen = strlen(render_rows[_i].want);

    setenv("TZ", "UTC", 1);
    tzset();
    f = qt_access_format_compile(p, render_rows[_i].fmt, err, sizeof err);
    ck_assert_msg(f != NULL, "%s: compile failed: %s", render_rows[_i].name, err);
    qt_buf_init(&out);
    qt_access_format_render(f, &v, &out);
    ck_assert_msg(out.len == wlen + 1 && memcmp(out.data, render_rows[_i].want, wlen) == 0
                  && out.data[wlen] == '\n',
                  "%s: got '%.*s', want '%s'", render_rows[_i].name,
                  (int)out.len, out.data, render_rows[_i].want);
    qt_buf_free(&out);
    qt_pool_destroy(p);
}
END_TEST

/* %t prints the local offset: POSIX TZ strings need no tzdata. */
static const struct {
    const char *name, *tz, *want;
} tz_rows[] = {
    { "utc", "UTC0", "[10/Oct/2000:13:55:36 +0000]" },
    { "west of utc", "QQQ7", "[10/Oct/2000:06:55:36 -0700]" },
    { "half hour east", "QQQ-5:30", "[10/Oct/2000:19:25:36 +0530]" },
    { "next day", "QQQ-12", "[11/Oct/2000:01:55:36 +1200]" },
};

START_TEST(test_time_zone)
{
    qt_pool *p = qt_pool_create(1024);
    char err[128];
    qt_access_format *f = qt_access_format_compile(p, "%t", err, sizeof err);
    qt_access_values v = make_values(BASE);
    qt_buf out;

    setenv("TZ", tz_rows[_i].tz, 1);
    tzset();
    qt_buf_init(&out);
    qt_access_format_render(f, &v, &out);
    ck_assert_msg(out.len == strlen(tz_rows[_i].want) + 1
                  && memcmp(out.data, tz_rows[_i].want, out.len - 1) == 0,
                  "%s: got '%.*s'", tz_rows[_i].name, (int)out.len, out.data);
    qt_buf_free(&out);
    qt_pool_destroy(p);
}
END_TEST

/* Rendering appends: the caller batches several lines in one buffer. */
START_TEST(test_render_appends)
{
    qt_pool *p = qt_pool_create(1024);
    char err[128];
    qt_access_format *f = qt_access_format_compile(p, "%s", err, sizeof err);
    qt_access_values v = make_values(BASE);
    qt_buf out;

    qt_buf_init(&out);
    qt_buf_append(&out, "x ", 2);
    qt_access_format_render(f, &v, &out);
    qt_access_format_render(f, &v, &out);
    ck_assert_uint_eq(out.len, 10);
    ck_assert(memcmp(out.data, "x 200\n200\n", 10) == 0);
    qt_buf_free(&out);
    qt_pool_destroy(p);
}
END_TEST

static const struct {
    const char *name, *fmt, *err_has;
} error_rows[] = {
    { "unknown token", "%h %Z", "%Z" },
    { "unknown token after modifiers", "%>Q", "%Q" },
    { "unterminated brace", "%{Referer", "unterminated" },
    { "unterminated brace at end", "%h %{", "unterminated" },
    { "trailing percent", "%h %", "ends" },
    { "trailing modifier", "%>", "ends" },
    { "header needs name", "%i", "%i" },
    { "env needs name", "%e", "%e" },
    { "note needs name", "%x", "%x" },
    { "bad duration unit", "%{fortnights}T", "fortnights" },
    { "bad status condition", "%99s", "status" },
    { "too long status condition", "%12345s", "status" },
    { "two arguments", "%{a}{b}i", "%{" },
};

START_TEST(test_compile_error)
{
    qt_pool *p = qt_pool_create(1024);
    char err[128] = "";
    qt_access_format *f = qt_access_format_compile(p, error_rows[_i].fmt, err, sizeof err);

    ck_assert_msg(f == NULL, "%s: compiled", error_rows[_i].name);
    ck_assert_msg(strstr(err, error_rows[_i].err_has) != NULL, "%s: err '%s'",
                  error_rows[_i].name, err);
    qt_pool_destroy(p);
}
END_TEST

/* A short error buffer truncates the message and stays terminated. */
START_TEST(test_compile_error_short_buffer)
{
    qt_pool *p = qt_pool_create(1024);
    char err[8];

    memset(err, 'z', sizeof err);
    ck_assert_ptr_null(qt_access_format_compile(p, "%Z", err, sizeof err));
    ck_assert_uint_eq(strlen(err), sizeof err - 1);
    qt_pool_destroy(p);
}
END_TEST

static Suite *access_format_suite(void)
{
    Suite *s = suite_create("access_format");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_render, 0, N(render_rows));
    tcase_add_loop_test(tc, test_time_zone, 0, N(tz_rows));
    tcase_add_test(tc, test_render_appends);
    tcase_add_test(tc, test_pid_looked_up);
    tcase_add_loop_test(tc, test_compile_error, 0, N(error_rows));
    tcase_add_test(tc, test_compile_error_short_buffer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(access_format_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
