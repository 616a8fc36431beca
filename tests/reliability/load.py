"""load.py - a bounded keep-alive load generator on loopback for the reliability suite.

Each worker thread sends GETs over one keep-alive connection (tests/integration/harness.py's
Client, which reconnects after a failure) to one data plane, one request in flight at a
time, until it is stopped, hits its request cap, or its deadline passes. Every request is
counted; every failure is kept with its time, target, path and reason (HTTP status and
error code, or the exception), so the suite can explain each one against the fault that was
injected. A success is a 200 carrying the test origin's JSON, or what the path's `expect`
function accepts.

The counting mirrors tests/bench/load_client.py's report (requests, ok, errors) with the
reasons added: {"sent", "succeeded", "failed", "by_target": {...}, "failures": [...]}.
"""

import json
import threading
import time

import harness

MAX_REQUESTS_PER_THREAD = 2_000_000  # a cap far above any run, so every loop is bounded
PACE_AFTER_ERROR_S = 0.01            # after a connection error: do not spin on a dead port
MAX_FAILURES_KEPT = 100_000          # detail kept per generator; counts stay exact past it


class Failure:
    __slots__ = ("t_start", "t_end", "target", "path", "reason")

    def __init__(self, t_start, t_end, target, path, reason):
        self.t_start, self.t_end, self.target, self.path, self.reason = (
            t_start, t_end, target, path, reason)

    def as_dict(self):
        return {"t_start": round(self.t_start, 3), "t_end": round(self.t_end, 3),
                "target": self.target, "path": self.path, "reason": self.reason}


def origin_ok(resp):
    return harness.is_origin_json(resp)


def describe(resp):
    code = harness.error_code(resp) if resp.body[:1] == b"{" else None
    return "HTTP %d%s" % (resp.status, " " + code if code else "")


class Worker(threading.Thread):
    def __init__(self, gen, target, port, index, path, expect, timeout):
        super().__init__(name="load-%s-%d" % (target, index), daemon=True)
        self.gen, self.target, self.index = gen, target, index
        self.path, self.expect = path, expect
        self.client = harness.Client(port, timeout=timeout)
        self.sent = self.ok = self.failed = 0
        self.durations = []  # of successful requests, seconds (sampled: every 16th)

    def run(self):
        g = self.gen
        try:
            for n in range(MAX_REQUESTS_PER_THREAD):
                if g.stopping.is_set() or time.monotonic() >= g.deadline:
                    break
                path = self.path(self.index, n) if callable(self.path) else self.path
                t0 = time.monotonic()
                self.sent += 1
                try:
                    r = self.client.get(path)
                except Exception as e:  # noqa: BLE001 - every failure is counted
                    self.fail(t0, path, "%s: %s" % (type(e).__name__, e))
                    g.stopping.wait(PACE_AFTER_ERROR_S)
                    continue
                if self.expect(r):
                    self.ok += 1
                    if n % 16 == 0:
                        self.durations.append(time.monotonic() - t0)
                else:
                    self.fail(t0, path, describe(r))
        finally:
            self.client.close()

    def fail(self, t0, path, reason):
        self.failed += 1
        with self.gen.lock:
            if len(self.gen.failures) < MAX_FAILURES_KEPT:
                self.gen.failures.append(Failure(t0, time.monotonic(), self.target, path,
                                                 reason))


class LoadGenerator:
    """Threads sending to data planes. targets: {name: port}; `path` a string or
    f(thread_index, n) -> path; `expect(resp)` -> bool decides success."""

    def __init__(self, targets, threads_per_target=2, path=None, expect=origin_ok,
                 max_seconds=600.0, timeout=harness.HTTP_TIMEOUT):
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.failures = []
        self.deadline = time.monotonic() + max_seconds
        path = path or (lambda i, n: "/load/%d/%d" % (i, n))
        self.workers = [Worker(self, name, port, i, path, expect, timeout)
                        for name, port in targets.items() for i in range(threads_per_target)]
        self.started_at = self.stopped_at = None

    def start(self):
        self.started_at = time.monotonic()
        for w in self.workers:
            w.start()
        return self

    def successes(self, target=None):
        return sum(w.ok for w in self.workers if target is None or w.target == target)

    def stop(self):
        self.stopping.set()
        for w in self.workers:
            w.join(timeout=harness.HTTP_TIMEOUT + 5)
        self.stopped_at = time.monotonic()
        alive = [w.name for w in self.workers if w.is_alive()]
        if alive:
            raise AssertionError("load threads did not stop: %s" % alive)
        return self

    def report(self):
        by_target = {}
        for w in self.workers:
            t = by_target.setdefault(w.target, {"sent": 0, "succeeded": 0, "failed": 0})
            t["sent"] += w.sent
            t["succeeded"] += w.ok
            t["failed"] += w.failed
        durs = sorted(d for w in self.workers for d in w.durations)
        p99 = durs[int(len(durs) * 0.99)] if durs else None
        return {"sent": sum(w.sent for w in self.workers),
                "succeeded": sum(w.ok for w in self.workers),
                "failed": sum(w.failed for w in self.workers),
                "seconds": round((self.stopped_at or time.monotonic()) - self.started_at, 3),
                "p99_ms": round(p99 * 1000, 1) if p99 is not None else None,
                "by_target": by_target}


def summarize(failures, explain):
    """Split failures into expected and unexpected: explain(f) returns the reason the fault
    must fail this request, or None. Returns ({reason: count}, {reason: count}, examples)."""
    expected, unexpected, examples = {}, {}, []
    for f in failures:
        why = explain(f)
        if why:
            key = "%s [%s]" % (why, f.reason.split(":")[0])
            expected[key] = expected.get(key, 0) + 1
        else:
            key = "%s %s: %s" % (f.target, f.path.split("/")[1] if "/" in f.path else f.path,
                                 f.reason)
            unexpected[key] = unexpected.get(key, 0) + 1
            if len(examples) < 5:
                examples.append(json.dumps(f.as_dict()))
    return expected, unexpected, examples
