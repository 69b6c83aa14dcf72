"""prefork specifics, and what the three blocking MPMs (prefork, worker,
fork) share in mpm/mpm_common.c: the keep-alive wait sleeps in recv() on a
socket turned blocking, so every other call on that socket must stay
non-blocking and the idle timeout must still hold."""

import time

import pytest

import harness
from harness import request_bytes

pytestmark = pytest.mark.skipif(harness.ORACLE, reason="Quintet's own MPM")

SMALL = b"small\n"
BIG = bytes(range(256)) * 1024                  # 256 KiB: sent with sendfile()
FILES = {"htdocs/small.txt": SMALL, "htdocs/big.bin": BIG}


@pytest.fixture(autouse=True)
def only_blocking(mpm):
    if mpm not in ("prefork", "worker", "fork"):
        pytest.skip("blocking MPMs only")


def test_keep_alive_mixes_sendfile_bodies_and_idle_timeout(make_server):
    srv = make_server("KeepAliveTimeout 1\n", FILES)
    with srv.conn() as c:
        for path, body in [("/small.txt", SMALL), ("/big.bin", BIG),
                           ("/small.txt", SMALL), ("/big.bin", BIG),
                           ("/small.txt", SMALL)]:
            time.sleep(0.05)        # idle between requests: the blocking wait
            c.send(request_bytes("GET", path))
            r = c.read_response(timeout=10)
            assert (r.status, r.body) == (200, body), srv.diag(r)
        # A request in two pieces: the head's rest arrives after a pause.
        c.send(b"GET /small.txt HTTP/1.1\r\n")
        time.sleep(0.2)
        c.send(b"Host: localhost\r\n\r\n")
        r = c.read_response(timeout=10)
        assert (r.status, r.body) == (200, SMALL), srv.diag(r)
        closed, extra, secs = c.wait_closed(5)
    assert closed, "idle connection still open after 5s (KeepAliveTimeout 1)"
    assert extra == b"", extra
    assert 0.5 <= secs <= 4, "closed after %.2fs, KeepAliveTimeout is 1s" % secs


def test_pipelined_requests_after_idle_wait(make_server):
    srv = make_server("", FILES)
    with srv.conn() as c:
        c.send(request_bytes("GET", "/small.txt"))
        assert c.read_response().status == 200
        time.sleep(0.1)
        c.send(request_bytes("GET", "/small.txt") + request_bytes("GET", "/big.bin"))
        r1 = c.read_response(timeout=10)
        r2 = c.read_response(timeout=10)
    assert (r1.status, r1.body) == (200, SMALL), srv.diag(r1)
    assert (r2.status, r2.body) == (200, BIG), srv.diag(r2)


def test_a_connection_wakes_one_idle_child_not_all(make_server, mpm):
    """No thundering herd: each prefork child waits on the listeners with
    EPOLLEXCLUSIVE, so a new connection wakes one idle child.  Woken
    processes are counted by their voluntary context switches; a child's
    10 s safety tick may add one or two, never the 20 of a herd."""
    if mpm != "prefork":
        pytest.skip("prefork's accept path")
    srv = make_server("StartServers 20\nMinSpareServers 20\nMaxSpareServers 40\n", FILES)
    deadline = time.monotonic() + 10
    while len(srv.children()) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)                 # let every child reach its accept wait
    before = {pid: harness.voluntary_switches(pid) for pid in srv.children()}
    assert len(before) >= 20, before
    for _ in range(3):
        r = srv.get("/small.txt")
        assert (r.status, r.body) == (200, SMALL), srv.diag(r)
    woken = [pid for pid, n in before.items()
             if n is not None and harness.voluntary_switches(pid) not in (None, n)]
    assert len(woken) <= 8, "%d of %d idle children woke for 3 connections" % (
        len(woken), len(before))
