/*
 * Loading a configuration: one pass over the directive tree, in file order,
 * as Apache does.  Include, Define and LoadModule run as they are met, so a
 * module's directives are known from the line after its LoadModule; the
 * body of a false <IfDefine>/<IfModule> is never executed.  After the walk,
 * checks (one MPM, a Listen), defaults, vhost inheritance, TypesConfig and
 * the modules' post_config hooks complete the new qt_config.
 *
 * Every error stops the load and is reported as one line
 * "file:line: Directive: what is wrong"; the half-built configuration is
 * freed with its pool, so a reload with a broken file changes nothing.
 */
#include "config.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf_tree.h"
#include "config_build.h"
#include "mime.h"

/* Include inside Include ... deeper than this is a loop. */
#define QT_MAX_INCLUDE_DEPTH 32
#define QT_DEFAULT_CONFIG "conf/httpd.conf"

typedef enum { SEC_NONE, SEC_DIRECTORY, SEC_LOCATION, SEC_FILES } qt_sec;

/* Where the walk is: which server, which directory scope. */
typedef struct {
    qt_server *server;
    qt_dir_conf *dir;
    unsigned ctx;                /* QT_CTX_MAIN, _VHOST or _DIR */
    qt_sec sec;                  /* innermost <Directory>-like section */
    const char *sec_name;        /* as written, for messages */
    int sec_index;               /* its index in server->sections */
} qt_scope;

typedef struct {
    qt_config_build *b;
    qt_config *cfg;
    const qt_config_args *args;
    qt_pool *pool;
    const char *display;         /* config file name as given, for messages */
    const qt_conf_node *cur;     /* node being executed (for warnings) */
    unsigned include_depth;
    char *err;
    size_t errlen;
} qt_loader;

typedef bool (*qt_walker_fn)(qt_loader *ld, const qt_conf_node *n, const qt_scope *sc,
                             int argc, char **argv);

static bool walk(qt_loader *ld, const qt_conf_node *n, const qt_scope *sc);

/* ------------------------------------------------------------- errors */

