/*
 * The routing layer (server/router.c): a real config on a temp tree, a fake
 * connection, and a table of URL -> {status, handler, file, PATH_INFO}.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "request.h"
#include "router.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static char root[256];
static char outside[256];
static qt_config *cfg;

static void write_file(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    char cwd[256];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
    snprintf(root, sizeof(root), "/tmp/qt-router-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
    snprintf(outside, sizeof(outside), "/tmp/qt-outside-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(outside));
    const char *dirs[] = { "conf", "logs", "htdocs", "htdocs/sub", "htdocs/private",
                           "htdocs/nolinks", "cgi-bin", "other", "two" };
    for (size_t i = 0; i < N(dirs); i++) {
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", root, dirs[i]);
        ck_assert_int_eq(mkdir(p, 0755), 0);
    }
    write_file("htdocs/index.html", "x");
    write_file("htdocs/sub/page.html", "x");
    write_file("htdocs/private/secret.txt", "x");
    write_file("htdocs/run.cgi", "x");
    write_file("cgi-bin/printenv", "x");
    write_file("other/f.txt", "x");
    write_file("two/f.txt", "x");
    char target[512], link[512];
    snprintf(target, sizeof(target), "%s", outside);
    snprintf(link, sizeof(link), "%s/htdocs/nolinks/out", root);
    ck_assert_int_eq(symlink(target, link), 0);
    snprintf(link, sizeof(link), "%s/htdocs/out", root);
    ck_assert_int_eq(symlink(target, link), 0);
    FILE *f = fopen(strcat(strcpy(target, outside), "/passwd"), "w");
    fputs("x", f);
    fclose(f);

    char conf[4096];
    snprintf(conf, sizeof(conf),
             "Listen 127.0.0.1:1\n"
             "LoadModule test_mpm_module %s/t/unit/mod_test_mpm.so\n"
             "TypesConfig %s/conf/mime.types\n"
             "DocumentRoot htdocs\n"
             "ErrorLog logs/error_log\n"
             "<Directory />\n  Require all denied\n</Directory>\n"
             "<Directory htdocs>\n  Require all granted\n  Options FollowSymLinks\n</Directory>\n"
             "<Directory htdocs/private>\n  Require all denied\n</Directory>\n"
             "<Directory htdocs/nolinks>\n  Options -FollowSymLinks\n</Directory>\n"
             "<Directory other>\n  Require all granted\n</Directory>\n"
             "<Directory cgi-bin>\n  Require all granted\n</Directory>\n"
             "<Directory two>\n  Require all granted\n</Directory>\n"
             "AddHandler cgi-script .cgi\n"
             "Alias /alias/ other/\n"
             "ScriptAlias /cgi-bin/ cgi-bin/\n"
             "ScriptAlias /git/ cgi-bin/printenv/\n"
             "Redirect /old http://example.test/new\n"
             "Redirect permanent /moved /elsewhere\n"
             "Redirect gone /gone\n"
             "<Location /hello>\n  SetHandler hello\n</Location>\n"
             "<VirtualHost *:2>\n  ServerName two.test\n  DocumentRoot two\n</VirtualHost>\n",
             cwd, getenv("QT_SRCDIR") ? getenv("QT_SRCDIR") : "..");
    write_file("conf/httpd.conf", conf);
    char cfile[512], err[512] = "";
    snprintf(cfile, sizeof(cfile), "%s/conf/httpd.conf", root);
    qt_config_args args = { .config_file = cfile, .server_root = root };
    cfg = qt_config_load(&args, err, sizeof(err));
    ck_assert_msg(cfg != NULL, "config: %s", err);
}

static void teardown(void)
{
    qt_config_free(cfg);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", root, outside);
    ck_assert_int_eq(system(cmd), 0);
}

static const struct {
    const char *name, *path, *host;
    int status;
    const char *handler;        /* NULL: not checked */
    const char *file;           /* relative to root; NULL: not checked */
    const char *path_info;
    const char *location;
} rows[] = {
    { "file", "/index.html", NULL, 0, "default-handler", "htdocs/index.html", NULL, NULL },
    { "directory", "/sub/", NULL, 0, "default-handler", "htdocs/sub/", NULL, NULL },
    { "missing file still routes", "/nope.html", NULL, 0, "default-handler", "htdocs/nope.html", NULL, NULL },
    { "path info after a file", "/sub/page.html/a/b", NULL, 0, "default-handler", "htdocs/sub/page.html", "/a/b", NULL },
    { "denied directory", "/private/secret.txt", NULL, 403, NULL, NULL, NULL, NULL },
    { "alias", "/alias/f.txt", NULL, 0, "default-handler", "other/f.txt", NULL, NULL },
    { "alias needs its slash", "/aliasf.txt", NULL, 0, NULL, "htdocs/aliasf.txt", NULL, NULL },
    { "scriptalias", "/cgi-bin/printenv", NULL, 0, "cgi-script", "cgi-bin/printenv", NULL, NULL },
    { "scriptalias path info", "/cgi-bin/printenv/x/y", NULL, 0, "cgi-script", "cgi-bin/printenv", "/x/y", NULL },
    { "scriptalias onto a file (git http-backend)", "/git/repo.git/info/refs", NULL, 0, "cgi-script", "cgi-bin/printenv", "/repo.git/info/refs", NULL },
    { "addhandler by extension", "/run.cgi", NULL, 0, "cgi-script", "htdocs/run.cgi", NULL, NULL },
    { "sethandler in location", "/hello", NULL, 0, "hello", NULL, NULL, NULL },
    { "redirect keeps the rest", "/old/x", NULL, 302, NULL, NULL, NULL, "http://example.test/new/x" },
    { "redirect not a prefix of a word", "/oldies", NULL, 0, "default-handler", NULL, NULL, NULL },
    { "redirect permanent", "/moved", NULL, 301, NULL, NULL, NULL, "/elsewhere" },
    { "redirect gone", "/gone", NULL, 410, NULL, NULL, NULL, NULL },
    { "symlink allowed by FollowSymLinks", "/out/passwd", NULL, 0, "default-handler", NULL, NULL, NULL },
    { "symlink refused without FollowSymLinks", "/nolinks/out/passwd", NULL, 403, NULL, NULL, NULL, NULL },
    { "vhost by Host", "/f.txt", "two.test", 0, "default-handler", "two/f.txt", NULL, NULL },
    { "unknown Host gets the first vhost", "/f.txt", "nobody.test", 0, "default-handler", "two/f.txt", NULL, NULL },
};

