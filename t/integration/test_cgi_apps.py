"""Real applications through the cgi-script handler: git smart HTTP
(git http-backend) and PHP (php-cgi through an Action), under every MPM.

Both programs come from Debian (.ci/run installs git and php-cgi); a test
skips, saying why, only when one is not installed.
"""

import hashlib
import os
import random
import re
import shutil
import subprocess
import tempfile

import pytest

import harness

GIT = shutil.which("git")
GIT_BACKEND = "/usr/lib/git-core/git-http-backend"
PHP_CGI = "/usr/bin/php-cgi"
GIT_TIMEOUT = 120               # seconds, for any one git command

need_git = pytest.mark.skipif(
    not (GIT and os.access(GIT_BACKEND, os.X_OK)),
    reason="git or %s is not installed (Debian package git)" % GIT_BACKEND)
need_php = pytest.mark.skipif(
    not os.access(PHP_CGI, os.X_OK),
    reason="%s is not installed (Debian package php-cgi)" % PHP_CGI)
no_oracle = pytest.mark.skipif(
    harness.ORACLE, reason="the oracle config loads no mod_env/mod_actions")


# ---------------------------------------------------------------- git

# The README recipe, plus a log line that shows how each request body came.
GIT_CONF = r"""
ScriptAlias /git/ /usr/lib/git-core/git-http-backend/
<Directory "/usr/lib/git-core">
    Require all granted
</Directory>
<Location "/git/">
    SetEnv GIT_PROJECT_ROOT "@ROOT@/repos"
    SetEnv GIT_HTTP_EXPORT_ALL
</Location>
LogFormat "%m %U %>s te=%{Transfer-Encoding}i cl=%{Content-Length}i" bodies
CustomLog logs/body_log bodies
"""

# Several MiB of incompressible data, the same on every run.
GIT_FILES = {"a.bin": 2 * 1024 * 1024 + 17, "b.bin": 1536 * 1024, "sub/c.bin": 700 * 1024}
SEED = 20240503


def payload():
    rnd = random.Random(SEED)
    return {name: rnd.randbytes(size) for name, size in GIT_FILES.items()}


class Git:
    """git with a private HOME, no prompts, no system config, and a bound on
    every run."""

    def __init__(self, home):
        self.env = dict(os.environ, HOME=home, GIT_TERMINAL_PROMPT="0",
                        GIT_CONFIG_NOSYSTEM="1", GIT_ASKPASS="/bin/false",
                        LC_ALL="C")
        for k in ("GIT_DIR", "GIT_WORK_TREE", "GIT_CONFIG_GLOBAL"):
            self.env.pop(k, None)

    def __call__(self, *args, cwd=None, check=True):
        p = subprocess.run(
            [GIT, "-c", "user.name=Quintet Test", "-c", "user.email=t@example.test",
             "-c", "init.defaultBranch=main", *args],
            cwd=cwd, env=self.env, stdin=subprocess.DEVNULL, capture_output=True,
            text=True, errors="replace", timeout=GIT_TIMEOUT)
        if check and p.returncode != 0:
            raise AssertionError("git %s failed (%d):\n%s\n%s" % (
                " ".join(args), p.returncode, p.stdout, p.stderr))
        return p


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="qt-git-client-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def git_srv(make_server, workdir):
    s = make_server(GIT_CONF, start=False, name="git")
    git = Git(os.path.join(workdir, "home"))
    os.mkdir(git.env["HOME"])
    repo = s.path("repos/repo.git")
    git("init", "--bare", "-q", repo)
    # Pushes without authentication: the repository allows them itself
    # (http-backend refuses receive-pack when REMOTE_USER is unset otherwise).
    git("config", "http.receivepack", "true", cwd=repo)
    s.start()
    return s, git


def tree_files(root):
    out = {}
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x != ".git"]
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out


