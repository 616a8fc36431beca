#!/usr/bin/env python3
"""reliability.py - FlexGate under faults, with a count of every request (issue 9).

One cluster on loopback -- a control plane, three data planes (dp-1..dp-3, one process
each), a test origin "A" behind the catch-all route and an origin "H" whose /hang never
answers -- carries steady keep-alive load (load.py) to all three data planes while each
fault of the FAULTS table is injected in turn. For each fault the report says how many
requests were sent, succeeded and failed, and why each failure happened; a failure passes
only when the fault itself must cause it (the fault's `explain` names the reason: in
flight on a process that was killed, sent to it while it was down, a 504 from the hanging
upstream). After every fault the data planes must converge on the control plane's current
config version (GET /api/v1/dataplanes: all in_sync), and nothing changed may be lost.

Faults (run in this order):
  ctl-kill9-restart   SIGKILL flexgate-ctl right after a change it acknowledged, keep the
                      load going, restart it on the same database and socket: the change
                      is there and reaches every data plane, and so does the next: 0
                      failures.
  dp-kill9            SIGKILL dp-3 and restart it: clients of dp-1/dp-2 see no failure;
                      dp-3's failures are only those in flight at the kill or sent while it
                      was down or not yet ready.
  upstream-hang       requests to a route whose upstream never answers get 504 after its
                      timeout (500 ms), counted as expected; every other request succeeds.
  config-churn-1000   1,000 config changes (REST PUTs) as fast as they commit, under load: 0
                      failures, 1,000 consecutive versions, every data plane applies the last
                      one and serves what it says.
  config-nack         a snapshot the data planes refuse (a route naming a missing upstream,
                      correct checksum), sent by a fake control plane (tests/tools/
                      fake_ctl.py) on the real one's socket -- the real one validates with
                      the same code, so it never sends one: every data plane NACKs it and
                      keeps serving the previous version with 0 failures; the real control
                      plane comes back and the next change converges.
  redis-kill          a route rate-limited through a real redis-server (a limit far above
                      the load); Redis killed -9 under load, restarted empty on its port:
                      0 failures (the data planes decide locally meanwhile), every data
                      plane's /health/ready checks.redis goes DOWN and back UP, and the new
                      Redis holds the limiter's buckets again.
  target-kill         an upstream of two origins (retries 1, active checks, passive ejection);
                      one killed -9 under load and restarted on its port: 0 failures (GETs
                      are retried on the other target; only a request whose response had
                      begun on the killed one may fail, and is named), and the restarted
                      origin serves again.
Soak: the same load plus one config change a second for --soak-seconds; RSS and open fds of
every process are sampled each second and must stay flat after a warm-up (RSS is reported
but not judged in a sanitizer build, whose allocator quarantine grows by design).

    tests/reliability/reliability.py --mode short            # `make test` (ctest), < 2 min
    tests/reliability/reliability.py --mode long --soak-seconds 3600 --report r.json
    FG_BUILD_DIR=build-asan tests/reliability/reliability.py --mode short

Exit status 0 when every fault run passed, 1 otherwise. Environment as for the integration
tests (FG_BUILD_DIR, FG_SOURCE_DIR, FG_KEEP_TMP); FG_SANITIZED=ON marks a sanitizer build.
"""

import argparse
import json
import os
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import load  # noqa: E402
import fake_ctl  # noqa: E402  (tests/tools, put on sys.path by harness)

