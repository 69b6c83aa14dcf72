/*
 * The core module: the directives of a minimal Apache httpd.conf, their
 * setters, the defaults Apache 2.4 users expect, and the per-directory merge.
 *
 * For the core, qt_cmd.srv_conf is the qt_server being configured and
 * qt_cmd.dir_conf the qt_dir_conf of the current scope (the server's
 * dir_defaults outside sections).  Relative paths resolve against ServerRoot
 * as it is when the directive is read, as in Apache.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "access_format.h"
#include "cgi_env.h"
#include "config_build.h"
#include "log.h"
#include "request.h"
#include "status.h"

#define COMMON_FORMAT "%h %l %u %t \"%r\" %>s %b"
#define COMBINED_FORMAT COMMON_FORMAT " \"%{Referer}i\" \"%{User-Agent}i\""

/* ------------------------------------------------------------ helpers */

static qt_server *srv(qt_cmd *cmd)
{
    return cmd->srv_conf;
}

static qt_dir_conf *dir(qt_cmd *cmd)
{
    return cmd->dir_conf;
}

static void mark(qt_cmd *cmd, unsigned bit)
{
    qt_server_build_of(srv(cmd))->set |= bit;
}

void *qt_config_grow(qt_pool *p, void *arr, size_t n, size_t *cap, size_t sz)
{
    void *grown;

    if (n < *cap)
        return arr;
    *cap = *cap ? *cap * 2 : 4;
    grown = qt_pcalloc(p, *cap * sz);
    if (n)
        memcpy(grown, arr, n * sz);
    return grown;
}

/* Parses a decimal number in [0, max]; NULL or what is wrong. */
static const char *parse_u64(qt_cmd *cmd, const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;

    if (*p < '0' || *p > '9')
        return qt_psprintf(cmd->pool, "expects a non-negative number, got '%s'", s);
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (max - d) / 10)
            return qt_psprintf(cmd->pool, "must be at most %llu, got %s",
                               (unsigned long long)max, s);
        v = v * 10 + d;
    }
    if (*p)
        return qt_psprintf(cmd->pool, "expects a number, got '%s'", s);
    *out = v;
    return NULL;
}

/* "5" (seconds), "500ms", "2mi", "1h": Apache's timeout syntax. */
static const char *parse_duration_ms(qt_cmd *cmd, const char *s, int64_t *ms)
{
    static const struct { const char *suffix; uint64_t mult; } units[] = {
        { "", 1000 }, { "s", 1000 }, { "ms", 1 }, { "mi", 60000 }, { "h", 3600000 },
    };
    size_t digits = strspn(s, "0123456789");
    char *num = qt_pstrndup(cmd->pool, s, digits);
    uint64_t v;
    const char *e;

    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(s + digits, units[i].suffix) != 0)
            continue;
        e = parse_u64(cmd, digits ? num : s, UINT32_MAX, &v);
        if (e)
            return e;
        *ms = (int64_t)(v * units[i].mult);
        return NULL;
    }
    return qt_psprintf(cmd->pool, "expects seconds or a number with ms, s, mi or h,"
                       " got '%s'", s);
}

static const char *parse_port(qt_cmd *cmd, const char *s, int *port)
{
    uint64_t v;

    if (parse_u64(cmd, s, 65535, &v) != NULL || v == 0)
        return qt_psprintf(cmd->pool, "port must be 1-65535, got %s", s);
    *port = (int)v;
    return NULL;
}

const char *qt_config_dir_path(qt_config *cfg, const char *path)
{
    char *p = (char *)qt_config_path(cfg, path);
    size_t n = strlen(p);

    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
    return p;
}

/* Log targets: "|program" and "syslog:..." are not files. */
static const char *log_path(qt_cmd *cmd, const char *path)
{
    if (path[0] == '|' || strncmp(path, "syslog", 6) == 0)
        return qt_pstrdup(cmd->pool, path);
    return qt_config_path(cmd->cfg, path);
}

static char *lower(qt_pool *p, const char *s)
{
    char *l = qt_pstrdup(p, s);

    for (char *c = l; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    return l;
}

/* ------------------------------------------------- server-level directives */

static const char *set_server_root(qt_cmd *cmd, int argc, char **argv)
{
    char resolved[PATH_MAX];
    const char *path;
    struct stat st;

    /* config.h: -d wins over the directive. */
    if (qt_config_build_of(cmd->cfg)->args->server_root)
        return NULL;
    path = qt_config_path(cmd->cfg, argv[0]);
    if (realpath(path, resolved) == NULL || stat(resolved, &st) < 0)
        return qt_psprintf(cmd->pool, "'%s' must be a valid directory: %s",
                           argv[0], strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return qt_psprintf(cmd->pool, "'%s' is not a directory", argv[0]);
    cmd->cfg->server_root = qt_pstrdup(cmd->pool, resolved);
    return NULL;
}

/* Splits "[v6]:port", "a.b.c.d:port", "*:port" or "port" into host and port. */
static const char *split_host_port(qt_cmd *cmd, const char *s, char **host,
                                   const char **port)
{
    const char *colon;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || (close[1] != ':' && close[1] != '\0'))
            return qt_psprintf(cmd->pool, "malformed address '%s'", s);
        *host = qt_pstrndup(cmd->pool, s + 1, (size_t)(close - s - 1));
        *port = close[1] ? close + 2 : NULL;
        return NULL;
    }
    colon = strrchr(s, ':');
    if (colon && strchr(s, ':') != colon)
        return qt_psprintf(cmd->pool, "IPv6 addresses must be in brackets, got '%s'", s);
    *host = colon ? qt_pstrndup(cmd->pool, s, (size_t)(colon - s)) : NULL;
    *port = colon ? colon + 1 : s;
    return NULL;
}

static const char *listener_addr(qt_cmd *cmd, const char *host, int port, qt_listener *l)
{
    struct sockaddr_in *a4 = (struct sockaddr_in *)&l->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&l->addr;

    if (host && strchr(host, ':')) {
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
            return qt_psprintf(cmd->pool, "'%s' is not an IPv6 address", host);
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        l->addrlen = sizeof *a6;
        l->text = qt_psprintf(cmd->pool, "[%s]:%d", host, port);
        return NULL;
    }
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    l->addrlen = sizeof *a4;
    /* A bare port (or "*") means every IPv4 address. */
    if (host == NULL || strcmp(host, "*") == 0 || host[0] == '\0') {
        a4->sin_addr.s_addr = htonl(INADDR_ANY);
        l->text = qt_psprintf(cmd->pool, "*:%d", port);
        return NULL;
    }
    /* Numeric only: resolving names here could block on DNS at startup. */
    if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
        return qt_psprintf(cmd->pool, "'%s' is not a numeric IP address (use an IPv4"
                           " address, [IPv6] or *)", host);
    l->text = qt_psprintf(cmd->pool, "%s:%d", host, port);
    return NULL;
}

static bool same_addr(const qt_listener *a, const qt_listener *b)
{
    return a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0;
}

