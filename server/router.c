/*
 * The one routing layer.  For each request, in this order:
 *
 *   1. Redirect          prefix match on the URL -> 3xx/410 with Location
 *   2. Alias/ScriptAlias prefix match on the URL -> filesystem root
 *      or DocumentRoot
 *   3. walk the path to the first existing file (the rest is PATH_INFO),
 *      never above the mapped root
 *   4. merge per-directory config: <Directory> short to long, regex ones,
 *      <Files>, <Location>; the main server's sections before a vhost's
 *   5. symlink policy (Options FollowSymLinks / SymLinksIfOwnerMatch)
 *   6. Require
 *   7. handler: ScriptAlias > SetHandler > AddHandler > default-handler
 *
 * The URL reaching here is already percent-decoded and free of dot
 * segments (request.c, via uri.c), so string prefixes are safe.
 */
#include "router.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fnmatch.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "filecache.h"
#include "log.h"
#include "mime.h"
#include "uri.h"

/* ----------------------------------------------------------- vhosts */

static bool addr_matches(const char *spec, const qt_conn *c)
{
    const char *colon = strrchr(spec, ':');
    const char *port = colon ? colon + 1 : "*";
    size_t hostlen = colon ? (size_t)(colon - spec) : strlen(spec);
    if (strcmp(port, "*") != 0 && atoi(port) != c->local_port)
        return false;
    if (hostlen == 1 && spec[0] == '*')
        return true;
    if (hostlen == 9 && strncmp(spec, "_default_", 9) == 0)
        return true;
    char host[72];
    if (hostlen >= sizeof(host))
        return false;
    memcpy(host, spec, hostlen);
    host[hostlen] = '\0';
    if (host[0] == '[' && hostlen > 2) {          /* [::1] */
        host[hostlen - 1] = '\0';
        return strcmp(host + 1, c->local_ip) == 0;
    }
    return strcmp(host, c->local_ip) == 0;
}

static bool name_matches(const qt_server *s, const char *host)
{
    if (s->server_name && strcasecmp(s->server_name, host) == 0)
        return true;
    for (size_t i = 0; i < s->naliases; i++)
        if (fnmatch(s->aliases[i], host, FNM_CASEFOLD) == 0)
            return true;
    return false;
}

const qt_server *qt_select_vhost(const qt_config *cfg, const qt_conn *c, const char *host)
{
    const qt_server *first = NULL;
    for (size_t i = 0; i < cfg->nvhosts; i++) {
        const qt_server *s = cfg->vhosts[i];
        bool addr_ok = false;
        for (size_t j = 0; j < s->naddrs && !addr_ok; j++)
            addr_ok = addr_matches(s->addrs[j], c);
        if (!addr_ok)
            continue;
        if (!first)
            first = s;                 /* the default for this address */
        if (host && name_matches(s, host))
            return s;
    }
    return first ? first : cfg->main;
}

/* ----------------------------------------------------------- URL maps */

/* Length of prefix if it matches path on a segment boundary, else 0. */
static size_t prefix_match(const char *prefix, const char *path)
{
    size_t n = strlen(prefix);
    if (strncmp(prefix, path, n) != 0)
        return 0;
    if (n > 0 && prefix[n - 1] == '/')
        return n;
    if (path[n] == '\0' || path[n] == '/')
        return n;
    return 0;
}

static int apply_redirect(qt_request *r, const qt_urlmap *m, size_t n)
{
    if (m->status == 410)
        return 410;
    const char *loc = qt_psprintf(r->pool, "%s%s%s%s", m->target,
                                  qt_uri_escape_path(r->pool, r->path + n),
                                  r->args ? "?" : "", r->args ? r->args : "");
    qt_header_set(r, "Location", loc);
    return m->status ? m->status : 302;
}

