#!/usr/bin/env python3
"""test_protocol_ctl.py - flexgate-ctl's side of the snapshot protocol (proto/PROTOCOL.md).

A scripted data plane (FakeDp below, framing from tests/tools/fake_ctl.py) talks to a real
control plane: a HELLO behind gets the stored snapshot, byte for byte as in the database;
a HELLO in sync gets none; a NACKed version shows as "nacked" with its error and is never
sent again to that dp_id, not even after a reconnect; the next version is; PINGs are
answered with the latest version; a first frame that is not HELLO, an oversized header and
an unknown type close the connection; another protocol version gets a NACK from ctl, no
snapshot, and is hung up on; a silent data plane is PINGed, then dropped after 3 intervals.
"""

import json
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ClusterTest  # noqa: E402
import fake_ctl  # noqa: E402
from fake_ctl import HELLO, SNAPSHOT, ACK, NACK, PING, PONG, HEADER, encode_frame  # noqa: E402

PING_INTERVAL = 5.0
SILENCE = 3 * PING_INTERVAL
SLACK = 3.0


class FakeDp:
    """A blocking client of the snapshot socket."""

    def __init__(self, path, timeout=harness.START_TIMEOUT, secret=None):
        self.secret = secret  # the cluster's data plane secret, sent in HELLO
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, msg_type, payload):
        self.sock.sendall(encode_frame(msg_type, payload))

    def hello(self, dp_id, applied_version, protocol=1, secret=None):
        self.send(HELLO, {"dp_id": dp_id, "hostname": "fake-host", "pid": os.getpid(),
                          "software_version": "fake-1", "protocol": protocol,
                          "applied_version": applied_version,
                          "secret": secret or self.secret})

    def recv(self, timeout):
        """Next frame as (type, raw payload bytes); None when the peer closed."""
        deadline = time.monotonic() + timeout
        for _ in range(100_000):
            if len(self.buf) >= HEADER.size:
                length, t = HEADER.unpack_from(self.buf)
                if len(self.buf) >= HEADER.size + length:
                    payload = self.buf[HEADER.size:HEADER.size + length]
                    self.buf = self.buf[HEADER.size + length:]
                    return t, payload
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame from ctl within %.1fs" % timeout)
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not data:
                return None
            self.buf += data
        raise AssertionError("unreachable")

    def recv_until(self, types, timeout):
        """Frames until one of `types` (or close); returns (all frames, the last one)."""
        got = []
        deadline = time.monotonic() + timeout
        for _ in range(1000):
            f = self.recv(max(0.01, deadline - time.monotonic()))
            got.append(f)
            if f is None or f[0] in types:
                return got, f
        raise AssertionError("too many frames: %r" % got[-5:])

    def closed_within(self, timeout):
        """True when ctl closes the connection within `timeout` (frames before it ignored)."""
        try:
            frames, last = self.recv_until(set(), timeout)
        except TimeoutError:
            return False
        return last is None


def raw_config(payload):
    """The `config` value's bytes as embedded in a SNAPSHOT payload (config is last)."""
    i = payload.index(b',"config":')
    assert payload.endswith(b"}")
    return payload[i + len(b',"config":'):-1]