static const char *set_listen(qt_cmd *cmd, int argc, char **argv)
{
    qt_listener *l = qt_pcalloc(cmd->pool, sizeof *l), **tail;
    const char *port, *e;
    char *host;

    l->fd = -1;
    if ((e = split_host_port(cmd, argv[0], &host, &port)) != NULL)
        return e;
    if (port == NULL || (e = parse_port(cmd, port, &l->port)) != NULL)
        return e ? e : qt_psprintf(cmd->pool, "'%s' has no port", argv[0]);
    if ((e = listener_addr(cmd, host, l->port, l)) != NULL)
        return e;
    l->protocol = argc > 1 ? lower(cmd->pool, argv[1]) : l->port == 443 ? "https" : "http";
    if (strcmp(l->protocol, "http") != 0 && strcmp(l->protocol, "https") != 0)
        return qt_psprintf(cmd->pool, "protocol must be http or https, got '%s'", argv[1]);
    for (tail = &cmd->cfg->listeners; *tail; tail = &(*tail)->next)
        if (same_addr(*tail, l))
            return qt_psprintf(cmd->pool, "%s is already listened on", l->text);
    *tail = l;
    return NULL;
}

static const char *set_listen_backlog(qt_cmd *cmd, int argc, char **argv)
{
    uint64_t v;
    const char *e = parse_u64(cmd, argv[0], INT_MAX, &v);

    if (e == NULL && v == 0)
        e = "must be at least 1";
    if (e == NULL)
        cmd->cfg->listen_backlog = (int)v;
    return e;
}

static const char *set_file_cache_size(qt_cmd *cmd, int argc, char **argv)
{
    uint64_t v;
    const char *e = parse_u64(cmd, argv[0], SIZE_MAX / 2, &v);

    if (e == NULL)
        cmd->cfg->file_cache_size = (size_t)v;
    return e;
}

static const char *set_file_cache_valid(qt_cmd *cmd, int argc, char **argv)
{
    return parse_duration_ms(cmd, argv[0], &cmd->cfg->file_cache_valid_ms);
}

static const char *set_server_name(qt_cmd *cmd, int argc, char **argv)
{
    const char *s = argv[0], *sep = strstr(s, "://"), *port = NULL, *e;
    qt_server *sv = srv(cmd);
    char *host;
    int portnum = 0;

    if (sep) {
        char *scheme = lower(cmd->pool, qt_pstrndup(cmd->pool, s, (size_t)(sep - s)));
        if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
            return qt_psprintf(cmd->pool, "scheme must be http or https, got '%s'", scheme);
        sv->scheme = scheme;
        s = sep + 3;
    }
    if ((e = split_host_port(cmd, s, &host, &port)) != NULL)
        return e;
    if (host == NULL) {             /* no ':' at all: the whole word is the host */
        host = qt_pstrdup(cmd->pool, s);
        port = NULL;
    }
    if (host[0] == '\0' || strchr(host, '/'))
        return qt_psprintf(cmd->pool, "'%s' is not [scheme://]host[:port]", argv[0]);
    if (port && (e = parse_port(cmd, port, &portnum)) != NULL)
        return e;
    sv->server_name = host;
    sv->port = portnum;
    return NULL;
}

static const char *set_server_admin(qt_cmd *cmd, int argc, char **argv)
{
    srv(cmd)->server_admin = qt_pstrdup(cmd->pool, argv[0]);
    return NULL;
}

static const char *set_server_alias(qt_cmd *cmd, int argc, char **argv)
{
    qt_server *sv = srv(cmd);
    const char **all = qt_palloc(cmd->pool, (sv->naliases + (size_t)argc) * sizeof *all);

    if (sv->naliases)
        memcpy(all, sv->aliases, sv->naliases * sizeof *all);
    for (int i = 0; i < argc; i++)
        all[sv->naliases + (size_t)i] = lower(cmd->pool, argv[i]);
    sv->aliases = all;
    sv->naliases += (size_t)argc;
    return NULL;
}

static const char *set_document_root(qt_cmd *cmd, int argc, char **argv)
{
    srv(cmd)->document_root = qt_config_dir_path(cmd->cfg, argv[0]);
    return NULL;
}

static qt_urlmap *add_urlmap(qt_cmd *cmd, enum qt_map_kind kind, const char *prefix)
{
    qt_server *sv = srv(cmd);
    qt_server_build *b = qt_server_build_of(sv);
    qt_urlmap *m;

    sv->urlmaps = qt_config_grow(cmd->pool, sv->urlmaps, sv->nurlmaps,
                                 &b->cap_urlmaps, sizeof *sv->urlmaps);
    m = &sv->urlmaps[sv->nurlmaps++];
    m->kind = kind;
    m->prefix = qt_pstrdup(cmd->pool, prefix);
    return m;
}

static const char *set_alias(qt_cmd *cmd, int argc, char **argv)
{
    bool script = strcasecmp(cmd->name, "ScriptAlias") == 0;

    if (argv[0][0] != '/')
        return qt_psprintf(cmd->pool, "URL prefix must start with '/', got '%s'", argv[0]);
    add_urlmap(cmd, script ? QT_MAP_SCRIPTALIAS : QT_MAP_ALIAS, argv[0])->target =
        qt_config_path(cmd->cfg, argv[1]);
    return NULL;
}

static int redirect_status(const char *word)
{
    static const struct { const char *name; int status; } names[] = {
        { "permanent", 301 }, { "temp", 302 }, { "seeother", 303 }, { "gone", 410 },
    };
    char *end;
    long v;

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(word, names[i].name) == 0)
            return names[i].status;
    if (word[0] < '0' || word[0] > '9')
        return 0;
    v = strtol(word, &end, 10);
    return *end == '\0' && v >= 100 && v <= 999 ? (int)v : -1;
}

static const char *add_redirect(qt_cmd *cmd, int status, const char *path, const char *url)
{
    if (status != 410 && (status < 300 || status > 399))
        return qt_psprintf(cmd->pool, "status must be 3xx or 410 (gone), got %d", status);
    if (path[0] != '/')
        return qt_psprintf(cmd->pool, "URL path must start with '/', got '%s'", path);
    if (status == 410 && url)
        return "a 'gone' redirect takes no target URL";
    if (status != 410 && url == NULL)
        return "needs a target URL";
    if (url && url[0] != '/' && strstr(url, "://") == NULL)
        return qt_psprintf(cmd->pool, "target must be an absolute URL or start with '/',"
                           " got '%s'", url);
    qt_urlmap *m = add_urlmap(cmd, QT_MAP_REDIRECT, path);
    m->target = url ? qt_pstrdup(cmd->pool, url) : NULL;
    m->status = status;
    return NULL;
}

