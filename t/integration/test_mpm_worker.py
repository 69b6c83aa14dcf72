"""worker MPM specifics: a fixed pool of threads per child (never a thread
per request), many slow requests served at once by few processes, spare
thread management, and MaxConnectionsPerChild recycling."""

import os
import threading
import time

import pytest

import harness
from harness import wait_until

pytestmark = pytest.mark.skipif(harness.ORACLE, reason="Quintet's own MPM")

LAB = """
LoadModule lab_module @BUILDDIR@/modules/mod_lab.so
<Location /lab>
    SetHandler lab
</Location>
"""


@pytest.fixture(autouse=True)
def only_worker(mpm):
    if mpm != "worker":
        pytest.skip("worker MPM only")


def threads_of(pid):
    try:
        return len(os.listdir("/proc/%d/task" % pid))
    except FileNotFoundError:
        return 0


def test_default_layout_threads_per_child(make_server):
    srv = make_server(LAB)
    kids = wait_until(lambda: len(harness.children_of(srv.pid)) >= 3 and
                      harness.children_of(srv.pid), 5)
    assert kids and len(kids) == 3, "StartServers 3: %r" % kids
    # Main thread + listener + ThreadsPerChild 25.
    counts = wait_until(lambda: [threads_of(k) for k in kids]
                        if all(threads_of(k) == 27 for k in kids) else None, 5)
    assert counts, [threads_of(k) for k in kids]


def test_fifty_slow_requests_few_processes(make_server):
    srv = make_server(LAB + "StartServers 2\nMinSpareThreads 25\nMaxSpareThreads 75\n")
    kids = wait_until(lambda: len(harness.children_of(srv.pid)) >= 2 and
                      harness.children_of(srv.pid), 5)
    assert kids, srv.diag()
    # Main thread + listener + ThreadsPerChild, once the child is set up.
    assert wait_until(lambda: all(threads_of(k) == 27 for k in kids), 5), \
        [threads_of(k) for k in kids]
    before = {k: threads_of(k) for k in kids}
    results, peak = [], [0]
    start = threading.Barrier(50, timeout=10)

    def client():
        start.wait()
        try:
            results.append(srv.get("/lab/sleep?ms=300").status)
        except (OSError, harness.ProtocolError) as e:
            results.append(repr(e))

    t0 = time.monotonic()
    clients = [threading.Thread(target=client) for _ in range(50)]
    for t in clients:
        t.start()
    while any(t.is_alive() for t in clients) and time.monotonic() - t0 < 20:
        peak[0] = max(peak[0], len(harness.children_of(srv.pid)))
        time.sleep(0.02)
    for t in clients:
        t.join(5)
    took = time.monotonic() - t0
    assert results == [200] * 50, results
    # 50 x 300 ms one at a time would be 15 s; threads wait side by side.
    assert took < 5, "took %.2fs" % took
    assert peak[0] < 50, "%d processes for 50 connections" % peak[0]
    # The threads of the first children were reused, not created per request.
    for k, n in before.items():
        if harness.pid_alive(k):
            assert threads_of(k) == n, (k, n, threads_of(k))


def test_max_connections_per_child_recycles(make_server):
    srv = make_server(LAB + "StartServers 1\nServerLimit 4\nThreadsPerChild 2\n"
                      "MaxRequestWorkers 8\nMinSpareThreads 1\nMaxSpareThreads 4\n"
                      "MaxConnectionsPerChild 3\n")
    first = wait_until(srv.children, 5)
    assert first, srv.diag()
    for i in range(12):
        r = srv.get("/lab/hello")
        assert r.status == 200, srv.diag(r)
    gone = wait_until(lambda: not set(first) & set(srv.children()), 5)
    assert gone, "children %r never recycled\n%s" % (first, srv.diag())
    assert wait_until(srv.children, 5), "no replacement child"
    assert srv.get("/lab/hello").status == 200


def test_spare_threads_add_children_under_load(make_server):
    # One child of 4 threads; 8 sleepers leave no idle thread, so the
    # master must add children to get back above MinSpareThreads.
    srv = make_server(LAB + "StartServers 1\nServerLimit 6\nThreadsPerChild 4\n"
                      "MaxRequestWorkers 24\nMinSpareThreads 4\nMaxSpareThreads 12\n")
    assert wait_until(lambda: len(srv.children()) == 1, 5), srv.children()
    results = []
    clients = [threading.Thread(target=lambda: results.append(
        srv.get("/lab/sleep?ms=2500").status)) for _ in range(8)]
    for t in clients:
        t.start()
    grew = wait_until(lambda: len(srv.children()) >= 3, 2.4)
    for t in clients:
        t.join(15)
    assert grew, "still %d children under load\n%s" % (len(srv.children()), srv.diag())
    assert results == [200] * 8, results


def test_script_exits_do_not_wake_the_main_thread(make_server):
    """A CGI script's exit signal (SIGCHLD, ignored in a child) must be
    dropped by the kernel, not queued for the process: queued, it woke the
    child's main thread once per script.  The main thread's own 1 s tick
    is allowed for."""
    srv = make_server("StartServers 1\nServerLimit 1\nMaxRequestWorkers 25\n"
                      "MinSpareThreads 1\nMaxSpareThreads 50\n"
                      "ScriptAlias /cgi-bin/ \"@ROOT@/cgi-bin/\"\n"
                      "<Directory \"@ROOT@/cgi-bin\">\n    Require all granted\n</Directory>\n",
                      start=False)
    srv.put("cgi-bin/hi", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhi\\n'\n", 0o755)
    srv.start()
    kids = wait_until(lambda: harness.children_of(srv.pid), 5)
    assert kids, srv.diag()
    kid = kids[0]
    assert wait_until(lambda: threads_of(kid) == 27, 5), threads_of(kid)
    before, t0 = harness.voluntary_switches(kid, kid), time.monotonic()
    n = 30
    with srv.conn() as c:               # one connection: one child serves all
        for _ in range(n):
            c.send(harness.request_bytes("GET", "/cgi-bin/hi"))
            r = c.read_response(timeout=10)
            assert (r.status, r.body) == (200, b"hi\n"), srv.diag(r)
    woke = harness.voluntary_switches(kid, kid) - before
    ticks = time.monotonic() - t0 + 1
    if ticks * 2 + 5 >= n:
        pytest.skip("too slow a machine to tell %d scripts from ticks" % n)
    assert woke <= ticks * 2 + 5, "main thread woke %d times for %d scripts in %.1fs" % (
        woke, n, ticks - 1)