DP_IDS = ("dp-1", "dp-2", "dp-3")
VICTIM_DP = "dp-3"
HANG_TIMEOUT_MS = 500        # the hanging upstream's timeout: its requests end in 504 then
HANG_504_MAX_S = 5.0         # a 504 later than this is not "after the timeout" any more
CHURN_CHANGES = 1000
CHURN_DEADLINE_S = 180.0     # for all 1,000 changes (ASan builds included)
CONVERGE_TIMEOUT_S = 30.0
REDIS_RL_MAX = 100_000_000  # the redis-kill route's limit a second: far above the load
REDIS_RL_WINDOW_MS = 1000
REDIS_TIMEOUT_MS = 500       # rateLimit.redis.timeoutMs: generous for a loaded (ASan) machine
# target-kill: active checks every 200 ms and passive ejection after 2 failed attempts, so
# the killed target leaves at once and the restarted one comes back within a second.
PAIR_HEALTH_CHECK = {"path": "/health", "interval": 200, "timeout": 1000,
                     "unhealthyThreshold": 2, "healthyThreshold": 1,
                     "consecutiveFailures": 2, "ejectDuration": 500}
PAIR_WARM_REQUESTS = 50      # each target serves this many before one is killed
SOAK_WARMUP_FRACTION = 0.25  # samples before this share of the run are warm-up
SOAK_FD_SLACK = 4            # open fds may grow this much over the warm baseline
SOAK_RSS_SLACK_KB = 4096     # RSS may grow this much ...
SOAK_RSS_SLACK_FRACTION = 0.10  # ... or this share of the warm baseline, whichever is more
MODES = {
    # fault_seconds: how long each fault's exposure lasts under load
    "short": {"fault_seconds": 1.0, "soak_seconds": 8, "threads": 2},
    "long": {"fault_seconds": 10.0, "soak_seconds": 600, "threads": 4},
}


def now():
    return time.monotonic()


class Fault:
    def __init__(self, name, run, expect_error_logs=False):
        self.name, self.run = name, run
        self.expect_error_logs = expect_error_logs


class Suite:
    def __init__(self, opts):
        self.opts = opts
        self.c = harness.Cluster("rel")
        self.restarts = 0

    # ---- cluster --------------------------------------------------------------------
    def setup(self):
        c = self.c
        c.start_origin("A")
        c.start_origin("B")
        c.start_origin("H")
        c.start_ctl()
        for name, origin in (("backend", "A"), ("backend-b", "B")):
            c.api_ok("POST", "/api/v1/upstreams", {"name": name, "url": c.origin_url(origin),
                                                   "timeout": 5000, "retries": 0}, expect=201)
        c.api_ok("POST", "/api/v1/upstreams", {"name": "hanging", "url": c.origin_url("H"),
                                               "timeout": HANG_TIMEOUT_MS, "retries": 0},
                 expect=201)
        c.api_ok("POST", "/api/v1/routes", self.route_all(0), expect=201)
        c.api_ok("POST", "/api/v1/routes", {"id": "hang", "path": "/hang",
                                            "upstream": "hanging"}, expect=201)
        for i in DP_IDS:
            c.start_dp(i)
        c.wait_in_sync(DP_IDS, timeout=CONVERGE_TIMEOUT_S)

    @staticmethod
    def route_all(n):
        """The catch-all route of change n: to origin A when n is even, B when odd, so every
        change is a real one (a new version) and an answer shows which one is served."""
        return {"id": "all", "path": "/*", "upstream": "backend-b" if n % 2 else "backend"}

    def change(self, n):
        """One config change (a REST PUT); returns its config version."""
        r = self.c.api_ok("PUT", "/api/v1/routes/all", self.route_all(n), expect=200)
        return int(r.header("X-Config-Version"))

    def targets(self, ids=DP_IDS):
        return {i: self.c.dps[i].port for i in ids}

    def converge(self):
        """All data planes in_sync at the current version; returns (version, seconds)."""
        t0 = now()
        doc = self.c.wait_in_sync(DP_IDS, timeout=CONVERGE_TIMEOUT_S)
        return doc["config_version"], round(now() - t0, 3)

    def hold(self, seconds, gens, ids=DP_IDS):
        """Keep the fault in place for `seconds` while the load runs, and require progress:
        every data plane in `ids` answered more requests meanwhile."""
        before = {i: sum(g.successes(i) for g in gens) for i in ids}
        t_end = now() + seconds
        self.c.poll(lambda: now() >= t_end and all(
            sum(g.successes(i) for g in gens) > before[i] for i in ids),
            "load progressing on %s during the fault" % list(ids), timeout=seconds + 15)

    def restart_ctl(self):
        old = self.c.ctl
        self.restarts += 1
        return self.c.start_ctl(db=old.db, socket_path=old.socket_path,
                                admin_port=old.admin_port, name="ctl-%d" % self.restarts)

    # ---- running one fault ------------------------------------------------------------
    def run_fault(self, fault):
        c = self.c
        marks = c.log_marks()
        gen = load.LoadGenerator(self.targets(), self.opts["threads"], max_seconds=600).start()
        extra = []
        try:
            c.poll(lambda: all(gen.successes(i) > 0 for i in DP_IDS) or gen.failures,
                   "load running on every data plane")
            explain, details = fault.run(self, gen, extra)
        finally:
            gen.stop()
            for g in extra:
                g.stop()
        version, converge_s = self.converge()
        failures = gen.failures + [f for g in extra for f in g.failures]
        expected, unexpected, examples = load.summarize(failures, explain)
        rep = gen.report()
        for g in extra:
            r2 = g.report()
            for k in ("sent", "succeeded", "failed"):
                rep[k] += r2[k]
            for target, counts in r2["by_target"].items():
                mine = rep["by_target"].setdefault(target, dict.fromkeys(counts, 0))
                for k, n in counts.items():
                    mine[k] += n
        problems = details.pop("problems", [])
        out = {"fault": fault.name, "sent": rep["sent"], "succeeded": rep["succeeded"],
               "failed": rep["failed"], "failed_expected": expected,
               "failed_unexpected": unexpected, "by_target": rep["by_target"],
               "p99_ms": rep["p99_ms"], "seconds": rep["seconds"],
               "converged_version": version, "converge_s": converge_s}
        out.update(details)
        if unexpected:
            problems.append("unexpected failures: %s; e.g. %s" % (unexpected, examples))
        if rep["succeeded"] == 0:
            problems.append("no request succeeded")
        # A fault that kills or refuses nothing must not make anything log an error.
        if not fault.expect_error_logs:
            problems += ["error logged: %s" % line for line in c.error_lines(marks)[:5]]
        out["result"] = "FAIL" if problems else "pass"
        if problems:
            out["problems"] = problems
        return out


