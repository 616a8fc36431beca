#!/usr/bin/env python3
"""test_cache.py - flexgate-dp --cache FILE (issue 4).

A data plane with --cache writes every applied snapshot to FILE atomically (the file is
always a complete, verifiable SNAPSHOT payload, mode 0600, no temporary file left behind).
Started alone, with its control plane down, it serves the cached config and says so in
/health/ready ("config":"cache"). A corrupt cache file is ignored with a log line and never
served: the data plane stays not ready and does not crash. When the control plane comes back
the data plane syncs and rewrites the cache.
"""

import hashlib
import json
import os
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ClusterTest, is_origin_json  # noqa: E402


def read_cache(path):
    """The cache file as (document, raw text); raises while it is missing or incomplete."""
    with open(path, "rb") as f:
        raw = f.read().decode("utf-8")
    return json.loads(raw), raw


def embedded_config_text(raw):
    """The canonical config text a SNAPSHOT payload embeds byte for byte (its last key)."""
    start = raw.index('"config":') + len('"config":')
    end = raw.rindex("}")
    return raw[start:end]


class Cache(ClusterTest):
    label = "cache"

    def cache_path(self):
        d = os.path.join(self.c.tmp, "dpcache")
        os.makedirs(d, exist_ok=True)
        return os.path.join(d, "snapshot.json")

    def wait_cache_version(self, path, version):
        def check():
            doc, raw = read_cache(path)
            return (doc, raw) if doc.get("version") == version else None
        return self.c.poll(check, "cache file %s at version %d" % (path, version))

    def ready_doc(self, dp):
        r = self.c.status(dp, "/health/ready")
        return r.status, r.json()

    def assert_cache_file_sound(self, path, version):
        doc, raw = self.wait_cache_version(path, version)
        self.assertEqual(set(doc), {"version", "checksum", "created_at", "config"})
        text = embedded_config_text(raw)
        self.assertEqual(hashlib.sha256(text.encode()).hexdigest(), doc["checksum"],
                         "the cached snapshot's checksum covers its config text")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        leftovers = [n for n in os.listdir(os.path.dirname(path)) if n != os.path.basename(path)]
        self.assertEqual(leftovers, [], "no temporary file left beside the cache")
        return doc

    def start_with_cache(self):
        """Origin A, a control plane routing everything to it, and data plane dp-a with
        --cache, in sync. Returns (cache path, dp, version)."""
        c = self.c
        path = self.cache_path()
        c.start_origin("A")
        c.start_ctl()
        c.route_all_to("A")
        dp = c.start_dp("dp-a", extra_args=["--cache", path])
        v = c.config_version()
        c.wait_in_sync(["dp-a"], v)
        return path, dp, v

    def test_cache_serves_while_ctl_is_down_then_resyncs(self):
        c = self.c
        path, dp, v = self.start_with_cache()
        doc = self.assert_cache_file_sound(path, v)
        self.assertEqual([r["id"] for r in doc["config"]["routes"]], ["all"])
        status, ready = self.ready_doc(dp)
        self.assertEqual((status, ready["checks"]["config"]), (200, "UP"))

        # Both planes go away; the data plane without any chance to flush anything.
        dp.kill()
        rc, forced = c.ctl.stop()
        self.assertEqual((rc, forced), (0, False))

        dp2 = c.start_dp("dp-a", extra_args=["--cache", path])  # waits for /health/ready 200
        status, ready = self.ready_doc(dp2)
        self.assertEqual(status, 200)
        self.assertEqual(ready["checks"]["config"], "cache")
        self.assertEqual(ready["checks"]["control_plane"], "DOWN")
        self.assertEqual(ready["config_version"], v)
        self.assertTrue(is_origin_json(c.through(dp2, "GET", "/from/cache"), "A", "/from/cache"))
        self.assertIn("serving the cached snapshot", dp2.read())

        # The control plane comes back at the same version: the data plane's HELLO carries
        # the cached version, the control plane confirms it, and the cache is "UP" again.
        c.start_ctl(db=c.ctl.db, socket_path=c.ctl.socket_path, name="ctl2")
        c.wait_in_sync(["dp-a"], v)
        def confirmed():
            checks = self.ready_doc(dp2)[1]["checks"]
            return checks["config"] == "UP" and checks["control_plane"] == "UP"
        c.poll(confirmed, "dp-a reports its config confirmed by the control plane")
        # A change made now reaches it and is cached in turn.
        c.api_ok("POST", "/api/v1/routes",
                 {"id": "new", "path": "/new/*", "upstream": "backend"}, expect=201)
        v2 = c.config_version()
        self.assertGreater(v2, v)
        c.wait_in_sync(["dp-a"], v2)
        doc = self.assert_cache_file_sound(path, v2)
        self.assertEqual(sorted(r["id"] for r in doc["config"]["routes"]), ["all", "new"])

    def test_ctl_returns_with_newer_version_while_serving_from_cache(self):
        """The data plane serves its cache with no control plane; the control plane moved
        on meanwhile (changed through another socket the data plane does not use) and comes
        back: the data plane syncs to the newer version and rewrites the cache."""
        c = self.c
        c.start_origin("B")
        path, dp, v = self.start_with_cache()
        ctl = c.ctl
        self.wait_cache_version(path, v)
        dp.kill()
        self.assertEqual(ctl.stop(), (0, False))

        dp2 = c.start_dp("dp-a", extra_args=["--cache", path])
        self.assertEqual(self.ready_doc(dp2)[1]["checks"]["config"], "cache")

        # The same database behind another socket: dp-a does not hear of this change.
        side = c.start_ctl(db=ctl.db, socket_path=os.path.join(c.tmp, "side.sock"),
                           name="ctl-side")
        c.api_ok("PUT", "/api/v1/upstreams/backend",
                 {"name": "backend", "url": c.origin_url("B")}, expect=200)
        v2 = c.config_version()
        self.assertEqual(side.stop(), (0, False))
        self.assertEqual(self.ready_doc(dp2)[1]["config_version"], v)
        self.assertTrue(is_origin_json(c.through(dp2, "GET", "/still-a"), "A"))

        c.start_ctl(db=ctl.db, socket_path=ctl.socket_path, name="ctl-back")
        c.wait_dp_ready(dp2, version=v2)
        c.wait_in_sync(["dp-a"], v2)
        c.poll(lambda: self.ready_doc(dp2)[1]["checks"]["config"] == "UP",
               "checks.config UP after the newer snapshot")
        self.assertTrue(is_origin_json(c.through(dp2, "GET", "/now-b"), "B"))
        self.assert_cache_file_sound(path, v2)

    def test_newer_version_replaces_cache_on_reconnect(self):
        """The control plane moved on while the data plane was away: the data plane starts
        from its (older) cache, then gets the newer version and rewrites the cache."""
        c = self.c
        path, dp, v = self.start_with_cache()
        self.wait_cache_version(path, v)
        rc, forced = dp.stop()
        self.assertEqual((rc, forced), (0, False))
        c.api_ok("POST", "/api/v1/routes",
                 {"id": "later", "path": "/later", "upstream": "backend"}, expect=201)
        v2 = c.config_version()

        dp2 = c.start_dp("dp-a", extra_args=["--cache", path], wait_ready=False)
        c.wait_dp_ready(dp2, version=v2)
        c.poll(lambda: self.ready_doc(dp2)[1]["checks"]["config"] == "UP",
               "checks.config UP once the control plane's snapshot is applied")
        doc = self.assert_cache_file_sound(path, v2)
        self.assertIn("later", [r["id"] for r in doc["config"]["routes"]])

    def test_corrupt_cache_is_ignored_never_served(self):
        c = self.c
        path, dp, v = self.start_with_cache()
        _, good = self.wait_cache_version(path, v)
        dp.kill()
        ctl = c.ctl
        rc, forced = ctl.stop()
        self.assertEqual((rc, forced), (0, False))

        doc = json.loads(good)
        tampered = json.loads(good)
        tampered["config"]["routes"][0]["path"] = "/tampered/*"  # checksum no longer matches
        invalid = json.loads(good)
        invalid["config"]["routes"][0]["upstream"] = "nowhere"   # fails the validator
        variants = {
            "truncated": good[: len(good) // 2],
            "empty": "",
            "not json": "this is not a snapshot\n",
            "checksum mismatch": json.dumps(tampered),
            "invalid config": json.dumps(invalid),
            "version missing": json.dumps({k: doc[k] for k in doc if k != "version"}),
        }
        for name, text in variants.items():
            with self.subTest(variant=name):
                with open(path, "w") as f:
                    f.write(text)
                d = c.start_dp("dp-x-" + name.replace(" ", "-"), extra_args=["--cache", path],
                               wait_ready=False)
                c.poll(lambda: "ignoring the snapshot cache" in d.read(),
                       "the data plane to log that it ignores the %s cache" % name)
                status, ready = self.ready_doc(d)
                self.assertEqual(status, 503, "a %s cache is never served: %r" % (name, ready))
                self.assertEqual(ready["checks"]["config"], "DOWN")
                r = c.through(d, "GET", "/x")
                self.assertEqual((r.status, harness.error_code(r)), (503, "not_ready"))
                self.assertTrue(d.alive())
                rc, forced = d.stop()
                self.assertEqual((rc, forced), (0, False), "clean exit after a %s cache" % name)
                with open(path) as f:
                    self.assertEqual(f.read(), text, "the data plane leaves a bad cache alone")

        # With the control plane back, a data plane on the corrupt cache syncs and replaces it.
        d = c.start_dp("dp-y", extra_args=["--cache", path], wait_ready=False)
        c.poll(lambda: "ignoring the snapshot cache" in d.read(), "dp-y ignores the cache")
        c.start_ctl(db=ctl.db, socket_path=ctl.socket_path, name="ctl2")
        c.wait_dp_ready(d, version=v)
        self.assert_cache_file_sound(path, v)
        self.assertTrue(is_origin_json(c.through(d, "GET", "/y"), "A"))

    def test_unusable_cache_directory_fails_start(self):
        missing = os.path.join(self.c.tmp, "no-such-dir", "snapshot.json")
        p = subprocess.run([harness.DP_BIN, "--control", "unix:" + os.path.join(self.c.tmp, "s"),
                            "--listen", "127.0.0.1:%d" % harness.free_port(),
                            "--status-listen", "127.0.0.1:%d" % harness.free_port(),
                            "--cache", missing],
                           capture_output=True, timeout=harness.START_TIMEOUT)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b"cannot use the snapshot cache", p.stderr)
        self.assertIn(b"no-such-dir", p.stderr)


if __name__ == "__main__":
    harness.main()
