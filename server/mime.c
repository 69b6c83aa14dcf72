/*
 * Media types: the TypesConfig table (extension -> type, a fixed-size hash
 * table built once at load time and only read afterwards) and the
 * "every dotted extension counts, the last known one wins" rule Apache's
 * mod_mime applies to file names, shared by AddType and AddHandler.
 */
#include "mime.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conf_tree.h"

#define QT_MIME_BUCKETS 512

typedef struct qt_mime_entry {
    const char *ext;                 /* lower-case, no dot */
    const char *type;
    struct qt_mime_entry *next;
} qt_mime_entry;

struct qt_mime_table {
    qt_mime_entry *buckets[QT_MIME_BUCKETS];
};

static char lower_c(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* FNV-1a over the lower-cased bytes of s[0..n). */
static unsigned hash_ext(const char *s, size_t n)
{
    unsigned h = 2166136261u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)lower_c(s[i])) * 16777619u;
    return h % QT_MIME_BUCKETS;
}

static qt_mime_entry *find(const qt_mime_table *t, const char *ext, size_t n)
{
    qt_mime_entry *e = t->buckets[hash_ext(ext, n)];

    for (; e; e = e->next)
        if (strlen(e->ext) == n && strncasecmp(e->ext, ext, n) == 0)
            return e;
    return NULL;
}

/* A later line for the same extension replaces the earlier one. */
static void add(qt_pool *p, qt_mime_table *t, const char *type, const char *ext)
{
    size_t n = strlen(ext);
    qt_mime_entry *e = find(t, ext, n);
    unsigned h;

    if (e) {
        e->type = type;
        return;
    }
    e = qt_palloc(p, sizeof *e);
    e->ext = qt_pstrdup(p, ext);
    for (char *c = (char *)e->ext; *c; c++)
        *c = lower_c(*c);
    e->type = type;
    h = hash_ext(ext, n);
    e->next = t->buckets[h];
    t->buckets[h] = e;
}

static void add_line(qt_pool *p, qt_mime_table *t, char *line)
{
    char **w, err[64];
    int n;

    line += strspn(line, " \t");
    if (*line == '#' || *line == '\0')
        return;
    /* mime.types words never hold quotes; a stray one must not fail the load */
    for (char *c = line; *c; c++)
        if (*c == '"' || *c == '\'' || *c == '\r')
            *c = ' ';
    n = qt_conf_split_args(p, line, &w, err, sizeof err);
    for (int i = 1; i < n; i++)
        add(p, t, w[0], w[i][0] == '.' ? w[i] + 1 : w[i]);
}

qt_mime_table *qt_mime_load(qt_pool *p, const char *path, char *err, size_t errlen)
{
    qt_mime_table *t;
    char line[4096];
    FILE *f = fopen(path, "re");

    if (f == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    t = qt_pcalloc(p, sizeof *t);
    /* Lines longer than the buffer continue as new "lines" whose first word
     * would be taken for a type; no sane mime.types has 4 KiB lines. */
    while (fgets(line, sizeof line, f))
        add_line(p, t, line);
    fclose(f);
    return t;
}

const char *qt_mime_lookup(const qt_mime_table *t, const char *ext)
{
    const qt_mime_entry *e = t && ext ? find(t, ext, strlen(ext)) : NULL;

    return e ? e->type : NULL;
}

static const char *map_find(const qt_ext_map *m, const char *ext, size_t n)
{
    for (; m; m = m->next)
        if (strlen(m->ext) == n && strncasecmp(m->ext, ext, n) == 0)
            return m->value;
    return NULL;
}

/*
 * Walks the extensions of the last path component ("a.tar.gz" -> "tar",
 * "gz"; the part before the first dot is the name, not an extension) and
 * returns the value of the last one that resolves.
 */
static const char *last_known(const char *filename, const qt_mime_table *t,
                              const qt_ext_map *m)
{
    const char *base = strrchr(filename, '/'), *dot, *found = NULL;

    base = base ? base + 1 : filename;
    for (dot = strchr(base, '.'); dot; dot = strchr(dot + 1, '.')) {
        const char *ext = dot + 1, *end = strchr(ext, '.');
        size_t n = end ? (size_t)(end - ext) : strlen(ext);
        const char *v;
        const qt_mime_entry *e;

        if (n == 0)
            continue;
        v = map_find(m, ext, n);
        if (v == NULL && t && (e = find(t, ext, n)) != NULL)
            v = e->type;
        if (v)
            found = v;
    }
    return found;
}

const char *qt_mime_type_for(const qt_mime_table *t, const qt_ext_map *add_types,
                             const char *filename)
{
    return filename ? last_known(filename, t, add_types) : NULL;
}

const char *qt_ext_map_lookup(const qt_ext_map *m, const char *filename)
{
    return filename ? last_known(filename, NULL, m) : NULL;
}
