"""fork MPM specifics: a process per connection, reaped at once (no zombies
under load), MaxRequestWorkers bounding the live children while the
kernel backlog holds the rest, and no process for clients that have
already hung up when others wait."""

import contextlib
import os
import signal
import socket
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


def child_minor_faults(pid):
    """Page faults of the master's reaped children (cminflt in /proc): each
    forked child adds some, so the count grows with the forks."""
    return int(harness.stat_fields(pid)[8])


@contextlib.contextmanager
def master_stopped(srv):
    """Holds the master still: connections made meanwhile wait, complete,
    in the kernel's backlog, as they do when the master falls behind."""
    srv.signal(signal.SIGSTOP)
    try:
        yield
    finally:
        srv.signal(signal.SIGCONT)


def served_after_burst(srv, burst):
    """Runs burst() while the master is stopped, then a real request
    queued behind it; returns that response once the master is back."""
    with master_stopped(srv):
        burst()
        late = srv.conn(timeout=60)
        late.send(request_bytes("GET", "/lab/hello"))
    try:
        return late.read_response()
    finally:
        late.close()


def test_clients_gone_before_asking_cost_no_process(make_server):
    srv = make_server(CONF)
    n = 100

    def served_and_reaped():
        assert srv.get("/lab/hello").status == 200
        assert wait_until(lambda: not srv.children(), 10)

    served_and_reaped()
    before = child_minor_faults(srv.pid)
    served_and_reaped()
    one_child = child_minor_faults(srv.pid) - before
    assert one_child > 0

    def hang_up():
        for _ in range(n):
            socket.create_connection(("127.0.0.1", srv.port), timeout=5).close()

    before = child_minor_faults(srv.pid)
    assert served_after_burst(srv, hang_up).status == 200
    assert wait_until(lambda: not srv.children(), 10)
    forked = (child_minor_faults(srv.pid) - before) / one_child
    # Only the real request needs a process; the old master forked n+1.
    assert forked < n / 4, "about %.0f children for %d hung-up clients" % (forked, n)
    assert srv.alive()


def test_abandoned_requests_do_not_hold_up_the_queue(make_server):
    # wrk restarting, browsers giving up: requests whose clients hung up
    # while they waited in the backlog.  Each would sleep 10 s in its
    # child; the master gives processes to at most the last few.
    srv = make_server(CONF)
    n = 120

    def abandon():
        for _ in range(n):
            c = srv.conn()
            c.send(request_bytes("GET", "/lab/sleep?ms=10000"))
            c.close()

    assert served_after_burst(srv, abandon).status == 200
    sleeping = srv.children()
    assert len(sleeping) < n / 2, "%d children for %d abandoned requests" % (
        len(sleeping), n)
    # A child that has just exited is reaped on the master's next pass.
    assert wait_until(lambda: not zombies(srv.pid), 10), zombies(srv.pid)
    assert srv.alive()


def test_half_closed_client_is_served(make_server):
    # A client may shut down its sending side after its request and still
    # wait for the answer: alone in the queue, it gets a process.
    srv = make_server(CONF)
    with srv.conn() as c:
        c.send(request_bytes("GET", "/lab/hello", headers=[("Connection", "close")]))
        c.sock.shutdown(socket.SHUT_WR)
        assert c.read_response().status == 200
