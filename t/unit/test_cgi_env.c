/* CGI environment building and response-head parsing (server/cgi_env.c). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cgi_env.h"

/* ------------------------------------------------------------ helpers */

static qt_pool *pool;

static void setup(void) { pool = qt_pool_create(4096); }
static void teardown(void) { qt_pool_destroy(pool); }

static qt_slice sl(const char *s) { return (qt_slice){ s, strlen(s) }; }

/* Value of NAME in envp, or NULL. */
static const char *envp_get(char **envp, const char *name)
{
    size_t n = strlen(name);
    for (; *envp; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

static size_t envp_count(char **envp, const char *name)
{
    size_t n = strlen(name), count = 0;
    for (; *envp; envp++)
        count += strncmp(*envp, name, n) == 0 && (*envp)[n] == '=';
    return count;
}

/* A request as Apache's printenv sees it: GET /cgi-bin/printenv/a%20b?x=1 */
static qt_cgi_env_in base_in(void)
{
    return (qt_cgi_env_in){
        .method = "GET", .protocol = "HTTP/1.1",
        .request_uri = "/cgi-bin/printenv/a%20b?x=1", .args = "x=1",
        .path = "/cgi-bin/printenv/a b", .path_info = "/a b",
        .path_translated = "/srv/htdocs/a b",
        .filename = "/srv/cgi-bin/printenv",
        .remote_addr = "127.0.0.1", .remote_port = 40000,
        .server_name = "localhost", .server_port = 8080,
        .server_addr = "127.0.0.1", .server_admin = "admin@example.test",
        .server_software = "Quintet/0.1.0", .document_root = "/srv/htdocs",
        .context_prefix = "/cgi-bin/", .context_document_root = "/srv/cgi-bin/",
        .scheme = "http",
    };
}

/* ------------------------------------------------------------ HTTP_* names */

static const struct {
    const char *name;
    bool pass_auth;
    const char *want;                 /* NULL: withheld */
} header_rows[] = {
    { "User-Agent", false, "HTTP_USER_AGENT" },
    { "host", false, "HTTP_HOST" },
    { "X-Forwarded-For", false, "HTTP_X_FORWARDED_FOR" },
    { "x-1", false, "HTTP_X_1" },
    /* underscore spelling must not forge HTTP_X_FORWARDED_FOR */
    { "X-Forwarded_For", false, NULL },
    { "X.Dot", false, NULL },
    { "X Space", false, NULL },
    /* httpoxy, CVE-2016-5387 */
    { "Proxy", false, NULL },
    { "proxy", true, NULL },
    { "Authorization", false, NULL },
    { "Proxy-Authorization", false, NULL },
    { "Authorization", true, "HTTP_AUTHORIZATION" },
    { "Proxy-Authorization", true, "HTTP_PROXY_AUTHORIZATION" },
    { "Content-Type", false, NULL },
    { "Content-Length", false, NULL },
    { "", false, NULL },
};

START_TEST(header_var)
{
    const char *got = qt_cgi_header_var(pool, sl(header_rows[_i].name),
                                        header_rows[_i].pass_auth);
    if (header_rows[_i].want)
        ck_assert_pstr_eq(got, header_rows[_i].want);
    else
        ck_assert_msg(got == NULL, "%s -> %s", header_rows[_i].name, got);
}
END_TEST

/* ------------------------------------------------------------ whole env */

typedef struct {
    const char *what;
    const char *headers[10];          /* "Name", "value" pairs */
    const char *expect[16];          /* "NAME=value", or "!NAME" for unset */
} env_row;

static const env_row env_rows[] = {
    { "RFC 3875 variables",
      { NULL },
      { "GATEWAY_INTERFACE=CGI/1.1", "SERVER_PROTOCOL=HTTP/1.1", "REQUEST_METHOD=GET",
        "QUERY_STRING=x=1", "SCRIPT_NAME=/cgi-bin/printenv", "PATH_INFO=/a b",
        "PATH_TRANSLATED=/srv/htdocs/a b", "SERVER_PORT=8080", "REMOTE_ADDR=127.0.0.1",
        "!REMOTE_HOST", "!CONTENT_LENGTH", "!REMOTE_USER" } },
    { "Apache extras",
      { NULL },
      { "REQUEST_URI=/cgi-bin/printenv/a%20b?x=1", "SCRIPT_FILENAME=/srv/cgi-bin/printenv",
        "DOCUMENT_ROOT=/srv/htdocs", "CONTEXT_PREFIX=/cgi-bin/",
        "CONTEXT_DOCUMENT_ROOT=/srv/cgi-bin/", "REQUEST_SCHEME=http",
        "SERVER_SIGNATURE=", "REMOTE_PORT=40000", "SERVER_ADMIN=admin@example.test",
        "PATH=" QT_CGI_DEFAULT_PATH, "!HTTPS", "!REDIRECT_STATUS" } },
    { "headers become HTTP_*, odd names dropped",
      { "Host", "localhost:8080", "X-Foo_Bar", "evil", "User-Agent", "t/1", NULL },
      { "HTTP_HOST=localhost:8080", "HTTP_USER_AGENT=t/1", "!HTTP_X_FOO_BAR",
        "!HTTP_X_FOOBAR" } },
    { "repeated headers merged with comma, case-insensitively",
      { "X-A", "1", "x-a", "2", "Cookie", "a=1", "Cookie", "b=2", NULL },
      { "HTTP_X_A=1, 2", "HTTP_COOKIE=a=1, b=2" } },
    { "httpoxy: Proxy never passed; Authorization withheld",
      { "Proxy", "http://evil:1/", "Authorization", "Basic eDp5", NULL },
      { "!HTTP_PROXY", "!HTTP_AUTHORIZATION" } },
    { "Content-Type and Content-Length become CONTENT_*",
      { "Content-Type", "text/plain", "Content-Length", "5", NULL },
      { "CONTENT_TYPE=text/plain", "CONTENT_LENGTH=5", "!HTTP_CONTENT_TYPE",
        "!HTTP_CONTENT_LENGTH" } },
    { "chunked: no CONTENT_LENGTH, TE passed",
      { "Transfer-Encoding", "chunked", "Content-Length", "5", NULL },
      { "!CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING=chunked" } },
};

static void check_expect(char **envp, const char *const *expect, const char *what)
{
    for (const char *const *e = expect; *e; e++) {
        if ((*e)[0] == '!') {
            ck_assert_msg(envp_get(envp, *e + 1) == NULL, "%s: %s is set to '%s'",
                          what, *e + 1, envp_get(envp, *e + 1));
            continue;
        }
        const char *eq = strchr(*e, '=');
        char *name = strndup(*e, (size_t)(eq - *e));
        const char *got = envp_get(envp, name);
        ck_assert_msg(got && strcmp(got, eq + 1) == 0, "%s: %s is '%s', want '%s'",
                      what, name, got ? got : "(unset)", eq + 1);
        ck_assert_msg(envp_count(envp, name) == 1, "%s: %s twice", what, name);
        free(name);
    }
}

START_TEST(env_table)
{
    const env_row *row = &env_rows[_i];
    qt_header hdrs[5];
    unsigned n = 0;
    for (; row->headers[2 * n]; n++)
        hdrs[n] = (qt_header){ sl(row->headers[2 * n]), sl(row->headers[2 * n + 1]) };
    qt_cgi_env_in in = base_in();
    in.headers = hdrs;
    in.nheaders = n;
    char **envp;
    qt_cgi_build_env(pool, &in, NULL, &envp);
    check_expect(envp, row->expect, row->what);
}
END_TEST

START_TEST(env_no_query_no_path_info)
{
    qt_cgi_env_in in = base_in();
    in.args = NULL;
    in.path = "/cgi-bin/printenv";
    in.path_info = NULL;
    char **envp;
    qt_cgi_build_env(pool, &in, NULL, &envp);
    const char *expect[] = { "QUERY_STRING=", "SCRIPT_NAME=/cgi-bin/printenv",
                             "!PATH_INFO", "!PATH_TRANSLATED", NULL };
    check_expect(envp, expect, "no query");
}
END_TEST

START_TEST(env_subprocess_and_overrides)
{
    qt_kv k3 = { "HTTP_HOST", "forged", NULL };
    qt_kv k2 = { "PATH", "/opt/bin", &k3 };
    qt_kv k1 = { "MY-VAR", "v", &k2 };
    qt_header h = { sl("Host"), sl("real") };
    qt_cgi_env_in in = base_in();
    in.subprocess_env = &k1;
    in.headers = &h;
    in.nheaders = 1;
    in.https = true;
    in.server_name = "a<b>";
    in.remote_user = "alice";
    in.redirect_url = "/missing";
    in.redirect_query = "q=1";
    in.redirect_status = 404;
    char **envp;
    qt_cgi_build_env(pool, &in, NULL, &envp);
    /* names are sanitised for execve; computed vars win over SetEnv,
     * except PATH, which SetEnv/PassEnv may choose */
    const char *expect[] = { "MY_VAR=v", "PATH=/opt/bin", "HTTP_HOST=real",
                             "HTTPS=on", "SERVER_NAME=a&lt;b&gt;", "REMOTE_USER=alice",
                             "REDIRECT_URL=/missing", "REDIRECT_QUERY_STRING=q=1",
                             "REDIRECT_STATUS=404", NULL };
    check_expect(envp, expect, "subprocess env");
}
END_TEST

START_TEST(env_apply_ops)
{
    qt_kv base = { "KEEP", "1", NULL };
    qt_cgi_envop o4 = { "B", "again", NULL };
    qt_cgi_envop o3 = { "KEEP", NULL, &o4 };
    qt_cgi_envop o2 = { "B", NULL, &o3 };
    qt_cgi_envop o1 = { "B", "x", &o2 };
    qt_cgi_envop o0 = { "A", "1", &o1 };
    qt_kv *out = qt_cgi_env_apply(pool, &base, &o0);
    ck_assert_pstr_eq(out->name, "A");
    ck_assert_pstr_eq(out->next->name, "B");
    ck_assert_pstr_eq(out->next->value, "again");
    ck_assert_ptr_null(out->next->next);
}
END_TEST

/* ------------------------------------------------------------ paths, argv */

static const struct {
    const char *path, *info, *want;
} script_name_rows[] = {
    { "/cgi-bin/x/a/b", "/a/b", "/cgi-bin/x" },
    { "/cgi-bin/x", NULL, "/cgi-bin/x" },
    { "/cgi-bin/x", "", "/cgi-bin/x" },
    { "/x", "/not-a-suffix", "/x" },
};

START_TEST(script_name)
{
    ck_assert_str_eq(qt_cgi_script_name(pool, script_name_rows[_i].path,
                                        script_name_rows[_i].info),
                     script_name_rows[_i].want);
}
END_TEST

static const struct {
    const char *info, *want;
} translate_rows[] = {
    { "/a b", "/srv/htdocs/a b" },
    { "/cgi-bin/x", "/srv/cgi-bin/x" },
    { "/icons", "/usr/share/icons" },
    { "/icons/a.png", "/usr/share/icons/a.png" },
    { "/iconsx", "/srv/htdocs/iconsx" },          /* not a segment match */
    { "/old/page", NULL },                         /* Redirect: no file */
    { "", NULL },
};

START_TEST(translate)
{
    qt_urlmap maps[] = {
        { .kind = QT_MAP_SCRIPTALIAS, .prefix = "/cgi-bin/", .target = "/srv/cgi-bin/" },
        { .kind = QT_MAP_ALIAS, .prefix = "/icons", .target = "/usr/share/icons" },
        { .kind = QT_MAP_REDIRECT, .prefix = "/old", .target = "http://x/", .status = 301 },
    };
    qt_server s = { .document_root = "/srv/htdocs", .urlmaps = maps, .nurlmaps = 3 };
    const char *got = qt_cgi_translate(pool, &s, translate_rows[_i].info);
    if (translate_rows[_i].want)
        ck_assert_pstr_eq(got, translate_rows[_i].want);
    else
        ck_assert_ptr_null(got);
}
END_TEST

static const struct {
    const char *args;
    const char *want[5];              /* after argv[0] */
} argv_rows[] = {
    { NULL, { NULL } },
    { "", { NULL } },
    { "a=1", { NULL } },                        /* has '=': no argv */
    { "foo+bar+baz%21", { "foo", "bar", "baz!", NULL } },
    { "x%3Bls", { "x\\;ls", NULL } },           /* shell-escaped as Apache does */
    { "%2F%00%zz", { "%2F%00%zz", NULL } },     /* kept literal */
};

START_TEST(isindex_argv)
{
    char **argv = qt_cgi_argv(pool, "/s/x.cgi", argv_rows[_i].args);
    ck_assert_str_eq(argv[0], "/s/x.cgi");
    size_t i = 0;
    for (; argv_rows[_i].want[i]; i++)
        ck_assert_pstr_eq(argv[i + 1], argv_rows[_i].want[i]);
    ck_assert_ptr_null(argv[i + 1]);
}
END_TEST

START_TEST(nph)
{
    ck_assert(qt_cgi_is_nph("/srv/cgi-bin/nph-test"));
    ck_assert(qt_cgi_is_nph("nph-x"));
    ck_assert(!qt_cgi_is_nph("/srv/nph-dir/test"));
    ck_assert(!qt_cgi_is_nph("/srv/cgi-bin/xnph-test"));
}
END_TEST

/* ------------------------------------------------------------ response head */

typedef struct {
    const char *in;
    int rc;
    int status;
    const char *status_line, *location, *content_type;
    const char *headers;              /* "A: v|B: w" in order */
    const char *bad;
} head_row;

static const head_row head_rows[] = {
    { "Content-Type: text/html\n\nbody", QT_CGI_HEAD_DONE, 0, NULL, NULL, "text/html", "", NULL },
    { "Content-type: Text/HTML; Charset=UTF-8\r\n\r\n", QT_CGI_HEAD_DONE, 0, NULL, NULL,
      "text/html; Charset=UTF-8", "", NULL },
    { "Status: 418 I am a teapot\n\n", QT_CGI_HEAD_DONE, 418, "418 I am a teapot", NULL, NULL, "", NULL },
    { "Status: 404\n\n", QT_CGI_HEAD_DONE, 404, NULL, NULL, NULL, "", NULL },
    { "Location: /x?y=1\n\n", QT_CGI_HEAD_DONE, 0, NULL, "/x?y=1", NULL, "", NULL },
    /* framing belongs to the server: CL and TE from the script are dropped */
    { "Content-Length: 3\nTransfer-Encoding: chunked\nX-A: 1\n\n", QT_CGI_HEAD_DONE, 0,
      NULL, NULL, NULL, "X-A: 1", NULL },
    { "X-A: 1\nx-a: 2\nSet-Cookie: a=1\nSet-Cookie: b=2\n\n", QT_CGI_HEAD_DONE, 0, NULL,
      NULL, NULL, "X-A: 1, 2|Set-Cookie: a=1|Set-Cookie: b=2", NULL },
    { "X-Sp:   padded  \r\n\r\n", QT_CGI_HEAD_DONE, 0, NULL, NULL, NULL, "X-Sp: padded", NULL },
    { "Content-Type: text/plain\nno colon here at all, a long line of text\n\n",
      QT_CGI_HEAD_BAD, 0, NULL, NULL, "text/plain", "", "no colon here at all, a long l" },
    { ": empty name\n\n", QT_CGI_HEAD_BAD, 0, NULL, NULL, NULL, "", ": empty name" },
    { "Status: abc\n\n", QT_CGI_HEAD_STATUS, 0, NULL, NULL, NULL, "", "abc" },
    { "Status: 999 Big\n\n", QT_CGI_HEAD_STATUS, 0, NULL, NULL, NULL, "", "999 Big" },
    { "Status: 2000\n\n", QT_CGI_HEAD_STATUS, 0, NULL, NULL, NULL, "", "2000" },
    { "Content-Type: text/plain\n", QT_CGI_HEAD_MORE, 0, NULL, NULL, "text/plain", "", NULL },
    { "Content-Type: text/pl", QT_CGI_HEAD_MORE, 0, NULL, NULL, NULL, "", NULL },
    { "", QT_CGI_HEAD_MORE, 0, NULL, NULL, NULL, "", NULL },
};

static const char *join_headers(const qt_kv *kv)
{
    static char out[512];
    out[0] = '\0';
    for (; kv; kv = kv->next) {
        if (out[0])
            strcat(out, "|");
        strcat(out, kv->name);
        strcat(out, ": ");
        strcat(out, kv->value);
    }
    return out;
}

static void check_head(const head_row *row, const qt_cgi_head *h, int rc)
{
    ck_assert_msg(rc == row->rc, "%s: rc %d want %d", row->in, rc, row->rc);
    ck_assert_int_eq(h->status, row->status);
    ck_assert_pstr_eq(h->status_line, row->status_line);
    ck_assert_pstr_eq(h->location, row->location);
    ck_assert_pstr_eq(h->content_type, row->content_type);
    ck_assert_str_eq(join_headers(h->headers), row->headers);
    ck_assert_pstr_eq(h->bad, row->bad);
}

START_TEST(head_whole)
{
    const head_row *row = &head_rows[_i];
    qt_cgi_head h = { 0 };
    size_t used;
    int rc = qt_cgi_head_parse(pool, &h, row->in, strlen(row->in), &used);
    check_head(row, &h, rc);
    if (rc == QT_CGI_HEAD_DONE)
        ck_assert_str_eq(row->in + used, strstr(row->in, "\n\n") ? strstr(row->in, "\n\n") + 2
                                                               : strstr(row->in, "\r\n\r\n") + 4);
}
END_TEST

/* The same rows fed one byte at a time, as a pipe may deliver them. */
START_TEST(head_bytewise)
{
    const head_row *row = &head_rows[_i];
    qt_cgi_head h = { 0 };
    char buf[256];
    size_t have = 0, used = 0, len = strlen(row->in);
    int rc = QT_CGI_HEAD_MORE;
    for (size_t i = 0; i < len && rc == QT_CGI_HEAD_MORE; i++) {
        buf[have++] = row->in[i];
        rc = qt_cgi_head_parse(pool, &h, buf, have, &used);
        memmove(buf, buf + used, have - used);
        have -= used;
    }
    check_head(row, &h, rc);
}
END_TEST

START_TEST(head_line_too_long)
{
    size_t n = QT_CGI_MAX_LINE + 10;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[n] = '\0';
    qt_cgi_head h = { 0 };
    size_t used;
    ck_assert_int_eq(qt_cgi_head_parse(pool, &h, big, n, &used), QT_CGI_HEAD_LONG);
    memcpy(big, "X-Big: ", 7);
    big[n - 1] = '\n';
    ck_assert_int_eq(qt_cgi_head_parse(pool, &h, big, n, &used), QT_CGI_HEAD_LONG);
    free(big);
}
END_TEST

#define NROWS(a) (int)(sizeof(a) / sizeof((a)[0]))

static Suite *cgi_env_suite(void)
{
    Suite *s = suite_create("cgi_env");
    TCase *tc = tcase_create("env");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, header_var, 0, NROWS(header_rows));
    tcase_add_loop_test(tc, env_table, 0, NROWS(env_rows));
    tcase_add_test(tc, env_no_query_no_path_info);
    tcase_add_test(tc, env_subprocess_and_overrides);
    tcase_add_test(tc, env_apply_ops);
    tcase_add_loop_test(tc, script_name, 0, NROWS(script_name_rows));
    tcase_add_loop_test(tc, translate, 0, NROWS(translate_rows));
    tcase_add_loop_test(tc, isindex_argv, 0, NROWS(argv_rows));
    tcase_add_test(tc, nph);
    suite_add_tcase(s, tc);
    TCase *th = tcase_create("head");
    tcase_add_checked_fixture(th, setup, teardown);
    tcase_add_loop_test(th, head_whole, 0, NROWS(head_rows));
    tcase_add_loop_test(th, head_bytewise, 0, NROWS(head_rows));
    tcase_add_test(th, head_line_too_long);
    suite_add_tcase(s, th);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cgi_env_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
