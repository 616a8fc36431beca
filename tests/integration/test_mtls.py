#!/usr/bin/env python3
"""test_mtls.py - the snapshot protocol over tcp:// with mutual TLS (issue 4).

Certificates come from deploy/make-certs.sh (a throwaway CA per test, and a second CA for
the "wrong CA" cases). A data plane subscribes over TCP with its client certificate and
serves traffic; changes reach it as they reach a data plane on the Unix socket. The control
plane refuses a client without a certificate and one whose certificate another CA signed,
and logs why; a data plane refuses a control plane whose certificate it cannot verify, or
whose certificate names another host.
"""

import os
import socket
import ssl
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ClusterTest, is_origin_json  # noqa: E402

MAKE_CERTS = os.path.join(harness.SOURCE_DIR, "deploy", "make-certs.sh")
MSG_HELLO, MSG_PING = 1, 5


def make_certs(directory, *extra_names):
    subprocess.run(["sh", MAKE_CERTS, directory] + list(extra_names), check=True,
                   stdout=subprocess.DEVNULL, timeout=60)
    return directory


def frame(msg_type, payload):
    data = payload.encode()
    return struct.pack(">IB", len(data), msg_type) + data


class MutualTls(ClusterTest):
    label = "mtls"

    def setUp(self):
        super().setUp()
        self.certs = make_certs(os.path.join(self.c.tmp, "pki"), "elsewhere")
        self.other = make_certs(os.path.join(self.c.tmp, "pki-other"))

    def pem(self, name, which=None):
        return os.path.join(which or self.certs, name)

    def start_ctl_tls(self, cert="ctl", host="127.0.0.1", more_listen=()):
        """A control plane with its Unix socket and a tcp:// listener on a free port (plus
        `more_listen` addresses)."""
        self.tcp_port = harness.free_port()
        self.tcp_host = host
        more = [a for addr in more_listen for a in ("--dp-listen", addr)]
        return self.c.start_ctl(extra_args=more + [
            "--dp-listen", "tcp://%s:%d" % (host, self.tcp_port),
            "--dp-tls-ca", self.pem("ca.crt"),
            "--dp-tls-cert", self.pem(cert + ".crt"), "--dp-tls-key", self.pem(cert + ".key")])

    def start_tcp_dp(self, dp_id, host="127.0.0.1", ca=None, cert=None, key=None,
                     wait_ready=True, extra=(), port=None):
        """A data plane on tcp://HOST:port. The harness puts a unix: --control first; the
        later --control given here is the one flexgate-dp uses (the last one wins)."""
        args = ["--control", "tcp://%s:%d" % (host, port or self.tcp_port),
                "--control-ca", ca or self.pem("ca.crt"),
                "--control-cert", cert or self.pem("dp.crt"),
                "--control-key", key or self.pem("dp.key")] + list(extra)
        return self.c.start_dp(dp_id, wait_ready=wait_ready, extra_args=args)

    def listed(self, dp_id):
        return any(d["id"] == dp_id for d in self.c.dataplanes()["items"])

    def assert_refused(self, dp, ctl_says=None, dp_says=None):
        """dp never gets a session: its log says why, the control plane's too (if given),
        it stays not ready and is not in /api/v1/dataplanes."""
        c = self.c
        if dp_says:
            c.poll(lambda: dp_says in dp.read(), "data plane log: %r" % dp_says)
        if ctl_says:
            c.poll(lambda: ctl_says in c.ctl.read(), "control plane log: %r" % ctl_says)
        self.assertEqual(c.status(dp, "/health/ready").status, 503)
        self.assertFalse(self.listed(dp.dp_id), "a refused data plane is never registered")
        self.assertNotIn('"connected to control plane"', dp.read())

    # -- the working path ----------------------------------------------------------------

    def test_tcp_data_planes_serve_and_follow_changes_like_unix(self):
        c = self.c
        c.start_origin("A")
        c.start_origin("B")
        v6_port = harness.free_port()
        self.start_ctl_tls(more_listen=["tcp://[::1]:%d" % v6_port])  # --dp-listen twice
        c.route_all_to("A")
        c.start_dp("dp-unix")
        self.start_tcp_dp("dp-tcp")
        self.start_tcp_dp("dp-name", host="localhost")  # DNS SAN "localhost"
        self.start_tcp_dp("dp-v6", host="[::1]", port=v6_port)  # IP SAN ::1
        ids = ["dp-unix", "dp-tcp", "dp-name", "dp-v6"]
        c.wait_in_sync(ids)
        c.wait_served(ids, "/hello", lambda r: is_origin_json(r, "A", "/hello"), "served via A")

        log = c.ctl.read()
        self.assertIn('"msg":"data plane TLS session established"', log)
        self.assertIn('"subject":"CN=flexgate-dp"', log)
        self.assertIn('"tls_version":"TLSv1.3"', log)

        # A change reaches the TCP data planes as it reaches the Unix one.
        c.api_ok("PUT", "/api/v1/upstreams/backend",
                 {"name": "backend", "url": c.origin_url("B")}, expect=200)
        v = c.config_version()
        c.wait_in_sync(ids, v)
        c.wait_served(ids, "/moved", lambda r: is_origin_json(r, "B", "/moved"), "served via B")
        c.api_ok("POST", "/api/v1/routes",
                 {"id": "extra", "path": "/extra", "upstream": "backend"}, expect=201)
        c.wait_in_sync(ids)
        for i in ids:
            self.assertEqual(c.status(c.dps[i], "/health/ready").json()["config_version"],
                             c.config_version())

    def test_tcp_data_plane_reconnects_after_ctl_restart(self):
        c = self.c
        c.start_origin("A")
        ctl = self.start_ctl_tls()
        c.route_all_to("A")
        dp = self.start_tcp_dp("dp-tcp")
        v = c.config_version()
        c.wait_in_sync(["dp-tcp"], v)
        ctl.kill()
        # Serving on while the control plane is away.
        self.assertTrue(is_origin_json(c.through(dp, "GET", "/x"), "A"))
        port = self.tcp_port
        c.start_ctl(db=ctl.db, socket_path=ctl.socket_path, name="ctl2", extra_args=[
            "--dp-listen", "tcp://127.0.0.1:%d" % port, "--dp-tls-ca", self.pem("ca.crt"),
            "--dp-tls-cert", self.pem("ctl.crt"), "--dp-tls-key", self.pem("ctl.key")])
        c.api_ok("POST", "/api/v1/routes", {"id": "r2", "path": "/r2", "upstream": "backend"},
                 expect=201)
        c.wait_in_sync(["dp-tcp"])
        c.wait_dp_ready(dp, version=c.config_version())

    def test_tls12_client_is_accepted(self):
        """TLS 1.2 is the floor, not the default: a 1.2-only client with a good certificate
        still gets a session (and the default negotiation picks 1.3, checked above)."""
        self.start_ctl_tls()
        ctx = ssl.create_default_context(cafile=self.pem("ca.crt"))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.pem("dp.crt"), self.pem("dp.key"))
        with socket.create_connection(("127.0.0.1", self.tcp_port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                self.assertEqual(tls.version(), "TLSv1.2")
                tls.sendall(frame(MSG_HELLO, '{"dp_id":"py-12","hostname":"h","pid":1,'
                                             '"software_version":"0","protocol":1,'
                                             '"applied_version":0}'))
                hdr = tls.recv(5)
                self.assertEqual(len(hdr), 5, "the control plane answers a HELLO over TLS 1.2")
        self.c.poll(lambda: self.listed("py-12"), "py-12 registered")

    # -- the control plane refuses -------------------------------------------------------

    def test_client_without_certificate_is_refused(self):
        c = self.c
        self.start_ctl_tls()
        ctx = ssl.create_default_context(cafile=self.pem("ca.crt"))  # no client certificate
        got = b""
        with socket.create_connection(("127.0.0.1", self.tcp_port), timeout=5) as raw:
            try:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    # TLS 1.3: the client may finish its side before the server's verdict.
                    tls.sendall(frame(MSG_HELLO, '{"dp_id":"py-nocert","hostname":"h",'
                                                 '"pid":1,"software_version":"0",'
                                                 '"protocol":1,"applied_version":0}'))
                    got = tls.recv(5)
            except (ssl.SSLError, ConnectionError):
                pass
        self.assertEqual(got, b"", "no frame for a client without a certificate")
        c.poll(lambda: "peer did not return a certificate" in c.ctl.read(),
               "the control plane logs the missing client certificate")
        self.assertIn("refused a data plane connection: TLS handshake failed", c.ctl.read())
        self.assertFalse(self.listed("py-nocert"))

    def test_client_certificate_from_another_ca_is_refused(self):
        self.start_ctl_tls()
        dp = self.start_tcp_dp("dp-stranger", cert=self.pem("dp.crt", self.other),
                               key=self.pem("dp.key", self.other), wait_ready=False)
        self.assert_refused(dp, ctl_says="certificate verify failed: unable to get local "
                                         "issuer certificate",
                            dp_says="alert unknown ca")

    # -- the data plane refuses ----------------------------------------------------------

    def test_data_plane_refuses_ctl_it_cannot_verify(self):
        self.start_ctl_tls()
        dp = self.start_tcp_dp("dp-wrong-ca", ca=self.pem("ca.crt", self.other),
                               wait_ready=False)
        self.assert_refused(dp, dp_says="certificate verify failed")

    def test_data_plane_refuses_ctl_certificate_for_another_host(self):
        # "elsewhere.crt" is signed by the right CA but names DNS:elsewhere only.
        self.start_ctl_tls(cert="elsewhere")
        by_ip = self.start_tcp_dp("dp-ip", wait_ready=False)
        # "localhost" may resolve to ::1 first, refused (the control plane is on 127.0.0.1);
        # the next attempt takes 127.0.0.1. Only the first failure is a warn line, so read
        # the later ones at debug level.
        by_name = self.start_tcp_dp("dp-name", host="localhost", wait_ready=False,
                                    extra=["--log-level", "debug"])
        self.assert_refused(by_ip, dp_says="IP address mismatch")
        self.assert_refused(by_name, dp_says="hostname mismatch")

    # -- start-up checks -----------------------------------------------------------------

    def run_briefly(self, argv):
        return subprocess.run([str(a) for a in argv], capture_output=True,
                              timeout=harness.START_TIMEOUT,
                              env=dict(os.environ, FLEXGATE_ADMIN_TOKEN="t"))

    def test_bad_tls_options_fail_at_start(self):
        tmp = self.c.tmp
        base = [harness.CTL_BIN, "serve", "--db", os.path.join(tmp, "x.db"), "--admin-listen",
                "127.0.0.1:%d" % harness.free_port(), "--socket",
                "unix:" + os.path.join(tmp, "x.sock")]
        tcp = ["--dp-listen", "tcp://127.0.0.1:%d" % harness.free_port()]
        p = self.run_briefly(base + tcp)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(b"--dp-tls-ca", p.stderr)
        p = self.run_briefly(base + tcp + ["--dp-tls-ca", self.pem("ca.crt"), "--dp-tls-cert",
                                           self.pem("missing.crt"), "--dp-tls-key",
                                           self.pem("ctl.key")])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b"missing.crt", p.stderr)
        p = self.run_briefly(base + tcp + ["--dp-tls-ca", self.pem("ca.crt"), "--dp-tls-cert",
                                           self.pem("ctl.crt"), "--dp-tls-key",
                                           self.pem("dp.key")])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b"does not belong", p.stderr)

        dp = [harness.DP_BIN, "--listen", "127.0.0.1:%d" % harness.free_port(),
              "--status-listen", "127.0.0.1:%d" % harness.free_port()]
        p = self.run_briefly(dp + ["--control", "tcp://127.0.0.1:1"])
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(b"--control-ca", p.stderr)
        p = self.run_briefly(dp + ["--control", "unix:/x", "--control-ca", self.pem("ca.crt")])
        self.assertEqual(p.returncode, 2, p.stderr)
        p = self.run_briefly(dp + ["--control", "tcp://127.0.0.1:1", "--control-ca",
                                   self.pem("ca.crt"), "--control-cert", self.pem("dp.crt"),
                                   "--control-key", self.pem("nope.key")])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b"nope.key", p.stderr)


if __name__ == "__main__":
    harness.main()
