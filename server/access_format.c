/*
 * Apache LogFormat: a format string is compiled once, at config time, into
 * an array of tokens, each holding the function that renders it.  Rendering
 * (once per request, on the hot path) is then a loop of indirect calls that
 * append straight into the caller's buffer: no parsing, no allocation
 * beyond the buffer growing.
 */
#include "access_format.h"

#include <unistd.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef struct token token;
typedef void render_fn(const token *t, const qt_access_values *v, qt_buf *out);

struct token {
    render_fn *render;
    const char *arg;        /* literal text, or the {argument}; NUL-terminated */
    size_t len;
    int *conds;             /* %400,501{..}x: print only for these statuses */
    unsigned nconds;
    bool negate;            /* %!200,304..: print only for other statuses */
    bool end;               /* %{end:...}t: the time the request finished */
};

struct qt_access_format {
    size_t n;
    token tok[];
};

#define MAX_CONDS 16

/* ------------------------------------------------------------ output */

static void put(qt_buf *out, const char *s, size_t n)
{
    qt_buf_append(out, s, n);
}

static void put_dash(qt_buf *out)
{
    put(out, "-", 1);
}

/* Writes v in decimal, zero-padded to at least width digits. */
static void put_u64(qt_buf *out, uint64_t v, int width)
{
    char tmp[24];
    int i = (int)sizeof tmp;

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
        width--;
    } while (v != 0 || width > 0);
    put(out, tmp + i, sizeof tmp - (size_t)i);
}

static void put_i64(qt_buf *out, int64_t v)
{
    if (v < 0) {
        put(out, "-", 1);
        put_u64(out, (uint64_t)0 - (uint64_t)v, 0);
    } else {
        put_u64(out, (uint64_t)v, 0);
    }
}

static bool needs_escape(unsigned char c)
{
    return c < 0x20 || c >= 0x7f || c == '"' || c == '\\';
}

/* One byte as Apache's log escaping writes it: \n \t ..., \" \\, else \xhh. */
static void put_escape(qt_buf *out, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    char e[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };

    switch (c) {
    case '\b': put(out, "\\b", 2); return;
    case '\n': put(out, "\\n", 2); return;
    case '\r': put(out, "\\r", 2); return;
    case '\t': put(out, "\\t", 2); return;
    case '\v': put(out, "\\v", 2); return;
    case '"':  put(out, "\\\"", 2); return;
    case '\\': put(out, "\\\\", 2); return;
    default:   put(out, e, 4); return;
    }
}

/*
 * Request-derived text goes through here so that a client cannot forge
 * log lines or fields (CVE-2003-0020-style terminal escapes, fake quotes).
 * Runs of clean bytes are appended in one call.  NULL prints "-".
 */
static void put_escaped(qt_buf *out, const char *s)
{
    const char *run;

    if (s == NULL) {
        put_dash(out);
        return;
    }
    for (run = s; *s; s++) {
        if (needs_escape((unsigned char)*s)) {
            put(out, run, (size_t)(s - run));
            put_escape(out, (unsigned char)*s);
            run = s + 1;
        }
    }
    put(out, run, (size_t)(s - run));
}

/* ----------------------------------------------------------- renderers */

static void r_literal(const token *t, const qt_access_values *v, qt_buf *out)
{
    put(out, t->arg, t->len);
}

static void r_dash(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_dash(out);
}

static void r_remote_ip(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_escaped(out, v->remote_ip);
}

/* Apache writes an empty user name as "" so the field count stays right. */
static void r_user(const token *t, const qt_access_values *v, qt_buf *out)
{
    if (v->remote_user != NULL && v->remote_user[0] == '\0')
        put(out, "\"\"", 2);
    else
        put_escaped(out, v->remote_user);
}

static void r_request(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_escaped(out, v->request_line);
}

static void r_method(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_escaped(out, v->method);
}

static void r_path(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_escaped(out, v->path);
}

/* %q prints "?query", or nothing at all when there is no query. */
static void r_query(const token *t, const qt_access_values *v, qt_buf *out)
{
    if (v->query == NULL)
        return;
    put(out, "?", 1);
    put_escaped(out, v->query);
}

static void r_protocol(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_escaped(out, v->protocol);
}

