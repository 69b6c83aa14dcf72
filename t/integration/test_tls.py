"""HTTPS (mod_ssl over the TLS transport), black-box under every MPM.

Certificates are made here with the openssl CLI: one per name-based
virtual host (CN a.test and b.test), so SNI selection shows in the
certificate the client receives.
"""

import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

import harness

pytestmark = pytest.mark.skipif(harness.ORACLE, reason="Quintet's own modules and certs")

NAMES = ("a.test", "b.test")


def make_cert(root, name):
    crt, key = os.path.join(root, name + ".crt"), os.path.join(root, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-sha256",
                    "-days", "2", "-nodes", "-subj", "/CN=" + name,
                    "-addext", "subjectAltName=DNS:" + name,
                    "-keyout", key, "-out", crt],
                   check=True, capture_output=True, timeout=60)
    return crt, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("certs"))
    return {n: make_cert(d, n) for n in NAMES}


# Blocking MPMs hold one process (prefork, fork) or thread per stalled
# handshake: give them room so the stall test measures blocking, not size.
POOL = {"prefork": "StartServers 6\nMinSpareServers 6\nMaxSpareServers 12\n"}


def tls_conf(certs, mpm, extra_main="", extra_a="", extra_b=""):
    mods = "LoadModule ssl_module @BUILDDIR@/modules/mod_ssl.so\n"
    return mods + POOL.get(mpm, "") + extra_main + """
Timeout 2
<VirtualHost *:@PORT@>
    ServerName a.test
    SSLEngine on
    SSLCertificateFile %s
    SSLCertificateKeyFile %s
    %s
</VirtualHost>
<VirtualHost *:@PORT@>
    ServerName b.test
    DocumentRoot "@ROOT@/htdocs/b"
    SSLEngine on
    SSLCertificateFile %s
    SSLCertificateKeyFile %s
    %s
</VirtualHost>
<Directory "@ROOT@/htdocs/b">
    Require all granted
</Directory>
ScriptAlias /cgi-bin/ "@ROOT@/cgi-bin/"
ScriptAlias /cgi2/ "@ROOT@/cgi2/"
<Directory "@ROOT@/cgi-bin">
    Require all granted
    SSLOptions +StdEnvVars
</Directory>
<Directory "@ROOT@/cgi2">
    Require all granted
</Directory>
LogFormat "%%h \\"%%r\\" %%>s %%{SSL_PROTOCOL}x %%{SSL_CIPHER}x" tlslog
CustomLog logs/tls_log tlslog
""" % (certs["a.test"][0], certs["a.test"][1], extra_a,
       certs["b.test"][0], certs["b.test"][1], extra_b)


ENV_CGI = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv\n"
BIG = bytes(range(256)) * 1200            # 300 KiB: many records, partial writes

FILES = {
    "htdocs/index.html": "site a\n",
    "htdocs/big.bin": BIG,
    "htdocs/b/index.html": "site b\n",
    "cgi-bin/env.cgi": ENV_CGI,
    "cgi2/env.cgi": ENV_CGI,
}


@pytest.fixture(scope="module")
def srv(module_servers, certs, mpm):
    s = module_servers(tls_conf(certs, mpm), files=FILES, start=False)
    os.chmod(s.path("cgi-bin/env.cgi"), 0o755)
    os.chmod(s.path("cgi2/env.cgi"), 0o755)
    return s.start()


def client_ctx(certs=None, version=None, max_version=None, alpn=None, seclevel0=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if certs:
        for crt, _ in certs.values():
            ctx.load_verify_locations(crt)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if seclevel0:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    if version:
        ctx.minimum_version = version
    ctx.maximum_version = max_version or version or ssl.TLSVersion.MAXIMUM_SUPPORTED
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


class TlsConn(harness.Conn):
    """harness.Conn over TLS: same framing, wrapped socket."""

    def __init__(self, port, ctx, sni="a.test", session=None, timeout=harness.IO_TIMEOUT):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname=sni, session=session)
        self.buf = b""
        self.eof = False
        self.timeout = timeout