class CtlProtocol(ClusterTest):
    label = "pctl"
    expect_error_logs = True  # broken peers are worth an error line in ctl's log

    def setUp(self):
        super().setUp()
        c = self.c
        c.start_origin("A")
        c.start_ctl()
        c.route_all_to("A")
        self.v = c.config_version()

    def connect(self):
        dp = FakeDp(self.c.ctl.socket_path, secret=self.c.dp_secret)
        self.addCleanup(dp.close)
        return dp

    def entry(self, dp_id):
        return {d["id"]: d for d in self.c.dataplanes()["items"]}.get(dp_id)

    def wait_publisher_caught_up(self):
        """Connect probe data planes until one gets the current version: from then on the
        publisher knows it (it learns of commits a few ms after them, see the next test)."""
        def probe():
            dp = FakeDp(self.c.ctl.socket_path, secret=self.c.dp_secret)
            try:
                dp.hello("probe", 0)
                frames, snap = dp.recv_until({SNAPSHOT}, 2.0)
                return snap is not None and json.loads(snap[1])["version"] == self.v
            finally:
                dp.close()
        self.c.poll(probe, "the publisher to offer version %d" % self.v)

    def test_hello_right_after_a_commit_gets_that_version(self):
        # PROTOCOL.md 4.1: after HELLO ctl sends the latest *stored* snapshot. A HELLO that
        # arrives within the coalescing window of a commit must not get the previous one.
        c = self.c
        for n in range(3):
            r = c.api_ok("POST", "/api/v1/routes",
                         {"id": "r%d" % n, "path": "/r%d" % n, "upstream": "backend"}, expect=201)
            v = int(r.header("X-Config-Version"))
            dp = self.connect()
            dp.hello("fresh-%d" % n, 0)
            frames, snap = dp.recv_until({SNAPSHOT}, 5.0)
            self.assertIsNotNone(snap, frames)
            self.assertEqual(json.loads(snap[1])["version"], v,
                             "first SNAPSHOT after a HELLO sent right after commit %d" % v)
            dp.close()

    def test_snapshot_sequencing_nack_and_ping(self):
        c, v = self.c, self.v
        self.wait_publisher_caught_up()
        dp = self.connect()
        dp.hello("fake-1", 0)
        frames, snap = dp.recv_until({SNAPSHOT}, 5.0)
        self.assertIsNotNone(snap, "ctl closed instead of sending a snapshot: %r" % frames)
        payload = snap[1]
        self.assertRegex(payload, rb'^\{"version":\d+,"checksum":"[0-9a-f]{64}","created_at":"[^"]+","config":\{')
        body = json.loads(payload)
        self.assertEqual(body["version"], v)
        self.assertRegex(body["created_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
        stored = fake_ctl.latest_snapshot(c.ctl.db)
        self.assertEqual(raw_config(payload).decode(), stored.config, "config sent byte for byte")
        self.assertEqual(body["checksum"], fake_ctl.sha256_hex(raw_config(payload)))
        self.assertEqual(body["checksum"], stored.checksum)

        # NACK it: shown as nacked with our error.
        dp.send(NACK, {"version": v, "error": "config.routes[0].upstream: test refusal"})
        d = c.poll(lambda: (lambda e: e if e and e["status"] == "nacked" else None)(self.entry("fake-1")),
                   "fake-1 shown as nacked")
        self.assertIn("test refusal", d["last_error"] or "")
        self.assertTrue(d["connected"])

        # PING gets a PONG with the latest version.
        dp.send(PING, {"applied_version": 0})
        frames, pong = dp.recv_until({PONG}, 5.0)
        self.assertEqual(json.loads(pong[1]).get("applied_version"), v)
        self.assertNotIn(SNAPSHOT, [f[0] for f in frames if f], "NACKed version re-sent")

        # Reconnect with the same dp_id: the NACKed version is not sent again. ctl would send
        # a snapshot right after HELLO, so a PONG to our PING with none before it proves it.
        dp.close()
        dp2 = self.connect()
        dp2.hello("fake-1", 0)
        dp2.send(PING, {"applied_version": 0})
        frames, pong = dp2.recv_until({PONG}, 5.0)
        self.assertIsNotNone(pong, "ctl closed the reconnect: %r" % frames)
        self.assertNotIn(SNAPSHOT, [f[0] for f in frames], "NACKed version re-sent after reconnect")

        # The next version is sent; ACK makes it in_sync.
        r = c.api_ok("POST", "/api/v1/routes", {"id": "two", "path": "/two", "upstream": "backend"},
                     expect=201)
        v2 = int(r.header("X-Config-Version"))
        frames, snap = dp2.recv_until({SNAPSHOT}, 5.0)
        self.assertEqual(json.loads(snap[1])["version"], v2)
        dp2.send(ACK, {"version": v2})
        c.poll(lambda: (self.entry("fake-1") or {}).get("status") == "in_sync", "fake-1 in_sync")
        self.assertEqual(self.entry("fake-1")["applied_version"], v2)
        self.assertEqual(self.entry("fake-1")["software_version"], "fake-1")

        # A HELLO already at the latest version gets no snapshot, but the session is up.
        dp3 = self.connect()
        dp3.hello("fake-3", v2)
        dp3.send(PING, {"applied_version": v2})
        frames, pong = dp3.recv_until({PONG}, 5.0)
        self.assertIsNotNone(pong)
        self.assertNotIn(SNAPSHOT, [f[0] for f in frames])
        c.poll(lambda: (self.entry("fake-3") or {}).get("status") == "in_sync", "fake-3 in_sync")

    def test_broken_peers_are_closed(self):
        cases = (
            ("first frame not HELLO", encode_frame(PING, {"applied_version": 0})),
            ("oversized header", b"\x04\x00\x00\x01\x01"),
            ("unknown type", HEADER.pack(2, 9) + b"{}"),
            ("malformed HELLO", encode_frame(HELLO, b"{nope")),
            ("HELLO missing fields", encode_frame(HELLO, {"dp_id": "x"})),
        )
        for what, data in cases:
            with self.subTest(what):
                dp = self.connect()
                dp.sock.sendall(data)
                self.assertTrue(dp.closed_within(5.0), "ctl kept the connection after " + what)
        self.assertTrue(self.c.ctl.alive())
        self.assertEqual(self.c.config_version(), self.v)

    def test_other_protocol_version_gets_nack_not_snapshot(self):
        dp = self.connect()
        dp.hello("fake-p2", 0, protocol=2)
        # Every frame until ctl hangs up (PROTOCOL.md 4.6): the NACK, and no SNAPSHOT.
        frames, last = dp.recv_until(set(), 5.0)
        self.assertIsNone(last, "ctl hangs up after telling it: %r" % frames)
        types = [f[0] for f in frames if f]
        self.assertNotIn(SNAPSHOT, types)
        self.assertIn(NACK, types, "ctl tells the data plane it is incompatible: %r" % frames)
        nack = json.loads([f for f in frames if f and f[0] == NACK][0][1])
        self.assertEqual(nack["version"], 0)
        self.assertTrue(re.search(r"protocol", nack["error"]))

    def test_silent_data_plane_is_pinged_then_dropped(self):
        c, v = self.c, self.v
        self.wait_publisher_caught_up()
        dp = self.connect()
        t0 = time.monotonic()
        dp.hello("fake-quiet", v)
        frames, ping = dp.recv_until({PING}, PING_INTERVAL + SLACK)
        self.assertIsNotNone(ping, "ctl closed instead of PINGing: %r" % frames)
        self.assertEqual(json.loads(ping[1]).get("applied_version"), v)
        self.assertTrue(dp.closed_within(SILENCE + SLACK - (time.monotonic() - t0)),
                        "ctl keeps a data plane silent for %.0fs" % SILENCE)
        self.assertGreater(time.monotonic() - t0, SILENCE - PING_INTERVAL)
        c.poll(lambda: (self.entry("fake-quiet") or {}).get("status") == "disconnected",
               "fake-quiet shown disconnected")


if __name__ == "__main__":
    harness.main()
