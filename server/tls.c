/*
 * The TLS transport (see tls.h): OpenSSL under qt_conn's I/O calls.
 */
#include "tls.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "log.h"
#include "mpm.h"

#define COALESCE 4096          /* small pieces go out as one TLS record */

#ifdef SSL_OP_ENABLE_KTLS
static const qt_transport qt_tls_ktls_transport;

/* Without the kernel's tls module OpenSSL would try (and fail) to switch
 * every connection to kernel TLS, two system calls per handshake: ask the
 * kernel once, when the config loads.  An unconnected socket answers
 * ENOTCONN if the module is there, ENOENT if not. */
static bool kernel_has_tls(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool has = fd >= 0 && (setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) == 0 ||
                           errno != ENOENT);
    if (fd >= 0)
        close(fd);
    return has;
}
#endif

typedef struct tls_conn {
    SSL *ssl;
    qt_tls_select_fn select;
    bool handshaken;
    bool failed;
} tls_conn;

/* ------------------------------------------------------- ticket keys */

typedef struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
} ticket_key;

/*
 * The one piece of process-wide state in the TLS layer, and on purpose:
 * tickets must outlive a configuration (the previous key survives a
 * graceful restart).  Only the master writes it, while loading a
 * configuration and before forking; children read their inherited copy.
 */
static struct {
    ticket_key key[2];         /* [0] current, [1] previous */
    unsigned n;
} ring;

int qt_tls_rotate_ticket_keys(void)
{
    ticket_key k;
    if (RAND_bytes((unsigned char *)&k, sizeof(k)) != 1)
        return QT_ERROR;
    ring.key[1] = ring.key[0];
    ring.key[0] = k;
    ring.n = ring.n < 2 ? ring.n + 1 : 2;
    return QT_OK;
}

static int mac_init(EVP_MAC_CTX *hctx, const ticket_key *k)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof(k->hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(hctx, params);
}

/*
 * OpenSSL's ticket callback: 1 ok, 2 ok but renew, 0 unknown.  A TLS 1.3
 * client uses each ticket once (RFC 8446, C.4), so a resumed TLS 1.3
 * connection always gets a fresh one, or the client's next connection is a
 * full handshake.  TLS 1.2 renews only tickets made with the previous key.
 */
static int ticket_cb(SSL *s, unsigned char name[16], unsigned char *iv,
                     EVP_CIPHER_CTX *ectx, EVP_MAC_CTX *hctx, int enc)
{
    if (ring.n == 0)
        return 0;
    if (enc) {
        const ticket_key *k = &ring.key[0];
        memcpy(name, k->name, sizeof(k->name));
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1 ||
            EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->aes, iv) != 1 ||
            mac_init(hctx, k) != 1)
            return -1;
        return 1;
    }
    for (unsigned i = 0; i < ring.n; i++) {
        const ticket_key *k = &ring.key[i];
        if (memcmp(name, k->name, sizeof(k->name)) != 0)
            continue;
        if (mac_init(hctx, k) != 1 ||
            EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->aes, iv) != 1)
            return -1;
        return i == 0 && SSL_version(s) != TLS1_3_VERSION ? 1 : 2;
    }
    return 0;
}

/* ------------------------------------------------------- contexts */

static void ssl_error_text(char *err, size_t errlen, const char *what, const char *arg)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, errlen, "%s%s%s%s%s", what, arg ? " " : "", arg ? arg : "",
             buf[0] ? ": " : "", buf);
    ERR_clear_error();
}

static const struct { unsigned bit; int version; } versions[] = {
    { QT_TLS_V1, TLS1_VERSION }, { QT_TLS_V11, TLS1_1_VERSION },
    { QT_TLS_V12, TLS1_2_VERSION }, { QT_TLS_V13, TLS1_3_VERSION },
};

