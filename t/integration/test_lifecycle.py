"""Process life cycle: daemon mode and -k stop, TERM, graceful (USR1) and
hard (HUP) restarts, a broken config on reload, a killed child, log reopen.

Each test starts its own server.  A reload is detected without relying on
log wording: the new config adds a Redirect, and the test polls (bounded)
until fresh requests see it.
"""

import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import harness
from harness import request_bytes, wait_until

HELLO = b"hello lifecycle\n"
BIG = bytes(range(256)) * (8 * 4096)          # 8 MiB
FILES = {
    "htdocs/index.html": b"<html>index</html>\n",
    "htdocs/hello.txt": HELLO,
    "htdocs/big.bin": BIG,
}
RELOAD_MARK = "Redirect /reloaded http://example.test/ok\n"


def pooled(mpm):
    return mpm != "fork"


@pytest.fixture
def srv(make_server):
    return make_server("", FILES)


def get_ok(srv, path="/hello.txt"):
    r = srv.get(path)
    assert r.status == 200, srv.diag(r)
    return r


def reloaded(srv):
    """True once a fresh connection is served by the new configuration."""
    try:
        return srv.get("/reloaded").status == 302
    except (OSError, harness.ProtocolError):
        return False


def reload_with(srv, sig, extra=RELOAD_MARK, timeout=15):
    srv.write_conf(srv.conf_text(srv.extra_conf + "\n" + extra))
    srv.signal(sig)
    ok = wait_until(lambda: reloaded(srv), timeout, interval=0.05)
    assert ok, "config not reloaded %ss after %s\n%s" % (timeout, sig.name, srv.diag())


def no_zombies(pid, timeout=10):
    def clean():
        # One read per child: it may be reaped between two.
        states = (harness.proc_stat(c) for c in harness.children_of(pid))
        return all(st is None or st[0] != "Z" for st in states)
    return wait_until(clean, timeout)


# ------------------------------------------------------------- daemon mode

def read_pid(srv):
    try:
        with open(srv.path("logs/httpd.pid")) as f:
            return int(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def kill_tree(pid):
    for c in harness.children_of(pid):
        os.kill(c, signal.SIGKILL)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_daemon_mode_pidfile_and_k_stop(make_server):
    srv = make_server("", FILES, start=False)
    pid = 0
    out = open(srv.path("daemon-out.txt"), "wb")
    try:
        # No -DFOREGROUND: the command must return once the daemon runs.
        # Output goes to a file so a daemon keeping stdio cannot hang us.
        p = subprocess.Popen([harness.HTTPD, "-d", srv.root, "-f", "conf/httpd.conf"],
                             stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        rc = p.wait(10)
        assert rc == 0, srv.read("daemon-out.txt") + srv.diag()
        pid = wait_until(lambda: read_pid(srv), 5)
        assert pid and harness.pid_alive(pid), ("no live pid in PidFile", pid, srv.diag())
        assert pid != p.pid, "the pid file names the process that returned"
        assert wait_until(srv.accepts, 5), srv.diag()
        get_ok(srv)

        again = srv.cmd("-k", "start")
        assert again.returncode == 0, (again.stdout, again.stderr)
        assert re.search(r"already running", again.stdout + again.stderr), again
        assert read_pid(srv) == pid and harness.pid_alive(pid)

        srv.write_conf(srv.conf_text(srv.extra_conf + "\n" + RELOAD_MARK))
        gr = srv.cmd("-k", "graceful")
        assert gr.returncode == 0, (gr.stdout, gr.stderr)
        assert wait_until(lambda: reloaded(srv), 5, interval=0.05), \
            "-k graceful did not reload\n" + srv.diag()
        assert read_pid(srv) == pid and harness.pid_alive(pid)

        st = srv.cmd("-k", "stop")
        assert st.returncode == 0, (st.stdout, st.stderr)
        assert wait_until(lambda: not harness.pid_alive(pid), 10), "master survived -k stop"
        assert wait_until(lambda: not os.path.exists(srv.path("logs/httpd.pid")), 5), \
            "pid file left after stop"
        assert not srv.accepts(), "still listening after -k stop"
        st = srv.cmd("-k", "stop")
        assert st.returncode == 0, ("-k stop with nothing running", st.stdout, st.stderr)
        assert "not running" in st.stdout + st.stderr, st
    finally:
        out.close()
        if pid and harness.pid_alive(pid):
            kill_tree(pid)


def test_sigterm_stops_master_and_children(srv):
    get_ok(srv)
    kids = wait_until(srv.children, 3) if pooled(srv.mpm) else srv.children()
    assert kids or not pooled(srv.mpm), "no children\n" + srv.diag()
    assert read_pid(srv) == srv.pid, "PidFile must hold the master pid"
    rc = srv.stop()
    assert rc == 0, "exit status %r after SIGTERM\n%s" % (rc, srv.diag())
    assert wait_until(lambda: not any(harness.pid_alive(k) for k in kids), 5), \
        "children outlived the master"
    assert not os.path.exists(srv.path("logs/httpd.pid")), "pid file left after TERM"


# ------------------------------------------------------------ restarts

def test_graceful_restart_completes_slow_request_body(srv):
    with srv.conn() as c:
        c.send(request_bytes("POST", "/hello.txt", headers=[("Content-Length", "10")])
               + b"abc")
        time.sleep(0.2)     # let a child pick the connection up before USR1
        reload_with(srv, signal.SIGUSR1)
        c.send(b"defghij")
        r = c.read_response(timeout=5)
    assert r.status == 200, srv.diag(r)
    assert r.body == HELLO
    assert srv.alive()
    get_ok(srv)


def test_graceful_restart_completes_slow_download(srv):
    with srv.conn() as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        c.send(request_bytes("GET", "/big.bin", headers=[("Connection", "close")]))
        first = c.sock.recv(16384)
        assert first.startswith(b"HTTP/1.1 200 "), first[:200]
        c.buf = first
        reload_with(srv, signal.SIGUSR1)
        r = c.read_response(timeout=20)
    assert r.status == 200, srv.diag(r)
    assert len(r.body) == len(BIG) and r.body == BIG, "download cut by graceful restart"


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGHUP], ids=["USR1", "HUP"])
def test_reload_with_broken_config_keeps_serving(srv, sig):
    # The rule (mpm.h: qt_runtime_reload keeps the running config).
    # Apache's master instead re-reads, fails and exits, children and all.
    get_ok(srv)
    size = len(srv.error_log())
    srv.write_conf(srv.conf_text(srv.extra_conf + "\nBrokenDirectiveXyz on\n"))
    srv.signal(sig)
    logged = wait_until(lambda: "BrokenDirectiveXyz" in srv.error_log()[size:], 5)
    assert logged, "refused reload not logged\n" + srv.diag()
    assert srv.alive(), "master exited on a broken reload\n" + srv.diag()
    for _ in range(5):
        get_ok(srv)
    assert srv.get("/reloaded").status == 404, "the broken config was applied"
    # The running config is still good: a correct reload works afterwards.
    reload_with(srv, sig)