static const char *set_redirect(qt_cmd *cmd, int argc, char **argv)
{
    int status;

    if (strcasecmp(cmd->name, "RedirectPermanent") == 0)
        return add_redirect(cmd, 301, argv[0], argv[1]);
    if (strcasecmp(cmd->name, "RedirectTemp") == 0)
        return add_redirect(cmd, 302, argv[0], argv[1]);
    status = redirect_status(argv[0]);
    if (status < 0)
        return qt_psprintf(cmd->pool, "unknown status '%s'", argv[0]);
    if (status == 0) {
        if (argc == 3)
            return qt_psprintf(cmd->pool, "unknown status '%s'", argv[0]);
        return add_redirect(cmd, 302, argv[0], argc > 1 ? argv[1] : NULL);
    }
    if (argc < 2)
        return "needs a URL path after the status";
    return add_redirect(cmd, status, argv[1], argc > 2 ? argv[2] : NULL);
}

/* --------------------------------------------------- per-directory directives */

static unsigned option_bit(const char *w)
{
    static const struct { const char *name; unsigned bit; } opts[] = {
        { "All", QT_OPT_ALL }, { "Indexes", QT_OPT_INDEXES },
        { "FollowSymLinks", QT_OPT_FOLLOWSYMLINKS },
        { "SymLinksIfOwnerMatch", QT_OPT_SYMLINKSOWNER }, { "ExecCGI", QT_OPT_EXECCGI },
        { "Includes", QT_OPT_INCLUDES },
        /* No server-side includes here, so the no-exec variant is the same bit. */
        { "IncludesNOEXEC", QT_OPT_INCLUDES }, { "MultiViews", QT_OPT_MULTIVIEWS },
    };

    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (strcasecmp(w, opts[i].name) == 0)
            return opts[i].bit;
    return 0;
}

static void apply_relative(qt_dir_conf *dc, unsigned add, unsigned remove)
{
    if (dc->opts_set) {             /* Options X then Options +Y in one scope */
        dc->options = (dc->options | add) & ~remove;
        return;
    }
    dc->opts_add = (dc->opts_add & ~remove) | add;
    dc->opts_remove = (dc->opts_remove & ~add) | remove;
    dc->opts_relative = true;
}

static const char *set_options(qt_cmd *cmd, int argc, char **argv)
{
    unsigned abs = 0, add = 0, remove = 0;
    int nrel = 0;

    for (int i = 0; i < argc; i++) {
        char sign = (argv[i][0] == '+' || argv[i][0] == '-') ? argv[i][0] : 0;
        const char *w = sign ? argv[i] + 1 : argv[i];
        unsigned bit = option_bit(w);

        nrel += sign != 0;
        if (bit == 0 && !(strcasecmp(w, "None") == 0 && !sign))
            return qt_psprintf(cmd->pool, "illegal option '%s' (None, All, Indexes,"
                               " FollowSymLinks, SymLinksIfOwnerMatch, ExecCGI,"
                               " Includes, IncludesNOEXEC, MultiViews)", argv[i]);
        if (sign == '+')
            add |= bit, remove &= ~bit;
        else if (sign == '-')
            remove |= bit, add &= ~bit;
        else
            abs |= bit;
    }
    if (nrel != 0 && nrel != argc)
        return "either all options must start with + or -, or none may";
    if (nrel) {
        apply_relative(dir(cmd), add, remove);
        return NULL;
    }
    dir(cmd)->options = abs;
    dir(cmd)->opts_set = true;
    dir(cmd)->opts_relative = false;
    dir(cmd)->opts_add = dir(cmd)->opts_remove = 0;
    return NULL;
}

/* Counts the leading one bits of a dotted netmask; -1 if not contiguous. */
static int mask_bits(const unsigned char *m, size_t n)
{
    int bits = 0;
    size_t i = 0;

    for (; i < n && m[i] == 0xff; i++)
        bits += 8;
    if (i < n) {
        unsigned char b = m[i++];
        while (b & 0x80)
            bits++, b = (unsigned char)(b << 1);
        if (b != 0)
            return -1;
    }
    for (; i < n; i++)
        if (m[i] != 0)
            return -1;
    return bits;
}

/* "10", "10.1", "172.16." : Apache's partial IPv4 networks. */
static bool partial_ipv4(const char *s, qt_ipnet *net)
{
    unsigned parts = 0;

    while (*s && parts < 4) {
        size_t d = strspn(s, "0123456789");
        long v;
        if (d == 0 || d > 3)
            return false;
        v = strtol(s, NULL, 10);
        if (v > 255)
            return false;
        net->addr[parts++] = (unsigned char)v;
        s += d;
        if (*s == '.')
            s++;
        else if (*s)
            return false;
    }
    if (*s || parts == 0)
        return false;
    net->family = AF_INET;
    net->prefix = parts * 8;
    return true;
}

static const char *net_prefix(qt_cmd *cmd, const char *mask, qt_ipnet *net)
{
    unsigned max = net->family == AF_INET ? 32 : 128;
    unsigned char m4[4];
    uint64_t v;

    if (net->family == AF_INET && strchr(mask, '.')) {
        int bits = inet_pton(AF_INET, mask, m4) == 1 ? mask_bits(m4, 4) : -1;
        if (bits < 0)
            return qt_psprintf(cmd->pool, "'%s' is not a valid netmask", mask);
        net->prefix = (unsigned)bits;
        return NULL;
    }
    if (parse_u64(cmd, mask, max, &v) != NULL)
        return qt_psprintf(cmd->pool, "prefix length must be 0-%u, got '%s'", max, mask);
    net->prefix = (unsigned)v;
    return NULL;
}

static const char *parse_ipnet(qt_cmd *cmd, const char *word, qt_ipnet *net)
{
    const char *slash = strchr(word, '/');
    char *addr = qt_pstrndup(cmd->pool, word, slash ? (size_t)(slash - word) : strlen(word));
    const char *e = NULL;

    memset(net, 0, sizeof *net);
    if (inet_pton(AF_INET6, addr, net->addr) == 1) {
        net->family = AF_INET6;
        net->prefix = 128;
    } else if (inet_pton(AF_INET, addr, net->addr) == 1) {
        net->family = AF_INET;
        net->prefix = 32;
    } else if (slash == NULL && partial_ipv4(addr, net)) {
        return NULL;
    } else {
        return qt_psprintf(cmd->pool, "'%s' is not an IP address or network"
                           " (host names are not supported)", word);
    }
    if (slash && (e = net_prefix(cmd, slash + 1, net)) != NULL)
        return e;
    for (unsigned i = net->prefix; i < (net->family == AF_INET ? 32u : 128u); i++)
        net->addr[i / 8] &= (unsigned char)~(0x80u >> (i % 8));
    return NULL;
}

static const char *require_ip(qt_cmd *cmd, qt_require *rq, int argc, char **argv)
{
    qt_ipnet *nets = qt_palloc(cmd->pool, (rq->nnets + (size_t)argc) * sizeof *nets);
    const char *e;

    if (rq->nnets)
        memcpy(nets, rq->nets, rq->nnets * sizeof *nets);
    for (int i = 0; i < argc; i++)
        if ((e = parse_ipnet(cmd, argv[i], &nets[rq->nnets + (size_t)i])) != NULL)
            return e;
    rq->nets = nets;
    rq->nnets += (size_t)argc;
    return NULL;
}