@need_git
@no_oracle
def test_git_clone_push_clone_byte_for_byte(git_srv, workdir):
    srv, git = git_srv
    url = "http://127.0.0.1:%d/git/repo.git" % srv.port
    first, second = os.path.join(workdir, "first"), os.path.join(workdir, "second")

    git("clone", "-q", url, first)      # empty repository: smart HTTP GET
    data = payload()
    for name, blob in data.items():
        os.makedirs(os.path.dirname(os.path.join(first, name)), exist_ok=True)
        with open(os.path.join(first, name), "wb") as f:
            f.write(blob)
    git("add", "-A", cwd=first)
    git("commit", "-q", "-m", "several MiB of random data", cwd=first)
    # A pack bigger than http.postBuffer goes out with chunked framing.
    git("-c", "http.postBuffer=65536", "push", "-q", "origin", "HEAD:refs/heads/main",
        cwd=first)

    git("clone", "-q", "-b", "main", url, second)
    got = tree_files(second)
    assert sorted(got) == sorted(data), srv.diag()
    for name, blob in data.items():
        assert hashlib.sha256(got[name]).hexdigest() == hashlib.sha256(blob).hexdigest(), name
    head = git("rev-parse", "HEAD", cwd=first).stdout.strip()
    assert git("rev-parse", "HEAD", cwd=second).stdout.strip() == head
    git("fsck", "--full", "--strict", cwd=second)
    git("fsck", "--full", "--strict", cwd=srv.path("repos/repo.git"))

    log = srv.read("logs/body_log")
    pushes = re.findall(r"^POST /git/repo\.git/git-receive-pack 200 te=(\S+) cl=(\S+)$",
                        log, re.M)
    assert ("chunked", "-") in pushes, "the big push was not chunked:\n" + log
    assert sum(len(b) for b in data.values()) > 4 * 1024 * 1024
    assert not re.search(r"^\S+ \S+ 5\d\d ", log, re.M), log


@need_git
@no_oracle
def test_git_unknown_repository_is_404(git_srv, workdir):
    srv, git = git_srv
    url = "http://127.0.0.1:%d/git/nothere.git" % srv.port
    p = git("clone", "-q", url, os.path.join(workdir, "x"), check=False)
    assert p.returncode != 0
    assert re.search(r"^GET /git/nothere\.git/info/refs 404 ", srv.read("logs/body_log"),
                     re.M), srv.read("logs/body_log")


# ---------------------------------------------------------------- Action / PHP

ACTION_CONF = r"""
ScriptAlias /cgi-bin/ "@ROOT@/cgi-bin/"
<Directory "@ROOT@/cgi-bin">
    Require all granted
</Directory>
Action php-script /cgi-bin/php-wrapper
AddHandler php-script .php
AddType application/x-qt-doc .qtd
Action application/x-qt-doc /cgi-bin/env.sh
<Location "/virtual/">
    SetHandler qt-virtual
    Action qt-virtual /cgi-bin/env.sh virtual
</Location>
"""

# php-cgi is exec'd with no arguments: the query string never reaches its
# command line (CVE-2012-1823 came from exactly that).
PHP_WRAPPER = "#!/bin/sh\nexec %s\n" % PHP_CGI

PHP_PAGE = r"""<?php
header("Content-Type: text/x-qt-page; charset=utf-8");
header("X-Powered-Check: php");
$g = isset($_GET["name"]) ? $_GET["name"] : "-";
$p = isset($_POST["field"]) ? $_POST["field"] : "-";
echo "sapi=", php_sapi_name(), "\n";
echo "method=", $_SERVER["REQUEST_METHOD"], "\n";
echo "get=", htmlspecialchars($g), "\n";
echo "post=", htmlspecialchars($p), "\n";
echo "self=", $_SERVER["PHP_SELF"], "\n";
echo "redirect_status=", getenv("REDIRECT_STATUS"), "\n";
echo "redirect_handler=", getenv("REDIRECT_HANDLER"), "\n";
"""

ENV_SH = ("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n"
          "for v in REQUEST_METHOD SCRIPT_NAME PATH_INFO PATH_TRANSLATED QUERY_STRING "
          "REDIRECT_STATUS REDIRECT_URL REDIRECT_HANDLER CONTENT_LENGTH; do\n"
          "  eval \"printf '%s=%s\\n' $v \\\"\\${$v-unset}\\\"\"\ndone\n"
          "printf 'body='\ncat\n")


@pytest.fixture(scope="module")
def php_srv(module_servers):
    files = {"cgi-bin/php-wrapper": PHP_WRAPPER, "cgi-bin/env.sh": ENV_SH,
             "htdocs/app/page.php": PHP_PAGE, "htdocs/doc/hello.qtd": "not served raw\n"}
    s = module_servers(ACTION_CONF, files, start=False)
    for name in ("php-wrapper", "env.sh"):
        os.chmod(s.path("cgi-bin/" + name), 0o755)
    s.start()
    return s


def lines(body):
    return dict(ln.split("=", 1) for ln in body.decode().splitlines() if "=" in ln)


def form_post(srv, path, body, chunk=None):
    if chunk:
        framed = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + chunk]), body[i:i + chunk])
                          for i in range(0, len(body), chunk)) + b"0\r\n\r\n"
        framing = [("Transfer-Encoding", "chunked")]
    else:
        framed, framing = body, [("Content-Length", str(len(body)))]
    return srv.get(path, method="POST", body=framed, headers=framing + [
        ("Content-Type", "application/x-www-form-urlencoded")])


