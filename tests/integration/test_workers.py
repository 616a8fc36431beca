#!/usr/bin/env python3
"""test_workers.py - flexgate-dp --workers N: the master and its workers.

N workers share the client and status ports (SO_REUSEPORT) and each holds its own control
plane session (<id>-w1..wN); a worker killed with SIGKILL is restarted by the master and
traffic goes on; a slot that keeps dying has its restarts delayed; SIGTERM to the master
drains an in-flight request and exits 0; SIGHUP re-opens --log-file after a logrotate-style
rename; a worker that cannot start fails the whole start.
"""

import json
import os
import signal
import socket
import subprocess
import threading
import time

import harness
from harness import ClusterTest, DP_BIN, children, free_port, is_origin_json, main

WORKERS = 3


def slurp(path):
    with open(path) as f:
        return f.read()


def worker_entries(c, dp_id):
    """The connected `<dp_id>-wK` entries of /api/v1/dataplanes, by id."""
    return {d["id"]: d for d in c.dataplanes()["items"]
            if d["id"].startswith(dp_id + "-w") and d["connected"]}


class WorkersTest(ClusterTest):
    label = "workers"

    def start_workers(self, n=WORKERS, extra=()):
        self.c.start_origin("A")
        self.c.start_ctl()
        self.c.route_all_to("A")
        dp = self.c.start_dp("dp", extra_args=["--workers", str(n)] + list(extra),
                             wait_ready=False)
        ids = ["dp-w%d" % (i + 1) for i in range(n)]
        self.c.wait_in_sync(ids)
        return dp, ids

    def test_workers_share_the_port_and_subscribe_each(self):
        dp, ids = self.start_workers()
        kids = children(dp.pid)
        self.assertEqual(len(kids), WORKERS, kids)
        entries = worker_entries(self.c, "dp")
        self.assertEqual(sorted(entries), ids)
        self.assertEqual(sorted(e["pid"] for e in entries.values()), kids)
        # Many fresh connections to the one port: all served; the kernel spreads them over
        # the workers, seen by the origin as different upstream peers (each worker has its
        # own pool).
        peers = set()
        for i in range(60):
            r = harness.one_shot(dp.port, "GET", "/n/%d" % i)
            self.assertTrue(is_origin_json(r, "A"), r)
            peers.add(r.json()["peer"])
        self.assertGreater(len(peers), 1, "requests all went through one worker")
        # Each worker answers on the shared status port too.
        self.assertEqual(self.c.status(dp, "/health/ready").status, 200)

    def test_killed_worker_is_restarted(self):
        self.expect_error_logs = True  # "worker died" is an error line, checked below
        dp, ids = self.start_workers()
        victim = worker_entries(self.c, "dp")["dp-w2"]["pid"]
        os.kill(victim, signal.SIGKILL)

        def replaced():
            kids = children(dp.pid)
            e = worker_entries(self.c, "dp").get("dp-w2")
            return (len(kids) == WORKERS and victim not in kids and e is not None
                    and e["pid"] in kids and e["status"] == "in_sync")

        self.c.poll(replaced, "the master to restart worker 2 and it to subscribe again")
        for i in range(30):
            r = harness.one_shot(dp.port, "GET", "/after/%d" % i)
            self.assertTrue(is_origin_json(r, "A"), r)
        errors = self.c.error_lines(names=[dp.name])
        self.assertTrue(errors and all("worker died" in e for e in errors), errors)
        self.assertIn('"signal 9', dp.read())

    def test_a_slot_that_keeps_dying_is_restarted_with_a_delay(self):
        self.expect_error_logs = True
        dp, ids = self.start_workers(n=2)
        # MASTER_RESTART_BURST (5) restarts within the window are immediate, the next waits.
        def worker1():
            # The control plane's entry may still show the previous pid for a moment: only a
            # pid that is the master's child now is worker 1's current process.
            pid = worker_entries(self.c, "dp").get("dp-w1", {}).get("pid")
            return pid if pid in children(dp.pid) else None

        for i in range(6):
            pid = self.c.poll(worker1, "worker 1 running (round %d)" % i)
            os.kill(pid, signal.SIGKILL)
            self.c.poll(lambda: pid not in children(dp.pid), "worker 1 reaped")
        self.c.poll(lambda: "restarting too often" in dp.read(), "the restart delay logged")
        self.c.wait_in_sync(ids)  # and it does come back after the delay
        self.assertTrue(is_origin_json(harness.one_shot(dp.port, "GET", "/x"), "A"))

    def test_sigterm_drains_in_flight_request_then_exits_0(self):
        dp, ids = self.start_workers(n=2)
        origin = harness.Client(self.c.origins["A"].port)
        self.addCleanup(origin.close)
        result = {}

        def call():
            try:
                result["resp"] = harness.one_shot(dp.port, "GET", "/slow?ms=1500", timeout=10)
            except Exception as e:  # reported by the assertion below
                result["error"] = e

        t = threading.Thread(target=call, daemon=True)
        t.start()
        self.c.poll(lambda: origin.get("/__stats").json()["in_flight"] >= 1,
                    "the slow request to reach the origin")
        kids = children(dp.pid)
        dp.signal(signal.SIGTERM)
        rc = dp.wait(harness.STOP_GRACE + 2)
        t.join(harness.HTTP_TIMEOUT)
        self.assertIn("resp", result, "in-flight request failed: %r" % result.get("error"))
        self.assertTrue(is_origin_json(result["resp"], "A"), result["resp"])
        self.assertEqual(rc, 0, "master exit status after SIGTERM\n" + self.c.context())
        for k in kids:  # reaped by the master before it exited
            self.assertFalse(os.path.exists("/proc/%d" % k), "worker %d outlived the master" % k)
        with self.assertRaises(OSError, msg="listener closed after exit"):
            harness.one_shot(dp.port, "GET", "/x")

    def test_sighup_reopens_the_log_file(self):
        log = os.path.join(self.c.tmp, "dp.log")
        dp, ids = self.start_workers(n=2, extra=["--log-file", log])
        self.assertIn('"msg":"data plane started"', slurp(log))
        self.assertEqual(dp.read(), "", "with --log-file nothing goes to stderr")
        os.rename(log, log + ".1")
        dp.signal(signal.SIGHUP)

        def reopened():
            if not os.path.exists(log):
                return False
            lines = [json.loads(x) for x in slurp(log).splitlines()]
            return sum(1 for x in lines if x["msg"] == "SIGHUP: log reopened") == 2

        self.c.poll(reopened, "both workers to log into a new %s" % log)
        self.assertIn("log reopened, forwarded to workers", slurp(log))
        self.assertNotIn("reopened", slurp(log + ".1"))
        # The new file keeps receiving what the processes log: stop them, see their exits.
        rc, forced = dp.stop()
        self.assertEqual((rc, forced), (0, False))
        text = slurp(log)
        self.assertEqual(text.count('"msg":"data plane stopped"'), 2, text)
        self.assertIn('"msg":"master stopped"', text)

    def test_a_worker_that_cannot_start_fails_the_start(self):
        self.c.start_ctl()
        with socket.socket() as taken:  # bound without SO_REUSEPORT: nobody can share it
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            t0 = time.monotonic()
            p = subprocess.run([DP_BIN, "--control", "unix:" + self.c.ctl.socket_path,
                                "--workers", "2", "--listen", "127.0.0.1:%d" % port,
                                "--status-listen", "127.0.0.1:%d" % free_port()],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("cannot start the proxy listener", p.stderr)
        self.assertIn("a worker failed to start", p.stderr)
        self.assertLess(time.monotonic() - t0, 10)

    def test_bad_workers_value_is_a_usage_error(self):
        for bad in ("-1", "x", "100000", ""):
            p = subprocess.run([DP_BIN, "--control", "unix:/nonexistent.sock", "--workers", bad],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 2, (bad, p.stderr))
            self.assertIn("--workers", p.stderr)


if __name__ == "__main__":
    main()
