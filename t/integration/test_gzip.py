"""gzip (mod_deflate as an output filter), black-box under every MPM.

Raw requests check the rules header by header; curl --compressed checks a
real client decodes what we send.
"""

import gzip
import os
import re
import subprocess
import time
import zlib

import pytest

import harness

pytestmark = pytest.mark.skipif(harness.ORACLE, reason="Quintet's own module")

TEXT = ("<p>Quintet compresses this paragraph.</p>\n" * 200).encode()   # 8 KiB
SMALL = b"tiny\n"

CONF = r"""
LoadModule deflate_module @BUILDDIR@/modules/mod_deflate.so
AddOutputFilterByType DEFLATE text/html text/plain
ScriptAlias /cgi-bin/ "@ROOT@/cgi-bin/"
<Directory "@ROOT@/cgi-bin">
    Require all granted
</Directory>
<Directory "@ROOT@/htdocs/all">
    SetOutputFilter DEFLATE
    DeflateCompressionLevel 1
</Directory>
<Directory "@ROOT@/htdocs/pre">
    DeflatePrecompressed On
</Directory>
"""

STREAM_CGI = """#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
echo first part of the stream
sleep 1
echo second part
"""

FILES = {
    "htdocs/page.html": TEXT,
    "htdocs/small.txt": SMALL,
    "htdocs/data.bin": TEXT,                      # no type listed: untouched
    "htdocs/all/data.bin": TEXT,                  # SetOutputFilter: everything
    "htdocs/pre/app.js": TEXT,
    "htdocs/pre/app.js.gz": gzip.compress(TEXT),
    "htdocs/pre/stale.txt": TEXT,
    "htdocs/pre/stale.txt.gz": gzip.compress(b"old"),
    "cgi-bin/stream.cgi": STREAM_CGI,
    "cgi-bin/encoded.cgi": "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n"
                           "Content-Encoding: br\\r\\n\\r\\n" + "x" * 500 + "'\n",
    "cgi-bin/nocontent.cgi": "#!/bin/sh\nprintf 'Status: 204 No Content\\r\\n"
                             "Content-Type: text/plain\\r\\n\\r\\n'\n",
}


@pytest.fixture(scope="module")
def srv(module_servers):
    s = module_servers(CONF, files=FILES, start=False)
    for n in ("stream.cgi", "encoded.cgi", "nocontent.cgi"):
        os.chmod(s.path("cgi-bin/" + n), 0o755)
    os.utime(s.path("htdocs/pre/stale.txt.gz"), (harness.MTIME - 100, harness.MTIME - 100))
    return s.start()


def get(srv, path, ae="gzip", method="GET", headers=()):
    h = list(headers)
    if ae is not None:
        h.append(("Accept-Encoding", ae))
    return srv.get(path, method=method, headers=h)


def gunzip(body):
    return zlib.decompress(body, 16 + zlib.MAX_WBITS)


# ------------------------------------------------------------ negotiation

@pytest.mark.parametrize("ae,compressed", [
    ("gzip", True),
    ("gzip, deflate, br", True),
    ("x-gzip", True),
    ("*", True),
    ("gzip;q=0.5", True),
    ("gzip;q=0", False),
    ("gzip;q=0.0, *;q=1", False),
    ("*;q=0", False),
    ("identity", False),
    ("br", False),
    (None, False),
])
def test_accept_encoding(srv, ae, compressed):
    r = get(srv, "/page.html", ae=ae)
    assert r.status == 200
    assert r.header("Vary") == "Accept-Encoding"          # always, on compressible
    if compressed:
        assert r.header("Content-Encoding") == "gzip", srv.diag(r)
        assert r.header("Content-Length") is None
        assert "chunked" in r.header("Transfer-Encoding")
        assert gunzip(r.body) == TEXT
        assert len(r.body) < len(TEXT) / 4
    else:
        assert r.header("Content-Encoding") is None
        assert r.body == TEXT and r.header("Content-Length") == str(len(TEXT))


def test_etag_suffix_and_conditionals(srv):
    plain = get(srv, "/page.html", ae=None)
    gz = get(srv, "/page.html")
    assert gz.header("ETag") == plain.header("ETag")[:-1] + '-gzip"'
    # The gzip variant's tag revalidates, and its 304 names that variant.
    r = get(srv, "/page.html", headers=[("If-None-Match", gz.header("ETag"))])
    assert r.status == 304, srv.diag(r)
    assert r.header("ETag") == gz.header("ETag")
    assert r.header("Vary") == "Accept-Encoding"
    # The identity tag from a client that now accepts gzip: 304 for identity.
    r = get(srv, "/page.html", headers=[("If-None-Match", plain.header("ETag"))])
    assert r.status == 304 and r.header("ETag") == plain.header("ETag")
    # A tag of another file does not match.
    r = get(srv, "/page.html", headers=[("If-None-Match", '"1-2-gzip"')])
    assert r.status == 200 and gunzip(r.body) == TEXT


