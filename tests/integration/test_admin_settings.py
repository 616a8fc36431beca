#!/usr/bin/env python3
"""test_admin_settings.py - /api/v1/settings (issue 4).

Each section (proxy, security without its keys, rateLimit, logging, metrics) reads back in
canonical form with its own revision (ETag), is replaced whole by PUT (If-Match, 412 when
stale), goes through the shared decoder and validator with errors named relative to the
section, and reaches the snapshot and the data planes. Refusals change nothing.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from admin_checks import AdminTest, SQL_METACHARS  # noqa: E402

SETTINGS = "/api/v1/settings"
SECTIONS = ["proxy", "security", "rateLimit", "logging", "metrics"]


class AdminSettings(AdminTest):
    label = "settings"

    def test_sections_read_write_and_propagate(self):
        self.start()
        self.c.start_dp("dp-a")
        doc = self.c.api_ok("GET", SETTINGS, expect=200).json()
        self.assertEqual(sorted(doc["settings"]), sorted(SECTIONS))
        self.assertEqual(doc["revisions"], {s: 1 for s in SECTIONS})
        self.assertEqual(doc["config_version"], self.version())
        # Canonical: defaults written out, security without keys.
        self.assertEqual(doc["settings"]["logging"],
                         {"level": "info", "format": "json",
                          "sampling": {"successRate": 1, "errorRate": 1}})
        self.assertNotIn("keys", doc["settings"]["security"]["auth"])
        for s in SECTIONS:
            r = self.c.api_ok("GET", SETTINGS + "/" + s, expect=200)
            self.assertEqual(r.json(), doc["settings"][s])
            self.assertEqual(r.header("ETag"), '"1"')

        v = self.version()
        r = self.c.api("PUT", SETTINGS + "/logging", {"level": "warn"},
                       headers={"If-Match": '"1"'})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("ETag"), '"2"')
        self.assertEqual(int(r.header("X-Config-Version")), v + 1)
        self.assertEqual(r.json()["level"], "warn")
        self.assertEqual(r.json()["sampling"], {"successRate": 1, "errorRate": 1})

        # The seed's YAML spellings are accepted (timeout as a number, "10mb").
        r = self.c.api_ok("PUT", SETTINGS + "/proxy", {"timeout": 12000, "maxBodySize": "2mb"})
        self.assertEqual(r.json()["timeout"]["request"], 12000)
        self.assertEqual(r.json()["maxBodySize"], 2 * 1024 * 1024)

        snap = self.snapshot(self.version())
        self.assertEqual(snap["config"]["logging"]["level"], "warn")
        self.assertEqual(snap["config"]["proxy"]["maxBodySize"], 2 * 1024 * 1024)
        self.assertEqual(snap["actor"], "api:admin")
        self.assertEqual(snap["changes"], [{"kind": "settings", "name": "proxy", "op": "updated"}])
        self.c.wait_in_sync(["dp-a"])

        # Stale write: refused, nothing changed.
        v = self.version()
        r = self.c.api("PUT", SETTINGS + "/logging", {"level": "error"},
                       headers={"If-Match": '"1"'})
        self.assert_error(r, 412, "precondition_failed")
        self.assertEqual(self.version(), v)
        self.assertEqual(self.c.api_ok("GET", SETTINGS + "/logging").json()["level"], "warn")

        # Keys set elsewhere survive a security PUT, and are not shown here.
        self.c.api_ok("POST", "/api/v1/keys", {"name": "k", "key": "secret-1"}, expect=201)
        self.c.api_ok("PUT", SETTINGS + "/security",
                      {"blockedIPs": ["10.0.0.0/8"], "auth": {"header": "X-Key"}})
        cfg = self.snapshot(self.version())["config"]
        self.assertEqual(cfg["security"]["blockedIPs"], ["10.0.0.0/8"])
        self.assertEqual(cfg["security"]["auth"]["header"], "X-Key")
        self.assertEqual([k["name"] for k in cfg["security"]["auth"]["keys"]], ["k"])

    def test_refusals_change_nothing(self):
        self.start()
        cases = [
            ("malformed JSON", "PUT", SETTINGS + "/logging", b'{"level": ', 400,
             "invalid_json", None),
            ("not an object", "PUT", SETTINGS + "/logging", b'"debug"', 400, "invalid_json",
             None),
            ("unknown field", "PUT", SETTINGS + "/logging", {"colour": "red"}, 422,
             "validation_failed", "colour"),
            ("unknown nested field", "PUT", SETTINGS + "/logging", {"sampling": {"rate": 1}},
             422, None, "sampling.rate"),
            ("wrong type", "PUT", SETTINGS + "/proxy", {"port": "eighty"}, 422, None, "port"),
            ("out of range", "PUT", SETTINGS + "/proxy", {"port": 70000}, 422, None, "port"),
            ("window of 0", "PUT", SETTINGS + "/rateLimit",
             {"global": {"max": 10, "windowMs": 0}}, 422, None, "global.windowMs"),
            ("a bad per-route entry", "PUT", SETTINGS + "/rateLimit",
             {"perRoute": [{"path": "/a", "max": 1, "windowMs": 1000},
                           {"path": "/b", "max": 1, "windowMs": -5}]}, 422, None,
             "perRoute[1].windowMs"),
            ("a bad CIDR", "PUT", SETTINGS + "/security", {"blockedIPs": ["10.0.0.0/99"]}, 422,
             None, "blockedIPs[0]"),
            ("keys through settings", "PUT", SETTINGS + "/security",
             {"auth": {"keys": []}}, 422, None, "auth.keys"),
            ("metrics path without a slash", "PUT", SETTINGS + "/metrics", {"path": "metrics"},
             422, None, "path"),
            ("unknown section", "PUT", SETTINGS + "/routes", {}, 404, "not_found", None),
            ("unknown section read", "GET", SETTINGS + "/upstreams", None, 404, None, None),
            ("DELETE a section", "DELETE", SETTINGS + "/logging", None, 405, None, None),
            ("PUT the collection", "PUT", SETTINGS, {}, 405, None, None),
            ("bad If-Match", "PUT", SETTINGS + "/logging", None, 400, None, None),
        ]
        for s in SQL_METACHARS:
            cases.append(("SQL in logging.level: %r" % s, "PUT", SETTINGS + "/logging",
                          {"level": s}, 422, None, "level"))
            cases.append(("SQL in allowedHosts: %r" % s, "PUT", SETTINGS + "/security",
                          {"allowedHosts": [s]}, 422, None, "allowedHosts[0]"))
            cases.append(("SQL in a redis url: %r" % s, "PUT", SETTINGS + "/rateLimit",
                          {"backend": "redis", "redis": {"url": s}}, 422, None, "redis.url"))
        reads = [SETTINGS] + [SETTINGS + "/" + s for s in SECTIONS]
        v = self.version()
        before = {p: self.c.api_ok("GET", p, expect=200).body for p in reads}
        for what, method, path, body, status, code, field in cases:
            with self.subTest(what):
                headers = {"Content-Type": "application/json"} if isinstance(body, bytes) else {}
                if what == "bad If-Match":
                    headers["If-Match"] = "1'; DROP TABLE settings; --"
                    body = {"level": "warn"}
                r = self.c.api(method, path, body, headers=headers)
                self.assert_error(r, status, code, field, what)
                self.assertEqual(self.version(), v, "%s bumped the version" % what)
        with self.subTest("oversized body"):
            self.assert_error(self.oversized("PUT", SETTINGS + "/logging"), 413)
        for p in reads:
            self.assertEqual(self.c.api_ok("GET", p, expect=200).body, before[p], p)
        self.assertEqual(self.version(), v)

    def test_sql_metacharacters_are_data(self):
        """A free-text field (the 429 message) takes any text, stored byte for byte."""
        self.start()
        for s in SQL_METACHARS:
            with self.subTest(s):
                body = {"global": {"max": 5, "windowMs": 1000, "message": s}}
                r = self.c.api_ok("PUT", SETTINGS + "/rateLimit", body)
                self.assertEqual(r.json()["global"]["message"], s)
                got = self.c.api_ok("GET", SETTINGS + "/rateLimit").json()
                self.assertEqual(got["global"]["message"], s)
        self.assertEqual(self.c.api_ok("GET", SETTINGS).json()["revisions"]["rateLimit"],
                         1 + len(SQL_METACHARS))


if __name__ == "__main__":
    unittest.main()