def test_graceful_restarts_under_load_lose_no_request(srv):
    """A client keeps requesting on fresh connections while the server is
    gracefully restarted three times: every request must succeed."""
    results = []
    stop = threading.Event()

    def client():
        while not stop.is_set() and len(results) < 2000:
            try:
                r = srv.get("/hello.txt")
                results.append(r.status if r.body == HELLO else "bad body")
            except (OSError, harness.ProtocolError) as e:
                results.append(repr(e))

    t = threading.Thread(target=client)
    t.start()
    try:
        for i in range(3):
            time.sleep(0.2)
            srv.signal(signal.SIGUSR1)
        time.sleep(0.5)
    finally:
        stop.set()
        t.join(15)
    bad = [x for x in results if x != 200]
    assert results and not bad, ("%d of %d requests failed: %r\n%s"
                                 % (len(bad), len(results), bad[:5], srv.diag()))
    assert srv.alive()


def test_sighup_restart_serves_again(srv):
    get_ok(srv)
    reload_with(srv, signal.SIGHUP)
    assert srv.alive()
    for _ in range(5):
        get_ok(srv)
    assert no_zombies(srv.pid), "zombie children after HUP"


def test_killed_child_is_replaced(srv):
    keep = None
    if not pooled(srv.mpm):
        keep = srv.conn()        # fork: a child exists only per connection
        keep.send(request_bytes("GET", "/hello.txt"))
        keep.read_response()
    kids = wait_until(srv.children, 3)
    assert kids, "no children\n" + srv.diag()
    victim = kids[0]
    os.kill(victim, signal.SIGKILL)
    if keep:
        keep.close()
    gone = wait_until(lambda: victim not in srv.children(), 5)
    assert gone, "killed child %d never reaped (zombie?)\n%s" % (victim, srv.diag())
    if pooled(srv.mpm):
        fresh = wait_until(lambda: set(srv.children()) - set(kids), 5)
        assert fresh, "no replacement child after kill -9 %d" % victim
    for _ in range(5):
        get_ok(srv)
    assert srv.alive()
    assert no_zombies(srv.pid), "defunct children: %r" % [
        (c, harness.proc_stat(c)) for c in srv.children()]


def test_log_reopen_on_graceful(srv):
    get_ok(srv, "/hello.txt?before-rotate")
    assert srv.wait_log("logs/access_log", r"before-rotate"), srv.read("logs/access_log")
    os.rename(srv.path("logs/access_log"), srv.path("logs/access_log.1"))
    reload_with(srv, signal.SIGUSR1)
    assert wait_until(lambda: os.path.exists(srv.path("logs/access_log")), 5), \
        "no new access_log after graceful restart"
    get_ok(srv, "/hello.txt?after-rotate")
    assert srv.wait_log("logs/access_log", r"after-rotate"), srv.read("logs/access_log")
    assert "after-rotate" not in srv.read("logs/access_log.1")
    assert "before-rotate" in srv.read("logs/access_log.1")
