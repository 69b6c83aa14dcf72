"""Static files: headers, errors, directories, conditionals, ranges, methods."""

import email.utils
import re
import time

import pytest

import harness
from harness import mtime_http

TEXT = b"0123456789abcdefghijklmnopqrstuvwxyz\n"     # 37 bytes
PAGE = b"<html><body><p>page</p></body></html>\n"
PRODUCT = "Apache" if harness.ORACLE else "Quintet"

BIG = bytes((i * 7 + i // 256) % 256 for i in range(3 * 1024 * 1024 + 17))
FILES = {
    "htdocs/big.bin": BIG,
    "htdocs/index.html": b"<html><body>root index</body></html>\n",
    "htdocs/hello.txt": TEXT,
    "htdocs/page.html": PAGE,
    "htdocs/blob.qqqunknown": b"opaque bytes\n",
    "htdocs/private/secret.txt": b"secret\n",
    "htdocs/sub/index.html": b"<html><body>sub index</body></html>\n",
    "htdocs/list/plain.txt": b"plain\n",
    "htdocs/list/<b>&x.txt": b"tricky name\n",
    "htdocs/noindex/file.txt": b"file\n",
}

CONF = r"""
<Directory "@ROOT@/htdocs/private">
    Require all denied
</Directory>
<Directory "@ROOT@/htdocs/noindex">
    Options -Indexes
</Directory>
"""

ETAG_RE = re.compile(r'^"[0-9a-f]+-[0-9a-f]+"$')


@pytest.fixture(scope="module")
def srv(module_servers):
    return module_servers(CONF, FILES)


def expect(srv, r, status):
    assert r.status == status, srv.diag(r)


# ---------------------------------------------------------------- GET/HEAD

def test_get_file_headers_and_body(srv):
    r = srv.get("/hello.txt")
    expect(srv, r, 200)
    assert r.body == TEXT
    assert r.header("Content-Length") == str(len(TEXT))
    assert r.header("Content-Type").split(";")[0].strip() == "text/plain", r
    assert r.header("Last-Modified") == mtime_http(), r
    assert ETAG_RE.match(r.header("ETag") or ""), r
    assert r.header("Accept-Ranges") == "bytes", r
    date = email.utils.parsedate_to_datetime(r.header("Date"))
    assert abs(date.timestamp() - time.time()) < 60, r
    assert r.header("Date").endswith(" GMT"), r
    assert (r.header("Server") or "").startswith(PRODUCT), r


def test_large_file_byte_exact(srv):
    r = srv.get("/big.bin")
    expect(srv, r, 200)
    assert r.header("Content-Length") == str(len(BIG)), r
    assert len(r.body) == len(BIG) and r.body == BIG, "large body differs"
    r = srv.get("/big.bin", headers=[("Range", "bytes=2000000-2000099")])
    expect(srv, r, 206)
    assert r.body == BIG[2000000:2000100]


def test_html_content_type(srv):
    r = srv.get("/page.html")
    expect(srv, r, 200)
    assert r.header("Content-Type").split(";")[0].strip() == "text/html", r
    assert r.body == PAGE


def test_head_same_headers_no_body(srv):
    g = srv.get("/hello.txt")
    h = srv.get("/hello.txt", method="HEAD")
    expect(srv, h, 200)
    for name in ("Content-Length", "Content-Type", "ETag", "Last-Modified",
                 "Accept-Ranges"):
        assert h.header(name) == g.header(name), (name, g, h)
    with srv.conn() as c:
        c.send(harness.request_bytes("HEAD", "/hello.txt",
                                     headers=[("Connection", "close")]))
        r = c.read_response(head=True)
        closed, extra, _ = c.wait_closed(3)
    assert r.status == 200 and closed and extra == b"", (r, extra)


def test_unknown_extension_has_no_content_type(srv):
    r = srv.get("/blob.qqqunknown")
    expect(srv, r, 200)
    assert r.body == b"opaque bytes\n"
    assert not r.has("Content-Type"), r


def test_404_html_body(srv):
    r = srv.get("/no/such/file.txt")
    expect(srv, r, 404)
    assert r.header("Content-Type").startswith("text/html"), r
    assert b"Not Found" in r.body, r
    assert r.header("Content-Length") == str(len(r.body)), r
    assert r.has("Date") and r.has("Server"), r


def test_head_404_has_no_body(srv):
    with srv.conn() as c:
        c.send(harness.request_bytes("HEAD", "/no/such/file.txt",
                                     headers=[("Connection", "close")]))
        r = c.read_response(head=True)
        closed, extra, _ = c.wait_closed(3)
    expect(srv, r, 404)
    assert closed and extra == b"", extra


def test_403_require_all_denied_is_logged(srv):
    r = srv.get("/private/secret.txt")
    expect(srv, r, 403)
    assert b"secret" not in r.body
    assert srv.wait_log("logs/error_log", r"client denied by server configuration"), srv.diag()


# ------------------------------------------------------------- directories

def test_directory_without_slash_redirects_keeping_query(srv):
    host = "127.0.0.1:%d" % srv.port
    r = srv.get("/sub?a=1&b=2", host=host)
    expect(srv, r, 301)
    assert r.header("Location") == "http://%s/sub/?a=1&b=2" % host, r


def test_directory_index(srv):
    r = srv.get("/sub/")
    expect(srv, r, 200)
    assert r.body == FILES["htdocs/sub/index.html"]
    assert r.header("Content-Type").split(";")[0] == "text/html", r


def test_directory_listing_escapes_names(srv):
    r = srv.get("/list/")
    expect(srv, r, 200)
    assert r.header("Content-Type").startswith("text/html"), r
    body = r.body.decode("latin-1")
    assert "Index of /list" in body, body
    assert "plain.txt" in body, body
    assert 'href="plain.txt"' in body, body
    assert "&lt;b&gt;&amp;x.txt" in body, body
    assert "<b>&x" not in body, body


def test_directory_without_indexes_is_403(srv):
    r = srv.get("/noindex/")
    expect(srv, r, 403)
    assert b"file.txt" not in r.body


# ------------------------------------------------------------ conditionals

def test_if_none_match_304(srv):
    etag = srv.get("/hello.txt").header("ETag")
    with srv.conn() as c:
        c.send(harness.request_bytes("GET", "/hello.txt", headers=[
            ("If-None-Match", etag), ("Connection", "close")]))
        r = c.read_response()
        closed, extra, _ = c.wait_closed(3)
    expect(srv, r, 304)
    assert r.header("ETag") == etag, r
    assert closed and extra == b"", ("304 must have no body", extra)
    assert not r.has("Content-Type"), r


def test_if_none_match_star_and_list(srv):
    etag = srv.get("/hello.txt").header("ETag")
    r = srv.get("/hello.txt", headers=[("If-None-Match", '"nope", ' + etag)])
    expect(srv, r, 304)
    r = srv.get("/hello.txt", headers=[("If-None-Match", '"nope"')])
    expect(srv, r, 200)
    assert r.body == TEXT


def test_if_none_match_takes_precedence_over_if_modified_since(srv):
    r = srv.get("/hello.txt", headers=[("If-None-Match", '"nope"'),
                                       ("If-Modified-Since", mtime_http())])
    expect(srv, r, 200)
    assert r.body == TEXT


def test_if_modified_since_304(srv):
    r = srv.get("/hello.txt", headers=[("If-Modified-Since", mtime_http())])
    expect(srv, r, 304)
    assert r.body == b""
    later = email.utils.formatdate(harness.MTIME + 86400, usegmt=True)
    r = srv.get("/hello.txt", headers=[("If-Modified-Since", later)])
    expect(srv, r, 304)
    earlier = email.utils.formatdate(harness.MTIME - 86400, usegmt=True)
    r = srv.get("/hello.txt", headers=[("If-Modified-Since", earlier)])
    expect(srv, r, 200)
    assert r.body == TEXT


def test_if_match_mismatch_412(srv):
    r = srv.get("/hello.txt", headers=[("If-Match", '"0-0"')])
    expect(srv, r, 412)
    assert TEXT not in r.body


def test_if_unmodified_since_past_412(srv):
    r = srv.get("/hello.txt",
                headers=[("If-Unmodified-Since", "Mon, 01 Jan 1990 00:00:00 GMT")])
    expect(srv, r, 412)


# ------------------------------------------------------------------ ranges

def test_single_range_206(srv):
    r = srv.get("/hello.txt", headers=[("Range", "bytes=10-15")])
    expect(srv, r, 206)
    assert r.body == TEXT[10:16]
    assert r.header("Content-Range") == "bytes 10-15/%d" % len(TEXT), r
    assert r.header("Content-Length") == "6", r


def test_suffix_range(srv):
    r = srv.get("/hello.txt", headers=[("Range", "bytes=-5")])
    expect(srv, r, 206)
    assert r.body == TEXT[-5:]
    assert r.header("Content-Range") == "bytes %d-%d/%d" % (
        len(TEXT) - 5, len(TEXT) - 1, len(TEXT)), r


def parse_multipart(r):
    ctype = r.header("Content-Type") or ""
    m = re.match(r"multipart/byteranges;\s*boundary=(\S+)$", ctype)
    assert m, r
    boundary = m.group(1).strip('"').encode()
    parts = []
    for chunk in r.body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
        hdrs = {}
        for ln in head.split(b"\r\n"):
            k, _, v = ln.partition(b":")
            hdrs[k.strip().lower().decode()] = v.strip().decode()
        parts.append((hdrs, data[:-2] if data.endswith(b"\r\n") else data))
    return parts


def test_multiple_ranges_multipart(srv):
    r = srv.get("/hello.txt", headers=[("Range", "bytes=0-1,20-24")])
    expect(srv, r, 206)
    assert r.header("Content-Length") == str(len(r.body)), r
    parts = parse_multipart(r)
    assert len(parts) == 2, r
    assert parts[0][1] == TEXT[0:2] and parts[1][1] == TEXT[20:25], parts
    assert parts[0][0]["content-range"] == "bytes 0-1/%d" % len(TEXT), parts
    assert parts[1][0]["content-range"] == "bytes 20-24/%d" % len(TEXT), parts
    assert parts[0][0]["content-type"].startswith("text/plain"), parts


def test_unsatisfiable_range_416(srv):
    r = srv.get("/hello.txt", headers=[("Range", "bytes=1000-2000")])
    expect(srv, r, 416)
    # RFC 9110 15.5.17 (Apache omits it; Quintet does better, per the issue).
    assert r.header("Content-Range") == "bytes */%d" % len(TEXT), r
    assert TEXT not in r.body


def test_invalid_range_syntax_gives_full_200(srv):
    r = srv.get("/hello.txt", headers=[("Range", "bytes=7-1")])
    expect(srv, r, 200)
    assert r.body == TEXT


def test_if_range_etag_match_and_mismatch(srv):
    etag = srv.get("/hello.txt").header("ETag")
    r = srv.get("/hello.txt", headers=[("Range", "bytes=0-3"), ("If-Range", etag)])
    expect(srv, r, 206)
    assert r.body == TEXT[:4]
    r = srv.get("/hello.txt", headers=[("Range", "bytes=0-3"), ("If-Range", '"old-1"')])
    expect(srv, r, 200)
    assert r.body == TEXT


def test_if_range_date(srv):
    r = srv.get("/hello.txt", headers=[("Range", "bytes=0-3"), ("If-Range", mtime_http())])
    expect(srv, r, 206)
    assert r.body == TEXT[:4]
    other = email.utils.formatdate(harness.MTIME - 3600, usegmt=True)
    r = srv.get("/hello.txt", headers=[("Range", "bytes=0-3"), ("If-Range", other)])
    expect(srv, r, 200)
    assert r.body == TEXT


# ----------------------------------------------------------------- methods

def test_post_to_static_file_serves_it_and_discards_body(srv):
    with srv.conn() as c:
        c.send(harness.request_bytes("POST", "/hello.txt", headers=[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Content-Length", "7")], body=b"a=1&b=2"))
        r = c.read_response()
        expect(srv, r, 200)
        assert r.body == TEXT
        # The body was consumed: the next request on this socket parses.
        c.send(harness.request_bytes("GET", "/page.html"))
        r2 = c.read_response()
    expect(srv, r2, 200)
    assert r2.body == PAGE


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_put_delete_405_with_allow(srv, method):
    r = srv.get("/hello.txt", method=method, headers=[("Content-Length", "0")])
    expect(srv, r, 405)
    allow = {m.strip() for m in (r.header("Allow") or "").split(",")}
    assert {"GET", "HEAD"} <= allow and method not in allow, r


def test_unknown_method_501(srv):
    r = srv.get("/hello.txt", method="FROB")
    expect(srv, r, 501)


def test_options_allow(srv):
    r = srv.get("/hello.txt", method="OPTIONS")
    expect(srv, r, 200)
    allow = {m.strip() for m in (r.header("Allow") or "").split(",")}
    assert {"GET", "HEAD", "POST", "OPTIONS"} <= allow, r
    assert r.header("Content-Length") == "0" and r.body == b"", r


def test_options_star(srv):
    r = srv.get("*", method="OPTIONS")
    expect(srv, r, 200)
    assert r.body == b""


def test_trace_disabled_by_default(srv):
    r = srv.get("/hello.txt", method="TRACE")
    expect(srv, r, 405)
    assert b"TRACE /hello.txt" not in r.body
