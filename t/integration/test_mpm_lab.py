"""The lab handler module (modules/mod_lab.c) and server-status, under every
MPM: the handler wait API (sleep, TCP backend round trip), CPU work, and the
scoreboard showing a request while it is in flight."""

import hashlib
import re
import socket
import threading
import time

import pytest

import harness
from harness import request_bytes, wait_until

pytestmark = pytest.mark.skipif(harness.ORACLE, reason="mod_lab is Quintet's own module")

CONF = """
LoadModule lab_module @BUILDDIR@/modules/mod_lab.so
<Location /lab>
    SetHandler lab
</Location>
<Location /server-status>
    SetHandler server-status
</Location>
"""


@pytest.fixture(scope="module")
def srv(module_servers):
    return module_servers(CONF, {"htdocs/index.html": b"index\n"})


def expected_hash(kb):
    return hashlib.sha256(bytes(range(256)) * 4 * kb).hexdigest()


# ------------------------------------------------------------------ lab

@pytest.mark.parametrize("path,status,body", [
    ("/lab/hello", 200, b"hello from lab\n"),
    ("/lab/sleep?ms=0", 200, b"slept 0 ms\n"),
    ("/lab/sleep?ms=50", 200, b"slept 50 ms\n"),
    ("/lab/sleep?ms=-5", 400, None),
    ("/lab/sleep?ms=abc", 400, None),
    ("/lab/sleep", 400, None),
    ("/lab/hash?kb=0", 200, ("sha256 0 KiB %s\n" % expected_hash(0)).encode()),
    ("/lab/hash?kb=3", 200, ("sha256 3 KiB %s\n" % expected_hash(3)).encode()),
    ("/lab/hash?kb=x", 400, None),
    ("/lab/backend", 400, None),
    ("/lab/nothing", 404, None),
    ("/lab", 404, None),
])
def test_lab_endpoints(srv, path, status, body):
    r = srv.get(path)
    assert r.status == status, srv.diag(r)
    if body is not None:
        assert r.body == body, r
        assert r.header("Content-Type").startswith("text/plain"), r


def test_lab_hash_is_capped(srv):
    r = srv.get("/lab/hash?kb=99999999")
    assert r.status == 200, srv.diag(r)
    assert r.body.startswith(b"sha256 65536 KiB "), r


def test_lab_sleep_really_waits(srv):
    t0 = time.monotonic()
    r = srv.get("/lab/sleep?ms=300")
    took = time.monotonic() - t0
    assert r.status == 200, srv.diag(r)
    assert took >= 0.29, "answered after %.3fs" % took


def test_lab_refuses_post(srv):
    r = srv.get("/lab/hello", method="POST", headers=[("Content-Length", "0")])
    assert r.status == 405, srv.diag(r)


class Backend:
    """A one-line echo service on a free loopback port."""

    def __init__(self, reply_delay=0.0, silent=False):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.delay = reply_delay
        self.silent = silent
        self.lines = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            with c:
                c.settimeout(5)
                line = b""
                while not line.endswith(b"\n"):
                    data = c.recv(1024)
                    if not data:
                        break
                    line += data
                self.lines.append(line)
                time.sleep(self.delay)
                if not self.silent:
                    c.sendall(b"pong " + line)

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def test_lab_backend_round_trip(srv):
    b = Backend(reply_delay=0.1)
    try:
        r = srv.get("/lab/backend?port=%d" % b.port)
        assert r.status == 200, srv.diag(r)
        assert r.body == b"pong ping from lab\n", r
        assert b.lines == [b"ping from lab\n"], b.lines
    finally:
        b.close()


def test_lab_backend_refused_is_502(srv):
    port = harness.free_port()          # nothing listens there
    r = srv.get("/lab/backend?port=%d" % port)
    assert r.status == 502, srv.diag(r)


def test_lab_backend_closing_without_reply_is_502(srv):
    b = Backend(silent=True)
    try:
        r = srv.get("/lab/backend?port=%d" % b.port)
        assert r.status == 502, srv.diag(r)
    finally:
        b.close()


# -------------------------------------------------------------- status

def auto_fields(srv):
    r = srv.get("/server-status?auto")
    assert r.status == 200, srv.diag(r)
    assert r.header("Content-Type").startswith("text/plain"), r
    fields = {}
    for line in r.body.decode("latin-1").splitlines()[1:]:
        k, sep, v = line.partition(": ")
        assert sep, "not a 'Key: value' line: %r" % line
        fields[k] = v
    return fields


def test_status_auto_fields(srv):
    f = auto_fields(srv)
    for key in ("ServerVersion", "ServerMPM", "Total Accesses", "Total kBytes",
                "Uptime", "BusyWorkers", "IdleWorkers", "Scoreboard"):
        assert key in f, f
    assert f["ServerMPM"] == srv.mpm, f
    assert re.fullmatch(r"[_SRWKDCLGI.]+", f["Scoreboard"]), f
    # The status request itself is being served.
    assert int(f["BusyWorkers"]) >= 1, f


def test_status_counts_accesses(srv):
    before = int(auto_fields(srv)["Total Accesses"])
    for _ in range(3):
        assert srv.get("/lab/hello").status == 200
    after = int(auto_fields(srv)["Total Accesses"])
    # 3 hellos plus the second status request.
    assert after >= before + 4, (before, after)


def test_status_shows_request_in_flight(srv):
    done = []
    t = threading.Thread(target=lambda: done.append(srv.get("/lab/sleep?ms=1500")))
    t.start()
    try:
        def seen():
            r = srv.get("/server-status")
            return r if b"GET /lab/sleep?ms=1500 HTTP/1.1" in r.body else None
        r = wait_until(seen, 1.2, interval=0.05)
        assert r is not None, "sleeping request not in server-status\n" + srv.diag()
        assert r.header("Content-Type").startswith("text/html"), r
        f = auto_fields(srv)
        # The sleeper and this status request.
        assert int(f["BusyWorkers"]) >= 2, f
        assert len(re.findall(r"[RWKLCG]", f["Scoreboard"])) >= 2, f
    finally:
        t.join(5)
    assert done and done[0].status == 200, done


def test_status_escapes_html(srv):
    # The status request's own slot shows its request line while it runs.
    r = srv.get("/server-status?x=<script>x</script>")
    assert r.status == 200, srv.diag(r)
    assert b"<script>" not in r.body, "request line not escaped"
    assert b"/server-status?x=&lt;script&gt;x&lt;/script&gt;" in r.body, r.body[-800:]