static const char *set_require(qt_cmd *cmd, int argc, char **argv)
{
    qt_require *rq = &dir(cmd)->require, next = { .kind = QT_REQ_IP };
    bool negate = strcasecmp(argv[0], "not") == 0;
    int i = negate ? 1 : 0;
    const char *kind = i < argc ? argv[i] : "";

    if (strcasecmp(kind, "ip") == 0 || strcasecmp(kind, "local") == 0) {
        char *local[] = { "127.0.0.0/8", "::1", NULL };
        bool is_local = strcasecmp(kind, "local") == 0;
        if (rq->kind != QT_REQ_UNSET && (rq->kind != QT_REQ_IP || rq->negate != negate))
            return "only several 'Require ip' lines can be combined in one section";
        if (!is_local && argc - i < 2)
            return "'Require ip' needs at least one address";
        next = *rq;
        next.kind = QT_REQ_IP;
        next.negate = negate;
        const char *e = is_local ? require_ip(cmd, &next, 2, local)
                                 : require_ip(cmd, &next, argc - i - 1, argv + i + 1);
        if (e == NULL)
            *rq = next;
        return e;
    }
    if (strcasecmp(kind, "all") == 0 && !negate && argc == 2) {
        if (rq->kind != QT_REQ_UNSET)
            return "'Require all' cannot be combined with another Require in one section";
        if (strcasecmp(argv[1], "granted") != 0 && strcasecmp(argv[1], "denied") != 0)
            return qt_psprintf(cmd->pool, "'Require all' takes granted or denied, got '%s'",
                               argv[1]);
        rq->kind = strcasecmp(argv[1], "granted") == 0 ? QT_REQ_GRANTED : QT_REQ_DENIED;
        return NULL;
    }
    return qt_psprintf(cmd->pool, "'Require %s' is not supported (only all granted,"
                       " all denied, [not] ip addr[/bits] ..., local)", kind);
}

static const char *set_allow_override(qt_cmd *cmd, int argc, char **argv)
{
    if (argc != 1 || strcasecmp(argv[0], "None") != 0)
        return "only None is supported: this server does not read .htaccess files";
    dir(cmd)->allow_override = 0;
    return NULL;
}

static const char *set_directory_index(qt_cmd *cmd, int argc, char **argv)
{
    qt_dir_conf *dc = dir(cmd);
    size_t have = 0;
    const char **list;

    if (argc == 1 && strcasecmp(argv[0], "disabled") == 0) {
        dc->directory_index = qt_pcalloc(cmd->pool, sizeof *list);
        dc->directory_index_disabled = true;
        return NULL;
    }
    /* Apache 2.4: a second DirectoryIndex in the same scope adds to the list. */
    while (dc->directory_index && !dc->directory_index_disabled &&
           dc->directory_index[have])
        have++;
    list = qt_palloc(cmd->pool, (have + (size_t)argc + 1) * sizeof *list);
    if (have)
        memcpy(list, dc->directory_index, have * sizeof *list);
    for (int i = 0; i < argc; i++)
        list[have + (size_t)i] = qt_pstrdup(cmd->pool, argv[i]);
    list[have + (size_t)argc] = NULL;
    dc->directory_index = list;
    dc->directory_index_disabled = false;
    return NULL;
}

/* AddType / AddHandler: prepends so the latest line for an extension wins. */
static const char *add_ext_map(qt_cmd *cmd, qt_ext_map **map, int argc, char **argv)
{
    if (argc < 2)
        return "needs a value and at least one extension";
    for (int i = 1; i < argc; i++) {
        const char *ext = argv[i][0] == '.' ? argv[i] + 1 : argv[i];
        qt_ext_map *e = qt_palloc(cmd->pool, sizeof *e);
        if (*ext == '\0')
            return qt_psprintf(cmd->pool, "empty extension '%s'", argv[i]);
        e->ext = lower(cmd->pool, ext);
        e->value = qt_pstrdup(cmd->pool, argv[0]);
        e->next = *map;
        *map = e;
    }
    return NULL;
}

static const char *set_add_type(qt_cmd *cmd, int argc, char **argv)
{
    if (strchr(argv[0], '/') == NULL)
        return qt_psprintf(cmd->pool, "'%s' is not a media type (type/subtype)", argv[0]);
    argv[0] = lower(cmd->pool, argv[0]);
    return add_ext_map(cmd, &dir(cmd)->types_by_ext, argc, argv);
}

static const char *set_add_handler(qt_cmd *cmd, int argc, char **argv)
{
    return add_ext_map(cmd, &dir(cmd)->handlers_by_ext, argc, argv);
}

static const char *set_handler(qt_cmd *cmd, int argc, char **argv)
{
    dir(cmd)->handler = strcasecmp(argv[0], "none") == 0 ? "none" : lower(cmd->pool, argv[0]);
    return NULL;
}

static const char *set_force_type(qt_cmd *cmd, int argc, char **argv)
{
    if (strcasecmp(argv[0], "none") != 0 && strchr(argv[0], '/') == NULL)
        return qt_psprintf(cmd->pool, "'%s' is not a media type (type/subtype)", argv[0]);
    dir(cmd)->force_type = strcasecmp(argv[0], "none") == 0 ? "none"
                                                             : lower(cmd->pool, argv[0]);
    return NULL;
}

static const char *errdoc_target(qt_cmd *cmd, qt_errdoc *d, const char *t)
{
    size_t n = strlen(t);

    if (t[0] == '"') {              /* "quoted text" is sent as the page */
        d->target = qt_pstrndup(cmd->pool, t + 1, n > 1 && t[n - 1] == '"' ? n - 2 : n - 1);
        d->is_text = true;
        return NULL;
    }
    if (strcasecmp(t, "default") == 0)
        return "'default' is not supported: remove the ErrorDocument line instead";
    if (t[0] == '/' || strstr(t, "://")) {
        if (strpbrk(t, " \t"))
            return qt_psprintf(cmd->pool, "URL '%s' contains blanks", t);
        d->target = qt_pstrdup(cmd->pool, t);
        return NULL;
    }
    d->target = qt_pstrdup(cmd->pool, t);     /* bare words: text, as Apache 2.4 */
    d->is_text = true;
    return NULL;
}

static const char *set_error_document(qt_cmd *cmd, int argc, char **argv)
{
    const char *s = argv[0], *e;
    size_t d = strspn(s, "0123456789");
    qt_errdoc *doc = qt_pcalloc(cmd->pool, sizeof *doc);
    uint64_t code;

    if (d == 0 || (s[d] != ' ' && s[d] != '\t'))
        return "takes two arguments: a status code and a URL or \"text\"";
    if (parse_u64(cmd, qt_pstrndup(cmd->pool, s, d), 999, &code) != NULL ||
        code < 400 || code > 599)
        return qt_psprintf(cmd->pool, "status must be 400-599, got %.*s", (int)d, s);
    s += d + strspn(s + d, " \t");
    if (*s == '\0')
        return "takes two arguments: a status code and a URL or \"text\"";
    doc->status = (int)code;
    if ((e = errdoc_target(cmd, doc, s)) != NULL)
        return e;
    doc->next = dir(cmd)->error_docs;
    dir(cmd)->error_docs = doc;
    return NULL;
}

