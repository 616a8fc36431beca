#!/usr/bin/env python3
"""test_auth.py - API-key authentication in the data plane (issue 5), end to end.

Real flexgate-ctl, flexgate-dp (at log level debug) and the test origin. The configuration
is imported as YAML with plaintext keys (the importer hashes them; the snapshot carries only
digests). What must hold: `auth: required` answers 401 with WWW-Authenticate for a missing or
wrong key and lets a valid one through; `optional` passes a missing key and refuses a wrong
one; `none` checks nothing; a key scoped to other routes gets 403; disabled and expired keys
get 401; `Authorization: Bearer` works when configured; a key created over REST works once it
propagated and stops when disabled; the origin sees the key's name in X-Consumer-Name and
never the key, nor a client's forged X-Consumer-Name; no key appears in the data plane's log,
even at debug level, nor in an error body; HMAC-SHA256 signed requests (signed here in Python,
independently of the C code) pass, and bad, skewed and replayed signatures and altered bodies
are refused -- an altered body never reaches the origin complete. The seed's auth example
imports and its keys work.
"""

import base64
import email.utils
import hashlib
import hmac
import http.client
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import error_code, is_origin_json  # noqa: E402

YAML = {"Content-Type": "application/yaml"}
CORPUS = os.path.join(harness.SOURCE_DIR, "tests", "fuzz", "corpus", "yaml")

ALPHA = "alpha-key-0123456789"      # every route
BETA = "beta-key-0123456789"        # scoped to route "req" only
GAMMA = "gamma-key-0123456789"      # disabled
DELTA = "delta-key-0123456789"      # expired
SIGNER = "signer-key-0123456789"    # hmac: true
WRONG = "wrong-key-0123456789"
ALL_KEYS = (ALPHA, BETA, GAMMA, DELTA, SIGNER, WRONG)
SKEW_MS = 60000


def sha256_hex(text):
    return hashlib.sha256(text.encode()).hexdigest()


def config_yaml(origin_url):
    return ("""
security:
  auth:
    type: apiKey
    header: X-API-Key
    bearer: true
    hmacClockSkewMs: %d
    keys:
      - {name: alpha, key: "%s"}
      - {name: beta, key: "%s", routes: [req]}
      - {name: gamma, key: "%s", disabled: true}
      - {name: delta, key: "%s", expiresAt: "2001-01-01T00:00:00Z"}
      - {name: "Signer One", key: "%s", hmac: true}
upstreams:
  - {name: backend, url: "%s", timeout: 5000, retries: 0}
routes:
  - {id: req, path: "/req/*", upstream: backend, auth: required}
  - {id: other, path: "/other/*", upstream: backend, auth: required}
  - {id: opt, path: "/opt/*", upstream: backend, auth: optional}
  - {id: open, path: "/open/*", upstream: backend, auth: none}
""" % (SKEW_MS, ALPHA, BETA, GAMMA, DELTA, SIGNER, origin_url)).encode()


def origin_headers(resp):
    """The request headers the origin received: [(lowercased name, value)]."""
    return [(n.lower(), v) for n, v in resp.json()["header_list"]]


def header_values(resp, name):
    return [v for n, v in origin_headers(resp) if n == name.lower()]


def content_digest(body):
    return "sha-256=:%s:" % base64.b64encode(hashlib.sha256(body).digest()).decode()


def sign(key, method, target, date, digest=""):
    """The signature a client computes: HMAC-SHA256 keyed with the hex SHA-256 of its key over
    METHOD\\ntarget\\nDate\\nContent-Digest (docs/configuration.md)."""
    secret = sha256_hex(key).encode()
    msg = "\n".join([method, target, date, digest]).encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def signed_headers(key, name, method, target, body=None, date=None, digest=None,
                   sign_target=None):
    date = date or email.utils.formatdate(usegmt=True)
    if digest is None and body is not None:
        digest = content_digest(body)
    sig = sign(key, method, sign_target or target, date, digest or "")
    h = {"Date": date,
         "Authorization": 'HMAC-SHA256 keyName="%s", signature="%s"' % (name, sig)}
    if digest:
        h["Content-Digest"] = digest
    return h


