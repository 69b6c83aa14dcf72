/*
 * Unit tests for server/config.c, server/config_core.c and server/mime.c.
 *
 * Each test builds a scratch ServerRoot under /tmp (conf/httpd.conf,
 * conf/mime.types, htdocs/, logs/), chdir()s into it and loads
 * "conf/httpd.conf", so ServerRoot comes from the parent-of-conf rule and
 * errors read "conf/httpd.conf:LINE: Directive: ...".  The MPM is
 * t/unit/mod_test_mpm.so (a do-nothing MPM with a few directives), found
 * through QT_BUILDDIR.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "config_build.h"
#include "log.h"
#include "mime.h"
#include "mpm.h"

#define ERRLEN 1024

static char mpm_so[PATH_MAX + 64], mpm2_so[PATH_MAX + 64], srcdir[PATH_MAX];
static char root[PATH_MAX];

/* Mirrors the test module's per-server struct. */
typedef struct {
    int start_servers;
    int refuse;
} test_server_conf;
typedef struct {
    const char *value;
} test_dir_conf;

/* ------------------------------------------------------------ scaffolding */

/* Index of the test MPM module: after the built-in ones. */
#define MI(cfg) qt_config_module_index((cfg), (cfg)->mpm_module)

static size_t nbuiltin(void)
{
    size_t n = 0;

    while (qt_builtin_modules[n])
        n++;
    return n;
}

static void mkdirs_for(const char *path)
{
    char tmp[PATH_MAX];

    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *s = strchr(tmp + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        mkdir(tmp, 0755);
        *s = '/';
    }
}