/* Lowest and highest enabled version; holes become SSL_OP_NO_* options. */
static void version_range(unsigned mask, int *lo, int *hi, uint64_t *no)
{
    static const uint64_t no_ops[] = { SSL_OP_NO_TLSv1, SSL_OP_NO_TLSv1_1,
                                       SSL_OP_NO_TLSv1_2, SSL_OP_NO_TLSv1_3 };
    *lo = *hi = 0;
    *no = 0;
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        if (mask & versions[i].bit) {
            if (!*lo)
                *lo = versions[i].version;
            *hi = versions[i].version;
        } else {
            *no |= no_ops[i];
        }
    }
}

/* Settings that SNI must carry over to the connection when it switches. */
static int apply_to_ssl(SSL *ssl, const qt_tls_settings *s)
{
    int lo, hi;
    uint64_t no;
    version_range(s->protocols, &lo, &hi, &no);
    SSL_clear_options(ssl, SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 | SSL_OP_NO_TLSv1_2 |
                      SSL_OP_NO_TLSv1_3 | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
    SSL_set_options(ssl, no | (s->honor_cipher_order ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0) |
                         (s->session_tickets ? 0 : SSL_OP_NO_TICKET));
    if (!SSL_set_min_proto_version(ssl, lo) || !SSL_set_max_proto_version(ssl, hi))
        return QT_ERROR;
    if (s->cipher_list && !SSL_set_cipher_list(ssl, s->cipher_list))
        return QT_ERROR;
    if (s->ciphersuites && !SSL_set_ciphersuites(ssl, s->ciphersuites))
        return QT_ERROR;
    SSL_set_num_tickets(ssl, s->session_tickets ? 1 : 0);
    return QT_OK;
}

static int set_versions(SSL_CTX *ctx, const qt_tls_settings *s, char *err, size_t errlen)
{
    int lo, hi;
    uint64_t no;
    version_range(s->protocols, &lo, &hi, &no);
    if (!lo) {
        snprintf(err, errlen, "SSLProtocol enables no protocol");
        return QT_ERROR;
    }
    SSL_CTX_set_options(ctx, no);
    if (!SSL_CTX_set_min_proto_version(ctx, lo) || !SSL_CTX_set_max_proto_version(ctx, hi)) {
        ssl_error_text(err, errlen, "SSLProtocol", NULL);
        return QT_ERROR;
    }
    return QT_OK;
}

static int set_ciphers(SSL_CTX *ctx, const qt_tls_settings *s, char *err, size_t errlen)
{
    if (s->cipher_list && !SSL_CTX_set_cipher_list(ctx, s->cipher_list)) {
        ssl_error_text(err, errlen, "SSLCipherSuite", s->cipher_list);
        return QT_ERROR;
    }
    if (s->ciphersuites && !SSL_CTX_set_ciphersuites(ctx, s->ciphersuites)) {
        ssl_error_text(err, errlen, "SSLCipherSuite TLSv1.3", s->ciphersuites);
        return QT_ERROR;
    }
    if (s->honor_cipher_order)
        SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    return QT_OK;
}

static int load_certs(SSL_CTX *ctx, const qt_tls_settings *s, char *err, size_t errlen)
{
    if (s->ncerts == 0) {
        snprintf(err, errlen, "SSLEngine on but no SSLCertificateFile");
        return QT_ERROR;
    }
    for (unsigned i = 0; i < s->ncerts; i++) {
        if (!s->cert_files[i]) {
            snprintf(err, errlen, "SSLCertificateKeyFile without SSLCertificateFile");
            return QT_ERROR;
        }
        const char *key = s->key_files[i] ? s->key_files[i] : s->cert_files[i];
        if (SSL_CTX_use_certificate_chain_file(ctx, s->cert_files[i]) != 1) {
            ssl_error_text(err, errlen, "SSLCertificateFile", s->cert_files[i]);
            return QT_ERROR;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            ssl_error_text(err, errlen, "SSLCertificateKeyFile", key);
            return QT_ERROR;
        }
    }
    return QT_OK;
}

/* ALPN: we speak http/1.1 only; a client offering only h2 gets no ALPN. */
static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg)
{
    static const unsigned char ours[] = "\x08http/1.1";
    (void)ssl;
    (void)arg;
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, ours, sizeof(ours) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* The host_name entry of a server_name extension, copied into buf. */
static bool parse_sni(const unsigned char *p, size_t n, char *buf, size_t buflen)
{
    if (n < 5)
        return false;
    size_t list = ((size_t)p[0] << 8) | p[1];
    if (list + 2 != n || p[2] != TLSEXT_NAMETYPE_host_name)
        return false;
    size_t len = ((size_t)p[3] << 8) | p[4];
    if (len == 0 || len + 5 > n || len >= buflen || memchr(p + 5, 0, len))
        return false;
    memcpy(buf, p + 5, len);
    buf[len] = '\0';
    return true;
}

/*
 * Runs first on a ClientHello, before version and cipher are chosen: the
 * virtual host named by SNI decides both, not the default one.
 */
static int client_hello_cb(SSL *ssl, int *alert, void *arg)
{
    (void)arg;
    (void)alert;
    qt_conn *c = SSL_get_app_data(ssl);
    tls_conn *t = c->transport_data;
    const unsigned char *p;
    size_t n;
    char name[256];
    if (!t->select || !SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &n) ||
        !parse_sni(p, n, name, sizeof(name)))
        return SSL_CLIENT_HELLO_SUCCESS;
    SSL_CTX *ctx = t->select(c, name);
    if (!ctx || ctx == SSL_get_SSL_CTX(ssl))
        return SSL_CLIENT_HELLO_SUCCESS;
    const qt_tls_settings *s = SSL_CTX_get_app_data(ctx);
    if (!SSL_set_SSL_CTX(ssl, ctx) || apply_to_ssl(ssl, s) != QT_OK)
        return SSL_CLIENT_HELLO_ERROR;
    return SSL_CLIENT_HELLO_SUCCESS;
}

