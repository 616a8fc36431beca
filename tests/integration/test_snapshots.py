#!/usr/bin/env python3
"""test_snapshots.py - /api/v1/snapshots: history, one version, rollback (issue 4).

The history lists every version newest first with who changed what, paginated by
`?limit=&before=` without gaps or repeats; one snapshot is its config byte for byte as
checksummed; a rollback is a new version whose configuration (and checksum) equals the old
one's, pushed to the data planes, which then route as they did at that version.
"""

import hashlib
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from admin_checks import AdminTest  # noqa: E402

SNAPS = "/api/v1/snapshots"


class Snapshots(AdminTest):
    label = "snapshots"

    def test_history_pages_and_metadata(self):
        self.start()
        self.c.api_ok("POST", "/api/v1/upstreams", {"name": "backend", "url": self.url},
                      expect=201)
        for i in range(6):
            self.c.api_ok("POST", "/api/v1/routes", {"id": "r%d" % i, "path": "/r%d" % i,
                                                     "upstream": "backend"}, expect=201)
        self.c.api_ok("PUT", "/api/v1/routes/r0", {"path": "/zero", "upstream": "backend"})
        self.c.api_ok("DELETE", "/api/v1/routes/r1", expect=204)
        v = self.version()
        self.assertEqual(v, 10)

        seen, before, pages = [], None, 0
        while True:
            path = SNAPS + "?limit=3" + ("&before=%d" % before if before else "")
            doc = self.c.api_ok("GET", path, expect=200).json()
            pages += 1
            self.assertLessEqual(len(doc["items"]), 3)
            seen += [it["version"] for it in doc["items"]]
            before = doc["next_before"]
            if before is None:
                break
            self.assertEqual(before, doc["items"][-1]["version"])
            self.assertLess(pages, 10, "pagination does not end")
        self.assertEqual(seen, list(range(v, 0, -1)), "every version once, newest first")
        self.assertEqual(pages, 4)

        doc = self.c.api_ok("GET", SNAPS, expect=200).json()
        by_v = {it["version"]: it for it in doc["items"]}
        self.assertEqual(doc["config_version"], v)
        self.assertEqual(by_v[1]["actor"], "migrate")
        self.assertEqual(by_v[2]["actor"], "api:admin")
        self.assertEqual(by_v[2]["summary"], "upstream backend created")
        self.assertEqual(by_v[2]["changes"], [{"kind": "upstream", "name": "backend",
                                               "op": "created"}])
        self.assertEqual(by_v[9]["summary"], "route r0 updated")
        self.assertEqual(by_v[9]["changes"], [{"kind": "route", "name": "r0", "op": "updated"}])
        self.assertEqual(by_v[10]["changes"], [{"kind": "route", "name": "r1", "op": "deleted"}])
        for it in doc["items"]:
            self.assertRegex(it["checksum"], r"^[0-9a-f]{64}$")
            self.assertRegex(it["created_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertEqual(it["changes_total"], len(it["changes"]))
            self.assertNotIn("config", it)

        # One snapshot: the config bytes are the ones the checksum covers.
        r = self.c.api_ok("GET", SNAPS + "/9", expect=200)
        text = r.body.decode()
        start = text.index(',"config":') + len(',"config":')
        raw_config = text[start:-1]
        snap = r.json()
        self.assertEqual(hashlib.sha256(raw_config.encode()).hexdigest(), snap["checksum"])
        self.assertEqual(snap["checksum"], by_v[9]["checksum"])
        self.assertEqual([x["id"] for x in snap["config"]["routes"]],
                         ["r0", "r1", "r2", "r3", "r4", "r5"])
        self.assertEqual(snap["config"]["routes"][0]["path"], "/zero")

        self.refused_unchanged([
            ("limit 0", "GET", SNAPS + "?limit=0", None, 400, None, "limit"),
            ("limit too big", "GET", SNAPS + "?limit=1001", None, 400, None, "limit"),
            ("limit not a number", "GET", SNAPS + "?limit=ten", None, 400, None, "limit"),
            ("before negative", "GET", SNAPS + "?before=-1", None, 400, None, "before"),
            ("before with SQL", "GET", SNAPS + "?before=1%20OR%201=1", None, 400, None,
             "before"),
            ("version 0", "GET", SNAPS + "/0", None, 404, "not_found", None),
            ("version not a number", "GET", SNAPS + "/latest", None, 404, None, None),
            ("unknown version", "GET", SNAPS + "/999", None, 404, None, None),
            ("rollback to an unknown version", "POST", SNAPS + "/999/rollback", None, 404,
             None, None),
            ("rollback with SQL", "POST", SNAPS + "/1%3B%20DELETE/rollback", None, 404, None,
             None),
            ("rollback with a body", "POST", SNAPS + "/2/rollback", {"version": 3}, 422, None,
             None),
            ("rollback with malformed JSON", "POST", SNAPS + "/2/rollback", b"{", 400, None,
             None),
            ("GET a rollback", "GET", SNAPS + "/2/rollback", None, 405, None, None),
            ("POST to the history", "POST", SNAPS, {}, 405, None, None),
            ("DELETE a snapshot", "DELETE", SNAPS + "/2", None, 405, None, None),
            ("another action", "POST", SNAPS + "/2/restore", None, 404, None, None),
        ], [SNAPS, SNAPS + "/2", "/api/v1/routes"])

    def test_rollback_restores_and_propagates(self):
        self.c.start_origin("A")
        self.c.start_origin("B")
        self.c.start_ctl()
        self.url = self.c.origin_url("A")
        self.c.start_dp("dp-a")
        self.c.route_all_to("A")
        self.c.api_ok("POST", "/api/v1/keys", {"name": "k1", "key": "one"}, expect=201)
        good = self.version()
        good_snap = self.snapshot(good)
        routes_then = self.c.api_ok("GET", "/api/v1/routes").json()["items"]
        route_etag = self.etag("/api/v1/routes/all")

        # Move everything on: a new upstream, the route to it, the old upstream gone, a key
        # deleted, a setting changed.
        self.c.api_ok("POST", "/api/v1/upstreams", {"name": "b", "url": self.c.origin_url("B")},
                      expect=201)
        self.c.api_ok("PUT", "/api/v1/routes/all", {"path": "/*", "upstream": "b"})
        self.c.api_ok("DELETE", "/api/v1/upstreams/backend", expect=204)
        self.c.api_ok("DELETE", "/api/v1/keys/k1", expect=204)
        self.c.api_ok("PUT", "/api/v1/settings/logging", {"level": "debug"})
        self.c.wait_in_sync(["dp-a"])
        self.assertEqual(self.c.through("dp-a", "GET", "/x").json()["origin"], "B")

        v = self.version()
        r = self.c.api("POST", SNAPS + "/%d/rollback" % good)
        self.assertEqual(r.status, 201, r)
        out = r.json()
        self.assertEqual(out["version"], v + 1)
        self.assertEqual(int(r.header("X-Config-Version")), v + 1)
        self.assertEqual(r.header("Location"), SNAPS + "/%d" % (v + 1))
        self.assertEqual(out["rolled_back_to"], good)
        self.assertEqual(out["checksum"], good_snap["checksum"])
        self.assertEqual(out["actor"], "rollback:v%d" % good)
        ops = {(c["kind"], c["name"]): c["op"] for c in out["changes"]}
        self.assertEqual(ops, {("upstream", "backend"): "created", ("upstream", "b"): "deleted",
                               ("route", "all"): "updated", ("key", "k1"): "created",
                               ("settings", "logging"): "updated"})
        now = self.snapshot(v + 1)
        self.assertEqual(now["config"], good_snap["config"])

        # Rows read back as they were; revisions moved forward, not back to old values.
        self.assertEqual(self.c.api_ok("GET", "/api/v1/routes").json()["items"], routes_then)
        self.assertGreater(int(self.etag("/api/v1/routes/all").strip('"')),
                           int(route_etag.strip('"')))
        r = self.c.api("PUT", "/api/v1/routes/all", {"path": "/*", "upstream": "backend"},
                       headers={"If-Match": route_etag})
        self.assert_error(r, 412, "precondition_failed", what="ETag from before the rollback")

        # The data plane gets it and routes as at version `good`.
        self.c.wait_in_sync(["dp-a"], v + 1)
        self.assertEqual(self.c.through("dp-a", "GET", "/x").json()["origin"], "A")


if __name__ == "__main__":
    unittest.main()
