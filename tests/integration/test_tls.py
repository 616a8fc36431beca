#!/usr/bin/env python3
"""test_tls.py - TLS on both sides of the data plane.

Client side: the --tls-listen listener serves HTTPS (and says X-Forwarded-Proto: https),
refuses TLS 1.0/1.1, and picks its certificate by SNI. Upstream side: https targets are
verified against the upstream's caFile and the URL's host (a wrong CA or a certificate for
another name is a 502), tlsVerify:false skips that, the data plane sends SNI, and a target that
requires a client certificate gets one from clientCert/clientKey. Certificates come from
deploy/make-certs.sh in the test's temporary directory.
"""

import http.client
import os
import socket
import ssl
import subprocess
import sys
import unittest
import warnings

from harness import (ORIGIN_PY, SOURCE_DIR, ClusterTest, Origin, START_TIMEOUT, error_code,
                     free_port, is_origin_json, main)

MAKE_CERTS = os.path.join(SOURCE_DIR, "deploy", "make-certs.sh")


def make_certs(directory, *names):
    subprocess.run(["sh", MAKE_CERTS, directory] + list(names), check=True,
                   stdout=subprocess.DEVNULL)
    return directory


def https_get(port, path, ctx, server_hostname="localhost", headers=None):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    conn._server_hostname = server_hostname  # SNI/verification name, connecting to 127.0.0.1
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read(), conn.sock.version(), conn.sock.getpeercert()
    finally:
        conn.close()