# ---- the faults -------------------------------------------------------------------------

def no_failure_expected(_f):
    return None


def fault_ctl_kill(s, gen, extra):
    old = s.c.ctl
    # A change acknowledged just before the crash (likely not yet pushed) must survive it.
    committed = s.change(1)
    t_kill = now()
    old.kill()
    s.hold(s.opts["fault_seconds"], [gen])
    down_s = now() - t_kill
    s.restart_ctl()
    problems = []
    after = s.c.config_version()
    if after != committed:
        problems.append("version %d acknowledged before the kill, %d after the restart"
                        % (committed, after))
    s.c.wait_in_sync(DP_IDS, committed, timeout=CONVERGE_TIMEOUT_S)
    version = s.change(2)
    s.c.wait_in_sync(DP_IDS, version, timeout=CONVERGE_TIMEOUT_S)
    return no_failure_expected, {"ctl_down_s": round(down_s, 3), "problems": problems}


def fault_dp_kill(s, gen, extra):
    c = s.c
    dp = c.dps[VICTIM_DP]
    port, status_port = dp.port, dp.status_port
    others = [i for i in DP_IDS if i != VICTIM_DP]
    t_kill = now()
    dp.kill()
    s.hold(s.opts["fault_seconds"], [gen], others)
    c.start_dp(VICTIM_DP, port=port, status_port=status_port)
    t_ready = now()
    before = gen.successes(VICTIM_DP)
    c.poll(lambda: gen.successes(VICTIM_DP) > before, "clients of %s served again" % VICTIM_DP)

    def explain(f):
        if f.target != VICTIM_DP:
            return None
        if f.t_start <= t_kill <= f.t_end:
            return "in flight on %s when it was killed" % VICTIM_DP
        if t_kill <= f.t_start <= t_ready:
            return "sent to %s while it was down or restarting" % VICTIM_DP
        return None

    return explain, {"victim": VICTIM_DP, "victim_down_s": round(t_ready - t_kill, 3)}


