#!/usr/bin/env python3
"""test_protocol_dp.py - flexgate-dp's side of the snapshot protocol (proto/PROTOCOL.md).

tests/tools/fake_ctl.py plays the control plane: the data plane PINGs it and answers its
PINGs with PONG carrying the applied version; re-sent and lower versions are applied; an
oversized frame header or an unknown message type makes it drop the connection and
reconnect (with its applied version in HELLO), serving throughout; a control plane silent
for 3 ping intervals (15 s) is dropped.
"""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ClusterTest, is_origin_json  # noqa: E402
import fake_ctl  # noqa: E402

PING_INTERVAL = 5.0
SILENCE = 3 * PING_INTERVAL
SLACK = 3.0
BACKOFF_MAX = 5.0      # s: the reconnect delay bound stops doubling here
REFUSE_WINDOW = 12.0   # s: how long a listener turns every connection away


class DpProtocol(ClusterTest):
    label = "pdp"
    expect_error_logs = True  # broken frames and a silent ctl are worth an error line

    def setUp(self):
        super().setUp()
        c = self.c
        c.start_origin("A")
        ctl = c.start_ctl()
        c.route_all_to("A")
        ctl.stop()
        self.snap = fake_ctl.latest_snapshot(ctl.db)
        self.fake = fake_ctl.FakeCtl(os.path.join(c.tmp, "fake.sock")).start()
        self.addCleanup(self.fake.close)
        self.dp = c.start_dp("dp-a", socket_path=self.fake.socket_path, wait_ready=False)
        self.fake.wait_hello(harness.START_TIMEOUT)
        self.apply(self.snap.version)
        self.applied_mark = self.fake.mark()

    def apply(self, version, snap=None):
        snap = snap or self.snap
        mark = self.fake.mark()
        self.fake.send_snapshot(fake_ctl.renumbered(snap, version))
        kind, body = self.fake.wait_reply(version, since=mark)
        self.assertEqual(kind, "ACK", body)
        self.c.wait_dp_ready(self.dp, version=version)

    def serving(self):
        return is_origin_json(self.c.through("dp-a", "GET", "/x"), "A")

    def test_ping_pong_and_reapply(self):
        v = self.snap.version
        fake = self.fake
        # The data plane PINGs within one interval, with its applied version (a PING right
        # after HELLO, before the snapshot, may say 0: only look at later ones).
        kind, body = fake.wait_for(lambda n, b: n == "PING", PING_INTERVAL + SLACK,
                                   "PING from dp", self.applied_mark)
        # And with its request count (none served yet), for the control plane's rates.
        self.assertEqual(body, {"applied_version": v, "requests": 0})
        # It answers our PING with a PONG at once.
        mark = fake.mark()
        fake.send(fake_ctl.PING, {"applied_version": v})
        kind, body = fake.wait_for(lambda n, b: n == "PONG", 2.0, "PONG from dp", mark)
        self.assertEqual(body.get("applied_version"), v)
        # Same version and checksum again: ACKed (idempotent); a lower version is applied too.
        self.apply(v)
        self.apply(v - 1)
        self.apply(v + 5)
        self.assertTrue(self.serving())

    def test_broken_frames_close_and_reconnect(self):
        v = self.snap.version
        fake = self.fake
        for what, data in (("oversized header", b"\x04\x00\x00\x01\x02"),
                           ("unknown type", fake_ctl.HEADER.pack(2, 9) + b"{}")):
            with self.subTest(what):
                mark, conns = fake.mark(), fake.connections
                fake.send_raw(data)
                fake.wait_for(lambda n, b: n == "CLOSED", 5.0, "dp to close after " + what, mark)
                self.assertTrue(self.serving(), "serving after " + what)
                hello = fake.wait_for(lambda n, b: n == "HELLO", harness.START_TIMEOUT,
                                      "reconnect after " + what, mark)[1]
                self.assertEqual(hello.get("applied_version"), v)
                self.assertGreater(fake.connections, conns)
        self.assertTrue(self.dp.alive())

    def test_silent_control_plane_is_dropped(self):
        v = self.snap.version
        fake = self.fake
        fake.answer_pings = False
        t0 = time.monotonic()  # the last frame the dp got from us was the SNAPSHOT, just before
        mark = fake.mark()
        fake.wait_for(lambda n, b: n == "CLOSED", SILENCE + PING_INTERVAL + SLACK,
                      "dp to drop a silent control plane", mark)
        elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, SILENCE - PING_INTERVAL,
                           "dropped after %.1fs, before 3 ping intervals" % elapsed)
        self.assertTrue(self.serving())
        fake.answer_pings = True
        hello = fake.wait_for(lambda n, b: n == "HELLO", harness.START_TIMEOUT,
                              "reconnect after the silence", mark)[1]
        self.assertEqual(hello.get("applied_version"), v)

    def test_reconnect_backoff(self):
        """Connections accepted and closed at once (no frame: no session) are retried with a
        growing delay capped at 5 s, not in a tight loop; a working control plane that comes
        back is found within one capped delay."""
        v = self.snap.version
        path = self.fake.socket_path
        self.fake.close()
        accepts = []
        stop = threading.Event()
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(path)
        lsock.listen(16)
        lsock.settimeout(0.1)

        def refuse():
            while not stop.is_set():
                try:
                    conn, _ = lsock.accept()
                except socket.timeout:
                    continue
                except OSError:
                    return
                accepts.append(time.monotonic())
                conn.close()

        t = threading.Thread(target=refuse, daemon=True)
        t.start()
        t0 = time.monotonic()
        for _ in range(int(REFUSE_WINDOW / 0.25) + 1):
            if time.monotonic() - t0 >= REFUSE_WINDOW:
                break
            self.assertTrue(self.serving(), "serving while the control plane is away")
            time.sleep(0.25)  # pacing the serving checks, not synchronisation
        stop.set()
        t.join(2)
        lsock.close()
        os.unlink(path)
        sys.stderr.write("reconnect attempts in %.0fs: %d\n" % (REFUSE_WINDOW, len(accepts)))
        # Full jitter over 0.1, 0.2, ... 5 s bounds: a handful to a few dozen attempts.
        self.assertGreaterEqual(len(accepts), 3, "reconnect attempts in %.0fs: %d"
                                % (REFUSE_WINDOW, len(accepts)))
        self.assertLessEqual(len(accepts), 40, "reconnect attempts in %.0fs: %d (no backoff?)"
                             % (REFUSE_WINDOW, len(accepts)))
        gaps = [b - a for a, b in zip(accepts, accepts[1:])]
        self.assertLessEqual(max(gaps), BACKOFF_MAX + 1.0, "gap above the 5 s cap: %r" % gaps)

        fake = fake_ctl.FakeCtl(path).start()
        self.addCleanup(fake.close)
        t1 = time.monotonic()
        hello = fake.wait_hello(BACKOFF_MAX + SLACK)
        self.assertLessEqual(time.monotonic() - t1, BACKOFF_MAX + 1.0)
        self.assertEqual(hello.get("applied_version"), v)
        self.assertTrue(self.serving())


if __name__ == "__main__":
    harness.main()
