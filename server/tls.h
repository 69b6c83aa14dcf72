/*
 * TLS (OpenSSL 3) as a transport under the core's I/O interface.
 *
 * The core never knows bytes are encrypted: a connection accepted on an
 * https listener gets c->transport = the TLS transport and c->tls = true
 * (mod_ssl does that from its conn_init hook), and from then on
 * qt_conn_read()/qt_conn_write() go through SSL_read/SSL_write.  Every call
 * is non-blocking: SSL_ERROR_WANT_READ/WANT_WRITE become QT_AGAIN with
 * c->want = POLLIN/POLLOUT, so the running MPM waits (poll, or a parked
 * coroutine under event and hybrid).  The OpenSSL error queue is
 * per-thread and a hybrid coroutine may change threads across a wait, so
 * the queue is cleared before each SSL call and read right after it.
 *
 * Certificates per virtual host: each SSL-enabled server has its own
 * SSL_CTX; a ClientHello callback reads the SNI name, asks the selector
 * given to qt_tls_attach() for the matching server's context and switches
 * to it before the protocol version and cipher are chosen.
 *
 * Session tickets: one key ring per server process tree.  The master
 * rotates it at every configuration load (start, restart, graceful), before
 * children are forked, so every child encrypts with the same current key
 * and still accepts tickets made with the previous one (those are renewed).
 * A resumed TLS 1.3 connection always gets a fresh ticket: clients use each
 * one once.
 *
 * Reads use OpenSSL's read-ahead (one recv per record, not two), so
 * received records can wait in OpenSSL's buffer where poll() cannot see
 * them: the transport's pending() tells the core not to go idle then.
 */
#ifndef QT_TLS_H
#define QT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>

#include "conn.h"

/* SSLProtocol bits. */
#define QT_TLS_V1   0x1u
#define QT_TLS_V11  0x2u
#define QT_TLS_V12  0x4u
#define QT_TLS_V13  0x8u
#define QT_TLS_ALL  (QT_TLS_V1 | QT_TLS_V11 | QT_TLS_V12 | QT_TLS_V13)
#define QT_TLS_DEFAULT_PROTOCOLS (QT_TLS_V12 | QT_TLS_V13)

#define QT_TLS_MAX_CERTS 4            /* RSA plus ECDSA, with room to spare */

/* What one SSL-enabled server asks for (filled by mod_ssl's directives). */
typedef struct qt_tls_settings {
    const char *cert_files[QT_TLS_MAX_CERTS];   /* PEM, leaf first, then chain */
    const char *key_files[QT_TLS_MAX_CERTS];    /* NULL: key is in the cert file */
    unsigned ncerts;
    unsigned protocols;               /* QT_TLS_* bits */
    const char *cipher_list;          /* TLS <= 1.2 (OpenSSL cipher string) or NULL */
    const char *ciphersuites;         /* TLS 1.3 suites or NULL */
    bool honor_cipher_order;
    bool session_tickets;
    unsigned id;                      /* distinct per server: session id context */
} qt_tls_settings;

/*
 * Builds a server context.  The settings must outlive it (they are read
 * again when SNI switches to it).  NULL with a message in err.
 */
SSL_CTX *qt_tls_ctx_new(const qt_tls_settings *s, char *err, size_t errlen);

/* Picks the context for an SNI name (NULL: keep the current one). */
typedef SSL_CTX *(*qt_tls_select_fn)(qt_conn *c, const char *sni);

/*
 * Makes c a TLS connection over ctx: sets c->transport, c->tls and the
 * transport data.  The handshake runs later (transport->handshake, or the
 * first read).  QT_OK or QT_ERROR.
 */
int qt_tls_attach(qt_conn *c, SSL_CTX *ctx, qt_tls_select_fn select);

/* The SNI name the client sent, or NULL (also for plain connections). */
const char *qt_tls_sni(const qt_conn *c);

/*
 * mod_ssl variables for a TLS connection: HTTPS, SSL_PROTOCOL, SSL_CIPHER,
 * SSL_CIPHER_USEKEYSIZE, SSL_CIPHER_ALGKEYSIZE, SSL_SESSION_RESUMED,
 * SSL_TLS_SNI, SSL_VERSION_LIBRARY, SSL_VERSION_INTERFACE, SSL_SERVER_S_DN,
 * SSL_SERVER_I_DN.  NULL for unknown names or a plain connection; the
 * string lives in p (or is static).
 */
const char *qt_tls_var(qt_pool *p, const qt_conn *c, const char *name);
/* The names qt_tls_var knows, NULL-terminated (for SSLOptions +StdEnvVars). */
extern const char *const qt_tls_var_names[];

/* Master only, before children fork: new current ticket key, old one kept
 * as the previous.  QT_OK or QT_ERROR (no randomness). */
int qt_tls_rotate_ticket_keys(void);

extern const qt_transport qt_tls_transport;

#endif
