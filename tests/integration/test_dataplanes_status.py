#!/usr/bin/env python3
"""test_dataplanes_status.py - GET /api/v1/dataplanes with real data planes (issue 4).

Each data plane is listed with its id, host, pid, software version, `--label`s, when it
connected and was last seen, the version it applied, its lag and its sync status; a stopped
one shows as disconnected with its record kept; one speaking another protocol version is
told so, hung up on, and listed as incompatible with the reason, never fed.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ClusterTest  # noqa: E402
from fake_ctl import HELLO, NACK, SNAPSHOT, HEADER, encode_frame  # noqa: E402

TS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


class DataplanesStatus(ClusterTest):
    label = "dpstatus"

    def item(self, dp_id):
        for it in self.c.dataplanes()["items"]:
            if it["id"] == dp_id:
                return it
        return None

    def test_fields_labels_lag_and_disconnect(self):
        self.c.start_origin("A")
        self.c.start_ctl()
        a = self.c.start_dp("dp-a", extra_args=("--label", "zone=eu-1", "--label",
                                                "tier=edge"))
        self.c.start_dp("dp-b")
        self.c.route_all_to("A")
        doc = self.c.wait_in_sync(["dp-a", "dp-b"])
        v = doc["config_version"]
        it = {d["id"]: d for d in doc["items"]}["dp-a"]
        self.assertEqual(it["pid"], a.pid)
        self.assertEqual(it["hostname"], socket.gethostname())
        self.assertEqual(it["labels"], {"zone": "eu-1", "tier": "edge"})
        self.assertEqual({d["id"]: d["labels"] for d in doc["items"]}["dp-b"], {})
        out = subprocess.run([harness.DP_BIN, "--version"], capture_output=True, text=True)
        self.assertIn(it["software_version"], out.stdout)
        self.assertEqual(it["protocol"], 1)
        self.assertIs(it["connected"], True)
        self.assertRegex(it["connected_since"], TS)
        self.assertRegex(it["last_seen"], TS)
        self.assertGreaterEqual(it["last_seen"], it["connected_since"])
        self.assertEqual((it["applied_version"], it["lag"], it["status"]), (v, 0, "in_sync"))
        self.assertIsNone(it["last_error"])
        self.assertIsNone(it["nacked_version"])

        # Stopped: disconnected, remembered, lag grows with every new version.
        self.c.dps["dp-b"].stop()
        self.c.poll(lambda: (self.item("dp-b") or {}).get("status") == "disconnected",
                    "dp-b listed as disconnected")
        self.c.api_ok("PUT", "/api/v1/settings/logging", {"level": "warn"})
        self.c.api_ok("PUT", "/api/v1/settings/logging", {"level": "info"})
        b = self.item("dp-b")
        self.assertIs(b["connected"], False)
        self.assertIsNone(b["connected_since"])
        self.assertEqual((b["applied_version"], b["lag"]), (v, 2))
        self.c.wait_in_sync(["dp-a"], v + 2)

    def test_bad_label_flags_are_usage_errors(self):
        for args in (["--label", "novalue"], ["--label", "a b=c"],
                     ["--label", "z=1", "--label", "z=2"]):
            with self.subTest(args):
                r = subprocess.run([harness.DP_BIN, "--control", "unix:/nonexistent"] + args,
                                   capture_output=True, text=True, timeout=10)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn("--label", r.stderr)

    def test_incompatible_protocol_is_told_and_listed(self):
        self.c.start_ctl()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(harness.START_TIMEOUT)
        s.connect(self.c.ctl.socket_path)
        s.sendall(encode_frame(HELLO, {"dp_id": "dp-future", "hostname": "h", "pid": 1,
                                       "software_version": "9.0.0", "protocol": 99,
                                       "applied_version": 0,
                                       "labels": {"zone": "mars"},
                                       "secret": self.c.dp_secret}))
        data = b""
        deadline = time.monotonic() + harness.START_TIMEOUT
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        else:
            self.fail("ctl kept the incompatible data plane's connection open")
        s.close()
        frames = []
        while len(data) >= HEADER.size:
            length, t = HEADER.unpack_from(data)
            frames.append((t, data[HEADER.size:HEADER.size + length]))
            data = data[HEADER.size + length:]
        self.assertEqual([t for t, _ in frames], [NACK], "one NACK, no SNAPSHOT")
        self.assertNotIn(SNAPSHOT, [t for t, _ in frames])
        nack = json.loads(frames[0][1])
        self.assertEqual(nack["version"], 0)
        self.assertEqual(nack["protocol"], 1)
        self.assertRegex(nack["error"], r"protocol 99 not supported")

        it = self.c.poll(lambda: self.item("dp-future"), "dp-future listed")
        self.assertEqual(it["status"], "incompatible")
        self.assertIs(it["connected"], False)
        self.assertEqual(it["protocol"], 99)
        self.assertEqual(it["labels"], {"zone": "mars"})
        self.assertRegex(it["last_error"], r"protocol 99 not supported")
        self.assertEqual(it["applied_version"], 0)
        self.assertTrue(re.match(r"\d", str(it["lag"])))


if __name__ == "__main__":
    unittest.main()
