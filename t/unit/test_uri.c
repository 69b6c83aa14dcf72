/* Request-target splitting and path normalization (server/uri.c). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "uri.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------ qt_uri_split */

static const struct {
    const char *name, *target;
    int rc;
    const char *path, *query, *host;   /* NULL: expected NULL */
} split_rows[] = {
    { "origin", "/a/b", 0, "/a/b", NULL, NULL },
    { "origin query", "/a?x=1&y", 0, "/a", "x=1&y", NULL },
    { "origin empty query", "/a?", 0, "/a", "", NULL },
    { "query holds '?'", "/a?b?c", 0, "/a", "b?c", NULL },
    { "root", "/", 0, "/", NULL, NULL },
    { "asterisk", "*", 0, "*", NULL, NULL },
    { "absolute", "http://example.com/x?q", 0, "/x", "q", "example.com" },
    { "absolute port", "http://example.com:8080/x", 0, "/x", NULL, "example.com:8080" },
    { "absolute https", "https://h/", 0, "/", NULL, "h" },
    { "absolute scheme case", "HTTP://h/p", 0, "/p", NULL, "h" },
    { "absolute no path", "http://h", 0, "/", NULL, "h" },
    { "absolute no path query", "http://h?q", 0, "/", "q", "h" },
    { "absolute ipv6", "http://[::1]:80/p", 0, "/p", NULL, "[::1]:80" },
    { "absolute empty host", "http:///p", 400, NULL, NULL, NULL },
    { "absolute userinfo", "http://user@h/p", 400, NULL, NULL, NULL },
    { "absolute bad port", "http://h:8x/p", 400, NULL, NULL, NULL },
    { "absolute unterminated ipv6", "http://[::1/p", 400, NULL, NULL, NULL },
    { "other scheme", "ftp://h/p", 400, NULL, NULL, NULL },
    { "relative", "a/b", 400, NULL, NULL, NULL },
    { "authority form", "example.com:443", 400, NULL, NULL, NULL },
    { "asterisk with more", "*x", 400, NULL, NULL, NULL },
    { "fragment", "/a#frag", 400, NULL, NULL, NULL },
    { "fragment in query", "/a?b#c", 400, NULL, NULL, NULL },
    { "space", "/a b", 400, NULL, NULL, NULL },
    { "control", "/a\x01", 400, NULL, NULL, NULL },
    { "DEL", "/a\x7f", 400, NULL, NULL, NULL },
    { "empty", "", 400, NULL, NULL, NULL },
};

static void check_str(const char *row, const char *what, const char *got,
                      const char *want)
{
    if (want == NULL)
        ck_assert_msg(got == NULL, "%s: %s: got '%s', want NULL", row, what, got);
    else
        ck_assert_msg(got != NULL && strcmp(got, want) == 0,
                      "%s: %s: got '%s', want '%s'", row, what,
                      got ? got : "(null)", want);
}

START_TEST(test_split)
{
    qt_pool *p = qt_pool_create(1024);
    const char *path, *query, *host;
    const char *t = split_rows[_i].target;
    int rc = qt_uri_split(p, t, strlen(t), &path, &query, &host);

    ck_assert_msg(rc == split_rows[_i].rc, "%s: rc %d, want %d",
                  split_rows[_i].name, rc, split_rows[_i].rc);
    if (rc == 0) {
        check_str(split_rows[_i].name, "path", path, split_rows[_i].path);
        check_str(split_rows[_i].name, "query", query, split_rows[_i].query);
        check_str(split_rows[_i].name, "host", host, split_rows[_i].host);
    }
    qt_pool_destroy(p);
}
END_TEST

/* The target is a (pointer, length) slice: bytes past len are not read. */
START_TEST(test_split_uses_len)
{
    qt_pool *p = qt_pool_create(1024);
    const char *path, *query, *host;

    ck_assert_int_eq(qt_uri_split(p, "/a?b HTTP/1.1", 4, &path, &query, &host), 0);
    ck_assert_str_eq(path, "/a");
    ck_assert_str_eq(query, "b");
    qt_pool_destroy(p);
}
END_TEST

/* -------------------------------------------------------- qt_uri_normalize */

