/*
 * mod_ssl: HTTPS with mod_ssl's directives, over the TLS transport
 * (server/tls.c).
 *
 *     LoadModule ssl_module modules/mod_ssl.so
 *     Listen 443 https
 *     <VirtualHost *:443>
 *         ServerName www.example.com
 *         SSLEngine on
 *         SSLCertificateFile conf/server.crt      (leaf first, then the chain)
 *         SSLCertificateKeyFile conf/server.key
 *     </VirtualHost>
 *
 * A connection is TLS when the server its address selects has SSLEngine on,
 * or it arrived on a `Listen ... https` address.  Each SSL server has its own
 * SSL_CTX, built in the master at configuration time; SNI switches to the
 * named server's.  A request whose Host selects a different server than the
 * SNI name did is answered 421 (Misdirected Request).
 *
 * Defaults: SSLProtocol TLSv1.2 TLSv1.3, OpenSSL's default ciphers,
 * SSLHonorCipherOrder off, SSLSessionTickets on (keys rotated at every
 * configuration load; see tls.h).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "config.h"
#include "conn.h"
#include "module.h"
#include "request.h"
#include "router.h"
#include "tls.h"

#define OPT_STD_ENV 0x1u

typedef struct ssl_srv_conf {
    int engine;                      /* -1 unset, 0 off, 1 on/optional */
    qt_tls_settings set;             /* protocols 0: unset */
    int honor, tickets;              /* -1 unset */
    SSL_CTX *ctx;                    /* built by post_config */
} ssl_srv_conf;

typedef struct ssl_dir_conf {
    unsigned opts, opts_add, opts_remove;
    bool opts_set;
} ssl_dir_conf;

extern const qt_module ssl_module;

/* ------------------------------------------------------- confs */

static void *create_srv(qt_pool *p)
{
    ssl_srv_conf *sc = qt_pcalloc(p, sizeof(*sc));
    sc->engine = sc->honor = sc->tickets = -1;
    return sc;
}

static void *merge_srv(qt_pool *p, const void *basev, const void *addv)
{
    const ssl_srv_conf *base = basev, *add = addv;
    ssl_srv_conf *m = qt_palloc(p, sizeof(*m));
    *m = *add;
    m->ctx = NULL;
    if (m->engine < 0)
        m->engine = base->engine;
    if (m->honor < 0)
        m->honor = base->honor;
    if (m->tickets < 0)
        m->tickets = base->tickets;
    if (!m->set.protocols)
        m->set.protocols = base->set.protocols;
    if (!m->set.cipher_list)
        m->set.cipher_list = base->set.cipher_list;
    if (!m->set.ciphersuites)
        m->set.ciphersuites = base->set.ciphersuites;
    if (m->set.ncerts == 0) {
        memcpy(m->set.cert_files, base->set.cert_files, sizeof(m->set.cert_files));
        memcpy(m->set.key_files, base->set.key_files, sizeof(m->set.key_files));
        m->set.ncerts = base->set.ncerts;
    }
    return m;
}

static void *create_dir(qt_pool *p)
{
    return qt_pcalloc(p, sizeof(ssl_dir_conf));
}

/* SSLOptions: absolute lists replace, +X/-X adjust the inherited set. */
static void *merge_dir(qt_pool *p, const void *basev, const void *addv)
{
    const ssl_dir_conf *base = basev, *add = addv;
    ssl_dir_conf *m = qt_palloc(p, sizeof(*m));
    *m = *add;
    if (!add->opts_set) {
        m->opts = (base->opts | add->opts_add) & ~add->opts_remove;
        m->opts_set = base->opts_set;
        m->opts_add = base->opts_add | add->opts_add;
        m->opts_remove = (base->opts_remove & ~add->opts_add) | add->opts_remove;
    }
    return m;
}

static ssl_srv_conf *srv_conf_of(const qt_config *cfg, const qt_server *s)
{
    int i = qt_config_module_index(cfg, &ssl_module);
    return i > 0 && s ? s->mod[i] : NULL;
}

/* ------------------------------------------------------- directives */

static const char *set_engine(qt_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    ssl_srv_conf *sc = cmd->srv_conf;
    if (strcasecmp(argv[0], "on") == 0 || strcasecmp(argv[0], "optional") == 0)
        sc->engine = 1;
    else if (strcasecmp(argv[0], "off") == 0)
        sc->engine = 0;
    else
        return "must be On, Off or Optional";
    return NULL;
}

static const char *set_cert(qt_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    ssl_srv_conf *sc = cmd->srv_conf;
    unsigned n = sc->set.ncerts;
    if (n > 0 && !sc->set.cert_files[n - 1]) {   /* its key came first */
        sc->set.cert_files[n - 1] = qt_config_path(cmd->cfg, argv[0]);
        return NULL;
    }
    if (n >= QT_TLS_MAX_CERTS)
        return "too many certificates for this server";
    sc->set.cert_files[sc->set.ncerts++] = qt_config_path(cmd->cfg, argv[0]);
    return NULL;
}

