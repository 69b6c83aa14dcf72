"""CGI/1.1 (the cgi-script handler), checked against Apache mod_cgi's behaviour.

The last part is a differential test: the same printenv script runs under
Debian's apache2 (mod_cgi) and under Quintet for a matrix of requests, and
the environments are compared variable by variable.
"""

import hashlib
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

import harness

SRC_CGI = os.path.join(harness.SRCDIR, "cgi-bin")
HELLO_C = os.path.join(harness.BUILDDIR, "cgi-bin", "hello-c")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# PassEnv reads the server's own environment: the server inherits ours.
os.environ["QT_CGI_PASSED"] = "from-the-server-env"


def src(name):
    with open(os.path.join(SRC_CGI, name), "rb") as f:
        return f.read()


SH = "#!/bin/sh\n"
HDR = "printf 'Content-Type: text/plain\\r\\n\\r\\n'\n"

SCRIPTS = {
    "printenv": src("printenv"),
    "form.pl": src("form.pl"),
    "upload.pl": src("upload.pl"),
    "nph-hello": src("nph-hello"),
    "slow": src("slow"),
    "cat.cgi": SH + "printf 'Content-Type: application/octet-stream\\r\\n\\r\\n'\nexec cat\n",
    "status.cgi": SH + "printf 'Status: 418 I am a teapot\\r\\nContent-Type: text/plain\\r\\n"
                       "X-Script: yes\\r\\n\\r\\nshort and stout\\n'\n",
    "cl.cgi": SH + "printf 'Content-Type: text/plain\\r\\nContent-Length: 3\\r\\n\\r\\n1234567'\n",
    "notype.cgi": SH + "printf 'X-Only: 1\\r\\n\\r\\nno type\\n'\n",
    "redir-local.cgi": SH + "printf 'Location: /hello.txt\\r\\n\\r\\nthis body is dropped\\n'\n",
    "redir-env.cgi": SH + "printf 'Location: /cgi-bin/printenv?after=1\\r\\n\\r\\n'\n",
    "redir-abs.cgi": SH + "printf 'Location: http://example.test/elsewhere\\r\\n"
                          "Set-Cookie: a=1\\r\\nSet-Cookie: b=2\\r\\n\\r\\ndropped\\n'\n",
    "stderr.cgi": SH + "echo 'oops from stderr' >&2\n" + HDR + "echo fine\n",
    "silent.cgi": SH + "sleep 10\n",
    "noexec.cgi": SH + HDR + "echo never\n",
    "badinterp.cgi": "#!/nonexistent/interpreter\n",
    "empty.cgi": SH + "exit 0\n",
    "partial.cgi": SH + "printf 'Content-Type: text/plain\\r\\n'\n",
    "malformed.cgi": SH + "printf 'this is not a header\\r\\n\\r\\nbody\\n'\n",
    "badstatus.cgi": SH + "printf 'Status: abc\\r\\n\\r\\n'\n",
    "exit3.cgi": SH + HDR + "echo body\nexit 3\n",
    "argv.cgi": SH + HDR + "for a in \"$@\"; do echo \"[$a]\"; done\npwd\n",
    "fds.cgi": "#!/usr/bin/python3\nimport os\n"
               "print('Content-Type: text/plain\\r\\n\\r', flush=True)\n"
               "for fd in range(256):\n"
               "    try:\n"
               "        print(fd, os.readlink('/proc/self/fd/%d' % fd))\n"
               "    except OSError:\n"
               "        pass\n",
    # exec: grep reads the dispositions and mask the shell got from the server
    "sigs.cgi": SH + HDR + "exec grep -E '^Sig(Blk|Ign):' /proc/self/status\n",
    "forever.cgi": SH + HDR + "echo \"pid $$\"\nwhile :; do echo tick; sleep 0.1; done\n",
    "quiet.cgi": SH + HDR + "echo \"pid $$\"\nsleep 30\necho late\n",
    "lastmod.cgi": SH + "printf 'Content-Type: text/plain\\r\\nLast-Modified: %s\\r\\n"
                        "ETag: \"v1\"\\r\\n\\r\\nfresh\\n' \"$(cat lm.txt)\"\n",
    "lastmod200.cgi": SH + "printf 'Status: 200\\r\\nContent-Type: text/plain\\r\\n"
                           "Last-Modified: %s\\r\\n\\r\\nfresh\\n' \"$(cat lm.txt)\"\n",
    "stall.cgi": SH + HDR + "echo started\nsleep 10\necho late\n",
    "rlimit.cgi": SH + HDR + "sleep 0.2\nulimit -t\n",
    "big-stderr.cgi": SH + HDR + "i=0\nwhile [ $i -lt 2000 ]; do echo \"err line $i "
                      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\" >&2; i=$((i+1)); done\n"
                      "echo out done\n",
}