def test_head_same_headers_no_body(srv):
    g = get(srv, "/page.html")
    with srv.conn() as c:
        c.send(harness.request_bytes("HEAD", "/page.html", headers=[
            ("Accept-Encoding", "gzip"), ("Connection", "close")]))
        h = c.read_final(head=True)
        closed, extra, _ = c.wait_closed(3)
    assert h.status == 200 and extra == b""
    for name in ("Content-Encoding", "Vary", "ETag", "Content-Type"):
        assert h.header(name) == g.header(name), name
    assert h.header("Content-Length") is None


def test_small_body_untouched(srv):
    r = get(srv, "/small.txt")
    assert r.body == SMALL and r.header("Content-Encoding") is None
    assert r.header("Vary") == "Accept-Encoding"
    assert r.header("ETag") and "-gzip" not in r.header("ETag")


def test_type_not_listed_untouched(srv):
    r = get(srv, "/data.bin")
    assert r.body == TEXT and r.header("Content-Encoding") is None
    assert r.header("Vary") is None


def test_set_output_filter(srv):
    r = get(srv, "/all/data.bin")
    assert r.header("Content-Encoding") == "gzip" and gunzip(r.body) == TEXT


def test_range_gets_identity_bytes(srv):
    r = get(srv, "/page.html", headers=[("Range", "bytes=0-9")])
    assert r.status == 206 and r.body == TEXT[:10]
    assert r.header("Content-Encoding") is None
    assert r.header("Vary") == "Accept-Encoding"


def test_already_encoded_untouched(srv):
    r = get(srv, "/cgi-bin/encoded.cgi")
    assert r.header("Content-Encoding") == "br" and r.body == b"x" * 500


def test_204_untouched(srv):
    r = get(srv, "/cgi-bin/nocontent.cgi")
    assert r.status == 204 and r.header("Content-Encoding") is None


def test_cgi_streams_chunk_by_chunk(srv):
    """The first line must arrive (decodable) before the script's sleep ends."""
    with srv.conn() as c:
        c.send(harness.request_bytes("GET", "/cgi-bin/stream.cgi", headers=[
            ("Accept-Encoding", "gzip"), ("Connection", "close")]))
        t0 = time.monotonic()
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        got = b""
        while b"first part" not in got and time.monotonic() - t0 < 3:
            c._fill(t0 + 3)
            head, sep, rest = c.buf.partition(b"\r\n\r\n")
            if not sep:
                continue
            assert b"Content-Encoding: gzip" in head
            got = b""
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            # de-chunk what we have so far
            data, pos = b"", 0
            while True:
                m = re.match(rb"([0-9a-fA-F]+)\r\n", rest[pos:])
                if not m:
                    break
                n = int(m.group(1), 16)
                start = pos + m.end()
                if n == 0 or len(rest) < start + n:
                    break
                data += rest[start:start + n]
                pos = start + n + 2
            got = d.decompress(data)
        took = time.monotonic() - t0
        assert b"first part" in got and took < 0.9, (took, got)
    r = get(srv, "/cgi-bin/stream.cgi")
    assert gunzip(r.body) == b"first part of the stream\nsecond part\n"


# ------------------------------------------------------------ precompressed

def test_precompressed_served(srv):
    r = get(srv, "/pre/app.js")
    assert r.header("Content-Encoding") == "gzip"
    assert r.header("Content-Type") == "application/javascript" or \
        r.header("Content-Type").startswith("text/javascript"), r.header("Content-Type")
    assert r.body == gzip.compress(TEXT) or gunzip(r.body) == TEXT
    assert r.header("Content-Length") == str(len(r.body))
    assert r.header("Vary") == "Accept-Encoding"
    plain = get(srv, "/pre/app.js", ae="gzip;q=0")
    assert plain.body == TEXT and plain.header("Content-Encoding") is None
    assert plain.header("Vary") == "Accept-Encoding"
    assert plain.header("ETag") != r.header("ETag")


def test_precompressed_stale_ignored(srv):
    r = get(srv, "/pre/stale.txt")
    assert gunzip(r.body) == TEXT        # compressed on the fly, not "old"


# ------------------------------------------------------------ curl

def test_curl_compressed(srv):
    for path, want in (("/page.html", TEXT), ("/cgi-bin/stream.cgi",
                                              b"first part of the stream\nsecond part\n")):
        out = subprocess.run(["curl", "-s", "--compressed", "-D", "-",
                              "http://127.0.0.1:%d%s" % (srv.port, path)],
                             capture_output=True, timeout=20)
        head, _, body = out.stdout.partition(b"\r\n\r\n")
        assert b"Content-Encoding: gzip" in head and body == want
