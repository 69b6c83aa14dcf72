"""Access log formats and the error log's startup notice."""

import re

import pytest

BODY = b"log me\n"
FILES = {"htdocs/log.txt": BODY}

CONF = r"""
LogFormat "%D %{X-Test}i %>s %m %U%q" timing
CustomLog logs/custom_log timing
"""


@pytest.fixture(scope="module")
def srv(module_servers):
    return module_servers(CONF, FILES)


def test_combined_access_log_line(srv):
    r = srv.get("/log.txt?q=1", headers=[("Referer", "http://ref.test/from"),
                                          ("User-Agent", "bbox-agent/1.0 (test)")])
    assert r.status == 200, srv.diag(r)
    rx = (r'^127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] '
          r'"GET /log\.txt\?q=1 HTTP/1\.1" 200 %d "http://ref\.test/from" '
          r'"bbox-agent/1\.0 \(test\)"$' % len(BODY))
    assert srv.wait_log("logs/access_log", rx), (rx, srv.read("logs/access_log"))


def test_access_log_404_and_head(srv):
    srv.get("/missing-for-log.txt", headers=[("User-Agent", "ua-404")])
    assert srv.wait_log("logs/access_log",
                        r'"GET /missing-for-log\.txt HTTP/1\.1" 404 \d+ "-" "ua-404"$'), \
        srv.read("logs/access_log")
    srv.get("/log.txt", method="HEAD", headers=[("User-Agent", "ua-head")])
    # %b prints "-" when no body bytes were sent.
    assert srv.wait_log("logs/access_log", r'"HEAD /log\.txt HTTP/1\.1" 200 - "-" "ua-head"$'), \
        srv.read("logs/access_log")


def test_custom_log_format(srv):
    r = srv.get("/log.txt?x=y", headers=[("X-Test", "marker-42")])
    assert r.status == 200, srv.diag(r)
    m = srv.wait_log("logs/custom_log", r"^(\d+) marker-42 200 GET /log\.txt\?x=y$")
    assert m, srv.read("logs/custom_log")
    assert int(m.group(1)) < 10_000_000, "%D is in microseconds"
    srv.get("/log.txt?none")
    assert srv.wait_log("logs/custom_log", r"^\d+ - 200 GET /log\.txt\?none$"), \
        srv.read("logs/custom_log")


def test_error_log_startup_notice_names_mpm(srv):
    # At the default LogLevel (warn): like Apache, start-up notices are kept.
    rx = r"^\[[^\]]+\] (?=\[[^\]]*:notice\]).*%s" % re.escape(srv.mpm)
    line = srv.wait_log("logs/error_log", rx)
    assert line, srv.diag()
