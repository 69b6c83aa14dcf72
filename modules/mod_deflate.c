/*
 * mod_deflate: gzip as an output filter, with mod_deflate's directives.
 *
 *     LoadModule deflate_module modules/mod_deflate.so
 *     AddOutputFilterByType DEFLATE text/html text/plain text/css
 *     SetOutputFilter DEFLATE                 (everything in scope)
 *     DeflateCompressionLevel 6               (1..9; zlib's default 6)
 *     DeflatePrecompressed On                 (serve file.gz; default Off)
 *
 * Rules, decided once per response when its head is built (start):
 *  - The resource is "compressible" when a filter directive covers its
 *    type; every compressible response carries Vary: Accept-Encoding,
 *    compressed or not, because its representation depends on that header.
 *  - Compress only when Accept-Encoding allows gzip (q-values honoured),
 *    the response has no Content-Encoding yet, it is not 204/304/206, and
 *    its length is unknown or at least MIN_LENGTH bytes (below that, gzip's
 *    20 bytes of framing eat the gain).
 *  - Ranges: a 206 is always cut from the identity body, never compressed,
 *    and file.gz is not substituted when the request has Range.  So a
 *    compressed body is always whole, and ranges always count identity
 *    bytes (Apache instead cuts ranges from the encoded body).
 *  - The compressed variant's ETag gets "-gzip" inside the quotes; a
 *    conditional request naming it is matched (fixups add the plain tag to
 *    If-None-Match/If-Match) and its 304 carries the gzip ETag again.
 *  - HEAD gets the same headers as GET (Content-Encoding, no length), and
 *    no compression work.
 *  - Content-Length is dropped; HTTP/1.1 framing becomes chunked.  The
 *    handler's qt_flush() becomes a zlib sync flush, so streaming CGI output
 *    reaches the client chunk by chunk; nothing is buffered whole.
 *
 * Precompressed files (like nginx gzip_static): with DeflatePrecompressed
 * On, a static GET/HEAD for file, from a client accepting gzip, is answered
 * from file.gz when that is a regular file not older than file: same
 * Content-Type as file, Content-Encoding: gzip, Vary, and file.gz's own
 * ETag and Last-Modified.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "deflate.h"
#include "mime.h"
#include "module.h"
#include "request.h"

#define MIN_LENGTH 256

typedef struct deflate_dir_conf {
    const char **types;          /* AddOutputFilterByType DEFLATE ... (lower-case) */
    size_t ntypes;
    int set_filter;              /* SetOutputFilter DEFLATE: -1 unset, 0, 1 */
    int precompressed;           /* -1 unset */
    int level;                   /* 0 unset */
} deflate_dir_conf;

extern const qt_module deflate_module;

/* ------------------------------------------------------- confs */

static void *create_dir(qt_pool *p)
{
    deflate_dir_conf *dc = qt_pcalloc(p, sizeof(*dc));
    dc->set_filter = dc->precompressed = -1;
    return dc;
}

static void *merge_dir(qt_pool *p, const void *basev, const void *addv)
{
    const deflate_dir_conf *base = basev, *add = addv;
    deflate_dir_conf *m = qt_pcalloc(p, sizeof(*m));
    /* AddOutputFilterByType accumulates down the tree, as in Apache. */
    m->ntypes = base->ntypes + add->ntypes;
    m->types = qt_palloc(p, (m->ntypes + 1) * sizeof(*m->types));
    if (base->ntypes)
        memcpy(m->types, base->types, base->ntypes * sizeof(*m->types));
    if (add->ntypes)
        memcpy(m->types + base->ntypes, add->types, add->ntypes * sizeof(*m->types));
    m->set_filter = add->set_filter >= 0 ? add->set_filter : base->set_filter;
    m->precompressed = add->precompressed >= 0 ? add->precompressed : base->precompressed;
    m->level = add->level ? add->level : base->level;
    return m;
}

static const char *check_filter(const char *name)
{
    return strcasecmp(name, "DEFLATE") == 0 ? NULL : "only the DEFLATE filter exists";
}

static const char *add_by_type(qt_cmd *cmd, int argc, char **argv)
{
    deflate_dir_conf *dc = cmd->dir_conf;
    const char *why = check_filter(argv[0]);
    if (why)
        return why;
    if (argc < 2)
        return "needs a filter name and at least one MIME type";
    const char **t = qt_palloc(cmd->pool, (dc->ntypes + (size_t)argc) * sizeof(*t));
    if (dc->ntypes)
        memcpy(t, dc->types, dc->ntypes * sizeof(*t));
    for (int i = 1; i < argc; i++) {
        char *low = qt_pstrdup(cmd->pool, argv[i]);
        for (char *q = low; *q; q++)
            *q = (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q);
        t[dc->ntypes++] = low;
    }
    dc->types = t;
    return NULL;
}

