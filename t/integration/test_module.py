"""A loadable handler module: LoadModule hello_module + SetHandler hello."""

import pytest

import harness

pytestmark = pytest.mark.skipif(harness.ORACLE, reason="mod_hello is Quintet's own module")

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
    assert r.body == b"Hello\n", r
    assert r.header("Content-Type").split(";")[0] == "text/plain", r
    assert r.header("Content-Length") == "6", r


def test_hello_handler_under_location_prefix(srv):
    # <Location /hello> covers the whole URL space below it, files or not.
    r = srv.get("/hello/any/thing?x=1")
    assert r.status == 200, srv.diag(r)
    assert r.body == b"Hello\n", r


def test_hello_head_has_no_body(srv):
    r = srv.get("/hello", method="HEAD")
    assert r.status == 200, srv.diag(r)
    assert r.body == b"" and r.header("Content-Length") == "6", r


def test_outside_location_is_static(srv):
    r = srv.get("/index.html")
    assert r.status == 200, srv.diag(r)
    assert r.body == b"index\n"
