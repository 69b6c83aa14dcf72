"""fork MPM specifics: a process per connection, reaped at once (no zombies
under load), and MaxRequestWorkers bounding the live children while the
kernel backlog holds the rest."""

import threading
import time

import pytest

import harness
from harness import request_bytes, wait_until

pytestmark = pytest.mark.skipif(harness.ORACLE, reason="Quintet's own MPM")

CONF = """
LoadModule lab_module @BUILDDIR@/modules/mod_lab.so
<Location /lab>
    SetHandler lab
</Location>
"""


@pytest.fixture(autouse=True)
def only_fork(mpm):
    if mpm != "fork":
        pytest.skip("fork MPM only")


def zombies(pid):
    return [c for c in harness.children_of(pid)
            if (harness.proc_stat(c) or ("?",))[0] == "Z"]


def test_no_zombies_after_200_connections(make_server):
    srv = make_server(CONF)
    errors = []

    def client(n):
        for _ in range(n):
            try:
                r = srv.get("/lab/hello")
                if r.status != 200:
                    errors.append(r.status)
            except (OSError, harness.ProtocolError) as e:
                errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(20,)) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]
    # Every child served its one connection and was reaped.
    gone = wait_until(lambda: not harness.children_of(srv.pid), 5)
    assert gone, "children left after 200 connections: %r" % [
        (c, harness.proc_stat(c)) for c in harness.children_of(srv.pid)]
    assert not zombies(srv.pid)
    assert srv.alive()


def test_child_per_connection_serves_keep_alive(make_server):
    srv = make_server(CONF)
    with srv.conn() as c:
        for _ in range(3):
            c.send(request_bytes("GET", "/lab/hello"))
            assert c.read_response().status == 200
        kids = harness.children_of(srv.pid)
        assert len(kids) == 1, kids
    # The connection closed: its process exits and is reaped.
    assert wait_until(lambda: not harness.children_of(srv.pid), 5)


def test_max_request_workers_bounds_children(make_server):
    srv = make_server(CONF + "MaxRequestWorkers 3\n")
    results, peak = [], [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], len(harness.children_of(srv.pid)))
            time.sleep(0.01)

    def client():
        results.append(srv.get("/lab/sleep?ms=400").status)

    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.monotonic()
    clients = [threading.Thread(target=client) for _ in range(6)]
    for t in clients:
        t.start()
    for t in clients:
        t.join(15)
    took = time.monotonic() - t0
    stop.set()
    sampler.join(2)
    assert results == [200] * 6, results
    assert peak[0] <= 3, "%d children at once with MaxRequestWorkers 3" % peak[0]
    # Six 400 ms requests three at a time: at least two rounds.
    assert took >= 0.78, "all served in %.2fs: not bounded" % took


def test_full_server_closes_keep_alive_for_waiting_clients(make_server):
    # One process allowed: a keep-alive client holds it.  A second client
    # waits in the backlog; the first one's connection must be closed
    # after a response (Connection: close) so the second gets its turn,
    # however busy the first client keeps it.
    srv = make_server(CONF + "ServerLimit 1\nMaxRequestWorkers 1\nKeepAliveTimeout 30\n")
    with srv.conn() as first:
        first.send(request_bytes("GET", "/lab/hello"))
        assert first.read_response().status == 200
        second = srv.conn()
        try:
            second.send(request_bytes("GET", "/lab/hello"))
            closed = False
            for _ in range(50):         # the master looks at least once a second
                time.sleep(0.1)
                first.send(request_bytes("GET", "/lab/hello"))
                r = first.read_response()
                assert r.status == 200, r
                if "close" in r.conn_tokens():
                    closed = True
                    break
            assert closed, "the busy keep-alive client kept the only process"
            r2 = second.read_response(timeout=10)
            assert r2.status == 200, r2
        finally:
            second.close()
    assert srv.alive()