static const char *set_output(qt_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    deflate_dir_conf *dc = cmd->dir_conf;
    if (strcasecmp(argv[0], "none") == 0) {
        dc->set_filter = 0;
        return NULL;
    }
    const char *why = check_filter(argv[0]);
    if (!why)
        dc->set_filter = 1;
    return why;
}

static const char *set_level(qt_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    char *end;
    long v = strtol(argv[0], &end, 10);
    if (*end || v < 1 || v > 9)
        return "must be a number from 1 to 9";
    ((deflate_dir_conf *)cmd->dir_conf)->level = (int)v;
    return NULL;
}

static const char *set_precompressed(qt_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    ((deflate_dir_conf *)cmd->dir_conf)->precompressed = argv[0][0] == '1';
    return NULL;
}

/* ------------------------------------------------------- decisions */

/* The type without parameters, compared case-insensitively. */
static bool type_listed(const deflate_dir_conf *dc, const char *type)
{
    if (!type)
        return false;
    size_t n = strcspn(type, "; \t");
    for (size_t i = 0; i < dc->ntypes; i++)
        if (strlen(dc->types[i]) == n && strncasecmp(dc->types[i], type, n) == 0)
            return true;
    return false;
}

/* A 304 has no Content-Type: judge by the type the file would have. */
static const char *resource_type(const qt_request *r)
{
    if (r->content_type || !r->filename || !r->dir)
        return r->content_type;
    if (r->dir->force_type)
        return r->dir->force_type;
    return qt_mime_type_for(r->cfg->mime, r->dir->types_by_ext, r->filename);
}

static bool compressible(const qt_request *r, const deflate_dir_conf *dc)
{
    return dc->set_filter == 1 || (dc->set_filter != 0 && type_listed(dc, resource_type(r)));
}

static void add_vary(qt_request *r)
{
    const char *v = qt_header_out(r, "Vary");
    if (!v) {
        qt_header_set(r, "Vary", "Accept-Encoding");
        return;
    }
    if (strcasestr(v, "accept-encoding") || strcmp(v, "*") == 0)
        return;
    qt_header_set(r, "Vary", qt_psprintf(r->pool, "%s, Accept-Encoding", v));
}

static void etag_to_gzip(qt_request *r)
{
    const char *gz = qt_etag_gzip(r->pool, qt_header_out(r, "ETag"));
    if (gz)
        qt_header_set(r, "ETag", gz);
}

/* A 304 for the gzip variant says so again: the client named its tag. */
static void not_modified(qt_request *r)
{
    const char *gz = qt_etag_gzip(r->pool, qt_header_out(r, "ETag"));
    const char *inm = qt_header_in(r, "If-None-Match");
    if (gz && inm && strstr(inm, gz + (strncmp(gz, "W/", 2) == 0 ? 2 : 0)))
        qt_header_set(r, "ETag", gz);
}

static bool encoded(const qt_request *r)
{
    const char *ce = qt_header_out(r, "Content-Encoding");
    return ce && strcasecmp(ce, "identity") != 0;
}

static bool worth_it(const qt_request *r)
{
    if (r->status < 200 || r->status == 204 || r->status == 206)
        return false;
    return r->content_length < 0 || r->content_length >= MIN_LENGTH;
}

/* ------------------------------------------------------- the filter */

static void end_stream(void *d)
{
    qt_deflate_end(d);
}

static int deflate_start(qt_request *r, void **ctx)
{
    const deflate_dir_conf *dc = qt_module_dir_conf(r, &deflate_module);
    if (!dc || !compressible(r, dc))
        return QT_DECLINED;
    add_vary(r);
    if (encoded(r))
        return QT_DECLINED;
    bool accepts = qt_accepts_gzip(qt_header_in(r, "Accept-Encoding"));
    if (r->status == 304 && accepts)
        not_modified(r);
    if (!accepts || !worth_it(r))
        return QT_DECLINED;
    qt_header_set(r, "Content-Encoding", "gzip");
    qt_header_unset(r, "Content-Length");
    qt_header_unset(r, "Content-MD5");
    etag_to_gzip(r);
    r->content_length = -1;
    if (r->header_only)
        return QT_DECLINED;        /* HEAD: GET's headers, no body to squeeze */
    qt_deflate *d = qt_palloc(r->pool, sizeof(*d));
    if (qt_deflate_init(d, dc->level ? dc->level : -1) != QT_OK)
        return QT_DECLINED;
    qt_pool_cleanup(r->pool, end_stream, d);
    *ctx = d;
    return QT_OK;
}

