"""hybrid MPM specifics: one child with Threads worker threads (plus the
monitor), thousands of sleeping requests served side by side in about one
sleep period, CPU work on one connection not holding up the others, and
idle keep-alive connections that hold no coroutine stack."""

import os
import resource
import selectors
import socket
import subprocess
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
def only_hybrid(mpm):
    if mpm != "hybrid":
        pytest.skip("hybrid MPM only")


def threads_of(pid):
    try:
        return len(os.listdir("/proc/%d/task" % pid))
    except FileNotFoundError:
        return 0


def one_child(srv):
    kids = wait_until(lambda: len(srv.children()) == 1 and srv.children(), 5)
    assert kids, "expected one child: %r\n%s" % (srv.children(), srv.diag())
    return kids[0]


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connect_many(port, n, batch=500):
    """n connected non-blocking sockets, opened in batches (listen backlog)."""
    socks = []
    sel = selectors.DefaultSelector()
    while len(socks) < n:
        pending = []
        for _ in range(min(batch, n - len(socks))):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            sel.register(s, selectors.EVENT_WRITE)
            pending.append(s)
        left, deadline = set(pending), time.monotonic() + 20
        while left and time.monotonic() < deadline:
            for key, _ in sel.select(1):
                sel.unregister(key.fileobj)
                left.discard(key.fileobj)
        assert not left, "%d connections never completed" % len(left)
        socks.extend(pending)
    sel.close()
    return socks


def exchange(socks, request, timeout=60):
    """Sends `request` on every socket at once.  Returns ({index: response
    bytes}, seconds from the first send to the last reply, seconds the
    sending took)."""
    sel = selectors.DefaultSelector()
    bufs = {}
    t0 = time.monotonic()
    for i, s in enumerate(socks):
        s.send(request)
        sel.register(s, selectors.EVENT_READ, i)
        bufs[i] = b""
    send_time = time.monotonic() - t0
    done, deadline = {}, t0 + timeout
    while len(done) < len(socks) and time.monotonic() < deadline:
        for key, _ in sel.select(1):
            i = key.data
            try:
                data = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            bufs[i] += data
            if complete(bufs[i]) or not data:
                done[i] = bufs[i]
                sel.unregister(key.fileobj)
    took = time.monotonic() - t0
    sel.close()
    return done, took, send_time


def complete(buf):
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def status_of(resp):
    return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.1 ") else None


def close_all(socks):
    for s in socks:
        s.close()


# ------------------------------------------------------------- structure

@pytest.mark.parametrize("threads", [1, 3])
def test_one_child_with_threads_workers(make_server, threads):
    srv = make_server(LAB + "Threads %d\n" % threads)
    child = one_child(srv)
    # The workers (the child's main thread is worker 0) and the monitor.
    assert wait_until(lambda: threads_of(child) == threads + 1, 5), \
        (threads_of(child), srv.diag())
    assert srv.get("/lab/hello").status == 200


def test_default_threads_is_online_cpus(make_server):
    srv = make_server(LAB)
    child = one_child(srv)
    want = os.sysconf("SC_NPROCESSORS_ONLN") + 1
    assert wait_until(lambda: threads_of(child) == want, 5), threads_of(child)


def test_workers_on_one_cpu_do_not_hand_the_poller_over(make_server):
    """Pinned to one CPU, the worker that finds one request in epoll runs
    it itself.  Waking a parked worker to poll meanwhile only makes the two
    take turns on that CPU: a futex wake and two thread switches per
    request.  Counted by voluntary switches over 200 keep-alive requests:
    one worker stays parked (the old hand-off woke both every request)."""
    srv = make_server(LAB + "Threads 2\nMaxKeepAliveRequests 0\n")
    child = one_child(srv)
    assert wait_until(lambda: threads_of(child) == 3, 5), threads_of(child)
    cpu = min(os.sched_getaffinity(0))
    tids = [int(t) for t in os.listdir("/proc/%d/task" % child)]
    for tid in tids:
        os.sched_setaffinity(tid, {cpu})
    time.sleep(0.5)                 # the monitor reads the workers' CPUs every 100 ms

    def comm(tid):
        with open("/proc/%d/task/%d/comm" % (child, tid)) as f:
            return f.read().strip()
    workers = [t for t in tids if comm(t) != "httpd-monitor"]
    assert len(workers) == 2, [(t, comm(t)) for t in tids]
    before = {t: harness.voluntary_switches(child, t) for t in workers}
    with srv.conn() as c:
        for _ in range(200):
            c.send(harness.request_bytes("GET", "/lab/hello"))
            r = c.read_final()
            assert r.status == 200, srv.diag(r)
    woke = sorted(harness.voluntary_switches(child, t) - before[t] for t in workers)
    assert woke[0] <= 20, "both workers woke for 200 requests: %r" % woke


@pytest.mark.parametrize("value", ["0", "65", "two"])
def test_bad_threads_refused(make_server, value):
    srv = make_server(LAB + "Threads %s\n" % value, start=False)
    p = srv.cmd("-t")
    assert p.returncode != 0, p
    assert "Threads" in p.stderr, p.stderr


# ---------------------------------------------------------- concurrency

