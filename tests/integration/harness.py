"""harness.py - shared helpers for FlexGate's integration tests (not a test itself).

Each test file starts its own processes -- the test origin (tests/tools/origin.py),
flexgate-ctl, flexgate-dp -- on loopback ports chosen free at run time, in a temporary
directory, with each process's stdout and stderr captured to files there. Nothing here
sleeps to synchronise: `poll` retries a probe with short waits until it succeeds or a
deadline passes, then fails naming what it waited for and showing the processes' log tails.

Children never outlive the test: they get PR_SET_PDEATHSIG(SIGKILL), and every Cluster is
stopped from addCleanup/atexit (SIGTERM, then SIGKILL after a grace period).

Environment: FG_BUILD_DIR (default <repo>/build), FG_SOURCE_DIR (default: this repo),
FG_KEEP_TMP=1 keeps the temporary directories (logs, databases) for inspection.
"""

import atexit
import ctypes
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

SOURCE_DIR = os.path.abspath(os.environ.get("FG_SOURCE_DIR")
                             or os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_DIR = os.path.abspath(os.environ.get("FG_BUILD_DIR") or os.path.join(SOURCE_DIR, "build"))
CTL_BIN = os.path.join(BUILD_DIR, "flexgate-ctl")
DP_BIN = os.path.join(BUILD_DIR, "flexgate-dp")
TOOLS_DIR = os.path.join(SOURCE_DIR, "tests", "tools")
ORIGIN_PY = os.path.join(TOOLS_DIR, "origin.py")
if TOOLS_DIR not in sys.path:
    sys.path.insert(0, TOOLS_DIR)

START_TIMEOUT = 15.0      # s: a process becomes ready (listening / healthy)
PROPAGATE_TIMEOUT = 15.0  # s: a config change reaches the data planes
STOP_GRACE = 5.0          # s: SIGTERM before SIGKILL
HTTP_TIMEOUT = 10.0       # s: one HTTP request
POLL_INTERVAL = 0.02      # s: between probes
LOG_TAIL_LINES = 25

_live_procs = []
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: AddressSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")


# ---- basics --------------------------------------------------------------------------

def children(pid):
    """Live child pids of `pid` (from /proc)."""
    out = []
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                out += [int(x) for x in f.read().split()]
        except FileNotFoundError:
            pass
    return sorted(out)


NPM_TIMEOUT = 240.0  # s: one npm install, within ctest's 300 s per test


def npm_tool(prefix, packages, marker, env=None):
    """Install npm `packages` (pinned specs) into the build tree at `prefix` unless `marker`
    (a path under prefix/node_modules) is there already; returns the marker's full path.
    Without npm, or when the registry cannot be reached, the calling test FAILS: it never
    passes unchecked."""
    path = os.path.join(prefix, "node_modules", marker)
    if os.path.exists(path):
        return path
    npm = shutil.which("npm")
    if not npm or not shutil.which("node"):
        raise AssertionError("node/npm not found, so %s cannot be installed: install nodejs "
                             "and npm (deploy/install-deps.sh)" % " ".join(packages))
    os.makedirs(prefix, exist_ok=True)
    r = subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix",
                        prefix] + list(packages), capture_output=True, text=True,
                       timeout=NPM_TIMEOUT, env=env)
    if r.returncode != 0 or not os.path.exists(path):
        raise AssertionError("npm install %s failed (is the npm registry reachable?):\n%s%s"
                             % (" ".join(packages), r.stdout[-2000:], r.stderr[-2000:]))
    return path