static int pass_on(void *arg, const void *p, size_t n)
{
    return qt_filter_pass(arg, p, n, false);
}

static int deflate_write(qt_request *r, void *ctx, const void *data, size_t n, bool flush,
                         bool eof)
{
    qt_deflate *d = ctx;
    if (d->finished)
        return QT_OK;
    int rc = n ? qt_deflate_feed(d, data, n, pass_on, r) : QT_OK;
    if (rc == QT_OK && eof)
        rc = qt_deflate_finish(d, pass_on, r);
    else if (rc == QT_OK && flush)
        rc = qt_deflate_flush(d, pass_on, r);
    if (rc == QT_OK && (flush || eof))
        rc = qt_filter_pass(r, NULL, 0, true);
    return rc;
}

/* ------------------------------------------------------- fixups */

/* Conditional headers naming the gzip variant also name the plain tag,
 * which is the one the handler computes and compares. */
static void ungzip_conditionals(qt_request *r)
{
    for (unsigned i = 0; i < r->http.nheaders; i++) {
        qt_header *h = &r->http.headers[i];
        if (!(h->name.n == 13 && strncasecmp(h->name.p, "If-None-Match", 13) == 0) &&
            !(h->name.n == 8 && strncasecmp(h->name.p, "If-Match", 8) == 0))
            continue;
        char *v = qt_etag_list_ungzip(r->pool, qt_pstrndup(r->pool, h->value.p, h->value.n));
        if (v)
            h->value = (qt_slice){ v, strlen(v) };
    }
}

static bool fresh_gz(const qt_request *r, struct stat *gz, const char **gzname)
{
    *gzname = qt_psprintf(r->pool, "%s.gz", r->filename);
    return stat(*gzname, gz) == 0 && S_ISREG(gz->st_mode) &&
           gz->st_mtime >= r->finfo.st_mtime;
}

/* DeflatePrecompressed: answer from file.gz (the static handler serves it). */
static void precompressed(qt_request *r, const deflate_dir_conf *dc)
{
    if (dc->precompressed != 1 || !r->have_finfo || !S_ISREG(r->finfo.st_mode) ||
        (r->handler && strcmp(r->handler, "default-handler") != 0) ||
        (r->method_number != QT_M_GET && r->method_number != QT_M_HEAD) ||
        qt_header_in(r, "Range"))
        return;
    bool accepts = qt_accepts_gzip(qt_header_in(r, "Accept-Encoding"));
    struct stat gz;
    const char *gzname;
    if (!fresh_gz(r, &gz, &gzname))
        return;
    add_vary(r);                  /* the answer depends on Accept-Encoding */
    if (!accepts)
        return;
    qt_set_content_type(r, resource_type(r));
    qt_header_set(r, "Content-Encoding", "gzip");
    r->filename = gzname;
    r->finfo = gz;
}

static int deflate_fixups(qt_request *r)
{
    const deflate_dir_conf *dc = qt_module_dir_conf(r, &deflate_module);
    if (!dc)
        return QT_DECLINED;
    ungzip_conditionals(r);
    precompressed(r, dc);
    return QT_DECLINED;
}

static const qt_directive deflate_directives[] = {
    { "AddOutputFilterByType", QT_ONE_PLUS, QT_CTX_ANY, add_by_type,
      "DEFLATE type ...: compress responses of these MIME types" },
    { "SetOutputFilter", QT_TAKE1, QT_CTX_ANY, set_output,
      "DEFLATE|none: compress every response in scope" },
    { "DeflateCompressionLevel", QT_TAKE1, QT_CTX_ANY, set_level,
      "1..9: zlib compression level (default 6)" },
    { "DeflatePrecompressed", QT_FLAG, QT_CTX_ANY, set_precompressed,
      "On|Off: serve file.gz for file when it exists and is fresh" },
    { NULL, 0, 0, NULL, NULL },
};

const qt_module deflate_module = {
    QT_MODULE_HEADER("deflate_module"),
    .directives = deflate_directives,
    .filters = (const qt_filter_def[]){ { "DEFLATE", deflate_start, deflate_write },
                                        { NULL, NULL, NULL } },
    .create_dir_conf = create_dir,
    .merge_dir_conf = merge_dir,
    .fixups = deflate_fixups,
};
