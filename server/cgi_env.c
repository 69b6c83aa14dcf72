/*
 * CGI environment and response-head parsing: pure functions, no I/O.
 * The rules are Apache's (util_script.c behaviour, see
 * /work/shared/reference/apache.md section 5); where we differ the comment
 * says why.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cgi_env.h"

/* ------------------------------------------------------------ the var list */

typedef struct {
    qt_pool *pool;
    qt_kv *head, *tail;
    size_t n;
} env_list;

static qt_kv *env_find(env_list *e, const char *name)
{
    for (qt_kv *kv = e->head; kv; kv = kv->next)
        if (strcmp(kv->name, name) == 0)
            return kv;
    return NULL;
}

/* Replaces or appends: the last setter of a name wins (APR "set"). */
static void env_set(env_list *e, const char *name, const char *value)
{
    if (!value)
        return;
    qt_kv *kv = env_find(e, name);
    if (kv) {
        kv->value = qt_pstrdup(e->pool, value);
        return;
    }
    kv = qt_pcalloc(e->pool, sizeof *kv);
    kv->name = qt_pstrdup(e->pool, name);
    kv->value = qt_pstrdup(e->pool, value);
    if (e->tail)
        e->tail->next = kv;
    else
        e->head = kv;
    e->tail = kv;
    e->n++;
}

static void env_unset(env_list *e, const char *name)
{
    qt_kv **pp = &e->head;
    e->tail = NULL;
    while (*pp) {
        if (strcmp((*pp)->name, name) == 0) {
            *pp = (*pp)->next;
            e->n--;
            continue;
        }
        e->tail = *pp;
        pp = &(*pp)->next;
    }
}

static void env_set_int(env_list *e, const char *name, int v)
{
    char num[16];
    snprintf(num, sizeof num, "%d", v);
    env_set(e, name, num);
}

/* ------------------------------------------------------------ header vars */

char *qt_cgi_header_var(qt_pool *p, qt_slice name, bool pass_auth)
{
    if (qt_slice_caseeq(name, "Content-Type") || qt_slice_caseeq(name, "Content-Length")
        || qt_slice_caseeq(name, "Proxy"))          /* httpoxy, CVE-2016-5387 */
        return NULL;
    if (!pass_auth && (qt_slice_caseeq(name, "Authorization")
                       || qt_slice_caseeq(name, "Proxy-Authorization")))
        return NULL;
    if (name.n == 0)
        return NULL;
    char *v = qt_palloc(p, name.n + 6);
    memcpy(v, "HTTP_", 5);
    for (size_t i = 0; i < name.n; i++) {
        unsigned char c = (unsigned char)name.p[i];
        /* '_' and the rest are refused, not mapped: "X-Forwarded_For"
         * must not be able to pose as X-Forwarded-For. */
        if (c == '-')
            v[5 + i] = '_';
        else if (isalnum(c))
            v[5 + i] = (char)toupper(c);
        else
            return NULL;
    }
    v[5 + name.n] = '\0';
    return v;
}

/* Repeated fields arrive as one variable "a, b", as Apache merges headers_in. */
static void add_header_var(env_list *e, env_list *seen, const char *name,
                           const char *value)
{
    qt_kv *kv = env_find(seen, name);
    if (kv) {
        kv->value = qt_psprintf(e->pool, "%s, %s", kv->value, value);
        env_set(e, name, kv->value);
        return;
    }
    env_set(seen, name, value);
    env_set(e, name, value);
}

static bool has_header(const qt_cgi_env_in *in, const char *name)
{
    for (unsigned i = 0; i < in->nheaders; i++)
        if (qt_slice_caseeq(in->headers[i].name, name))
            return true;
    return false;
}

static void add_headers(qt_pool *p, env_list *e, const qt_cgi_env_in *in)
{
    env_list seen = { .pool = p };
    /* A chunked request has no CONTENT_LENGTH even if one was sent. */
    bool chunked = has_header(in, "Transfer-Encoding");
    for (unsigned i = 0; i < in->nheaders; i++) {
        const qt_header *h = &in->headers[i];
        const char *value = qt_pstrndup(p, h->value.p, h->value.n);
        const char *var = qt_cgi_header_var(p, h->name, in->pass_auth);
        if (qt_slice_caseeq(h->name, "Content-Type"))
            var = "CONTENT_TYPE";
        else if (qt_slice_caseeq(h->name, "Content-Length"))
            var = chunked ? NULL : "CONTENT_LENGTH";
        if (var)
            add_header_var(e, &seen, var, value);
    }
}