def free_port():
    """A loopback TCP port that was free a moment ago (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_binaries():
    missing = [p for p in (CTL_BIN, DP_BIN) if not os.access(p, os.X_OK)]
    if missing:
        raise AssertionError("not built: %s (run `make` or set FG_BUILD_DIR)"
                             % ", ".join(missing))


class PollTimeout(AssertionError):
    pass


def poll(probe, what, timeout=PROPAGATE_TIMEOUT, interval=POLL_INTERVAL, context=None):
    """Call probe() until it returns something truthy; return that. Exceptions count as
    "not yet". After `timeout` seconds fail with `what`, the last result or exception, and
    context() (log tails) if given. Bounded in time and in number of attempts."""
    deadline = time.monotonic() + timeout
    last = None
    max_attempts = int(timeout / max(interval, 0.001)) * 4 + 100
    for _ in range(max_attempts):
        try:
            result = probe()
            if result:
                return result
            last = result
        except Exception as e:  # a probe failing is just "not yet"
            last = "%s: %s" % (type(e).__name__, e)
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    msg = "timed out after %.1fs waiting for %s; last: %r" % (timeout, what, last)
    if context is not None:
        msg += "\n" + context()
    raise PollTimeout(msg)


def _set_pdeathsig():
    # Runs in the child between fork and exec: die with the test process.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _kill_all_at_exit():
    for p in list(_live_procs):
        p.kill()


atexit.register(_kill_all_at_exit)


# ---- processes -----------------------------------------------------------------------

class Proc:
    """A child process with stdout and stderr captured to files in `logdir`."""

    def __init__(self, name, argv, logdir, env=None, cwd=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.env = env
        self.cwd = cwd
        self.stdout_path = os.path.join(logdir, name + ".stdout")
        self.stderr_path = os.path.join(logdir, name + ".stderr")
        self.popen = None
        self.returncode = None
        self.killed_on_purpose = False

    def start(self):
        out = open(self.stdout_path, "ab")
        err = open(self.stderr_path, "ab")
        try:
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=err, env=self.env, cwd=self.cwd,
                                          preexec_fn=_set_pdeathsig)
        finally:
            out.close()
            err.close()
        self.returncode = None
        _live_procs.append(self)
        return self

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def wait(self, timeout):
        try:
            self.returncode = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        if self in _live_procs:
            _live_procs.remove(self)
        return self.returncode

    def stop(self, grace=STOP_GRACE):
        """SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit status (negative:
        killed by that signal) and whether SIGKILL was needed."""
        if self.popen is None:
            return None, False
        if self.popen.poll() is not None:
            return self.wait(0), False
        self.popen.send_signal(signal.SIGTERM)
        rc = self.wait(grace)
        if rc is not None:
            return rc, False
        self.popen.kill()
        return self.wait(grace), True

    def kill(self):
        """SIGKILL, as a crash would."""
        self.killed_on_purpose = True
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
        if self.popen is not None:
            self.wait(STOP_GRACE)

    def read(self, which="stderr"):
        path = self.stderr_path if which == "stderr" else self.stdout_path
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_mark(self):
        """Where the stderr log ends now; pass to error_lines(since=...)."""
        try:
            return os.path.getsize(self.stderr_path)
        except FileNotFoundError:
            return 0

    def error_lines(self, since=0):
        """JSON log lines at level error (or worse) written after byte offset `since`."""
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(since)
                text = f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return []
        bad = []
        for line in text.splitlines():
            level = None
            try:
                obj = json.loads(line)
                if isinstance(obj, dict):
                    level = str(obj.get("level", "")).lower()
            except ValueError:
                if '"level":"error"' in line.replace(" ", ""):
                    level = "error"
            if level in ("error", "fatal", "crit", "critical", "panic"):
                bad.append(line)
        return bad

    def sanitizer_lines(self):
        """AddressSanitizer / UndefinedBehaviorSanitizer / LeakSanitizer reports (a
        -DFG_SANITIZE=ON build): never expected."""
        return [line for line in self.read("stderr").splitlines()
                if any(m in line for m in SANITIZER_MARKERS)]

    def tail(self, n=LOG_TAIL_LINES):
        parts = []
        for which in ("stdout", "stderr"):
            lines = self.read(which).splitlines()[-n:]
            if lines:
                parts.append("--- %s %s (last %d lines) ---\n%s"
                             % (self.name, which, len(lines), "\n".join(lines)))
        state = "running" if self.alive() else "exited %r" % (
            self.popen.returncode if self.popen else None)
        return "=== %s (pid %s, %s)\n%s" % (self.name, self.pid, state, "\n".join(parts))


# ---- HTTP ----------------------------------------------------------------------------

class Resp:
    def __init__(self, status, headers, body, will_close, local_port):
        self.status = status
        self.headers = headers
        self.body = body
        self.will_close = will_close
        self.local_port = local_port  # the client socket's port: same port = same connection

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError as e:
            raise AssertionError("response %d is not JSON (%s): %r"
                                 % (self.status, e, self.body[:300]))

    def __repr__(self):
        return "<Resp %d %r>" % (self.status, self.body[:200])


class Client:
    """A keep-alive HTTP/1.1 client to one host:port (http.client, reconnects when the
    server closed the connection)."""

    def __init__(self, port, host="127.0.0.1", timeout=HTTP_TIMEOUT, default_headers=None):
        self.host, self.port, self.timeout = host, port, timeout
        self.default_headers = dict(default_headers or {})
        self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None, chunked=False):
        """One request; returns Resp. A connection error closes the connection (the next
        request opens a new one) and is re-raised."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        hdrs = dict(self.default_headers)
        hdrs.update(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        try:
            self.conn.request(method, path, body=body, headers=hdrs, encode_chunked=chunked)
            local_port = self.conn.sock.getsockname()[1] if self.conn.sock else None
            r = self.conn.getresponse()
            data = r.read()
            resp = Resp(r.status, r.headers, data, r.will_close, local_port)
            if r.will_close:
                self.close()
            return resp
        except Exception:
            self.close()
            raise

    def get(self, path, **kw):
        return self.request("GET", path, **kw)


def one_shot(port, method, path, timeout=2.0, **kw):
    """One request on a fresh connection that is closed afterwards."""
    cl = Client(port, timeout=timeout)
    try:
        return cl.request(method, path, **kw)
    finally:
        cl.close()


def raw_request(port, data, timeout=HTTP_TIMEOUT, host="127.0.0.1"):
    """Send raw bytes (ignoring a send error: the server may answer early and close), then
    read one response. Returns Resp. For requests http.client would not send."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = http.client.HTTPResponse(s, method="GET")
        r.begin()
        body = r.read()
        return Resp(r.status, r.headers, body, r.will_close, s.getsockname()[1])
    finally:
        s.close()


class _SharedReader:
    """One buffered reader shared by successive HTTPResponse objects (each would otherwise
    make its own buffer and swallow the next response's bytes); close() is a no-op."""

    def __init__(self, f):
        self._f = f

    def __getattr__(self, name):
        return getattr(self._f, name)

    def close(self):
        pass


def read_responses(sock, methods):
    """Read len(methods) responses in order from one socket (pipelining); returns Resps."""
    shared = _SharedReader(sock.makefile("rb"))

    class _Sock:
        def makefile(self, *a, **kw):
            return shared

    out = []
    for m in methods:
        r = http.client.HTTPResponse(_Sock(), method=m)
        r.begin()
        out.append(Resp(r.status, r.headers, r.read(), r.will_close, sock.getsockname()[1]))
    return out


# ---- a gateway under test ------------------------------------------------------------

class Origin(Proc):
    port = None


class DataPlane(Proc):
    dp_id = port = status_port = control = None


class ControlPlane(Proc):
    admin_port = db = socket_path = token = None


class Cluster:
    """Origins, one control plane and data planes in one temporary directory."""

    def __init__(self, label="fg"):
        require_binaries()
        self.tmp = tempfile.mkdtemp(prefix="fg-%s-" % label)
        self.token = "test-" + secrets.token_hex(16)
        # The data plane secret every ctl and dp of this cluster is given (--dp-secret-file)
        # unless a test passes its own --dp-secret-file.
        self.dp_secret = "dps-" + secrets.token_hex(16)
        self.dp_secret_file = os.path.join(self.tmp, "dp.secret")
        fd = os.open(self.dp_secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.dp_secret + "\n")
        self.procs = []
        self.origins = {}
        self.ctl = None
        self.dps = {}
        self._admin = None
        self._clients = {}

    # -- lifecycle ---------------------------------------------------------------------
    def close(self):
        for c in self._clients.values():
            c.close()
        self._clients.clear()
        if self._admin is not None:
            self._admin.close()
        for p in reversed(self.procs):
            p.stop()
        if os.environ.get("FG_KEEP_TMP"):
            sys.stderr.write("harness: kept %s\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def context(self):
        """Log tails of every process, for failure messages."""
        return "\n".join(p.tail() for p in self.procs) + "\n(tmp dir %s)" % self.tmp

    def poll(self, probe, what, timeout=PROPAGATE_TIMEOUT, interval=POLL_INTERVAL):
        return poll(probe, what, timeout, interval, context=self.context)

    def _track(self, proc):
        self.procs.append(proc)
        return proc

    # -- origin ------------------------------------------------------------------------
    def start_origin(self, name, port=0, host="127.0.0.1"):
        """Start origin `name` on host:port (port 0: a free one; give an old port to restart
        an origin there); host may be an IPv6 address."""
        listen = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
        o = Origin("origin-" + name, [sys.executable, "-B", ORIGIN_PY, "--listen",
                                      listen, "--name", name], self.tmp)
        o.host = host
        self._track(o).start()

        def listening():
            if not o.alive():
                raise AssertionError("origin exited")
            for line in o.read("stdout").splitlines():
                if line.startswith("listening "):
                    return int(line.split()[1].rsplit(":", 1)[1])
            return None

        o.port = self.poll(listening, "origin %s to listen" % name, START_TIMEOUT)
        self.origins[name] = o
        return o

    def origin_url(self, name):
        o = self.origins[name]
        host = getattr(o, "host", "127.0.0.1")
        return "http://%s:%d" % ("[%s]" % host if ":" in host else host, o.port)

    # -- control plane -----------------------------------------------------------------
    def start_ctl(self, db=None, socket_path=None, admin_port=None, use_env_token=True,
                  name="ctl", wait=True, extra_args=()):
        db = db or os.path.join(self.tmp, "ctl", "flexgate.db")
        os.makedirs(os.path.dirname(db), exist_ok=True)
        socket_path = socket_path or os.path.join(self.tmp, "ctl.sock")
        admin_port = admin_port or free_port()
        env = dict(os.environ)
        env.pop("FLEXGATE_ADMIN_TOKEN", None)
        env.pop("FLEXGATE_DP_SECRET", None)
        if use_env_token:
            env["FLEXGATE_ADMIN_TOKEN"] = self.token
        argv = [CTL_BIN, "serve", "--db", db, "--admin-listen", "127.0.0.1:%d" % admin_port,
                "--socket", "unix:" + socket_path, "--log-level", "info"] + list(extra_args)
        if "--dp-secret-file" not in extra_args:
            argv += ["--dp-secret-file", self.dp_secret_file]
        ctl = ControlPlane(name, argv, self.tmp, env=env)
        ctl.admin_port, ctl.db, ctl.socket_path = admin_port, db, socket_path
        ctl.token = self.token if use_env_token else None
        self._track(ctl).start()
        self.ctl = ctl
        if self._admin is not None:
            self._admin.close()
        self._admin = Client(admin_port)
        if wait:
            self.wait_ctl_ready()
        return ctl

    def wait_ctl_ready(self):
        ctl = self.ctl

        def ready():
            if not ctl.alive():
                raise AssertionError("flexgate-ctl exited with %r" % ctl.popen.returncode)
            return one_shot(ctl.admin_port, "GET", "/health/ready").status == 200

        self.poll(ready, "flexgate-ctl /health/ready = 200", START_TIMEOUT)

    def api(self, method, path, body=None, token=True, headers=None):
        """An admin API call with the bearer token (token=False: none; a str: that one)."""
        hdrs = dict(headers or {})
        if token is True:
            token = self.ctl.token or self.token
        if token:
            hdrs["Authorization"] = "Bearer " + token
        return self._admin.request(method, path, body=body, headers=hdrs)

    def api_ok(self, method, path, body=None, expect=(200, 201, 204)):
        r = self.api(method, path, body)
        if r.status not in ((expect,) if isinstance(expect, int) else expect):
            raise AssertionError("%s %s -> %d %r, expected %r" % (method, path, r.status,
                                                                 r.body[:500], expect))
        return r

    def route_all_to(self, origin_name):
        """Upstream "backend" at origin `origin_name` and route "all" ("/*") to it."""
        self.api_ok("POST", "/api/v1/upstreams",
                    {"name": "backend", "url": self.origin_url(origin_name)}, expect=201)
        self.api_ok("POST", "/api/v1/routes", {"id": "all", "path": "/*", "upstream": "backend"},
                    expect=201)

    def config_version(self):
        return self.api_ok("GET", "/api/v1/upstreams", expect=200).json()["config_version"]

    def dataplanes(self):
        return self.api_ok("GET", "/api/v1/dataplanes", expect=200).json()

    def wait_in_sync(self, dp_ids, version=None, timeout=PROPAGATE_TIMEOUT):
        """Poll /api/v1/dataplanes until each id is connected, in_sync, at `version` (default:
        the current config version), and config_version equals it. Returns the document."""
        def check():
            doc = self.dataplanes()
            want = version if version is not None else doc.get("config_version")
            if doc.get("config_version") != want:
                return None
            by_id = {d.get("id"): d for d in doc.get("items", [])}
            for i in dp_ids:
                d = by_id.get(i)
                if not d or d.get("connected") is not True or d.get("status") != "in_sync" \
                        or d.get("applied_version") != want:
                    return None
            return doc

        return self.poll(check, "data planes %s in_sync at version %s in /api/v1/dataplanes"
                         % (list(dp_ids), version if version is not None else "current"),
                         timeout)

    # -- data planes -------------------------------------------------------------------
    def start_dp(self, dp_id, socket_path=None, port=None, status_port=None, wait_ready=True,
                 extra_args=()):
        socket_path = socket_path or (self.ctl.socket_path if self.ctl else
                                      os.path.join(self.tmp, "ctl.sock"))
        port = port or free_port()
        status_port = status_port or free_port()
        argv = [DP_BIN, "--control", "unix:" + socket_path, "--listen", "127.0.0.1:%d" % port,
                "--status-listen", "127.0.0.1:%d" % status_port, "--id", dp_id,
                "--log-level", "info"] + list(extra_args)
        if "--dp-secret-file" not in extra_args:
            argv += ["--dp-secret-file", self.dp_secret_file]
        if "--workers" not in extra_args:
            argv += ["--workers", "1"]  # one process, no master: tests see its pid and id
        dp = DataPlane(dp_id, argv, self.tmp)
        dp.dp_id, dp.port, dp.status_port, dp.control = dp_id, port, status_port, socket_path
        self._track(dp).start()
        self.dps[dp_id] = dp
        old = self._clients.pop(dp_id, None)
        if old is not None:
            old.close()
        self.wait_dp_live(dp)
        if wait_ready:
            self.wait_dp_ready(dp)
        return dp

    def status(self, dp, path):
        return one_shot(dp.status_port, "GET", path)

    def wait_dp_live(self, dp):
        def live():
            if not dp.alive():
                raise AssertionError("flexgate-dp %s exited with %r" % (dp.dp_id, dp.popen.returncode))
            return self.status(dp, "/health/live").status == 200

        self.poll(live, "flexgate-dp %s /health/live = 200" % dp.dp_id, START_TIMEOUT)

    def wait_dp_ready(self, dp, version=None, timeout=PROPAGATE_TIMEOUT):
        def ready():
            if not dp.alive():
                raise AssertionError("flexgate-dp %s exited with %r" % (dp.dp_id, dp.popen.returncode))
            r = self.status(dp, "/health/ready")
            if r.status != 200:
                return None
            v = r.json().get("config_version")
            return r if version is None or v == version else None

        return self.poll(ready, "flexgate-dp %s /health/ready = 200%s" % (
            dp.dp_id, "" if version is None else " at version %d" % version), timeout)

    def client(self, dp):
        """The shared keep-alive client for data plane `dp` (an id or a DataPlane)."""
        dp = self.dps[dp] if isinstance(dp, str) else dp
        c = self._clients.get(dp.dp_id)
        if c is None or c.port != dp.port:
            c = self._clients[dp.dp_id] = Client(dp.port)
        return c

    def through(self, dp, method, path, **kw):
        return self.client(dp).request(method, path, **kw)

    def wait_served(self, dp_ids, path, check, what, timeout=PROPAGATE_TIMEOUT):
        """Poll GET `path` on each data plane until check(resp) holds on all of them."""
        for i in dp_ids:
            self.poll(lambda: check(self.through(i, "GET", path)),
                      "%s on %s (GET %s)" % (what, i, path), timeout)

    # -- logs --------------------------------------------------------------------------
    def log_marks(self):
        return {p.name: p.log_mark() for p in self.procs}

    def error_lines(self, marks=None, names=None):
        marks = marks or {}
        out = []
        for p in self.procs:
            if isinstance(p, Origin) or (names is not None and p.name not in names):
                continue
            out += ["%s: %s" % (p.name, line) for line in p.error_lines(marks.get(p.name, 0))]
        return out

    def assert_no_sanitizer_reports(self):
        bad = []
        for p in self.procs:
            if not isinstance(p, Origin):
                bad += ["%s: %s" % (p.name, line) for line in p.sanitizer_lines()]
        if bad:
            raise AssertionError("sanitizer reports:\n" + "\n".join(bad[:20]))

    def stop_all_checked(self):
        """Stop every process (SIGTERM) and require each ctl/dp to have exited 0 -- a crash
        (negative status) or a sanitizer's exit code fails -- unless a test killed it."""
        bad = []
        for p in reversed(self.procs):
            rc, forced = p.stop()
            if isinstance(p, Origin) or p.killed_on_purpose:
                continue
            if forced:
                bad.append("%s (pid %s) ignored SIGTERM for %.0fs" % (p.name, p.pid, STOP_GRACE))
            elif rc != 0:
                bad.append("%s (pid %s) exited with status %r" % (p.name, p.pid, rc))
        if bad:
            raise AssertionError("unclean exits: %s\n%s" % ("; ".join(bad), self.context()))
        self.assert_no_sanitizer_reports()

    def assert_no_error_logs(self, marks=None, names=None):
        """No "level":"error" line in the ctl and dp logs (since `marks`)."""
        bad = self.error_lines(marks, names)
        if bad:
            raise AssertionError("unexpected error lines in logs:\n" + "\n".join(bad[:20]))


def is_origin_json(resp, origin=None, path=None):
    """True when resp is a 200 carrying the test origin's JSON (from `origin`, for `path`)."""
    if resp.status != 200:
        return False
    try:
        body = json.loads(resp.body)
    except ValueError:
        return False
    if not isinstance(body, dict) or "origin" not in body:
        return False
    if origin is not None and body["origin"] != origin:
        return False
    if path is not None and body.get("path") != path:
        return False
    return True


def error_code(resp):
    """error.code of a JSON error body, or None."""
    try:
        return resp.json()["error"]["code"]
    except (AssertionError, KeyError, TypeError):
        return None


class ClusterTest(unittest.TestCase):
    """Base: a fresh Cluster per test (self.c), closed afterwards; each test must leave no
    "level":"error" line in ctl/dp logs unless it sets self.expect_error_logs = True."""

    expect_error_logs = False
    label = "test"

    def setUp(self):
        self.expect_error_logs = type(self).expect_error_logs
        self.c = Cluster(self.label)
        self.addCleanup(self.c.close)

    def tearDown(self):
        # Stop the processes first so that exit-time reports (LeakSanitizer) are in the logs.
        self.c.stop_all_checked()
        if not self.expect_error_logs:
            self.c.assert_no_error_logs()

    def start_standard(self, n_dps=2, origin="A"):
        """Origin `origin`, a ctl, and n data planes dp-a, dp-b, ... all ready (the data
        planes are ready once they applied the initial snapshot)."""
        self.c.start_origin(origin)
        self.c.start_ctl()
        self.c.api_ok("POST", "/api/v1/upstreams",
                      {"name": "backend", "url": self.c.origin_url(origin), "timeout": 5000,
                       "retries": 0}, expect=201)
        ids = ["dp-" + chr(ord("a") + i) for i in range(n_dps)]
        for i in ids:
            self.c.start_dp(i)
        return ids


class SharedClusterTest(unittest.TestCase):
    """Base: one Cluster for the whole class (cls.c), set up by cls.build(c); every process is
    stopped and checked (clean exits, no sanitizer report) after the last test."""

    label = "shared"

    @classmethod
    def build(cls, c):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        c = cls.c = Cluster(cls.label)
        try:
            cls.build(c)
        except BaseException:
            c.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.c.stop_all_checked()
        finally:
            cls.c.close()


def main():
    """unittest.main with verbose output; exits non-zero on failure."""
    unittest.main(verbosity=2)


# ---- Redis -----------------------------------------------------------------------------

REDIS_BIN = shutil.which("redis-server") or "/usr/bin/redis-server"


class Redis(Proc):
    """A real redis-server on a free loopback port, without persistence. start() returns
    once it answers PING; kill() ends it as a crash would, and start() again brings it back
    on the same port, empty. `url` is its redis:// URL. Use start_redis(cluster) so the
    cluster stops it with the rest."""

    def __init__(self, logdir, port=None, name="redis", args=()):
        self.port = port or free_port()
        argv = [REDIS_BIN, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--dir", logdir] + list(args)
        super().__init__(name, argv, logdir)
        self.url = "redis://127.0.0.1:%d/0" % self.port

    def command(self, *args, timeout=1.0):
        """One RESP command on a fresh connection; the raw reply text (for checks)."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            return s.recv(65536).decode("utf-8", "replace")
        finally:
            s.close()

    def ping(self):
        try:
            # "-NOAUTH" still proves the server answers (a --requirepass instance).
            return self.command("PING").startswith(("+PONG", "-NOAUTH"))
        except OSError:
            return False

    def start(self):
        super().start()

        def up():
            if not self.alive():
                raise AssertionError("redis-server exited:\n%s" % self.tail())
            return self.ping()

        poll(up, "redis-server on port %d answers PING" % self.port, START_TIMEOUT)
        return self


def start_redis(cluster, port=None, name="redis", args=()):
    """A running Redis tracked by `cluster` (stopped with it); `args` go to redis-server
    ("--requirepass", "pw"). Without a password its PING is checked."""
    return cluster._track(Redis(cluster.tmp, port=port, name=name, args=args)).start()
