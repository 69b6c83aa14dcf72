"""A loadable handler module: LoadModule hello_module + SetHandler hello
(modules/mod_hello.c)."""

import pytest

import harness

pytestmark = pytest.mark.skipif(harness.ORACLE, reason="mod_hello is Quintet's own module")

HELLO = b"Hello, world!\n"
CONF = """
<Location /hello>
    SetHandler hello
</Location>
"""


@pytest.fixture(scope="module")
def srv(module_servers):
    return module_servers(CONF, {"htdocs/index.html": b"index\n"})


def test_hello_handler(srv):
    r = srv.get("/hello")
    assert r.status == 200, srv.diag(r)
    assert r.body == HELLO, r
    assert r.header("Content-Type").split(";")[0] == "text/plain", r
    assert r.header("Content-Length") == str(len(HELLO)), r
    assert r.has("Date") and r.has("Server"), r


def test_hello_with_name(srv):
    r = srv.get("/hello?name=Ada")
    assert r.status == 200, srv.diag(r)
    assert r.body == b"Hello, Ada!\n", r


def test_hello_under_location_prefix(srv):
    # <Location /hello> covers the URL space below it, files or not.
    r = srv.get("/hello/any/thing")
    assert r.status == 200, srv.diag(r)
    assert r.body == HELLO, r


def test_hello_head_has_no_body(srv):
    r = srv.get("/hello", method="HEAD")
    assert r.status == 200, srv.diag(r)
    assert r.body == b"" and r.header("Content-Length") == str(len(HELLO)), r


def test_hello_refuses_post(srv):
    r = srv.get("/hello", method="POST", headers=[("Content-Length", "0")])
    assert r.status == 405, srv.diag(r)


def test_hello_keeps_connection_alive(srv):
    with srv.conn() as c:
        for _ in range(3):
            c.send(harness.request_bytes("GET", "/hello"))
            r = c.read_response()
            assert (r.status, r.body) == (200, HELLO), srv.diag(r)


def test_outside_location_is_static(srv):
    r = srv.get("/index.html")
    assert r.status == 200, srv.diag(r)
    assert r.body == b"index\n"