def fault_upstream_hang(s, gen, extra):
    # One more client per data plane, asking only for the hanging route.
    hang = load.LoadGenerator(s.targets(), 1, path="/hang", expect=lambda r: False,
                              max_seconds=600).start()
    extra.append(hang)
    s.hold(s.opts["fault_seconds"], [gen])
    s.c.poll(lambda: len(hang.failures) >= len(DP_IDS), "hanging requests answered")

    def explain(f):
        if f.path != "/hang":
            return None
        took = f.t_end - f.t_start
        if f.reason == "HTTP 504 gateway_timeout" and took <= HANG_504_MAX_S:
            return "upstream hangs: 504 after its %d ms timeout" % HANG_TIMEOUT_MS
        return None

    return explain, {"hang_requests": len(hang.failures)}


def fault_config_churn(s, gen, extra):
    c = s.c
    v0 = c.config_version()
    deadline = now() + CHURN_DEADLINE_S
    versions = []
    t0 = now()
    for i in range(1, CHURN_CHANGES + 1):
        if now() > deadline:
            raise AssertionError("%d changes within %.0f s" % (CHURN_CHANGES, CHURN_DEADLINE_S))
        versions.append(s.change(i))
    push_s = now() - t0
    problems = []
    if versions != list(range(v0 + 1, v0 + CHURN_CHANGES + 1)):
        problems.append("versions not consecutive from %d: %s..." % (v0 + 1, versions[:5]))
    t1 = now()
    c.wait_in_sync(DP_IDS, versions[-1], timeout=CONVERGE_TIMEOUT_S)
    settle_s = now() - t1
    # The last change is what every data plane serves (nothing lost, nothing stale).
    last = "B" if CHURN_CHANGES % 2 else "A"
    for i in DP_IDS:
        r = harness.one_shot(c.dps[i].port, "GET", "/check/churn")
        got = r.json().get("origin") if r.status == 200 else r
        if got != last:
            problems.append("%s answers from origin %r after the last change, want %r"
                            % (i, got, last))
    return no_failure_expected, {"changes": CHURN_CHANGES,
                                 "changes_per_s": round(CHURN_CHANGES / push_s, 1),
                                 "settle_s": round(settle_s, 3), "problems": problems}