/* The key belongs to the certificate named last (Apache pairs them so). */
static const char *set_key(qt_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    ssl_srv_conf *sc = cmd->srv_conf;
    unsigned i = sc->set.ncerts ? sc->set.ncerts - 1 : 0;
    if (sc->set.ncerts == 0)
        sc->set.ncerts = 1;          /* certificate follows; filled by set_cert */
    sc->set.key_files[i] = qt_config_path(cmd->cfg, argv[0]);
    return NULL;
}

static unsigned protocol_bit(const char *name)
{
    static const struct { const char *name; unsigned bit; } names[] = {
        { "all", QT_TLS_ALL }, { "SSLv3", 0 }, { "TLSv1", QT_TLS_V1 },
        { "TLSv1.1", QT_TLS_V11 }, { "TLSv1.2", QT_TLS_V12 }, { "TLSv1.3", QT_TLS_V13 },
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(name, names[i].name) == 0)
            return names[i].bit ? names[i].bit : 0x100u;
    return 0;
}

/* "all -SSLv3", "-all +TLSv1.3", "TLSv1.2 TLSv1.3" (SSLv3 is accepted, gone). */
static const char *set_protocol(qt_cmd *cmd, int argc, char **argv)
{
    ssl_srv_conf *sc = cmd->srv_conf;
    unsigned mask = 0;
    for (int i = 0; i < argc; i++) {
        char op = argv[i][0] == '+' || argv[i][0] == '-' ? argv[i][0] : 0;
        unsigned bit = protocol_bit(argv[i] + (op ? 1 : 0));
        if (!bit)
            return qt_psprintf(cmd->pool, "unknown protocol '%s'", argv[i]);
        bit &= QT_TLS_ALL;
        mask = op == '-' ? mask & ~bit : mask | bit;
    }
    if (!mask)
        return "no protocol left enabled";
    sc->set.protocols = mask;
    return NULL;
}

/* SSLCipherSuite [SSL|TLSv1.3] spec */
static const char *set_ciphers(qt_cmd *cmd, int argc, char **argv)
{
    ssl_srv_conf *sc = cmd->srv_conf;
    if (argc == 1 || strcasecmp(argv[0], "SSL") == 0) {
        sc->set.cipher_list = argv[argc - 1];
        return NULL;
    }
    if (strcasecmp(argv[0], "TLSv1.3") != 0)
        return "protocol must be SSL or TLSv1.3";
    sc->set.ciphersuites = argv[1];
    return NULL;
}

static const char *set_honor(qt_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    ((ssl_srv_conf *)cmd->srv_conf)->honor = argv[0][0] == '1';
    return NULL;
}

static const char *set_tickets(qt_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    ((ssl_srv_conf *)cmd->srv_conf)->tickets = argv[0][0] == '1';
    return NULL;
}

static const char *set_options(qt_cmd *cmd, int argc, char **argv)
{
    ssl_dir_conf *dc = cmd->dir_conf;
    for (int i = 0; i < argc; i++) {
        char op = argv[i][0] == '+' || argv[i][0] == '-' ? argv[i][0] : 0;
        const char *name = argv[i] + (op ? 1 : 0);
        unsigned bit = strcasecmp(name, "StdEnvVars") == 0 ? OPT_STD_ENV : 0;
        if (!bit && strcasecmp(name, "ExportCertData") != 0 &&
            strcasecmp(name, "StrictRequire") != 0 && strcasecmp(name, "OptRenegotiate") != 0)
            return qt_psprintf(cmd->pool, "unknown option '%s'", argv[i]);
        if (op == '+')
            dc->opts_add |= bit, dc->opts_remove &= ~bit;
        else if (op == '-')
            dc->opts_remove |= bit, dc->opts_add &= ~bit;
        else
            dc->opts |= bit, dc->opts_set = true;
    }
    dc->opts = (dc->opts | dc->opts_add) & ~dc->opts_remove;
    return NULL;
}

/* ------------------------------------------------------- configuration */

static void free_ctx(void *ctx)
{
    SSL_CTX_free(ctx);
}

static int build_ctx(qt_config *cfg, const qt_server *s, unsigned id, char *err, size_t errlen)
{
    ssl_srv_conf *sc = srv_conf_of(cfg, s);
    if (!sc || sc->engine != 1 || sc->ctx)
        return QT_OK;                /* plain, or shared with main and done */
    if (!sc->set.protocols)
        sc->set.protocols = QT_TLS_DEFAULT_PROTOCOLS;
    sc->set.honor_cipher_order = sc->honor == 1;
    sc->set.session_tickets = sc->tickets != 0;
    sc->set.id = id;
    char why[400] = "";
    sc->ctx = qt_tls_ctx_new(&sc->set, why, sizeof(why));
    if (!sc->ctx) {
        snprintf(err, errlen, "%s:%u: %s", s->file, s->line, why);
        return QT_ERROR;
    }
    qt_pool_cleanup(cfg->pool, free_ctx, sc->ctx);
    return QT_OK;
}

static bool any_https_listener(const qt_config *cfg)
{
    for (const qt_listener *l = cfg->listeners; l; l = l->next)
        if (strcmp(l->protocol, "https") == 0)
            return true;
    return false;
}