/* ------------------------------------------------------------ the rest */

static const char *html_escape(qt_pool *p, const char *s)
{
    if (!s || !strpbrk(s, "&<>\""))
        return s;
    qt_buf b;
    qt_buf_init(&b);
    qt_buf_html_escape(&b, s);
    char *out = qt_pstrndup(p, b.data, b.len);
    qt_buf_free(&b);
    return out;
}

const char *qt_cgi_script_name(qt_pool *p, const char *path, const char *path_info)
{
    size_t n = strlen(path), pi = path_info ? strlen(path_info) : 0;
    if (pi == 0 || pi > n || strcmp(path + n - pi, path_info) != 0)
        return path;
    return qt_pstrndup(p, path, n - pi);
}

/* Variables every CGI gets (Apache's ap_add_common_vars). */
static void add_common(qt_pool *p, env_list *e, const qt_cgi_env_in *in,
                       const env_list *base)
{
    qt_kv *path = env_find((env_list *)base, "PATH");
    env_set(e, "PATH", path ? path->value : QT_CGI_DEFAULT_PATH);
    env_set(e, "LD_LIBRARY_PATH", in->ld_library_path);
    env_set(e, "TZ", in->tz);
    env_set(e, "SERVER_SIGNATURE", in->server_signature ? in->server_signature : "");
    env_set(e, "SERVER_SOFTWARE", in->server_software);
    env_set(e, "SERVER_NAME", html_escape(p, in->server_name));
    env_set(e, "SERVER_ADDR", in->server_addr);
    if (in->server_port > 0)
        env_set_int(e, "SERVER_PORT", in->server_port);
    env_set(e, "REMOTE_HOST", in->remote_host);
    env_set(e, "REMOTE_ADDR", in->remote_addr);
    env_set(e, "DOCUMENT_ROOT", in->document_root);
    env_set(e, "REQUEST_SCHEME", in->scheme);
    env_set(e, "CONTEXT_PREFIX", in->context_prefix ? in->context_prefix : "");
    env_set(e, "CONTEXT_DOCUMENT_ROOT", in->context_document_root
            ? in->context_document_root : in->document_root);
    env_set(e, "SERVER_ADMIN", in->server_admin);
    env_set(e, "SCRIPT_FILENAME", in->filename);
    if (in->remote_port > 0)
        env_set_int(e, "REMOTE_PORT", in->remote_port);
    env_set(e, "REMOTE_USER", in->remote_user);
    env_set(e, "AUTH_TYPE", in->auth_type);
    if (in->https)
        env_set(e, "HTTPS", "on");
}

/* CGI/1.1 proper (Apache's ap_add_cgi_vars). */
static void add_cgi(qt_pool *p, env_list *e, const qt_cgi_env_in *in)
{
    env_set(e, "GATEWAY_INTERFACE", "CGI/1.1");
    env_set(e, "SERVER_PROTOCOL", in->protocol);
    env_set(e, "REQUEST_METHOD", in->method);
    env_set(e, "QUERY_STRING", in->args ? in->args : "");
    env_set(e, "REQUEST_URI", in->request_uri);
    if (in->path)
        env_set(e, "SCRIPT_NAME", qt_cgi_script_name(p, in->path, in->path_info));
    if (in->path_info && in->path_info[0]) {
        env_set(e, "PATH_INFO", in->path_info);
        env_set(e, "PATH_TRANSLATED", in->path_translated);
    }
}

static void add_redirect(env_list *e, const qt_cgi_env_in *in, const env_list *base)
{
    if (!in->redirect_url)
        return;
    env_set(e, "REDIRECT_URL", in->redirect_url);
    env_set(e, "REDIRECT_QUERY_STRING", in->redirect_query);
    if (in->redirect_status > 0 && !env_find((env_list *)base, "REDIRECT_STATUS"))
        env_set_int(e, "REDIRECT_STATUS", in->redirect_status);
}

/* Names reach execve sanitised: only [A-Za-z0-9_], no leading digit. */
static char *env_entry(qt_pool *p, const qt_kv *kv)
{
    char *s = qt_psprintf(p, "%s=%s", kv->name, kv->value);
    for (char *c = s; *c != '='; c++)
        if (!isalnum((unsigned char)*c) || (c == s && isdigit((unsigned char)*c)))
            *c = '_';
    return s;
}