static qt_request *fake_request(qt_pool *p, const char *path, const char *host)
{
    qt_conn *c = qt_pcalloc(p, sizeof(*c));
    c->cfg = cfg;
    c->pool = p;
    c->fd = -1;
    strcpy(c->peer_ip, "127.0.0.1");
    strcpy(c->local_ip, "127.0.0.1");
    c->local_port = host ? 2 : 1;   /* the vhost listens on port 2 */
    c->peer.sa.sa_family = AF_INET;
    qt_request *r = qt_pcalloc(p, sizeof(*r));
    r->pool = p;
    r->conn = c;
    r->cfg = cfg;
    r->path = path;
    r->method = "GET";
    r->hostname = host;
    r->server = qt_select_vhost(cfg, c, host);
    return r;
}

START_TEST(test_route_rows)
{
    qt_pool *p = qt_pool_create(4096);
    for (size_t i = 0; i < N(rows); i++) {
        qt_request *r = fake_request(p, rows[i].path, rows[i].host);
        int st = qt_route(r);
        ck_assert_msg(st == rows[i].status, "%s: status %d, want %d", rows[i].name, st,
                      rows[i].status);
        if (rows[i].handler)
            ck_assert_msg(r->handler && strcmp(r->handler, rows[i].handler) == 0,
                          "%s: handler %s, want %s", rows[i].name, r->handler, rows[i].handler);
        if (rows[i].file) {
            char want[512];
            snprintf(want, sizeof(want), "%s/%s", root, rows[i].file);
            ck_assert_msg(r->filename && strcmp(r->filename, want) == 0,
                          "%s: file %s, want %s", rows[i].name, r->filename, want);
        }
        if (rows[i].path_info)
            ck_assert_msg(r->path_info && strcmp(r->path_info, rows[i].path_info) == 0,
                          "%s: path_info %s, want %s", rows[i].name, r->path_info,
                          rows[i].path_info);
        if (rows[i].location) {
            const char *loc = qt_header_out(r, "Location");
            ck_assert_msg(loc && strcmp(loc, rows[i].location) == 0,
                          "%s: Location %s, want %s", rows[i].name, loc, rows[i].location);
        }
    }
    qt_pool_destroy(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("route");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_route_rows);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
