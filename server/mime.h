/* Media types from a mime.types file (TypesConfig) plus AddType. */
#ifndef QT_MIME_H
#define QT_MIME_H

#include "config.h"
#include "pool.h"

typedef struct qt_mime_table qt_mime_table;

/* Loads "type ext ext..." lines; NULL with err on I/O error. */
qt_mime_table *qt_mime_load(qt_pool *p, const char *path, char *err, size_t errlen);
/* Type for one extension (case-insensitive, no dot) or NULL. */
const char *qt_mime_lookup(const qt_mime_table *t, const char *ext);
/*
 * Type for a file name: every dotted extension counts, the last known one
 * wins (a.html.en -> text/html); AddType entries override the table.
 * NULL if none (Apache sends no Content-Type then).
 */
const char *qt_mime_type_for(const qt_mime_table *t, const qt_ext_map *add_types,
                             const char *filename);
/* Value mapped for a file name by an extension map (AddHandler), or NULL. */
const char *qt_ext_map_lookup(const qt_ext_map *m, const char *filename);

#endif