void qt_cgi_build_env(qt_pool *p, const qt_cgi_env_in *in, qt_kv **list, char ***envp)
{
    env_list base = { .pool = p }, e = { .pool = p };
    for (const qt_kv *kv = in->subprocess_env; kv; kv = kv->next)
        env_set(&base, kv->name, kv->value);
    for (const qt_kv *kv = base.head; kv; kv = kv->next)
        env_set(&e, kv->name, kv->value);
    add_headers(p, &e, in);
    add_common(p, &e, in, &base);
    add_redirect(&e, in, &base);
    add_cgi(p, &e, in);
    if (list)
        *list = e.head;
    if (!envp)
        return;
    char **out = qt_palloc(p, (e.n + 1) * sizeof *out);
    size_t i = 0;
    for (const qt_kv *kv = e.head; kv; kv = kv->next)
        out[i++] = env_entry(p, kv);
    out[i] = NULL;
    *envp = out;
}

qt_kv *qt_cgi_env_apply(qt_pool *p, const qt_kv *base, const qt_cgi_envop *ops)
{
    env_list e = { .pool = p };
    for (const qt_kv *kv = base; kv; kv = kv->next)
        env_set(&e, kv->name, kv->value);
    for (const qt_cgi_envop *op = ops; op; op = op->next) {
        if (op->value)
            env_set(&e, op->name, op->value);
        else
            env_unset(&e, op->name);
    }
    return e.head;
}

/* ------------------------------------------------------------ paths, argv */

static bool alias_matches(const char *prefix, const char *path, size_t *len)
{
    size_t n = strlen(prefix);
    if (n == 0 || strncmp(prefix, path, n) != 0)
        return false;
    /* "/icons" matches "/icons" and "/icons/x", never "/iconsx". */
    if (prefix[n - 1] != '/' && path[n] != '\0' && path[n] != '/')
        return false;
    *len = n;
    return true;
}

