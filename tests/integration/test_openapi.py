#!/usr/bin/env python3
"""test_openapi.py - docs/admin-api.yaml is a valid OpenAPI document that matches the server.

1. Lint: `@redocly/cli lint` with docs/redocly.yaml (the recommended rules). The CLI is
   installed with npm into <build dir>/openapi-tools on first use (the npm registry must be
   reachable then); without npm the test FAILS saying so -- it never passes unchecked.
2. Walk: a real flexgate-ctl (with a data plane and a UI directory) is driven through a
   scenario that calls every operation in the document, successes and refusals. Each
   response must be documented for its operation and status, carry the headers documented
   for it, and its body must validate against the documented schema (python3-jsonschema,
   JSON Schema 2020-12, which OpenAPI 3.1 schemas are). Request bodies the scenario sends
   as valid must validate against the documented request schema too. Finally every
   operation must have been seen succeeding.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ClusterTest  # noqa: E402

try:
    import yaml
except ImportError:  # pragma: no cover - reported by the tests below
    yaml = None
try:
    import jsonschema
except ImportError:  # pragma: no cover
    jsonschema = None

DOC = os.path.join(harness.SOURCE_DIR, "docs", "admin-api.yaml")
LINT_CONFIG = os.path.join(harness.SOURCE_DIR, "docs", "redocly.yaml")
TOOLS_DIR = os.path.join(harness.BUILD_DIR, "openapi-tools")
REDOCLY_PACKAGE = "@redocly/cli@2.77.0"  # pinned: the last release that runs on Node.js 20
LINT_TIMEOUT = 180.0
METHODS = ("get", "put", "post", "delete", "patch")


def load_doc():
    if yaml is None:
        raise AssertionError("PyYAML missing: install python3-yaml (deploy/install-deps.sh)")
    with open(DOC, encoding="utf-8") as f:
        return yaml.safe_load(f)


def redocly_bin():
    """The redocly executable, installed into the build tree if needed."""
    return harness.npm_tool(TOOLS_DIR, [REDOCLY_PACKAGE], os.path.join(".bin", "redocly"))


class Lint(unittest.TestCase):
    def test_redocly_lint(self):
        exe = redocly_bin()
        r = subprocess.run([exe, "lint", "--config", LINT_CONFIG, "--format", "stylish", DOC],
                           capture_output=True, text=True, timeout=LINT_TIMEOUT,
                           cwd=harness.SOURCE_DIR)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, "redocly lint failed:\n" + out[-4000:])
        self.assertNotRegex(out, r"(?i)\b[1-9]\d* warnings?\b", "lint warnings:\n" + out[-4000:])


class Walker:
    """Matches requests to the document's operations and checks responses against it."""

    def __init__(self, test, doc):
        self.t, self.doc = test, doc
        self.root = {"components": doc["components"]}
        self.templates = []
        for path, item in doc["paths"].items():
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$"
            self.templates.append((path, re.compile(rx), "{" not in path))
        # literal paths before templated ones
        self.templates.sort(key=lambda t: (not t[2], t[0]))
        self.succeeded = set()
        self.calls = 0

    def deref(self, obj):
        while isinstance(obj, dict) and "$ref" in obj:
            node = self.doc
            for part in obj["$ref"].lstrip("#/").split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            obj = node
        return obj

    def validate(self, schema, value, what):
        full = dict(schema)
        full["components"] = self.doc["components"]
        v = jsonschema.Draft202012Validator(full)
        errors = sorted(v.iter_errors(value), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            raise AssertionError("%s does not match the document: %s at %s\nvalue: %s"
                                 % (what, e.message, "/".join(map(str, e.absolute_path)),
                                    json.dumps(value)[:1500]))

    def operation(self, method, url):
        path = url.split("?", 1)[0]
        for template, rx, _ in self.templates:
            if rx.match(path):
                op = self.doc["paths"][template].get(method.lower())
                if op is None:
                    raise AssertionError("%s %s: the document has no %s on %s"
                                         % (method, url, method, template))
                return template, op
        raise AssertionError("%s %s: no path in the document matches" % (method, url))

    def check(self, method, url, resp, request_body=None, body_valid=True, headers=None):
        template, op = self.operation(method, url)
        what = "%s %s -> %d" % (method, url, resp.status)
        self.calls += 1
        if body_valid and request_body is not None and "requestBody" in op:
            media = self.deref(op["requestBody"])["content"]
            ctype = ((headers or {}).get("Content-Type") or "application/json")
            ctype = ctype.split(";")[0].strip()
            self.t.assertIn(ctype, media, "%s: request media type not documented" % what)
            value = request_body
            if isinstance(value, (bytes, str)):  # a text body (YAML, or JSON sent raw)
                value = yaml.safe_load(value) if "yaml" in ctype else json.loads(value)
            self.validate(media[ctype]["schema"], value, "request body of %s %s" % (method, url))
        documented = op["responses"].get(str(resp.status))
        self.t.assertIsNotNone(documented, "%s: status not documented for %s %s (%s)"
                               % (what, method.upper(), template, sorted(op["responses"])))
        documented = self.deref(documented)
        for name, h in (documented.get("headers") or {}).items():
            h = self.deref(h)
            value = resp.header(name)
            self.t.assertIsNotNone(value, "%s: documented header %s missing" % (what, name))
            self.validate(h["schema"], value, "%s header %s" % (what, name))
        content = documented.get("content")
        if content:
            ctype = (resp.header("Content-Type") or "").split(";")[0].strip()
            if "application/json" in content:
                self.t.assertEqual(ctype, "application/json", what)
                self.validate(content["application/json"]["schema"], resp.json(), what)
            else:
                self.t.assertTrue(ctype, "%s: no Content-Type" % what)
                self.t.assertTrue(ctype in content or "*/*" in content,
                                  "%s: Content-Type %s not documented" % (what, ctype))
        else:
            self.t.assertEqual(resp.body, b"", "%s: undocumented body" % what)
        if 200 <= resp.status < 400:
            self.succeeded.add((template, method.lower()))
        return resp


class Walk(ClusterTest):
    label = "openapi"

    def call(self, method, url, body=None, headers=None, token=True, body_valid=True):
        r = self.c.api(method, url, body, token=token, headers=headers)
        return self.w.check(method, url, r, body, body_valid, headers)

    def expect(self, status, method, url, body=None, **kw):
        r = self.call(method, url, body, **kw)
        self.assertEqual(r.status, status, "%s %s: %r" % (method, url, r))
        return r

    def oversized(self, method, url):
        """413: sent raw, since the server answers before reading the body."""
        body = b'{"x":"' + b"a" * (1024 * 1024 + 10) + b'"}'
        req = (b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close"
               b"\r\n\r\n" % (method.encode(), url.encode(), self.c.token.encode(), len(body)))
        r = harness.raw_request(self.c.ctl.admin_port, req + body)
        self.assertEqual(r.status, 413, r)
        self.w.check(method, url, r)

    def test_every_operation_matches_the_document(self):
        if jsonschema is None:
            self.fail("jsonschema missing: install python3-jsonschema (deploy/install-deps.sh)")
        doc = load_doc()
        self.w = Walker(self, doc)
        ui = os.path.join(self.c.tmp, "ui")
        os.makedirs(ui)
        with open(os.path.join(ui, "index.html"), "w") as f:
            f.write("<!doctype html><title>FlexGate</title>")
        with open(os.path.join(ui, "app.js"), "w") as f:
            f.write("export {};\n")
        self.c.start_origin("A")
        self.c.start_ctl(extra_args=("--ui-dir", ui))
        self.c.start_dp("dp-a", extra_args=("--label", "zone=test"))
        url = self.c.origin_url("A")
        e = self.expect

        # health and UI (no token)
        e(200, "GET", "/health/live", token=False)
        e(200, "GET", "/health/ready", token=False)
        e(200, "GET", "/health/deep", token=False)
        e(200, "GET", "/metrics", token=False)
        e(302, "GET", "/", token=False)
        e(200, "GET", "/ui/", token=False)
        e(200, "GET", "/ui/app.js", token=False)
        e(404, "GET", "/ui/missing.css", token=False)

        # upstreams
        U = "/api/v1/upstreams"
        e(401, "GET", U, token=False)
        e(200, "GET", U)
        e(201, "POST", U, {"name": "users-svc", "url": url, "timeout": 5000})
        e(201, "POST", U, {"name": "pool", "targets": [{"url": url, "weight": 2}, {"url": url}],
                           "loadBalancing": "least-conn", "fallback": "users-svc",
                           "circuitBreaker": {"enabled": True, "failureThreshold": 20},
                           "healthCheck": {"enabled": True, "path": "/healthz"}})
        e(409, "POST", U, {"name": "users-svc", "url": url})
        # an upstream the SSRF guard will refuse: created, with documented `warnings`
        warned = e(201, "POST", U, {"name": "meta", "url": "http://169.254.169.254"}).json()
        self.assertIn("is blocked", warned["warnings"][0]["message"])
        e(204, "DELETE", U + "/meta")
        e(422, "POST", U, {"name": "x", "url": url, "colour": "red"}, body_valid=False)
        e(400, "POST", U, b'{"name":', headers={"Content-Type": "application/json"},
          body_valid=False)
        self.oversized("POST", U)
        e(200, "GET", U + "/users-svc")
        e(404, "GET", U + "/nope")
        e(200, "PUT", U + "/users-svc", {"url": url, "timeout": 4000}, headers={"If-Match": '"1"'})
        e(412, "PUT", U + "/users-svc", {"url": url}, headers={"If-Match": '"1"'})
        e(404, "PUT", U + "/nope", {"url": url})
        e(400, "DELETE", U + "/users-svc", headers={"If-Match": "bogus"})

        # routes
        R = "/api/v1/routes"
        e(200, "GET", R)
        e(201, "POST", R, {"id": "users", "path": "/users/*", "upstream": "users-svc",
                           "methods": ["GET", "POST"], "hosts": ["api.example.com"],
                           "rateLimit": {"max": 10, "windowMs": 1000, "message": "slow down"},
                           "requestHeaders": {"add": {"X-Gw": "fg"}, "remove": ["X-Debug"]},
                           "stripPrefix": True, "auth": "optional"})
        e(201, "POST", R, {"path": "/pool", "upstream": "pool"})
        e(409, "POST", R, {"id": "users", "path": "/u2", "upstream": "users-svc"})
        e(422, "POST", R, {"id": "r9", "path": "/r9", "upstream": "nope"})
        e(200, "GET", R + "/users")
        e(404, "GET", R + "/nope")
        e(200, "PUT", R + "/users", {"path": "/users/*", "upstream": "users-svc",
                                     "stripPath": True})
        e(412, "PUT", R + "/users", {"path": "/x", "upstream": "users-svc"},
          headers={"If-Match": '"1"'})
        e(409, "DELETE", U + "/users-svc")
        e(412, "DELETE", R + "/users", headers={"If-Match": '"1"'})

        # keys
        K = "/api/v1/keys"
        e(200, "GET", K)
        created = e(201, "POST", K, {"name": "Client A", "routes": ["users"],
                                     "expiresAt": "2099-01-01T00:00:00Z"}).json()
        self.assertIn("key", created)
        e(201, "POST", K, {"name": "legacy", "key": "imported-secret", "disabled": True,
                           "expiresAt": 0})
        e(409, "POST", K, {"name": "other", "key": "imported-secret"})
        e(422, "POST", K, {"name": "n", "owner": "x"}, body_valid=False)
        e(200, "GET", K + "/Client%20A")
        e(404, "GET", K + "/nope")
        legacy = e(200, "GET", K + "/legacy").json()
        legacy["disabled"] = False
        e(200, "PUT", K + "/legacy", legacy, headers={"If-Match": '"1"'})
        e(412, "PUT", K + "/legacy", {"disabled": True}, headers={"If-Match": '"1"'})
        e(404, "DELETE", K + "/nope")
        body = json.dumps(self.c.api_ok("GET", K).json())
        self.assertNotIn(created["key"], body)

        # settings
        S = "/api/v1/settings"
        e(200, "GET", S)
        bodies = {
            "proxy": {"port": 8080, "timeout": 15000, "maxBodySize": "5mb"},
            "security": {"blockedIPs": ["10.0.0.0/8"], "trustedProxies": ["127.0.0.1/32"],
                         "auth": {"header": "X-API-Key"}},
            "rateLimit": {"backend": "local", "global": {"max": 100, "windowMs": 60000},
                          "perRoute": [{"path": "/users/*", "max": 5, "windowMs": 1000}]},
            "logging": {"level": "debug", "sampling": {"successRate": 0.5, "errorRate": 1}},
            "metrics": {"enabled": True, "path": "/metrics"},
        }
        for section, b in bodies.items():
            e(200, "GET", S + "/" + section)
            e(200, "PUT", S + "/" + section, b, headers={"If-Match": '"1"'})
            e(412, "PUT", S + "/" + section, b, headers={"If-Match": '"1"'})
        e(422, "PUT", S + "/logging", {"level": "loud"}, body_valid=False)
        e(422, "PUT", S + "/security", {"auth": {"keys": []}}, body_valid=False)
        self.oversized("PUT", S + "/logging")

        # snapshots
        N = "/api/v1/snapshots"
        e(200, "GET", N)
        page = e(200, "GET", N + "?limit=2").json()
        e(200, "GET", N + "?limit=2&before=%d" % page["next_before"])
        e(400, "GET", N + "?limit=0")
        snap = e(200, "GET", N + "/2").json()
        e(404, "GET", N + "/99999")
        out = e(201, "POST", N + "/2/rollback").json()
        self.assertEqual(out["checksum"], snap["checksum"])
        e(201, "POST", N + "/%d/rollback" % (out["version"] - 1), {})
        e(404, "POST", N + "/99999/rollback")
        e(422, "POST", N + "/2/rollback", {"x": 1}, body_valid=False)
        text = self.c.api_ok("GET", N + "/%d" % self.c.config_version()).body.decode()
        raw = text[text.index(',"config":') + len(',"config":'):-1]
        self.assertEqual(hashlib.sha256(raw.encode()).hexdigest(), json.loads(text)["checksum"])

        # data planes
        self.c.wait_in_sync(["dp-a"])
        dps = e(200, "GET", "/api/v1/dataplanes").json()
        self.assertEqual(dps["items"][0]["labels"], {"zone": "test"})

        self.import_and_export(url)

        # deletes last (the rollbacks above restored upstreams and routes of version 2)
        e(201, "POST", U, {"name": "gone", "url": url})
        e(201, "POST", R, {"id": "gone", "path": "/gone", "upstream": "gone"})
        e(201, "POST", K, {"name": "gone"})
        e(204, "DELETE", R + "/gone")
        e(204, "DELETE", U + "/gone")
        e(204, "DELETE", K + "/gone")

        missing = []
        for path, item in doc["paths"].items():
            for m in METHODS:
                if m in item and (path, m) not in self.w.succeeded:
                    missing.append("%s %s" % (m.upper(), path))
        self.assertEqual(missing, [], "operations never seen succeeding")
        self.assertGreater(self.w.calls, 70)

    def import_error(self, status, code, query, body, ctype="application/yaml", line=None,
                     body_valid=True):
        """A refused import: its status, code and (for YAML) position; nothing changes."""
        before = self.c.config_version()
        err = self.expect(status, "POST", "/api/v1/import" + query, body,
                          headers={"Content-Type": ctype}, body_valid=body_valid).json()
        self.assertEqual(err["error"]["code"], code, err)
        if line is not None:
            self.assertEqual(err["error"].get("line"), line, err)
            self.assertGreaterEqual(err["error"].get("column", 0), 1, err)
        self.assertEqual(self.c.config_version(), before, "a refused import changed the config")
        return err

    def import_and_export(self, url):
        e, I, X = self.expect, "/api/v1/import", "/api/v1/export"
        exported = e(200, "GET", X)
        checksum = exported.header("X-Config-Checksum")
        original = yaml.safe_load(exported.body.decode())
        self.assertIsInstance(original, dict)
        self.assertEqual({u["name"] for u in original["upstreams"]}, {"users-svc", "pool"})
        e(401, "GET", X, token=False)

        # a dry run changes nothing, then the same file replaces everything
        new = ("upstreams:\n  - name: imported\n    url: %s\n"
               "routes:\n  - path: /imp/*\n    upstream: imported\n" % url)
        v0 = self.c.config_version()
        dry = e(200, "POST", I + "?mode=replace&dry_run=true", new,
                headers={"Content-Type": "text/yaml"}).json()
        self.assertTrue(dry["dry_run"])
        self.assertIsNone(dry["version"])
        self.assertEqual(dry["diff"]["upstreams"]["added"], ["imported"])
        self.assertEqual(sorted(dry["diff"]["upstreams"]["removed"]), ["pool", "users-svc"])
        self.assertEqual(self.c.config_version(), v0)
        done = e(200, "POST", I + "?mode=replace", new,
                 headers={"Content-Type": "application/x-yaml"}).json()
        self.assertEqual((done["version"], done["checksum"]), (v0 + 1, dry["checksum"]))
        self.assertEqual(e(200, "GET", X).header("X-Config-Checksum"), done["checksum"])

        # merge (JSON body) adds and keeps
        merged = e(200, "POST", I + "?mode=merge", {"upstreams": [{"name": "extra",
                                                                   "url": url}]}).json()
        self.assertEqual(merged["mode"], "merge")
        self.assertEqual(merged["diff"]["upstreams"],
                         {"added": ["extra"], "changed": [], "removed": []})
        names = [u["name"] for u in self.c.api_ok("GET", "/api/v1/upstreams").json()["items"]]
        self.assertEqual(sorted(names), ["extra", "imported"])

        # every refusal the endpoint documents that a client can provoke
        self.import_error(400, "invalid_yaml", "", "routes:\n  - path: [\n", line=3,
                          body_valid=False)
        self.import_error(400, "invalid_json", "", b'{"routes":', "application/json",
                          body_valid=False)
        self.import_error(400, "bad_request", "", b"", body_valid=False)
        self.import_error(400, "bad_request", "?mode=sideways", new)
        self.import_error(400, "bad_request", "?dry_run=maybe", new)
        dup = ("upstreams:\n  - name: d\n    url: %s\n  - name: d\n    url: %s\n"
               % (url, url))
        self.import_error(409, "already_exists", "", dup, line=4)
        deep = "a: " + "[" * 80 + "]" * 80 + "\n"
        self.import_error(413, "payload_too_large", "", deep, body_valid=False)
        self.import_error(415, "unsupported_media_type", "", new, "text/plain", body_valid=False)
        bad = "upstreams:\n  - name: v\n    url: %s\n    timeout: -5\n" % url
        err = self.import_error(422, "validation_failed", "?mode=merge", bad, line=4)
        self.assertEqual(err["error"]["field"], "upstreams[0].timeout")
        e(401, "POST", I, new, token=False, headers={"Content-Type": "application/yaml"})

        # the first export imports back to the same configuration
        back = e(200, "POST", I, exported.body, headers={"Content-Type": "application/yaml"})
        self.assertEqual(back.json()["checksum"], checksum)
        self.assertGreater(back.json()["changes"], 0)
        self.assertEqual(e(200, "GET", X).header("X-Config-Checksum"), checksum)


if __name__ == "__main__":
    unittest.main()