def sleepers(make_server, n, ms):
    """n connections, each asking for one ms-long sleep at once; returns
    the seconds from the last request sent to the last reply."""
    if raise_nofile(n + 200) < n + 200:
        pytest.skip("RLIMIT_NOFILE too low for %d connections" % n)
    srv = make_server(LAB + "Threads 2\nMaxRequestWorkers %d\nListenBacklog 4096\n"
                      "KeepAliveTimeout 60\nTimeout 60\n" % (2 * n))
    one_child(srv)
    socks = connect_many(srv.port, n)
    try:
        req = harness.request_bytes("GET", "/lab/sleep?ms=%d" % ms)
        done, took, send_time = exchange(socks, req)
    finally:
        close_all(socks)
    statuses = [status_of(r) for r in done.values()]
    assert len(done) == n and statuses.count(200) == n, \
        "%d replies, %d OK" % (len(done), statuses.count(200))
    return took - send_time


def test_two_thousand_sleepers_take_about_one_sleep(make_server):
    """2,000 requests sleeping 100 ms, all in flight at once: the
    coroutines park side by side.  Serially that is 200 s; a pool of 400
    threads (MaxRequestWorkers' default) needs 5 rounds, 0.5 s."""
    after_send = sleepers(make_server, 2000, 100)
    assert after_send < 10 * 0.1, "%.2fs after the last request" % after_send


BURST = os.path.join(harness.BUILDDIR, "t", "integration", "burst")


def test_ten_thousand_sleepers_at_once(make_server):
    """10,000 connections each asking for /lab/sleep?ms=100 at once, sent
    and read by a C client (t/integration/burst.c; Python alone needs more
    CPU for 10,000 requests than the sleep lasts): 10,000 coroutines park
    side by side.  Every one answers 200, and the whole takes a small
    fraction of the 1,000 s the sleeps add up to (serially); here it
    takes about one sleep period plus the CPU time of 10,000 requests.
    The bound is loose on purpose: a loaded CI machine must not flake."""
    n, ms = 10000, 100
    assert os.access(BURST, os.X_OK), "%s not built (make)" % BURST
    if raise_nofile(n + 200) < n + 200:
        pytest.skip("RLIMIT_NOFILE too low for %d connections" % n)
    srv = make_server(LAB + "Threads 2\nMaxRequestWorkers %d\nListenBacklog 4096\n"
                      "KeepAliveTimeout 60\nTimeout 60\n" % (2 * n))
    one_child(srv)
    p = subprocess.run([BURST, str(srv.port), str(n), "/lab/sleep?ms=%d" % ms, "120"],
                       capture_output=True, text=True, timeout=180)
    print(p.stdout.strip())
    got = dict(kv.split("=") for kv in p.stdout.split())
    assert p.returncode == 0, (p.stdout, p.stderr, srv.diag())
    assert int(got["replies"]) == n and int(got["ok"]) == n, p.stdout
    serial_ms = n * ms
    assert float(got["wall_ms"]) < 0.1 * serial_ms, p.stdout


def test_cpu_heavy_request_does_not_hold_up_the_others(make_server):
    """One worker thread busy hashing for long: the monitor hands the
    netpoller and the queue to another thread, so hello stays quick."""
    srv = make_server(LAB + "Threads 1\n")
    one_child(srv)
    t0 = time.monotonic()
    assert srv.get("/lab/hash?kb=65536").status == 200
    hash_time = time.monotonic() - t0
    # Several hashes in a row keep the worker busy for many hash times.
    busy = threading.Thread(target=lambda: [srv.get("/lab/hash?kb=65536")
                                            for _ in range(4)])
    busy.start()
    time.sleep(min(hash_time / 2, 0.05))
    worst = 0.0
    try:
        while busy.is_alive():
            t = time.monotonic()
            assert srv.get("/lab/hello").status == 200
            worst = max(worst, time.monotonic() - t)
    finally:
        busy.join(60)
    assert worst < max(0.2, hash_time * 0.75), \
        "hello took %.3fs while a %.3fs hash ran" % (worst, hash_time)


# ------------------------------------------------------------- memory

def smaps(pid):
    pss = None
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    with open("/proc/%d/maps" % pid) as f:
        vmas = sum(1 for _ in f)
    return pss, vmas


STATUS = """
<Location /server-status>
    SetHandler server-status
</Location>
"""


def status_values(srv):
    r = srv.get("/server-status?auto")
    assert r.status == 200, r
    out = {}
    for line in r.body.decode().splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            out[key] = value
    return out


def test_idle_keepalive_connections_hold_no_stack(make_server):
    """2,000 keep-alive connections between requests: each is a bare fd
    watched by the netpoller, not a parked coroutine with a stack."""
    n = 2000
    if raise_nofile(n + 200) < n + 200:
        pytest.skip("RLIMIT_NOFILE too low")
    srv = make_server(LAB + STATUS + "KeepAliveTimeout 60\nMaxKeepAliveRequests 0\n")
    child = one_child(srv)
    before = smaps(child)
    socks = connect_many(srv.port, n)
    try:
        done = exchange(socks, harness.request_bytes("GET", "/lab/hello"))[0]
        assert len(done) == n and all(status_of(r) == 200 for r in done.values())
        time.sleep(0.3)
        st = status_values(srv)
        after = smaps(child)
    finally:
        close_all(socks)
    print("idle keep-alive: %.0f bytes PSS per connection (stack caches "
          "included), status %r" % ((after[0] - before[0]) * 1024.0 / n, st))
    # The acceptor and the status request itself; nothing per connection.
    assert int(st["Coroutines"]) <= 4, st
    assert int(st["WatchedIdleFds"]) >= n, st
    assert int(st["CoroutinesCreated"]) >= n, st