static void put_status(qt_buf *out, int status)
{
    if (status <= 0)
        put_dash(out);
    else
        put_u64(out, (uint64_t)status, 0);
}

static void r_status(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_status(out, v->status);
}

static void r_orig_status(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_status(out, v->orig_status);
}

/* %b is CLF: no body is "-", not 0. */
static void r_bytes_clf(const token *t, const qt_access_values *v, qt_buf *out)
{
    if (v->bytes == 0)
        put_dash(out);
    else
        put_u64(out, v->bytes, 0);
}

static void r_bytes(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_u64(out, v->bytes, 0);
}

static void r_dur_us(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_i64(out, v->duration_us);
}

static void r_dur_ms(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_i64(out, v->duration_us / 1000);
}

static void r_dur_s(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_i64(out, v->duration_us / 1000000);
}

static void r_server(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_escaped(out, v->server_name);
}

static void r_port(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_i64(out, v->local_port);
}

static void r_pid(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_i64(out, v->pid ? v->pid : (long)getpid());   /* 0: look it up only when logged */
}

static void r_filename(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_escaped(out, v->filename);
}

static void put_lookup(qt_buf *out, const char *(*fn)(const void *, const char *),
                       const qt_access_values *v, const char *name)
{
    put_escaped(out, fn != NULL ? fn(v->ctx, name) : NULL);
}

static void r_header_in(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_lookup(out, v->header_in, v, t->arg);
}

static void r_header_out(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_lookup(out, v->header_out, v, t->arg);
}

static void r_env(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_lookup(out, v->env, v, t->arg);
}

static void r_note(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_lookup(out, v->note, v, t->arg);
}

/* ------------------------------------------------------------- time */

/* The request start, or its end for %{end:...}t, in microseconds. */
static int64_t token_time_us(const token *t, const qt_access_values *v)
{
    int64_t us = (int64_t)v->time_sec * 1000000 + v->time_usec;

    return t->end ? us + v->duration_us : us;
}

static void local_tm(const token *t, const qt_access_values *v, struct tm *tm)
{
    time_t sec = (time_t)(token_time_us(t, v) / 1000000);

    if (localtime_r(&sec, tm) == NULL)
        memset(tm, 0, sizeof *tm);
}

/* CLF time "[10/Oct/2000:13:55:36 -0700]", with English month names
 * whatever the locale. */
static void r_time_clf(const token *t, const qt_access_values *v, qt_buf *out)
{
    static const char months[12][4] = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun",
        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
    };
    struct tm tm;
    long off;

    local_tm(t, v, &tm);
    off = tm.tm_gmtoff / 60;
    put(out, "[", 1);
    put_u64(out, (uint64_t)tm.tm_mday, 2);
    put(out, "/", 1);
    put(out, months[tm.tm_mon], 3);
    put(out, "/", 1);
    put_u64(out, (uint64_t)(tm.tm_year + 1900), 4);
    put(out, ":", 1);
    put_u64(out, (uint64_t)tm.tm_hour, 2);
    put(out, ":", 1);
    put_u64(out, (uint64_t)tm.tm_min, 2);
    put(out, ":", 1);
    put_u64(out, (uint64_t)tm.tm_sec, 2);
    put(out, off < 0 ? " -" : " +", 2);
    off = off < 0 ? -off : off;
    put_u64(out, (uint64_t)(off / 60 * 100 + off % 60), 4);
    put(out, "]", 1);
}

static void r_time_strftime(const token *t, const qt_access_values *v, qt_buf *out)
{
    char tmp[256];
    struct tm tm;
    size_t n;

    local_tm(t, v, &tm);
    n = strftime(tmp, sizeof tmp, t->arg, &tm);
    put(out, tmp, n);
}

static void r_time_sec(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_i64(out, token_time_us(t, v) / 1000000);
}

static void r_time_msec(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_i64(out, token_time_us(t, v) / 1000);
}

static void r_time_usec(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_i64(out, token_time_us(t, v));
}

static void r_time_msec_frac(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_u64(out, (uint64_t)(token_time_us(t, v) % 1000000 / 1000), 3);
}

static void r_time_usec_frac(const token *t, const qt_access_values *v, qt_buf *out)
{
    put_u64(out, (uint64_t)(token_time_us(t, v) % 1000000), 6);
}

