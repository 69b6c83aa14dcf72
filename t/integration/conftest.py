"""pytest wiring: the --mpm option, and server fixtures.

Each test module that needs a server defines its config and files and asks
for `make_server`; servers are shared per module where the config is the
same, and always stopped at teardown.
"""

import os
import re

import pytest

import harness


def pytest_addoption(parser):
    mpms = os.environ.get("QT_MPMS", "prefork").split()
    parser.addoption("--mpm", default=os.environ.get("QT_MPM") or mpms[0],
                     help="MPM to load (mod_mpm_<mpm>.so); default from QT_MPMS")


def pytest_report_header(config):
    return "quintet integration: httpd=%s mpm=%s%s" % (
        harness.HTTPD, config.getoption("--mpm"),
        " (ORACLE: Debian apache2)" if harness.ORACLE else "")


@pytest.fixture(scope="session")
def mpm(request):
    name = request.config.getoption("--mpm")
    if not os.access(harness.HTTPD, os.X_OK):
        pytest.fail("no executable httpd at %s (set QT_BUILDDIR; run `make`)"
                    % harness.HTTPD, pytrace=False)
    if not harness.ORACLE:
        so = os.path.join(harness.BUILDDIR, "modules", "mod_mpm_%s.so" % name)
        if not os.path.exists(so):
            pytest.fail("MPM %s is not built: %s missing" % (name, so), pytrace=False)
    return name


class ServerFactory:
    """Creates servers and guarantees they are stopped."""

    def __init__(self, mpm, name):
        self.mpm = mpm
        self.name = name
        self.servers = []

    def __call__(self, conf="", files=None, start=True, with_mpm=True, name=None):
        srv = harness.Httpd(self.mpm, conf, files, name or self.name, with_mpm)
        self.servers.append(srv)
        if start:
            srv.start()
        return srv

    def close(self):
        for srv in self.servers:
            srv.cleanup()


@pytest.fixture(scope="module")
def module_servers(mpm, request):
    f = ServerFactory(mpm, request.module.__name__.replace("test_", ""))
    yield f
    f.close()


@pytest.fixture
def make_server(mpm, request):
    """A factory for per-test servers (life-cycle tests mutate theirs)."""
    f = ServerFactory(mpm, re.sub(r"[^A-Za-z0-9_-]", "-", request.node.name)[:40])
    yield f
    f.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the error_log of every server the test used."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call" or not rep.failed:
        return
    for name in ("module_servers", "make_server"):
        f = item.funcargs.get(name)
        for srv in getattr(f, "servers", []):
            rep.sections.append(("error_log " + srv.root, srv.diag()))