static const char *set_accept_path_info(qt_cmd *cmd, int argc, char **argv)
{
    if (strcasecmp(argv[0], "on") == 0)
        dir(cmd)->accept_path_info = 1;
    else if (strcasecmp(argv[0], "off") == 0)
        dir(cmd)->accept_path_info = 0;
    else if (strcasecmp(argv[0], "default") == 0)
        dir(cmd)->accept_path_info = -1;
    else
        return qt_psprintf(cmd->pool, "takes On, Off or Default, got '%s'", argv[0]);
    return NULL;
}

/* ------------------------------------------------------------- logging */

static const char *set_error_log(qt_cmd *cmd, int argc, char **argv)
{
    cmd->cfg->error_log = log_path(cmd, argv[0]);
    return NULL;
}

static const char *set_log_level(qt_cmd *cmd, int argc, char **argv)
{
    int level = -1;

    for (int i = 0; i < argc; i++) {
        const char *colon = strchr(argv[i], ':');
        int l = qt_log_level_from(colon ? colon + 1 : argv[i]);
        if (l < 0)
            return qt_psprintf(cmd->pool, "unknown level '%s' (emerg, alert, crit, error,"
                               " warn, notice, info, debug, trace1-8)", argv[i]);
        /* Per-module levels (cgi:debug) are checked, then ignored: there is
         * one threshold for the whole server. */
        if (colon == NULL)
            level = l;
    }
    if (level >= 0)
        cmd->cfg->log_level = level;
    return NULL;
}

static const char *find_format(const qt_config *cfg, const char *nick)
{
    const char *found = NULL;

    for (size_t i = 0; cfg->log_formats[i]; i += 2)
        if (strcmp(cfg->log_formats[i], nick) == 0)
            found = cfg->log_formats[i + 1];
    return found;
}

static const char *check_format(qt_cmd *cmd, const char *fmt, qt_access_format **out)
{
    char err[256] = "";
    qt_access_format *f = qt_access_format_compile(cmd->pool, fmt, err, sizeof err);

    if (f == NULL)
        return qt_psprintf(cmd->pool, "bad format \"%s\": %s", fmt, err);
    if (out)
        *out = f;
    return NULL;
}

static const char *set_log_format(qt_cmd *cmd, int argc, char **argv)
{
    const char **old = cmd->cfg->log_formats, **all;
    size_t n = 0;
    const char *e = check_format(cmd, argv[0], NULL);

    /* A nickname-less LogFormat sets TransferLog's format in Apache; there is
     * no TransferLog here, so it is only checked. */
    if (e || argc == 1)
        return e;
    while (old[n])
        n += 2;
    all = qt_palloc(cmd->pool, (n + 3) * sizeof *all);
    memcpy(all, old, n * sizeof *all);
    all[n] = qt_pstrdup(cmd->pool, argv[1]);
    all[n + 1] = qt_pstrdup(cmd->pool, argv[0]);
    all[n + 2] = NULL;
    cmd->cfg->log_formats = all;
    return NULL;
}

static const char *set_custom_log(qt_cmd *cmd, int argc, char **argv)
{
    qt_server *sv = srv(cmd);
    qt_server_build *b = qt_server_build_of(sv);
    const char *fmt = find_format(cmd->cfg, argv[1]), *e;
    qt_custom_log *cl;

    if (argc == 3)
        return "conditional logging (env=, expr=) is not supported";
    if (fmt == NULL && strchr(argv[1], '%') == NULL)
        return qt_psprintf(cmd->pool, "LogFormat nickname '%s' is not defined (define"
                           " it with LogFormat before this line)", argv[1]);
    if (fmt == NULL)
        fmt = argv[1];
    sv->logs = qt_config_grow(cmd->pool, sv->logs, sv->nlogs, &b->cap_logs, sizeof *sv->logs);
    cl = &sv->logs[sv->nlogs];
    if ((e = check_format(cmd, fmt, &cl->compiled)) != NULL)
        return e;
    cl->path = log_path(cmd, argv[0]);
    cl->format = qt_pstrdup(cmd->pool, fmt);
    sv->nlogs++;
    return NULL;
}

/* ------------------------------------------------ connections and limits */

static const char *set_keep_alive(qt_cmd *cmd, int argc, char **argv)
{
    srv(cmd)->keep_alive = argv[0][0] == '1';
    mark(cmd, QT_SET_KEEPALIVE);
    return NULL;
}

static const char *set_timeout(qt_cmd *cmd, int argc, char **argv)
{
    bool ka = strcasecmp(cmd->name, "KeepAliveTimeout") == 0;
    int64_t ms = 0;
    const char *e = parse_duration_ms(cmd, argv[0], &ms);

    if (e)
        return e;
    if (!ka && ms == 0)
        return "must be greater than 0";
    *(ka ? &srv(cmd)->keep_alive_timeout_ms : &srv(cmd)->timeout_ms) = ms;
    mark(cmd, ka ? QT_SET_KA_TIMEOUT : QT_SET_TIMEOUT);
    return NULL;
}

/* The numeric per-server limits: name, bounds, where the value goes. */
static const char *set_limit(qt_cmd *cmd, int argc, char **argv)
{
    qt_server *sv = srv(cmd);
    uint64_t v, min = 0, max = UINT32_MAX;
    unsigned bit;
    const char *e;

    if (strcasecmp(cmd->name, "LimitRequestBody") == 0)
        max = INT64_MAX, bit = QT_SET_REQ_BODY;
    else if (strcasecmp(cmd->name, "MaxKeepAliveRequests") == 0)
        bit = QT_SET_KA_REQUESTS;
    else if (strcasecmp(cmd->name, "LimitRequestFields") == 0)
        bit = QT_SET_FIELDS;
    else if (strcasecmp(cmd->name, "LimitRequestLine") == 0)
        min = 1, max = 1u << 24, bit = QT_SET_REQ_LINE;
    else
        min = 1, max = 1u << 24, bit = QT_SET_FIELD_SIZE;
    if ((e = parse_u64(cmd, argv[0], max, &v)) != NULL)
        return e;
    if (v < min)
        return qt_psprintf(cmd->pool, "must be at least %llu", (unsigned long long)min);
    switch (bit) {
    case QT_SET_REQ_BODY:    sv->limit_request_body = v; break;
    case QT_SET_KA_REQUESTS: sv->max_keep_alive_requests = (unsigned)v; break;
    case QT_SET_FIELDS:      sv->limit_request_fields = (unsigned)v; break;
    case QT_SET_REQ_LINE:    sv->limit_request_line = (size_t)v; break;
    default:                 sv->limit_request_field_size = (size_t)v; break;
    }
    mark(cmd, bit);
    return NULL;
}