static void put(const char *rel, const char *text)
{
    FILE *f;

    mkdirs_for(rel);
    f = fopen(rel, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void make_root(void)
{
    char tmpl[] = "/tmp/qt-config-XXXXXX";

    ck_assert_ptr_nonnull(mkdtemp(tmpl));
    ck_assert_ptr_nonnull(realpath(tmpl, root));
    ck_assert_int_eq(chdir(root), 0);
    mkdir("htdocs", 0755);
    mkdir("logs", 0755);
    put("conf/mime.types", "# test types\ntext/html html htm\ntext/plain txt TEXT\n"
        "application/gzip gz\napplication/x-tar tar\n");
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void teardown(void)
{
    if (root[0]) {
        ck_assert_int_eq(chdir("/"), 0);
        nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
}

static qt_config *load_args(qt_config_args *a, char *err)
{
    if (a->config_file == NULL)
        a->config_file = "conf/httpd.conf";
    return qt_config_load(a, err, ERRLEN);
}

/* conf/httpd.conf = "LoadModule <test mpm>" (line 1), "Listen 8080" (line 2), body. */
static qt_config *load_body(const char *body, char *err)
{
    char text[16384];
    qt_config_args a = { 0 };

    snprintf(text, sizeof text, "LoadModule test_mpm_module %s\nListen 8080\n%s",
             mpm_so, body);
    put("conf/httpd.conf", text);
    return load_args(&a, err);
}

static qt_config *load_ok(const char *body)
{
    char err[ERRLEN] = "";
    qt_config *cfg = load_body(body, err);

    ck_assert_msg(cfg != NULL, "load failed: %s", err);
    return cfg;
}

/* Loads with stderr captured into out (warnings). */
static qt_config *load_capture(const char *body, char *out, size_t n)
{
    char path[] = "/tmp/qt-config-stderr-XXXXXX", err[ERRLEN] = "";
    int fd = mkstemp(path), saved = dup(2);
    qt_config *cfg;
    ssize_t got;

    fflush(stderr);
    dup2(fd, 2);
    cfg = load_body(body, err);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    got = read(fd, out, n - 1);
    out[got > 0 ? got : 0] = '\0';
    close(fd);
    unlink(path);
    ck_assert_msg(cfg != NULL, "load failed: %s", err);
    return cfg;
}

static const char *in_root(const char *rel)
{
    static char buf[PATH_MAX * 2];

    snprintf(buf, sizeof buf, "%s/%s", root, rel);
    return buf;
}

/* ---------------------------------------------------------------- defaults */

START_TEST(test_defaults)
{
    qt_config *cfg;
    const qt_server *m;
    char cf[PATH_MAX * 2];

    make_root();
    cfg = load_ok("");
    m = cfg->main;
    ck_assert_str_eq(cfg->server_root, root);
    snprintf(cf, sizeof cf, "%s/conf/httpd.conf", root);
    ck_assert_str_eq(cfg->config_file, cf);
    ck_assert_int_eq(m->timeout_ms, 60000);
    ck_assert(m->keep_alive);
    ck_assert_int_eq(m->keep_alive_timeout_ms, 5000);
    ck_assert_uint_eq(m->max_keep_alive_requests, 100);
    ck_assert_uint_eq(m->limit_request_line, 8190);
    ck_assert_uint_eq(m->limit_request_field_size, 8190);
    ck_assert_uint_eq(m->limit_request_fields, 100);
    ck_assert_uint_eq(m->limit_request_body, 1073741824u);
    ck_assert_str_eq(cfg->pid_file, in_root("logs/httpd.pid"));
    ck_assert_str_eq(cfg->error_log, in_root("logs/error_log"));
    ck_assert_str_eq(cfg->types_config, in_root("conf/mime.types"));
    ck_assert_str_eq(m->document_root, in_root("htdocs"));
    ck_assert_int_eq(cfg->log_level, QT_LOG_WARN);
    ck_assert_int_eq(cfg->server_tokens, QT_TOKENS_FULL);
    ck_assert_int_eq(cfg->trace_enable, 0);
    ck_assert_int_eq(cfg->listen_backlog, 511);
    ck_assert_str_eq(m->dir_defaults->directory_index[0], "index.html");
    ck_assert_ptr_null(m->dir_defaults->directory_index[1]);
    ck_assert_uint_eq(qt_dir_options(m->dir_defaults), QT_OPT_FOLLOWSYMLINKS);
    ck_assert_int_eq(m->dir_defaults->require.kind, QT_REQ_UNSET);
    ck_assert_ptr_eq(cfg->modules[0], &qt_core_module);
    ck_assert_uint_eq(cfg->nmodules, nbuiltin() + 1);
    ck_assert_ptr_eq(cfg->modules[cfg->nmodules - 1], cfg->mpm_module);
    ck_assert_ptr_null(cfg->dl_handles[0]);
    ck_assert_str_eq(cfg->mpm_module->name, "test_mpm_module");
    ck_assert_str_eq(cfg->mpm->name, "test");
    ck_assert_ptr_nonnull(cfg->dl_handles[MI(cfg)]);
    ck_assert(qt_config_has_module(cfg, "cgi_module"));
    ck_assert_ptr_nonnull(cfg->listeners);
    ck_assert_str_eq(cfg->listeners->text, "*:8080");
    ck_assert_str_eq(cfg->listeners->protocol, "http");
    ck_assert_int_eq(cfg->listeners->port, 8080);
    ck_assert_int_eq(cfg->listeners->fd, -1);
    ck_assert_ptr_null(cfg->listeners->next);
    ck_assert_ptr_nonnull(cfg->mime);
    ck_assert_uint_eq(cfg->nvhosts, 0);
    /* The module's confs exist everywhere and carry its defaults. */
    ck_assert_int_eq(((test_server_conf *)m->mod[MI(cfg)])->start_servers, 5);
    ck_assert_ptr_nonnull(m->dir_defaults->mod[MI(cfg)]);
    qt_config_free(cfg);
    teardown();
}
END_TEST

/* -------------------------------------------------------------- error rows */

typedef struct {
    const char *body;           /* after line 2 */
    const char *err;            /* expected prefix of the error */
} err_row;

#define INVALID "perhaps misspelled or defined by a module not included in the server configuration"

static const err_row err_rows[] = {
    /* Listen */
    { "Listen 99999", "conf/httpd.conf:3: Listen: port must be 1-65535, got 99999" },
    { "Listen 0", "conf/httpd.conf:3: Listen: port must be 1-65535, got 0" },
    { "Listen 80x", "conf/httpd.conf:3: Listen: port must be 1-65535, got 80x" },
    { "Listen 8080", "conf/httpd.conf:3: Listen: *:8080 is already listened on" },
    { "Listen 0.0.0.0:8080", "conf/httpd.conf:3: Listen: 0.0.0.0:8080 is already listened on" },
    { "Listen 1.2.3:80", "conf/httpd.conf:3: Listen: '1.2.3' is not a numeric IP address" },
    { "Listen example.com:80", "conf/httpd.conf:3: Listen: 'example.com' is not a numeric" },
    { "Listen ::1:80", "conf/httpd.conf:3: Listen: IPv6 addresses must be in brackets" },
    { "Listen [::1", "conf/httpd.conf:3: Listen: malformed address '[::1'" },
    { "Listen [::1]:81 ftp", "conf/httpd.conf:3: Listen: protocol must be http or https, got 'ftp'" },
    { "Listen", "conf/httpd.conf:3: Listen: takes one or two arguments ([addr:]port" },
    { "Listen 1 http extra", "conf/httpd.conf:3: Listen: takes one or two arguments" },
    { "ListenBacklog 0", "conf/httpd.conf:3: ListenBacklog: must be at least 1" },
    { "FileCacheSize 1M", "conf/httpd.conf:3: FileCacheSize: expects a number, got '1M'" },
    { "FileCacheValid soon", "conf/httpd.conf:3: FileCacheValid: expects seconds" },
    { "FileCacheValid", "conf/httpd.conf:3: FileCacheValid: takes one argument" },
    /* numbers and durations */
    { "Timeout abc", "conf/httpd.conf:3: Timeout: expects seconds or a number with ms, s, mi or h, got 'abc'" },
    { "Timeout -1", "conf/httpd.conf:3: Timeout: expects seconds or a number" },
    { "Timeout 0", "conf/httpd.conf:3: Timeout: must be greater than 0" },
    { "Timeout 99999999999", "conf/httpd.conf:3: Timeout: must be at most 4294967295, got 99999999999" },
    { "KeepAliveTimeout 5x", "conf/httpd.conf:3: KeepAliveTimeout: expects seconds" },
    { "MaxKeepAliveRequests 18446744073709551616",
      "conf/httpd.conf:3: MaxKeepAliveRequests: must be at most 4294967295, got 18446744073709551616" },
    { "MaxKeepAliveRequests -5", "conf/httpd.conf:3: MaxKeepAliveRequests: expects a non-negative number, got '-5'" },
    { "LimitRequestBody 99999999999999999999",
      "conf/httpd.conf:3: LimitRequestBody: must be at most 9223372036854775807" },
    { "LimitRequestBody 1k", "conf/httpd.conf:3: LimitRequestBody: expects a number, got '1k'" },
    { "LimitRequestLine 0", "conf/httpd.conf:3: LimitRequestLine: must be at least 1" },
    { "LimitRequestFieldSize 99999999", "conf/httpd.conf:3: LimitRequestFieldSize: must be at most 16777216" },
    { "LimitRequestFields", "conf/httpd.conf:3: LimitRequestFields: takes one argument" },
    { "KeepAlive maybe", "conf/httpd.conf:3: KeepAlive: takes one argument, On or Off" },
    { "KeepAlive On Off", "conf/httpd.conf:3: KeepAlive: takes one argument, On or Off" },
    /* unknown directives and contexts */
    { "Foo bar", "conf/httpd.conf:3: Invalid command 'Foo', " INVALID },
    { "\n\nfoo", "conf/httpd.conf:5: Invalid command 'foo', " INVALID },
    { "<Foo>\n</Foo>", "conf/httpd.conf:3: Invalid command '<Foo', " INVALID },
    { "<Listen 80>\n</Listen>", "conf/httpd.conf:3: Invalid command '<Listen', " INVALID },
    { "MinSpareThreads 5", "conf/httpd.conf:3: Invalid command 'MinSpareThreads', " INVALID },
    { "ServerAlias x", "conf/httpd.conf:3: ServerAlias: only allowed inside <VirtualHost>" },
    { "Require all granted", "conf/httpd.conf:3: Require: only allowed inside <Directory>, <Location> or <Files>" },
    { "<Directory /x>\nListen 81\n</Directory>", "conf/httpd.conf:4: Listen: not allowed inside <Directory>" },
    { "<Location /x>\nDocumentRoot /x\n</Location>", "conf/httpd.conf:4: DocumentRoot: not allowed inside <Location>" },
    { "<VirtualHost *:80>\nUser nobody\n</VirtualHost>", "conf/httpd.conf:4: User: not allowed inside <VirtualHost>" },
    { "<VirtualHost *:80>\nLoadModule a b\n</VirtualHost>", "conf/httpd.conf:4: LoadModule: only allowed outside sections" },
    { "<VirtualHost *:80>\nStartServers 3\n</VirtualHost>", "conf/httpd.conf:4: StartServers: not allowed inside <VirtualHost>" },
    /* section nesting */
    { "<Directory /a>\n<Directory /b>\n</Directory>\n</Directory>",
      "conf/httpd.conf:4: <Directory>: cannot occur within <Directory> section" },
    { "<Location /a>\n<Directory /b>\n</Directory>\n</Location>",
      "conf/httpd.conf:4: <Directory>: cannot occur within <Location> section" },
    { "<Directory /a>\n<Location /b>\n</Location>\n</Directory>",
      "conf/httpd.conf:4: <Location>: cannot occur within <Directory> section" },
    { "<Location /a>\n<Files x>\n</Files>\n</Location>",
      "conf/httpd.conf:4: <Files>: cannot occur within <Location> section" },
    { "<Files a>\n<FilesMatch b>\n</FilesMatch>\n</Files>",
      "conf/httpd.conf:4: <FilesMatch>: cannot occur within <Files> section" },
    { "<Files a>\n<Directory /b>\n</Directory>\n</Files>",
      "conf/httpd.conf:4: <Directory>: cannot occur within <Files> section" },
    { "<VirtualHost *:80>\n<VirtualHost *:81>\n</VirtualHost>\n</VirtualHost>",
      "conf/httpd.conf:4: <VirtualHost>: cannot occur within <VirtualHost> section" },
    { "<Directory /a>\n<VirtualHost *:81>\n</VirtualHost>\n</Directory>",
      "conf/httpd.conf:4: <VirtualHost>: cannot occur within <Directory> section" },
    { "<VirtualHost>\n</VirtualHost>", "conf/httpd.conf:3: <VirtualHost>: needs at least one address" },
    { "<VirtualHost *:99999>\n</VirtualHost>", "conf/httpd.conf:3: <VirtualHost>: '*:99999' is not addr[:port]" },
    { "<Directory>\n</Directory>", "conf/httpd.conf:3: <Directory>: takes one argument: a directory" },
    { "<Directory /a /b>\n</Directory>", "conf/httpd.conf:3: <Directory>: takes one argument" },
    { "<DirectoryMatch \"(\">\n</DirectoryMatch>", "conf/httpd.conf:3: <DirectoryMatch>: bad regular expression '('" },
    { "<Location ~ \"[\">\n</Location>", "conf/httpd.conf:3: <Location>: bad regular expression '['" },
    { "<Directory /x>\nOptions None\n</directory>\n</Directory>",
      "conf/httpd.conf:6: </Directory> without matching <Directory> section" },
    { "<Directory /x>\nOptions None\n", "conf/httpd.conf:3: <Directory> was not closed" },
    { "<IfDefine>\n</IfDefine>", "conf/httpd.conf:3: <IfDefine>: takes one argument, [!]NAME" },
    { "<IfModule !>\n</IfModule>", "conf/httpd.conf:3: <IfModule>: takes one argument, [!]module" },
    /* per-directory directives */
    { "Options +Indexes FollowSymLinks", "conf/httpd.conf:3: Options: either all options must start with + or -, or none may" },
    { "Options Bogus", "conf/httpd.conf:3: Options: illegal option 'Bogus'" },
    { "Options +None", "conf/httpd.conf:3: Options: illegal option '+None'" },
    { "<Directory /x>\nRequire valid-user\n</Directory>", "conf/httpd.conf:4: Require: 'Require valid-user' is not supported" },
    { "<Directory /x>\nRequire host example.com\n</Directory>", "conf/httpd.conf:4: Require: 'Require host' is not supported" },
    { "<Directory /x>\nRequire all\n</Directory>", "conf/httpd.conf:4: Require: 'Require all' is not supported" },
    { "<Directory /x>\nRequire all maybe\n</Directory>", "conf/httpd.conf:4: Require: 'Require all' takes granted or denied, got 'maybe'" },
    { "<Directory /x>\nRequire ip\n</Directory>", "conf/httpd.conf:4: Require: 'Require ip' needs at least one address" },
    { "<Directory /x>\nRequire ip 10.0.0.0/33\n</Directory>", "conf/httpd.conf:4: Require: prefix length must be 0-32, got '33'" },
    { "<Directory /x>\nRequire ip ::/129\n</Directory>", "conf/httpd.conf:4: Require: prefix length must be 0-128, got '129'" },
    { "<Directory /x>\nRequire ip 10.0.0.0/255.0.255.0\n</Directory>", "conf/httpd.conf:4: Require: '255.0.255.0' is not a valid netmask" },
    { "<Directory /x>\nRequire ip foo.example\n</Directory>", "conf/httpd.conf:4: Require: 'foo.example' is not an IP address or network" },
    { "<Directory /x>\nRequire ip 10.256\n</Directory>", "conf/httpd.conf:4: Require: '10.256' is not an IP address" },
    { "<Directory /x>\nRequire all granted\nRequire ip 10.0.0.1\n</Directory>",
      "conf/httpd.conf:5: Require: only several 'Require ip' lines can be combined" },
    { "<Directory /x>\nAllowOverride All\n</Directory>",
      "conf/httpd.conf:4: AllowOverride: only None is supported: this server does not read .htaccess files" },
    { "<Directory /x>\nForceType text\n</Directory>", "conf/httpd.conf:4: ForceType: 'text' is not a media type" },
    { "DirectoryIndex", "conf/httpd.conf:3: DirectoryIndex: takes at least one argument" },
    { "AddType text/plain", "conf/httpd.conf:3: AddType: needs a value and at least one extension" },
    { "AddType plain txt", "conf/httpd.conf:3: AddType: 'plain' is not a media type" },
    { "AddHandler cgi-script .", "conf/httpd.conf:3: AddHandler: empty extension '.'" },
    { "SetHandler", "conf/httpd.conf:3: SetHandler: takes one argument" },
    { "ErrorDocument 200 /x", "conf/httpd.conf:3: ErrorDocument: status must be 400-599, got 200" },
    { "ErrorDocument 404", "conf/httpd.conf:3: ErrorDocument: takes two arguments" },
    { "ErrorDocument", "conf/httpd.conf:3: ErrorDocument: takes two arguments" },
    { "ErrorDocument x404 /a", "conf/httpd.conf:3: ErrorDocument: takes two arguments" },
    { "ErrorDocument 404 default", "conf/httpd.conf:3: ErrorDocument: 'default' is not supported" },
    { "AcceptPathInfo Sometimes", "conf/httpd.conf:3: AcceptPathInfo: takes On, Off or Default" },
    /* mappings */
    { "Alias noslash /x", "conf/httpd.conf:3: Alias: URL prefix must start with '/'" },
    { "ScriptAlias /cgi-bin/", "conf/httpd.conf:3: ScriptAlias: takes two arguments" },
    { "Redirect gone /old http://x/", "conf/httpd.conf:3: Redirect: a 'gone' redirect takes no target URL" },
    { "Redirect 200 /a /b", "conf/httpd.conf:3: Redirect: status must be 3xx or 410 (gone), got 200" },
    { "Redirect /a", "conf/httpd.conf:3: Redirect: needs a target URL" },
    { "Redirect permanent /a", "conf/httpd.conf:3: Redirect: needs a target URL" },
    { "Redirect bogus /a /b", "conf/httpd.conf:3: Redirect: unknown status 'bogus'" },
    { "Redirect 3000 /a /b", "conf/httpd.conf:3: Redirect: unknown status '3000'" },
    { "Redirect /a relative/b", "conf/httpd.conf:3: Redirect: target must be an absolute URL or start with '/'" },
    { "Redirect a /b", "conf/httpd.conf:3: Redirect: URL path must start with '/'" },
    { "RedirectPermanent /a", "conf/httpd.conf:3: RedirectPermanent: takes two arguments" },
    /* server identity, process, logs */
    { "ServerName ftp://x", "conf/httpd.conf:3: ServerName: scheme must be http or https, got 'ftp'" },
    { "ServerName http://:80", "conf/httpd.conf:3: ServerName: 'http://:80' is not [scheme://]host[:port]" },
    { "ServerName x:0", "conf/httpd.conf:3: ServerName: port must be 1-65535, got 0" },
    { "ServerName a b", "conf/httpd.conf:3: ServerName: takes one argument" },
    { "ServerRoot /nonexistent/qt", "conf/httpd.conf:3: ServerRoot: '/nonexistent/qt' must be a valid directory" },
    { "ServerRoot conf/mime.types", "conf/httpd.conf:3: ServerRoot: 'conf/mime.types' is not a directory" },
    { "LogLevel loud", "conf/httpd.conf:3: LogLevel: unknown level 'loud'" },
    { "LogLevel warn cgi:loud", "conf/httpd.conf:3: LogLevel: unknown level 'cgi:loud'" },
    { "CustomLog logs/x nosuch", "conf/httpd.conf:3: CustomLog: LogFormat nickname 'nosuch' is not defined" },
    { "CustomLog logs/x common env=foo", "conf/httpd.conf:3: CustomLog: conditional logging (env=, expr=) is not supported" },
    { "CustomLog logs/x", "conf/httpd.conf:3: CustomLog: takes two or three arguments" },
    { "ServerTokens Tiny", "conf/httpd.conf:3: ServerTokens: takes Full, OS, Minor, Minimal, Major or Prod, got 'Tiny'" },
    { "TraceEnable maybe", "conf/httpd.conf:3: TraceEnable: takes on, off or extended, got 'maybe'" },
    { "HostnameLookups EMail", "conf/httpd.conf:3: HostnameLookups: unknown value 'EMail'" },
    { "ServerSignature Loud", "conf/httpd.conf:3: ServerSignature: unknown value 'Loud'" },
    { "DocumentRoot \"/x", "conf/httpd.conf:3: DocumentRoot: unterminated quoted string" },
    { "TypesConfig conf/nosuch.types", "conf/httpd.conf:3: TypesConfig: cannot read " },
    /* walker directives */
    { "Define a:b", "conf/httpd.conf:3: Define: variable name must not contain ':', got 'a:b'" },
    { "Define", "conf/httpd.conf:3: Define: takes 1 or 2 arguments" },
    { "UnDefine a b", "conf/httpd.conf:3: UnDefine: takes 1 argument" },
    { "Include nothere.conf", "conf/httpd.conf:3: Include: cannot open '" },
    { "Include conf/none/*.conf", "conf/httpd.conf:3: Include: no file matches the wildcard '" },
    { "Include", "conf/httpd.conf:3: Include: takes 1 argument" },
    { "LoadModule test_mpm_module x.so", "conf/httpd.conf:3: LoadModule: module test_mpm_module is already loaded" },
    { "LoadModule nope_module modules/nope.so", "conf/httpd.conf:3: LoadModule: cannot load " },
    { "LoadModule nope_module", "conf/httpd.conf:3: LoadModule: takes 2 arguments" },
    /* module directives and hooks */
    { "StartServers 0", "conf/httpd.conf:3: StartServers: must be 1-1000" },
    { "TestRefuse On", "conf/httpd.conf: test_mpm_module: refused by TestRefuse" },
};

START_TEST(test_errors)
{
    const err_row *row = &err_rows[_i];
    char err[ERRLEN] = "";
    qt_config *cfg;

    make_root();
    cfg = load_body(row->body, err);
    ck_assert_msg(cfg == NULL, "'%s' loaded", row->body);
    ck_assert_msg(strncmp(err, row->err, strlen(row->err)) == 0,
                  "'%s':\n got      %s\n expected %s", row->body, err, row->err);
    teardown();
}
END_TEST

/* ------------------------------------------------------ MPM and Listen rules */

START_TEST(test_no_mpm)
{
    char err[ERRLEN];
    qt_config_args a = { 0 };

    make_root();
    put("conf/httpd.conf", "Listen 8080\n");
    ck_assert_ptr_null(load_args(&a, err));
    ck_assert_str_eq(err, "conf/httpd.conf: No MPM loaded. Load exactly one, e.g. LoadModule"
                     " mpm_prefork_module modules/mod_mpm_prefork.so");
    teardown();
}
END_TEST

START_TEST(test_two_mpms)
{
    char err[ERRLEN], text[PATH_MAX * 3], want[ERRLEN];
    qt_config_args a = { 0 };

    make_root();
    snprintf(text, sizeof text, "LoadModule test_mpm_module %s\n# c\n"
             "LoadModule test_mpm2_module %s\nListen 8080\n", mpm_so, mpm2_so);
    put("conf/httpd.conf", text);
    ck_assert_ptr_null(load_args(&a, err));
    snprintf(want, sizeof want, "conf/httpd.conf:3: LoadModule: More than one MPM loaded:"
             " test_mpm2_module here and test_mpm_module at conf/httpd.conf:1; keep exactly one");
    ck_assert_str_eq(err, want);
    teardown();
}
END_TEST

START_TEST(test_no_listen)
{
    char err[ERRLEN], text[PATH_MAX * 2];
    qt_config_args a = { 0 };

    make_root();
    snprintf(text, sizeof text, "LoadModule test_mpm_module %s\n", mpm_so);
    put("conf/httpd.conf", text);
    ck_assert_ptr_null(load_args(&a, err));
    ck_assert_str_eq(err, "conf/httpd.conf: no Listen directive: at least one is required");
    teardown();
}
END_TEST

START_TEST(test_module_symbol_missing)
{
    char err[ERRLEN], text[PATH_MAX * 2];
    qt_config_args a = { 0 };

    make_root();
    snprintf(text, sizeof text, "LoadModule wrong_module %s\n", mpm2_so);
    put("conf/httpd.conf", text);
    ck_assert_ptr_null(load_args(&a, err));
    ck_assert_msg(strstr(err, "conf/httpd.conf:1: LoadModule: ") == err &&
                  strstr(err, "does not define the module wrong_module"), "got %s", err);
    teardown();
}
END_TEST

START_TEST(test_missing_config_file)
{
    char err[ERRLEN];
    qt_config_args a = { .config_file = "conf/nope.conf" };

    make_root();
    ck_assert_ptr_null(load_args(&a, err));
    ck_assert_str_eq(err, "conf/nope.conf: cannot read configuration file: No such file or directory");
    teardown();
}
END_TEST

START_TEST(test_unreadable_config_is_directory)
{
    char err[ERRLEN];
    qt_config_args a = { .config_file = "conf" };

    make_root();
    ck_assert_ptr_null(load_args(&a, err));
    ck_assert_str_eq(err, "conf: cannot read configuration file: Is a directory");
    teardown();
}
END_TEST

/* ------------------------------------------------------- good directives */

typedef struct {
    const char *line;
    const char *text;
    const char *protocol;
    int port;
    int family;
} listen_row;

static const listen_row listen_rows[] = {
    { "Listen 127.0.0.1:8081", "127.0.0.1:8081", "http", 8081, AF_INET },
    { "Listen [::1]:8443", "[::1]:8443", "http", 8443, AF_INET6 },
    { "Listen [::]:8082", "[::]:8082", "http", 8082, AF_INET6 },
    { "Listen 443", "*:443", "https", 443, AF_INET },
    { "Listen 8082 HTTPS", "*:8082", "https", 8082, AF_INET },
    { "Listen 127.0.0.1:443 http", "127.0.0.1:443", "http", 443, AF_INET },
    { "Listen *:8083", "*:8083", "http", 8083, AF_INET },
    { "Listen 127.0.0.1:8080", "127.0.0.1:8080", "http", 8080, AF_INET },
};

START_TEST(test_listen)
{
    const listen_row *row = &listen_rows[_i];
    qt_config *cfg;
    const qt_listener *l;

    make_root();
    cfg = load_ok(row->line);
    l = cfg->listeners->next;
    ck_assert_ptr_nonnull(l);
    ck_assert_str_eq(l->text, row->text);
    ck_assert_str_eq(l->protocol, row->protocol);
    ck_assert_int_eq(l->port, row->port);
    ck_assert_int_eq(l->addr.ss_family, row->family);
    ck_assert_uint_eq(l->addrlen, row->family == AF_INET ? sizeof(struct sockaddr_in)
                                                         : sizeof(struct sockaddr_in6));
    if (row->family == AF_INET)
        ck_assert_int_eq(ntohs(((struct sockaddr_in *)&l->addr)->sin_port), row->port);
    else
        ck_assert_int_eq(ntohs(((struct sockaddr_in6 *)&l->addr)->sin6_port), row->port);
    qt_config_free(cfg);
    teardown();
}
END_TEST

START_TEST(test_server_settings)
{
    qt_config *cfg;
    const qt_server *m;

    make_root();
    cfg = load_ok("ServerName https://www.Example.com:8443\nServerAdmin a@example.test\n"
                  "Timeout 2mi\nKeepAlive off\nKeepAliveTimeout 500ms\n"
                  "MaxKeepAliveRequests 0\nLimitRequestLine 100\nLimitRequestFieldSize 200\n"
                  "LimitRequestFields 0\nLimitRequestBody 0\nListenBacklog 64\n"
                  "PidFile run/q.pid\nErrorLog \"|/usr/bin/logger\"\nLogLevel info cgi:debug\n"
                  "ServerTokens Prod\nTraceEnable extended\nUser nobody\nGroup nogroup\n"
                  "ServerSignature EMail\nUseCanonicalName DNS\nHostnameLookups Double\n"
                  "DocumentRoot \"htdocs/\"\nTypesConfig /dev/null\n"
                  "FileCacheSize 65536\nFileCacheValid 250ms\n");
    m = cfg->main;
    ck_assert_str_eq(m->scheme, "https");
    ck_assert_str_eq(m->server_name, "www.Example.com");
    ck_assert_int_eq(m->port, 8443);
    ck_assert_str_eq(m->server_admin, "a@example.test");
    ck_assert_int_eq(m->timeout_ms, 120000);
    ck_assert(!m->keep_alive);
    ck_assert_int_eq(m->keep_alive_timeout_ms, 500);
    ck_assert_uint_eq(m->max_keep_alive_requests, 0);
    ck_assert_uint_eq(m->limit_request_line, 100);
    ck_assert_uint_eq(m->limit_request_field_size, 200);
    ck_assert_uint_eq(m->limit_request_fields, 0);
    ck_assert_uint_eq(m->limit_request_body, 0);
    ck_assert_int_eq(cfg->listen_backlog, 64);
    ck_assert_uint_eq(cfg->file_cache_size, 65536);
    ck_assert_int_eq(cfg->file_cache_valid_ms, 250);
    ck_assert_str_eq(cfg->pid_file, in_root("run/q.pid"));
    ck_assert_str_eq(cfg->error_log, "|/usr/bin/logger");
    ck_assert_int_eq(cfg->log_level, QT_LOG_INFO);
    ck_assert_int_eq(cfg->server_tokens, QT_TOKENS_PROD);
    ck_assert_int_eq(cfg->trace_enable, 2);
    ck_assert_str_eq(cfg->user, "nobody");
    ck_assert_str_eq(cfg->group, "nogroup");
    ck_assert_str_eq(m->document_root, in_root("htdocs"));
    ck_assert_str_eq(cfg->types_config, "/dev/null");
    qt_config_free(cfg);
    teardown();
}
END_TEST

typedef struct {
    const char *line;
    const char *name;
    int port;
    const char *scheme;
} name_row;

static const name_row name_rows[] = {
    { "ServerName localhost", "localhost", 0, NULL },
    { "ServerName localhost:8080", "localhost", 8080, NULL },
    { "ServerName [::1]:80", "::1", 80, NULL },
    { "ServerName [::1]", "::1", 0, NULL },
    { "ServerName http://a.test", "a.test", 0, "http" },
    { "ServerName 10.0.0.1:81", "10.0.0.1", 81, NULL },
};

START_TEST(test_server_name)
{
    const name_row *row = &name_rows[_i];
    qt_config *cfg;

    make_root();
    cfg = load_ok(row->line);
    ck_assert_str_eq(cfg->main->server_name, row->name);
    ck_assert_int_eq(cfg->main->port, row->port);
    if (row->scheme)
        ck_assert_str_eq(cfg->main->scheme, row->scheme);
    else
        ck_assert_ptr_null(cfg->main->scheme);
    qt_config_free(cfg);
    teardown();
}
END_TEST

START_TEST(test_log_levels)
{
    static const struct { const char *line; int level; } rows[] = {
        { "LogLevel emerg", QT_LOG_EMERG }, { "LogLevel ERROR", QT_LOG_ERR },
        { "LogLevel debug", QT_LOG_DEBUG }, { "LogLevel trace1", QT_LOG_TRACE1 },
        { "LogLevel trace8", QT_LOG_TRACE1 + 7 }, { "LogLevel ssl:info", QT_LOG_WARN },
        { "LogLevel notice\nLogLevel crit", QT_LOG_CRIT },
    };
    make_root();
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        qt_config *cfg = load_ok(rows[i].line);
        ck_assert_msg(cfg->log_level == rows[i].level, "%s", rows[i].line);
        qt_config_free(cfg);
    }
    teardown();
}
END_TEST

START_TEST(test_logs)
{
    qt_config *cfg;
    const qt_server *m;

    make_root();
    cfg = load_ok("LogFormat \"%h %>s\" tiny\nCustomLog logs/t tiny\n"
                  "CustomLog \"|/bin/cat\" common\nCustomLog logs/raw \"%h %b\"\n"
                  "LogFormat \"%h\" common\nCustomLog logs/c common\nLogFormat \"%t\"\n");
    m = cfg->main;
    ck_assert_uint_eq(m->nlogs, 4);
    ck_assert_str_eq(m->logs[0].path, in_root("logs/t"));
    ck_assert_str_eq(m->logs[0].format, "%h %>s");
    ck_assert_ptr_nonnull(m->logs[0].compiled);
    ck_assert_str_eq(m->logs[1].path, "|/bin/cat");
    ck_assert_str_eq(m->logs[1].format, "%h %l %u %t \"%r\" %>s %b");
    ck_assert_str_eq(m->logs[2].format, "%h %b");
    ck_assert_str_eq(m->logs[3].format, "%h");       /* redefined nickname */
    ck_assert_ptr_nonnull(m->logs[3].compiled);
    qt_config_free(cfg);
    cfg = load_ok("CustomLog logs/access_log combined\n");
    ck_assert_str_eq(cfg->main->logs[0].format, "%h %l %u %t \"%r\" %>s %b"
                     " \"%{Referer}i\" \"%{User-Agent}i\"");
    qt_config_free(cfg);
    teardown();
}
END_TEST

START_TEST(test_urlmaps)
{
    static const struct { enum qt_map_kind kind; const char *prefix, *target; int status; } want[] = {
        { QT_MAP_ALIAS, "/icons/", "/usr/share/icons/", 0 },
        { QT_MAP_SCRIPTALIAS, "/cgi-bin/", NULL, 0 },           /* target: in root */
        { QT_MAP_REDIRECT, "/a", "http://x.test/", 302 },
        { QT_MAP_REDIRECT, "/b", "/new", 301 },
        { QT_MAP_REDIRECT, "/c", "/new", 303 },
        { QT_MAP_REDIRECT, "/d", NULL, 410 },
        { QT_MAP_REDIRECT, "/e", "/new", 307 },
        { QT_MAP_REDIRECT, "/f", "https://y.test", 301 },
        { QT_MAP_REDIRECT, "/g", "/t", 302 },
        { QT_MAP_REDIRECT, "/h", "/t", 302 },
    };
    qt_config *cfg;
    const qt_server *m;

    make_root();
    cfg = load_ok("Alias /icons/ /usr/share/icons/\nScriptAlias /cgi-bin/ cgi-bin/\n"
                  "Redirect /a http://x.test/\nRedirect permanent /b /new\n"
                  "Redirect seeother /c /new\nRedirect gone /d\nRedirect 307 /e /new\n"
                  "RedirectPermanent /f https://y.test\nRedirectTemp /g /t\n"
                  "Redirect temp /h /t\n");
    m = cfg->main;
    ck_assert_uint_eq(m->nurlmaps, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < m->nurlmaps; i++) {
        ck_assert_int_eq(m->urlmaps[i].kind, want[i].kind);
        ck_assert_str_eq(m->urlmaps[i].prefix, want[i].prefix);
        ck_assert_int_eq(m->urlmaps[i].status, want[i].status);
        if (i == 1)
            ck_assert_str_eq(m->urlmaps[i].target, in_root("cgi-bin/"));
        else if (want[i].target)
            ck_assert_str_eq(m->urlmaps[i].target, want[i].target);
        else
            ck_assert_ptr_null(m->urlmaps[i].target);
    }
    qt_config_free(cfg);
    teardown();
}
END_TEST

/* ---------------------------------------------------------------- sections */

START_TEST(test_sections)
{
    qt_config *cfg;
    const qt_server *m;
    const qt_section *s;

    make_root();
    cfg = load_ok("<Directory />\nRequire all denied\n</Directory>\n"
                  "<Directory htdocs/>\nOptions Indexes\n<Files \".ht*\">\nRequire all denied\n"
                  "</Files>\n</Directory>\n"
                  "<Directory ~ \"^/srv/[a-z]+$\">\n</Directory>\n"
                  "<DirectoryMatch ^/x>\n</DirectoryMatch>\n"
                  "<Location /status>\nSetHandler server-status\n</Location>\n"
                  "<LocationMatch \"\\.php$\">\n</LocationMatch>\n"
                  "<FilesMatch \"\\.(gif|png)$\">\n</FilesMatch>\n"
                  "<Files index.html>\n</Files>\n"
                  "<directory \"/srv/data///\">\n</directory>\n");
    m = cfg->main;
    ck_assert_uint_eq(m->nsections, 10);
    s = m->sections;
    ck_assert_int_eq(s[0].kind, QT_SEC_DIRECTORY);
    ck_assert_str_eq(s[0].match, "/");
    ck_assert_int_eq(s[0].conf->require.kind, QT_REQ_DENIED);
    ck_assert_int_eq(s[0].parent, -1);
    ck_assert_uint_eq(s[0].line, 3);
    ck_assert_str_eq(s[0].file, "conf/httpd.conf");
    ck_assert_str_eq(s[1].match, in_root("htdocs"));
    ck_assert_uint_eq(qt_dir_options(s[1].conf), QT_OPT_INDEXES);
    ck_assert_int_eq(s[2].kind, QT_SEC_FILES);
    ck_assert_str_eq(s[2].match, ".ht*");
    ck_assert(s[2].is_glob && !s[2].is_regex);
    ck_assert_int_eq(s[2].parent, 1);
    ck_assert(s[3].is_regex && s[3].kind == QT_SEC_DIRECTORY);
    ck_assert_int_eq(regexec(&s[3].re, "/srv/www", 0, NULL, 0), 0);
    ck_assert_int_ne(regexec(&s[3].re, "/srv/www/x", 0, NULL, 0), 0);
    ck_assert(s[4].is_regex && s[4].kind == QT_SEC_DIRECTORY);
    ck_assert_int_eq(s[5].kind, QT_SEC_LOCATION);
    ck_assert(!s[5].is_regex && !s[5].is_glob);
    ck_assert_str_eq(s[5].match, "/status");
    ck_assert_str_eq(s[5].conf->handler, "server-status");
    ck_assert(s[6].is_regex && s[6].kind == QT_SEC_LOCATION);
    ck_assert_int_eq(regexec(&s[6].re, "/a/b.php", 0, NULL, 0), 0);
    ck_assert(s[7].is_regex && s[7].kind == QT_SEC_FILES);
    ck_assert_int_eq(regexec(&s[7].re, "a.png", 0, NULL, 0), 0);
    ck_assert_int_eq(s[7].parent, -1);
    ck_assert(!s[8].is_regex && !s[8].is_glob);
    ck_assert_str_eq(s[9].match, "/srv/data");
    qt_config_free(cfg);
    teardown();
}
END_TEST

/* ------------------------------------------------------------ conditionals */

typedef struct {
    const char *body;
    const char *define;         /* -D, may be NULL */
    int64_t timeout_ms;
    bool foo_defined;           /* FOO defined after the load */
} cond_row;

static const cond_row cond_rows[] = {
    { "<IfDefine FOO>\nTimeout 1\n</IfDefine>", "FOO", 1000, true },
    { "<IfDefine FOO>\nTimeout 1\n</IfDefine>", NULL, 60000, false },
    { "<IfDefine !FOO>\nTimeout 2\n</IfDefine>", NULL, 2000, false },
    { "<IfDefine !FOO>\nTimeout 2\n</IfDefine>", "FOO", 60000, true },
    { "Define FOO\n<IfDefine FOO>\nTimeout 3\n</IfDefine>", NULL, 3000, true },
    { "UnDefine FOO\n<IfDefine FOO>\nTimeout 3\n</IfDefine>", "FOO", 60000, false },
    { "<IfDefine foo>\nTimeout 3\n</IfDefine>", "FOO", 60000, true },   /* names are case-sensitive */
    { "<IfModule test_mpm_module>\nTimeout 4\n</IfModule>", NULL, 4000, false },
    { "<IfModule mod_test_mpm.c>\nTimeout 5\n</IfModule>", NULL, 5000, false },
    { "<IfModule !test_mpm_module>\nTimeout 6\n</IfModule>", NULL, 60000, false },
    { "<IfModule mime_module>\nTimeout 7\n</IfModule>", NULL, 7000, false },
    { "<IfModule core.c>\nTimeout 8\n</IfModule>", NULL, 8000, false },
    /* The body of a false conditional is never executed, so unknown
     * directives (another MPM's) in it are fine. */
    { "<IfModule mpm_event_module>\nStartServers 3\nMinSpareThreads 75\nBogus\n"
      "</IfModule>\nTimeout 9", NULL, 9000, false },
    { "<IfModule !mpm_worker_module>\n<IfDefine !NOPE>\nTimeout 10\n</IfDefine>\n"
      "</IfModule>", NULL, 10000, false },
    { "<IfDefine NOPE>\n<VirtualHost>\nListen x\n</VirtualHost>\n</IfDefine>", NULL, 60000, false },
    { "<Directory /x>\n<IfModule test_mpm_module>\nOptions None\n</IfModule>\n</Directory>\n"
      "Timeout 11", NULL, 11000, false },
};

START_TEST(test_conditionals)
{
    const cond_row *row = &cond_rows[_i];
    char err[ERRLEN] = "", text[8192];
    const char *defines[] = { row->define, NULL };
    qt_config_args a = { .defines = row->define ? defines : NULL };
    qt_config *cfg;

    make_root();
    snprintf(text, sizeof text, "LoadModule test_mpm_module %s\nListen 8080\n%s\n",
             mpm_so, row->body);
    put("conf/httpd.conf", text);
    cfg = load_args(&a, err);
    ck_assert_msg(cfg != NULL, "%s: %s", row->body, err);
    ck_assert_msg(cfg->main->timeout_ms == row->timeout_ms, "%s: %lld", row->body,
                  (long long)cfg->main->timeout_ms);
    ck_assert(qt_config_defined(cfg, "FOO") == row->foo_defined);
    qt_config_free(cfg);
    teardown();
}
END_TEST

START_TEST(test_variables)
{
    qt_config *cfg;
    char warn[2048];

    make_root();
    setenv("QT_TEST_PORT", "8181", 1);
    cfg = load_capture("Define DOCS htdocs2\nDocumentRoot ${DOCS}\nListen ${QT_TEST_PORT}\n"
                       "ServerAdmin ${QT_NOPE_XYZ}\nDefine QT_TEST_PORT 9999\n"
                       "ServerName \"${DOCS} ${QT_TEST_PORT}\"\n", warn, sizeof warn);
    ck_assert_str_eq(cfg->main->document_root, in_root("htdocs2"));
    ck_assert_int_eq(cfg->listeners->next->port, 8181);
    ck_assert_str_eq(cfg->main->server_admin, "${QT_NOPE_XYZ}");
    ck_assert_str_eq(cfg->main->server_name, "htdocs2 9999");   /* Define beats env */
    ck_assert_msg(strstr(warn, "conf/httpd.conf:6: Config variable ${QT_NOPE_XYZ} is not defined\n"),
                  "stderr: %s", warn);
    ck_assert_msg(strstr(warn, "DocumentRoot [") != NULL, "no docroot warning: %s", warn);
    qt_config_free(cfg);
    teardown();
}
END_TEST

START_TEST(test_docroot_exists_no_warning)
{
    char warn[2048];
    qt_config *cfg;

    make_root();
    cfg = load_capture("DocumentRoot htdocs\n", warn, sizeof warn);
    ck_assert_str_eq(warn, "");
    qt_config_free(cfg);
    teardown();
}
END_TEST

START_TEST(test_command_line)
{
    char err[ERRLEN] = "", text[PATH_MAX * 2];
    const char *pre[] = { "Timeout 30", "Define PRE", NULL };
    const char *post[] = { "KeepAliveTimeout 9", NULL };
    const char *bad_pre[] = { "Bogus 1", NULL };
    const char *bad_post[] = { "Timeout x", NULL };
    qt_config_args a = { .pre_directives = pre, .post_directives = post };
    qt_config *cfg;

    make_root();
    snprintf(text, sizeof text, "LoadModule test_mpm_module %s\nListen 8080\n"
             "KeepAliveTimeout 3\n<IfDefine PRE>\nTimeout 31\n</IfDefine>\n", mpm_so);
    put("conf/httpd.conf", text);
    cfg = load_args(&a, err);
    ck_assert_msg(cfg != NULL, "%s", err);
    ck_assert_int_eq(cfg->main->timeout_ms, 31000);          /* file after -C */
    ck_assert_int_eq(cfg->main->keep_alive_timeout_ms, 9000); /* -c after file */
    qt_config_free(cfg);
    a.pre_directives = bad_pre;
    a.post_directives = NULL;
    ck_assert_ptr_null(load_args(&a, err));
    ck_assert_str_eq(err, "-C directive:1: Invalid command 'Bogus', " INVALID);
    a.pre_directives = NULL;
    a.post_directives = bad_post;
    ck_assert_ptr_null(load_args(&a, err));
    ck_assert_msg(strncmp(err, "-c directive:1: Timeout: expects seconds", 40) == 0, "%s", err);
    teardown();
}
END_TEST

START_TEST(test_server_root_rules)
{
    char err[ERRLEN] = "", text[PATH_MAX * 2], other[PATH_MAX * 2];
    qt_config_args a = { 0 };
    qt_config *cfg;

    make_root();
    put("alt/conf/mime.types", "text/plain txt\n");
    mkdir("alt/htdocs", 0755);
    snprintf(other, sizeof other, "%s/alt", root);
    /* The ServerRoot directive moves later relative paths. */
    snprintf(text, sizeof text, "LoadModule test_mpm_module %s\nListen 8080\n"
             "PidFile a.pid\nServerRoot alt\nPidFile b.pid\nTypesConfig conf/mime.types\n",
             mpm_so);
    put("conf/httpd.conf", text);
    cfg = load_args(&a, err);
    ck_assert_msg(cfg != NULL, "%s", err);
    ck_assert_str_eq(cfg->server_root, other);
    ck_assert_str_eq(cfg->pid_file, in_root("alt/b.pid"));
    qt_config_free(cfg);
    /* -d wins over the directive, and a relative -f is found under it. */
    ck_assert_int_eq(chdir("/"), 0);
    a.server_root = root;
    a.config_file = "conf/httpd.conf";
    cfg = load_args(&a, err);
    ck_assert_msg(cfg != NULL, "%s", err);
    ck_assert_str_eq(cfg->server_root, root);
    ck_assert_str_eq(cfg->pid_file, in_root("b.pid"));
    qt_config_free(cfg);
    a.server_root = "/nonexistent/qt";
    ck_assert_ptr_null(load_args(&a, err));
    ck_assert_str_eq(err, "/nonexistent/qt: ServerRoot (-d): No such file or directory");
    teardown();
}
END_TEST

/* ------------------------------------------------------------------ Include */

START_TEST(test_include)
{
    char err[ERRLEN] = "";
    qt_config *cfg;

    make_root();
    put("conf/extra/b.conf", "Timeout 20\n");
    put("conf/extra/a.conf", "Timeout 10\nServerAdmin a@x\n");
    put("conf/extra/c.txt", "Timeout 30\n");
    put("conf/dir/1.conf", "KeepAliveTimeout 11\n");
    put("conf/dir/sub/2.conf", "LimitRequestFields 7\n");
    put("conf/dir/0.conf", "\n# nothing but a comment\n");
    put("conf/part.conf", "Options -FollowSymLinks +Indexes\n");
    cfg = load_ok("Include conf/extra/*.conf\nInclude conf/dir\nIncludeOptional conf/none/*.conf\n"
                  "IncludeOptional conf/missing.conf\n<Directory /x>\nInclude conf/part.conf\n"
                  "</Directory>\n");
    ck_assert_int_eq(cfg->main->timeout_ms, 20000);         /* a then b: sorted */
    ck_assert_str_eq(cfg->main->server_admin, "a@x");
    ck_assert_int_eq(cfg->main->keep_alive_timeout_ms, 11000);
    ck_assert_uint_eq(cfg->main->limit_request_fields, 7);
    ck_assert_uint_eq(qt_dir_options(cfg->main->sections[0].conf), QT_OPT_INDEXES);
    qt_config_free(cfg);

    /* Errors inside an included file name that file. */
    put("conf/bad/x.conf", "\nOops\n");
    ck_assert_ptr_null(load_body("Include conf/bad/x.conf\n", err));
    ck_assert_str_eq(err + strlen(root) + 1, "conf/bad/x.conf:2: Invalid command 'Oops', " INVALID);
    put("conf/bad/y.conf", "<Directory /a>\n");
    ck_assert_ptr_null(load_body("Include conf/bad/y.conf\n", err));
    ck_assert_str_eq(err + strlen(root) + 1, "conf/bad/y.conf:1: <Directory> was not closed");
    /* Include of itself is stopped. */
    put("conf/self.conf", "Include conf/self.conf\n");
    ck_assert_ptr_null(load_body("Include conf/self.conf\n", err));
    ck_assert_msg(strstr(err, "includes nested more than 32 deep"), "%s", err);
    teardown();
}
END_TEST

/* ------------------------------------------------------- virtual hosts */

START_TEST(test_vhosts)
{
    qt_config *cfg;
    const qt_server *m, *v1, *v2;

    make_root();
    mkdir("htdocs2", 0755);
    cfg = load_ok("ServerName main.test\nTimeout 30\nKeepAliveTimeout 7\nServerAdmin a@b\n"
                  "CustomLog logs/access_log common\nAlias /m /srv/m\nStartServers 9\n"
                  "AddType text/x-main .main\nTestDirValue top\n"
                  "<Directory />\nRequire all denied\n</Directory>\n"
                  "<VirtualHost *:8080 127.0.0.1:8080>\nServerName v1.test\nServerAlias *.v1.test W.V1.TEST\n"
                  "ServerAlias x.test\nTimeout 9\nKeepAlive Off\nAlias /v /srv/v\n"
                  "<Location /x>\nSetHandler none\n</Location>\n<Directory /d>\n<Files a>\n</Files>\n"
                  "</Directory>\n</VirtualHost>\n"
                  "<VirtualHost _default_:*>\nCustomLog logs/v2 combined\nDocumentRoot htdocs2\n"
                  "ServerAdmin z@b\nLimitRequestBody 5\nAddType text/x-v2 .v2\nTestDirValue v2\n"
                  "</VirtualHost>\n");
    m = cfg->main;
    ck_assert_uint_eq(cfg->nvhosts, 2);
    v1 = cfg->vhosts[0];
    v2 = cfg->vhosts[1];
    ck_assert_uint_eq(v1->naddrs, 2);
    ck_assert_str_eq(v1->addrs[1], "127.0.0.1:8080");
    ck_assert_uint_eq(v1->line, 15);
    ck_assert_str_eq(v1->server_name, "v1.test");
    ck_assert_uint_eq(v1->naliases, 3);
    ck_assert_str_eq(v1->aliases[1], "w.v1.test");
    ck_assert_str_eq(v1->aliases[2], "x.test");
    ck_assert_int_eq(v1->timeout_ms, 9000);
    ck_assert(!v1->keep_alive);
    ck_assert_int_eq(v1->keep_alive_timeout_ms, 7000);
    ck_assert_uint_eq(v1->limit_request_body, 1073741824u);
    ck_assert_str_eq(v1->server_admin, "a@b");
    ck_assert_str_eq(v1->document_root, m->document_root);
    ck_assert_ptr_eq(v1->logs, m->logs);
    ck_assert_uint_eq(v1->nlogs, 1);
    /* main's sections first, then the vhost's; parent indices follow */
    ck_assert_uint_eq(v1->nsections, 4);
    ck_assert_str_eq(v1->sections[0].match, "/");
    ck_assert_str_eq(v1->sections[1].match, "/x");
    ck_assert_str_eq(v1->sections[2].match, "/d");
    ck_assert_int_eq(v1->sections[3].parent, 2);
    /* the vhost's own mappings first, then main's */
    ck_assert_uint_eq(v1->nurlmaps, 2);
    ck_assert_str_eq(v1->urlmaps[0].prefix, "/v");
    ck_assert_str_eq(v1->urlmaps[1].prefix, "/m");
    ck_assert_uint_eq(qt_dir_options(v1->dir_defaults), QT_OPT_FOLLOWSYMLINKS);
    ck_assert_str_eq(qt_mime_type_for(cfg->mime, v1->dir_defaults->types_by_ext, "a.main"),
                     "text/x-main");
    ck_assert_int_eq(((test_server_conf *)v1->mod[MI(cfg)])->start_servers, 9);
    ck_assert_str_eq(((test_dir_conf *)v1->dir_defaults->mod[MI(cfg)])->value, "top");

    ck_assert_str_eq(v2->server_name, "main.test");
    ck_assert_str_eq(v2->server_admin, "z@b");
    ck_assert_str_eq(v2->document_root, in_root("htdocs2"));
    ck_assert_uint_eq(v2->nlogs, 1);
    ck_assert_str_eq(v2->logs[0].path, in_root("logs/v2"));
    ck_assert_uint_eq(v2->limit_request_body, 5);
    ck_assert_int_eq(v2->timeout_ms, 30000);
    ck_assert(v2->keep_alive);
    ck_assert_uint_eq(v2->nsections, 1);
    ck_assert_uint_eq(v2->nurlmaps, 1);
    ck_assert_str_eq(qt_mime_type_for(cfg->mime, v2->dir_defaults->types_by_ext, "a.main"),
                     "text/x-main");
    ck_assert_str_eq(qt_mime_type_for(cfg->mime, v2->dir_defaults->types_by_ext, "a.v2"),
                     "text/x-v2");
    ck_assert_str_eq(((test_dir_conf *)v2->dir_defaults->mod[MI(cfg)])->value, "v2");
    /* main is untouched by its vhosts */
    ck_assert_uint_eq(m->nsections, 1);
    ck_assert_int_eq(m->timeout_ms, 30000);
    qt_config_free(cfg);
    teardown();
}
END_TEST

/* ------------------------------------------------------------ merging */

typedef struct {
    const char *outer, *inner;  /* Options lines of <Directory /a> and <Directory /a/b> */
    unsigned want;
} opt_row;

static const opt_row opt_rows[] = {
    { "Indexes", "+ExecCGI", QT_OPT_INDEXES | QT_OPT_EXECCGI },
    { "All", "-ExecCGI -Includes", QT_OPT_ALL & ~(QT_OPT_EXECCGI | QT_OPT_INCLUDES) },
    { "+Indexes", "-FollowSymLinks", QT_OPT_INDEXES },
    { "Indexes", "None", 0 },
    { "None", "+Indexes", QT_OPT_INDEXES },
    { "Indexes FollowSymLinks", "MultiViews", QT_OPT_MULTIVIEWS },
    { "+Indexes -Indexes", "+ExecCGI", QT_OPT_FOLLOWSYMLINKS | QT_OPT_EXECCGI },
    { "Indexes\nOptions +ExecCGI", "-Indexes", QT_OPT_EXECCGI },
    { "+ExecCGI\nOptions Indexes", "+MultiViews", QT_OPT_INDEXES | QT_OPT_MULTIVIEWS },
    { "all", "+multiviews", QT_OPT_ALL | QT_OPT_MULTIVIEWS },
    { "-FollowSymLinks", "+SymLinksIfOwnerMatch", QT_OPT_SYMLINKSOWNER },
    { "IncludesNOEXEC", "+Indexes", QT_OPT_INCLUDES | QT_OPT_INDEXES },
};

START_TEST(test_options_merge)
{
    const opt_row *row = &opt_rows[_i];
    char body[1024];
    qt_config *cfg;
    qt_dir_conf *merged;
    qt_pool *p = qt_pool_create(1024);

    make_root();
    snprintf(body, sizeof body, "<Directory /a>\nOptions %s\n</Directory>\n"
             "<Directory /a/b>\nOptions %s\n</Directory>\n", row->outer, row->inner);
    cfg = load_ok(body);
    merged = qt_dir_conf_merge(cfg, p, cfg->main->dir_defaults, cfg->main->sections[0].conf);
    merged = qt_dir_conf_merge(cfg, p, merged, cfg->main->sections[1].conf);
    ck_assert_msg(qt_dir_options(merged) == row->want, "%s / %s: got %#x want %#x",
                  row->outer, row->inner, qt_dir_options(merged), row->want);
    qt_pool_destroy(p);
    qt_config_free(cfg);
    teardown();
}
END_TEST

/* Relative forms merged without any absolute Options above them. */
START_TEST(test_options_relative_chain)
{
    qt_pool *p = qt_pool_create(1024);
    qt_dir_conf *a = qt_dir_conf_create(p), *b = qt_dir_conf_create(p), *m;
    qt_config cfg = { .nmodules = 1 };

    a->opts_relative = true;
    a->opts_add = QT_OPT_INDEXES;
    a->opts_remove = QT_OPT_FOLLOWSYMLINKS;
    b->opts_relative = true;
    b->opts_add = QT_OPT_FOLLOWSYMLINKS;
    m = qt_dir_conf_merge(&cfg, p, a, b);
    ck_assert(!m->opts_set);
    ck_assert_uint_eq(qt_dir_options(m), QT_OPT_INDEXES | QT_OPT_FOLLOWSYMLINKS);
    ck_assert_uint_eq(qt_dir_options(a), QT_OPT_INDEXES);
    qt_pool_destroy(p);
}
END_TEST

START_TEST(test_dir_merge)
{
    qt_config *cfg;
    qt_pool *p = qt_pool_create(1024);
    const qt_section *s;
    qt_dir_conf *top, *m;
    const qt_errdoc *d;

    make_root();
    cfg = load_ok("SetHandler top-handler\nAddHandler cgi-script .cgi .PL\n"
                  "ErrorDocument 404 /404.html\nErrorDocument 500 \"Oops, it broke\"\n"
                  "TestDirValue top\nAcceptPathInfo On\n"
                  "<Directory /top>\nForceType text/top\n</Directory>\n"
                  "<Directory /a>\nRequire ip 10.0.0.0/8\nRequire ip 192.168.1.77/24\n"
                  "SetHandler none\nForceType None\nAddHandler other .cgi\nAddType text/x-a a\n"
                  "ErrorDocument 404 http://elsewhere.test/\nErrorDocument 410 Gone away\n"
                  "DirectoryIndex a.html b.html\nDirectoryIndex c.html\nAllowOverride None\n"
                  "AcceptPathInfo Off\n</Directory>\n"
                  "<Directory /a/b>\nRequire all granted\nDirectoryIndex disabled\nTestDirValue deep\n"
                  "</Directory>\n");
    s = cfg->main->sections + 1;
    top = qt_dir_conf_merge(cfg, p, cfg->main->dir_defaults, s[-1].conf);
    m = qt_dir_conf_merge(cfg, p, top, s[0].conf);
    ck_assert_int_eq(m->require.kind, QT_REQ_IP);
    ck_assert_uint_eq(m->require.nnets, 2);
    ck_assert_ptr_null(m->handler);
    ck_assert_ptr_null(m->force_type);
    ck_assert_str_eq(qt_ext_map_lookup(m->handlers_by_ext, "x.cgi"), "other");
    ck_assert_str_eq(qt_ext_map_lookup(m->handlers_by_ext, "x.pl"), "cgi-script");
    ck_assert_str_eq(qt_mime_type_for(cfg->mime, m->types_by_ext, "q.A"), "text/x-a");
    d = m->error_docs;
    ck_assert_int_eq(d->status, 410);
    ck_assert(d->is_text);
    ck_assert_str_eq(d->target, "Gone away");
    for (d = m->error_docs; d->status != 404; d = d->next)
        ;
    ck_assert_str_eq(d->target, "http://elsewhere.test/");
    ck_assert(!d->is_text);
    for (d = m->error_docs; d->status != 500; d = d->next)
        ;
    ck_assert_str_eq(d->target, "Oops, it broke");
    ck_assert(d->is_text);
    ck_assert_str_eq(m->directory_index[0], "a.html");
    ck_assert_str_eq(m->directory_index[2], "c.html");
    ck_assert_ptr_null(m->directory_index[3]);
    ck_assert_int_eq(m->allow_override, 0);
    ck_assert_int_eq(m->accept_path_info, 0);
    ck_assert_str_eq(((test_dir_conf *)m->mod[MI(cfg)])->value, "top");

    m = qt_dir_conf_merge(cfg, p, m, s[1].conf);
    ck_assert_int_eq(m->require.kind, QT_REQ_GRANTED);
    ck_assert(m->directory_index_disabled);
    ck_assert_ptr_null(m->directory_index[0]);
    ck_assert_str_eq(((test_dir_conf *)m->mod[MI(cfg)])->value, "deep");
    ck_assert_str_eq(qt_ext_map_lookup(m->handlers_by_ext, "x.cgi"), "other");

    m = qt_dir_conf_merge(cfg, p, top, s[1].conf);
    ck_assert_str_eq(m->handler, "top-handler");
    ck_assert_str_eq(m->force_type, "text/top");
    ck_assert_int_eq(m->accept_path_info, 1);
    qt_pool_destroy(p);
    qt_config_free(cfg);
    teardown();
}
END_TEST

typedef struct {
    const char *line;
    int family;
    const char *addr;           /* masked network */
    unsigned prefix;
    bool negate;
    size_t nnets;
} ip_row;

static const ip_row ip_rows[] = {
    { "Require ip 10.1", AF_INET, "10.1.0.0", 16, false, 1 },
    { "Require ip 172.16.", AF_INET, "172.16.0.0", 16, false, 1 },
    { "Require ip 192.168.1.77/24", AF_INET, "192.168.1.0", 24, false, 1 },
    { "Require ip 10.9.8.7/255.255.0.0", AF_INET, "10.9.0.0", 16, false, 1 },
    { "Require ip 127.0.0.1", AF_INET, "127.0.0.1", 32, false, 1 },
    { "Require ip 0.0.0.0/0", AF_INET, "0.0.0.0", 0, false, 1 },
    { "Require ip 2001:db8:ffff::1/32", AF_INET6, "2001:db8::", 32, false, 1 },
    { "Require ip ::1", AF_INET6, "::1", 128, false, 1 },
    { "Require not ip 1.2.3.4 5.6.7.8", AF_INET, "1.2.3.4", 32, true, 2 },
    { "Require ip 10.0.0.1\nRequire ip 10.0.0.2 10.0.0.3", AF_INET, "10.0.0.1", 32, false, 3 },
    { "Require local", AF_INET, "127.0.0.0", 8, false, 2 },
};

START_TEST(test_require_ip)
{
    const ip_row *row = &ip_rows[_i];
    char body[512], text[64];
    qt_config *cfg;
    const qt_require *rq;

    make_root();
    snprintf(body, sizeof body, "<Location />\n%s\n</Location>\n", row->line);
    cfg = load_ok(body);
    rq = &cfg->main->sections[0].conf->require;
    ck_assert_int_eq(rq->kind, QT_REQ_IP);
    ck_assert(rq->negate == row->negate);
    ck_assert_uint_eq(rq->nnets, row->nnets);
    ck_assert_int_eq(rq->nets[0].family, row->family);
    ck_assert_uint_eq(rq->nets[0].prefix, row->prefix);
    inet_ntop(row->family, rq->nets[0].addr, text, sizeof text);
    ck_assert_str_eq(text, row->addr);
    qt_config_free(cfg);
    teardown();
}
END_TEST

/* ----------------------------------------------------------- module API */

START_TEST(test_module_api)
{
    qt_config *cfg;

    make_root();
    cfg = load_ok("StartServers 7\n");
    ck_assert_int_eq(((test_server_conf *)cfg->main->mod[MI(cfg)])->start_servers, 7);
    ck_assert_int_eq(qt_config_module_index(cfg, &qt_core_module), 0);
    ck_assert_int_eq(qt_config_module_index(cfg, cfg->mpm_module), (int)nbuiltin());
    ck_assert(qt_config_has_module(cfg, "test_mpm_module"));
    ck_assert(qt_config_has_module(cfg, "mod_test_mpm.c"));
    ck_assert(qt_config_has_module(cfg, "core_module"));
    ck_assert(qt_config_has_module(cfg, "mod_mime.c"));
    ck_assert(!qt_config_has_module(cfg, "mpm_prefork_module"));
    ck_assert(!qt_config_has_module(cfg, "mod_mpm_prefork.c"));
    ck_assert(!qt_config_has_module(cfg, ".c"));
    ck_assert_ptr_nonnull(qt_config_find_handler(cfg, "test-handler"));
    ck_assert_ptr_nonnull(qt_config_find_handler(cfg, "TEST-Handler"));
    ck_assert_ptr_null(qt_config_find_handler(cfg, "default-handler"));
    ck_assert_str_eq(qt_config_path(cfg, "x/y"), in_root("x/y"));
    ck_assert_str_eq(qt_config_path(cfg, "/abs"), "/abs");
    qt_config_free(cfg);
    teardown();
}
END_TEST

/* -------------------------------------------------------------------- mime */

typedef struct {
    const char *file;
    const char *type;           /* NULL: none */
} mime_row;

static const mime_row mime_rows[] = {
    { "index.html", "text/html" },
    { "INDEX.HTML", "text/html" },
    { "a.htm", "text/html" },
    { "a.html.en", "text/html" },               /* unknown last: last known wins */
    { "a.tar.gz", "application/gzip" },
    { "a.gz.tar", "application/x-tar" },
    { "/dir.txt/file", NULL },                  /* only the last component counts */
    { "/dir/file.txt", "text/plain" },
    { "notes.TEXT", "text/plain" },
    { "README", NULL },
    { "a.", NULL },
    { ".txt", "text/plain" },
    { "a..html", "text/html" },
    { "a.custom", "text/x-custom" },            /* AddType */
    { "a.html.custom", "text/x-custom" },
    { "a.custom.html", "text/html" },
    { "a.txt", "text/plain" },
    { "a.over", "text/x-later" },               /* later AddType wins */
};

START_TEST(test_mime_type_for)
{
    const mime_row *row = &mime_rows[_i];
    qt_config *cfg;
    const char *got;

    make_root();
    cfg = load_ok("AddType text/x-custom .custom\nAddType text/x-early over\n"
                  "AddType text/x-later .OVER\n");
    got = qt_mime_type_for(cfg->mime, cfg->main->dir_defaults->types_by_ext, row->file);
    if (row->type)
        ck_assert_msg(got && strcmp(got, row->type) == 0, "%s: got %s", row->file,
                      got ? got : "NULL");
    else
        ck_assert_msg(got == NULL, "%s: got %s", row->file, got);
    qt_config_free(cfg);
    teardown();
}
END_TEST

/* The shipped conf/mime.types: the common types a browser needs. */
START_TEST(test_shipped_mime_types)
{
    static const mime_row rows[] = {
        { "a.html", "text/html" }, { "a.css", "text/css" }, { "a.js", "text/javascript" },
        { "a.mjs", "text/javascript" }, { "a.json", "application/json" },
        { "a.xml", "application/xml" }, { "a.txt", "text/plain" }, { "a.png", "image/png" },
        { "a.jpg", "image/jpeg" }, { "a.jpeg", "image/jpeg" }, { "a.gif", "image/gif" },
        { "a.svg", "image/svg+xml" }, { "a.webp", "image/webp" }, { "a.avif", "image/avif" },
        { "a.ico", "image/vnd.microsoft.icon" }, { "a.pdf", "application/pdf" },
        { "a.zip", "application/zip" }, { "a.gz", "application/gzip" },
        { "a.tar", "application/x-tar" }, { "a.mp3", "audio/mpeg" }, { "a.mp4", "video/mp4" },
        { "a.webm", "video/webm" }, { "a.ogg", "audio/ogg" }, { "a.wasm", "application/wasm" },
        { "a.woff", "font/woff" }, { "a.woff2", "font/woff2" }, { "a.ttf", "font/ttf" },
        { "a.otf", "font/otf" }, { "a.csv", "text/csv" }, { "a.md", "text/markdown" },
        { "a.tar.gz", "application/gzip" }, { "a.cgi", NULL },
    };
    char path[PATH_MAX * 2], err[256];
    qt_pool *p = qt_pool_create(4096);
    qt_mime_table *t;

    snprintf(path, sizeof path, "%s/conf/mime.types", srcdir);
    t = qt_mime_load(p, path, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *got = qt_mime_type_for(t, NULL, rows[i].file);
        ck_assert_msg(rows[i].type ? got && strcmp(got, rows[i].type) == 0 : got == NULL,
                      "%s: %s", rows[i].file, got ? got : "NULL");
    }
    ck_assert_str_eq(qt_mime_lookup(t, "PNG"), "image/png");
    ck_assert_ptr_null(qt_mime_lookup(t, "nosuchext"));
    ck_assert_ptr_null(qt_mime_lookup(NULL, "png"));
    ck_assert_ptr_null(qt_mime_load(p, "/nonexistent/mime.types", err, sizeof err));
    ck_assert_str_eq(err, "cannot read /nonexistent/mime.types: No such file or directory");
    qt_pool_destroy(p);
}
END_TEST

#define NROWS(a) (int)(sizeof(a) / sizeof((a)[0]))

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_defaults);
    tcase_add_loop_test(tc, test_errors, 0, NROWS(err_rows));
    tcase_add_test(tc, test_no_mpm);
    tcase_add_test(tc, test_two_mpms);
    tcase_add_test(tc, test_no_listen);
    tcase_add_test(tc, test_module_symbol_missing);
    tcase_add_test(tc, test_missing_config_file);
    tcase_add_test(tc, test_unreadable_config_is_directory);
    tcase_add_loop_test(tc, test_listen, 0, NROWS(listen_rows));
    tcase_add_test(tc, test_server_settings);
    tcase_add_loop_test(tc, test_server_name, 0, NROWS(name_rows));
    tcase_add_test(tc, test_log_levels);
    tcase_add_test(tc, test_logs);
    tcase_add_test(tc, test_urlmaps);
    tcase_add_test(tc, test_sections);
    tcase_add_loop_test(tc, test_conditionals, 0, NROWS(cond_rows));
    tcase_add_test(tc, test_variables);
    tcase_add_test(tc, test_docroot_exists_no_warning);
    tcase_add_test(tc, test_command_line);
    tcase_add_test(tc, test_server_root_rules);
    tcase_add_test(tc, test_include);
    tcase_add_test(tc, test_vhosts);
    tcase_add_loop_test(tc, test_options_merge, 0, NROWS(opt_rows));
    tcase_add_test(tc, test_options_relative_chain);
    tcase_add_test(tc, test_dir_merge);
    tcase_add_loop_test(tc, test_require_ip, 0, NROWS(ip_rows));
    tcase_add_test(tc, test_module_api);
    tcase_add_loop_test(tc, test_mime_type_for, 0, NROWS(mime_rows));
    tcase_add_test(tc, test_shipped_mime_types);
    suite_add_tcase(s, tc);
    return s;
}

/* Finds the test modules and the source tree before the tests chdir(). */
static void locate(void)
{
    const char *b = getenv("QT_BUILDDIR"), *s = getenv("QT_SRCDIR");
    char cwd[PATH_MAX];

    if (getcwd(cwd, sizeof cwd) == NULL)
        abort();
    snprintf(mpm_so, sizeof mpm_so, "%s/t/unit/mod_test_mpm.so", b ? b : cwd);
    snprintf(mpm2_so, sizeof mpm2_so, "%s/t/unit/mod_test_mpm2.so", b ? b : cwd);
    snprintf(srcdir, sizeof srcdir, "%s", s ? s : cwd);
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    int failed;

    locate();
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