@need_php
@no_oracle
def test_php_get(php_srv):
    r = php_srv.get("/app/page.php?name=Ann%20%3Cx%3E")
    assert r.status == 200, php_srv.diag(r)
    assert r.header("Content-Type") == "text/x-qt-page; charset=utf-8", r
    assert r.header("X-Powered-Check") == "php"
    v = lines(r.body)
    assert v["sapi"] == "cgi-fcgi" and v["method"] == "GET", r
    assert v["get"] == "Ann &lt;x&gt;" and v["post"] == "-", r
    assert v["self"] == "/app/page.php", r
    assert v["redirect_status"] == "200" and v["redirect_handler"] == "php-script", r


@need_php
@no_oracle
def test_php_post_form(php_srv):
    r = form_post(php_srv, "/app/page.php?name=q", b"field=hello+world%21&other=1")
    assert r.status == 200, php_srv.diag(r)
    assert r.header("Content-Type") == "text/x-qt-page; charset=utf-8", r
    v = lines(r.body)
    assert (v["method"], v["get"], v["post"]) == ("POST", "q", "hello world!"), r


@need_php
@no_oracle
def test_php_chunked_post_has_no_form(php_srv):
    """php-cgi reads a body only by CONTENT_LENGTH, which a chunked request
    does not have (RFC 3875; the same under Apache mod_cgi): the page runs,
    $_POST stays empty, and the connection stays in step."""
    r = form_post(php_srv, "/app/page.php?name=q", b"field=lost", chunk=4)
    assert r.status == 200, php_srv.diag(r)
    v = lines(r.body)
    assert (v["method"], v["get"], v["post"]) == ("POST", "q", "-"), r


@need_php
@no_oracle
def test_php_keep_alive_after_post(php_srv):
    """The action script read the body: the next request on the connection
    starts at the right byte."""
    body = b"field=first"
    with php_srv.conn() as c:
        c.send(harness.request_bytes("POST", "/app/page.php", headers=[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Content-Length", str(len(body)))], body=body))
        r1 = c.read_final()
        c.send(harness.request_bytes("GET", "/app/page.php?name=second",
                                     headers=[("Connection", "close")]))
        r2 = c.read_final()
    assert lines(r1.body)["post"] == "first", r1
    assert r2.status == 200 and lines(r2.body)["get"] == "second", r2


@need_php
@no_oracle
def test_php_direct_call_refused_by_force_redirect(php_srv):
    """Without the Action there is no REDIRECT_STATUS, and php-cgi's
    cgi.force_redirect refuses: the Action is what makes PHP run."""
    r = php_srv.get("/cgi-bin/php-wrapper/app/page.php")
    # php-cgi prints its warning with no header block: a malformed head, 500.
    assert r.status == 500 and b"sapi=" not in r.body, r
    assert php_srv.wait_log("logs/error_log",
                            r"malformed header from script 'php-wrapper'.*Security Alert"), \
        php_srv.diag(r)


@need_php
@no_oracle
def test_php_missing_page_is_404(php_srv):
    r = php_srv.get("/app/nothere.php")
    assert r.status == 404, r
    assert b"Security Alert" not in r.body


@no_oracle
def test_action_by_mime_type_env_and_body(php_srv):
    r = form_post(php_srv, "/doc/hello.qtd?a=1", b"x=1&y=2", chunk=3)
    assert r.status == 200, php_srv.diag(r)
    text = r.body.decode()
    v = lines(r.body)
    assert v["REQUEST_METHOD"] == "POST" and v["SCRIPT_NAME"] == "/cgi-bin/env.sh", text
    assert v["PATH_INFO"] == "/doc/hello.qtd", text
    assert v["PATH_TRANSLATED"] == php_srv.path("htdocs/doc/hello.qtd"), text
    assert v["QUERY_STRING"] == "a=1" and v["REDIRECT_URL"] == "/doc/hello.qtd", text
    assert v["REDIRECT_STATUS"] == "200", text
    assert v["REDIRECT_HANDLER"] == "application/x-qt-doc", text
    assert text.endswith("body=x=1&y=2"), text


@no_oracle
def test_action_virtual_needs_no_file(php_srv):
    r = php_srv.get("/virtual/no/such/file")
    assert r.status == 200, php_srv.diag(r)
    v = lines(r.body)
    assert v["PATH_INFO"] == "/virtual/no/such/file" and v["REQUEST_METHOD"] == "GET", r
    assert v["REDIRECT_HANDLER"] == "qt-virtual"
