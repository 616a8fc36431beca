#!/usr/bin/env python3
"""test_snapshot_nack.py - a data plane refuses bad snapshots and keeps its config (issue 2).

A real flexgate-ctl builds and stores a snapshot; then tests/tools/fake_ctl.py, a second
implementation of the protocol's server side, feeds a data plane that snapshot (ACKed), one
with a wrong checksum (NACKed), one whose config the shared validator refuses -- a route
naming an upstream that does not exist, with the correct sha256 of its text (NACKed) -- and
the data plane keeps serving the old configuration throughout. A later good snapshot is
still applied.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ClusterTest, error_code, is_origin_json  # noqa: E402
import fake_ctl  # noqa: E402  (tests/tools, put on sys.path by harness)


class SnapshotNack(ClusterTest):
    label = "nack"
    # The data plane may well log a refused snapshot at level error; that is expected here.
    expect_error_logs = True

    def make_stored_snapshot(self):
        """Run a real ctl, create an upstream and a route, stop it; return the newest row of
        its snapshots table."""
        c = self.c
        c.start_origin("A")
        ctl = c.start_ctl()
        c.api_ok("POST", "/api/v1/upstreams", {"name": "backend", "url": c.origin_url("A")},
                 expect=201)
        c.api_ok("POST", "/api/v1/routes",
                 {"id": "users", "path": "/api/users/*", "upstream": "backend"}, expect=201)
        version = c.config_version()
        rc, killed = ctl.stop()
        self.assertEqual((rc, killed), (0, False), "flexgate-ctl exits 0 on SIGTERM")
        snap = fake_ctl.latest_snapshot(ctl.db)
        self.assertEqual(snap.version, version, "snapshots table holds the current version")
        self.assertEqual(fake_ctl.sha256_hex(snap.config), snap.checksum.lower(),
                         "stored checksum is the sha256 of the stored config text")
        return snap

    def test_bad_snapshots_are_nacked_and_old_config_keeps_serving(self):
        c = self.c
        snap = self.make_stored_snapshot()
        v = snap.version
        fake = fake_ctl.FakeCtl(os.path.join(c.tmp, "fake.sock")).start()
        self.addCleanup(fake.close)
        dp = c.start_dp("dp-a", socket_path=fake.socket_path, wait_ready=False)

        hello = fake.wait_hello(timeout=harness.START_TIMEOUT)
        self.assertEqual(hello.get("dp_id"), "dp-a")
        self.assertEqual(hello.get("pid"), dp.pid)
        self.assertEqual(hello.get("protocol"), 1)
        self.assertEqual(hello.get("applied_version"), 0)
        self.assertIsInstance(hello.get("hostname"), str)
        self.assertIsInstance(hello.get("software_version"), str)
        r = c.status(dp, "/health/ready")
        self.assertEqual(r.status, 503, "not ready before any snapshot: %r" % r)

        # 1. The stored snapshot, byte for byte: ACK, then served.
        fake.send_snapshot(fake_ctl.snapshot_payload(v, snap.checksum, snap.created_at, snap.config))
        kind, body = fake.wait_reply(v)
        self.assertEqual(kind, "ACK", body)
        c.wait_dp_ready(dp, version=v)
        self.assertTrue(is_origin_json(c.through("dp-a", "GET", "/api/users/1"), "A"))

        # 2. Wrong checksum: NACK, old generation stays.
        fake.send_snapshot(fake_ctl.with_bad_checksum(snap, v + 1))
        kind, body = fake.wait_reply(v + 1)
        self.assertEqual(kind, "NACK", "bad checksum must be refused: %r" % (body,))
        self.assertIsInstance(body.get("error"), str)
        self.assertTrue(body["error"])
        self.assert_still_serving(dp, v)

        # 3. A config the validator refuses (route -> missing upstream), checksum correct.
        fake.send_snapshot(fake_ctl.with_unknown_upstream(snap, v + 2))
        kind, body = fake.wait_reply(v + 2)
        self.assertEqual(kind, "NACK", "invalid config must be refused: %r" % (body,))
        self.assertIn("upstream", body.get("error", "").lower(),
                      "the NACK says what is wrong: %r" % (body,))
        self.assert_still_serving(dp, v)

        # 4. Not JSON at all: nothing applied; the data plane NACKs or drops the connection.
        mark = fake.mark()
        fake.send(fake_ctl.SNAPSHOT, b"{not json")
        kind, body = fake.wait_for(lambda n, b: n in ("ACK", "NACK", "CLOSED"),
                                   harness.START_TIMEOUT, "NACK or close after garbage", mark)
        self.assertNotEqual(kind, "ACK", body)
        self.assert_still_serving(dp, v)
        if kind == "CLOSED":
            fake.wait_for(lambda n, b: n == "HELLO" and b.get("applied_version") == v,
                          harness.START_TIMEOUT, "reconnect HELLO with applied_version %d" % v,
                          mark)

        # 5. A good snapshot afterwards is still applied: the route moves.
        moved = snap.config.replace('"/api/users/*"', '"/api/people/*"')
        self.assertNotEqual(moved, snap.config)
        mark = fake.mark()
        fake.send_snapshot(fake_ctl.snapshot_payload(v + 3, fake_ctl.sha256_hex(moved),
                                                     snap.created_at, moved))
        kind, body = fake.wait_reply(v + 3, since=mark)
        self.assertEqual(kind, "ACK", body)
        c.wait_dp_ready(dp, version=v + 3)
        self.assertTrue(is_origin_json(c.through("dp-a", "GET", "/api/people/1"), "A"))
        r = c.through("dp-a", "GET", "/api/users/1")
        self.assertEqual((r.status, error_code(r)), (404, "no_route"))
        self.assertTrue(dp.alive(), "data plane survived every bad snapshot")

    def assert_still_serving(self, dp, version):
        r = self.c.status(dp, "/health/ready")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json().get("config_version"), version, "still on the old version")
        for _ in range(5):
            self.assertTrue(is_origin_json(self.c.through(dp.dp_id, "GET", "/api/users/1"), "A"),
                            "old route keeps serving\n" + self.c.context())
        self.assertTrue(dp.alive())


if __name__ == "__main__":
    harness.main()
