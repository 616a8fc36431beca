#!/usr/bin/env python3
"""test_not_ready.py - a data plane with no configuration yet (issue 2).

Started before its control plane is up, a data plane is live but not ready: /health/ready
is 503 with config_version 0 and every proxied request gets 503 not_ready. Once a control
plane appears on the socket, the data plane connects by itself (backoff), applies the
snapshot, turns ready with that version and serves.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ClusterTest, error_code, is_origin_json  # noqa: E402

BACKOFF_MAX = 5.0  # s: the brief's reconnect backoff ceiling


class NotReady(ClusterTest):
    label = "notready"
    # Refused connects to the missing control plane may be logged at error level.
    expect_error_logs = True

    def test_503_until_a_control_plane_appears(self):
        c = self.c
        c.start_origin("A")
        # Prepare a database holding a configuration, then stop its control plane.
        ctl = c.start_ctl()
        c.route_all_to("A")
        v = c.config_version()
        rc, killed = ctl.stop()
        self.assertEqual((rc, killed), (0, False), "flexgate-ctl exits 0 on SIGTERM")

        dp = c.start_dp("dp-a", socket_path=ctl.socket_path, wait_ready=False)
        live = c.status(dp, "/health/live")
        self.assertEqual(live.status, 200)
        self.assertEqual(live.json().get("status"), "UP")
        self.assertTrue(live.json().get("timestamp"))
        ready = c.status(dp, "/health/ready")
        self.assertEqual(ready.status, 503)
        self.assert_ready_body(ready, "DOWN", 0)
        for path in ("/", "/anything", "/api/x?y=1"):
            r = c.through("dp-a", "GET", path)
            self.assertEqual(r.status, 503, "%s with no config: %r" % (path, r))
            self.assertEqual(error_code(r), "not_ready")
            self.assertIsInstance(r.json()["error"].get("message"), str)
        r = c.through("dp-a", "POST", "/upload", body=b"x" * 10000)
        self.assertEqual(r.status, 503)
        self.assertEqual(c.origins["A"].alive(), True)

        c.start_ctl(db=ctl.db, socket_path=ctl.socket_path, name="ctl2")
        r = c.wait_dp_ready(dp, version=v, timeout=BACKOFF_MAX + harness.PROPAGATE_TIMEOUT)
        self.assert_ready_body(r, "UP", v)
        self.assertTrue(is_origin_json(c.through("dp-a", "GET", "/anything?q=1"), "A",
                                       "/anything?q=1"))
        c.wait_in_sync(["dp-a"], v)
        c.assert_no_error_logs(names={"ctl2"})

    def assert_ready_body(self, r, state, version):
        body = r.json()
        self.assertEqual(body.get("status"), state, body)
        self.assertEqual((body.get("checks") or {}).get("config"), state, body)
        self.assertEqual(body.get("config_version"), version, body)


if __name__ == "__main__":
    harness.main()