/* ---------------------------------------------------- process and misc */

static const char *set_path_field(qt_cmd *cmd, int argc, char **argv)
{
    const char *path = qt_config_path(cmd->cfg, argv[0]);

    if (strcasecmp(cmd->name, "PidFile") == 0) {
        cmd->cfg->pid_file = path;
    } else {
        qt_config_build *b = qt_config_build_of(cmd->cfg);
        cmd->cfg->types_config = path;
        b->types_file = cmd->file;
        b->types_line = cmd->line;
    }
    return NULL;
}

static const char *set_user_group(qt_cmd *cmd, int argc, char **argv)
{
    *(strcasecmp(cmd->name, "User") == 0 ? &cmd->cfg->user : &cmd->cfg->group) =
        qt_pstrdup(cmd->pool, argv[0]);
    return NULL;
}

/* Finds word in a NULL-terminated list of "name=value" choices. */
static int choice(const char *word, const char *const *names, const int *values)
{
    for (size_t i = 0; names[i]; i++)
        if (strcasecmp(word, names[i]) == 0)
            return values[i];
    return -1;
}

static const char *set_server_tokens(qt_cmd *cmd, int argc, char **argv)
{
    static const char *const names[] = { "Full", "OS", "Minor", "Minimal", "Min",
                                         "Major", "Prod", "ProductOnly", NULL };
    static const int values[] = { QT_TOKENS_FULL, QT_TOKENS_OS, QT_TOKENS_MINOR,
                                  QT_TOKENS_MINIMAL, QT_TOKENS_MINIMAL, QT_TOKENS_MAJOR,
                                  QT_TOKENS_PROD, QT_TOKENS_PROD };
    int v = choice(argv[0], names, values);

    if (v < 0)
        return qt_psprintf(cmd->pool, "takes Full, OS, Minor, Minimal, Major or Prod,"
                           " got '%s'", argv[0]);
    cmd->cfg->server_tokens = (enum qt_tokens)v;
    return NULL;
}

static const char *set_trace_enable(qt_cmd *cmd, int argc, char **argv)
{
    static const char *const names[] = { "off", "on", "extended", NULL };
    static const int values[] = { 0, 1, 2 };
    int v = choice(argv[0], names, values);

    if (v < 0)
        return qt_psprintf(cmd->pool, "takes on, off or extended, got '%s'", argv[0]);
    cmd->cfg->trace_enable = v;
    return NULL;
}

/*
 * ServerSignature, UseCanonicalName and HostnameLookups are accepted so
 * Apache configs load, but have no effect: the server behaves as with Off
 * for all three (no signature footer, self-URLs from the Host header, no
 * reverse DNS).
 */
static const char *set_accepted_only(qt_cmd *cmd, int argc, char **argv)
{
    static const char *const names[] = { "on", "off", "email", "dns", "double", NULL };
    static const int values[] = { 0, 0, 1, 2, 3 };
    int v = choice(argv[0], names, values);
    bool ok = v == 0 ||
              (v == 1 && strcasecmp(cmd->name, "ServerSignature") == 0) ||
              (v == 2 && strcasecmp(cmd->name, "UseCanonicalName") == 0) ||
              (v == 3 && strcasecmp(cmd->name, "HostnameLookups") == 0);

    return ok ? NULL : qt_psprintf(cmd->pool, "unknown value '%s'", argv[0]);
}

static const qt_directive core_directives[] = {
    { "ServerRoot", QT_TAKE1, QT_CTX_MAIN, set_server_root, "directory: base for relative paths" },
    { "Listen", QT_TAKE12, QT_CTX_MAIN, set_listen, "[addr:]port [http|https]" },
    { "ListenBacklog", QT_TAKE1, QT_CTX_MAIN, set_listen_backlog, "listen(2) backlog" },
    { "FileCacheSize", QT_TAKE1, QT_CTX_MAIN, set_file_cache_size,
      "bytes of small static files each process keeps in memory (0 = off)" },
    { "FileCacheValid", QT_TAKE1, QT_CTX_MAIN, set_file_cache_valid,
      "how long (seconds, or 500ms) a cached file's stat is trusted (0 = stat every request)" },
    { "ServerName", QT_TAKE1, QT_CTX_SERVER, set_server_name, "[scheme://]host[:port]" },
    { "ServerAdmin", QT_TAKE1, QT_CTX_SERVER, set_server_admin, "e-mail address or URL" },
    { "ServerAlias", QT_ONE_PLUS, QT_CTX_VHOST, set_server_alias, "host names (* and ? allowed)" },
    { "DocumentRoot", QT_TAKE1, QT_CTX_SERVER, set_document_root, "directory" },
    { "DirectoryIndex", QT_ONE_PLUS, QT_CTX_ANY, set_directory_index, "file names, or disabled" },
    { "Alias", QT_TAKE2, QT_CTX_SERVER, set_alias, "url-prefix path" },
    { "ScriptAlias", QT_TAKE2, QT_CTX_SERVER, set_alias, "url-prefix path" },
    { "Redirect", QT_TAKE123, QT_CTX_SERVER, set_redirect, "[status] url-path [URL]" },
    { "RedirectPermanent", QT_TAKE2, QT_CTX_SERVER, set_redirect, "url-path URL" },
    { "RedirectTemp", QT_TAKE2, QT_CTX_SERVER, set_redirect, "url-path URL" },
    { "Options", QT_ONE_PLUS, QT_CTX_ANY, set_options, "[+|-]option ..." },
    { "Require", QT_ONE_PLUS, QT_CTX_DIR, set_require, "all granted|denied, [not] ip addr ..." },
    { "AllowOverride", QT_ONE_PLUS, QT_CTX_DIR, set_allow_override, "None" },
    { "ErrorLog", QT_TAKE1, QT_CTX_MAIN, set_error_log, "file, |program or syslog" },
    { "LogLevel", QT_ONE_PLUS, QT_CTX_MAIN, set_log_level, "level [module:level ...]" },
    { "LogFormat", QT_TAKE12, QT_CTX_SERVER, set_log_format, "format [nickname]" },
    { "CustomLog", QT_TAKE23, QT_CTX_SERVER, set_custom_log, "file nickname-or-format" },
    { "KeepAlive", QT_FLAG, QT_CTX_SERVER, set_keep_alive, "On or Off" },
    { "KeepAliveTimeout", QT_TAKE1, QT_CTX_SERVER, set_timeout, "seconds, or Nms" },
    { "MaxKeepAliveRequests", QT_TAKE1, QT_CTX_SERVER, set_limit, "count, 0 = unlimited" },
    { "Timeout", QT_TAKE1, QT_CTX_SERVER, set_timeout, "seconds" },
    { "LimitRequestLine", QT_TAKE1, QT_CTX_SERVER, set_limit, "bytes" },
    { "LimitRequestFieldSize", QT_TAKE1, QT_CTX_SERVER, set_limit, "bytes" },
    { "LimitRequestFields", QT_TAKE1, QT_CTX_SERVER, set_limit, "count, 0 = unlimited" },
    { "LimitRequestBody", QT_TAKE1, QT_CTX_SERVER, set_limit, "bytes, 0 = unlimited" },
    { "TypesConfig", QT_TAKE1, QT_CTX_MAIN, set_path_field, "mime.types file" },
    { "AddType", QT_ONE_PLUS, QT_CTX_ANY, set_add_type, "media-type ext ..." },
    { "AddHandler", QT_ONE_PLUS, QT_CTX_ANY, set_add_handler, "handler ext ..." },
    { "SetHandler", QT_TAKE1, QT_CTX_ANY, set_handler, "handler name, or none" },
    { "ForceType", QT_TAKE1, QT_CTX_DIR, set_force_type, "media type, or none" },
    { "ErrorDocument", QT_RAW_ARGS, QT_CTX_ANY, set_error_document, "status URL|\"text\"" },
    { "AcceptPathInfo", QT_TAKE1, QT_CTX_ANY, set_accept_path_info, "On, Off or Default" },
    { "User", QT_TAKE1, QT_CTX_MAIN, set_user_group, "user name or #uid" },
    { "Group", QT_TAKE1, QT_CTX_MAIN, set_user_group, "group name or #gid" },
    { "PidFile", QT_TAKE1, QT_CTX_MAIN, set_path_field, "file" },
    { "ServerTokens", QT_TAKE1, QT_CTX_MAIN, set_server_tokens, "Full|OS|Minor|Minimal|Major|Prod" },
    { "TraceEnable", QT_TAKE1, QT_CTX_MAIN, set_trace_enable, "on|off|extended" },
    { "ServerSignature", QT_TAKE1, QT_CTX_ANY, set_accepted_only, "On|Off|EMail (no effect)" },
    { "UseCanonicalName", QT_TAKE1, QT_CTX_ANY, set_accepted_only, "On|Off|DNS (no effect)" },
    { "HostnameLookups", QT_TAKE1, QT_CTX_ANY, set_accepted_only, "On|Off|Double (no effect)" },
    { 0 },
};

