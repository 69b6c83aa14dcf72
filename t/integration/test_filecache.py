"""The small-file cache (FileCacheSize, FileCacheValid): what a client sees.

The cache keeps only files unchanged for two seconds, so the fixtures write
their files and wait that long once.  Requests that must meet the cache go
over one keep-alive connection: one connection is served by one process,
whose cache holds the file after the first answer.
"""

import re
import time

import pytest

import harness
from harness import request_bytes

pytestmark = pytest.mark.skipif(harness.ORACLE, reason="a Quintet directive")

SETTLE = 2.5
V1 = b"first version of the file\n"
V2 = b"second, longer version of the same file\n"


def settled_server(module_servers, conf, name):
    srv = module_servers(conf, {"htdocs/f.txt": V1, "htdocs/r.txt": b"0123456789" * 10},
                         name=name)
    time.sleep(SETTLE)
    return srv


@pytest.fixture(scope="module")
def strict(module_servers):
    return settled_server(module_servers, "FileCacheValid 0\n", "fc-strict")


@pytest.fixture(scope="module")
def window(module_servers):
    return settled_server(module_servers, "FileCacheValid 60\n", "fc-window")


def fetch(c, path, headers=(), method="GET"):
    c.send(request_bytes(method, path, headers=list(headers)))
    return c.read_final(head=(method == "HEAD"))


def test_a_change_is_served_at_once_with_valid_0(strict):
    with strict.conn() as c:
        assert fetch(c, "/f.txt").body == V1
        assert fetch(c, "/f.txt").body == V1          # now from the cache
        strict.put("htdocs/f.txt", V2)
        r = fetch(c, "/f.txt")
        assert r.status == 200, strict.diag(r)
        assert r.body == V2
        assert r.header("Content-Length") == str(len(V2))


def test_within_the_window_the_cached_file_is_served(window):
    with window.conn() as c:
        assert fetch(c, "/f.txt").body == V1
        window.put("htdocs/f.txt", V2)
        # FileCacheValid 60: this process trusts its stat for a minute, and
        # answers consistently with the old length and bytes.
        r = fetch(c, "/f.txt")
        assert r.status == 200, window.diag(r)
        assert r.body == V1
        assert r.header("Content-Length") == str(len(V1))


def test_ranges_conditionals_and_head_from_the_cache(strict):
    body = b"0123456789" * 10
    with strict.conn() as c:
        first = fetch(c, "/r.txt")
        assert first.body == body
        etag = first.header("ETag")
        r = fetch(c, "/r.txt", [("Range", "bytes=2-5")])
        assert r.status == 206, strict.diag(r)
        assert r.body == b"2345"
        assert r.header("Content-Range") == "bytes 2-5/100"
        r = fetch(c, "/r.txt", [("Range", "bytes=0-0,98-")])
        assert r.status == 206, strict.diag(r)
        m = re.search(r"boundary=(\S+)", r.header("Content-Type"))
        parts = r.body.split(b"--" + m.group(1).encode())
        assert [p.split(b"\r\n\r\n", 1)[1][:-2] for p in parts[1:-1]] == [b"0", b"89"]
        r = fetch(c, "/r.txt", [("If-None-Match", etag)])
        assert r.status == 304 and r.body == b""
        r = fetch(c, "/r.txt", method="HEAD")
        assert r.status == 200 and r.body == b""
        assert r.header("Content-Length") == "100"
        assert r.header("ETag") == etag


def test_cache_off(module_servers):
    srv = module_servers("FileCacheSize 0\n", {"htdocs/f.txt": V1}, name="fc-off")
    time.sleep(SETTLE)
    with srv.conn() as c:
        assert fetch(c, "/f.txt").body == V1
        srv.put("htdocs/f.txt", V2)
        assert fetch(c, "/f.txt").body == V2
