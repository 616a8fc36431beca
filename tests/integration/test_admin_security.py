#!/usr/bin/env python3
"""test_admin_security.py - the admin plane's controls (issue 5, docs/threat-model.md).

The admin token: a wrong one is 401 and logged with the client address, never with the
token; an address that sends LOCKOUT_MAX_FAILURES wrong tokens is refused with 429 and
Retry-After until its window ends (another address is not); requests without any credential
are not guesses. The admin listener refuses a non-loopback address without TLS unless
--admin-insecure-bind, and serves HTTPS with --admin-tls-cert/--admin-tls-key. The API is
not CSRF-able: cookies are never credentials, and no CORS header opens it to other origins.
The snapshot socket is mode 0660, and a HELLO without the data plane secret, or with a wrong
one, gets one NACK saying why and a closed connection -- no SNAPSHOT, no PING -- while the
right secret gets the snapshot; a real flexgate-dp with a wrong secret stays not-ready and
says why. Over tcp:// the client certificate is the credential (a HELLO there needs no
secret, but a wrong one is still refused). Neither secret ever appears in a log.
"""

import http.client
import json
import os
import re
import socket
import ssl
import stat
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ClusterTest, error_code  # noqa: E402

MAKE_CERTS = os.path.join(harness.SOURCE_DIR, "deploy", "make-certs.sh")
LOCKOUT_MAX_FAILURES = 10     # controlplane/lockout.h
LOCKOUT_WINDOW_S = 60
HELLO, SNAPSHOT, NACK, PING = 1, 2, 4, 5
HEADER = struct.Struct(">IB")
FOREIGN_ORIGIN = "http://evil.example"


