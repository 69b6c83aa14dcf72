/*
 * The configuration: everything httpd.conf says, as one immutable object.
 *
 * qt_config_load() builds a whole new qt_config from the files; a reload
 * swaps it in only if it loaded without error, so a broken config never
 * takes down a running server.  Once loaded, nothing writes to it: every
 * process and thread reads it without locks.
 */
#ifndef QT_CONFIG_H
#define QT_CONFIG_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "module.h"
#include "pool.h"

/* Options bits */
#define QT_OPT_INDEXES         0x01u
#define QT_OPT_FOLLOWSYMLINKS  0x02u
#define QT_OPT_EXECCGI         0x04u
#define QT_OPT_SYMLINKSOWNER   0x08u
#define QT_OPT_INCLUDES        0x10u
#define QT_OPT_MULTIVIEWS      0x20u
#define QT_OPT_ALL (QT_OPT_INDEXES | QT_OPT_FOLLOWSYMLINKS | QT_OPT_EXECCGI | \
                    QT_OPT_SYMLINKSOWNER | QT_OPT_INCLUDES)

typedef struct qt_listener {
    int fd;                          /* -1 until bound */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    const char *text;                /* "127.0.0.1:8080", "[::1]:8080", "*:8080" */
    const char *protocol;            /* "http" or "https" */
    int port;
    struct qt_listener *next;
} qt_listener;

/* An IPv4 or IPv6 network for `Require ip`. */
typedef struct {
    int family;                      /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned prefix;                 /* bits */
} qt_ipnet;

enum qt_require_kind { QT_REQ_UNSET, QT_REQ_GRANTED, QT_REQ_DENIED, QT_REQ_IP };

typedef struct {
    enum qt_require_kind kind;
    bool negate;                     /* Require not ip ... */
    qt_ipnet *nets;                  /* QT_REQ_IP */
    size_t nnets;
} qt_require;

/* Extension -> value map (AddType, AddHandler).  Keys lower-case, no dot. */
typedef struct qt_ext_map {
    const char *ext;
    const char *value;
    struct qt_ext_map *next;
} qt_ext_map;

typedef struct qt_errdoc {
    int status;
    const char *target;              /* "/local/url", "http://remote/" or text */
    bool is_text;                    /* ErrorDocument 404 "quoted text" */
    struct qt_errdoc *next;
} qt_errdoc;

/*
 * Core per-directory settings.  Every field has an "unset" value (NULL, -1,
 * QT_REQ_UNSET, opts_set false) so qt_dir_conf_merge() can tell inherited from
 * set.
 */
typedef struct qt_dir_conf {
    unsigned options;                /* effective bits when opts_set */
    unsigned opts_add, opts_remove;  /* "+X -Y" relative form */
    bool opts_set;                   /* absolute Options seen */
    bool opts_relative;              /* +/- form seen */
    qt_require require;
    const char *handler;             /* SetHandler (NULL = unset, "none" = clear) */
    const char *force_type;          /* ForceType */
    qt_ext_map *handlers_by_ext;     /* AddHandler */
    qt_ext_map *types_by_ext;        /* AddType */
    qt_errdoc *error_docs;           /* ErrorDocument */
    const char **directory_index;    /* NULL-terminated; NULL = unset */
    bool directory_index_disabled;
    int allow_override;              /* -1 unset; only None is supported */
    int accept_path_info;            /* -1 default, 0 off, 1 on */
    void **mod;                      /* per-module dir confs, by module index */
} qt_dir_conf;

enum qt_section_kind { QT_SEC_DIRECTORY, QT_SEC_LOCATION, QT_SEC_FILES };

typedef struct qt_section {
    enum qt_section_kind kind;
    const char *match;               /* path/url/name (Directory: absolute, no trailing '/') */
    bool is_regex;                   /* <DirectoryMatch>, <Directory ~ re>, ... */
    regex_t re;
    bool is_glob;                    /* contains * ? [ */
    qt_dir_conf *conf;
    const char *file;
    unsigned line;
    int parent;                      /* a <Files> inside a <Directory>: index of
                                        that <Directory> in the same sections
                                        array (applies only there); else -1 */
} qt_section;

enum qt_map_kind { QT_MAP_ALIAS, QT_MAP_SCRIPTALIAS, QT_MAP_REDIRECT };

typedef struct qt_urlmap {
    enum qt_map_kind kind;
    const char *prefix;              /* URL prefix as configured */
    const char *target;              /* filesystem path or redirect URL */
    int status;                      /* redirects: 301/302/303/410 */
} qt_urlmap;

typedef struct qt_logfile qt_logfile;

typedef struct qt_custom_log {
    const char *path;                /* resolved against ServerRoot */
    const char *format;              /* LogFormat text */
    struct qt_access_format *compiled;
    qt_logfile *file;                /* opened by the log layer */
} qt_custom_log;

/* A virtual server (the main server is one too, like Apache's server_rec). */
struct qt_server {
    const char *server_name;         /* host part of ServerName */
    int port;                        /* port part of ServerName, 0 if none */
    const char *scheme;              /* ServerName scheme://, NULL if none */
    const char **aliases;            /* ServerAlias words (may hold * and ?) */
    size_t naliases;
    const char **addrs;              /* <VirtualHost addr:port ...> words */
    size_t naddrs;
    const char *server_admin;
    const char *document_root;       /* absolute, no trailing '/' */

