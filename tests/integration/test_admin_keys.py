#!/usr/bin/env python3
"""test_admin_keys.py - /api/v1/keys (issue 4).

A generated key is shown once, in the 201 body, and never again: reads, the snapshot and the
database hold only its SHA-256. A caller-supplied key (migration) is hashed the same way.
Revisions: ETag on reads, If-Match on PUT/DELETE, 412 on a stale write. Every refusal
(malformed JSON, wrong types, unknown fields, 413, duplicate name or value, SQL
metacharacters) leaves the version and the keys untouched.
"""

import hashlib
import os
import re
import sqlite3
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from admin_checks import AdminTest, SQL_METACHARS, quote  # noqa: E402

KEYS = "/api/v1/keys"


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


class AdminKeys(AdminTest):
    label = "keys"

    def snapshot_keys(self):
        cfg = self.snapshot(self.version())["config"]
        return {k["name"]: k for k in cfg["security"]["auth"]["keys"]}

    def test_generated_key_is_shown_once(self):
        self.start()
        v = self.version()
        r = self.c.api_ok("POST", KEYS, {"name": "Client A", "routes": [], "disabled": False,
                                         "expiresAt": "2099-01-01T00:00:00Z"}, expect=201)
        created = r.json()
        plain = created["key"]
        self.assertRegex(plain, r"^fgk_[A-Za-z0-9_-]{43}$")
        digest = sha256(plain)
        self.assertEqual(created["fingerprint"], digest[:12])
        self.assertEqual(created["expiresAt"], 4070908800000)
        self.assertEqual(int(r.header("X-Config-Version")), v + 1)
        self.assertEqual(r.header("ETag"), '"1"')
        self.assertEqual(r.header("Location"), KEYS + "/Client%20A")

        # Two keys never share a value.
        other = self.c.api_ok("POST", KEYS, {"name": "b"}, expect=201).json()["key"]
        self.assertNotEqual(other, plain)

        for path in (KEYS, KEYS + "/Client%20A"):
            body = self.c.api_ok("GET", path, expect=200).body.decode()
            self.assertNotIn(plain, body, path)
            self.assertNotIn(digest, body, path)
            self.assertNotIn('"key"', body, path)
        item = self.c.api_ok("GET", KEYS + "/Client%20A", expect=200).json()
        self.assertEqual(item, {k: created[k] for k in created if k != "key"})

        # The snapshot carries the digest (data planes compare hashes), never the key.
        snap_text = self.c.api_ok("GET", "/api/v1/snapshots/%d" % self.version()).body.decode()
        self.assertNotIn(plain, snap_text)
        self.assertEqual(self.snapshot_keys()["Client A"]["key"], digest)

        # Nor does the database, in any table.
        self.c.ctl.stop()
        db = sqlite3.connect("file:%s?mode=ro" % self.c.ctl.db, uri=True)
        try:
            dump = "\n".join(db.iterdump())
        finally:
            db.close()
        self.assertNotIn(plain, dump)
        self.assertIn(digest, dump)

    def test_caller_supplied_key_is_hashed(self):
        self.start()
        r = self.c.api_ok("POST", KEYS, {"name": "legacy", "key": "old-secret-123"}, expect=201)
        self.assertNotIn("key", r.json(), "a supplied key is not echoed")
        self.assertNotIn(b"old-secret-123", r.body)
        self.assertEqual(self.snapshot_keys()["legacy"]["key"], sha256("old-secret-123"))
        # A digest (64 lowercase hex) is taken as already hashed, as in the YAML format.
        d = sha256("from-yaml")
        self.c.api_ok("POST", KEYS, {"name": "yaml", "key": d}, expect=201)
        self.assertEqual(self.snapshot_keys()["yaml"]["key"], d)

    def test_revisions_and_if_match(self):
        self.start()
        self.c.api_ok("POST", KEYS, {"name": "k1"}, expect=201)
        path = KEYS + "/k1"
        digest = self.snapshot_keys()["k1"]["key"]
        self.assertEqual(self.etag(path), '"1"')

        # What GET answers can be PUT back (the fingerprint is checked, then ignored).
        got = self.c.api_ok("GET", path, expect=200).json()
        got["disabled"] = True
        r = self.c.api_ok("PUT", path, got, expect=200)
        self.assertEqual(r.header("ETag"), '"2"')
        self.assertEqual(r.json()["disabled"], True)
        self.assertEqual(self.snapshot_keys()["k1"]["key"], digest, "PUT without key keeps it")

        v = self.version()
        for method, body in (("PUT", {"disabled": False}), ("DELETE", None)):
            r = self.c.api(method, path, body, headers={"If-Match": '"1"'})
            self.assert_error(r, 412, "precondition_failed", what="stale %s" % method)
            self.assertEqual(self.version(), v)
        r = self.c.api("PUT", path, {"disabled": False}, headers={"If-Match": "garbage"})
        self.assert_error(r, 400, what="malformed If-Match")
        self.assertEqual(self.version(), v)

        r = self.c.api("PUT", path, {"key": "rotated-value"}, headers={"If-Match": '"2"'})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("ETag"), '"3"')
        self.assertEqual(self.snapshot_keys()["k1"]["key"], sha256("rotated-value"))

        r = self.c.api("DELETE", path, headers={"If-Match": '"3"'})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.version(), v + 2)
        self.assert_error(self.c.api("GET", path), 404, "not_found")

    def test_refusals_change_nothing(self):
        self.start()
        self.c.api_ok("POST", KEYS, {"name": "taken", "key": "value-1"}, expect=201)
        cases = [
            ("malformed JSON", "POST", KEYS, b'{"name": ', 400, "invalid_json", None),
            ("not an object", "POST", KEYS, b'["name"]', 400, "invalid_json", None),
            ("empty body", "POST", KEYS, b"", 400, "invalid_json", None),
            ("name missing", "POST", KEYS, {"routes": []}, 422, "validation_failed", "name"),
            ("name of the wrong type", "POST", KEYS, {"name": 7}, 422, None, "name"),
            ("disabled of the wrong type", "POST", KEYS, {"name": "n", "disabled": "yes"},
             422, None, "disabled"),
            ("routes not a list", "POST", KEYS, {"name": "n", "routes": "all"}, 422, None,
             "routes"),
            ("a bad route id", "POST", KEYS, {"name": "n", "routes": ["ok", "no way"]}, 422,
             None, "routes[1]"),
            ("expiresAt garbage", "POST", KEYS, {"name": "n", "expiresAt": "tomorrow"}, 422,
             None, "expiresAt"),
            ("unknown field", "POST", KEYS, {"name": "n", "owner": "bob"}, 422, None, "owner"),
            ("fingerprint is read-only", "POST", KEYS, {"name": "n", "fingerprint": "ab"}, 422,
             None, "fingerprint"),
            ("key of the wrong type", "POST", KEYS, {"name": "n", "key": 12345}, 422, None,
             "key"),
            ("empty key", "POST", KEYS, {"name": "n", "key": ""}, 422, None, "key"),
            ("name with a slash", "POST", KEYS, {"name": "a/b"}, 422, None, "name"),
            ("name with a control character", "POST", KEYS, {"name": "a\nb"}, 422, None,
             "name"),
            ("duplicate name", "POST", KEYS, {"name": "taken"}, 409, "already_exists", "name"),
            ("duplicate key value", "POST", KEYS, {"name": "n", "key": "value-1"}, 409,
             "already_exists", "key"),
            ("PUT renaming through the body", "PUT", KEYS + "/taken", {"name": "other"}, 422,
             None, "name"),
            ("PUT unknown key", "PUT", KEYS + "/nope", {"disabled": True}, 404, "not_found",
             None),
            ("PUT with another fingerprint", "PUT", KEYS + "/taken",
             {"fingerprint": "000000000000"}, 422, None, "fingerprint"),
            ("DELETE unknown key", "DELETE", KEYS + "/nope", None, 404, "not_found", None),
            ("DELETE on the collection", "DELETE", KEYS, None, 405, None, None),
        ]
        for s in SQL_METACHARS:
            cases.append(("SQL in a route id: %r" % s, "POST", KEYS,
                          {"name": "n", "routes": [s]}, 422, None, "routes[0]"))
            cases.append(("SQL in the If-Match header: %r" % s, "DELETE", KEYS + "/taken", None,
                          400, None, None))
        v = self.version()
        before = self.c.api_ok("GET", KEYS, expect=200).body
        for what, method, path, body, status, code, field in cases:
            with self.subTest(what):
                headers = {"Content-Type": "application/json"} if isinstance(body, bytes) else {}
                if what.startswith("SQL in the If-Match"):
                    headers["If-Match"] = what.split(": ", 1)[1]
                r = self.c.api(method, path, body, headers=headers)
                self.assert_error(r, status, code, field, what)
                self.assertEqual(self.version(), v, "%s bumped the version" % what)
        with self.subTest("oversized body"):
            self.assert_error(self.oversized("POST", KEYS), 413, "payload_too_large")
        self.assertEqual(self.c.api_ok("GET", KEYS, expect=200).body, before)
        self.assertEqual(self.version(), v)

    def test_sql_metacharacters_are_data(self):
        """Key names are labels: these are valid names, stored and read back byte for byte,
        and nothing else in the database moves."""
        self.start()
        self.c.api_ok("POST", "/api/v1/upstreams", {"name": "backend", "url": self.url},
                      expect=201)
        for i, name in enumerate(SQL_METACHARS):
            with self.subTest(name):
                v = self.version()
                r = self.c.api_ok("POST", KEYS, {"name": name, "key": "k-%d" % i}, expect=201)
                self.assertEqual(r.json()["name"], name)
                self.assertEqual(self.version(), v + 1)
                got = self.c.api_ok("GET", KEYS + "/" + quote(name), expect=200).json()
                self.assertEqual(got["name"], name)
        names = [k["name"] for k in self.c.api_ok("GET", KEYS, expect=200).json()["items"]]
        self.assertEqual(names, SQL_METACHARS)
        ups = self.c.api_ok("GET", "/api/v1/upstreams", expect=200).json()["items"]
        self.assertEqual([u["name"] for u in ups], ["backend"])
        history = self.c.api_ok("GET", "/api/v1/snapshots?limit=1000", expect=200).json()
        self.assertEqual(len(history["items"]), self.version())
        for name in SQL_METACHARS:
            self.c.api_ok("DELETE", KEYS + "/" + quote(name), expect=204)
        self.assertEqual(self.c.api_ok("GET", KEYS, expect=200).json()["items"], [])
        self.assertTrue(re.match(r"^\d+$", str(self.version())))


if __name__ == "__main__":
    unittest.main()
