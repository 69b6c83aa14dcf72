"""URL-to-file mapping: traversal, NUL, symlinks, Alias, Redirect, ErrorDocument."""

import os

import pytest

import harness

SECRET = b"outside the document root\n"
FILES = {
    "htdocs/index.html": b"<html>index</html>\n",
    "htdocs/hello.txt": b"hello\n",
    "htdocs/sub/inner.txt": b"inner\n",
    "outside/secret.txt": SECRET,
    "aliased/file.txt": b"from the aliased directory\n",
    "htdocs/errors/notfound.html": b"<html><body>custom local 404 page</body></html>\n",
    "htdocs/edtext/present.txt": b"present\n",
    "htdocs/edlocal/present.txt": b"present\n",
}

CONF = r"""
<Directory "@ROOT@/htdocs/nofollow">
    Options -FollowSymLinks
</Directory>
<Directory "@ROOT@/htdocs/follow">
    Options FollowSymLinks
</Directory>
Alias /alias/ "@ROOT@/aliased/"
<Directory "@ROOT@/aliased">
    Require all granted
</Directory>
Redirect /old http://example.test/new
Redirect permanent /perm http://example.test/p
<Location /edtext>
    ErrorDocument 404 "Custom text for a missing page"
</Location>
<Directory "@ROOT@/htdocs/edlocal">
    ErrorDocument 404 /errors/notfound.html
</Directory>
"""


@pytest.fixture(scope="module")
def srv(module_servers):
    s = module_servers(CONF, FILES, start=False)
    for d in ("nofollow", "follow"):
        os.makedirs(s.path("htdocs/" + d))
        os.chmod(s.path("htdocs/" + d), 0o755)
        os.symlink("../../outside/secret.txt", s.path("htdocs/%s/link.txt" % d))
    return s.start()


def expect(srv, r, status):
    assert r.status == status, srv.diag(r)


TRAVERSALS = [
    "/../outside/secret.txt",
    "/../../../../etc/passwd",
    "/%2e%2e/outside/secret.txt",
    "/%2E%2E/%2e%2e/etc/passwd",
    "/..%2foutside/secret.txt",
    "/sub/../../outside/secret.txt",
    "/sub/%2e%2e/%2e%2e/outside/secret.txt",
    "/./../outside/secret.txt",
    "/sub/..%2f..%2foutside/secret.txt",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_never_leaves_the_root(srv, target):
    r = srv.raw(harness.request_bytes("GET", target, headers=[("Connection", "close")]))
    assert r.status in (400, 404), srv.diag(r)
    assert SECRET not in r.body and b"root:" not in r.body, r


def test_dot_segments_inside_root_resolve(srv):
    r = srv.get("/sub/../hello.txt")
    expect(srv, r, 200)
    assert r.body == b"hello\n"
    r = srv.get("/sub/./inner.txt")
    expect(srv, r, 200)
    assert r.body == b"inner\n"


def test_percent_encoded_name_is_decoded(srv):
    r = srv.get("/%68ello.txt")
    expect(srv, r, 200)
    assert r.body == b"hello\n"


# The issue asks for 400 (Apache answers 404 to an encoded NUL).
@pytest.mark.parametrize("target", ["/hello.txt%00", "/hello.txt%00.html", "/%00"])
def test_encoded_nul_is_400(srv, target):
    r = srv.get(target)
    expect(srv, r, 400)


def test_symlink_out_without_followsymlinks_is_403(srv):
    r = srv.get("/nofollow/link.txt")
    expect(srv, r, 403)
    assert SECRET not in r.body


def test_symlink_with_followsymlinks_is_served(srv):
    r = srv.get("/follow/link.txt")
    expect(srv, r, 200)
    assert r.body == SECRET


def test_alias(srv):
    r = srv.get("/alias/file.txt")
    expect(srv, r, 200)
    assert r.body == b"from the aliased directory\n"
    assert r.header("Content-Type").split(";")[0] == "text/plain", r


def test_alias_missing_file_404(srv):
    r = srv.get("/alias/nope.txt")
    expect(srv, r, 404)


def test_redirect_default_302_appends_path_and_query(srv):
    r = srv.get("/old/x/y.html?q=1&r=2")
    expect(srv, r, 302)
    assert r.header("Location") == "http://example.test/new/x/y.html?q=1&r=2", r


def test_redirect_exact_prefix(srv):
    r = srv.get("/old")
    expect(srv, r, 302)
    assert r.header("Location") == "http://example.test/new", r
    # A prefix match is by path segment: /older is not under /old.
    r = srv.get("/older")
    expect(srv, r, 404)


def test_redirect_permanent_301(srv):
    r = srv.get("/perm/a?b")
    expect(srv, r, 301)
    assert r.header("Location") == "http://example.test/p/a?b", r


def test_error_document_text(srv):
    r = srv.get("/edtext/missing.txt")
    expect(srv, r, 404)
    assert r.body == b"Custom text for a missing page", r
    assert r.header("Content-Type").startswith("text/html"), r
    ok = srv.get("/edtext/present.txt")
    expect(srv, ok, 200)


def test_error_document_local_url_keeps_status(srv):
    r = srv.get("/edlocal/missing.txt")
    expect(srv, r, 404)
    assert r.body == FILES["htdocs/errors/notfound.html"], r
    assert r.header("Content-Type").startswith("text/html"), r