FILES = {"htdocs/hello.txt": b"hello file\n",
         "htdocs/plain/x.cgi": SH + HDR + "echo should not run\n",
         "htdocs/exec/x.cgi": SH + HDR + "echo ran with ExecCGI\n",
         "htdocs/handler/run-me": SH + HDR + "echo SetHandler works\n"}

CONF = r"""
ScriptAlias /cgi-bin/ "@ROOT@/cgi-bin/"
ScriptAlias /env-cgi/ "@ROOT@/cgi-bin/"
<Directory "@ROOT@/cgi-bin">
    Require all granted
</Directory>
<Directory "@ROOT@/htdocs/exec">
    Options +ExecCGI
</Directory>
<Directory "@ROOT@/htdocs/handler">
    Options +ExecCGI
    SetHandler cgi-script
</Directory>
AddHandler cgi-script .cgi
CGIScriptTimeout 2
<Location "/nothere">
    ErrorDocument 404 /cgi-bin/printenv
</Location>
"""

# mod_env directives: the oracle's config loads no mod_env.
ENV_CONF = r"""
<Location "/env-cgi/">
    SetEnv QT_SET "set value"
    SetEnv QT_GONE "x"
    UnsetEnv QT_GONE
    PassEnv QT_CGI_PASSED
    CGIPassAuth On
</Location>
<Location "/env-cgi/rlimit.cgi">
    RLimitCPU 7
</Location>
"""


def all_files():
    files = dict(FILES)
    for name, body in SCRIPTS.items():
        files["cgi-bin/" + name] = body
    return files


@pytest.fixture(scope="module")
def srv(module_servers):
    s = module_servers(CONF + ("" if harness.ORACLE else ENV_CONF), all_files(), start=False)
    for name in SCRIPTS:
        os.chmod(s.path("cgi-bin/" + name), 0o644 if name == "noexec.cgi" else 0o755)
    for rel in ("htdocs/plain/x.cgi", "htdocs/exec/x.cgi", "htdocs/handler/run-me"):
        os.chmod(s.path(rel), 0o755)
    if os.path.exists(HELLO_C):
        with open(HELLO_C, "rb") as f:
            s.put("cgi-bin/hello-c", f.read(), 0o755)
    s.start()
    return s


def expect(srv, r, status):
    assert r.status == status, srv.diag(r)


def parse_env(body):
    """printenv output (NAME="value" lines) -> dict."""
    env = {}
    for line in body.decode("utf-8", "replace").splitlines():
        m = re.match(r'^([A-Za-z_][A-Za-z0-9_]*)="(.*)"$', line)
        if m:
            env[m.group(1)] = m.group(2)
    return env


def getenv(srv, path, **kw):
    r = srv.get(path, **kw)
    expect(srv, r, 200)
    return parse_env(r.body)


def chunked(body, size):
    out = b""
    for i in range(0, len(body), size):
        piece = body[i:i + size]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return out + b"0\r\n\r\n"


# ---------------------------------------------------------------- environment

def test_rfc3875_variables(srv):
    # With a port in Host both servers agree on SERVER_PORT (without one,
    # Apache says 80: see ALLOWED_DIFF below).
    host = "localhost:%d" % srv.port
    env = getenv(srv, "/cgi-bin/printenv/extra/path%20x?q=1&b=%41", host=host)
    want = {
        "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_METHOD": "GET", "QUERY_STRING": "q=1&b=%41",
        "SCRIPT_NAME": "/cgi-bin/printenv", "PATH_INFO": "/extra/path x",
        "PATH_TRANSLATED": srv.path("htdocs") + "/extra/path x",
        "SERVER_NAME": "localhost", "SERVER_PORT": str(srv.port),
        "REMOTE_ADDR": "127.0.0.1", "SERVER_ADDR": "127.0.0.1",
        "REQUEST_URI": "/cgi-bin/printenv/extra/path%20x?q=1&b=%41",
        "SCRIPT_FILENAME": srv.path("cgi-bin/printenv"),
        "DOCUMENT_ROOT": srv.path("htdocs"), "CONTEXT_PREFIX": "/cgi-bin/",
        "CONTEXT_DOCUMENT_ROOT": srv.path("cgi-bin") + "/",
        "REQUEST_SCHEME": "http", "SERVER_ADMIN": "admin@example.test",
        "SERVER_SIGNATURE": "", "HTTP_HOST": host,
        # Apache passes its own PATH; Quintet a fixed one unless PassEnv PATH
        "PATH": os.environ.get("PATH") if harness.ORACLE else DEFAULT_PATH,
    }
    for k, v in want.items():
        assert env.get(k) == v, (k, env.get(k), v)
    assert env["REMOTE_PORT"].isdigit()
    assert env["SERVER_SOFTWARE"].startswith("Apache" if harness.ORACLE else "Quintet")
    for absent in ("REMOTE_HOST", "REMOTE_USER", "AUTH_TYPE", "CONTENT_LENGTH",
                   "CONTENT_TYPE", "HTTPS", "REDIRECT_STATUS"):
        assert absent not in env, absent


