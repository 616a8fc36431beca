"""admin_checks.py - assertions shared by the admin API tests (not a test itself).

AdminTest is a ClusterTest with the checks every refusal needs: the JSON error shape
({"error":{"code","message","field"}}), and "nothing changed": the config version is where
it was and the resources read back the same.
"""

import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ClusterTest  # noqa: E402

MAX_BODY = 1024 * 1024

# Strings that would break a query built by pasting text into SQL. Every one must be either
# refused (with a clear error, nothing changed) or stored and read back byte for byte.
SQL_METACHARS = [
    "x'; DROP TABLE upstreams; --",
    "x\"; DELETE FROM routes; --",
    "x' OR '1'='1",
    "x); DELETE FROM snapshots; --",
    "x%_\\",
]


def quote(name):
    """A name as a URL path segment."""
    return urllib.parse.quote(name, safe="")


class AdminTest(ClusterTest):
    label = "admin"

    def start(self):
        self.c.start_origin("A")
        self.c.start_ctl()
        self.url = self.c.origin_url("A")

    def assert_error(self, r, status, code=None, field=None, what=""):
        self.assertEqual(r.status, status, "%s: %r" % (what, r))
        self.assertIn("json", (r.header("Content-Type") or "").lower(), what)
        err = r.json().get("error")
        self.assertIsInstance(err, dict, "%s: error object in %r" % (what, r.body))
        self.assertRegex(err.get("code") or "", r"^[a-z][a-z0-9_]*$", "%s: code" % what)
        self.assertTrue(isinstance(err.get("message"), str) and err["message"], what)
        if code is not None:
            self.assertEqual(err["code"], code, "%s: %r" % (what, r.body))
        if field is not None:
            self.assertEqual(err.get("field"), field, "%s: field in %r" % (what, r.body))
        return err

    def version(self):
        return self.c.config_version()

    def snapshot(self, version):
        return self.c.api_ok("GET", "/api/v1/snapshots/%d" % version, expect=200).json()

    def etag(self, path):
        r = self.c.api_ok("GET", path, expect=200)
        tag = r.header("ETag")
        self.assertRegex(tag or "", r'^"[1-9][0-9]*"$', "ETag of %s" % path)
        return tag

    def oversized(self, method, path):
        """A body just over the 1 MiB limit, sent raw with its Content-Length."""
        body = b'{"name":"big","x":"' + b"a" * (MAX_BODY + 16) + b'"}'
        req = (b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n"
               b"\r\n" % (method.encode(), path.encode(), self.c.token.encode(), len(body))) + body
        return harness.raw_request(self.c.ctl.admin_port, req)

    def refused_unchanged(self, cases, reads):
        """Each case (what, method, path, body, status, code, field) is refused as said, and
        afterwards the version and every path in `reads` answer exactly as before."""
        v = self.version()
        before = {p: self.c.api_ok("GET", p, expect=200).body for p in reads}
        for what, method, path, body, status, code, field in cases:
            with self.subTest(what):
                headers = {"Content-Type": "application/json"} if isinstance(body, bytes) else None
                r = self.c.api(method, path, body, headers=headers)
                self.assert_error(r, status, code, field, what)
                self.assertEqual(self.version(), v, "%s bumped the version" % what)
        for p in reads:
            self.assertEqual(self.c.api_ok("GET", p, expect=200).body, before[p], p)