class NackingCtl(fake_ctl.FakeCtl):
    """tests/tools/fake_ctl.py's server side of the protocol, for every data plane at once:
    each one that says HELLO gets `payload` as its SNAPSHOT; replies are kept per dp_id."""

    def __init__(self, socket_path, payload):
        super().__init__(socket_path)
        self.payload = payload
        self.ids, self.replies, self.all_conns = {}, {}, []

    def _accept_loop(self):
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(0.2)
            self.all_conns.append(conn)
            t = threading.Thread(target=self._read_loop, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _on_frame(self, conn, msg_type, payload):
        super()._on_frame(conn, msg_type, payload)
        body = self.frames[-1][2]
        if msg_type == fake_ctl.HELLO:
            self.ids[conn] = body.get("dp_id")
            self._send_all(conn, fake_ctl.encode_frame(fake_ctl.SNAPSHOT, self.payload))
        elif msg_type in (fake_ctl.ACK, fake_ctl.NACK):
            self.replies[self.ids.get(conn)] = (fake_ctl.TYPE_NAMES[msg_type], body)

    def close(self):
        super().close()
        for conn in self.all_conns:
            fake_ctl._close_quietly(conn)


def fault_config_nack(s, gen, extra):
    """The control plane's validator is the data planes' own, so it never stores a snapshot
    they refuse; a control plane that sent one (a bug, a corrupted store) is played by
    NackingCtl on the real one's socket: a route naming an upstream that does not exist,
    with the correct checksum."""
    c = s.c
    v_good = c.config_version()
    snap = fake_ctl.latest_snapshot(c.ctl.db)
    v_bad = v_good + 1
    rc, forced = c.ctl.stop()
    problems = [] if (rc, forced) == (0, False) else ["ctl stop: rc %r forced %r" % (rc, forced)]
    fake = NackingCtl(c.ctl.socket_path, fake_ctl.with_unknown_upstream(snap, v_bad)).start()
    try:
        replies = c.poll(lambda: len(fake.replies) == len(DP_IDS) and fake.replies,
                         "every data plane answers the bad snapshot", timeout=CONVERGE_TIMEOUT_S)
        for i in DP_IDS:
            kind, body = replies.get(i, (None, None))
            if kind != "NACK" or body.get("version") != v_bad or \
                    "upstream" not in str(body.get("error")):
                problems.append("%s answered %s %r, want NACK of %d naming the upstream"
                                % (i, kind, body, v_bad))
            ready = c.status(c.dps[i], "/health/ready")
            if ready.status != 200 or ready.json().get("config_version") != v_good:
                problems.append("%s not serving version %d after the NACK: %r"
                                % (i, v_good, ready))
        s.hold(s.opts["fault_seconds"], [gen])
    finally:
        fake.close()
    s.restart_ctl()
    version = s.change(v_bad)
    c.wait_in_sync(DP_IDS, version, timeout=CONVERGE_TIMEOUT_S)
    return no_failure_expected, {"nacked_version": v_bad, "kept_version": v_good,
                                 "problems": problems}


def metric_total(c, name):
    """A counter without labels from /metrics, summed over the data planes."""
    total = 0
    for i in DP_IDS:
        lines = c.status(c.dps[i], "/metrics").body.decode().splitlines()
        value = next((line.split()[1] for line in lines if line.startswith(name + " ")), None)
        if value is None:
            raise AssertionError("%s missing from %s's /metrics" % (name, i))
        total += int(float(value))
    return total


def wait_redis_check(c, want):
    """Every data plane's /health/ready says checks.redis = want; returns the seconds it took."""
    t0 = now()
    for i in DP_IDS:
        c.poll(lambda: c.status(c.dps[i], "/health/ready").json()["checks"]["redis"] == want,
               "%s /health/ready checks.redis = %s" % (i, want), timeout=CONVERGE_TIMEOUT_S)
    return round(now() - t0, 3)


def fault_redis_kill(s, gen, extra):
    """A route limited through Redis, far above what the load sends, so every request must
    pass; Redis is killed -9 under that load and restarted empty on its port. The data planes
    decide locally meanwhile (seed "Redis Down": 0 failures), /health/ready says so, and they
    go back to Redis (the new instance holds their buckets)."""
    c = s.c
    redis = harness.start_redis(c)
    saved = c.api_ok("GET", "/api/v1/settings/rateLimit", expect=200).json()
    c.api_ok("PUT", "/api/v1/settings/rateLimit",
             {"backend": "redis", "redis": {"url": redis.url, "timeoutMs": REDIS_TIMEOUT_MS}})
    c.api_ok("POST", "/api/v1/routes", {"id": "limited", "path": "/limited/*",
                                        "upstream": "backend", "rateLimit": {
                                            "max": REDIS_RL_MAX, "windowMs": REDIS_RL_WINDOW_MS}},
             expect=201)
    c.wait_in_sync(DP_IDS, timeout=CONVERGE_TIMEOUT_S)
    wait_redis_check(c, "UP")
    limit = str(REDIS_RL_MAX)

    def limited_ok(r):  # the origin's answer, and the limiter decided it
        return load.origin_ok(r) and r.header("RateLimit-Limit") == limit

    lim = load.LoadGenerator(s.targets(), s.opts["threads"], expect=limited_ok,
                             path=lambda i, n: "/limited/%d/%d" % (i, n), max_seconds=600)
    extra.append(lim.start())
    c.poll(lambda: all(lim.successes(i) > 0 for i in DP_IDS) or lim.failures,
           "limited load running on every data plane")
    fallbacks = metric_total(c, "flexgate_ratelimit_fallbacks_total")
    t_kill = now()
    redis.kill()
    down_after_s = wait_redis_check(c, "DOWN")
    s.hold(s.opts["fault_seconds"], [gen, lim])
    redis.start()  # same port, empty
    down_s = now() - t_kill
    up_after_s = wait_redis_check(c, "UP")
    # Decisions reach the new instance: it holds the route's bucket again.
    c.poll(lambda: "fg:rl:" in redis.command("KEYS", "fg:rl:*"),
           "the restarted Redis holding the limiter's buckets")
    s.hold(s.opts["fault_seconds"] / 2, [gen, lim])
    fallbacks = metric_total(c, "flexgate_ratelimit_fallbacks_total") - fallbacks
    problems = []
    if fallbacks < len(DP_IDS):
        problems.append("%d switches to local buckets counted, want one per data plane"
                        % fallbacks)
    lim.stop()
    c.api_ok("DELETE", "/api/v1/routes/limited", expect=204)
    c.api_ok("PUT", "/api/v1/settings/rateLimit", saved)
    c.wait_in_sync(DP_IDS, timeout=CONVERGE_TIMEOUT_S)
    wait_redis_check(c, "DISABLED")  # off Redis before it stops: no reconnect attempts
    redis.stop()
    return no_failure_expected, {"redis_down_s": round(down_s, 3),
                                 "ready_down_after_s": down_after_s,
                                 "ready_up_after_s": up_after_s,
                                 "limited_requests": lim.report()["sent"],
                                 "fallbacks": fallbacks, "problems": problems}


def fault_target_kill(s, gen, extra):
    """An upstream over two origins (retries 1, active checks and passive ejection); one is
    killed -9 under load and restarted on its port. GETs are idempotent, so a request whose
    attempt dies on the killed target is retried on the other: 0 failures, except a request
    whose response had begun on it (never retried), which the report names. The restarted
    origin gets traffic again."""
    c = s.c
    for name in ("T1", "T2"):
        c.start_origin(name)
    c.api_ok("POST", "/api/v1/upstreams", {
        "name": "pair", "targets": [{"url": c.origin_url("T1")}, {"url": c.origin_url("T2")}],
        "timeout": 5000, "retries": 1, "healthCheck": PAIR_HEALTH_CHECK}, expect=201)
    c.api_ok("POST", "/api/v1/routes", {"id": "pair", "path": "/pair/*", "upstream": "pair"},
             expect=201)
    c.wait_in_sync(DP_IDS, timeout=CONVERGE_TIMEOUT_S)
    last_seen, served = {}, {}
    lock = threading.Lock()

    def pair_ok(r):  # which origin answered, and when (the load's threads call this)
        if not load.origin_ok(r):
            return False
        name = r.json()["origin"]
        with lock:
            last_seen[name] = now()
            served[name] = served.get(name, 0) + 1
        return True

    pair = load.LoadGenerator(s.targets(), s.opts["threads"], expect=pair_ok,
                              path=lambda i, n: "/pair/%d/%d" % (i, n), max_seconds=600)
    extra.append(pair.start())
    # Both targets in steady use (pooled connections to each on every data plane) first.
    c.poll(lambda: min(served.get("T1", 0), served.get("T2", 0)) >= PAIR_WARM_REQUESTS
           or pair.failures, "both targets serving the pair's load")
    retries = metric_total(c, "flexgate_retries_total")
    victim = c.origins["T2"]
    port = victim.port
    t_kill = now()
    victim.kill()
    t_killed = now()
    s.hold(s.opts["fault_seconds"], [gen, pair])
    with lock:
        served_while_down = {k: v for k, v in served.items()}
    c.start_origin("T2-back", port=port)
    t_back = now()
    c.poll(lambda: last_seen.get("T2-back", 0) > t_back,
           "the restarted target serving the pair's load again", timeout=CONVERGE_TIMEOUT_S)
    back_after_s = round(now() - t_back, 3)
    s.hold(s.opts["fault_seconds"] / 2, [gen, pair])
    pair.stop()
    retries = metric_total(c, "flexgate_retries_total") - retries
    c.api_ok("DELETE", "/api/v1/routes/pair", expect=204)
    c.api_ok("DELETE", "/api/v1/upstreams/pair", expect=204)

    def explain(f):
        if f.path.startswith("/pair/") and f.t_start <= t_killed and f.t_end >= t_kill \
                and not f.reason.startswith("HTTP 5"):
            return "in flight on the killed target, its response begun (not retried)"
        return None

    return explain, {"target_down_s": round(t_back - t_kill, 3), "back_after_s": back_after_s,
                     "retries": retries, "pair_served": dict(served),
                     "served_until_restart": served_while_down}


FAULTS = [
    Fault("ctl-kill9-restart", fault_ctl_kill, expect_error_logs=True),
    Fault("dp-kill9", fault_dp_kill, expect_error_logs=True),
    Fault("upstream-hang", fault_upstream_hang),
    Fault("config-churn-1000", fault_config_churn),
    Fault("config-nack", fault_config_nack, expect_error_logs=True),
    Fault("redis-kill", fault_redis_kill),
    Fault("target-kill", fault_target_kill),
]


# ---- soak -------------------------------------------------------------------------------

def proc_sample(pid):
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return rss, len(os.listdir("/proc/%d/fd" % pid))


def soak(s, seconds):
    c = s.c
    procs = {"ctl": c.ctl}
    procs.update({i: c.dps[i] for i in DP_IDS})
    gen = load.LoadGenerator(s.targets(), s.opts["threads"], max_seconds=seconds + 120).start()
    samples = {name: [] for name in procs}
    changes = 0
    t0 = now()
    try:
        for tick in range(1, int(seconds) + 1):
            s.change(tick)
            changes += 1
            for name, p in procs.items():
                samples[name].append(proc_sample(p.pid))
            # Pace to one change and one sample per second (the load never pauses).
            gen.stopping.wait(max(0.0, t0 + tick - now()))
    finally:
        gen.stop()
    version, converge_s = s.converge()
    after = {name: proc_sample(p.pid) for name, p in procs.items()}
    sanitized = os.environ.get("FG_SANITIZED", "").upper() in ("ON", "1", "TRUE")
    warm = max(1, int(len(samples["ctl"]) * SOAK_WARMUP_FRACTION))
    problems, figures = [], {}
    # Growth is what a leak looks like; compare samples taken under the same load (the
    # last one during it), then require that stopping the load gives the fds back.
    for name, series in samples.items():
        base_rss, base_fds = series[warm - 1]
        last_rss, last_fds = series[-1]
        figures[name] = {"rss_kb": [base_rss, last_rss], "fds": [base_fds, last_fds],
                         "after_load": {"rss_kb": after[name][0], "fds": after[name][1]}}
        if last_fds - base_fds > SOAK_FD_SLACK:
            problems.append("%s fds %d -> %d under load" % (name, base_fds, last_fds))
        if after[name][1] > base_fds + SOAK_FD_SLACK:
            problems.append("%s holds %d fds after the load stopped (%d during it)"
                            % (name, after[name][1], base_fds))
        slack = max(SOAK_RSS_SLACK_KB, int(base_rss * SOAK_RSS_SLACK_FRACTION))
        if not sanitized and last_rss - base_rss > slack:
            problems.append("%s RSS %d kB -> %d kB (> %d kB growth)"
                            % (name, base_rss, last_rss, slack))
    expected, unexpected, examples = load.summarize(gen.failures, no_failure_expected)
    if unexpected:
        problems.append("failures during the soak: %s; e.g. %s" % (unexpected, examples))
    rep = gen.report()
    out = {"fault": "soak", "seconds": rep["seconds"], "sent": rep["sent"],
           "succeeded": rep["succeeded"], "failed": rep["failed"],
           "failed_unexpected": unexpected, "config_changes": changes,
           "converged_version": version, "converge_s": converge_s,
           "processes": figures, "rss_judged": not sanitized,
           "result": "FAIL" if problems else "pass"}
    if problems:
        out["problems"] = problems
    return out


# ---- main -------------------------------------------------------------------------------

# The columns every row prints; the rest of a fault's result is its own figures.
ROW_KEYS = {"fault", "result", "sent", "succeeded", "failed", "failed_expected",
            "failed_unexpected", "by_target", "p99_ms", "seconds", "converged_version",
            "converge_s", "problems", "processes", "rss_judged", "config_changes"}


def print_row(r):
    exp = sum(r.get("failed_expected", {}).values())
    print("%-20s %-4s sent %7d  ok %7d  failed %5d (expected %d, unexpected %d)  "
          "converged v%s in %.2fs" % (r["fault"], r["result"], r["sent"], r["succeeded"],
                                      r["failed"], exp, sum(r["failed_unexpected"].values()),
                                      r["converged_version"], r["converge_s"]), flush=True)
    for why, n in sorted(r.get("failed_expected", {}).items()):
        print("    expected   %5d  %s" % (n, why))
    for why, n in sorted(r["failed_unexpected"].items()):
        print("    UNEXPECTED %5d  %s" % (n, why))
    for p in r.get("problems", []):
        print("    PROBLEM    %s" % p)
    details = {k: v for k, v in r.items() if k not in ROW_KEYS}
    if details:
        print("    figures    %s" % json.dumps(details, sort_keys=True))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=sorted(MODES), default="short")
    ap.add_argument("--soak-seconds", type=int, help="soak length (0: no soak)")
    ap.add_argument("--fault-seconds", type=float, help="exposure per fault under load")
    ap.add_argument("--threads", type=int, help="load threads per data plane")
    ap.add_argument("--faults", help="comma-separated subset of: %s"
                    % ", ".join(f.name for f in FAULTS))
    ap.add_argument("--report", help="write the JSON report here")
    args = ap.parse_args()
    opts = dict(MODES[args.mode])
    for k in ("soak_seconds", "fault_seconds", "threads"):
        if getattr(args, k) is not None:
            opts[k] = getattr(args, k)
    wanted = args.faults.split(",") if args.faults else [f.name for f in FAULTS]
    unknown = set(wanted) - {f.name for f in FAULTS}
    if unknown:
        ap.error("unknown faults: %s" % ", ".join(sorted(unknown)))

    suite = Suite(opts)
    results, ok = [], True
    t0 = now()
    try:
        suite.setup()
        for fault in FAULTS:
            if fault.name not in wanted:
                continue
            r = suite.run_fault(fault)
            results.append(r)
            print_row(r)
            ok = ok and r["result"] != "FAIL"
        if opts["soak_seconds"] > 0:
            r = soak(suite, opts["soak_seconds"])
            results.append(r)
            print_row(r)
            for name, fig in r["processes"].items():
                print("    %-6s RSS %s kB, fds %s (after the load: %d)"
                      % (name, " -> ".join(map(str, fig["rss_kb"])),
                         " -> ".join(map(str, fig["fds"])), fig["after_load"]["fds"]))
            ok = ok and r["result"] != "FAIL"
        suite.c.stop_all_checked()
    except Exception:
        ok = False
        sys.stderr.write(suite.c.context() + "\n")
        raise
    finally:
        suite.c.close()
        if args.report:
            with open(args.report, "w") as f:
                json.dump({"mode": args.mode, "options": opts, "ok": ok,
                           "seconds": round(now() - t0, 1), "results": results}, f, indent=1)
    print("reliability %s: %s in %.1fs" % (args.mode, "PASS" if ok else "FAIL", now() - t0))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