static void set_sessions(SSL_CTX *ctx, const qt_tls_settings *s)
{
    unsigned char sid[sizeof(s->id)];
    memcpy(sid, &s->id, sizeof(sid));
    SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid));
    /* No server-side cache: it would be per process, useless under prefork.
     * Resumption is by tickets only, with keys shared by all children. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (s->session_tickets) {
        SSL_CTX_set_num_tickets(ctx, 1);
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    } else {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
    }
}

SSL_CTX *qt_tls_ctx_new(const qt_tls_settings *s, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_error_text(err, errlen, "SSL_CTX_new", NULL);
        return NULL;
    }
    SSL_CTX_set_app_data(ctx, (void *)s);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
                             SSL_OP_NO_COMPRESSION);
#ifdef SSL_OP_ENABLE_KTLS
    if (kernel_has_tls())
        SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
#endif
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    /* One recv per record instead of two (header, then body), and the
     * client's Finished and first request in one; tls_pending() tells the
     * core about what is left in the buffer. */
    SSL_CTX_set_read_ahead(ctx, 1);
    if (set_versions(ctx, s, err, errlen) != QT_OK || set_ciphers(ctx, s, err, errlen) != QT_OK ||
        load_certs(ctx, s, err, errlen) != QT_OK)
        goto fail;
    set_sessions(ctx, s);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, NULL);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* ------------------------------------------------------- the transport */

/* Maps an SSL result to bytes, 0 (clean end), QT_AGAIN (with c->want) or QT_ERROR. */
static ssize_t ssl_result(qt_conn *c, tls_conn *t, int r)
{
    if (r > 0)
        return r;
    int e = SSL_get_error(t->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        c->want = POLLIN;
        return QT_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        c->want = POLLOUT;
        return QT_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        t->failed = true;     /* no close_notify after a fatal error */
        ERR_clear_error();
        return QT_ERROR;
    }
}

static ssize_t tls_recv(qt_conn *c, void *buf, size_t n)
{
    tls_conn *t = c->transport_data;
    size_t got = 0;
    ERR_clear_error();
    int r = SSL_read_ex(t->ssl, buf, n, &got);
    if (r == 1) {
        t->handshaken = true;
        return (ssize_t)got;
    }
    return ssl_result(c, t, r);
}

/*
 * Read-ahead (see qt_tls_ctx_new) leaves whole records in OpenSSL's buffer
 * that poll() no longer reports, and so does a record bigger than the
 * caller's buffer: the core asks here before it waits on the socket.
 */
