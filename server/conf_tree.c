/*
 * httpd.conf syntax -> tree of nodes.
 *
 * The text is read one logical line at a time ('\' before the newline joins
 * the next physical line).  A line is blank, a comment ('#' as the first
 * non-blank character: a '#' later on is just more arguments, as in Apache),
 * a section opener "<Name args>", a section closer "</Name>", or a directive
 * "Name args".  Open sections are kept on a bounded stack so a hostile file
 * cannot exhaust the C stack.
 */
#include "conf_tree.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Deeper nesting than this is certainly a mistake (or an attack). */
#define QT_CONF_MAX_DEPTH 64
/* Apache accepts about 16 MiB per joined line; whole files are capped too. */
#define QT_CONF_MAX_FILE (64u * 1024 * 1024)

typedef struct {
    qt_conf_node *node;      /* the open section (NULL for the top level) */
    qt_conf_node **tail;     /* where the next child is linked */
} qt_open_section;

typedef struct {
    qt_pool *pool;
    const char *file;
    const char *pos, *end;
    unsigned line;           /* physical line the cursor is on */
    qt_open_section stack[QT_CONF_MAX_DEPTH + 1];
    int depth;
    char *err;
    size_t errlen;
} qt_parser;

__attribute__((format(printf, 3, 4)))
static void parse_error(qt_parser *ps, unsigned line, const char *fmt, ...)
{
    int n = snprintf(ps->err, ps->errlen, "%s:%u: ", ps->file, line);
    va_list ap;

    if (n < 0 || (size_t)n >= ps->errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/*
 * Reads the next logical line into a pool string (continuations joined,
 * newline and trailing CR removed).  Returns NULL at the end of the text.
 */
static char *next_line(qt_parser *ps, unsigned *first_line)
{
    size_t cap = 0, len = 0;
    char *out = NULL;

    if (ps->pos >= ps->end)
        return NULL;
    *first_line = ps->line;
    for (;;) {
        const char *nl = memchr(ps->pos, '\n', (size_t)(ps->end - ps->pos));
        const char *stop = nl ? nl : ps->end;
        size_t n = (size_t)(stop - ps->pos);
        bool cont;

        if (n > 0 && stop[-1] == '\r')
            n--;
        cont = nl != NULL && n > 0 && ps->pos[n - 1] == '\\';
        if (cont)
            n--;
        if (len + n + 1 > cap) {
            char *grown;
            cap = (len + n + 1) * 2;
            grown = qt_palloc(ps->pool, cap);
            if (len)
                memcpy(grown, out, len);
            out = grown;
        }
        memcpy(out + len, ps->pos, n);
        len += n;
        ps->pos = nl ? nl + 1 : ps->end;
        ps->line++;
        if (!cont || ps->pos >= ps->end)
            break;
    }
    out[len] = '\0';
    return out;
}

static char *trim(char *s)
{
    char *e;

    while (is_blank(*s))
        s++;
    e = s + strlen(s);
    while (e > s && is_blank(e[-1]))
        e--;
    *e = '\0';
    return s;
}

static qt_conf_node *new_node(qt_parser *ps, const char *name, size_t namelen,
                              const char *args, unsigned line)
{
    qt_conf_node *n = qt_pcalloc(ps->pool, sizeof *n);

    n->name = qt_pstrndup(ps->pool, name, namelen);
    n->args = qt_pstrdup(ps->pool, trim((char *)args));
    n->file = ps->file;
    n->line = line;
    return n;
}

static void append(qt_parser *ps, qt_conf_node *n)
{
    qt_open_section *top = &ps->stack[ps->depth];

    *top->tail = n;
    top->tail = &n->next;
}

static size_t word_len(const char *s)
{
    size_t n = 0;

    while (s[n] && !is_blank(s[n]) && s[n] != '>')
        n++;
    return n;
}

static bool close_section(qt_parser *ps, char *body, unsigned line)
{
    char *name = trim(body);
    size_t len = strlen(name);
    qt_conf_node *open;

    if (len == 0 || name[len - 1] != '>') {
        parse_error(ps, line, "</%s directive missing closing '>'", name);
        return false;
    }
    name[len - 1] = '\0';
    name = trim(name);
    if (ps->depth == 0) {
        parse_error(ps, line, "</%s> without matching <%s> section", name, name);
        return false;
    }
    open = ps->stack[ps->depth].node;
    if (strcasecmp(open->name, name) != 0) {
        parse_error(ps, line, "</%s> without matching <%s> section (expected </%s>"
                    " to close the section opened at line %u)",
                    name, name, open->name, open->line);
        return false;
    }
    ps->depth--;
    return true;
}

static bool open_section(qt_parser *ps, char *body, unsigned line)
{
    size_t len = strlen(body), nlen = word_len(body);
    qt_conf_node *n;

    if (nlen == 0) {
        parse_error(ps, line, "'<' must be followed by a section name");
        return false;
    }
    if (body[len - 1] != '>') {
        parse_error(ps, line, "<%.*s> directive missing closing '>'", (int)nlen, body);
        return false;
    }
    if (ps->depth == QT_CONF_MAX_DEPTH) {
        parse_error(ps, line, "sections nested more than %d deep", QT_CONF_MAX_DEPTH);
        return false;
    }
    body[len - 1] = '\0';
    n = new_node(ps, body, nlen, body + nlen, line);
    n->is_section = true;
    append(ps, n);
    ps->depth++;
    ps->stack[ps->depth].node = n;
    ps->stack[ps->depth].tail = &n->children;
    return true;
}

static bool parse_line(qt_parser *ps, char *raw, unsigned line)
{
    char *s = trim(raw);
    size_t nlen;

    if (*s == '\0' || *s == '#')
        return true;
    if (s[0] == '<' && s[1] == '/')
        return close_section(ps, s + 2, line);
    if (s[0] == '<')
        return open_section(ps, s + 1, line);
    nlen = 0;
    while (s[nlen] && !is_blank(s[nlen]))
        nlen++;
    append(ps, new_node(ps, s, nlen, s + nlen, line));
    return true;
}

qt_conf_node *qt_conf_parse_text(qt_pool *p, const char *file,
                                 const char *text, size_t len,
                                 char *err, size_t errlen)
{
    qt_parser *ps = qt_pcalloc(p, sizeof *ps);
    qt_conf_node *root = NULL;
    unsigned line;
    char *s;

    ps->pool = p;
    ps->file = qt_pstrdup(p, file);
    ps->pos = text;
    ps->end = text + len;
    ps->line = 1;
    ps->err = err;
    ps->errlen = errlen;
    ps->stack[0].tail = &root;
    if (errlen)
        err[0] = '\0';
    while ((s = next_line(ps, &line)) != NULL) {
        if (!parse_line(ps, s, line))
            return NULL;
    }
    if (ps->depth > 0) {
        qt_conf_node *open = ps->stack[ps->depth].node;
        parse_error(ps, open->line, "<%s> was not closed", open->name);
        return NULL;
    }
    return root;
}

/* Reads the whole file into a pool buffer; -1 with errno on failure. */
static int slurp(qt_pool *p, const char *path, char **text, size_t *len)
{
    struct stat st;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = -1;

    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0)
        goto cleanup;
    if (S_ISDIR(st.st_mode) || (uint64_t)st.st_size > QT_CONF_MAX_FILE) {
        errno = S_ISDIR(st.st_mode) ? EISDIR : EFBIG;
        goto cleanup;
    }
    *text = qt_palloc(p, (size_t)st.st_size + 1);
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, *text + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;     /* file shrank under us: parse what we have */
        got += (size_t)n;
    }
    (*text)[got] = '\0';
    *len = got;
    rc = 0;
cleanup:
    {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return rc;
}

qt_conf_node *qt_conf_parse_file(qt_pool *p, const char *path,
                                 char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;

    if (slurp(p, path, &text, &len) < 0) {
        snprintf(err, errlen, "%s: cannot read configuration file: %s",
                 path, strerror(errno));
        return NULL;
    }
    return qt_conf_parse_text(p, path, text, len, err, errlen);
}

/*
 * Copies one quoted word starting after the opening quote q into out.
 * Returns the position after the closing quote, or NULL if there is none.
 */
static const char *quoted_word(const char *s, char q, char *out)
{
    while (*s && *s != q) {
        if (*s == '\\' && (s[1] == q || s[1] == '\\'))
            s++;
        *out++ = *s++;
    }
    *out = '\0';
    return *s == q ? s + 1 : NULL;
}

int qt_conf_split_args(qt_pool *p, const char *args, char ***argv,
                       char *err, size_t errlen)
{
    size_t len = strlen(args);
    char **v = qt_palloc(p, (len / 2 + 2) * sizeof *v);
    /* All words share one buffer: each is at most its source text plus NUL. */
    char *word = qt_palloc(p, len * 2 + 2);
    int n = 0;
    const char *s = args;

    for (;;) {
        while (is_blank(*s) || *s == '\n')
            s++;
        if (*s == '\0')
            break;
        if (*s == '"' || *s == '\'') {
            s = quoted_word(s + 1, *s, word);
            if (s == NULL) {
                snprintf(err, errlen, "unterminated quoted string in '%.200s'", args);
                return -1;
            }
        } else {
            size_t w = 0;
            while (*s && !is_blank(*s) && *s != '\n')
                word[w++] = *s++;
            word[w] = '\0';
        }
        v[n++] = word;
        word += strlen(word) + 1;
    }
    v[n] = NULL;
    *argv = v;
    return n;
}

/* Appends n bytes to a growing pool string (*out of *len, capacity *cap). */
static void grow_append(qt_pool *p, char **out, size_t *len, size_t *cap,
                        const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t ncap = (*len + n + 1) * 2;
        char *grown = qt_palloc(p, ncap);
        memcpy(grown, *out, *len);
        *out = grown;
        *cap = ncap;
    }
    memcpy(*out + *len, s, n);
    *len += n;
    (*out)[*len] = '\0';
}

char *qt_conf_expand_vars(qt_pool *p, const char *s,
                          const char *(*lookup)(void *ctx, const char *name),
                          void (*warn)(void *ctx, const char *name),
                          void *ctx)
{
    size_t len = 0, cap = strlen(s) + 1;
    char *out = qt_palloc(p, cap);

    out[0] = '\0';
    while (*s) {
        const char *open = strstr(s, "${");
        const char *close = open ? strchr(open + 2, '}') : NULL;
        const char *value = NULL;
        char *name;

        if (open == NULL || close == NULL) {
            grow_append(p, &out, &len, &cap, s, strlen(s));
            break;
        }
        grow_append(p, &out, &len, &cap, s, (size_t)(open - s));
        name = qt_pstrndup(p, open + 2, (size_t)(close - open - 2));
        /* "${a:b}" is another module's syntax (as in Apache): not ours. */
        if (*name && !strchr(name, ':')) {
            value = lookup ? lookup(ctx, name) : NULL;
            if (value == NULL && warn)
                warn(ctx, name);
        }
        if (value)
            grow_append(p, &out, &len, &cap, value, strlen(value));
        else
            grow_append(p, &out, &len, &cap, open, (size_t)(close + 1 - open));
        s = close + 1;
    }
    return out;
}