def get(srv, path="/", host="a.test", sni="a.test", ctx=None, session=None, method="GET"):
    ctx = ctx or client_ctx()
    with TlsConn(srv.port, ctx, sni=sni, session=session) as c:
        c.send(harness.request_bytes(method, path, host, [("Connection", "close")]))
        r = c.read_final(head=method == "HEAD")
        r.tls_version = c.sock.version()
        r.session = c.sock.session
        r.reused = c.sock.session_reused
        r.alpn = c.sock.selected_alpn_protocol()
        r.peer = c.sock.getpeercert()
        return r


def peer_cn(r):
    return dict(x[0] for x in r.peer["subject"])["commonName"]


# ------------------------------------------------------------ basics

@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_versions_accepted(srv, version):
    r = get(srv, ctx=client_ctx(version=version))
    assert r.status == 200 and r.body == b"site a\n", srv.diag(r)
    assert r.tls_version == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                             ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_versions_refused_by_default(srv, version):
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        get(srv, ctx=client_ctx(version=version, seclevel0=True))


def test_old_version_accepted_when_enabled(make_server, certs, mpm):
    """The control for the test above: the same client does get through
    TLS 1.1 when the server enables it, so the refusal was the server's."""
    conf = tls_conf(certs, mpm, extra_main="SSLProtocol all\nSSLCipherSuite DEFAULT:@SECLEVEL=0\n")
    s = make_server(conf, files=FILES)
    try:
        r = get(s, ctx=client_ctx(version=ssl.TLSVersion.TLSv1_1, seclevel0=True))
    except ssl.SSLError as e:
        if "no protocols available" in str(e) or "UNSUPPORTED" in str(e):
            pytest.skip("this client's OpenSSL cannot speak TLS 1.1: %s" % e)
        raise
    assert r.status == 200 and r.tls_version == "TLSv1.1"


def test_protocol_directive_refuses_tls12(make_server, certs, mpm):
    s = make_server(tls_conf(certs, mpm, extra_main="SSLProtocol -all +TLSv1.3\n"), files=FILES)
    assert get(s, ctx=client_ctx(version=ssl.TLSVersion.TLSv1_3)).status == 200
    with pytest.raises(ssl.SSLError):
        get(s, ctx=client_ctx(version=ssl.TLSVersion.TLSv1_2))


def test_cipher_suite_tls12(make_server, certs, mpm):
    conf = tls_conf(certs, mpm, extra_main="SSLCipherSuite ECDHE-RSA-AES128-GCM-SHA256\n")
    s = make_server(conf, files=FILES)
    ctx = client_ctx(version=ssl.TLSVersion.TLSv1_2)
    with TlsConn(s.port, ctx) as c:
        assert c.sock.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256"


def test_cipher_suite_tls13(make_server, certs, mpm):
    conf = tls_conf(certs, mpm, extra_main="SSLCipherSuite TLSv1.3 TLS_CHACHA20_POLY1305_SHA256\n")
    s = make_server(conf, files=FILES)
    with TlsConn(s.port, client_ctx(version=ssl.TLSVersion.TLSv1_3)) as c:
        assert c.sock.cipher()[0] == "TLS_CHACHA20_POLY1305_SHA256"


def test_big_file_and_keep_alive(srv):
    with TlsConn(srv.port, client_ctx()) as c:
        for _ in range(3):
            c.send(harness.request_bytes("GET", "/big.bin", "a.test"))
            r = c.read_final()
            assert r.status == 200 and r.body == BIG, srv.diag(r)
        c.send(harness.request_bytes("HEAD", "/big.bin", "a.test"))
        r = c.read_final(head=True)
        assert r.header("Content-Length") == str(len(BIG))


def test_alpn_offers_http11(srv):
    assert get(srv, ctx=client_ctx(alpn=["h2", "http/1.1"])).alpn == "http/1.1"
    assert get(srv, ctx=client_ctx(alpn=["h2"])).alpn is None


def test_plain_http_on_tls_port_fails_cleanly(srv):
    with srv.conn() as c:
        c.send(harness.request_bytes("GET", "/", "a.test"))
        closed, extra, _ = c.wait_closed(5)
        assert closed and not extra.startswith(b"HTTP/"), extra
    assert get(srv).status == 200          # and the server still serves


# ------------------------------------------------------------ SNI