const char *qt_cgi_translate(qt_pool *p, const qt_server *s, const char *path_info)
{
    if (!path_info || !path_info[0])
        return NULL;
    for (size_t i = 0; i < s->nurlmaps; i++) {
        const qt_urlmap *m = &s->urlmaps[i];
        size_t n;
        if (!alias_matches(m->prefix, path_info, &n))
            continue;
        if (m->kind == QT_MAP_REDIRECT)
            return NULL;
        return qt_psprintf(p, "%s%s", m->target, path_info + n);
    }
    return qt_psprintf(p, "%s%s", s->document_root ? s->document_root : "", path_info);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes a word; bad escapes, %00 and %2F stay literal. */
static void argv_decode(char *w)
{
    char *out = w;
    for (char *in = w; *in; in++) {
        int hi, lo;
        if (*in == '%' && (hi = hexval(in[1])) >= 0 && (lo = hexval(in[2])) >= 0
            && (hi << 4 | lo) != 0 && (hi << 4 | lo) != '/') {
            *out++ = (char)(hi << 4 | lo);
            in += 2;
        } else {
            *out++ = *in;
        }
    }
    *out = '\0';
}

/* Apache passes ISINDEX words shell-escaped (ap_escape_shell_cmd). */
static char *shell_escape(qt_pool *p, const char *w)
{
    char *out = qt_palloc(p, strlen(w) * 2 + 1), *o = out;
    for (; *w; w++) {
        if (strchr("&;`'\"|*?~<>^()[]{}$\\\n", *w) || (unsigned char)*w == 0xff)
            *o++ = '\\';
        *o++ = *w;
    }
    *o = '\0';
    return out;
}

#define QT_CGI_MAX_ARGV 512

char **qt_cgi_argv(qt_pool *p, const char *script, const char *args)
{
    size_t words = 1;
    if (args && args[0] && !strchr(args, '='))
        for (const char *c = args; *c; c++)
            words += *c == '+';
    if (!args || !args[0] || strchr(args, '=') || words > QT_CGI_MAX_ARGV)
        words = 0;
    char **argv = qt_palloc(p, (words + 2) * sizeof *argv);
    argv[0] = qt_pstrdup(p, script);
    char *copy = words ? qt_pstrdup(p, args) : NULL, *save = copy;
    for (size_t i = 0; i < words; i++) {
        char *w = strsep(&save, "+");
        argv_decode(w);
        argv[i + 1] = shell_escape(p, w);
    }
    argv[words + 1] = NULL;
    return argv;
}

bool qt_cgi_is_nph(const char *filename)
{
    const char *base = strrchr(filename, '/');
    return strncmp(base ? base + 1 : filename, "nph-", 4) == 0;
}

/* ------------------------------------------------------------ response head */

static void head_add(qt_pool *p, qt_cgi_head *h, const char *name, const char *value)
{
    qt_kv **pp = &h->headers;
    for (; *pp; pp = &(*pp)->next) {
        /* Set-Cookie values may contain ", ": never merged. */
        if (strcasecmp((*pp)->name, name) == 0 && strcasecmp(name, "Set-Cookie") != 0) {
            (*pp)->value = qt_psprintf(p, "%s, %s", (*pp)->value, value);
            return;
        }
    }
    qt_kv *kv = qt_pcalloc(p, sizeof *kv);
    kv->name = name;
    kv->value = value;
    *pp = kv;
}

static const char *lower_type(qt_pool *p, const char *v)
{
    char *t = qt_pstrdup(p, v);
    for (char *c = t; *c && *c != ';'; c++)
        *c = (char)tolower((unsigned char)*c);
    return t;
}

/* "NNN reason": the reason is kept verbatim only when one is given. */
static int head_status(qt_pool *p, qt_cgi_head *h, const char *v)
{
    if (!isdigit((unsigned char)v[0]) || !isdigit((unsigned char)v[1])
        || !isdigit((unsigned char)v[2]) || (v[3] && v[3] != ' ' && v[3] != '\t'))
        return QT_CGI_HEAD_STATUS;
    int code = (v[0] - '0') * 100 + (v[1] - '0') * 10 + (v[2] - '0');
    if (code < 100 || code > 599)
        return QT_CGI_HEAD_STATUS;
    h->status = code;
    const char *reason = v + 3;
    while (*reason == ' ' || *reason == '\t')
        reason++;
    h->status_line = *reason ? qt_psprintf(p, "%d %s", code, reason) : NULL;
    return QT_CGI_HEAD_MORE;
}

static int head_line(qt_pool *p, qt_cgi_head *h, const char *line, size_t n)
{
    const char *colon = memchr(line, ':', n);
    if (!colon || colon == line) {
        h->bad = qt_pstrndup(p, line, n < 30 ? n : 30);
        return QT_CGI_HEAD_BAD;
    }
    const char *name = qt_pstrndup(p, line, (size_t)(colon - line));
    const char *v = colon + 1;
    while (v < line + n && (*v == ' ' || *v == '\t'))
        v++;
    const char *value = qt_pstrndup(p, v, (size_t)(line + n - v));
    h->nlines++;
    if (strcasecmp(name, "Status") == 0) {
        int rc = head_status(p, h, value);
        if (rc != QT_CGI_HEAD_MORE)
            h->bad = qt_pstrndup(p, value, strnlen(value, 30));
        return rc;
    }
    if (strcasecmp(name, "Content-Type") == 0)
        h->content_type = lower_type(p, value);
    else if (strcasecmp(name, "Location") == 0)
        h->location = value;
    else if (strcasecmp(name, "Content-Length") != 0
             && strcasecmp(name, "Transfer-Encoding") != 0)
        head_add(p, h, name, value);
    return QT_CGI_HEAD_MORE;
}

int qt_cgi_head_parse(qt_pool *p, qt_cgi_head *h, const char *buf, size_t len,
                      size_t *used)
{
    size_t pos = 0;
    int rc = QT_CGI_HEAD_MORE;
    while (rc == QT_CGI_HEAD_MORE) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        if (end - pos >= QT_CGI_MAX_LINE) {
            rc = QT_CGI_HEAD_LONG;
            break;
        }
        if (!nl)
            break;
        size_t n = end - pos;
        while (n > 0 && (buf[pos + n - 1] == '\r' || buf[pos + n - 1] == ' '
                         || buf[pos + n - 1] == '\t'))
            n--;
        if (n == 0)
            rc = QT_CGI_HEAD_DONE;
        else
            rc = head_line(p, h, buf + pos, n);
        pos = end + 1;
    }
    *used = pos;
    return rc;
}
