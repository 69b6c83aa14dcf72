/*
 * The one routing layer: (virtual host, URL path) -> handler + file.
 *
 * Redirect, Alias, ScriptAlias, DocumentRoot, <Location>, <Directory>,
 * <Files>, SetHandler, AddHandler, DirectoryIndex and Require all feed this
 * one function; handlers never re-derive paths.  Nothing outside a mapped
 * root is ever served, and symlinks leaving a root are refused unless
 * Options FollowSymLinks allows them.
 */
#ifndef QT_ROUTER_H
#define QT_ROUTER_H

#include "conn.h"
#include "config.h"
#include "request.h"

/* The virtual host for this connection and Host name (main server if none). */
const qt_server *qt_select_vhost(const qt_config *cfg, const qt_conn *c,
                                 const char *host);

/*
 * Fills r->handler, r->filename, r->path_info, r->uri_prefix,
 * r->context_root, r->dir and r->finfo.  Returns 0 to run the handler, or a
 * status to answer instead: 301/302/303/410 (Redirect, directory slash; the
 * Location header is set), 400, 403, 404.
 */
int qt_route(qt_request *r);

/* Merged per-directory config for a filesystem path and URL (no stat). */
const qt_dir_conf *qt_route_dir_conf(qt_request *r, const char *filename,
                                     const char *url);

#endif