/* The router maps "default-handler" itself, so the core registers none. */
static const qt_handler core_handlers[] = { { 0 } };

const qt_module qt_core_module = {
    QT_MODULE_HEADER("core_module"),
    .directives = core_directives,
    .handlers = core_handlers,
};

const qt_module *const qt_builtin_modules[] = {
    &qt_core_module,
    &qt_cgi_module,
    &qt_status_module,
    NULL,
};

/*
 * Apache modules whose work the core does itself.  Configs written for
 * Apache wrap their directives in <IfModule mime_module> etc., which must
 * be true here.
 */
bool qt_core_provides(const char *name)
{
    static const char *const builtin[] = {
        "core_module", "so_module", "http_module", "mime_module", "dir_module",
        "alias_module", "log_config_module", "authz_core_module", "authz_host_module",
        "unixd_module", NULL,
    };

    for (size_t i = 0; builtin[i]; i++)
        if (strcmp(name, builtin[i]) == 0)
            return true;
    return false;
}

/* ----------------------------------------------------- creation, defaults */

qt_dir_conf *qt_dir_conf_create(qt_pool *p)
{
    qt_dir_conf *dc = qt_pcalloc(p, sizeof *dc);

    dc->allow_override = -1;
    dc->accept_path_info = -1;
    dc->mod = qt_pcalloc(p, QT_MAX_MODULES * sizeof *dc->mod);
    return dc;
}

/* Runs at pool destruction: frees the regexes this server compiled. */
static void free_section_regexes(void *data)
{
    qt_server_build *b = data;

    for (size_t i = b->own_sections; i < b->s.nsections; i++)
        if (b->s.sections[i].is_regex)
            regfree(&b->s.sections[i].re);
}

qt_server *qt_server_create(qt_pool *p)
{
    qt_server_build *b = qt_pcalloc(p, sizeof *b);

    b->s.dir_defaults = qt_dir_conf_create(p);
    b->s.mod = qt_pcalloc(p, QT_MAX_MODULES * sizeof *b->s.mod);
    qt_pool_cleanup(p, free_section_regexes, b);
    return &b->s;
}

void qt_config_set_defaults(qt_config *cfg)
{
    static const char *const formats[] = {
        "common", COMMON_FORMAT, "combined", COMBINED_FORMAT, NULL,
    };
    qt_server *m = cfg->main;
    qt_dir_conf *dc = m->dir_defaults;
    const char **index = qt_palloc(cfg->pool, 2 * sizeof *index);

    m->timeout_ms = 60000;
    m->keep_alive = true;
    m->keep_alive_timeout_ms = 5000;
    m->max_keep_alive_requests = 100;
    m->limit_request_line = 8190;
    m->limit_request_field_size = 8190;
    m->limit_request_fields = 100;
    m->limit_request_body = UINT64_C(1) << 30;
    dc->options = QT_OPT_FOLLOWSYMLINKS;
    dc->opts_set = true;
    index[0] = "index.html";
    index[1] = NULL;
    dc->directory_index = index;
    cfg->listen_backlog = 511;
    cfg->file_cache_size = 1024 * 1024;
    cfg->file_cache_valid_ms = 1000;
    cfg->log_level = QT_LOG_WARN;
    cfg->server_tokens = QT_TOKENS_FULL;
    cfg->trace_enable = 0;     /* Apache's default is on; ours is off (safer) */
    cfg->log_formats = qt_pmemdup(cfg->pool, formats, sizeof formats);
}

static void inherit_limits(qt_server *v, const qt_server *m, unsigned set)
{
    if (!(set & QT_SET_TIMEOUT))     v->timeout_ms = m->timeout_ms;
    if (!(set & QT_SET_KEEPALIVE))   v->keep_alive = m->keep_alive;
    if (!(set & QT_SET_KA_TIMEOUT))  v->keep_alive_timeout_ms = m->keep_alive_timeout_ms;
    if (!(set & QT_SET_KA_REQUESTS)) v->max_keep_alive_requests = m->max_keep_alive_requests;
    if (!(set & QT_SET_REQ_LINE))    v->limit_request_line = m->limit_request_line;
    if (!(set & QT_SET_FIELD_SIZE))  v->limit_request_field_size = m->limit_request_field_size;
    if (!(set & QT_SET_FIELDS))      v->limit_request_fields = m->limit_request_fields;
    if (!(set & QT_SET_REQ_BODY))    v->limit_request_body = m->limit_request_body;
}