def request_from(source_ip, port, method, path, headers=None, body=None):
    """One request to 127.0.0.1:port from the loopback address `source_ip`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=harness.HTTP_TIMEOUT,
                                      source_address=(source_ip, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return harness.Resp(r.status, r.headers, r.read(), True, None)
    finally:
        conn.close()


def bearer(token):
    return {"Authorization": "Bearer " + token}


def frame(msg_type, obj):
    data = json.dumps(obj).encode()
    return HEADER.pack(len(data), msg_type) + data


def frames_until_close(sock, timeout):
    """Every frame the peer sends until it closes: [(type, payload dict)]. Fails if the
    connection is still open after `timeout`."""
    buf, out = b"", []
    deadline = time.monotonic() + timeout
    for _ in range(10_000):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("ctl kept the connection open; frames so far: %r" % out)
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        while len(buf) >= HEADER.size:
            length, t = HEADER.unpack_from(buf)
            if len(buf) < HEADER.size + length:
                break
            out.append((t, json.loads(buf[HEADER.size:HEADER.size + length])))
            buf = buf[HEADER.size + length:]
        if not data:
            return out
        buf += data
    raise AssertionError("unreachable")


def first_frame(sock, timeout):
    """The first frame the peer sends: (type, payload dict)."""
    buf = b""
    deadline = time.monotonic() + timeout
    for _ in range(10_000):
        if len(buf) >= HEADER.size:
            length, t = HEADER.unpack_from(buf)
            if len(buf) >= HEADER.size + length:
                return t, json.loads(buf[HEADER.size:HEADER.size + length])
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no whole frame from ctl within %.1fs" % timeout)
        sock.settimeout(left)
        data = sock.recv(1 << 20)
        if not data:
            raise AssertionError("ctl closed the connection; got %r" % buf[:200])
        buf += data
    raise AssertionError("unreachable")


def hello(dp_id, secret=None):
    body = {"dp_id": dp_id, "hostname": "raw-host", "pid": os.getpid(),
            "software_version": "raw-1", "protocol": 1, "applied_version": 0}
    if secret is not None:
        body["secret"] = secret
    return frame(HELLO, body)


class AdminToken(ClusterTest):
    label = "adminsec"

    def setUp(self):
        super().setUp()
        self.c.start_ctl()
        self.port = self.c.ctl.admin_port

    def test_wrong_token_is_401_logged_with_the_address_and_no_token(self):
        c = self.c
        wrong = "wrong-" + c.token[::-1]
        self.assertEqual(c.api("GET", "/api/v1/upstreams").status, 200)
        r = c.api("GET", "/api/v1/upstreams", token=wrong)
        self.assertEqual(r.status, 401)
        self.assertEqual(error_code(r), "unauthorized")
        self.assertTrue(r.header("WWW-Authenticate", "").startswith("Bearer"))
        self.assertEqual(c.api("GET", "/api/v1/upstreams", token=False).status, 401)
        self.assertEqual(c.api("GET", "/api/v1/upstreams").status, 200)
        log = c.poll(lambda: (lambda t: t if "admin authentication failed" in t else None)(
            c.ctl.read("stderr")), "the failed attempt in ctl's log")
        failed = [json.loads(line) for line in log.splitlines()
                  if "admin authentication failed" in line]
        self.assertEqual(len(failed), 1, "one wrong token, one line (a missing one is no "
                                         "guess): %r" % failed)
        self.assertEqual(failed[0]["client"], "127.0.0.1")
        self.assertEqual(failed[0]["path"], "/api/v1/upstreams")
        for text in (c.ctl.read("stderr"), c.ctl.read("stdout")):
            self.assertNotIn(c.token, text, "the admin token must never be logged")
            self.assertNotIn(wrong, text, "a presented token must never be logged")
            self.assertNotIn(c.token[:16], text, "not even part of it")

    def test_repeated_wrong_tokens_lock_the_address_out(self):
        c, port = self.c, self.port
        for i in range(LOCKOUT_MAX_FAILURES):
            r = request_from("127.0.0.1", port, "GET", "/api/v1/routes", bearer("guess-%d" % i))
            self.assertEqual(r.status, 401, "guess %d of %d" % (i + 1, LOCKOUT_MAX_FAILURES))
        for token in ("guess-x", c.token):  # even the right token, while locked out
            r = request_from("127.0.0.1", port, "GET", "/api/v1/routes", bearer(token))
            self.assertEqual(r.status, 429, r)
            self.assertEqual(error_code(r), "too_many_attempts")
            retry = int(r.header("Retry-After"))
            self.assertTrue(1 <= retry <= LOCKOUT_WINDOW_S, retry)
        # Another client address is not locked out, and health checks are not behind the token.
        r = request_from("127.0.0.2", port, "GET", "/api/v1/routes", bearer(c.token))
        self.assertEqual(r.status, 200, r)
        r = request_from("127.0.0.2", port, "GET", "/api/v1/routes", bearer("guess-y"))
        self.assertEqual(r.status, 401, r)
        self.assertEqual(request_from("127.0.0.1", port, "GET", "/health/live").status, 200)
        log = [json.loads(line) for line in c.ctl.read("stderr").splitlines()
               if line.startswith("{")]
        locked = [e for e in log if "locked out" in e["msg"]]
        self.assertEqual([(e["client"], e["failures"]) for e in locked],
                         [("127.0.0.1", str(LOCKOUT_MAX_FAILURES))])
        failed = [e for e in log if e["msg"].startswith("admin authentication failed")]
        self.assertEqual(len(failed), LOCKOUT_MAX_FAILURES + 1)  # + the one from 127.0.0.2
        # Refused while locked out: no guess is counted, and no warning per request.
        self.assertFalse([e for e in log if e.get("status") == "429"], "429s at debug only")

    def test_requests_without_credentials_are_not_counted_as_guesses(self):
        for _ in range(LOCKOUT_MAX_FAILURES + 5):
            r = request_from("127.0.0.1", self.port, "GET", "/api/v1/routes")
            self.assertEqual(r.status, 401)
        r = request_from("127.0.0.1", self.port, "GET", "/api/v1/routes", bearer(self.c.token))
        self.assertEqual(r.status, 200)

    def test_cookies_are_not_credentials(self):
        """CSRF: a browser sends cookies on its own, never an Authorization header. The API
        reads only the header, so a forged cross-site request is 401 and changes nothing."""
        c = self.c
        v = c.config_version()
        cookie = "token=%s; flexgate_token=%s; session=%s" % (c.token, c.token, c.token)
        browser = {"Cookie": cookie, "Origin": FOREIGN_ORIGIN, "Referer": FOREIGN_ORIGIN + "/"}
        r = c.api("GET", "/api/v1/upstreams", token=False, headers=browser)
        self.assertEqual(r.status, 401)
        form = dict(browser, **{"Content-Type": "application/x-www-form-urlencoded"})
        r = c.api("POST", "/api/v1/upstreams", body="name=x&url=http://127.0.0.1:1",
                  token=False, headers=form)
        self.assertEqual(r.status, 401)
        r = c.api("POST", "/api/v1/upstreams", body={"name": "x", "url": "http://127.0.0.1:1"},
                  token=False, headers=browser)
        self.assertEqual(r.status, 401)
        self.assertEqual(c.config_version(), v, "a forged request changes nothing")
        self.assertIsNone(r.header("Set-Cookie"), "the API never sets a cookie")

    def test_no_cors_for_other_origins(self):
        c = self.c
        r = c.api("GET", "/api/v1/upstreams", headers={"Origin": FOREIGN_ORIGIN})
        self.assertEqual(r.status, 200)
        cors = lambda resp: {k: v for k, v in resp.headers.items()  # noqa: E731
                             if k.lower().startswith("access-control-")}
        self.assertEqual(cors(r), {}, "no CORS header: a foreign page cannot read answers")
        preflight = {"Origin": FOREIGN_ORIGIN, "Access-Control-Request-Method": "DELETE",
                     "Access-Control-Request-Headers": "authorization, content-type"}
        for path in ("/api/v1/upstreams", "/api/v1/routes/x", "/health/ready", "/ui/"):
            for token in (False, True):
                with self.subTest(path=path, token=token):
                    r = c.api("OPTIONS", path, token=token, headers=preflight)
                    self.assertFalse(200 <= r.status < 300, "preflight answered %d" % r.status)
                    self.assertEqual(cors(r), {})


class AdminListen(ClusterTest):
    label = "adminbind"

    def run_ctl(self, *args):
        db = os.path.join(self.c.tmp, "refused", "x.db")
        os.makedirs(os.path.dirname(db), exist_ok=True)
        p = subprocess.run([harness.CTL_BIN, "serve", "--db", db, "--socket",
                            "unix:" + os.path.join(self.c.tmp, "refused.sock")] + list(args),
                           capture_output=True, text=True, timeout=harness.START_TIMEOUT,
                           env=dict(os.environ, FLEXGATE_ADMIN_TOKEN=self.c.token))
        return p, db

    def test_non_loopback_bind_is_refused_without_tls_or_the_flag(self):
        port = harness.free_port()
        for addr in ("0.0.0.0:%d" % port, "[::]:%d" % port):
            with self.subTest(addr=addr):
                p, db = self.run_ctl("--admin-listen", addr)
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn("--admin-insecure-bind", p.stderr)
                self.assertIn("--admin-tls-cert", p.stderr)
                self.assertIn("refusing to serve the admin API on non-loopback", p.stderr)
                self.assertFalse(os.path.exists(db), "refused before anything was created")
        for addr in ("127.0.0.1", "127.9.9.9", "[::1]", "localhost"):
            with self.subTest(loopback=addr):
                # Accepted: the run gets past the check (then stops at a bad --socket).
                p, _ = self.run_ctl("--admin-listen", "%s:%d" % (addr, port), "--socket",
                                    "tcp://nowhere")
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn("snapshot publisher", p.stderr)
                self.assertNotIn("refusing to serve the admin API", p.stderr)

    def test_insecure_bind_flag_allows_it_with_a_warning(self):
        c = self.c
        port = harness.free_port()
        c.start_ctl(admin_port=port, extra_args=["--admin-listen", "0.0.0.0:%d" % port,
                                                 "--admin-insecure-bind"])
        self.assertEqual(c.api("GET", "/api/v1/upstreams").status, 200)
        self.assertIn("--admin-insecure-bind", c.ctl.read("stderr"))
        self.assertIn("served without TLS on a non-loopback address", c.ctl.read("stderr"))

    def test_https_admin_api(self):
        c = self.c
        pki = os.path.join(c.tmp, "pki")
        subprocess.run(["sh", MAKE_CERTS, pki], check=True, stdout=subprocess.DEVNULL,
                       timeout=60)
        port = harness.free_port()
        # TLS makes a non-loopback address acceptable without --admin-insecure-bind.
        c.start_ctl(admin_port=port, wait=False, extra_args=[
            "--admin-listen", "0.0.0.0:%d" % port,
            "--admin-tls-cert", os.path.join(pki, "ctl.crt"),
            "--admin-tls-key", os.path.join(pki, "ctl.key")])
        ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))

        def https(method, path, token=None):
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx,
                                               timeout=harness.HTTP_TIMEOUT)
            try:
                conn.request(method, path, headers=bearer(token) if token else {})
                version = conn.sock.version()
                r = conn.getresponse()
                return r.status, r.read(), version
            finally:
                conn.close()

        c.poll(lambda: https("GET", "/health/ready")[0] == 200, "ctl ready over HTTPS",
               harness.START_TIMEOUT)
        status, _, version = https("GET", "/api/v1/upstreams", c.token)
        self.assertEqual(status, 200)
        self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(https("GET", "/api/v1/upstreams", "wrong")[0], 401)
        # Plain HTTP on the HTTPS port gets no HTTP answer.
        with self.assertRaises((http.client.HTTPException, OSError)):
            harness.one_shot(port, "GET", "/health/ready")
        # The data planes are unaffected: they use the snapshot socket.
        c.start_dp("dp-tls-admin")

    def test_lockout_limits_are_configurable_and_the_lockout_ends(self):
        c = self.c
        c.start_ctl(extra_args=["--admin-lockout-failures", "2",
                                "--admin-lockout-window-ms", "1000"])
        port = c.ctl.admin_port
        for i in range(2):
            r = request_from("127.0.0.1", port, "GET", "/api/v1/routes", bearer("g%d" % i))
            self.assertEqual(r.status, 401)
        t_locked = time.monotonic()
        r = request_from("127.0.0.1", port, "GET", "/api/v1/routes", bearer(c.token))
        self.assertEqual(r.status, 429)
        self.assertEqual(r.header("Retry-After"), "1")
        c.poll(lambda: request_from("127.0.0.1", port, "GET", "/api/v1/routes",
                                    bearer(c.token)).status == 200,
               "the lockout to end after its 1 s window", timeout=5.0)
        self.assertLess(time.monotonic() - t_locked, 3.0)
        for flag, bad in (("--admin-lockout-failures", "0"), ("--admin-lockout-failures", "x"),
                          ("--admin-lockout-window-ms", "999")):
            p, _ = self.run_ctl("--admin-listen", "127.0.0.1:%d" % harness.free_port(), flag,
                                bad)
            self.assertEqual(p.returncode, 2, (flag, bad, p.stderr))
            self.assertIn(flag, p.stderr)

    def test_bad_tls_files_fail_at_start(self):
        pki = os.path.join(self.c.tmp, "pki")
        subprocess.run(["sh", MAKE_CERTS, pki], check=True, stdout=subprocess.DEVNULL,
                       timeout=60)
        listen = "127.0.0.1:%d" % harness.free_port()
        p, _ = self.run_ctl("--admin-listen", listen, "--admin-tls-cert",
                            os.path.join(pki, "ctl.crt"))
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--admin-tls-key", p.stderr)
        p, _ = self.run_ctl("--admin-listen", listen, "--admin-tls-cert",
                            os.path.join(pki, "missing.crt"), "--admin-tls-key",
                            os.path.join(pki, "ctl.key"))
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("missing.crt", p.stderr)
        p, _ = self.run_ctl("--admin-listen", listen, "--admin-tls-cert",
                            os.path.join(pki, "ctl.crt"), "--admin-tls-key",
                            os.path.join(pki, "dp.key"))
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("not a pair", p.stderr)


class SnapshotSocket(ClusterTest):
    label = "dpsecret"

    def setUp(self):
        super().setUp()
        c = self.c
        c.start_origin("A")
        c.start_ctl()
        c.route_all_to("A")
        self.v = c.config_version()

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.settimeout(harness.START_TIMEOUT)
        s.connect(self.c.ctl.socket_path)
        return s

    def test_socket_is_mode_0660(self):
        st = os.stat(self.c.ctl.socket_path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)

    def test_hello_without_or_with_a_wrong_secret_is_refused_before_any_snapshot(self):
        c = self.c
        wrong = "not-" + c.dp_secret
        cases = (("raw-nosecret", None, "HELLO carries no secret"),
                 ("raw-wrongsecret", wrong, "wrong secret"),
                 ("raw-prefix", c.dp_secret[:-1], "wrong secret"))
        for dp_id, secret, why in cases:
            with self.subTest(dp_id=dp_id):
                s = self.connect()
                s.sendall(hello(dp_id, secret))
                got = frames_until_close(s, harness.START_TIMEOUT)
                self.assertEqual([t for t, _ in got], [NACK], "one NACK, then closed: %r" % got)
                self.assertEqual(got[0][1]["version"], 0)
                self.assertIn("authentication failed: " + why, got[0][1]["error"])
                if secret is None:
                    self.assertIn("--dp-secret-file", got[0][1]["error"])
        ids = [d["id"] for d in c.dataplanes()["items"]]
        self.assertFalse([i for i in ids if i.startswith("raw-")],
                         "a refused data plane is not registered: %r" % ids)
        log = c.ctl.read("stderr")
        refused = [json.loads(line) for line in log.splitlines()
                   if "refused a data plane: authentication failed" in line]
        self.assertEqual(sorted(e["dp_id"] for e in refused), sorted(i for i, _, _ in cases))
        for e in refused:
            self.assertEqual(e["peer"], "unix pid=%d uid=%d" % (os.getpid(), os.getuid()))
        self.assertNotIn(c.dp_secret, log)
        self.assertNotIn(wrong, log)

    def test_right_secret_gets_the_snapshot(self):
        s = self.connect()
        s.sendall(hello("raw-good", self.c.dp_secret))
        t, body = first_frame(s, harness.START_TIMEOUT)
        self.assertEqual(t, SNAPSHOT)
        self.assertEqual(body["version"], self.v)
        self.assertIn("raw-good", [d["id"] for d in self.c.dataplanes()["items"]])

    def test_oversized_frame_before_hello_is_refused_at_once(self):
        """An unauthenticated peer cannot make ctl buffer a big frame: a header announcing
        more than PUB_HELLO_MAX_PAYLOAD closes the connection without waiting for it."""
        s = self.connect()
        s.sendall(HEADER.pack(1 << 20, HELLO))
        self.assertEqual(frames_until_close(s, 5.0), [])

    def test_data_plane_with_a_wrong_secret_stays_not_ready_and_says_why(self):
        self.expect_error_logs = True  # the refused data plane logs its refusal as an error
        c = self.c
        wrong_file = os.path.join(c.tmp, "wrong.secret")
        wrong = "also-not-" + c.dp_secret
        with open(wrong_file, "w") as f:
            f.write(wrong + "\n")
        os.chmod(wrong_file, 0o600)
        bad = c.start_dp("dp-wrong", wait_ready=False,
                         extra_args=["--dp-secret-file", wrong_file])
        c.poll(lambda: "authentication failed: wrong secret" in bad.read("stderr"),
               "dp-wrong to log its refusal")
        self.assertIn("control plane refused this data plane", bad.read("stderr"))
        self.assertEqual(c.status(bad, "/health/ready").status, 503)
        self.assertNotIn("dp-wrong", [d["id"] for d in c.dataplanes()["items"]])
        good = c.start_dp("dp-right")  # the harness gives it the cluster's secret file
        c.wait_in_sync(["dp-right"])
        self.assertTrue(harness.is_origin_json(c.through(good, "GET", "/x"), "A"))
        for p in (c.ctl, bad, good):
            for which in ("stderr", "stdout"):
                text = p.read(which)
                self.assertNotIn(c.dp_secret, text, "%s %s" % (p.name, which))
                self.assertNotIn(wrong, text, "%s %s" % (p.name, which))

    def test_data_plane_reads_the_secret_from_the_environment(self):
        c = self.c
        argv = [harness.DP_BIN, "--control", "unix:" + c.ctl.socket_path, "--listen",
                "127.0.0.1:%d" % harness.free_port(), "--status-listen",
                "127.0.0.1:%d" % harness.free_port(), "--id", "dp-env", "--workers", "1"]
        dp = harness.DataPlane("dp-env", argv, c.tmp,
                               env=dict(os.environ, FLEXGATE_DP_SECRET=c.dp_secret))
        dp.dp_id, dp.status_port = "dp-env", int(argv[6].rsplit(":", 1)[1])
        dp.port = int(argv[4].rsplit(":", 1)[1])
        c._track(dp).start()
        c.dps["dp-env"] = dp
        c.wait_in_sync(["dp-env"])


class RemoteHello(ClusterTest):
    """Over tcp:// the client certificate verified in the TLS handshake is the credential:
    a HELLO without the secret is served; one that carries a wrong secret is refused."""
    label = "mtlshello"

    def setUp(self):
        super().setUp()
        c = self.c
        self.pki = os.path.join(c.tmp, "pki")
        subprocess.run(["sh", MAKE_CERTS, self.pki], check=True, stdout=subprocess.DEVNULL,
                       timeout=60)
        self.tcp_port = harness.free_port()
        pem = lambda n: os.path.join(self.pki, n)  # noqa: E731
        c.start_ctl(extra_args=["--dp-listen", "tcp://127.0.0.1:%d" % self.tcp_port,
                                "--dp-tls-ca", pem("ca.crt"), "--dp-tls-cert", pem("ctl.crt"),
                                "--dp-tls-key", pem("ctl.key")])
        self.v = c.config_version()

    def tls_hello(self, dp_id, secret):
        ctx = ssl.create_default_context(cafile=os.path.join(self.pki, "ca.crt"))
        ctx.load_cert_chain(os.path.join(self.pki, "dp.crt"), os.path.join(self.pki, "dp.key"))
        raw = socket.create_connection(("127.0.0.1", self.tcp_port), timeout=5)
        tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        self.addCleanup(tls.close)
        tls.sendall(hello(dp_id, secret))
        return tls

    def test_certificate_is_the_credential_and_a_wrong_secret_still_refused(self):
        t, body = first_frame(self.tls_hello("tls-nosecret", None), harness.START_TIMEOUT)
        self.assertEqual((t, body["version"]), (SNAPSHOT, self.v))
        got = frames_until_close(self.tls_hello("tls-wrong", "nope-" + self.c.dp_secret),
                                 harness.START_TIMEOUT)
        self.assertEqual([t for t, _ in got], [NACK], got)
        self.assertIn("authentication failed: wrong secret", got[0][1]["error"])
        ids = [d["id"] for d in self.c.dataplanes()["items"]]
        self.assertIn("tls-nosecret", ids)
        self.assertNotIn("tls-wrong", ids)
        refused = [json.loads(line) for line in self.c.ctl.read("stderr").splitlines()
                   if "refused a data plane: authentication failed" in line]
        self.assertEqual([e["dp_id"] for e in refused], ["tls-wrong"])
        self.assertTrue(refused[0]["peer"].startswith("127.0.0.1:"), refused[0])


if __name__ == "__main__":
    harness.main()
