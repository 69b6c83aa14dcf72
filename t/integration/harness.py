"""Black-box harness: start the real httpd on a free loopback port with a
config the test writes, and speak raw HTTP/1.x to it.

Environment (exported by `make check` through t/integration/run):
  QT_BUILDDIR  build tree holding httpd and modules/mod_*.so
  QT_SRCDIR    source tree (conf/mime.types)
  QT_ORACLE    "apache" runs the same tests against Debian's apache2, to
               check that an expectation really is Apache's behaviour.

Every wait in here is bounded in time; nothing sleeps longer than a poll
interval.
"""

import email.utils
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

BUILDDIR = os.environ.get("QT_BUILDDIR", os.getcwd())
SRCDIR = os.environ.get(
    "QT_SRCDIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
ORACLE = os.environ.get("QT_ORACLE", "") == "apache"

HTTPD = "/usr/sbin/apache2" if ORACLE else os.path.join(BUILDDIR, "httpd")
APACHE_MODULES = "/usr/lib/apache2/modules"

START_TIMEOUT = 5.0
STOP_TIMEOUT = 10.0
IO_TIMEOUT = 5.0
POLL = 0.02

# Fixed mtime for test files: far enough in the past that a server which
# weakens ETags of just-modified files (as Apache does) gives strong ones.
MTIME = 1577934245  # Thu, 02 Jan 2020 03:04:05 GMT


def mtime_http():
    return email.utils.formatdate(MTIME, usegmt=True)


def wait_until(pred, timeout, interval=POLL):
    """Polls pred() until it is truthy or timeout passes; returns its value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(interval)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------- responses

class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers          # [(name, value)] in wire order
        self.body = body
        self.raw_head = raw_head

    def header(self, name):
        """First value of a header (case-insensitive name), or None."""
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def has(self, name):
        return self.header(name) is not None

    def conn_tokens(self):
        v = ",".join(self.all("Connection"))
        return {t.strip().lower() for t in v.split(",") if t.strip()}

    def __repr__(self):
        body = self.body[:300]
        return "<%s\n%r>" % (self.raw_head.decode("latin-1").rstrip(), body)


class ProtocolError(Exception):
    pass


class Conn:
    """A client socket with a read buffer and response framing."""

    def __init__(self, port, host="127.0.0.1", timeout=IO_TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.eof = False
        self.timeout = timeout

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, deadline):
        """Reads more bytes; False at EOF. Raises on timeout."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no response within %.1fs; have %r" % (
                self.timeout, self.buf[:200]))
        self.sock.settimeout(left)
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _read_until(self, marker, deadline):
        while marker not in self.buf:
            if not self._fill(deadline):
                raise ProtocolError("connection closed before %r; have %r" % (
                    marker, self.buf[:300]))
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _read_n(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise ProtocolError("connection closed after %d of %d body bytes"
                                    % (len(self.buf), n))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, head=False, timeout=None):
        """Reads one response (1xx included). head: the request was HEAD."""
        deadline = time.monotonic() + (timeout or self.timeout)
        raw = self._read_until(b"\r\n\r\n", deadline)
        lines = raw[:-4].split(b"\r\n")
        m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
        if not m:
            raise ProtocolError("bad status line %r" % lines[0])
        headers = []
        for ln in lines[1:]:
            k, sep, v = ln.partition(b":")
            if not sep:
                raise ProtocolError("bad header line %r" % ln)
            headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
        r = Response(m.group(1).decode(), int(m.group(2)),
                     (m.group(3) or b"").decode("latin-1"), headers, b"", raw)
        r.body = self._read_body(r, head, deadline)
        return r

    def _read_body(self, r, head, deadline):
        if head or r.status < 200 or r.status in (204, 304):
            return b""
        te = (r.header("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            return self._read_chunked(deadline)
        cl = r.header("Content-Length")
        if cl is not None:
            return self._read_n(int(cl), deadline)
        while self._fill(deadline):
            pass
        out, self.buf = self.buf, b""
        return out

    def _read_chunked(self, deadline):
        body = b""
        while True:
            size_line = self._read_until(b"\r\n", deadline)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while self._read_until(b"\r\n", deadline) != b"\r\n":
                    pass                # trailers
                return body
            body += self._read_n(size, deadline)
            self._read_until(b"\r\n", deadline)

    def read_final(self, head=False, timeout=None):
        """Reads responses until a final (non-1xx) one; returns it."""
        while True:
            r = self.read_response(head=head, timeout=timeout)
            if r.status >= 200:
                return r

    def wait_closed(self, timeout):
        """Waits for EOF or reset. Returns (closed, extra_bytes, seconds)."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        extra = self.buf
        self.buf = b""
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False, extra, time.monotonic() - t0
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False, extra, time.monotonic() - t0
            except ConnectionResetError:
                break
            if not data:
                break
            extra += data
        self.eof = True
        return True, extra, time.monotonic() - t0


def request_bytes(method, path, host="localhost", headers=(), body=b"",
                  version="HTTP/1.1"):
    lines = ["%s %s %s" % (method, path, version)]
    if host is not None:
        lines.append("Host: %s" % host)
    lines += ["%s: %s" % kv for kv in headers]
    if isinstance(body, str):
        body = body.encode()
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# ------------------------------------------------------------------ server

BASE_CONF = r"""
ServerRoot "@ROOT@"
Listen 127.0.0.1:@PORT@
@MODULES@
ServerName localhost
ServerAdmin admin@example.test
DocumentRoot "@ROOT@/htdocs"
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "@ROOT@/htdocs">
    Options Indexes FollowSymLinks
    AllowOverride None
    Require all granted
</Directory>
DirectoryIndex index.html
ErrorLog logs/error_log
PidFile logs/httpd.pid
TypesConfig @MIMETYPES@
LogFormat "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"" combined
CustomLog logs/access_log combined
"""

APACHE_MODS = ["authz_core", "authz_host", "dir", "mime", "alias", "autoindex",
               "cgi"]


def module_lines(mpm, with_mpm=True):
    if ORACLE:
        mods = (["mpm_" + mpm] if with_mpm else []) + APACHE_MODS
        out = ["LoadModule %s_module %s/mod_%s.so" % (m, APACHE_MODULES, m)
               for m in mods]
        out += ["User nobody", "Group nogroup", "TraceEnable off"]
        return "\n".join(out)
    out = []
    if with_mpm:
        out.append("LoadModule mpm_%s_module %s/modules/mod_mpm_%s.so"
                   % (mpm, BUILDDIR, mpm))
    out.append("LoadModule hello_module %s/modules/mod_hello.so" % BUILDDIR)
    return "\n".join(out)


class Httpd:
    """One server instance in its own temporary ServerRoot."""

    def __init__(self, mpm, conf="", files=None, name="t", with_mpm=True):
        self.mpm = mpm
        self.extra_conf = conf
        self.with_mpm = with_mpm
        self.root = tempfile.mkdtemp(prefix="qt-%s-" % name)
        os.chmod(self.root, 0o755)
        for d in ("conf", "htdocs", "cgi-bin", "logs"):
            os.mkdir(os.path.join(self.root, d))
            os.chmod(os.path.join(self.root, d), 0o755)
        self.port = free_port()
        self.proc = None
        self.pid = None
        self.stderr_path = os.path.join(self.root, "stderr.txt")
        for path, content in (files or {}).items():
            self.put(path, content)
        self.write_conf()

    # ---- files

    def path(self, rel):
        return os.path.join(self.root, rel)

    def put(self, rel, content, mode=0o644):
        """Writes ServerRoot-relative file `rel` with the fixed MTIME."""
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        d = os.path.dirname(p)
        while d.startswith(self.root) and d != self.root:
            os.chmod(d, 0o755)
            d = os.path.dirname(d)
        if isinstance(content, str):
            content = content.encode()
        with open(p, "wb") as f:
            f.write(content)
        os.chmod(p, mode)
        os.utime(p, (MTIME, MTIME))
        return p

    def conf_text(self, extra=None):
        text = BASE_CONF + "\n" + (self.extra_conf if extra is None else extra) + "\n"
        mime = "/etc/mime.types" if ORACLE else os.path.join(SRCDIR, "conf", "mime.types")
        return (text.replace("@MODULES@", module_lines(self.mpm, self.with_mpm))
                .replace("@MIMETYPES@", mime)
                .replace("@ROOT@", self.root)
                .replace("@PORT@", str(self.port))
                .replace("@BUILDDIR@", BUILDDIR)
                .replace("@SRCDIR@", SRCDIR))

    def write_conf(self, text=None):
        """Writes conf/httpd.conf (the base plus extra, or `text` verbatim)."""
        with open(self.path("conf/httpd.conf"), "w") as f:
            f.write(self.conf_text() if text is None else text)

    def conf_line_of(self, needle):
        """1-based line number of the first line of httpd.conf holding needle."""
        with open(self.path("conf/httpd.conf")) as f:
            for i, ln in enumerate(f, 1):
                if needle in ln:
                    return i
        raise AssertionError("%r not in httpd.conf" % needle)

    # ---- logs

    def read(self, rel):
        try:
            with open(self.path(rel), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def error_log(self):
        return self.read("logs/error_log")

    def diag(self, resp=None):
        """Context for assertion messages: response, error_log, stderr."""
        out = []
        if resp is not None:
            out.append("response: %r" % (resp,))
        out.append("---- %s/logs/error_log (tail):\n%s" % (
            self.root, "\n".join(self.error_log().splitlines()[-40:])))
        err = self.read("stderr.txt")
        if err:
            out.append("---- server stderr (tail):\n" + "\n".join(err.splitlines()[-20:]))
        return "\n".join(out)

    def wait_log(self, rel, pattern, timeout=3.0):
        """Waits for a regex (re.M) in a log file; returns the match or None."""
        rx = re.compile(pattern, re.M)
        return wait_until(lambda: rx.search(self.read(rel)), timeout)

    # ---- commands

    def cmd(self, *args, timeout=15):
        """Runs httpd with -d ROOT -f conf/httpd.conf plus args; no server."""
        return subprocess.run(
            [HTTPD, "-d", self.root, "-f", "conf/httpd.conf", *args],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=timeout, errors="replace")

    # ---- life cycle

    def start(self):
        """Starts httpd -DFOREGROUND and waits until the port accepts."""
        for attempt in range(3):
            if self._start_once():
                return self
            bind_race = re.search(r"in use|could not bind", self.error_log() +
                                  self.read("stderr.txt"), re.I)
            if not bind_race:
                break
            self.port = free_port()     # someone took our port: try another
            self.write_conf()
        raise AssertionError("httpd did not start on port %d\n%s" % (
            self.port, self.diag()))

    def _start_once(self):
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [HTTPD, "-d", self.root, "-f", "conf/httpd.conf", "-DFOREGROUND"],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                start_new_session=True)
        self.pid = self.proc.pid
        ok = wait_until(lambda: self.proc.poll() is not None or self.accepts(),
                        START_TIMEOUT)
        if ok and self.proc.poll() is None:
            return True
        self.stop()
        return False

    def accepts(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def children(self):
        return children_of(self.pid) if self.pid else []

    def signal(self, sig):
        os.kill(self.pid, sig)

    def stop(self):
        """SIGTERM to the master, bounded wait, then SIGKILL its group."""
        if self.proc is None:
            return None
        rc = None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                rc = self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait(STOP_TIMEOUT)
        else:
            rc = self.proc.returncode
        kill_group(self.pid)
        self.proc = None
        return rc

    def cleanup(self, keep=False):
        self.stop()
        if not keep and not os.environ.get("QT_KEEP"):
            shutil.rmtree(self.root, ignore_errors=True)

    # ---- requests

    def conn(self, timeout=IO_TIMEOUT):
        return Conn(self.port, timeout=timeout)

    def get(self, path, method="GET", host="localhost", headers=(), body=b"",
            version="HTTP/1.1", close=True):
        """One request on a fresh connection; returns the final response."""
        hdrs = list(headers)
        if close:
            hdrs.append(("Connection", "close"))
        with self.conn() as c:
            c.send(request_bytes(method, path, host, hdrs, body, version))
            return c.read_final(head=(method == "HEAD"))

    def raw(self, data, head=False):
        """Sends raw bytes on a fresh connection; returns the first final response."""
        with self.conn() as c:
            c.send(data)
            return c.read_final(head=head)


def stat_fields(pid):
    """The fields of /proc/PID/stat after the command name (state first,
    as in proc(5) from field 3 on), or None if the process is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(")") + 2:].split()


def proc_stat(pid):
    """(state, ppid) of a process, or None if it is gone."""
    rest = stat_fields(pid)
    return None if rest is None else (rest[0], int(rest[1]))


def voluntary_switches(pid, tid=None):
    """How many times a process (or one of its threads) went to sleep and
    was woken, from /proc; None if it is gone."""
    path = "/proc/%d/task/%d/status" % (pid, tid) if tid else "/proc/%d/status" % pid
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st and st[1] == pid:
                out.append(int(d))
    return sorted(out)


def pid_alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def kill_group(pgid):
    """Kills what is left of a process group we created (stray children)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