class Auth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        c = cls.c = harness.Cluster("auth")
        try:
            c.start_origin("A")
            c.start_ctl()
            r = c.api("POST", "/api/v1/import", config_yaml(c.origin_url("A")), headers=YAML)
            if r.status != 200:
                raise AssertionError("import: %d %r" % (r.status, r.body[:500]))
            cls.dp = c.start_dp("dp-a", extra_args=["--log-level", "debug"])
            c.wait_in_sync(["dp-a"])
        except BaseException:
            c.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.c.stop_all_checked()
            cls.c.assert_no_error_logs()
        finally:
            cls.c.close()

    def get(self, path, headers=None, **kw):
        return self.c.through("dp-a", "GET", path, headers=headers, **kw)

    def assert_401(self, r, what):
        self.assertEqual(r.status, 401, "%s: %r" % (what, r))
        self.assertEqual(error_code(r), "unauthorized", what)
        challenge = r.header("WWW-Authenticate") or ""
        self.assertIn('ApiKey realm="flexgate", header="X-API-Key"', challenge, what)
        for k in ALL_KEYS:
            self.assertNotIn(k.encode(), r.body, what)

    def dp_log(self):
        return self.dp.read("stderr")

    # -- modes, keys, scopes ---------------------------------------------------------------
    def test_required_route(self):
        self.assert_401(self.get("/req/x"), "no key")
        self.assert_401(self.get("/req/x", {"X-API-Key": WRONG}), "wrong key")
        self.assert_401(self.get("/req/x", {"X-API-Key": ""}), "empty key")
        r = self.get("/req/x", {"X-API-Key": ALPHA})
        self.assertTrue(is_origin_json(r, "A", "/req/x"), r)
        self.assertEqual(header_values(r, "X-Consumer-Name"), ["alpha"])
        self.assertEqual(header_values(r, "X-API-Key"), [], "the key is not forwarded")
        # Several challenges: the key header, Bearer, and signatures (there is an hmac key).
        r = self.get("/req/x")
        self.assertEqual(len(r.headers.get_all("WWW-Authenticate")), 3, r.headers)

    def test_scoped_disabled_expired(self):
        r = self.get("/req/x", {"X-API-Key": BETA})
        self.assertEqual(header_values(r, "X-Consumer-Name"), ["beta"])
        r = self.get("/other/x", {"X-API-Key": BETA})
        self.assertEqual(r.status, 403, r)
        self.assertEqual(error_code(r), "forbidden")
        self.assertNotIn(BETA.encode(), r.body)
        self.assertTrue(is_origin_json(self.get("/other/x", {"X-API-Key": ALPHA})))
        self.assert_401(self.get("/req/x", {"X-API-Key": GAMMA}), "disabled key")
        self.assert_401(self.get("/req/x", {"X-API-Key": DELTA}), "expired key")

    def test_optional_and_none(self):
        r = self.get("/opt/x")
        self.assertTrue(is_origin_json(r, "A", "/opt/x"), r)
        self.assertEqual(header_values(r, "X-Consumer-Name"), [])
        r = self.get("/opt/x", {"X-API-Key": ALPHA})
        self.assertEqual(header_values(r, "X-Consumer-Name"), ["alpha"])
        self.assert_401(self.get("/opt/x", {"X-API-Key": WRONG}), "optional, wrong key")
        # none: a wrong key passes (nothing is checked) and is left for the upstream.
        r = self.get("/open/x", {"X-API-Key": WRONG})
        self.assertTrue(is_origin_json(r, "A", "/open/x"), r)
        self.assertEqual(header_values(r, "X-API-Key"), [WRONG])

    def test_forged_identity_never_reaches_the_origin(self):
        for path, hdrs, want in (
                ("/req/x", {"X-API-Key": ALPHA, "X-Consumer-Name": "admin"}, ["alpha"]),
                ("/opt/x", {"x-consumer-name": "admin"}, []),
                ("/open/x", {"X-Consumer-Name": "admin"}, [])):
            r = self.get(path, hdrs)
            self.assertTrue(is_origin_json(r), r)
            self.assertEqual(header_values(r, "X-Consumer-Name"), want, path)

    def test_bearer(self):
        r = self.get("/req/x", {"Authorization": "Bearer " + ALPHA})
        self.assertTrue(is_origin_json(r), r)
        self.assertEqual(header_values(r, "X-Consumer-Name"), ["alpha"])
        self.assertEqual(header_values(r, "Authorization"), [], "the bearer key is not forwarded")
        self.assert_401(self.get("/req/x", {"Authorization": "Bearer " + WRONG}), "bearer wrong")
        # Another scheme is not a key (and goes on to the upstream on an open route).
        self.assert_401(self.get("/req/x", {"Authorization": "Basic eDp5"}), "basic")
        # Both at once is ambiguous.
        self.assert_401(self.get("/req/x", {"Authorization": "Bearer " + ALPHA,
                                            "X-API-Key": ALPHA}), "two credentials")

    def test_key_created_over_rest(self):
        created = self.c.api_ok("POST", "/api/v1/keys", {"name": "rest-key", "routes": ["req"]},
                                expect=201).json()
        plain = created["key"]
        self.c.wait_in_sync(["dp-a"])
        r = self.get("/req/x", {"X-API-Key": plain})
        self.assertTrue(is_origin_json(r), r)
        self.assertEqual(header_values(r, "X-Consumer-Name"), ["rest-key"])
        self.assertEqual(self.get("/other/x", {"X-API-Key": plain}).status, 403)
        self.c.api_ok("PUT", "/api/v1/keys/rest-key", {"disabled": True}, expect=200)
        self.c.wait_in_sync(["dp-a"])
        self.assert_401(self.get("/req/x", {"X-API-Key": plain}), "disabled over REST")
        self.c.api_ok("DELETE", "/api/v1/keys/rest-key", expect=204)
        self.c.wait_in_sync(["dp-a"])
        log = self.dp_log()
        self.assertNotIn(plain, log)
        self.assertNotIn(sha256_hex(plain), log)

    def test_keys_never_in_the_log(self):
        for k in ALL_KEYS:
            self.get("/req/x", {"X-API-Key": k})
            self.get("/req/x", {"Authorization": "Bearer " + k})
        log = self.dp_log()
        self.assertIn('"level":"debug"', log, "the data plane logs at debug level")
        self.assertIn("auth refused", log, "refusals are logged (without the key)")
        for k in ALL_KEYS:
            self.assertNotIn(k, log)
            self.assertNotIn(sha256_hex(k), log)

    # -- HMAC ------------------------------------------------------------------------------
    def origin_stats(self):
        o = self.c.origins["A"]
        return harness.one_shot(o.port, "GET", "/__stats").json()

    def test_hmac_signed_requests(self):
        t = "/req/signed?b=2&a=1"
        r = self.get(t, signed_headers(SIGNER, "Signer One", "GET", t))
        self.assertTrue(is_origin_json(r), r)
        self.assertEqual(header_values(r, "X-Consumer-Name"), ["Signer One"])
        self.assertEqual(header_values(r, "Authorization"), [])
        # The same request again is a replay.
        h = signed_headers(SIGNER, "Signer One", "GET", "/req/once")
        self.assertEqual(self.get("/req/once", h).status, 200)
        self.assert_401(self.get("/req/once", h), "replayed")
        # Signed for another target; a wrong key; an unknown key name; a skewed Date.
        self.assert_401(self.get("/req/a", signed_headers(SIGNER, "Signer One", "GET", "/req/a",
                                                          sign_target="/req/b")), "target")
        self.assert_401(self.get("/req/a", signed_headers(ALPHA, "Signer One", "GET", "/req/a")),
                        "wrong secret")
        self.assert_401(self.get("/req/a", signed_headers(ALPHA, "alpha", "GET", "/req/a")),
                        "not a signing key")
        for off in (-2 * SKEW_MS / 1000, 2 * SKEW_MS / 1000):
            date = email.utils.formatdate(time.time() + off, usegmt=True)
            self.assert_401(self.get("/req/a", signed_headers(SIGNER, "Signer One", "GET",
                                                              "/req/a", date=date)), "skew")
        # The signing key itself is never accepted in the clear.
        self.assert_401(self.get("/req/x", {"X-API-Key": SIGNER}), "signing key sent")
        # Scope and identity still apply to signed requests.
        r = self.get("/other/z", signed_headers(SIGNER, "Signer One", "GET", "/other/z"))
        self.assertTrue(is_origin_json(r), r)

    def test_hmac_body_digest(self):
        body = b"amount=100&to=alice" * 50
        h = signed_headers(SIGNER, "Signer One", "POST", "/req/pay", body=body)
        r = self.c.through("dp-a", "POST", "/req/pay", body=body, headers=h)
        self.assertTrue(is_origin_json(r), r)
        self.assertEqual(r.json()["body_sha256"], hashlib.sha256(body).hexdigest())
        self.assertEqual(header_values(r, "Content-Digest"), [content_digest(body)])
        # Chunked, too.
        h = signed_headers(SIGNER, "Signer One", "POST", "/req/pay2", body=body)
        r = self.c.through("dp-a", "POST", "/req/pay2", body=iter([body[:100], body[100:]]),
                           headers=h, chunked=True)
        self.assertTrue(is_origin_json(r), r)
        self.assertEqual(r.json()["body_sha256"], hashlib.sha256(body).hexdigest())
        # A body without its digest is refused before anything is forwarded.
        h = signed_headers(SIGNER, "Signer One", "POST", "/req/pay3")
        r = self.c.through("dp-a", "POST", "/req/pay3", body=body, headers=h)
        self.assert_401(r, "no Content-Digest")
        # An altered body (signature and digest of the original): refused, and the origin
        # never receives a complete request.
        for chunked in (False, True):
            before = self.origin_stats()["complete"]
            tampered = body.replace(b"100", b"999")
            t = "/req/tamper-%d" % chunked
            h = signed_headers(SIGNER, "Signer One", "POST", t, body=body)
            send = iter([tampered]) if chunked else tampered
            r = self.c.through("dp-a", "POST", t, body=send, headers=h, chunked=chunked)
            self.assert_401(r, "altered body, chunked=%s" % chunked)
            # +1: the /__stats request that read `before` (the origin counts it afterwards).
            self.assertEqual(self.origin_stats()["complete"], before + 1,
                             "an altered body reached the origin complete")