static const struct {
    const char *name, *in;
    int rc;
    const char *out;
} norm_rows[] = {
    { "root", "/", 0, "/" },
    { "plain", "/a/b.html", 0, "/a/b.html" },
    { "trailing slash kept", "/a/b/", 0, "/a/b/" },
    { "merge slashes", "//a///b", 0, "/a/b" },
    { "dot segments", "/./a//b/./", 0, "/a/b/" },
    { "dotdot", "/a/b/../c", 0, "/a/c" },
    { "dotdot to root", "/a/..", 0, "/" },
    { "trailing dotdot is a directory", "/a/b/..", 0, "/a/" },
    { "trailing dot is a directory", "/a/.", 0, "/a/" },
    { "dots in names", "/a/..b/c.../.d", 0, "/a/..b/c.../.d" },
    { "triple dot is a name", "/.../x", 0, "/.../x" },
    { "decode space", "/a%20b", 0, "/a b" },
    { "decode lower hex", "/%7euser", 0, "/~user" },
    { "decode utf-8", "/caf%C3%A9", 0, "/caf\xc3\xa9" },
    { "raw utf-8", "/caf\xc3\xa9", 0, "/caf\xc3\xa9" },
    { "encoded dots decoded then removed", "/a/%2e%2e/b", 0, "/b" },
    { "encoded single dot", "/a/%2E/b", 0, "/a/b" },
    { "decode once only", "/a%252e%252e/b", 0, "/a%2e%2e/b" },
    { "decoded percent stays", "/100%25", 0, "/100%" },
    { "dotdot above root", "/..", 400, NULL },
    { "dotdot above root later", "/a/../../b", 400, NULL },
    { "dotdot trailing above root", "/a/b/../../../", 400, NULL },
    { "encoded dotdot above root", "/%2e%2e/etc", 400, NULL },
    { "traversal %2e%2e", "/%2e%2e/%2e%2e/etc/passwd", 400, NULL },
    { "CVE-2021-41773 .%2e", "/.%2e/.%2e/etc", 400, NULL },
    { "CVE-2021-41773 cgi-bin", "/cgi-bin/.%2e/.%2e/.%2e/.%2e/bin/sh", 400, NULL },
    { "CVE-2021-42013 double encoding", "/icons/.%%32%65/", 400, NULL },
    { "CVE-2021-42013 %%32%65 pair", "/cgi-bin/.%%32%65/.%%32%65/bin/sh", 400, NULL },
    { "encoded slash traversal ..%2f", "/..%2f..%2fetc/passwd", 404, NULL },
    { "encoded slash", "/a%2Fb", 404, NULL },
    { "encoded slash lower", "/a%2fb", 404, NULL },
    { "bad escape beats encoded slash", "/a%2f%zz", 400, NULL },
    { "bad hex", "/a%zz", 400, NULL },
    { "half escape", "/a%4", 400, NULL },
    { "lone percent", "/a%", 400, NULL },
    { "encoded NUL", "/a%00b", 400, NULL },
    { "encoded newline", "/a%0ab", 400, NULL },
    { "encoded CR LF", "/a%0d%0aSet-Cookie:x", 400, NULL },
    { "encoded DEL", "/a%7f", 400, NULL },
    { "raw control", "/a\tb", 400, NULL },
    { "relative", "a/b", 400, NULL },
    { "empty", "", 400, NULL },
};

START_TEST(test_normalize)
{
    qt_pool *p = qt_pool_create(1024);
    const char *out = "unset";
    int rc = qt_uri_normalize(p, norm_rows[_i].in, &out);

    ck_assert_msg(rc == norm_rows[_i].rc, "%s: rc %d, want %d",
                  norm_rows[_i].name, rc, norm_rows[_i].rc);
    if (rc == 0)
        check_str(norm_rows[_i].name, "out", out, norm_rows[_i].out);
    qt_pool_destroy(p);
}
END_TEST

/* --------------------------------------------------------- qt_uri_unescape */

static const struct {
    const char *name, *in;
    int rc;
    const char *out;
} unescape_rows[] = {
    { "plain", "a=b", 0, "a=b" },
    { "escapes", "a%3Db%26c", 0, "a=b&c" },
    { "plus not special", "a+b", 0, "a+b" },
    { "slash allowed", "%2F", 0, "/" },
    { "bad hex", "%g1", -1, NULL },
    { "short", "ab%4", -1, NULL },
    { "NUL", "a%00", -1, NULL },
    { "empty", "", 0, "" },
};

START_TEST(test_unescape)
{
    char buf[64];
    int rc;

    strcpy(buf, unescape_rows[_i].in);
    rc = qt_uri_unescape(buf);
    ck_assert_msg(rc == unescape_rows[_i].rc, "%s: rc %d", unescape_rows[_i].name, rc);
    if (rc == 0)
        check_str(unescape_rows[_i].name, "out", buf, unescape_rows[_i].out);
}
END_TEST

/* ------------------------------------------------------ qt_uri_escape_path */

static const struct {
    const char *name, *in, *out;
} escape_rows[] = {
    { "plain", "/a/b-c_d.e~f", "/a/b-c_d.e~f" },
    { "space", "/a b", "/a%20b" },
    { "percent", "/100%", "/100%25" },
    { "query and fragment marks", "/a?b#c", "/a%3Fb%23c" },
    { "quotes", "/\"x'", "/%22x%27" },
    { "angle brackets", "/<x>", "/%3Cx%3E" },
    { "non-ascii", "/caf\xc3\xa9", "/caf%C3%A9" },
    { "controls", "/a\nb\x7f", "/a%0Ab%7F" },
    { "sub-delims kept", "/a;b=c&d+e,f:g@h!$()*", "/a;b=c&d+e,f:g@h!$()*" },
    { "backslash", "/a\\b", "/a%5Cb" },
    { "empty", "", "" },
};

START_TEST(test_escape_path)
{
    qt_pool *p = qt_pool_create(1024);

    check_str(escape_rows[_i].name, "out", qt_uri_escape_path(p, escape_rows[_i].in),
              escape_rows[_i].out);
    qt_pool_destroy(p);
}
END_TEST

/* Escaping then normalizing gives the original path back. */
START_TEST(test_escape_roundtrip)
{
    qt_pool *p = qt_pool_create(1024);
    const char *in = "/dir with space/caf\xc3\xa9/100%/a?b#c";
    const char *out;

    ck_assert_int_eq(qt_uri_normalize(p, qt_uri_escape_path(p, in), &out), 0);
    ck_assert_str_eq(out, in);
    qt_pool_destroy(p);
}
END_TEST

static Suite *uri_suite(void)
{
    Suite *s = suite_create("uri");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_split, 0, N(split_rows));
    tcase_add_test(tc, test_split_uses_len);
    tcase_add_loop_test(tc, test_normalize, 0, N(norm_rows));
    tcase_add_loop_test(tc, test_unescape, 0, N(unescape_rows));
    tcase_add_loop_test(tc, test_escape_path, 0, N(escape_rows));
    tcase_add_test(tc, test_escape_roundtrip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(uri_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