/* Step 1 and 2: 0 with r->filename set, or a redirect status. */
static int map_url(qt_request *r)
{
    const qt_server *s = r->server;
    for (size_t i = 0; i < s->nurlmaps; i++) {
        const qt_urlmap *m = &s->urlmaps[i];
        size_t n = prefix_match(m->prefix, r->path);
        if (n == 0)
            continue;
        if (m->kind == QT_MAP_REDIRECT)
            return apply_redirect(r, m, n);
        const char *rest = r->path + n;
        size_t tl = strlen(m->target);
        bool slash = tl > 0 && m->target[tl - 1] == '/';
        if (slash && rest[0] == '/')
            rest++;
        r->filename = qt_pstrcat(r->pool, m->target,
                                 (!slash && rest[0] && rest[0] != '/') ? "/" : "", rest, NULL);
        r->uri_prefix = qt_pstrndup(r->pool, r->path, n);
        r->context_root = m->target;
        r->script_alias = m->kind == QT_MAP_SCRIPTALIAS;
        return 0;
    }
    const char *root = s->document_root ? s->document_root : "/nonexistent";
    r->filename = qt_pstrcat(r->pool, root, r->path, NULL);
    r->uri_prefix = "";
    r->context_root = root;
    return 0;
}

/*
 * Step 3: stat the file; if a component is missing, back off segment by
 * segment (not above the mapped root) to find a file with PATH_INFO after it.
 */
static void walk_path(qt_request *r)
{
    size_t rootlen = strlen(r->context_root);
    /* "ScriptAlias /git/ /usr/lib/git-core/git-http-backend/" maps onto a
     * file: backing off may reach the target itself, as in Apache. */
    if (rootlen > 1 && r->context_root[rootlen - 1] == '/')
        rootlen--;
    char *fn = qt_pstrdup(r->pool, r->filename);
    size_t len = strlen(fn);
    for (;;) {
        if (qt_filecache_stat(fn, &r->finfo, r->cfg->file_cache_valid_ms) == 0) {
            r->have_finfo = true;
            break;
        }
        int e = errno;
        if (e != ENOENT && e != ENOTDIR)
            break;
        char *slash = strrchr(fn, '/');
        if (!slash || (size_t)(slash - fn) < rootlen || slash == fn)
            break;
        *slash = '\0';
    }
    if (!r->have_finfo)
        return;
    size_t flen = strlen(fn);
    if (flen < len) {
        if (!S_ISREG(r->finfo.st_mode)) {     /* a directory with a missing child */
            r->have_finfo = false;
            return;
        }
        r->path_info = qt_pstrdup(r->pool, r->filename + flen);
        r->filename = fn;
    }
}

/* ----------------------------------------------------------- dir config */

static bool dir_section_matches(const qt_section *sec, const char *dir)
{
    if (sec->is_regex)
        return regexec(&sec->re, dir, 0, NULL, 0) == 0;
    const char *m = sec->match;
    if (strcmp(m, "/") == 0)
        return true;
    if (sec->is_glob) {
        /* Match the glob against dir and each of its ancestors. */
        char buf[4096];
        snprintf(buf, sizeof(buf), "%s", dir);
        for (;;) {
            if (fnmatch(m, buf, FNM_PATHNAME) == 0)
                return true;
            char *slash = strrchr(buf, '/');
            if (!slash || slash == buf)
                return false;
            *slash = '\0';
        }
    }
    size_t n = strlen(m);
    return strncmp(m, dir, n) == 0 && (dir[n] == '\0' || dir[n] == '/');
}

static size_t depth_of(const char *p)
{
    size_t d = 0;
    for (; *p; p++)
        d += *p == '/';
    return d;
}