    qt_urlmap *urlmaps;              /* Alias, ScriptAlias, Redirect, file order;
                                        a vhost's own first, then main's */
    size_t nurlmaps;
    qt_section *sections;            /* file order, kinds mixed; a vhost's list
                                        is main's followed by its own (Apache) */
    size_t nsections;
    qt_dir_conf *dir_defaults;       /* directives outside sections */

    int64_t timeout_ms;              /* Timeout (60 s) */
    bool keep_alive;                 /* KeepAlive (On) */
    int64_t keep_alive_timeout_ms;   /* KeepAliveTimeout (5 s) */
    unsigned max_keep_alive_requests;/* MaxKeepAliveRequests (100, 0 = unlimited) */
    size_t limit_request_line;       /* 8190 */
    size_t limit_request_field_size; /* 8190 */
    unsigned limit_request_fields;   /* 100 */
    uint64_t limit_request_body;     /* 1 GiB; 0 = unlimited */

    qt_custom_log *logs;             /* CustomLog entries */
    size_t nlogs;
    const char *file;                /* where <VirtualHost> began (main: config file) */
    unsigned line;
    void **mod;                      /* per-module server confs, by module index */
};

enum qt_tokens { QT_TOKENS_FULL, QT_TOKENS_OS, QT_TOKENS_MINOR, QT_TOKENS_MAJOR,
                 QT_TOKENS_MINIMAL, QT_TOKENS_PROD };

typedef struct qt_define {
    const char *name;
    const char *value;
    struct qt_define *next;
} qt_define;

struct qt_config {
    qt_pool *pool;                   /* everything below lives here */
    const char *server_root;         /* absolute */
    const char *config_file;         /* absolute */

    qt_server *main;                 /* the main server */
    qt_server **vhosts;              /* <VirtualHost> blocks, file order */
    size_t nvhosts;
    qt_listener *listeners;          /* Listen lines */
    int listen_backlog;              /* ListenBacklog (511) */

    const qt_module **modules;       /* loaded, in LoadModule order; core first */
    size_t nmodules;
    void **dl_handles;               /* dlopen handles, parallel to modules */
    const qt_mpm *mpm;               /* from the one MPM module */
    const qt_module *mpm_module;

    const char *pid_file;            /* PidFile (logs/httpd.pid) */
    const char *user, *group;        /* User / Group (used only as root) */
    const char *error_log;           /* ErrorLog (logs/error_log) */
    int log_level;                   /* LogLevel (warn) */
    enum qt_tokens server_tokens;    /* ServerTokens (Full) */
    int trace_enable;                /* TraceEnable: 0 off (our default), 1 on, 2 extended */
    size_t file_cache_size;          /* FileCacheSize: bytes per process (1 MiB), 0 = off */
    int64_t file_cache_valid_ms;     /* FileCacheValid: seconds a cached stat is trusted (1) */
    const char *types_config;        /* TypesConfig (conf/mime.types) */
    struct qt_mime_table *mime;      /* loaded TypesConfig */
    qt_define *defines;              /* Define / -D */
    const char **log_formats;        /* LogFormat: pairs name, format; NULL-terminated */
    unsigned generation;             /* bumped on every successful reload */
};

/* Command-line inputs to a load. */
typedef struct {
    const char *config_file;         /* -f (NULL: conf/httpd.conf) */
    const char *server_root;         /* -d (NULL: see qt_config_load) */
    const char **pre_directives;     /* -C, NULL-terminated */
    const char **post_directives;    /* -c */
    const char **defines;            /* -D NAME */
    bool skip_docroot_check;         /* -T */
} qt_config_args;

/*
 * Reads the main config and everything it includes, loads modules, checks
 * it, and returns a new configuration.  On error returns NULL and writes one
 * line "file:line: Directive: what is wrong" into err.
 *
 * ServerRoot: -d if given, else the ServerRoot directive, else the parent of
 * the directory holding the config file (conf/httpd.conf -> .).
 */
qt_config *qt_config_load(const qt_config_args *args, char *err, size_t errlen);
void qt_config_free(qt_config *cfg);

/* Resolves a relative path against ServerRoot (pool string). */
const char *qt_config_path(const qt_config *cfg, const char *path);

/* Module index within cfg->modules, or -1. */
int qt_config_module_index(const qt_config *cfg, const qt_module *m);
bool qt_config_has_module(const qt_config *cfg, const char *name);
bool qt_config_defined(const qt_config *cfg, const char *name);

/* Merges add over base into a new struct (module confs included). */
qt_dir_conf *qt_dir_conf_merge(const qt_config *cfg, qt_pool *p,
                               const qt_dir_conf *base, const qt_dir_conf *add);
/* Effective Options after merging the relative forms. */
unsigned qt_dir_options(const qt_dir_conf *dc);

/* The core module (built in; index 0). */
extern const qt_module qt_core_module;

/* Finds the handler function registered under name, or NULL. */
int (*qt_config_find_handler(const qt_config *cfg, const char *name))(qt_request *r);

#endif