static bool tls_pending(const qt_conn *c)
{
    const tls_conn *t = c->transport_data;
    return t->ssl && SSL_has_pending(t->ssl);
}

static ssize_t write_piece(qt_conn *c, tls_conn *t, const void *p, size_t n)
{
    size_t done = 0;
    ERR_clear_error();
    int r = SSL_write_ex(t->ssl, p, n, &done);
    if (r == 1)
        return (ssize_t)done;
    return ssl_result(c, t, r);
}

/*
 * TLS has no writev.  Small leading pieces (a response head and the start
 * of its body) are copied into one record; a retry after WANT_WRITE comes
 * back with the same iovecs, so it rebuilds the same bytes, as OpenSSL
 * requires.
 */
static ssize_t tls_send(qt_conn *c, const struct iovec *iov, int iovcnt)
{
    tls_conn *t = c->transport_data;
    if (iovcnt == 1 || iov[0].iov_len >= COALESCE)
        return write_piece(c, t, iov[0].iov_base, iov[0].iov_len);
    char buf[COALESCE];
    size_t n = 0;
    for (int i = 0; i < iovcnt && n < sizeof(buf); i++) {
        size_t k = iov[i].iov_len < sizeof(buf) - n ? iov[i].iov_len : sizeof(buf) - n;
        memcpy(buf + n, iov[i].iov_base, k);
        n += k;
    }
    return write_piece(c, t, buf, n);
}

#ifdef SSL_OP_ENABLE_KTLS
/* Kernel TLS: the kernel encrypts file pages itself (SSL_sendfile). */
static ssize_t tls_sendfile(qt_conn *c, int fd, off_t *off, size_t n)
{
    tls_conn *t = c->transport_data;
    ERR_clear_error();
    ossl_ssize_t r = SSL_sendfile(t->ssl, fd, *off, n, 0);
    if (r > 0) {
        *off += r;
        return r;
    }
    int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR) {
        ERR_clear_error();
        c->want = POLLOUT;
        return QT_AGAIN;
    }
    return ssl_result(c, t, (int)r);
}
#endif

static int tls_handshake(qt_conn *c)
{
    tls_conn *t = c->transport_data;
    int64_t deadline = qt_now_ms() + c->cfg->main->timeout_ms;
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(t->ssl);
        if (r == 1)
            break;
        unsigned long why = ERR_peek_error();
        ssize_t rc = ssl_result(c, t, r);
        if (rc == QT_AGAIN && qt_wait_fd(c->fd, c->want, deadline) == QT_OK)
            continue;
        qt_log(QT_LOG_INFO, "ssl", "QT0601", "[client %s:%d] TLS handshake %s: %s",
               c->peer_ip, c->peer_port, rc == QT_AGAIN ? "timed out" : "failed",
               why ? ERR_reason_error_string(why) : "connection closed");
        t->failed = true;
        c->aborted = true;
        return QT_ERROR;
    }
    t->handshaken = true;
#ifdef SSL_OP_ENABLE_KTLS
    if (BIO_get_ktls_send(SSL_get_wbio(t->ssl)))
        c->transport = &qt_tls_ktls_transport;
#endif
    return QT_OK;
}

static void tls_shutdown(qt_conn *c)
{
    tls_conn *t = c->transport_data;
    if (!t->handshaken || t->failed)
        return;
    /* One non-blocking close_notify; we do not wait for the peer's. */
    ERR_clear_error();
    SSL_shutdown(t->ssl);
    ERR_clear_error();
}

static void tls_release(qt_conn *c)
{
    tls_conn *t = c->transport_data;
    SSL_free(t->ssl);
    t->ssl = NULL;
}

const qt_transport qt_tls_transport = {
    .name = "tls",
    .recv = tls_recv,
    .send = tls_send,
    .handshake = tls_handshake,
    .shutdown = tls_shutdown,
    .release = tls_release,
    .pending = tls_pending,
};