static const qt_dir_conf *merge_kind(qt_request *r, const qt_server *s, const qt_dir_conf *dc,
                                     enum qt_section_kind kind, bool regex,
                                     const char *subject)
{
    /* Plain <Directory> sections apply from the shortest path to the
     * longest, file order among equals: collect the matches, then an
     * insertion sort by depth (stable, and the lists are short). */
    if (kind == QT_SEC_DIRECTORY && !regex) {
        const qt_section *hits[64];
        size_t depth[64], n = 0;
        for (size_t i = 0; i < s->nsections; i++) {
            const qt_section *sec = &s->sections[i];
            if (sec->kind != kind || sec->is_regex || !dir_section_matches(sec, subject))
                continue;
            size_t d = strcmp(sec->match, "/") == 0 ? 0 : depth_of(sec->match);
            if (n == 64) {                  /* absurd configs: merge in file order */
                dc = qt_dir_conf_merge(r->cfg, r->pool, dc, sec->conf);
                continue;
            }
            size_t j = n++;
            for (; j > 0 && depth[j - 1] > d; j--) {
                hits[j] = hits[j - 1];
                depth[j] = depth[j - 1];
            }
            hits[j] = sec;
            depth[j] = d;
        }
        for (size_t i = 0; i < n; i++)
            dc = qt_dir_conf_merge(r->cfg, r->pool, dc, hits[i]->conf);
        return dc;
    }
    for (size_t i = 0; i < s->nsections; i++) {
        const qt_section *sec = &s->sections[i];
        if (sec->kind != kind || sec->is_regex != regex)
            continue;
        bool hit;
        if (kind == QT_SEC_DIRECTORY)
            hit = dir_section_matches(sec, subject);
        else if (kind == QT_SEC_FILES)
            hit = regex ? regexec(&sec->re, subject, 0, NULL, 0) == 0
                        : fnmatch(sec->match, subject, 0) == 0;
        else
            hit = regex ? regexec(&sec->re, subject, 0, NULL, 0) == 0
                        : prefix_match(sec->match, subject) > 0 ||
                          strcmp(sec->match, subject) == 0;
        if (hit)
            dc = qt_dir_conf_merge(r->cfg, r->pool, dc, sec->conf);
    }
    return dc;
}

static const qt_dir_conf *merge_server(qt_request *r, const qt_server *s, const qt_dir_conf *dc,
                                       const char *dir, const char *base, const char *url,
                                       enum qt_section_kind kind)
{
    if (kind == QT_SEC_DIRECTORY) {
        dc = merge_kind(r, s, dc, QT_SEC_DIRECTORY, false, dir);
        return merge_kind(r, s, dc, QT_SEC_DIRECTORY, true, dir);
    }
    if (kind == QT_SEC_FILES)
        return base ? merge_kind(r, s, merge_kind(r, s, dc, QT_SEC_FILES, false, base),
                                 QT_SEC_FILES, true, base) : dc;
    dc = merge_kind(r, s, dc, QT_SEC_LOCATION, false, url);
    return merge_kind(r, s, dc, QT_SEC_LOCATION, true, url);
}

const qt_dir_conf *qt_route_dir_conf(qt_request *r, const char *filename, const char *url)
{
    const qt_server *main = r->cfg->main, *s = r->server;
    /* The directory a file lives in; a directory is its own. */
    char *dir = qt_pstrdup(r->pool, filename ? filename : "/");
    const char *base = NULL;
    size_t dl = strlen(dir);
    if (dl > 1 && dir[dl - 1] == '/')
        dir[--dl] = '\0';
    bool is_dir = r->have_finfo && filename == r->filename && S_ISDIR(r->finfo.st_mode);
    if (!is_dir) {
        char *slash = strrchr(dir, '/');
        if (slash) {
            base = slash + 1;
            *slash = '\0';
            if (dir[0] == '\0')
                dir = "/";
        }
    }
    const qt_dir_conf *dc = s->dir_defaults;
    static const enum qt_section_kind order[] = { QT_SEC_DIRECTORY, QT_SEC_FILES, QT_SEC_LOCATION };
    for (size_t k = 0; k < 3; k++) {
        if (s != main)
            dc = merge_server(r, main, dc, dir, base, url, order[k]);
        dc = merge_server(r, s, dc, dir, base, url, order[k]);
    }
    return dc;
}

