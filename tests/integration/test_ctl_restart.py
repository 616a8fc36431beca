#!/usr/bin/env python3
"""test_ctl_restart.py - data planes outlive their control plane (issue 2).

flexgate-ctl is killed with SIGKILL (no clean shutdown, its socket file left behind): both
data planes keep serving their last generation. A new flexgate-ctl on the same database and
socket path comes back with the same config version, the data planes reconnect by
themselves, and a changed route reaches both of them.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ClusterTest, is_origin_json  # noqa: E402

SERVE_WINDOW = 1.0  # s: how long we keep calling the data planes with no control plane


class CtlRestart(ClusterTest):
    label = "ctlrestart"
    # Data planes may log the lost control connection / refused reconnects at error level.
    expect_error_logs = True

    def test_data_planes_survive_ctl_kill_and_get_changes_after_restart(self):
        c = self.c
        ids = self.start_standard()
        c.start_origin("B")
        c.api_ok("POST", "/api/v1/routes",
                 {"id": "users", "path": "/api/users/*", "upstream": "backend"}, expect=201)
        c.wait_served(ids, "/api/users/1", lambda r: is_origin_json(r, "A"), "route via A")
        v = c.config_version()
        c.wait_in_sync(ids, v)

        old = c.ctl
        old.kill()
        self.assertEqual(old.popen.returncode, -9)

        # Both keep serving (and stay ready) while nothing answers on the socket.
        t_end = time.monotonic() + SERVE_WINDOW
        served = 0
        for _ in range(100_000):
            for i in ids:
                r = c.through(i, "GET", "/api/users/%d" % served)
                self.assertTrue(is_origin_json(r, "A"),
                                "%s with the control plane dead: %r\n%s" % (i, r, c.context()))
                served += 1
            if time.monotonic() > t_end:
                break
        for i in ids:
            r = c.status(c.dps[i], "/health/ready")
            self.assertEqual(r.status, 200, "%s still ready without a control plane" % i)
            self.assertEqual(r.json()["config_version"], v)
        self.assertTrue(all(c.dps[i].alive() for i in ids))

        # Same database, same socket path (the stale socket file is still there).
        c.start_ctl(db=old.db, socket_path=old.socket_path, name="ctl2")
        self.assertEqual(c.config_version(), v, "config version survives the restart")
        self.assertEqual(c.api_ok("GET", "/api/v1/routes/users", expect=200).json()["upstream"],
                         "backend")
        c.wait_in_sync(ids, v)  # data planes reconnected to the new process

        c.api_ok("POST", "/api/v1/upstreams", {"name": "other", "url": c.origin_url("B")},
                 expect=201)
        r = c.api_ok("PUT", "/api/v1/routes/users",
                     {"id": "users", "path": "/api/users/*", "upstream": "other"}, expect=200)
        v2 = int(r.header("X-Config-Version"))
        self.assertEqual(v2, v + 2)
        c.wait_served(ids, "/api/users/9", lambda r: is_origin_json(r, "B"),
                      "the changed route (now via origin B)")
        c.wait_in_sync(ids, v2)
        c.assert_no_error_logs(names={"ctl2"})


if __name__ == "__main__":
    harness.main()
