"""Name-based virtual hosts chosen by the Host header."""

import pytest

FILES = {
    "vh1/which.txt": b"one\n",
    "vh2/which.txt": b"two\n",
    "htdocs/which.txt": b"main\n",
}

CONF = r"""
<Directory "@ROOT@/vh1">
    Require all granted
</Directory>
<Directory "@ROOT@/vh2">
    Require all granted
</Directory>
<VirtualHost *:@PORT@>
    ServerName one.test
    DocumentRoot "@ROOT@/vh1"
</VirtualHost>
<VirtualHost *:@PORT@>
    ServerName two.test
    ServerAlias *.two.test alt.example
    DocumentRoot "@ROOT@/vh2"
</VirtualHost>
"""


@pytest.fixture(scope="module")
def srv(module_servers):
    return module_servers(CONF, FILES)


@pytest.mark.parametrize("host,expected", [
    ("one.test", b"one\n"),
    ("two.test", b"two\n"),
    ("two.test:@PORT@", b"two\n"),
    ("TWO.Test", b"two\n"),                 # host names are case-insensitive
    ("two.test.", b"two\n"),                # trailing dot is the same name
    ("www.two.test", b"two\n"),             # ServerAlias wildcard
    ("a.b.two.test", b"two\n"),
    ("alt.example", b"two\n"),              # plain ServerAlias
    ("unknown.test", b"one\n"),             # first vhost is the default
    ("127.0.0.1", b"one\n"),
    ("xtwo.test", b"one\n"),                # *.two.test needs the dot
])
def test_vhost_by_host_header(srv, host, expected):
    r = srv.get("/which.txt", host=host.replace("@PORT@", str(srv.port)))
    assert r.status == 200, srv.diag(r)
    assert r.body == expected, (host, r)


def test_http10_without_host_goes_to_first_vhost(srv):
    r = srv.raw(b"GET /which.txt HTTP/1.0\r\n\r\n")
    assert r.status == 200, srv.diag(r)
    assert r.body == b"one\n"


def test_absolute_form_host_wins_over_host_header(srv):
    r = srv.raw(b"GET http://two.test/which.txt HTTP/1.1\r\nHost: one.test\r\n"
                b"Connection: close\r\n\r\n")
    assert r.status == 200, srv.diag(r)
    assert r.body == b"two\n"
