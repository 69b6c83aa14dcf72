/*
 * Apache httpd.conf syntax: text -> tree of directives and sections.
 *
 * This layer knows the syntax only (lines, '\' continuation, '#' comments,
 * quoting, <Section args> ... </Section> nesting).  It does not know what any
 * directive means: config.c walks the tree, expands ${VAR}, follows Include,
 * evaluates <IfDefine>/<IfModule> and calls the directive setters.
 */
#ifndef QT_CONF_TREE_H
#define QT_CONF_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include "pool.h"

typedef struct qt_conf_node {
    const char *name;        /* directive or section name as written ("Directory") */
    const char *args;        /* raw argument text, trimmed, variables not expanded;
                                for a section, the text between the name and '>' */
    const char *file;        /* file the node came from ("-C directive" for -C) */
    unsigned line;           /* first line of the directive in that file */
    bool is_section;
    struct qt_conf_node *children;   /* first child of a section */
    struct qt_conf_node *next;       /* next sibling */
} qt_conf_node;

/*
 * Parses text (a whole file) into a list of nodes allocated from p.
 * On a syntax error returns NULL and writes "file:line: message" to err.
 * An empty file gives NULL with err[0] == '\0'.
 */
qt_conf_node *qt_conf_parse_text(qt_pool *p, const char *file,
                                 const char *text, size_t len,
                                 char *err, size_t errlen);

/* Reads and parses a file; I/O errors are reported like syntax errors. */
qt_conf_node *qt_conf_parse_file(qt_pool *p, const char *path,
                                 char *err, size_t errlen);

/*
 * Splits argument text into words.  Words are separated by blanks; "..." and
 * '...' quote a word, inside which a backslash escapes the same quote or a
 * backslash.  Returns the word count (argv NULL-terminated, allocated from p)
 * or -1 with a message in err (unterminated quote).
 */
int qt_conf_split_args(qt_pool *p, const char *args, char ***argv,
                       char *err, size_t errlen);

/*
 * Replaces each ${NAME} in s by lookup(ctx, NAME).  An undefined name is
 * left as written and reported through warn (may be NULL).
 */
char *qt_conf_expand_vars(qt_pool *p, const char *s,
                          const char *(*lookup)(void *ctx, const char *name),
                          void (*warn)(void *ctx, const char *name),
                          void *ctx);

#endif
