/*
 * Private to the configuration loader (config.c, config_core.c): what a
 * configuration needs only while it is being built.
 *
 * Both structs put the public one first, so a qt_config * or qt_server *
 * handed to a directive setter can be turned back into the build state.
 * Everything lives in the configuration's pool.
 */
#ifndef QT_CONFIG_BUILD_H
#define QT_CONFIG_BUILD_H

#include "config.h"

/* Most modules a configuration can hold (core included). */
#define QT_MAX_MODULES 64

/* Server fields a <VirtualHost> set itself (others come from the main server). */
enum {
    QT_SET_TIMEOUT        = 1u << 0,
    QT_SET_KEEPALIVE      = 1u << 1,
    QT_SET_KA_TIMEOUT     = 1u << 2,
    QT_SET_KA_REQUESTS    = 1u << 3,
    QT_SET_REQ_LINE       = 1u << 4,
    QT_SET_FIELD_SIZE     = 1u << 5,
    QT_SET_FIELDS         = 1u << 6,
    QT_SET_REQ_BODY       = 1u << 7
};

typedef struct {
    qt_server s;                 /* first: (qt_server *) casts back */
    unsigned set;                /* QT_SET_* */
    size_t own_sections;         /* sections[i] for i >= this many are ours
                                    (a vhost's list starts with main's) */
    size_t cap_sections, cap_urlmaps, cap_logs;
} qt_server_build;

typedef struct {
    qt_config c;                 /* first: (qt_config *) casts back */
    const qt_config_args *args;
    const char *types_file;      /* where TypesConfig was set, for errors */
    unsigned types_line;
    const char *mpm_file[2];     /* LoadModule lines of the first two MPMs */
    unsigned mpm_line[2];
    const char *mpm_name[2];
    unsigned nmpms;
} qt_config_build;

static inline qt_server_build *qt_server_build_of(qt_server *s)
{
    return (qt_server_build *)s;
}

static inline qt_config_build *qt_config_build_of(qt_config *c)
{
    return (qt_config_build *)c;
}

/* Fresh structs with every field unset (config_core.c). */
qt_dir_conf *qt_dir_conf_create(qt_pool *p);
qt_server *qt_server_create(qt_pool *p);
/* Sets the documented defaults on the main server and the config. */
void qt_config_set_defaults(qt_config *cfg);
/* A vhost takes every field it did not set from the main server. */
void qt_server_inherit(qt_config *cfg, qt_server *vhost);

/* Absolute path against ServerRoot without trailing '/' (except "/"). */
const char *qt_config_dir_path(qt_config *cfg, const char *path);

/*
 * Returns a copy of arr (n elements of size sz) with room for one more;
 * *cap tracks the capacity.  Used for the arrays that grow while loading.
 */
void *qt_config_grow(qt_pool *p, void *arr, size_t n, size_t *cap, size_t sz);

/*
 * Modules linked into the server, registered first in every configuration
 * (core at index 0), NULL-terminated.  A built-in module is a plain
 * qt_module like a loadable one; add new ones to the list in config_core.c.
 */
extern const qt_module *const qt_builtin_modules[];

/* Module names that the core itself provides, for <IfModule>. */
bool qt_core_provides(const char *module_name);

#endif