def test_query_string_always_set_and_no_path_info(srv):
    env = getenv(srv, "/cgi-bin/printenv")
    assert env["QUERY_STRING"] == ""
    assert "PATH_INFO" not in env and "PATH_TRANSLATED" not in env


def test_header_mapping(srv):
    env = getenv(srv, "/cgi-bin/printenv", headers=[
        ("X-Rep", "a"), ("x-rep", "b"), ("X-Foo_Bar", "forged"),
        ("Proxy", "http://evil.test:1/"), ("Authorization", "Basic eDp5"),
        ("Proxy-Authorization", "Basic eDp5"), ("User-Agent", "t/1.0")])
    assert env["HTTP_X_REP"] == "a, b"
    assert env["HTTP_USER_AGENT"] == "t/1.0"
    assert not any("FOO" in k for k in env), "underscore header leaked"
    assert "HTTP_PROXY" not in env, "httpoxy (CVE-2016-5387)"
    assert "HTTP_AUTHORIZATION" not in env and "HTTP_PROXY_AUTHORIZATION" not in env


@pytest.mark.skipif(harness.ORACLE, reason="the oracle config loads no mod_env")
def test_setenv_passenv_unsetenv_passauth(srv):
    env = getenv(srv, "/env-cgi/printenv", headers=[("Authorization", "Basic eDp5")])
    assert env.get("QT_SET") == "set value"
    assert "QT_GONE" not in env
    assert env.get("QT_CGI_PASSED") == "from-the-server-env"
    assert env.get("HTTP_AUTHORIZATION") == "Basic eDp5"
    assert env.get("CONTEXT_PREFIX") == "/env-cgi/"