/* As Apache: main's sections first, then the vhost's own. */
static void inherit_sections(qt_pool *p, qt_server *v, const qt_server *m)
{
    qt_server_build *b = qt_server_build_of(v);
    size_t n = m->nsections + v->nsections;
    qt_section *all;

    if (m->nsections == 0)
        return;
    all = qt_palloc(p, n * sizeof *all);
    memcpy(all, m->sections, m->nsections * sizeof *all);
    for (size_t i = 0; i < v->nsections; i++) {
        all[m->nsections + i] = v->sections[i];
        if (v->sections[i].parent >= 0)
            all[m->nsections + i].parent += (int)m->nsections;
    }
    v->sections = all;
    v->nsections = n;
    b->cap_sections = n;
    b->own_sections = m->nsections;
}

/* As Apache's mod_alias: the vhost's own mappings first, then main's. */
static void inherit_urlmaps(qt_pool *p, qt_server *v, const qt_server *m)
{
    qt_urlmap *all;

    if (m->nurlmaps == 0)
        return;
    all = qt_palloc(p, (v->nurlmaps + m->nurlmaps) * sizeof *all);
    if (v->nurlmaps)
        memcpy(all, v->urlmaps, v->nurlmaps * sizeof *all);
    memcpy(all + v->nurlmaps, m->urlmaps, m->nurlmaps * sizeof *all);
    v->urlmaps = all;
    v->nurlmaps += m->nurlmaps;
    qt_server_build_of(v)->cap_urlmaps = v->nurlmaps;
}

static void inherit_module_confs(qt_config *cfg, qt_server *v, const qt_server *m)
{
    for (size_t i = 1; i < cfg->nmodules; i++) {
        const qt_module *mod = cfg->modules[i];
        if (v->mod[i] && m->mod[i] && mod->merge_server_conf)
            v->mod[i] = mod->merge_server_conf(cfg->pool, m->mod[i], v->mod[i]);
        else if (v->mod[i] == NULL)
            v->mod[i] = m->mod[i];
    }
}

void qt_server_inherit(qt_config *cfg, qt_server *v)
{
    const qt_server *m = cfg->main;

    inherit_limits(v, m, qt_server_build_of(v)->set);
    if (v->server_name == NULL) {
        v->server_name = m->server_name;
        v->port = m->port;
        v->scheme = m->scheme;
    }
    if (v->server_admin == NULL)
        v->server_admin = m->server_admin;
    if (v->document_root == NULL)
        v->document_root = m->document_root;
    if (v->nlogs == 0) {            /* shared, so the log layer opens each once */
        v->logs = m->logs;
        v->nlogs = m->nlogs;
    }
    v->dir_defaults = qt_dir_conf_merge(cfg, cfg->pool, m->dir_defaults, v->dir_defaults);
    inherit_sections(cfg->pool, v, m);
    inherit_urlmaps(cfg->pool, v, m);
    inherit_module_confs(cfg, v, m);
}

/* --------------------------------------------------------------- merge */

static void merge_options(qt_dir_conf *out, const qt_dir_conf *base, const qt_dir_conf *add)
{
    if (add->opts_set) {
        out->options = add->options;
        out->opts_set = true;
        out->opts_relative = false;
        out->opts_add = out->opts_remove = 0;
    } else if (add->opts_relative && base->opts_set) {
        out->options = (base->options | add->opts_add) & ~add->opts_remove;
    } else if (add->opts_relative) {
        out->opts_add = (base->opts_add & ~add->opts_remove) | add->opts_add;
        out->opts_remove = (base->opts_remove & ~add->opts_add) | add->opts_remove;
        out->opts_relative = true;
    }
}

/* add's entries in front of base's: lookups take the first match. */
static qt_ext_map *merge_ext(qt_pool *p, qt_ext_map *base, qt_ext_map *add)
{
    qt_ext_map *head = base, **tail = &head;

    if (add == NULL || base == NULL)
        return add ? add : base;
    for (const qt_ext_map *e = add; e; e = e->next) {
        qt_ext_map *c = qt_pmemdup(p, e, sizeof *e);
        c->next = base;
        *tail = c;
        tail = &c->next;
    }
    return head;
}

static qt_errdoc *merge_errdocs(qt_pool *p, qt_errdoc *base, qt_errdoc *add)
{
    qt_errdoc *head = base, **tail = &head;

    if (add == NULL || base == NULL)
        return add ? add : base;
    for (const qt_errdoc *e = add; e; e = e->next) {
        qt_errdoc *c = qt_pmemdup(p, e, sizeof *e);
        c->next = base;
        *tail = c;
        tail = &c->next;
    }
    return head;
}

/* "none" clears an inherited value: the merged result says NULL. */
static const char *merge_clearable(const char *base, const char *add)
{
    const char *v = add ? add : base;

    return v && strcasecmp(v, "none") == 0 ? NULL : v;
}

static void **merge_module_confs(const qt_config *cfg, qt_pool *p,
                                 void *const *base, void *const *add)
{
    void **out = qt_pcalloc(p, QT_MAX_MODULES * sizeof *out);

    for (size_t i = 1; i < cfg->nmodules; i++) {
        const qt_module *m = cfg->modules[i];
        void *b = base ? base[i] : NULL, *a = add ? add[i] : NULL;
        out[i] = a && b && m->merge_dir_conf ? m->merge_dir_conf(p, b, a) : a ? a : b;
    }
    return out;
}

qt_dir_conf *qt_dir_conf_merge(const qt_config *cfg, qt_pool *p,
                               const qt_dir_conf *base, const qt_dir_conf *add)
{
    qt_dir_conf *out = qt_pmemdup(p, base, sizeof *base);

    merge_options(out, base, add);
    if (add->require.kind != QT_REQ_UNSET)
        out->require = add->require;
    out->handler = merge_clearable(base->handler, add->handler);
    out->force_type = merge_clearable(base->force_type, add->force_type);
    out->handlers_by_ext = merge_ext(p, base->handlers_by_ext, add->handlers_by_ext);
    out->types_by_ext = merge_ext(p, base->types_by_ext, add->types_by_ext);
    out->error_docs = merge_errdocs(p, base->error_docs, add->error_docs);
    if (add->directory_index) {
        out->directory_index = add->directory_index;
        out->directory_index_disabled = add->directory_index_disabled;
    }
    if (add->allow_override >= 0)
        out->allow_override = add->allow_override;
    if (add->accept_path_info >= 0)
        out->accept_path_info = add->accept_path_info;
    out->mod = merge_module_confs(cfg, p, base->mod, add->mod);
    return out;
}

unsigned qt_dir_options(const qt_dir_conf *dc)
{
    if (dc->opts_set)
        return dc->options;
    /* Only relative forms seen: they apply to the built-in default. */
    return (QT_OPT_FOLLOWSYMLINKS | dc->opts_add) & ~dc->opts_remove;
}

/* ------------------------------------------------- lookups for modules */

void *qt_module_server_conf(const qt_request *r, const qt_module *m)
{
    int i = qt_config_module_index(r->cfg, m);

    return i > 0 && r->server ? r->server->mod[i] : NULL;
}

void *qt_module_dir_conf(const qt_request *r, const qt_module *m)
{
    int i = qt_config_module_index(r->cfg, m);

    return i > 0 && r->dir && r->dir->mod ? r->dir->mod[i] : NULL;
}