/* ------------------------------------------------------------ compiling */

static const struct {
    char letter;
    bool needs_arg;
    render_fn *render;
} letters[] = {
    { 'h', false, r_remote_ip },  { 'a', false, r_remote_ip },
    { 'l', false, r_dash },       { 'u', false, r_user },
    { 't', false, r_time_clf },   { 'r', false, r_request },
    { 'm', false, r_method },     { 'U', false, r_path },
    { 'q', false, r_query },      { 'H', false, r_protocol },
    { 's', false, r_status },     { 'b', false, r_bytes_clf },
    { 'B', false, r_bytes },      { 'D', false, r_dur_us },
    { 'T', false, r_dur_s },      { 'i', true,  r_header_in },
    { 'o', true,  r_header_out }, { 'e', true,  r_env },
    { 'x', true,  r_note },       { 'v', false, r_server },
    { 'V', false, r_server },     { 'p', false, r_port },
    { 'P', false, r_pid },        { 'f', false, r_filename },
};

static const struct {
    const char *name;
    render_fn *render;
} time_formats[] = {
    { "sec", r_time_sec },             { "msec", r_time_msec },
    { "usec", r_time_usec },           { "msec_frac", r_time_msec_frac },
    { "usec_frac", r_time_usec_frac },
};

static bool fail(char *err, size_t errlen, const char *msg, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes the compile error into the caller's buffer; always false. */
static bool fail(char *err, size_t errlen, const char *msg, ...)
{
    va_list ap;

    va_start(ap, msg);
    vsnprintf(err, errlen, msg, ap);
    va_end(ap);
    return false;
}

/* %{fmt}t: begin:/end: prefix, then a named unit or a strftime format. */
static void setup_time(token *t)
{
    if (strncmp(t->arg, "begin:", 6) == 0) {
        t->arg += 6;
    } else if (strncmp(t->arg, "end:", 4) == 0) {
        t->arg += 4;
        t->end = true;
    }
    t->render = r_time_strftime;
    for (size_t i = 0; i < sizeof time_formats / sizeof time_formats[0]; i++)
        if (strcmp(t->arg, time_formats[i].name) == 0)
            t->render = time_formats[i].render;
}

/* %{s}T, %{ms}T, %{us}T. */
static bool setup_duration(token *t, char *err, size_t errlen)
{
    if (strcmp(t->arg, "s") == 0)
        t->render = r_dur_s;
    else if (strcmp(t->arg, "ms") == 0)
        t->render = r_dur_ms;
    else if (strcmp(t->arg, "us") == 0)
        t->render = r_dur_us;
    else
        return fail(err, errlen, "unknown unit %%{%s}T (use s, ms or us)", t->arg);
    return true;
}

/* Fills t->render for the conversion letter c, given the modifiers read. */
static bool setup_token(token *t, char c, bool orig, char *err, size_t errlen)
{
    size_t i = 0;

    while (i < sizeof letters / sizeof letters[0] && letters[i].letter != c)
        i++;
    if (i == sizeof letters / sizeof letters[0])
        return fail(err, errlen, "unknown log format token %%%c", c);
    if (letters[i].needs_arg && t->arg == NULL)
        return fail(err, errlen, "log format token %%%c needs a {name} argument", c);
    t->render = letters[i].render;
    if (c == 's' && orig)
        t->render = r_orig_status;
    if (c == 't' && t->arg != NULL)
        setup_time(t);
    if (c == 'T' && t->arg != NULL)
        return setup_duration(t, err, errlen);
    return true;
}

/* Reads a status list "400,501" of a conditional token. */
static bool read_cond(qt_pool *p, const char **sp, token *t, char *err, size_t errlen)
{
    const char *s = *sp;
    int st = 0;

    while (*s >= '0' && *s <= '9' && st < 1000)
        st = st * 10 + (*s++ - '0');
    if (st < 100 || st > 999 || t->nconds == MAX_CONDS)
        return fail(err, errlen, "bad status condition in log format near '%c'", **sp);
    if (t->conds == NULL)
        t->conds = qt_palloc(p, MAX_CONDS * sizeof *t->conds);
    t->conds[t->nconds++] = st;
    *sp = s;
    return true;
}

/* Reads "{arg}" at *sp ('{' is current). */
static bool read_arg(qt_pool *p, const char **sp, token *t, char *err, size_t errlen)
{
    const char *end = strchr(*sp, '}');

    if (end == NULL)
        return fail(err, errlen, "unterminated %%{ in log format");
    t->len = (size_t)(end - (*sp + 1));
    t->arg = qt_pstrndup(p, *sp + 1, t->len);
    *sp = end + 1;
    return true;
}

/* Parses one "%[modifiers][{arg}]X" item; *sp points just past the '%'. */
static bool parse_item(qt_pool *p, const char **sp, token *t, char *err, size_t errlen)
{
    const char *s = *sp;
    bool orig = false, ok = true;

    while (ok) {
        char c = *s;
        if (c == '\0')
            return fail(err, errlen, "log format ends inside a %% item");
        if (c == '!' || c == '<' || c == '>' || c == ',') {
            if (c == '!')
                t->negate = true;
            else if (c != ',')
                orig = c == '<';
            s++;
        } else if (c >= '0' && c <= '9') {
            ok = read_cond(p, &s, t, err, errlen);
        } else if (c == '{' && t->arg == NULL) {
            ok = read_arg(p, &s, t, err, errlen);
        } else {
            ok = setup_token(t, c, orig, err, errlen);
            s++;
            break;
        }
    }
    *sp = s;
    return ok;
}

/* "\n" and "\t" written as two characters in the format, plus \" and \\. */
static char literal_char(const char **sp)
{
    const char *s = *sp;
    char c = *s++;

    if (c == '\\' && *s != '\0' && strchr("nt\"\\", *s) != NULL) {
        c = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s;
        s++;
    }
    *sp = s;
    return c;
}

static void flush_literal(qt_access_format *f, char *lit, size_t *start, size_t end)
{
    token *t;

    if (end == *start)
        return;
    t = &f->tok[f->n++];
    memset(t, 0, sizeof *t);
    t->render = r_literal;
    t->arg = lit + *start;
    t->len = end - *start;
    *start = end;
}

/* The two formats every Apache config can name without defining them. */
static const char *expand_nickname(const char *fmt)
{
    if (strcmp(fmt, "common") == 0)
        return "%h %l %u %t \"%r\" %>s %b";
    if (strcmp(fmt, "combined") == 0)
        return "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"";
    return fmt;
}

qt_access_format *qt_access_format_compile(qt_pool *p, const char *fmt,
                                           char *err, size_t errlen)
{
    size_t len, lit_start = 0, lit_end = 0;
    qt_access_format *f;
    char *lit;

    fmt = expand_nickname(fmt);
    len = strlen(fmt);
    /* Every token consumes at least one format byte: len bounds the count. */
    f = qt_palloc(p, sizeof *f + (len + 1) * sizeof f->tok[0]);
    f->n = 0;
    lit = qt_palloc(p, len + 1);
    while (*fmt) {
        if (fmt[0] == '%' && fmt[1] == '%') {
            lit[lit_end++] = '%';
            fmt += 2;
        } else if (fmt[0] == '%') {
            token *t;
            flush_literal(f, lit, &lit_start, lit_end);
            t = &f->tok[f->n++];
            memset(t, 0, sizeof *t);
            fmt++;
            if (!parse_item(p, &fmt, t, err, errlen))
                return NULL;
        } else {
            lit[lit_end++] = literal_char(&fmt);
        }
    }
    flush_literal(f, lit, &lit_start, lit_end);
    return f;
}

/* ------------------------------------------------------------ rendering */

static bool cond_allows(const token *t, int status)
{
    bool in = false;

    for (unsigned i = 0; i < t->nconds; i++)
        in |= t->conds[i] == status;
    return t->nconds == 0 || in != t->negate;
}

void qt_access_format_render(const qt_access_format *f, const qt_access_values *v,
                             qt_buf *out)
{
    for (size_t i = 0; i < f->n; i++) {
        const token *t = &f->tok[i];
        if (cond_allows(t, v->status))
            t->render(t, v, out);
        else
            put_dash(out);
    }
    put(out, "\n", 1);
}
