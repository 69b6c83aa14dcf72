#!/usr/bin/python3
"""Holds N idle keep-alive connections open against 127.0.0.1:PORT.

Each connection sends one GET and reads its response, so the server has
really accepted and served it and now holds it as an idle keep-alive
connection.  It prints "STARTED", waits for a line on stdin before it
opens anything (so the caller can measure the server first), then prints "READY opened=O answered=A" and waits
for a line on stdin (or HOLD seconds) before closing everything.

Usage: idleconns.py PORT COUNT PATH WAIT HOLD
  WAIT: seconds allowed for all responses (process-per-connection servers
        spawn as connections arrive); HOLD: seconds to wait for the go-on.
Every loop is bounded by COUNT and by WAIT/HOLD.
"""

import resource
import select
import selectors
import socket
import sys
import time

BATCH = 200


def raise_nofile(count):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, hard), max(want, hard)))


def response_complete(buf):
    """True when buf holds a whole response with a Content-Length body."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    length = 0
    for line in buf[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    return len(buf) >= end + 4 + length


def open_batch(port, n, request, sel, socks):
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
        sel.register(s, selectors.EVENT_WRITE, [request, b""])


def pump(sel, deadline, answered):
    """Sends pending requests and reads responses until deadline or idle."""
    while time.monotonic() < deadline:
        events = sel.select(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
        if not events:
            return
        for key, mask in events:
            state = key.data
            s = key.fileobj
            try:
                if mask & selectors.EVENT_WRITE and state[0]:
                    sent = s.send(state[0])
                    state[0] = state[0][sent:]
                    if not state[0]:
                        sel.modify(s, selectors.EVENT_READ, state)
                    continue
                data = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                sel.unregister(s)
                continue
            if not data:
                sel.unregister(s)
                continue
            state[1] += data
            if response_complete(state[1]):
                answered.append(s)
                sel.unregister(s)


def main():
    port, count, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    wait, hold = float(sys.argv[4]), float(sys.argv[5])
    raise_nofile(count)
    request = ("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path).encode()
    sel = selectors.DefaultSelector()
    socks, answered = [], []
    print("STARTED", flush=True)
    if not select.select([sys.stdin], [], [], hold)[0]:
        return
    sys.stdin.readline()
    deadline = time.monotonic() + wait
    while len(socks) < count and time.monotonic() < deadline:
        open_batch(port, min(BATCH, count - len(socks)), request, sel, socks)
        pump(sel, min(deadline, time.monotonic() + 0.05), answered)
    while len(answered) < len(socks) and time.monotonic() < deadline:
        pump(sel, min(deadline, time.monotonic() + 1.0), answered)
    print("READY opened=%d answered=%d" % (len(socks), len(answered)), flush=True)
    select.select([sys.stdin], [], [], hold)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