@pytest.mark.parametrize("sni,cn,body", [
    ("a.test", "a.test", b"site a\n"),
    ("b.test", "b.test", b"site b\n"),
])
def test_sni_selects_certificate_and_vhost(srv, certs, sni, cn, body):
    r = get(srv, host=sni, sni=sni, ctx=client_ctx(certs))
    assert peer_cn(r) == cn
    assert r.status == 200 and r.body == body, srv.diag(r)


def test_unknown_sni_gets_default_vhost(srv, certs):
    r = get(srv, host="a.test", sni="other.test", ctx=client_ctx(certs))
    assert peer_cn(r) == "a.test"


@pytest.mark.parametrize("sni,host", [("a.test", "b.test"), ("b.test", "a.test"),
                                      ("b.test", "B.TEST:443")])
def test_host_sni_mismatch(srv, sni, host):
    r = get(srv, host=host, sni=sni)
    want = 200 if host.lower().startswith(sni) else 421
    assert r.status == want, srv.diag(r)


# ------------------------------------------------------------ resumption

def resumed_run(s, n=6):
    ctx = client_ctx(version=ssl.TLSVersion.TLSv1_3)
    first = get(s, ctx=ctx)
    assert first.status == 200 and not first.reused
    # Several connections: under prefork they land on different children,
    # which must all know the ticket key.
    return [get(s, ctx=ctx, session=first.session).reused for _ in range(n)]


def test_resumption_with_tickets(srv):
    assert all(resumed_run(srv))


def test_resumption_tls12(srv):
    ctx = client_ctx(version=ssl.TLSVersion.TLSv1_2)
    first = get(srv, ctx=ctx)
    assert get(srv, ctx=ctx, session=first.session).reused


def test_no_resumption_without_tickets(make_server, certs, mpm):
    s = make_server(tls_conf(certs, mpm, extra_main="SSLSessionTickets off\n"), files=FILES)
    assert not any(resumed_run(s, 3))


def test_tickets_survive_one_graceful_restart(make_server, certs, mpm):
    """Keys rotate on graceful restart; the previous key still resumes, the
    one before it no longer does."""
    import signal
    s = make_server(tls_conf(certs, mpm), files=FILES)
    ctx = client_ctx(version=ssl.TLSVersion.TLSv1_3)
    first = get(s, ctx=ctx)
    s.signal(signal.SIGUSR1)
    gen_ok = harness.wait_until(lambda: get(s, ctx=ctx).status == 200, 5)
    assert gen_ok
    time.sleep(0.5)                    # let the old generation go
    assert get(s, ctx=ctx, session=first.session).reused
    # A second rotation retires the key of the first ticket.
    s.signal(signal.SIGUSR1)
    time.sleep(1.0)
    assert harness.wait_until(lambda: not get(s, ctx=ctx, session=first.session).reused, 5)


def test_resumed_tls13_connection_gets_a_fresh_ticket(srv):
    """A TLS 1.3 client uses each ticket once: a resumed connection must
    bring the next one, or every other connection is a full handshake."""
    ctx = client_ctx(version=ssl.TLSVersion.TLSv1_3)
    session = get(srv, ctx=ctx).session
    for _ in range(3):
        r = get(srv, ctx=ctx, session=session)
        assert r.status == 200 and r.reused
        assert r.session.id != session.id, "no new ticket after resumption"
        session = r.session


# ------------------------------------------------------------ records

def test_pipelined_requests_in_separate_records(srv):
    """Back-to-back records arrive in one socket read; the ones after the
    first wait in OpenSSL's buffer, where polling the socket cannot see them."""
    n = 8
    with TlsConn(srv.port, client_ctx()) as c:
        for i in range(n):
            last = [("Connection", "close")] if i == n - 1 else []
            c.send(harness.request_bytes("GET", "/", "a.test", last))
        for _ in range(n):
            r = c.read_final()
            assert r.status == 200 and r.body == b"site a\n", srv.diag(r)


def test_pipelined_burst_larger_than_the_read_buffer(srv):
    """60 KiB of pipelined requests in one write: more than OpenSSL reads
    from the socket at once (16 KiB with read-ahead), so after the bytes it
    holds are served, the rest is still in the socket with no new
    readiness edge to announce it."""
    pad = [("X-Pad", "p" * 1000)]
    reqs = [harness.request_bytes("GET", "/", "a.test", pad) for _ in range(59)]
    reqs.append(harness.request_bytes("GET", "/", "a.test", pad + [("Connection", "close")]))
    with TlsConn(srv.port, client_ctx()) as c:
        c.send(b"".join(reqs))
        for i in range(len(reqs)):
            r = c.read_final(timeout=5)
            assert r.status == 200 and r.body == b"site a\n", "response %d: %s" % (
                i, srv.diag(r))