class ReplayAcrossWorkers(unittest.TestCase):
    """`--workers 2`: the workers share one replay cache, so a signed request is taken once
    by the data plane, whichever worker each copy reaches."""
    COPIES = 16

    def test_replay_refused_by_every_worker(self):
        c = harness.Cluster("auth-workers")
        try:
            c.start_origin("A")
            c.start_ctl()
            r = c.api("POST", "/api/v1/import", config_yaml(c.origin_url("A")), headers=YAML)
            self.assertEqual(r.status, 200, r.body[:500])
            dp = c.start_dp("dp-w", extra_args=["--workers", "2"], wait_ready=False)
            c.wait_in_sync(["dp-w-w1", "dp-w-w2"])  # both workers, not whichever answers
            h = signed_headers(SIGNER, "Signer One", "GET", "/req/replayed")
            # A fresh connection each: the kernel spreads them over both workers' sockets.
            got = [harness.one_shot(dp.port, "GET", "/req/replayed", headers=h).status
                   for _ in range(self.COPIES)]
            self.assertEqual(got.count(200), 1, got)
            self.assertEqual(got.count(401), self.COPIES - 1, got)

            def workers_seen():
                lines = [json.loads(l) for l in dp.read("stderr").splitlines()
                         if l.startswith("{") and '"msg":"request"' in l]
                return {l["worker"] for l in lines if l["path"] == "/req/replayed"}
            # Both workers answered copies (else this would not test sharing at all).
            c.poll(lambda: len(workers_seen()) == 2, "copies answered by both workers")
            c.stop_all_checked()
        finally:
            c.close()


class SeedAuthExample(harness.ClusterTest):
    label = "auth-seed"

    def test_seed_auth_example_imports_and_works(self):
        ids = self.start_standard(n_dps=1)
        self.c.api_ok("POST", "/api/v1/routes", {"id": "api", "path": "/api/*",
                                                  "upstream": "backend", "auth": "required"},
                      expect=201)
        with open(os.path.join(CORPUS, "seed-auth.yml"), "rb") as f:
            seed = f.read()
        r = self.c.api("POST", "/api/v1/import?mode=merge", seed, headers=YAML)
        self.assertEqual(r.status, 200, r.body[:500])
        self.c.wait_in_sync(ids)
        # The seed's placeholders are not digests: they are taken as the keys themselves.
        r = self.c.through(ids[0], "GET", "/api/users", headers={"X-API-Key":
                                                                 "client-a-key-sha256-hash"})
        self.assertTrue(is_origin_json(r), r)
        self.assertEqual(header_values(r, "X-Consumer-Name"), ["Client A"])
        r = self.c.through(ids[0], "GET", "/api/users")
        self.assertEqual(r.status, 401)
        self.assertIn("ApiKey", r.header("WWW-Authenticate") or "")


if __name__ == "__main__":
    harness.main()