def tls_handshake(port, ctx, server_hostname):
    """Handshake only; returns (version, peer certificate dict or DER)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as s:
            cert = s.getpeercert()
            if not cert:
                cert = s.getpeercert(binary_form=True)
            return s.version(), cert


def san_names(cert):
    return sorted(v for k, v in cert.get("subjectAltName", ()) if k == "DNS")


class TlsTest(ClusterTest):
    label = "tls"

    def setUp(self):
        super().setUp()
        self.certs = make_certs(os.path.join(self.c.tmp, "certs"), "alt.test")

    def cert(self, name):
        return os.path.join(self.certs, name)

    def client_ctx(self, ca="ca.crt"):
        ctx = ssl.create_default_context(cafile=self.cert(ca))
        return ctx

    def start_tls_origin(self, name, cert="server", client_ca=None):
        argv = [sys.executable, "-B", ORIGIN_PY, "--listen", "127.0.0.1:0", "--name", name,
                "--tls-cert", self.cert(cert + ".crt"), "--tls-key", self.cert(cert + ".key")]
        if client_ca:
            argv += ["--tls-client-ca", self.cert(client_ca)]
        o = Origin("origin-" + name, argv, self.c.tmp)
        self.c._track(o).start()

        def listening():
            if not o.alive():
                raise AssertionError("origin exited")
            for line in o.read("stdout").splitlines():
                if line.startswith("listening "):
                    return int(line.split()[1].rsplit(":", 1)[1])
            return None

        o.port = self.c.poll(listening, "origin %s to listen" % name, START_TIMEOUT)
        self.c.origins[name] = o
        return o

    def start_tls_dp(self, dp_id, certs=("server", "alt.test")):
        tls_port = free_port()
        args = ["--workers", "1", "--tls-listen", "127.0.0.1:%d" % tls_port]
        for name in certs:
            args += ["--tls-cert", self.cert(name + ".crt"), "--tls-key", self.cert(name + ".key")]
        dp = self.c.start_dp(dp_id, extra_args=args)
        dp.tls_port = tls_port
        return dp

    def add_upstream(self, name, url, **extra):
        body = {"name": name, "url": url, "timeout": 5000}
        body.update(extra)
        self.c.api_ok("POST", "/api/v1/upstreams", body, expect=201)
        self.c.api_ok("POST", "/api/v1/routes",
                      {"id": name, "path": "/%s/*" % name, "upstream": name,
                       "stripPrefix": True}, expect=201)

    def wait_status(self, dp, path, status):
        def check():
            r = self.c.through(dp, "GET", path)
            return r if r.status == status else None

        return self.c.poll(check, "GET %s through %s = %d" % (path, dp.dp_id, status))


class TlsListenerTest(TlsTest):

    def setUp(self):
        super().setUp()
        self.c.start_origin("A")
        self.c.start_ctl()
        self.c.route_all_to("A")
        self.dp = self.start_tls_dp("dp-tls")
        self.c.wait_served(["dp-tls"], "/x", lambda r: is_origin_json(r, "A"), "route served")

    def test_serves_https_with_forwarded_proto(self):
        ctx = self.client_ctx()
        conn = http.client.HTTPSConnection("localhost", self.dp.tls_port, context=ctx,
                                           timeout=10)
        try:
            ports = set()
            for i in range(3):  # keep-alive: one TLS connection, several requests
                conn.request("GET", "/hello/%d" % i)
                r = conn.getresponse()
                body = r.read()
                self.assertEqual(r.status, 200, body)
                self.assertTrue(is_origin_json(_Resp(r.status, body), "A", "/hello/%d" % i))
                self.assertEqual(_json(body)["headers"]["x-forwarded-proto"], "https")
                ports.add(conn.sock.getsockname()[1])
            self.assertEqual(len(ports), 1, "the TLS connection was kept alive")
            self.assertIn(conn.sock.version(), ("TLSv1.2", "TLSv1.3"))
        finally:
            conn.close()
        plain = self.c.through(self.dp, "GET", "/plain")
        self.assertEqual(plain.json()["headers"]["x-forwarded-proto"], "http")

    def test_large_body_both_ways_over_tls(self):
        ctx = self.client_ctx()
        conn = http.client.HTTPSConnection("localhost", self.dp.tls_port, context=ctx,
                                           timeout=10)
        try:
            payload = os.urandom(300_000)
            conn.request("POST", "/upload", body=payload)
            r = conn.getresponse()
            body = _json(r.read())
            self.assertEqual(body["body_length"], len(payload))
            conn.request("GET", "/bytes?n=1000000")
            r = conn.getresponse()
            data = r.read()
            self.assertEqual(len(data), 1_000_000)
            import hashlib
            self.assertEqual(hashlib.sha256(data).hexdigest(), r.getheader("X-Body-Sha256"))
        finally:
            conn.close()

    def test_tls_1_0_and_1_1_refused(self):
        warnings.simplefilter("ignore", DeprecationWarning)  # that is the point here
        for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client really offer old TLS
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = version
            with self.assertRaises(ssl.SSLError) as cm:
                tls_handshake(self.dp.tls_port, ctx, "localhost")
            # The server refused the version; the client did offer it.
            self.assertNotIn("NO_PROTOCOLS_AVAILABLE", str(cm.exception).upper())
        # The same client allowed TLS 1.2 gets in.
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        version, _ = tls_handshake(self.dp.tls_port, ctx, "localhost")
        self.assertEqual(version, "TLSv1.2")

    def test_sni_picks_the_certificate(self):
        ctx = self.client_ctx()
        _, cert = tls_handshake(self.dp.tls_port, ctx, "alt.test")
        self.assertEqual(san_names(cert), ["alt.test"])
        _, cert = tls_handshake(self.dp.tls_port, ctx, "localhost")
        self.assertEqual(san_names(cert), ["localhost"])
        # An unknown name, or none at all, gets the default (first) certificate.
        loose = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        loose.check_hostname = False
        loose.load_verify_locations(self.cert("ca.crt"))
        _, cert = tls_handshake(self.dp.tls_port, loose, "unknown.test")
        self.assertEqual(san_names(cert), ["localhost"])
        _, cert = tls_handshake(self.dp.tls_port, loose, None)
        self.assertEqual(san_names(cert), ["localhost"])

    def test_close_sends_close_notify(self):
        # A strict client (ragged EOFs are errors) reads to the end of a Connection: close
        # response: the data plane's close must be a TLS close_notify, not a bare FIN.
        ctx = self.client_ctx()
        with socket.create_connection(("127.0.0.1", self.dp.tls_port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost",
                                 suppress_ragged_eofs=False) as s:
                s.sendall(b"GET /bye HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(65536)  # SSLEOFError here without close_notify
                    if not chunk:
                        break
                    data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])
        self.assertIn(b'"path": "/bye"', data.replace(b'":"', b'": "'))

    def test_plain_http_on_tls_port_is_dropped(self):
        with socket.create_connection(("127.0.0.1", self.dp.tls_port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            # Not an HTTP answer in clear text: a TLS alert or nothing, then the close.
            self.assertFalse(data.startswith(b"HTTP/"), data)


class _Resp:
    def __init__(self, status, body):
        self.status, self.body = status, body


def _json(body):
    import json
    return json.loads(body)


class HttpsUpstreamTest(TlsTest):

    def setUp(self):
        super().setUp()
        self.c.start_ctl()
        self.dp = self.c.start_dp("dp-a", extra_args=["--workers", "1"])

    def test_verified_against_ca_file(self):
        o = self.start_tls_origin("S")
        self.add_upstream("good", "https://localhost:%d" % o.port, caFile=self.cert("ca.crt"))
        self.add_upstream("byip", "https://127.0.0.1:%d" % o.port, caFile=self.cert("ca.crt"))
        r = self.wait_status(self.dp, "/good/x", 200)
        self.assertTrue(is_origin_json(r, "S", "/x"), r)
        self.assertEqual(r.json()["headers"]["x-forwarded-proto"], "http")
        self.assertEqual(r.json()["headers"]["host"], "localhost:%d" % o.port)
        # Keep-alive to the https target: the second request reuses the connection.
        r2 = self.c.through(self.dp, "GET", "/good/y")
        self.assertEqual(r2.json()["peer"], r.json()["peer"])
        self.assertEqual(r2.json()["connection_requests"], r.json()["connection_requests"] + 1)
        # An IP literal is checked against the certificate's IP SANs.
        self.assertTrue(is_origin_json(self.wait_status(self.dp, "/byip/z", 200), "S"))

    def test_upstream_tls_sessions_are_resumed(self):
        o = self.start_tls_origin("S")
        self.add_upstream("fresh", "https://localhost:%d" % o.port, caFile=self.cert("ca.crt"),
                          keepalive={"maxIdle": 0})  # a new connection for every request
        first = self.wait_status(self.dp, "/fresh/1", 200)
        self.assertEqual(first.header("X-TLS-Session-Reused"), "0")
        peers = {first.json()["peer"]}
        for i in range(3):
            r = self.c.through(self.dp, "GET", "/fresh/%d" % (i + 2))
            self.assertEqual(r.json()["connection_requests"], 1)
            peers.add(r.json()["peer"])
            self.assertEqual(r.header("X-TLS-Session-Reused"), "1", "abbreviated handshake")
        self.assertEqual(len(peers), 4)

    def test_wrong_ca_is_502_and_tls_verify_false_is_ok(self):
        o = self.start_tls_origin("S")
        other = make_certs(os.path.join(self.c.tmp, "other-ca"))
        self.add_upstream("wrongca", "https://localhost:%d" % o.port,
                          caFile=os.path.join(other, "ca.crt"))
        self.add_upstream("noverify", "https://localhost:%d" % o.port,
                          caFile=os.path.join(other, "ca.crt"), tlsVerify=False)
        r = self.wait_status(self.dp, "/wrongca/x", 502)
        self.assertEqual(error_code(r), "bad_gateway")
        self.assertIn("certificate verify failed", self.dp.read())
        self.assertTrue(is_origin_json(self.wait_status(self.dp, "/noverify/x", 200), "S"))
        # The system CAs do not know the test CA either.
        self.add_upstream("systemca", "https://localhost:%d" % o.port)
        self.wait_status(self.dp, "/systemca/x", 502)

    def test_hostname_must_match_certificate(self):
        o = self.start_tls_origin("ALT", cert="alt.test")  # SAN DNS:alt.test only
        self.add_upstream("mismatch", "https://localhost:%d" % o.port,
                          caFile=self.cert("ca.crt"))
        self.wait_status(self.dp, "/mismatch/x", 502)
        self.assertIn("hostname mismatch", self.dp.read())

    def test_sni_is_sent_upstream(self):
        # The target is another data plane whose DEFAULT certificate is for alt.test: only a
        # ClientHello naming "localhost" gets the certificate that verifies.
        self.c.start_origin("A")
        self.add_upstream("origin", self.c.origin_url("A"))
        front = self.start_tls_dp("dp-front", certs=("alt.test", "server"))
        self.add_upstream("viasni", "https://localhost:%d" % front.tls_port,
                          caFile=self.cert("ca.crt"))
        r = self.wait_status(self.dp, "/viasni/origin/q", 200)
        self.assertTrue(is_origin_json(r, "A", "/q"), r)
        self.assertEqual(r.json()["headers"]["x-forwarded-proto"], "https")

    def test_client_certificate_to_upstream(self):
        o = self.start_tls_origin("M", client_ca="ca.crt")
        self.add_upstream("mtls", "https://localhost:%d" % o.port, caFile=self.cert("ca.crt"),
                          clientCert=self.cert("dp.crt"), clientKey=self.cert("dp.key"))
        self.add_upstream("nocert", "https://localhost:%d" % o.port, caFile=self.cert("ca.crt"))
        self.assertTrue(is_origin_json(self.wait_status(self.dp, "/mtls/x", 200), "M"))
        self.assertEqual(self.wait_status(self.dp, "/nocert/x", 502).status, 502)


class HttpsUpstreamBadFilesTest(TlsTest):
    expect_error_logs = True  # an unreadable CA file is an error worth a log line

    def test_missing_ca_file_is_502_with_reason(self):
        self.c.start_ctl()
        dp = self.c.start_dp("dp-a", extra_args=["--workers", "1"])
        o = self.start_tls_origin("S")
        self.add_upstream("missing", "https://localhost:%d" % o.port,
                          caFile=os.path.join(self.c.tmp, "no-such-ca.pem"))
        self.wait_status(dp, "/missing/x", 502)
        self.assertIn("cannot load CA file", dp.read())
        # Further requests fail the same way without re-reading files or logging each time.
        for i in range(5):
            self.assertEqual(self.c.through(dp, "GET", "/missing/%d" % i).status, 502)
        self.assertLess(dp.read().count("cannot set up TLS to the upstream"), 5)


class TlsStartupErrorsTest(TlsTest):

    def run_dp(self, *args):
        from harness import DP_BIN
        p = subprocess.run([DP_BIN, "--control", "unix:/nonexistent.sock", "--workers", "1"]
                           + list(args), capture_output=True, text=True, timeout=20)
        return p.returncode, p.stderr

    def test_bad_certificate_or_flags_fail_the_start(self):
        port = "127.0.0.1:%d" % free_port()
        rc, err = self.run_dp("--tls-listen", port, "--tls-cert", self.cert("nope.crt"),
                              "--tls-key", self.cert("server.key"), "--listen",
                              "127.0.0.1:%d" % free_port(), "--status-listen",
                              "127.0.0.1:%d" % free_port())
        self.assertEqual(rc, 1, err)
        self.assertIn("nope.crt", err)
        rc, err = self.run_dp("--tls-listen", port, "--tls-cert", self.cert("server.crt"),
                              "--tls-key", self.cert("alt.test.key"), "--listen",
                              "127.0.0.1:%d" % free_port(), "--status-listen",
                              "127.0.0.1:%d" % free_port())
        self.assertEqual(rc, 1, err)
        self.assertIn("alt.test.key", err)
        self.assertIn("mismatch", err)
        rc, err = self.run_dp("--tls-listen", port)
        self.assertEqual(rc, 2)
        self.assertIn("--tls-cert", err)
        rc, err = self.run_dp("--tls-listen", port, "--tls-cert", self.cert("server.crt"))
        self.assertEqual(rc, 2)
        self.assertIn("--tls-key", err)


if __name__ == "__main__":
    main()