def test_post_content_vars(srv):
    env = getenv(srv, "/cgi-bin/printenv", method="POST", body=b"a=1&b=2",
                 headers=[("Content-Type", "application/x-www-form-urlencoded"),
                          ("Content-Length", "7")])
    assert env["CONTENT_LENGTH"] == "7"
    assert env["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env


def test_chunked_request_has_no_content_length(srv):
    r = srv.get("/cgi-bin/printenv", method="POST", body=chunked(b"abcdef", 4),
                headers=[("Transfer-Encoding", "chunked")])
    expect(srv, r, 200)
    env = parse_env(r.body)
    assert "CONTENT_LENGTH" not in env
    assert env["HTTP_TRANSFER_ENCODING"] == "chunked"


def test_error_document_sets_redirect_vars(srv):
    r = srv.get("/nothere/missing?q=1")
    expect(srv, r, 404)
    env = parse_env(r.body)
    assert env.get("REDIRECT_STATUS") == "404", r
    assert env.get("REDIRECT_URL") == "/nothere/missing"
    assert env.get("REDIRECT_QUERY_STRING") == "q=1"
    assert env.get("REQUEST_URI") == "/nothere/missing?q=1"


def test_isindex_argv_and_cwd(srv):
    r = srv.get("/cgi-bin/argv.cgi?foo+bar+baz%21")
    expect(srv, r, 200)
    lines = r.body.decode().splitlines()
    assert lines[:3] == ["[foo]", "[bar]", "[baz!]"], r
    assert lines[3] == srv.path("cgi-bin"), "cwd is the script's directory"
    r = srv.get("/cgi-bin/argv.cgi?a=1")
    assert r.body.decode().splitlines()[0] == srv.path("cgi-bin")


# ---------------------------------------------------------------- handler choice

def test_addhandler_needs_execcgi(srv):
    r = srv.get("/plain/x.cgi")
    expect(srv, r, 403)
    assert srv.wait_log("logs/error_log", r"Options ExecCGI is off in this directory"), srv.diag()
    r = srv.get("/exec/x.cgi")
    expect(srv, r, 200)
    assert r.body == b"ran with ExecCGI\n"


def test_sethandler(srv):
    r = srv.get("/handler/run-me")
    expect(srv, r, 200)
    assert r.body == b"SetHandler works\n"


def test_compiled_program(srv):
    if not os.path.exists(HELLO_C):
        pytest.fail("cgi-bin/hello-c was not built in %s" % harness.BUILDDIR)
    r = srv.get("/cgi-bin/hello-c?x=1")
    expect(srv, r, 200)
    assert r.body == b"Hello from C\nmethod=GET\nquery=x=1\n"


# ---------------------------------------------------------------- request body

def test_form_get_and_post(srv):
    r = srv.get("/cgi-bin/form.pl?name=Ann&comment=a%26b")
    expect(srv, r, 200)
    assert b"<dt>name</dt><dd>Ann</dd>" in r.body and b"<dd>a&amp;b</dd>" in r.body
    r = srv.get("/cgi-bin/form.pl", method="POST", body=b"name=Bob+B&comment=%3Chi%3E",
                headers=[("Content-Type", "application/x-www-form-urlencoded"),
                         ("Content-Length", "27")])
    expect(srv, r, 200)
    assert b"method: POST" in r.body
    assert b"<dd>Bob B</dd>" in r.body and b"<dd>&lt;hi&gt;</dd>" in r.body


def test_multipart_upload_cgi_pm(srv):
    data = os.urandom(100000)
    boundary = "----qtboundary7"
    body = ("--%s\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nmy file\r\n"
            "--%s\r\nContent-Disposition: form-data; name=\"f\"; filename=\"r.bin\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n" % (boundary, boundary)).encode()
    body += data + ("\r\n--%s--\r\n" % boundary).encode()
    r = srv.get("/cgi-bin/upload.pl", method="POST", body=body, headers=[
        ("Content-Type", "multipart/form-data; boundary=" + boundary),
        ("Content-Length", str(len(body)))])
    expect(srv, r, 200)
    text = r.body.decode()
    assert "field title: my file" in text, text
    assert "file f: r.bin 100000 bytes md5 %s" % hashlib.md5(data).hexdigest() in text, text


def echo_big(srv, body, headers):
    """Sends from a thread while reading, as real clients do."""
    with srv.conn(timeout=20) as c:
        req = harness.request_bytes("POST", "/cgi-bin/cat.cgi", "localhost",
                                    headers + [("Connection", "close")], body)
        t = threading.Thread(target=c.sock.sendall, args=(req,))
        t.start()
        r = c.read_final(timeout=20)
        t.join(20)
    return r


MOD_CGI_DEADLOCK = pytest.mark.skipif(
    harness.ORACLE, reason="mod_cgi writes the whole body before reading output (apache.md 5.3)")


@MOD_CGI_DEADLOCK
def test_post_echo_larger_than_pipe_buffers(srv):
    """mod_cgi deadlocks here until Timeout; we serve both pipes at once."""
    data = os.urandom(1536 * 1024)
    t0 = time.monotonic()
    r = echo_big(srv, data, [("Content-Length", str(len(data)))])
    expect(srv, r, 200)
    assert len(r.body) == len(data) and r.body == data
    assert time.monotonic() - t0 < 10


@MOD_CGI_DEADLOCK
def test_chunked_body_decoded_for_script(srv):
    data = os.urandom(300000)
    r = echo_big(srv, chunked(data, 7000), [("Transfer-Encoding", "chunked")])
    expect(srv, r, 200)
    assert r.body == data


# ---------------------------------------------------------------- response head

def test_status_with_reason_verbatim(srv):
    r = srv.get("/cgi-bin/status.cgi")
    assert (r.status, r.reason) == (418, "I am a teapot"), r
    assert r.header("X-Script") == "yes" and r.body == b"short and stout\n"


def test_script_content_length_not_trusted(srv):
    r = srv.get("/cgi-bin/cl.cgi")
    expect(srv, r, 200)
    assert r.body == b"1234567"
    assert r.header("Content-Length") in (None, "7"), r


def test_no_content_type_is_not_invented(srv):
    r = srv.get("/cgi-bin/notype.cgi")
    expect(srv, r, 200)
    assert r.header("Content-Type") is None and r.header("X-Only") == "1", r


def test_local_location_is_internal_redirect(srv):
    r = srv.get("/cgi-bin/redir-local.cgi")
    expect(srv, r, 200)
    assert r.body == b"hello file\n", r
    assert r.header("Location") is None


def test_local_location_redirect_env(srv):
    r = srv.get("/cgi-bin/redir-env.cgi?before=1", method="POST", body=b"x",
                headers=[("Content-Length", "1")])
    expect(srv, r, 200)
    env = parse_env(r.body)
    assert env["REQUEST_METHOD"] == "GET" and env["QUERY_STRING"] == "after=1"
    assert env["REDIRECT_STATUS"] == "200"
    assert env["REDIRECT_URL"] == "/cgi-bin/redir-env.cgi"
    assert env["REDIRECT_QUERY_STRING"] == "before=1"
    assert env["REDIRECT_REQUEST_METHOD"] == "POST"


def test_absolute_location_is_302(srv):
    r = srv.get("/cgi-bin/redir-abs.cgi")
    expect(srv, r, 302)
    assert r.header("Location") == "http://example.test/elsewhere"
    assert b"dropped" not in r.body
    assert r.all("Set-Cookie") == ["a=1", "b=2"], r


def test_head_runs_script_without_body(srv):
    r = srv.get("/cgi-bin/status.cgi", method="HEAD")
    assert r.status == 418 and r.body == b"" and r.header("X-Script") == "yes"


def test_conditional_get_on_script_validators(srv):
    srv.put("cgi-bin/lm.txt", harness.mtime_http())
    r = srv.get("/cgi-bin/lastmod.cgi")
    expect(srv, r, 200)
    assert r.body == b"fresh\n" and r.header("Last-Modified") == harness.mtime_http()
    r = srv.get("/cgi-bin/lastmod.cgi", headers=[("If-Modified-Since", harness.mtime_http())])
    expect(srv, r, 304)
    assert r.body == b""
    r = srv.get("/cgi-bin/lastmod.cgi", headers=[("If-None-Match", '"v1"')])
    expect(srv, r, 304)
    r = srv.get("/cgi-bin/lastmod.cgi", headers=[("If-None-Match", '"v2"')])
    expect(srv, r, 200)
    # An explicit Status: 200 turns conditional processing off (Apache PR 37166).
    r = srv.get("/cgi-bin/lastmod200.cgi", headers=[("If-Modified-Since", harness.mtime_http())])
    expect(srv, r, 200)
    assert r.body == b"fresh\n"


def test_exit_status_ignored_after_output(srv):
    r = srv.get("/cgi-bin/exit3.cgi")
    expect(srv, r, 200)
    assert r.body == b"body\n"


def test_nph_output_is_raw(srv):
    with srv.conn() as c:
        c.send(harness.request_bytes("GET", "/cgi-bin/nph-hello", "localhost"))
        r = c.read_final()
    assert r.raw_head.startswith(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"), r
    assert r.header("X-NPH") == "yes" and r.header("Server") is None, r
    assert r.body == b"nph says hello\n"


def test_output_streams_as_produced(srv):
    with srv.conn(timeout=10) as c:
        t0 = time.monotonic()
        c.send(harness.request_bytes("GET", "/cgi-bin/slow?n=5", "localhost",
                                     [("Connection", "close")]))
        c._read_until(b"tick 1\n", t0 + 10)
        first = time.monotonic() - t0
        c._read_until(b"done\n", t0 + 10)
        total = time.monotonic() - t0
    assert total >= 0.75, total
    assert first < total - 0.5, (first, total)


def test_concurrent_scripts_do_not_serialise(srv, mpm, make_server):
    """A waiting script must not block other requests.  Under event and
    hybrid one child runs them all: a blocking pipe read would serialise."""
    n, results = 6, []
    if mpm in ("event", "hybrid", "worker"):
        srv = make_server(CONF + "StartServers 1\n", {"cgi-bin/slow": SCRIPTS["slow"]},
                          start=False)
        os.chmod(srv.path("cgi-bin/slow"), 0o755)
        srv.start()

    def one():
        t0 = time.monotonic()
        r = srv.get("/cgi-bin/slow?n=3")
        results.append((r.status, r.body.endswith(b"done\n"), time.monotonic() - t0))

    threads = [threading.Thread(target=one) for _ in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    total = time.monotonic() - t0
    assert len(results) == n and all(s == 200 and ok for s, ok, _ in results), results
    # each takes >= 0.4 s; one after the other would be >= 2.4 s
    assert total < 0.4 * n * 0.75, (total, results)


# ---------------------------------------------------------------- failures

@pytest.mark.parametrize("script,log", [
    ("noexec.cgi", r"Permission denied.*exec of '.*noexec\.cgi' failed"),
    ("badinterp.cgi", r"No such file or directory.*exec of '.*badinterp\.cgi' failed"),
    ("empty.cgi", r"End of script output before headers: empty\.cgi"),
    ("partial.cgi", r"Premature end of script headers: partial\.cgi"),
    ("malformed.cgi", r"malformed header from script 'malformed\.cgi': Bad header: this is not a header"),
    ("badstatus.cgi", r"[Ii]nvalid status line from script 'badstatus\.cgi'"),
])
def test_broken_scripts_give_500(srv, script, log):
    r = srv.get("/cgi-bin/" + script)
    expect(srv, r, 500)
    assert srv.wait_log("logs/error_log", log), srv.diag()


def test_missing_script_404(srv):
    r = srv.get("/cgi-bin/no-such-script")
    expect(srv, r, 404)


def test_stderr_goes_to_error_log(srv):
    r = srv.get("/cgi-bin/stderr.cgi")
    expect(srv, r, 200)
    assert r.body == b"fine\n"
    rx = r"stderr from %s: oops from stderr" % re.escape(srv.path("cgi-bin/stderr.cgi"))
    assert srv.wait_log("logs/error_log", rx), srv.diag()


def test_lots_of_stderr_does_not_block(srv):
    r = srv.get("/cgi-bin/big-stderr.cgi")
    expect(srv, r, 200)
    assert r.body == b"out done\n"
    assert srv.wait_log("logs/error_log", r"stderr from .*: err line 1999 x"), srv.diag()


def test_silent_script_times_out_with_504(srv):
    t0 = time.monotonic()
    r = srv.get("/cgi-bin/silent.cgi")
    took = time.monotonic() - t0
    expect(srv, r, 504)
    assert 1.5 <= took < 6, took
    assert srv.wait_log("logs/error_log",
                        r"Script timed out before returning headers: silent\.cgi"), srv.diag()


def test_timeout_after_headers_cuts_the_body(srv):
    """Headers are out: no 504 is possible, the response must not look complete."""
    t0 = time.monotonic()
    with srv.conn(timeout=12) as c:
        c.send(harness.request_bytes("GET", "/cgi-bin/stall.cgi", "localhost"))
        with pytest.raises(harness.ProtocolError):     # no last chunk
            c.read_final()
    assert time.monotonic() - t0 < 9.5
    assert srv.wait_log("logs/error_log",
                        r"Timeout waiting for output from CGI script .*stall\.cgi"), srv.diag()


# ---------------------------------------------------------------- process hygiene

def test_no_fd_leaks_into_script(srv):
    r = srv.get("/cgi-bin/fds.cgi")
    expect(srv, r, 200)
    fds = {}
    for line in r.body.decode().splitlines():
        if line.strip():
            fd, target = line.split(" ", 1)
            fds[int(fd)] = target
    assert set(fds) == {0, 1, 2}, fds
    assert all(t.startswith("pipe:") for t in fds.values()), fds


STANDARD_SIGNALS = 0x7FFFFFFF         # bits of signals 1-31 in /proc's masks


def sig_masks(text):
    return {k: int(v, 16) for k, v in re.findall(r"^(SigBlk|SigIgn):\s*([0-9a-f]+)$", text, re.M)}


def test_script_starts_with_default_signals(srv):
    """The server ignores SIGPIPE (and its children SIGINT) and blocks
    signals around the spawn; a script must inherit none of it.  Real-time
    signals are not checked: the server leaves them as its launcher and
    glibc set them (GNU make runs its commands with 32 and 33, glibc's own
    signals, ignored)."""
    r = srv.get("/cgi-bin/sigs.cgi")
    expect(srv, r, 200)
    got = sig_masks(r.body.decode())
    assert got.get("SigBlk") == 0, r.body
    assert "SigIgn" in got and got["SigIgn"] & STANDARD_SIGNALS == 0, r.body


def script_gone(pid, timeout):
    """True once pid is reaped (neither running nor a zombie)."""
    return harness.wait_until(lambda: harness.proc_stat(pid) is None, timeout)


@pytest.mark.parametrize("script", ["forever.cgi", "quiet.cgi"])
def test_client_abort_kills_and_reaps_script(srv, script):
    with srv.conn() as c:
        c.send(harness.request_bytes("GET", "/cgi-bin/" + script, "localhost"))
        line = c._read_until(b"\n", time.monotonic() + 5)
        while not line.startswith(b"pid "):
            line = c._read_until(b"\n", time.monotonic() + 5)
        pid = int(line.split()[1])
        assert harness.pid_alive(pid)
    # the script writes (forever) or sleeps silently (quiet): both must go
    assert script_gone(pid, 6), harness.proc_stat(pid)
    assert srv.get("/cgi-bin/exit3.cgi").status == 200     # the server is fine


def test_no_zombies_after_requests(srv):
    for _ in range(5):
        srv.get("/cgi-bin/exit3.cgi")
    time.sleep(0.3)
    zombies = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = harness.proc_stat(int(d))
            if st and st[0] == "Z" and st[1] in [srv.pid] + srv.children():
                zombies.append(int(d))
    assert zombies == []


@pytest.mark.skipif(harness.ORACLE, reason="RLimitCPU is in the Quintet-only part of the config (ENV_CONF)")
def test_rlimit_cpu_applied(srv):
    r = srv.get("/env-cgi/rlimit.cgi")
    expect(srv, r, 200)
    assert r.body.strip() == b"7", r


# ---------------------------------------------------------------- differential vs apache2

APACHE = "/usr/sbin/apache2"
APACHE_CONF = """
ServerRoot "{root}"
Listen 127.0.0.1:{port}
LoadModule mpm_prefork_module {mods}/mod_mpm_prefork.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule alias_module {mods}/mod_alias.so
LoadModule cgi_module {mods}/mod_cgi.so
User nobody
Group nogroup
ServerName localhost
ServerAdmin admin@example.test
DocumentRoot "{root}/htdocs"
DefaultRuntimeDir "{root}/logs"
PidFile logs/httpd.pid
ErrorLog logs/error_log
LogLevel warn
ScriptAlias /cgi-bin/ "{root}/cgi-bin/"
<Directory "{root}/cgi-bin">
    Require all granted
</Directory>
"""

QUINTET_CONF = r"""
ScriptAlias /cgi-bin/ "@ROOT@/cgi-bin/"
<Directory "@ROOT@/cgi-bin">
    Require all granted
</Directory>
"""

# Variables allowed to differ, each with its reason.
ALLOWED_DIFF = {
    "SERVER_SOFTWARE": "product banner: Apache/2.4.x (Debian) vs Quintet/x",
    # Apache: the Host port, else ServerName's port (80 when it has none);
    # Quintet: the Host port, else the listener's.  Compared when Host has one.
    "SERVER_PORT": "without a port in Host, Apache reports 80 (see above)",
    "REMOTE_PORT": "a new client port per connection",
}


class Apache:
    """Debian's apache2 with mod_cgi in its own ServerRoot and session."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="qt-apache-")
        os.chmod(self.root, 0o755)
        for d in ("htdocs", "cgi-bin", "logs"):
            os.mkdir(os.path.join(self.root, d))
            os.chmod(os.path.join(self.root, d), 0o755)
        self.port = harness.free_port()
        self.proc = None

    def start(self):
        with open(os.path.join(self.root, "httpd.conf"), "w") as f:
            f.write(APACHE_CONF.format(root=self.root, port=self.port,
                                       mods=harness.APACHE_MODULES))
        env = {"PATH": DEFAULT_PATH}
        for k in ("TZ", "LD_LIBRARY_PATH"):
            if k in os.environ:
                env[k] = os.environ[k]
        err = open(os.path.join(self.root, "logs", "stderr"), "wb")
        self.proc = subprocess.Popen(
            [APACHE, "-d", self.root, "-f", "httpd.conf", "-DFOREGROUND"],
            stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env,
            start_new_session=True)
        err.close()
        ok = harness.wait_until(lambda: self.proc.poll() is not None or self.accepts(), 10)
        if not ok or self.proc.poll() is not None:
            raise AssertionError("apache2 did not start:\n" + self.log())

    def accepts(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def log(self):
        out = ""
        for name in ("error_log", "stderr"):
            try:
                with open(os.path.join(self.root, "logs", name)) as f:
                    out += f.read()[-3000:]
            except OSError:
                pass
        return out

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        harness.kill_group(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.wait(10)
        self.proc = None
        subprocess.run(["rm", "-rf", self.root])


@pytest.fixture(scope="module")
def pair(module_servers):
    if not os.access(APACHE, os.X_OK):
        print("SKIP reason: %s is not installed (apt-get install apache2)" % APACHE)
        pytest.skip("apache2 is not installed (%s): no differential CGI test" % APACHE)
    q = module_servers(QUINTET_CONF, {"cgi-bin/printenv": SCRIPTS["printenv"]},
                       start=False, name="cgi-diff")
    os.chmod(q.path("cgi-bin/printenv"), 0o755)
    q.start()
    a = Apache()
    with open(os.path.join(a.root, "cgi-bin", "printenv"), "wb") as f:
        f.write(SCRIPTS["printenv"])
    os.chmod(os.path.join(a.root, "cgi-bin", "printenv"), 0o755)
    try:
        a.start()
        yield q, a
    finally:
        a.stop()


def raw_request(port, data):
    with harness.Conn(port) as c:
        c.send(data)
        return c.read_final()


BODY = b"name=value&x=%20y"
MATRIX = [
    ("plain", "GET /cgi-bin/printenv HTTP/1.1\r\nHost: localhost\r\n"),
    ("path-info", "GET /cgi-bin/printenv/extra/path%20x/ HTTP/1.1\r\nHost: localhost\r\n"),
    ("path-info-aliased", "GET /cgi-bin/printenv/cgi-bin/x%3Fy HTTP/1.1\r\nHost: localhost\r\n"),
    ("path-info-slash", "GET /cgi-bin/printenv/ HTTP/1.1\r\nHost: localhost\r\n"),
    ("query", "GET /cgi-bin/printenv?a=1&b=%20c&d=%26 HTTP/1.1\r\nHost: localhost\r\n"),
    ("isindex-query", "GET /cgi-bin/printenv?foo+bar HTTP/1.1\r\nHost: localhost\r\n"),
    ("empty-query", "GET /cgi-bin/printenv? HTTP/1.1\r\nHost: localhost\r\n"),
    ("dot-segments", "GET /cgi-bin/../cgi-bin/./printenv/a/../b HTTP/1.1\r\nHost: localhost\r\n"),
    ("odd-headers", "GET /cgi-bin/printenv HTTP/1.1\r\nHost: LocalHost\r\n"
                    "X-Foo_Bar: 1\r\nX.Dot: 2\r\nx-lower: 3\r\nX-Empty:\r\n"
                    "X-Digits-123: 4\r\nProxy: http://evil.test/\r\n"
                    "Authorization: Basic eDp5\r\nProxy-Authorization: Basic eDp5\r\n"
                    "Cookie: a=1\r\nUser-Agent: diff/1.0\r\n"),
    ("repeated-headers", "GET /cgi-bin/printenv HTTP/1.1\r\nHost: localhost\r\n"
                         "X-Rep: one\r\nX-Rep: two\r\nx-rep: three\r\n"
                         "Accept: text/html\r\nAccept: text/plain\r\n"),
    ("post-length", "POST /cgi-bin/printenv HTTP/1.1\r\nHost: localhost\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\n"
                    "Content-Length: %d\r\n" % len(BODY), BODY),
    ("post-chunked", "POST /cgi-bin/printenv?c=1 HTTP/1.1\r\nHost: localhost\r\n"
                     "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n",
     chunked(BODY, 5)),
    ("http10-no-host", "GET /cgi-bin/printenv HTTP/1.0\r\n"),
    ("host-with-port", "GET /cgi-bin/printenv HTTP/1.1\r\nHost: localhost:8123\r\n"),
    ("put", "PUT /cgi-bin/printenv/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n", b"abc"),
]


@pytest.mark.parametrize("row", MATRIX, ids=[m[0] for m in MATRIX])
def test_differential_printenv_vs_apache(pair, row):
    q, a = pair
    head = row[1] + "Connection: close\r\n\r\n"
    data = head.encode("latin-1") + (row[2] if len(row) > 2 else b"")
    envs = {}
    for name, port, root in (("quintet", q.port, q.root), ("apache", a.port, a.root)):
        r = raw_request(port, data)
        assert r.status == 200, (name, r, a.log() if name == "apache" else q.diag())
        env = parse_env(r.body)
        # Different ServerRoots (and ports in Host-derived values) are expected.
        envs[name] = {k: v.replace(root, "@ROOT@").replace(str(port), "@PORT@")
                      for k, v in env.items()}
    qe, ae = envs["quintet"], envs["apache"]
    # Not vacuous: both really ran printenv through CGI.
    for e in (qe, ae):
        assert e.get("GATEWAY_INTERFACE") == "CGI/1.1" and len(e) >= 20, e
    diffs = []
    for k in sorted(set(qe) | set(ae)):
        if k in ALLOWED_DIFF and not (k == "SERVER_PORT" and ":8123" in head):
            assert (k in qe) == (k in ae), (k, "present in only one")
            continue
        if qe.get(k) != ae.get(k):
            diffs.append("%s: quintet=%r apache=%r" % (k, qe.get(k), ae.get(k)))
    assert not diffs, "\n".join(diffs)
