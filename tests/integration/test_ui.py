#!/usr/bin/env python3
"""test_ui.py - the admin console (ui/) end to end in headless Chromium.

Starts a test origin, flexgate-ctl serving the source tree's ui/ directory, and a data plane,
then runs tests/ui/ui.test.mjs with Node.js: playwright-core drives Debian's Chromium
(/usr/bin/chromium) through sign-in, upstream and route creation (served by the data plane),
editing, a stale write (412), search, API keys (shown once, revoked), settings, a YAML import
with a dry run, history diff and rollback, keyboard-only use and phone width. Screenshots of
every page land in <build dir>/ui-screenshots/.

playwright-core (pinned; it downloads no browser: PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1) is
installed with npm into <build dir>/ui-tools on first use, like test_openapi's CLI. The test
SKIPS, saying why, only when Chromium is not installed (deploy/install-deps.sh installs the
`chromium` package); a missing npm or a failed install FAILS it.
"""

import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ClusterTest  # noqa: E402

CHROMIUM = os.environ.get("FG_CHROMIUM", "/usr/bin/chromium")
TOOLS_DIR = os.path.join(harness.BUILD_DIR, "ui-tools")
SHOTS_DIR = os.path.join(harness.BUILD_DIR, "ui-screenshots")
UI_DIR = os.path.join(harness.SOURCE_DIR, "ui")
SCRIPT = os.path.join(harness.SOURCE_DIR, "tests", "ui", "ui.test.mjs")
PLAYWRIGHT_PACKAGE = "playwright-core@1.65.1"  # pinned; drives the system Chromium over CDP
RUN_TIMEOUT = 170.0  # the script's own limit is 150 s; ctest's is 300 s


def playwright_module():
    """playwright-core's ES module entry, installed into the build tree if needed (no browser
    download: the system Chromium is driven)."""
    env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
    return harness.npm_tool(TOOLS_DIR, [PLAYWRIGHT_PACKAGE],
                            os.path.join("playwright-core", "index.mjs"), env=env)


class Console(ClusterTest):
    label = "ui"

    def test_console_in_chromium(self):
        if not os.access(CHROMIUM, os.X_OK):
            self.skipTest("Chromium is not installed at %s and could not be installed here "
                          "(deploy/install-deps.sh installs Debian's `chromium`): the browser "
                          "test of the admin console did not run" % CHROMIUM)
        node = shutil.which("node")
        self.assertIsNotNone(node, "node not found: install nodejs (deploy/install-deps.sh)")
        module = playwright_module()
        self.c.start_origin("A")
        self.c.start_ctl(extra_args=("--ui-dir", UI_DIR))
        dp = self.c.start_dp("dp-a")
        shutil.rmtree(SHOTS_DIR, ignore_errors=True)
        env = dict(os.environ,
                   FG_UI_URL="http://127.0.0.1:%d" % self.c.ctl.admin_port,
                   FG_TOKEN=self.c.token,
                   FG_DP_URL="http://127.0.0.1:%d" % dp.port,
                   FG_ORIGIN_URL=self.c.origin_url("A"),
                   FG_SHOTS=SHOTS_DIR,
                   FG_PLAYWRIGHT=module,
                   FG_CHROMIUM=CHROMIUM,
                   HOME=self.c.tmp)  # Chromium writes its profile and crash dirs here
        try:
            r = subprocess.run([node, SCRIPT], capture_output=True, text=True,
                               timeout=RUN_TIMEOUT, env=env, cwd=self.c.tmp)
        except subprocess.TimeoutExpired as e:
            self.fail("ui.test.mjs did not finish in %.0f s:\n%s" % (RUN_TIMEOUT, e.stdout or ""))
        sys.stderr.write(r.stdout)
        self.assertEqual(r.returncode, 0, "the browser test failed:\n%s%s\n%s"
                         % (r.stdout[-6000:], r.stderr[-3000:], self.c.context()))
        self.assertRegex(r.stdout, r"ui\.test: \d+ passed, 0 failed")
        shots = [f for f in os.listdir(SHOTS_DIR) if f.endswith(".png")]
        self.assertGreaterEqual(len(shots), 15, "screenshots of every page: %s" % sorted(shots))


if __name__ == "__main__":
    # Exit 77 when the test was skipped, so that ctest lists it as skipped, not passed.
    result = unittest.main(verbosity=2, exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    sys.exit(77 if result.skipped else 0)
