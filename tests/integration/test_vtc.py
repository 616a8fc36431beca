#!/usr/bin/env python3
"""test_vtc.py - runs every tests/vtc/*.vtc with varnishtest against a real flexgate-dp.

In each script the scripted server `s1` is the upstream, so it sees exactly the bytes the data
plane forwards, and client `c1` talks to the data plane. Per script this runner picks a free
port for s1, starts a data plane (via configured_dp: a real ctl stores the config, a fake ctl
feeds it) whose upstream "s1" points at that port, then runs

    varnishtest -D origin_port=P -D dp_port=D -D dp_ip=127.0.0.1 script.vtc

so a script says `server s1 -listen "127.0.0.1 ${origin_port}"` and
`client c1 -connect "${dp_ip} ${dp_port}"`. Routes of the data plane:
  /ws/*     -> s1, `websocket: true` (Upgrade requests are tunnelled)
  /*        -> s1 (Upgrade is removed: plain HTTP)
The upstream timeout is UPSTREAM_TIMEOUT_MS; the route /short/* has a 1 s whole-request
timeout. A script fails the test when varnishtest exits non-zero; its log is in the message.
"""

import glob
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import configured_dp  # noqa: E402

VTC_DIR = os.path.join(harness.SOURCE_DIR, "tests", "vtc")
VARNISHTEST = shutil.which("varnishtest")
UPSTREAM_TIMEOUT_MS = 3000
SCRIPT_TIMEOUT_S = 30


class Vtc(harness.ClusterTest):
    label = "vtc"

    def run_script(self, path):
        if VARNISHTEST is None:
            self.fail("varnishtest not found (Debian package varnish; deploy/install-deps.sh)")
        c = self.c
        origin_port = harness.free_port()
        url = "http://127.0.0.1:%d" % origin_port
        dp, _ = configured_dp.start(
            self, c, [{"name": "s1", "url": url, "timeout": UPSTREAM_TIMEOUT_MS}],
            [{"id": "ws", "path": "/ws/*", "upstream": "s1", "websocket": True},
             {"id": "short", "path": "/short/*", "upstream": "s1", "timeout": 1000},
             {"id": "all", "path": "/*", "upstream": "s1"}])
        argv = [VARNISHTEST, "-v", "-t", str(SCRIPT_TIMEOUT_S),
                "-D", "origin_port=%d" % origin_port, "-D", "dp_port=%d" % dp.port,
                "-D", "dp_ip=127.0.0.1", path]
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=SCRIPT_TIMEOUT_S + 30, cwd=c.tmp)
        if p.returncode != 0:
            log = p.stdout.decode("utf-8", "replace")
            self.fail("%s failed (exit %d):\n%s\n%s" % (os.path.basename(path), p.returncode,
                                                         log[-6000:], c.context()))
        self.assertTrue(dp.alive())


def _make(path):
    def test(self):
        self.run_script(path)
    return test


for _path in sorted(glob.glob(os.path.join(VTC_DIR, "*.vtc"))):
    _name = "test_" + os.path.splitext(os.path.basename(_path))[0].replace("-", "_")
    setattr(Vtc, _name, _make(_path))

if not glob.glob(os.path.join(VTC_DIR, "*.vtc")):
    raise SystemExit("no scripts in %s" % VTC_DIR)


if __name__ == "__main__":
    harness.main()