#ifdef SSL_OP_ENABLE_KTLS
static const qt_transport qt_tls_ktls_transport = {
    .name = "ktls",
    .recv = tls_recv,
    .send = tls_send,
    .sendfile = tls_sendfile,
    .handshake = tls_handshake,
    .shutdown = tls_shutdown,
    .release = tls_release,
    .pending = tls_pending,
};
#endif

int qt_tls_attach(qt_conn *c, SSL_CTX *ctx, qt_tls_select_fn select)
{
    ERR_clear_error();
    SSL *ssl = SSL_new(ctx);
    if (!ssl || !SSL_set_fd(ssl, c->fd)) {
        SSL_free(ssl);
        ERR_clear_error();
        return QT_ERROR;
    }
    tls_conn *t = qt_pcalloc(c->pool, sizeof(*t));
    t->ssl = ssl;
    t->select = select;
    SSL_set_app_data(ssl, c);
    SSL_set_accept_state(ssl);
    c->transport_data = t;
    c->transport = &qt_tls_transport;
    c->tls = true;
    return QT_OK;
}

/* ------------------------------------------------------- variables */

const char *const qt_tls_var_names[] = {
    "SSL_PROTOCOL", "SSL_CIPHER", "SSL_CIPHER_USEKEYSIZE", "SSL_CIPHER_ALGKEYSIZE",
    "SSL_SESSION_RESUMED", "SSL_TLS_SNI", "SSL_VERSION_INTERFACE", "SSL_VERSION_LIBRARY",
    "SSL_SERVER_S_DN", "SSL_SERVER_I_DN", NULL
};

static SSL *conn_ssl(const qt_conn *c)
{
    if (!c->tls || !c->transport_data)
        return NULL;
    return ((const tls_conn *)c->transport_data)->ssl;
}

const char *qt_tls_sni(const qt_conn *c)
{
    SSL *ssl = conn_ssl(c);
    return ssl ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

static const char *dn_text(qt_pool *p, const X509_NAME *n)
{
    if (!n)
        return NULL;
    BIO *b = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253);
    char *data;
    long len = BIO_get_mem_data(b, &data);
    const char *out = qt_pstrndup(p, data, (size_t)len);
    BIO_free(b);
    return out;
}

static const char *cipher_bits(qt_pool *p, SSL *ssl, bool alg)
{
    int algbits = 0;
    int use = SSL_get_cipher_bits(ssl, &algbits);
    return qt_psprintf(p, "%d", alg ? algbits : use);
}

const char *qt_tls_var(qt_pool *p, const qt_conn *c, const char *name)
{
    SSL *ssl = conn_ssl(c);
    if (!ssl)
        return NULL;
    if (strcmp(name, "HTTPS") == 0)
        return "on";
    if (strcmp(name, "SSL_PROTOCOL") == 0)
        return SSL_get_version(ssl);
    if (strcmp(name, "SSL_CIPHER") == 0)
        return SSL_get_cipher_name(ssl);
    if (strcmp(name, "SSL_CIPHER_USEKEYSIZE") == 0)
        return cipher_bits(p, ssl, false);
    if (strcmp(name, "SSL_CIPHER_ALGKEYSIZE") == 0)
        return cipher_bits(p, ssl, true);
    if (strcmp(name, "SSL_SESSION_RESUMED") == 0)
        return SSL_session_reused(ssl) ? "Resumed" : "Initial";
    if (strcmp(name, "SSL_TLS_SNI") == 0)
        return SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (strcmp(name, "SSL_VERSION_INTERFACE") == 0)
        return OPENSSL_VERSION_TEXT;
    if (strcmp(name, "SSL_VERSION_LIBRARY") == 0)
        return OpenSSL_version(OPENSSL_VERSION);
    X509 *cert = SSL_get_certificate(ssl);
    if (strcmp(name, "SSL_SERVER_S_DN") == 0)
        return cert ? dn_text(p, X509_get_subject_name(cert)) : NULL;
    if (strcmp(name, "SSL_SERVER_I_DN") == 0)
        return cert ? dn_text(p, X509_get_issuer_name(cert)) : NULL;
    return NULL;
}
