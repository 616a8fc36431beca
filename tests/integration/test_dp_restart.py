#!/usr/bin/env python3
"""test_dp_restart.py - data plane lifecycle (issue 2).

A data plane stopped with SIGTERM exits 0 after letting an in-flight request finish, shows
as disconnected in /api/v1/dataplanes, and when started again (while the config moved on)
gets the current snapshot and serves it.
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ClusterTest, is_origin_json  # noqa: E402


class DpRestart(ClusterTest):
    label = "dprestart"

    def test_restarted_data_plane_gets_current_snapshot(self):
        c = self.c
        ids = self.start_standard()
        c.api_ok("POST", "/api/v1/routes",
                 {"id": "users", "path": "/api/users/*", "upstream": "backend"}, expect=201)
        c.wait_served(ids, "/api/users/1", lambda r: is_origin_json(r, "A"), "route served")
        c.wait_in_sync(ids)

        dp_b = c.dps["dp-b"]
        rc, killed = dp_b.stop()
        self.assertEqual((rc, killed), (0, False), "flexgate-dp exits 0 on SIGTERM")

        def b_disconnected():
            items = {d["id"]: d for d in c.dataplanes()["items"]}
            d = items.get("dp-b")
            return d is not None and d["connected"] is False and d["status"] == "disconnected"

        c.poll(b_disconnected, "dp-b shown connected=false, status=disconnected")

        # The config moves on while dp-b is away.
        c.api_ok("POST", "/api/v1/routes",
                 {"id": "orders", "path": "/api/orders/*", "upstream": "backend"}, expect=201)
        c.api_ok("DELETE", "/api/v1/routes/users", expect=204)
        v = c.config_version()
        c.wait_in_sync(["dp-a"], v)
        doc = c.dataplanes()
        b = {d["id"]: d for d in doc["items"]}["dp-b"]
        self.assertEqual(b["status"], "disconnected")
        self.assertLess(b["applied_version"], v)

        dp_b2 = c.start_dp("dp-b")
        c.wait_dp_ready(dp_b2, version=v)
        self.assertTrue(is_origin_json(c.through("dp-b", "GET", "/api/orders/5"), "A"))
        self.assertEqual(c.through("dp-b", "GET", "/api/users/1").status, 404)
        doc = c.wait_in_sync(ids, v)
        b = [d for d in doc["items"] if d["id"] == "dp-b" and d["connected"]]
        self.assertEqual(len(b), 1, "one connected dp-b entry: %r" % doc["items"])
        self.assertEqual(b[0]["pid"], dp_b2.pid)

    def test_sigterm_lets_in_flight_request_finish(self):
        c = self.c
        ids = self.start_standard(n_dps=1)
        c.api_ok("POST", "/api/v1/routes", {"id": "slow", "path": "/slow", "upstream": "backend"},
                 expect=201)
        c.wait_served(ids, "/slow?ms=0", lambda r: is_origin_json(r, "A"), "route served")
        dp = c.dps[ids[0]]
        origin = harness.Client(c.origins["A"].port)
        self.addCleanup(origin.close)
        result = {}

        def call():
            try:
                result["resp"] = harness.one_shot(dp.port, "GET", "/slow?ms=1500", timeout=10)
            except Exception as e:  # reported by the assertion below
                result["error"] = e

        t = threading.Thread(target=call, daemon=True)
        t.start()
        c.poll(lambda: origin.get("/__stats").json()["in_flight"] >= 1,
               "the slow request to reach the origin")
        t0 = time.monotonic()
        dp.signal(15)
        rc = dp.wait(harness.STOP_GRACE + 2)
        t.join(harness.HTTP_TIMEOUT)
        self.assertIn("resp", result, "in-flight request failed: %r" % result.get("error"))
        self.assertTrue(is_origin_json(result["resp"], "A"), result["resp"])
        self.assertEqual(rc, 0, "exit status after SIGTERM\n" + c.context())
        self.assertLess(time.monotonic() - t0, harness.STOP_GRACE + 2)
        with self.assertRaises(OSError, msg="listener closed after exit"):
            harness.one_shot(dp.port, "GET", "/slow?ms=0")


if __name__ == "__main__":
    harness.main()