__attribute__((format(printf, 4, 5)))
static bool fail_at(qt_loader *ld, const char *file, unsigned line, const char *fmt, ...)
{
    int n = line ? snprintf(ld->err, ld->errlen, "%s:%u: ", file, line)
                 : snprintf(ld->err, ld->errlen, "%s: ", file);
    va_list ap;

    if (n >= 0 && (size_t)n < ld->errlen) {
        va_start(ap, fmt);
        vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return false;
}

/* "file:line: Name: message"; sections print as "<Name>". */
__attribute__((format(printf, 3, 4)))
static bool fail(qt_loader *ld, const qt_conf_node *n, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fail_at(ld, n->file, n->line, n->is_section ? "<%s>: %s" : "%s: %s",
                   n->name, msg);
}

/* -------------------------------------------------- variables, defines */

static const qt_define *find_define(const qt_config *cfg, const char *name)
{
    for (const qt_define *d = cfg->defines; d; d = d->next)
        if (strcmp(d->name, name) == 0)
            return d;
    return NULL;
}

static const char *lookup_var(void *ctx, const char *name)
{
    qt_loader *ld = ctx;
    const qt_define *d = find_define(ld->cfg, name);

    return d && d->value ? d->value : getenv(name);
}

static void warn_var(void *ctx, const char *name)
{
    qt_loader *ld = ctx;

    fprintf(stderr, "%s:%u: Config variable ${%s} is not defined\n",
            ld->cur->file, ld->cur->line, name);
}

static void undefine(qt_config *cfg, const char *name)
{
    for (qt_define **d = &cfg->defines; *d;) {
        if (strcmp((*d)->name, name) == 0)
            *d = (*d)->next;
        else
            d = &(*d)->next;
    }
}

static void define(qt_config *cfg, const char *name, const char *value)
{
    qt_define *d = qt_pcalloc(cfg->pool, sizeof *d);

    undefine(cfg, name);
    d->name = qt_pstrdup(cfg->pool, name);
    d->value = value ? qt_pstrdup(cfg->pool, value) : NULL;
    d->next = cfg->defines;
    cfg->defines = d;
}

static bool do_define(qt_loader *ld, const qt_conf_node *n, const qt_scope *sc,
                      int argc, char **argv)
{
    if (strchr(argv[0], ':'))
        return fail(ld, n, "variable name must not contain ':', got '%s'", argv[0]);
    define(ld->cfg, argv[0], argc > 1 ? argv[1] : NULL);
    return true;
}

static bool do_undefine(qt_loader *ld, const qt_conf_node *n, const qt_scope *sc,
                        int argc, char **argv)
{
    undefine(ld->cfg, argv[0]);
    return true;
}

/* ------------------------------------------------------------ Include */

static bool include_path(qt_loader *ld, const qt_conf_node *n, const qt_scope *sc,
                         const char *path, bool optional);

static bool include_file(qt_loader *ld, const char *path, const qt_scope *sc)
{
    qt_conf_node *tree = qt_conf_parse_file(ld->pool, path, ld->err, ld->errlen);

    if (tree == NULL)
        return ld->err[0] == '\0';     /* an empty file is fine */
    return walk(ld, tree, sc);
}

/* A directory is included whole, recursively, in alphabetical order. */
static bool include_dir(qt_loader *ld, const qt_conf_node *n, const qt_scope *sc,
                        const char *path)
{
    struct dirent **list = NULL;
    int count = scandir(path, &list, NULL, alphasort);
    bool ok = true;

    if (count < 0)
        return fail(ld, n, "cannot read directory '%s': %s", path, strerror(errno));
    for (int i = 0; i < count; i++) {
        const char *e = list[i]->d_name;
        if (ok && strcmp(e, ".") != 0 && strcmp(e, "..") != 0)
            ok = include_path(ld, n, sc, qt_psprintf(ld->pool, "%s/%s", path, e), false);
        free(list[i]);
    }
    free(list);
    return ok;
}

static bool include_path(qt_loader *ld, const qt_conf_node *n, const qt_scope *sc,
                         const char *path, bool optional)
{
    struct stat st;
    bool ok;

    if (stat(path, &st) < 0) {
        if (optional && errno == ENOENT)
            return true;
        return fail(ld, n, "cannot open '%s': %s", path, strerror(errno));
    }
    if (ld->include_depth >= QT_MAX_INCLUDE_DEPTH)
        return fail(ld, n, "includes nested more than %d deep (does '%s' include itself?)",
                    QT_MAX_INCLUDE_DEPTH, path);
    ld->include_depth++;
    ok = S_ISDIR(st.st_mode) ? include_dir(ld, n, sc, path) : include_file(ld, path, sc);
    ld->include_depth--;
    return ok;
}

static bool include_glob(qt_loader *ld, const qt_conf_node *n, const qt_scope *sc,
                         const char *pattern, bool optional)
{
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    bool ok = true;

    if (rc == GLOB_NOMATCH) {
        ok = optional || fail(ld, n, "no file matches the wildcard '%s'", pattern);
        goto cleanup;
    }
    if (rc != 0) {
        ok = fail(ld, n, "cannot expand the wildcard '%s'", pattern);
        goto cleanup;
    }
    for (size_t i = 0; ok && i < g.gl_pathc; i++)
        ok = include_path(ld, n, sc, qt_pstrdup(ld->pool, g.gl_pathv[i]), optional);
cleanup:
    if (rc == 0)
        globfree(&g);
    return ok;
}

static bool do_include(qt_loader *ld, const qt_conf_node *n, const qt_scope *sc,
                       int argc, char **argv)
{
    bool optional = strcasecmp(n->name, "IncludeOptional") == 0;
    const char *path = qt_config_path(ld->cfg, argv[0]);

    if (strpbrk(path, "*?["))
        return include_glob(ld, n, sc, path, optional);
    return include_path(ld, n, sc, path, optional);
}

/* --------------------------------------------------------- LoadModule */

static void remember_mpm(qt_loader *ld, const qt_conf_node *n, const qt_module *m)
{
    qt_config_build *b = ld->b;

    if (b->nmpms < 2) {
        b->mpm_file[b->nmpms] = n->file;
        b->mpm_line[b->nmpms] = n->line;
        b->mpm_name[b->nmpms] = m->name;
    }
    b->nmpms++;
    if (ld->cfg->mpm == NULL) {
        ld->cfg->mpm = m->mpm;
        ld->cfg->mpm_module = m;
    }
}

static bool check_module(qt_loader *ld, const qt_conf_node *n, const qt_module *m,
                         const char *name)
{
    if (m->abi != QT_MODULE_ABI)
        return fail(ld, n, "module %s was built for module ABI %u, this server has %u:"
                    " rebuild it", name, m->abi, QT_MODULE_ABI);
    if (m->name == NULL || strcmp(m->name, name) != 0)
        return fail(ld, n, "the structure %s names itself '%s'", name,
                    m->name ? m->name : "(null)");
    return true;
}

/*
 * Modules are never dlclose()d, not even by qt_config_free(): a reload
 * dlopen()s the same files again (which only bumps a reference count), and
 * code of the old configuration may still be running while it drains.
 */
static bool do_load_module(qt_loader *ld, const qt_conf_node *n, const qt_scope *sc,
                           int argc, char **argv)
{
    qt_config *cfg = ld->cfg;
    const char *path = qt_config_path(cfg, argv[1]);
    const qt_module *m;
    void *h;

    if (sc->ctx != QT_CTX_MAIN)
        return fail(ld, n, "only allowed outside sections");
    for (size_t i = 0; i < cfg->nmodules; i++)
        if (strcmp(cfg->modules[i]->name, argv[0]) == 0)
            return fail(ld, n, "module %s is already loaded", argv[0]);
    if (cfg->nmodules == QT_MAX_MODULES)
        return fail(ld, n, "more than %d modules", QT_MAX_MODULES);
    dlerror();
    if ((h = dlopen(path, RTLD_NOW | RTLD_GLOBAL)) == NULL)
        return fail(ld, n, "cannot load %s: %s", path, dlerror());
    if ((m = dlsym(h, argv[0])) == NULL || !check_module(ld, n, m, argv[0])) {
        if (m == NULL)
            fail(ld, n, "%s does not define the module %s", path, argv[0]);
        dlclose(h);      /* never registered, so nothing can point into it */
        return false;
    }
    cfg->dl_handles[cfg->nmodules] = h;
    cfg->modules[cfg->nmodules++] = m;
    if (m->mpm)
        remember_mpm(ld, n, m);
    return true;
}

/* --------------------------------------------------------- directives */

static const struct {
    const char *name;
    int min, max;
    qt_walker_fn fn;
} walker_directives[] = {
    { "Define", 1, 2, do_define },
    { "UnDefine", 1, 1, do_undefine },
    { "Include", 1, 1, do_include },
    { "IncludeOptional", 1, 1, do_include },
    { "LoadModule", 2, 2, do_load_module },
};

static const char *const shape_text[] = {
    [QT_NO_ARGS] = "takes no arguments",
    [QT_TAKE1] = "takes one argument",
    [QT_TAKE2] = "takes two arguments",
    [QT_TAKE12] = "takes one or two arguments",
    [QT_TAKE23] = "takes two or three arguments",
    [QT_TAKE123] = "takes one, two or three arguments",
    [QT_ONE_PLUS] = "takes at least one argument",
    [QT_FLAG] = "takes one argument, On or Off",
    [QT_RAW_ARGS] = "takes arguments",
};

static bool count_ok(enum qt_args shape, int argc)
{
    switch (shape) {
    case QT_NO_ARGS:  return argc == 0;
    case QT_TAKE1:    return argc == 1;
    case QT_TAKE2:    return argc == 2;
    case QT_TAKE12:   return argc == 1 || argc == 2;
    case QT_TAKE23:   return argc == 2 || argc == 3;
    case QT_TAKE123:  return argc >= 1 && argc <= 3;
    case QT_ONE_PLUS: return argc >= 1;
    case QT_FLAG:     return argc == 1;
    case QT_RAW_ARGS: return true;
    }
    return false;
}

static const qt_directive *find_directive(const qt_config *cfg, const char *name,
                                          size_t *module)
{
    for (size_t i = 0; i < cfg->nmodules; i++) {
        const qt_directive *d = cfg->modules[i]->directives;
        for (; d && d->name; d++) {
            if (strcasecmp(d->name, name) == 0) {
                *module = i;
                return d;
            }
        }
    }
    return NULL;
}

static bool context_ok(qt_loader *ld, const qt_conf_node *n, const qt_scope *sc,
                       unsigned allowed)
{
    if (allowed & sc->ctx)
        return true;
    if (sc->ctx == QT_CTX_DIR)
        return fail(ld, n, "not allowed inside <%s>", sc->sec_name);
    if (sc->ctx == QT_CTX_VHOST)
        return fail(ld, n, "not allowed inside <VirtualHost>");
    if (allowed == QT_CTX_VHOST)
        return fail(ld, n, "only allowed inside <VirtualHost>");
    return fail(ld, n, "only allowed inside <Directory>, <Location> or <Files>");
}

static void *module_conf(void **slot, void *(*create)(qt_pool *), qt_pool *p)
{
    if (*slot == NULL && create)
        *slot = create(p);
    return *slot;
}

static void fill_cmd(qt_loader *ld, const qt_conf_node *n, const qt_scope *sc,
                     size_t mi, qt_cmd *cmd)
{
    const qt_module *m = ld->cfg->modules[mi];

    memset(cmd, 0, sizeof *cmd);
    cmd->cfg = ld->cfg;
    cmd->server = sc->server;
    cmd->ctx = sc->ctx;
    cmd->file = n->file;
    cmd->line = n->line;
    cmd->name = n->name;
    cmd->pool = ld->pool;
    if (mi == 0) {                  /* the core's confs are the structs themselves */
        cmd->srv_conf = sc->server;
        cmd->dir_conf = sc->dir;
        return;
    }
    cmd->srv_conf = module_conf(&sc->server->mod[mi], m->create_server_conf, ld->pool);
    cmd->dir_conf = module_conf(&sc->dir->mod[mi], m->create_dir_conf, ld->pool);
}

/* Turns On/Off into "1"/"0" for QT_FLAG directives. */
static bool flag_arg(char **argv)
{
    if (strcasecmp(argv[0], "on") == 0)
        argv[0] = "1";
    else if (strcasecmp(argv[0], "off") == 0)
        argv[0] = "0";
    else
        return false;
    return true;
}

static bool invalid_command(qt_loader *ld, const qt_conf_node *n)
{
    return fail_at(ld, n->file, n->line, "Invalid command '%s%s', perhaps misspelled or"
                   " defined by a module not included in the server configuration",
                   n->is_section ? "<" : "", n->name);
}

static bool dispatch(qt_loader *ld, const qt_conf_node *n, const qt_scope *sc,
                     char *args)
{
    size_t mi = 0;
    const qt_directive *d = find_directive(ld->cfg, n->name, &mi);
    char **argv, split_err[256], *raw[2] = { args, NULL };
    int argc;
    qt_cmd cmd;
    const char *e;

    if (d == NULL)
        return invalid_command(ld, n);
    if (d->set == NULL || (unsigned)d->args > QT_RAW_ARGS)
        return fail(ld, n, "the module's directive table entry is broken");
    if (!context_ok(ld, n, sc, d->contexts))
        return false;
    if (d->args == QT_RAW_ARGS) {
        argv = raw;
        argc = 1;
    } else if ((argc = qt_conf_split_args(ld->pool, args, &argv, split_err,
                                          sizeof split_err)) < 0) {
        return fail(ld, n, "%s", split_err);
    }
    if (!count_ok(d->args, argc) || (d->args == QT_FLAG && !flag_arg(argv)))
        return fail(ld, n, "%s (%s)", shape_text[d->args], d->help ? d->help : "");
    fill_cmd(ld, n, sc, mi, &cmd);
    if ((e = d->set(&cmd, argc, argv)) != NULL)
        return fail(ld, n, "%s", e);
    return true;
}

static bool run_walker(qt_loader *ld, const qt_conf_node *n, const qt_scope *sc,
                       char *args, size_t w)
{
    char **argv, split_err[256];
    int argc = qt_conf_split_args(ld->pool, args, &argv, split_err, sizeof split_err);

    if (argc < 0)
        return fail(ld, n, "%s", split_err);
    if (argc < walker_directives[w].min || argc > walker_directives[w].max)
        return fail(ld, n, "takes %d%s argument%s", walker_directives[w].min,
                    walker_directives[w].max > walker_directives[w].min ? " or 2" : "",
                    walker_directives[w].max > 1 ? "s" : "");
    return walker_directives[w].fn(ld, n, sc, argc, argv);
}

/* ----------------------------------------------------------- sections */

static bool add_section(qt_loader *ld, const qt_conf_node *n, const qt_scope *sc,
                        enum qt_section_kind kind, const char *match, bool regex)
{
    qt_server *s = sc->server;
    qt_server_build *b = qt_server_build_of(s);
    qt_section *sec;
    qt_scope inner = *sc;
    char reason[256];
    int rc;

    s->sections = qt_config_grow(ld->pool, s->sections, s->nsections, &b->cap_sections,
                                 sizeof *s->sections);
    sec = &s->sections[s->nsections];
    if (regex && (rc = regcomp(&sec->re, match, REG_EXTENDED | REG_NOSUB)) != 0) {
        regerror(rc, &sec->re, reason, sizeof reason);
        return fail(ld, n, "bad regular expression '%s': %s", match, reason);
    }
    sec->kind = kind;
    sec->match = qt_pstrdup(ld->pool, match);
    sec->is_regex = regex;
    sec->is_glob = !regex && strpbrk(match, "*?[") != NULL;
    sec->conf = qt_dir_conf_create(ld->pool);
    sec->file = n->file;
    sec->line = n->line;
    sec->parent = kind == QT_SEC_FILES && sc->sec == SEC_DIRECTORY ? sc->sec_index : -1;
    inner.dir = sec->conf;
    inner.ctx = QT_CTX_DIR;
    inner.sec = kind == QT_SEC_DIRECTORY ? SEC_DIRECTORY
              : kind == QT_SEC_LOCATION ? SEC_LOCATION : SEC_FILES;
    inner.sec_name = n->name;
    inner.sec_index = (int)s->nsections++;
    return walk(ld, n->children, &inner);
}

static enum qt_section_kind section_kind(const char *name)
{
    if (strncasecmp(name, "Directory", 9) == 0)
        return QT_SEC_DIRECTORY;
    return strncasecmp(name, "Location", 8) == 0 ? QT_SEC_LOCATION : QT_SEC_FILES;
}

static const char *section_arg_hint(enum qt_section_kind kind, bool match)
{
    static const char *const plain[] = {
        [QT_SEC_DIRECTORY] = "a directory, or ~ and a regular expression",
        [QT_SEC_LOCATION] = "a URL path, or ~ and a regular expression",
        [QT_SEC_FILES] = "a file name, or ~ and a regular expression",
    };

    return match ? "a regular expression" : plain[kind];
}

/* Directory, Location and Files, with or without "~" / the Match suffix. */
static bool do_dir_section(qt_loader *ld, const qt_conf_node *n, const qt_scope *sc,
                           int argc, char **argv)
{
    size_t len = strlen(n->name);
    bool match = len > 5 && strcasecmp(n->name + len - 5, "Match") == 0;
    enum qt_section_kind kind = section_kind(n->name);
    bool tilde = argc == 2 && strcmp(argv[0], "~") == 0 && !match;
    bool files_in_dir = kind == QT_SEC_FILES && sc->sec == SEC_DIRECTORY;
    const char *what;

    if (sc->sec != SEC_NONE && !files_in_dir)
        return fail(ld, n, "cannot occur within <%s> section", sc->sec_name);
    if (argc != 1 && !tilde)
        return fail(ld, n, "takes one argument: %s", section_arg_hint(kind, match));
    what = argv[argc - 1];
    if (kind == QT_SEC_DIRECTORY && !match && !tilde)
        what = qt_config_dir_path(ld->cfg, what);
    return add_section(ld, n, sc, kind, what, match || tilde);
}

static bool valid_vhost_addr(const char *a)
{
    const char *close = a[0] == '[' ? strchr(a, ']') : NULL;
    const char *port = close ? (close[1] == ':' ? close + 2 : NULL) : strrchr(a, ':');
    char *end;
    long v;

    if (a[0] == '[' && (close == NULL || (close[1] != ':' && close[1] != '\0')))
        return false;
    if (port == NULL || strcmp(port + (port[0] == ':'), "*") == 0)
        return true;
    port += port[0] == ':';
    v = strtol(port, &end, 10);
    return *port >= '0' && *port <= '9' && *end == '\0' && v >= 1 && v <= 65535;
}

static bool do_virtual_host(qt_loader *ld, const qt_conf_node *n, const qt_scope *sc,
                            int argc, char **argv)
{
    qt_config *cfg = ld->cfg;
    qt_server *v, **all;
    qt_scope inner = { .ctx = QT_CTX_VHOST, .sec = SEC_NONE, .sec_index = -1 };

    if (sc->ctx != QT_CTX_MAIN)
        return fail(ld, n, "cannot occur within <%s> section",
                    sc->ctx == QT_CTX_VHOST ? "VirtualHost" : sc->sec_name);
    if (argc < 1)
        return fail(ld, n, "needs at least one address (*:80, 127.0.0.1:8080, ...)");
    v = qt_server_create(ld->pool);
    v->file = n->file;
    v->line = n->line;
    v->addrs = qt_palloc(ld->pool, (size_t)argc * sizeof *v->addrs);
    for (int i = 0; i < argc; i++) {
        if (!valid_vhost_addr(argv[i]))
            return fail(ld, n, "'%s' is not addr[:port] (port 1-65535 or *)", argv[i]);
        v->addrs[i] = argv[i];
    }
    v->naddrs = (size_t)argc;
    all = qt_palloc(ld->pool, (cfg->nvhosts + 1) * sizeof *all);
    if (cfg->nvhosts)
        memcpy(all, cfg->vhosts, cfg->nvhosts * sizeof *all);
    all[cfg->nvhosts++] = v;
    cfg->vhosts = all;
    inner.server = v;
    inner.dir = v->dir_defaults;
    return walk(ld, n->children, &inner);
}

static bool do_if(qt_loader *ld, const qt_conf_node *n, const qt_scope *sc,
                  int argc, char **argv)
{
    bool negate, truth;
    const char *name;

    if (argc != 1 || (argv[0][0] == '!' && argv[0][1] == '\0'))
        return fail(ld, n, "takes one argument, [!]%s",
                    strcasecmp(n->name, "IfDefine") == 0 ? "NAME" : "module");
    negate = argv[0][0] == '!';
    name = argv[0] + negate;
    truth = strcasecmp(n->name, "IfDefine") == 0 ? qt_config_defined(ld->cfg, name)
                                                 : qt_config_has_module(ld->cfg, name);
    return truth != negate ? walk(ld, n->children, sc) : true;
}

static const struct {
    const char *name;
    qt_walker_fn fn;
} section_types[] = {
    { "VirtualHost", do_virtual_host },
    { "Directory", do_dir_section },
    { "DirectoryMatch", do_dir_section },
    { "Location", do_dir_section },
    { "LocationMatch", do_dir_section },
    { "Files", do_dir_section },
    { "FilesMatch", do_dir_section },
    { "IfDefine", do_if },
    { "IfModule", do_if },
};

static bool run_section(qt_loader *ld, const qt_conf_node *n, const qt_scope *sc,
                        char *args)
{
    char **argv, split_err[256];
    int argc;

    for (size_t i = 0; i < sizeof section_types / sizeof section_types[0]; i++) {
        if (strcasecmp(n->name, section_types[i].name) != 0)
            continue;
        if ((argc = qt_conf_split_args(ld->pool, args, &argv, split_err,
                                       sizeof split_err)) < 0)
            return fail(ld, n, "%s", split_err);
        return section_types[i].fn(ld, n, sc, argc, argv);
    }
    return invalid_command(ld, n);
}

/* ------------------------------------------------------------- the walk */

static bool exec_node(qt_loader *ld, const qt_conf_node *n, const qt_scope *sc)
{
    char *args;

    ld->cur = n;
    args = qt_conf_expand_vars(ld->pool, n->args, lookup_var, warn_var, ld);
    if (n->is_section)
        return run_section(ld, n, sc, args);
    for (size_t w = 0; w < sizeof walker_directives / sizeof walker_directives[0]; w++)
        if (strcasecmp(n->name, walker_directives[w].name) == 0)
            return run_walker(ld, n, sc, args, w);
    return dispatch(ld, n, sc, args);
}

static bool walk(qt_loader *ld, const qt_conf_node *n, const qt_scope *sc)
{
    for (; n; n = n->next)
        if (!exec_node(ld, n, sc))
            return false;
    return true;
}

static qt_scope main_scope(qt_loader *ld)
{
    qt_scope sc = {
        .server = ld->cfg->main, .dir = ld->cfg->main->dir_defaults,
        .ctx = QT_CTX_MAIN, .sec = SEC_NONE, .sec_index = -1,
    };
    return sc;
}

/* -C / -c: each string is a one-line config file of its own. */
static bool run_directives(qt_loader *ld, const char **list, const char *label)
{
    qt_scope sc = main_scope(ld);

    for (size_t i = 0; list && list[i]; i++) {
        qt_conf_node *tree = qt_conf_parse_text(ld->pool, label, list[i], strlen(list[i]),
                                                ld->err, ld->errlen);
        if ((tree == NULL && ld->err[0]) || !walk(ld, tree, &sc))
            return false;
    }
    return true;
}

/* Messages name the main file as the user gave it, not the resolved path. */
static void rename_nodes(qt_conf_node *n, const char *file)
{
    for (; n; n = n->next) {
        n->file = file;
        rename_nodes(n->children, file);
    }
}

static bool run_main_file(qt_loader *ld)
{
    const char *path = ld->cfg->config_file;
    size_t plen = strlen(path);
    qt_scope sc = main_scope(ld);
    qt_conf_node *tree = qt_conf_parse_file(ld->pool, path, ld->err, ld->errlen);

    if (tree == NULL && ld->err[0]) {
        if (strncmp(ld->err, path, plen) == 0) {
            char *rest = qt_pstrdup(ld->pool, ld->err + plen);
            snprintf(ld->err, ld->errlen, "%s%s", ld->display, rest);
        }
        return false;
    }
    rename_nodes(tree, ld->display);
    return walk(ld, tree, &sc);
}

/* --------------------------------------------------- locating the files */

static bool absolute_dir(qt_loader *ld, const char *path, const char **out)
{
    char resolved[PATH_MAX];
    struct stat st;

    if (realpath(path, resolved) == NULL || stat(resolved, &st) < 0)
        return fail_at(ld, path, 0, "ServerRoot (-d): %s", strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return fail_at(ld, path, 0, "ServerRoot (-d): not a directory");
    *out = qt_pstrdup(ld->pool, resolved);
    return true;
}

/* Parent of the directory holding file ("/srv/q/conf/httpd.conf" -> "/srv/q"). */
static const char *grandparent(qt_pool *p, const char *file)
{
    char *s = qt_pstrdup(p, file), *slash;

    for (int i = 0; i < 2; i++) {
        slash = strrchr(s, '/');
        if (slash == NULL || slash == s)
            return "/";
        *slash = '\0';
    }
    return s;
}

/*
 * Cleans an absolute path lexically ("/a/./b/../c//" -> "/a/c") without
 * resolving symbolic links: a conf/ that is a symlink must not move
 * ServerRoot to wherever it points.
 */
static const char *clean_path(qt_pool *p, const char *path)
{
    char *out = qt_palloc(p, strlen(path) + 2);
    size_t len = 0;

    while (*path) {
        size_t n = strcspn(path, "/");
        if (n == 2 && path[0] == '.' && path[1] == '.') {
            while (len > 0 && out[--len] != '/')
                ;
        } else if (n > 0 && !(n == 1 && path[0] == '.')) {
            out[len++] = '/';
            memcpy(out + len, path, n);
            len += n;
        }
        path += n + (path[n] == '/');
    }
    if (len == 0)
        out[len++] = '/';
    out[len] = '\0';
    return out;
}

static bool locate_files(qt_loader *ld)
{
    qt_config *cfg = ld->cfg;
    const char *given = ld->display, *path = given;
    char cwd[PATH_MAX];
    struct stat st;

    if (ld->args->server_root && !absolute_dir(ld, ld->args->server_root, &cfg->server_root))
        return false;
    if (given[0] != '/' && cfg->server_root)
        path = qt_psprintf(ld->pool, "%s/%s", cfg->server_root, given);
    else if (given[0] != '/' && getcwd(cwd, sizeof cwd))
        path = qt_psprintf(ld->pool, "%s/%s", cwd, given);
    if (stat(path, &st) < 0)
        return fail_at(ld, given, 0, "cannot read configuration file: %s", strerror(errno));
    cfg->config_file = clean_path(ld->pool, path);
    if (cfg->server_root == NULL)
        cfg->server_root = grandparent(ld->pool, cfg->config_file);
    return true;
}

/* ------------------------------------------------------ after the walk */

static bool check_mpm(qt_loader *ld)
{
    qt_config_build *b = ld->b;

    if (b->nmpms == 0)
        return fail_at(ld, ld->display, 0, "No MPM loaded. Load exactly one, e.g."
                       " LoadModule mpm_prefork_module modules/mod_mpm_prefork.so");
    if (b->nmpms > 1)
        return fail_at(ld, b->mpm_file[1], b->mpm_line[1], "LoadModule: More than one MPM"
                       " loaded: %s here and %s at %s:%u; keep exactly one",
                       b->mpm_name[1], b->mpm_name[0], b->mpm_file[0], b->mpm_line[0]);
    return true;
}

static void fill_dir_confs(qt_config *cfg, qt_dir_conf *dc)
{
    for (size_t i = 1; i < cfg->nmodules; i++)
        module_conf(&dc->mod[i], cfg->modules[i]->create_dir_conf, cfg->pool);
}

/* Every scope gets a conf from every module that creates them, so a module
 * never finds NULL for its own struct at request time. */
static void fill_module_confs(qt_config *cfg, qt_server *s, bool is_main)
{
    if (is_main)
        for (size_t i = 1; i < cfg->nmodules; i++)
            module_conf(&s->mod[i], cfg->modules[i]->create_server_conf, cfg->pool);
    fill_dir_confs(cfg, s->dir_defaults);
    for (size_t i = 0; i < s->nsections; i++)
        fill_dir_confs(cfg, s->sections[i].conf);
}

static void default_paths(qt_config *cfg)
{
    if (cfg->pid_file == NULL)
        cfg->pid_file = qt_config_path(cfg, "logs/httpd.pid");
    if (cfg->error_log == NULL)
        cfg->error_log = qt_config_path(cfg, "logs/error_log");
    if (cfg->types_config == NULL)
        cfg->types_config = qt_config_path(cfg, "conf/mime.types");
    if (cfg->main->document_root == NULL)
        cfg->main->document_root = qt_config_path(cfg, "htdocs");
}

static bool load_types(qt_loader *ld)
{
    qt_config_build *b = ld->b;
    char why[512] = "";

    ld->cfg->mime = qt_mime_load(ld->pool, ld->cfg->types_config, why, sizeof why);
    if (ld->cfg->mime)
        return true;
    return fail_at(ld, b->types_file ? b->types_file : ld->display, b->types_line,
                   "TypesConfig: %s", why);
}

/* Apache warns and starts anyway; so do we (-T skips the check). */
static void check_docroot(const qt_server *s)
{
    struct stat st;

    if (stat(s->document_root, &st) == 0 && S_ISDIR(st.st_mode))
        return;
    if (s->line)
        fprintf(stderr, "%s:%u: ", s->file, s->line);
    else
        fprintf(stderr, "%s: ", s->file);
    fprintf(stderr, "Warning: DocumentRoot [%s] does not exist\n", s->document_root);
}

static bool post_config(qt_loader *ld)
{
    qt_config *cfg = ld->cfg;
    char why[512];

    for (size_t i = 1; i < cfg->nmodules; i++) {
        const qt_module *m = cfg->modules[i];
        why[0] = '\0';
        if (m->post_config && m->post_config(cfg, why, sizeof why) != QT_OK)
            return fail_at(ld, ld->display, 0, "%s: %s", m->name,
                           why[0] ? why : "refused the configuration");
    }
    return true;
}

static bool finish(qt_loader *ld)
{
    qt_config *cfg = ld->cfg;

    if (!check_mpm(ld))
        return false;
    if (cfg->listeners == NULL)
        return fail_at(ld, ld->display, 0, "no Listen directive: at least one is required");
    default_paths(cfg);
    fill_module_confs(cfg, cfg->main, true);
    for (size_t i = 0; i < cfg->nvhosts; i++) {
        fill_module_confs(cfg, cfg->vhosts[i], false);
        qt_server_inherit(cfg, cfg->vhosts[i]);
    }
    if (!load_types(ld))
        return false;
    if (!ld->args->skip_docroot_check) {
        check_docroot(cfg->main);
        for (size_t i = 0; i < cfg->nvhosts; i++)
            if (cfg->vhosts[i]->document_root != cfg->main->document_root)
                check_docroot(cfg->vhosts[i]);
    }
    return post_config(ld);
}

/* ---------------------------------------------------------- public API */

static qt_config *config_new(qt_pool *p, const qt_config_args *args)
{
    qt_config_build *b = qt_pcalloc(p, sizeof *b);
    qt_config *cfg = &b->c;

    b->args = args;
    cfg->pool = p;
    cfg->main = qt_server_create(p);
    cfg->modules = qt_pcalloc(p, QT_MAX_MODULES * sizeof *cfg->modules);
    cfg->dl_handles = qt_pcalloc(p, QT_MAX_MODULES * sizeof *cfg->dl_handles);
    for (size_t i = 0; qt_builtin_modules[i]; i++)
        cfg->modules[cfg->nmodules++] = qt_builtin_modules[i];
    qt_config_set_defaults(cfg);
    for (size_t i = 0; args->defines && args->defines[i]; i++)
        define(cfg, args->defines[i], NULL);
    return cfg;
}

qt_config *qt_config_load(const qt_config_args *args, char *err, size_t errlen)
{
    qt_pool *p = qt_pool_create(64 * 1024);
    qt_config *cfg = config_new(p, args);
    qt_loader ld = {
        .b = qt_config_build_of(cfg), .cfg = cfg, .args = args, .pool = p,
        .display = args->config_file ? args->config_file : QT_DEFAULT_CONFIG,
        .err = err, .errlen = errlen,
    };

    if (errlen)
        err[0] = '\0';
    cfg->main->file = ld.display;
    if (!locate_files(&ld) ||
        !run_directives(&ld, args->pre_directives, "-C directive") ||
        !run_main_file(&ld) ||
        !run_directives(&ld, args->post_directives, "-c directive") ||
        !finish(&ld)) {
        qt_pool_destroy(p);
        return NULL;
    }
    return cfg;
}

void qt_config_free(qt_config *cfg)
{
    /* The dlopen() handles stay open: see do_load_module(). */
    if (cfg)
        qt_pool_destroy(cfg->pool);
}

/*
 * Allocates from cfg->pool: meant for load time (directive setters, the
 * log layer opening files).  Request code should build paths in r->pool.
 */
const char *qt_config_path(const qt_config *cfg, const char *path)
{
    const char *root = cfg->server_root ? cfg->server_root : ".";

    if (path[0] == '/')
        return qt_pstrdup(cfg->pool, path);
    if (strcmp(root, "/") == 0)
        return qt_psprintf(cfg->pool, "/%s", path);
    return qt_psprintf(cfg->pool, "%s/%s", root, path);
}

int qt_config_module_index(const qt_config *cfg, const qt_module *m)
{
    for (size_t i = 0; i < cfg->nmodules; i++)
        if (cfg->modules[i] == m)
            return (int)i;
    return -1;
}

/* "foo_module" as is; "mod_foo.c" (Apache's source-file form) -> "foo_module". */
bool qt_config_has_module(const qt_config *cfg, const char *name)
{
    char id[256];
    size_t len = strlen(name);

    if (len > 2 && strcmp(name + len - 2, ".c") == 0 && len < sizeof id - 8) {
        size_t skip = strncmp(name, "mod_", 4) == 0 ? 4 : 0;
        snprintf(id, sizeof id, "%.*s_module", (int)(len - 2 - skip), name + skip);
        name = id;
    }
    for (size_t i = 0; i < cfg->nmodules; i++)
        if (strcmp(cfg->modules[i]->name, name) == 0)
            return true;
    return qt_core_provides(name);
}

bool qt_config_defined(const qt_config *cfg, const char *name)
{
    return find_define(cfg, name) != NULL;
}

int (*qt_config_find_handler(const qt_config *cfg, const char *name))(qt_request *r)
{
    for (size_t i = 0; i < cfg->nmodules; i++) {
        const qt_handler *h = cfg->modules[i]->handlers;
        for (; h && h->name; h++)
            if (strcasecmp(h->name, name) == 0)
                return h->handle;
    }
    return NULL;
}