def test_request_after_a_body_in_the_same_record(srv):
    """The body ends mid-record: the next request's bytes are already
    decrypted inside OpenSSL when the first response goes out."""
    body = b"x" * 9000                   # past the core's first read
    first = harness.request_bytes("POST", "/index.html", "a.test",
                                  [("Content-Length", str(len(body)))], body)
    second = harness.request_bytes("GET", "/", "a.test", [("Connection", "close")])
    with TlsConn(srv.port, client_ctx()) as c:
        c.send(first + second)            # one write: one record (< 16 KiB)
        c.read_final()
        r = c.read_final()
        assert r.status == 200 and r.body == b"site a\n", srv.diag(r)


# ------------------------------------------------------------ handshakes

def test_stalled_handshakes_do_not_block_others(srv):
    stalled = []
    try:
        for _ in range(3):
            c = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            c.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # half a ClientHello
            stalled.append(c)
        t0 = time.monotonic()
        r = get(srv)
        assert r.status == 200
        assert time.monotonic() - t0 < 1.5, "a stalled handshake delayed another client"
    finally:
        for c in stalled:
            c.close()


def test_handshake_timeout_closes(srv):
    """Timeout 2: a client that never finishes its handshake is dropped."""
    with srv.conn(timeout=8) as c:
        c.send(b"\x16\x03\x01\x02\x00\x01")
        closed, _, took = c.wait_closed(8)
        assert closed and took < 5, took


# ------------------------------------------------------------ variables

def cgi_env(srv, path, **kw):
    r = get(srv, path, **kw)
    assert r.status == 200, srv.diag(r)
    return dict(l.split("=", 1) for l in r.body.decode().splitlines() if "=" in l)


def test_cgi_env_under_tls(srv):
    env = cgi_env(srv, "/cgi-bin/env.cgi", ctx=client_ctx(version=ssl.TLSVersion.TLSv1_3))
    assert env.get("HTTPS") == "on"
    assert env.get("REQUEST_SCHEME") == "https"
    assert env.get("SSL_PROTOCOL") == "TLSv1.3"
    assert env.get("SSL_TLS_SNI") == "a.test"
    assert env.get("SSL_CIPHER", "").startswith("TLS_")
    assert env.get("SSL_SESSION_RESUMED") == "Initial"
    assert "CN=a.test" in env.get("SSL_SERVER_S_DN", "")


def test_std_env_only_where_enabled(srv):
    """SSLOptions +StdEnvVars covers cgi-bin only; HTTPS and the SNI name
    are always there (as mod_ssl does)."""
    env = cgi_env(srv, "/cgi2/env.cgi")
    assert env.get("HTTPS") == "on" and env.get("SSL_TLS_SNI") == "a.test"
    assert "SSL_PROTOCOL" not in env


def test_log_tokens(srv):
    get(srv, "/index.html?logtoken", ctx=client_ctx(version=ssl.TLSVersion.TLSv1_2))
    m = srv.wait_log("logs/tls_log", r'"GET /index.html\?logtoken HTTP/1.1" 200 TLSv1.2 \S+')
    assert m, srv.read("logs/tls_log")


# ------------------------------------------------------------ configuration

def test_https_listener_needs_certificate(make_server):
    s = make_server("LoadModule ssl_module @BUILDDIR@/modules/mod_ssl.so\n"
                    "Listen 127.0.0.1:@PORT2@ https\n".replace("@PORT2@", str(harness.free_port())),
                    start=False)
    r = s.cmd("-t")
    assert r.returncode != 0 and "SSLEngine" in r.stderr + r.stdout


def test_missing_certificate_file_refused(make_server, certs, mpm):
    conf = tls_conf(certs, mpm).replace(certs["b.test"][0], "/nonexistent/b.crt")
    s = make_server(conf, files=FILES, start=False)
    r = s.cmd("-t")
    assert r.returncode != 0 and "/nonexistent/b.crt" in r.stderr + r.stdout
