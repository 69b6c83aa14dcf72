"""The command line: -t, -v, -V, -M, usage, and config errors."""

import re

import pytest

import harness

pytestmark = pytest.mark.skipif(harness.ORACLE, reason="Quintet's own messages")


@pytest.fixture
def srv(make_server):
    return make_server("", {"htdocs/index.html": b"index\n"}, start=False)


def with_line(srv, line):
    """Appends a line to httpd.conf; returns its 1-based number."""
    text = srv.conf_text() + line + "\n"
    srv.write_conf(text)
    return text.count("\n")


def test_t_syntax_ok(srv):
    p = srv.cmd("-t")
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert "Syntax OK" in p.stderr, (p.stdout, p.stderr)


@pytest.mark.parametrize("line,word", [
    ("KeepAlive sometimes", "KeepAlive"),                 # bad flag value
    ("Timeout", "Timeout"),                               # missing argument
    ("NoSuchDirective foo", "NoSuchDirective"),           # unknown directive
    ("LoadModule nope_module /nonexistent/mod_nope.so", "LoadModule"),
    ("ServerTokens Prod extra", "ServerTokens"),          # too many arguments
])
def test_t_reports_file_line_and_directive(srv, line, word):
    n = with_line(srv, line)
    p = srv.cmd("-t")
    out = p.stdout + p.stderr
    assert p.returncode == 1, (p.returncode, out)
    assert re.search(r"httpd\.conf:%d:" % n, out), ("no FILE:%d:" % n, out)
    assert word in out, out
    assert "Syntax OK" not in out, out


def test_t_unclosed_section(srv):
    with_line(srv, '<Directory "/tmp">')
    p = srv.cmd("-t")
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    assert "Directory" in out and "httpd.conf" in out, out


def test_no_mpm_loaded(make_server):
    srv = make_server("", {"htdocs/index.html": b"x\n"}, start=False, with_mpm=False)
    p = srv.cmd("-t")
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    assert re.search(r"no mpm loaded", out, re.I), out


def test_start_without_mpm_fails(make_server):
    srv = make_server("", {"htdocs/index.html": b"x\n"}, start=False, with_mpm=False)
    p = srv.cmd("-DFOREGROUND", timeout=10)
    out = p.stdout + p.stderr + srv.error_log()
    assert p.returncode == 1, out
    assert re.search(r"no mpm loaded", out, re.I), out
    assert not srv.accepts()


def test_v_version(srv):
    p = srv.cmd("-v")
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert re.search(r"^Server version: Quintet/\d+\.\d+\.\d+", p.stdout, re.M), p.stdout


def test_V_names_the_mpm(srv):
    p = srv.cmd("-V")
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert re.search(r"^Server version: Quintet/", p.stdout, re.M), p.stdout
    assert re.search(r"^\s*Server MPM:\s+%s\s*$" % srv.mpm, p.stdout, re.M), p.stdout


def test_M_lists_loaded_modules(srv):
    p = srv.cmd("-M")
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert "Loaded Modules:" in p.stdout, p.stdout
    assert re.search(r"^\s+mpm_%s_module \(shared\)$" % srv.mpm, p.stdout, re.M), p.stdout
    assert re.search(r"^\s+hello_module \(shared\)$", p.stdout, re.M), p.stdout
    assert re.search(r"^\s+core_module \(static\)$", p.stdout, re.M), p.stdout


def test_bad_option_prints_usage(srv):
    p = srv.cmd("-Z")
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert re.search(r"usage", p.stderr, re.I), p.stderr
