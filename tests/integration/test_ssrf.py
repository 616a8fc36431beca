#!/usr/bin/env python3
"""test_ssrf.py - the SSRF guard and the upstream allow-list (issue 5), end to end.

Runs in a network namespace of its own (unshare --net --mount, re-executing itself): only a
loopback interface, carrying the addresses an attacker would aim at -- 169.254.169.254,
fd00:ec2::254 (cloud metadata) and 10.1.2.3 -- each with a real test origin listening on it,
and private copies of /etc/hosts and /etc/resolv.conf (bind mounts) pointing names at them
and at a small DNS server run by this test. So:
  * every "blocked" destination is a live origin: if the guard let a request through, that
    origin would count it and the test fails (no test here passes because a connect simply
    failed);
  * no packet can leave the machine whatever the data plane does (no route out).

What is proved:
  * the default blocked ranges (no security section): metadata addresses as IPv4, IPv4-mapped
    IPv6 and IPv6 literals -> 403 and a log line naming the rule; a private address is served;
  * security.blockedIPs: 127.0.0.0/8 also stops localhost (::1), [::ffff:127.0.0.1] and
    0.0.0.0; 10.0.0.0/8 stops 10.1.2.3;
  * a name from the hosts file, and a name whose DNS answer changes (rebinding), are blocked
    once they resolve into a blocked range; pooled connections are dropped when the policy
    changes;
  * client input (Host, absolute-form targets, X-Forwarded-Host, CONNECT) never chooses the
    destination;
  * allowedHosts: the seed's full example imports (API and CLI) with warnings naming the
    field, and its routes answer 403; security.strict turns the warnings into 422.
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

NETNS_ENV = "FG_SSRF_NETNS"
META4 = "169.254.169.254"
META6 = "fd00:ec2::254"
PRIVATE4 = "10.1.2.3"
DNS_TTL_WAIT = 45.0  # s: the data plane re-resolves a name within its DNS TTL (30 s)


def _enter_netns():
    """Re-execute this file inside new network and mount namespaces (once)."""
    if os.environ.get(NETNS_ENV) == "1":
        return
    unshare = shutil.which("unshare")
    if not unshare:
        sys.exit("test_ssrf: unshare(1) (util-linux) is required to isolate the network")
    argv = [unshare, "--net", "--mount"]
    if os.geteuid() != 0:
        argv.append("--map-root-user")
    argv += ["--", sys.executable, "-B", os.path.abspath(__file__)] + sys.argv[1:]
    env = dict(os.environ, **{NETNS_ENV: "1"})
    os.execve(unshare, argv, env)


def _setup_netns(tmp):
    """Loopback up with the target addresses, private hosts and resolv.conf."""
    def run(*cmd):
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    run("ip", "link", "set", "lo", "up")
    run("ip", "addr", "add", META4 + "/32", "dev", "lo")
    run("ip", "addr", "add", PRIVATE4 + "/32", "dev", "lo")
    run("ip", "-6", "addr", "add", META6 + "/128", "dev", "lo", "nodad")
    hosts = os.path.join(tmp, "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 localhost\n::1 localhost\n"
                "%s metadata.ssrf.test\n127.0.0.1 ok.internal.test\n" % META4)
    resolv = os.path.join(tmp, "resolv.conf")
    with open(resolv, "w") as f:
        f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:2\n")
    run("mount", "--bind", hosts, "/etc/hosts")
    run("mount", "--bind", resolv, "/etc/resolv.conf")


if __name__ == "__main__":
    _enter_netns()

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class DnsServer:
    """A UDP DNS server on 127.0.0.1:53 answering A queries from `self.answers` (name ->
    IPv4 text, TTL 1 s); other names NXDOMAIN, other types no data."""

    def __init__(self):
        self.answers = {}
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 53))
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()

    def _serve(self):
        while not self.stop.is_set():
            try:
                data, peer = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            reply = self._answer(data)
            if reply:
                self.sock.sendto(reply, peer)

    def _answer(self, q):
        if len(q) < 12:
            return None
        qid, _, qd = struct.unpack("!HHH", q[:6])
        if qd != 1:
            return None
        i, labels = 12, []
        while i < len(q) and q[i] != 0:
            n = q[i]
            labels.append(q[i + 1:i + 1 + n].decode("ascii", "replace"))
            i += 1 + n
        qend = i + 5
        if qend > len(q):
            return None
        qtype = struct.unpack("!H", q[i + 1:i + 3])[0]
        name = ".".join(labels).lower()  # evdns may randomise the case (0x20)
        self.queries += 1
        addr = self.answers.get(name)
        question = q[12:qend]
        if addr is None:
            return struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question
        if qtype != 1:
            return struct.pack("!HHHHHH", qid, 0x8180, 1, 0, 0, 0) + question
        rr = struct.pack("!HHHIH", 0xC00C, 1, 1, 1, 4) + socket.inet_aton(addr)
        return struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + rr


def origin_total(origin):
    """Requests the origin has received, not counting these /__stats calls (asked directly,
    not through the gateway)."""
    conn = harness.Client(origin.port, host=origin.host)
    try:
        total = conn.get("/__stats").json()["total"]
    finally:
        conn.close()
    origin.stats_calls = getattr(origin, "stats_calls", 0) + 1
    return total - origin.stats_calls


class Ssrf(harness.ClusterTest):
    label = "ssrf"

    def setUp(self):
        super().setUp()
        self.ctl = self.c.start_ctl()

    # -- helpers ---------------------------------------------------------------------------
    def upstream(self, name, url, **extra):
        body = dict({"name": name, "url": url, "timeout": 3000, "retries": 0}, **extra)
        return self.c.api_ok("POST", "/api/v1/upstreams", body, expect=201).json()

    def route(self, rid, path, upstream):
        self.c.api_ok("POST", "/api/v1/routes", {"id": rid, "path": path, "upstream": upstream},
                      expect=201)

    def security(self, **section):
        self.c.api_ok("PUT", "/api/v1/settings/security", section, expect=200)

    def dp_synced(self):
        """A data plane at the current config version (started once, then waited on)."""
        if not self.c.dps:
            self.dp = self.c.start_dp("dp-s")
        self.c.wait_dp_ready(self.dp, version=self.c.config_version())
        return self.dp

    def get(self, path, **kw):
        return harness.one_shot(self.dp.port, "GET", path, timeout=5.0, **kw)

    def blocked_lines(self, since=0):
        out = []
        for line in self.dp.read("stderr")[since:].splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("msg") == "upstream address blocked (SSRF guard)":
                out.append(rec)
        return out

    def assert_forbidden(self, path, what):
        r = self.get(path)
        self.assertEqual(r.status, 403, "%s: %r" % (what, r))
        self.assertEqual(harness.error_code(r), "forbidden", what)

    # -- tests -----------------------------------------------------------------------------
    def test_metadata_blocked_by_default(self):
        meta = self.c.start_origin("meta", host=META4)
        meta6 = self.c.start_origin("meta6", host=META6)
        private = self.c.start_origin("private", host=PRIVATE4)
        made = [self.upstream("m4", "http://%s:%d" % (META4, meta.port)),
                self.upstream("mapped", "http://[::ffff:%s]:%d" % (META4, meta.port)),
                self.upstream("m6", "http://[%s]:%d" % (META6, meta6.port)),
                self.upstream("priv", "http://%s:%d" % (PRIVATE4, private.port))]
        # Config time: the literal metadata addresses are warned about, naming the rule.
        for u in made[:3]:
            self.assertEqual(len(u.get("warnings", [])), 1, u)
            self.assertEqual(u["warnings"][0]["field"], "url")
            self.assertIn("is blocked (default:", u["warnings"][0]["message"])
        self.assertNotIn("warnings", made[3])
        for rid in ("m4", "mapped", "m6", "priv"):
            self.route(rid, "/%s/*" % rid, rid)
        self.dp_synced()
        mark = self.dp.log_mark()
        self.assert_forbidden("/m4/latest/meta-data/", "169.254.169.254")
        self.assert_forbidden("/mapped/latest/meta-data/", "[::ffff:169.254.169.254]")
        self.assert_forbidden("/m6/latest/meta-data/", "[fd00:ec2::254]")
        self.assertEqual(origin_total(meta), 0, "the metadata origin was reached")
        self.assertEqual(origin_total(meta6), 0, "the IPv6 metadata origin was reached")
        lines = self.blocked_lines(mark)
        self.assertTrue(lines, "no log line for the blocked connects")
        self.assertIn("169.254.0.0/16", lines[0]["rule"])
        self.assertEqual(lines[0]["address"], META4)
        # Private ranges are an internal gateway's upstreams: served.
        self.assertTrue(harness.is_origin_json(self.get("/priv/x"), "private", "/priv/x"))

    def test_blocked_ips_cover_every_spelling(self):
        lo = self.c.start_origin("lo")
        private = self.c.start_origin("private", host=PRIVATE4)
        self.security(blockedIPs=["127.0.0.0/8", "10.0.0.0/8"])
        for name, url in (("localhost", "http://localhost:%d" % lo.port),
                          ("mapped", "http://[::ffff:127.0.0.1]:%d" % lo.port),
                          ("zero", "http://0.0.0.0:%d" % lo.port),
                          ("ten", "http://%s:%d" % (PRIVATE4, private.port))):
            self.upstream(name, url)
            self.route(name, "/%s/*" % name, name)
        self.dp_synced()
        for name in ("localhost", "mapped", "zero", "ten"):
            self.assert_forbidden("/%s/x" % name, name)
        self.assertEqual(origin_total(lo), 0, "a loopback spelling reached the origin")
        self.assertEqual(origin_total(private), 0, "10.1.2.3 was reached")
        rules = {rec["rule"] for rec in self.blocked_lines()}
        self.assertTrue(rules & {"127.0.0.0/8", "10.0.0.0/8"}, rules)

    def test_policy_change_drops_pooled_connections(self):
        lo = self.c.start_origin("lo")
        self.upstream("lo", self.c.origin_url("lo"))
        self.route("lo", "/lo/*", "lo")
        self.dp_synced()
        client = harness.Client(self.dp.port)
        self.addCleanup(client.close)
        self.assertTrue(harness.is_origin_json(client.get("/lo/1"), "lo"))
        before = origin_total(lo)
        self.security(blockedIPs=["127.0.0.1"])
        self.dp_synced()
        r = client.get("/lo/2")
        self.assertEqual(r.status, 403, "a pooled connection to a now-blocked address was "
                         "reused: %r" % r)
        self.assertEqual(origin_total(lo), before)
        self.security(blockedIPs=[])
        self.dp_synced()
        self.assertTrue(harness.is_origin_json(client.get("/lo/3"), "lo"))

    def test_names_resolving_into_blocked_ranges(self):
        meta = self.c.start_origin("meta", host=META4)
        self.upstream("hosts", "http://metadata.ssrf.test:%d" % meta.port)
        self.route("hosts", "/hosts/*", "hosts")
        self.dp_synced()
        self.assert_forbidden("/hosts/x", "metadata.ssrf.test (hosts file)")
        self.assertEqual(origin_total(meta), 0)
        lines = self.blocked_lines()
        self.assertTrue(any(rec["host"] == "metadata.ssrf.test" for rec in lines), lines)

    def test_dns_rebinding(self):
        """A name first answers an allowed address, then a metadata address: once the data
        plane re-resolves it, it is never connected to."""
        dns = DnsServer()
        self.addCleanup(dns.close)
        legit = self.c.start_origin("legit")
        meta = self.c.start_origin("meta", host=META4, port=legit.port)
        dns.answers["rebind.ssrf.test"] = "127.0.0.1"
        # No pooling: every request connects, so every request resolves (or uses the cache).
        self.upstream("rb", "http://rebind.ssrf.test:%d" % legit.port,
                      keepalive={"maxIdle": 0})
        self.route("rb", "/rb/*", "rb")
        self.dp_synced()
        self.assertTrue(harness.is_origin_json(self.get("/rb/1"), "legit"))
        dns.answers["rebind.ssrf.test"] = META4

        def refused():
            r = self.get("/rb/2")
            if r.status == 200:
                self.assertTrue(harness.is_origin_json(r, "legit"), r)
                return False
            self.assertEqual(r.status, 403, r)
            return True

        self.c.poll(refused, "the re-resolved name to be refused", timeout=DNS_TTL_WAIT,
                    interval=0.5)
        self.assertEqual(origin_total(meta), 0, "the rebound name reached the metadata origin")
        self.assertGreaterEqual(dns.queries, 2)

    def test_client_input_never_chooses_destination(self):
        legit = self.c.start_origin("legit")
        meta = self.c.start_origin("meta", host=META4)
        self.upstream("legit", self.c.origin_url("legit"))
        self.route("all", "/*", "legit")
        self.dp_synced()
        target = "%s:%d" % (META4, meta.port)
        port = self.dp.port
        cases = [
            ("Host", b"GET /a HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"),
            ("absolute-form", b"GET http://%s/latest/meta-data HTTP/1.1\r\nHost: x\r\n"
                              b"Connection: close\r\n\r\n"),
            ("X-Forwarded-Host", b"GET /b HTTP/1.1\r\nHost: x\r\nX-Forwarded-Host: %s\r\n"
                                 b"Connection: close\r\n\r\n"),
            ("authority in path", b"GET //%s/c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        ]
        for what, tmpl in cases:
            r = harness.raw_request(port, tmpl.replace(b"%s", target.encode()))
            self.assertTrue(harness.is_origin_json(r, "legit"), "%s: %r" % (what, r))
        # The absolute-form target's path is what goes upstream; its authority is ignored.
        r = harness.raw_request(port, b"GET http://%s/latest/meta-data HTTP/1.1\r\nHost: x\r\n"
                                b"Connection: close\r\n\r\n" % target.encode())
        self.assertEqual(r.json()["path"], "/latest/meta-data")
        r = harness.raw_request(port, b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n"
                                % (target.encode(), target.encode()))
        self.assertEqual(r.status, 405)
        self.assertEqual(origin_total(meta), 0, "client input reached the metadata origin")
        self.assertGreaterEqual(origin_total(legit), len(cases) + 1)

    def test_allowed_hosts(self):
        lo = self.c.start_origin("lo")
        self.security(allowedHosts=["*.internal.test"])
        out = self.upstream("out", self.c.origin_url("lo"))
        self.assertEqual(out["warnings"][0]["field"], "url")
        self.assertIn("outside security.allowedHosts", out["warnings"][0]["message"])
        ok = self.upstream("ok", "http://ok.internal.test:%d" % lo.port)
        self.assertNotIn("warnings", ok)
        self.route("out", "/out/*", "out")
        self.route("ok", "/ok/*", "ok")
        self.dp_synced()
        self.assert_forbidden("/out/x", "127.0.0.1 outside allowedHosts")
        self.assertEqual(origin_total(lo), 0)
        self.assertTrue(harness.is_origin_json(self.get("/ok/x"), "lo"))
        self.assertIn('"rule":"security.allowedHosts"', self.dp.read("stderr"))

    def test_seed_full_example(self):
        seed = os.path.join(harness.SOURCE_DIR, "tests", "fuzz", "corpus", "yaml",
                            "seed-full.yml")
        with open(seed, "rb") as f:
            text = f.read()
        r = self.c.api("POST", "/api/v1/import", body=text,
                       headers={"Content-Type": "application/yaml"})
        self.assertEqual(r.status, 200, r)
        warnings = r.json()["warnings"]
        fields = sorted(w["field"] for w in warnings)
        self.assertEqual(fields, ["upstreams[0].url", "upstreams[1].url"], warnings)
        self.assertTrue(all("security.allowedHosts" in w["message"] for w in warnings))
        self.dp_synced()
        for path in ("/api/users/1", "/api/batch/x"):
            self.assert_forbidden(path, "seed route " + path)
        # The CLI importer says the same on stderr and still imports.
        db = os.path.join(self.c.tmp, "cli.db")
        p = subprocess.run([harness.CTL_BIN, "import", seed, "--db", db], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("warning: upstreams[0].url: upstream \"primary-api\": host "
                      "\"api.primary.com\" is outside security.allowedHosts", p.stderr)
        # security.strict makes the finding an error: nothing is imported.
        strict = text.replace(b"security:\n", b"security:\n  strict: true\n", 1)
        v = self.c.config_version()
        r = self.c.api("POST", "/api/v1/import", body=strict,
                       headers={"Content-Type": "application/yaml"})
        self.assertEqual(r.status, 422, r)
        self.assertEqual(r.json()["error"]["field"], "upstreams[0].url")
        self.assertEqual(self.c.config_version(), v)

    def test_strict_refuses_upstream_writes(self):
        self.security(strict=True, allowedHosts=["*.internal.test"])
        r = self.c.api("POST", "/api/v1/upstreams", {"name": "x", "url": "http://127.0.0.1:9"})
        self.assertEqual(r.status, 422, r)
        self.assertTrue(r.json()["error"]["field"].endswith("url"), r.json())
        self.assertIn("security.strict", r.json()["error"]["message"])
        self.c.api_ok("POST", "/api/v1/upstreams", {"name": "y", "url": "http://a.internal.test"},
                      expect=201)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="fg-ssrf-ns-") as ns_tmp:
        _setup_netns(ns_tmp)
        harness.main()