static SSL_CTX *first_ctx(const qt_config *cfg)
{
    ssl_srv_conf *sc = srv_conf_of(cfg, cfg->main);
    for (size_t i = 0; !(sc && sc->ctx) && i < cfg->nvhosts; i++)
        sc = srv_conf_of(cfg, cfg->vhosts[i]);
    return sc ? sc->ctx : NULL;
}

/* In the master, before children fork: keys and contexts they inherit. */
static int ssl_post_config(qt_config *cfg, char *err, size_t errlen)
{
    if (qt_tls_rotate_ticket_keys() != QT_OK) {
        snprintf(err, errlen, "no randomness for session ticket keys");
        return QT_ERROR;
    }
    if (build_ctx(cfg, cfg->main, 0, err, errlen) != QT_OK)
        return QT_ERROR;
    for (size_t i = 0; i < cfg->nvhosts; i++)
        if (build_ctx(cfg, cfg->vhosts[i], (unsigned)i + 1, err, errlen) != QT_OK)
            return QT_ERROR;
    if (any_https_listener(cfg) && !first_ctx(cfg)) {
        snprintf(err, errlen, "Listen ... https needs a server with SSLEngine on "
                              "and SSLCertificateFile");
        return QT_ERROR;
    }
    return QT_OK;
}

/* ------------------------------------------------------- connections */

static SSL_CTX *select_ctx(qt_conn *c, const char *sni)
{
    ssl_srv_conf *sc = srv_conf_of(c->cfg, qt_select_vhost(c->cfg, c, sni));
    return sc && sc->engine == 1 ? sc->ctx : NULL;
}

static void ssl_conn_init(qt_conn *c)
{
    SSL_CTX *ctx = select_ctx(c, NULL);
    if (!ctx && c->listener && strcmp(c->listener->protocol, "https") == 0)
        ctx = first_ctx(c->cfg);
    if (!ctx)
        return;
    /* Never fall back to plain text on a TLS address: end the stream so
     * the connection closes quietly. */
    if (qt_tls_attach(c, ctx, select_ctx) != QT_OK)
        shutdown(c->fd, SHUT_RDWR);
}

/* ------------------------------------------------------- requests */

static void std_env(qt_request *r)
{
    for (const char *const *n = qt_tls_var_names; *n; n++) {
        const char *v = qt_tls_var(r->pool, r->conn, *n);
        if (v)
            qt_env_set(r, *n, v);
    }
}

static int ssl_fixups(qt_request *r)
{
    qt_conn *c = r->conn;
    if (!c->tls)
        return QT_DECLINED;
    const char *sni = qt_tls_sni(c);
    if (sni && r->hostname && qt_select_vhost(r->cfg, c, sni) != r->server)
        return 421;
    qt_env_set(r, "HTTPS", "on");
    if (sni)
        qt_env_set(r, "SSL_TLS_SNI", sni);
    const ssl_dir_conf *dc = qt_module_dir_conf(r, &ssl_module);
    if (dc && (dc->opts & OPT_STD_ENV))
        std_env(r);
    return QT_DECLINED;
}

static const qt_directive ssl_directives[] = {
    { "SSLEngine", QT_TAKE1, QT_CTX_SERVER, set_engine, "On|Off|Optional: TLS for this server" },
    { "SSLCertificateFile", QT_TAKE1, QT_CTX_SERVER, set_cert,
      "PEM file: the certificate, then its chain" },
    { "SSLCertificateKeyFile", QT_TAKE1, QT_CTX_SERVER, set_key,
      "PEM file: the private key of the last SSLCertificateFile" },
    { "SSLProtocol", QT_ONE_PLUS, QT_CTX_SERVER, set_protocol,
      "[+-]all|TLSv1|TLSv1.1|TLSv1.2|TLSv1.3 ...: enabled protocol versions" },
    { "SSLCipherSuite", QT_TAKE12, QT_CTX_SERVER, set_ciphers,
      "[SSL|TLSv1.3] spec: OpenSSL cipher list (or TLS 1.3 suites)" },
    { "SSLHonorCipherOrder", QT_FLAG, QT_CTX_SERVER, set_honor,
      "On|Off: prefer the server's cipher order" },
    { "SSLSessionTickets", QT_FLAG, QT_CTX_SERVER, set_tickets,
      "On|Off: session resumption by tickets" },
    { "SSLOptions", QT_ONE_PLUS, QT_CTX_ANY, set_options,
      "[+-]StdEnvVars ...: SSL_* variables for CGI" },
    { NULL, 0, 0, NULL, NULL },
};

const qt_module ssl_module = {
    QT_MODULE_HEADER("ssl_module"),
    .directives = ssl_directives,
    .create_server_conf = create_srv,
    .merge_server_conf = merge_srv,
    .create_dir_conf = create_dir,
    .merge_dir_conf = merge_dir,
    .post_config = ssl_post_config,
    .conn_init = ssl_conn_init,
    .fixups = ssl_fixups,
};
