"""The connection life cycle event and hybrid share (mpm/async_conn.c).

Between requests a plain keep-alive connection is parked as a small record
and its qt_conn is rebuilt when the client speaks again: what it was
(addresses, request count) must come back intact, across many connections
at once (records packed in slabs), through KeepAliveTimeout and a graceful
restart.  Runs under event and hybrid.
"""

import re
import signal

import pytest

import harness
from harness import request_bytes, wait_until

pytestmark = pytest.mark.skipif(harness.ORACLE, reason="Quintet's own MPMs")

PRINTENV = r"""#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
printf 'REMOTE_ADDR=%s\nREMOTE_PORT=%s\n' "$REMOTE_ADDR" "$REMOTE_PORT"
printf 'SERVER_ADDR=%s\nSERVER_PORT=%s\n' "$SERVER_ADDR" "$SERVER_PORT"
"""

CGI = """
ScriptAlias /cgi-bin/ "@ROOT@/cgi-bin/"
<Directory "@ROOT@/cgi-bin">
    Require all granted
</Directory>
"""

FILES = {"htdocs/hello.txt": "hello\n"}


@pytest.fixture(autouse=True)
def only_coroutine_mpms(mpm):
    if mpm not in ("event", "hybrid"):
        pytest.skip("event and hybrid only")


def start(make_server, conf, listen_any=False):
    srv = make_server(conf, FILES, start=False)
    srv.put("cgi-bin/env", PRINTENV, mode=0o755)
    if listen_any:
        # A wildcard listener: the local address comes from getsockname().
        srv.write_conf(srv.conf_text().replace("Listen 127.0.0.1:", "Listen "))
    srv.start()
    return srv


def env_of(r):
    return dict(re.findall(r"^(\w+)=(.*)$", r.body.decode(), re.M))


def keepalive_max(r):
    m = re.search(r"max=(\d+)", r.header("Keep-Alive") or "")
    return int(m.group(1)) if m else None


@pytest.mark.parametrize("listen_any", [False, True], ids=["listen-ip", "listen-any"])
def test_parked_connection_comes_back_as_it_was(make_server, listen_any):
    """Six requests on one connection, parked between each: the CGI ones
    see the same addresses every time, and the request count carried
    across the parks drives Keep-Alive's max (sent to the HTTP/1.0
    keep-alive ones) and MaxKeepAliveRequests."""
    srv = start(make_server, CGI + "MaxKeepAliveRequests 6\nKeepAliveTimeout 30\n",
                listen_any)
    with srv.conn() as c:
        want = {"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": str(c.sock.getsockname()[1]),
                "SERVER_ADDR": "127.0.0.1", "SERVER_PORT": str(srv.port)}
        maxes = []
        for i in range(6):
            if i % 2 == 0:
                c.send(request_bytes("GET", "/cgi-bin/env?n=%d" % i))
                r = c.read_response()
                assert r.status == 200 and env_of(r) == want, (i, srv.diag(r))
            else:
                c.send(request_bytes("GET", "/hello.txt", version="HTTP/1.0",
                                     headers=[("Connection", "keep-alive")]))
                r = c.read_response()
                assert r.body == b"hello\n", srv.diag(r)
                maxes.append(keepalive_max(r))
        assert maxes == [4, 2, None], maxes
        assert "keep-alive" not in r.conn_tokens(), r
        closed, extra, _ = c.wait_closed(10)
        assert closed and extra == b"", extra


def test_many_parked_connections_answer_again(make_server):
    """300 idle connections (several slabs of records), every other one
    closed by the client, 100 new ones: each still open one answers a
    second request, and KeepAliveTimeout then closes every one."""
    srv = start(make_server, "KeepAliveTimeout 3\nMaxKeepAliveRequests 0\n")
    conns = []
    try:
        for _ in range(300):
            c = srv.conn()
            c.send(request_bytes("GET", "/hello.txt"))
            conns.append(c)
        for c in conns:
            assert c.read_response().body == b"hello\n"
        for c in conns[::2]:
            c.close()
        conns = conns[1::2]
        for _ in range(100):
            c = srv.conn()
            c.send(request_bytes("GET", "/hello.txt"))
            assert c.read_response().status == 200
            conns.append(c)
        for c in conns:
            c.send(request_bytes("GET", "/hello.txt"))
        for c in conns:
            r = c.read_response()
            assert r.status == 200 and r.body == b"hello\n", srv.diag(r)
        for c in conns:
            closed, extra, _ = c.wait_closed(15)
            assert closed and extra == b"", extra
    finally:
        for c in conns:
            c.close()
    assert srv.get("/hello.txt").status == 200


def test_graceful_restart_drops_parked_connections_not_silent_ones(make_server):
    """USR1: idle keep-alive connections are closed; one that connected but
    has not sent its request yet is still answered."""
    srv = start(make_server, "KeepAliveTimeout 60\nTimeout 60\n")
    idle = []
    silent = srv.conn()
    try:
        for _ in range(100):
            c = srv.conn()
            c.send(request_bytes("GET", "/hello.txt"))
            assert c.read_response().status == 200
            idle.append(c)
        srv.signal(signal.SIGUSR1)
        for c in idle:
            closed, extra, _ = c.wait_closed(15)
            assert closed and extra == b"", extra
        silent.send(request_bytes("GET", "/hello.txt"))
        r = silent.read_response()
        assert r.status == 200 and r.body == b"hello\n", srv.diag(r)
    finally:
        silent.close()
        for c in idle:
            c.close()
    assert wait_until(lambda: srv.get("/hello.txt").status == 200, 10)