/* ----------------------------------------------------------- policies */

/* Step 5: refuse symlinks below the mapped root unless Options allow them. */
static int check_symlinks(qt_request *r)
{
    unsigned opts = qt_dir_options(r->dir);
    if (opts & QT_OPT_FOLLOWSYMLINKS)
        return 0;
    size_t rootlen = strlen(r->context_root);
    char *p = qt_pstrdup(r->pool, r->filename);
    for (char *slash = p + rootlen; slash && *slash; slash = strchr(slash + 1, '/')) {
        char *next = strchr(slash + 1, '/');
        if (next)
            *next = '\0';
        struct stat ls, ts;
        bool link = lstat(p, &ls) == 0 && S_ISLNK(ls.st_mode);
        if (link && !((opts & QT_OPT_SYMLINKSOWNER) && stat(p, &ts) == 0 &&
                      ts.st_uid == ls.st_uid)) {
            qt_rlog(r, QT_LOG_ERR, "QT0403", "Symbolic link not allowed or link target not accessible: %s", p);
            return 403;
        }
        if (next)
            *next = '/';
    }
    return 0;
}

static bool ip_in(const qt_ipnet *net, const qt_sockaddr *ss)
{
    const unsigned char *a;
    unsigned char mapped[16];
    size_t alen;
    if (ss->sa.sa_family == AF_INET) {
        const struct sockaddr_in *s4 = &ss->in;
        a = (const unsigned char *)&s4->sin_addr;
        alen = 4;
    } else {
        const struct sockaddr_in6 *s6 = &ss->in6;
        a = s6->sin6_addr.s6_addr;
        alen = 16;
        if (net->family == AF_INET && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            memcpy(mapped, a + 12, 4);
            a = mapped;
            alen = 4;
        }
    }
    if ((net->family == AF_INET) != (alen == 4))
        return false;
    unsigned bits = net->prefix;
    for (size_t i = 0; i < alen && bits > 0; i++, bits = bits > 8 ? bits - 8 : 0) {
        unsigned char mask = bits >= 8 ? 0xff : (unsigned char)(0xff << (8 - bits));
        if ((a[i] & mask) != (net->addr[i] & mask))
            return false;
    }
    return true;
}

/* Step 6. */
static int check_access(qt_request *r)
{
    const qt_require *q = &r->dir->require;
    bool granted;
    switch (q->kind) {
    case QT_REQ_DENIED:
        granted = false;
        break;
    case QT_REQ_IP:
        granted = false;
        for (size_t i = 0; i < q->nnets && !granted; i++)
            granted = ip_in(&q->nets[i], &r->conn->peer);
        if (q->negate)
            granted = !granted;
        break;
    default:
        granted = true;
    }
    if (granted)
        return 0;
    qt_rlog(r, QT_LOG_ERR, "QT0401", "client denied by server configuration: %s",
            r->filename ? r->filename : r->path);
    return 403;
}

/* Step 7. */
static void pick_handler(qt_request *r)
{
    const qt_dir_conf *dc = r->dir;
    if (r->script_alias)
        r->handler = "cgi-script";
    else if (dc->handler && strcasecmp(dc->handler, "none") != 0)
        r->handler = dc->handler;
    else if (r->filename && (r->handler = qt_ext_map_lookup(dc->handlers_by_ext, r->filename)))
        ;
    else
        r->handler = "default-handler";
}

int qt_route(qt_request *r)
{
    r->handler = NULL;
    r->path_info = NULL;
    r->have_finfo = false;
    int st = map_url(r);
    if (st)
        return st;
    walk_path(r);
    r->dir = qt_route_dir_conf(r, r->filename, r->path);
    if (r->have_finfo && (st = check_symlinks(r)) != 0)
        return st;
    if ((st = check_access(r)) != 0)
        return st;
    pick_handler(r);
    return 0;
}
