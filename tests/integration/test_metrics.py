#!/usr/bin/env python3
"""test_metrics.py - Prometheus metrics of both planes, health endpoints, alert rules and the
Grafana dashboard.

- flexgate-dp --workers 2: /metrics on the shared status port sums both workers' slots, so
  every scrape (whichever worker answers) shows every request; `promtool check metrics`
  exits 0 with no lint output; request counts, histograms, bytes, connections, config
  version and generation swaps move as traffic and config flow; the counters stay
  monotonic when a worker is killed and restarted.
- flexgate-ctl /metrics: admin requests by endpoint template (never the raw path), data
  planes by sync status with their versions, publish duration, promtool-clean.
- /health/live, /health/ready (the seed's checks config/upstreams/redis and the version),
  /health/deep on both planes.
- deploy/prometheus/alerts.yml passes `promtool check rules`; deploy/grafana/flexgate.json
  parses, and every metric the dashboard and the rules name is one the planes export.

promtool comes from Debian's `prometheus` package (deploy/install-deps.sh); without it
these tests FAIL saying so, they never pass unchecked.
"""

import json
import os
import re
import shutil
import signal
import subprocess

import harness
from harness import ClusterTest, children, is_origin_json, main

DASHBOARD = os.path.join(harness.SOURCE_DIR, "deploy", "grafana", "flexgate.json")
ALERTS = os.path.join(harness.SOURCE_DIR, "deploy", "prometheus", "alerts.yml")
WORKERS = 2
N_REQUESTS = 40
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')


def promtool():
    path = shutil.which("promtool")
    if not path:
        raise AssertionError("promtool not found: install Debian's prometheus package "
                             "(deploy/install-deps.sh)")
    return path


def parse(text):
    """{(name, frozenset(labels)): value} and the set of family names (# TYPE lines)."""
    samples, families = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            families.add(line.split()[2])
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            raise AssertionError("unparsable exposition line: %r" % line)
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples, families


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def check_promtool(testcase, text):
    p = subprocess.run([promtool(), "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=60)
    out = (p.stdout + p.stderr).decode()
    testcase.assertEqual(p.returncode, 0, "promtool check metrics:\n" + out)
    testcase.assertEqual(out.strip(), "", "promtool lint:\n" + out)


def scrape(port, path="/metrics"):
    r = harness.one_shot(port, "GET", path)
    if r.status != 200:
        raise AssertionError("GET %s -> %d %r" % (path, r.status, r.body[:200]))
    if not r.header("Content-Type", "").startswith("text/plain; version=0.0.4"):
        raise AssertionError("Content-Type %r" % r.header("Content-Type"))
    return r.body.decode()


class DataPlaneMetrics(ClusterTest):
    label = "metrics"

    def start(self):
        self.c.start_origin("A")
        self.c.start_ctl()
        self.c.route_all_to("A")
        dp = self.c.start_dp("dp", extra_args=["--workers", str(WORKERS)], wait_ready=False)
        self.c.wait_in_sync(["dp-w%d" % (i + 1) for i in range(WORKERS)])
        return dp

    def test_workers_summed_lint_clean_and_moving(self):
        dp = self.start()
        version = self.c.config_version()
        peers = set()
        for i in range(N_REQUESTS):  # fresh connections: the kernel spreads them
            r = harness.one_shot(dp.port, "GET", "/m/%d" % i)
            self.assertTrue(is_origin_json(r, "A"), r)
            peers.add(r.json()["peer"])
        self.assertGreater(len(peers), 1, "all requests went through one worker")
        r = harness.one_shot(dp.port, "GET", "/status/503")
        self.assertEqual(r.status, 503)

        # Every scrape, whichever worker answers it, has every request: the slots are summed.
        for _ in range(6):
            text = scrape(dp.status_port)
            s, fam = parse(text)
            self.assertEqual(value(s, "http_requests_total", method="GET", route="all",
                                   status="200"), N_REQUESTS, text[:2000])
            self.assertEqual(value(s, "http_requests_total", method="GET", route="all",
                                   status="503"), 1)
            self.assertEqual(value(s, "http_request_duration_seconds_count", route="all"),
                             N_REQUESTS + 1)
            self.assertEqual(value(s, "http_request_duration_seconds_bucket", route="all",
                                   le="+Inf"), N_REQUESTS + 1)
            self.assertEqual(value(s, "flexgate_upstream_response_seconds_count",
                                   upstream="backend"), N_REQUESTS + 1)
            self.assertGreater(value(s, "flexgate_sent_bytes_total", route="all"), 0)
            self.assertEqual(value(s, "flexgate_workers"), WORKERS)
            self.assertEqual(value(s, "flexgate_config_version"), version)
            self.assertGreaterEqual(value(s, "flexgate_config_generation_swaps_total"), WORKERS)
            self.assertEqual(value(s, "flexgate_request_ids_generated_total"), N_REQUESTS + 1)
            self.assertGreater(value(s, "process_resident_memory_bytes"), 0)
        check_promtool(self, text)
        for name in ("http_requests_total", "http_request_duration_seconds",
                     "flexgate_upstream_response_seconds", "flexgate_received_bytes_total",
                     "flexgate_sent_bytes_total", "flexgate_client_connections_active",
                     "flexgate_client_connections_total", "flexgate_upstream_pools",
                     "flexgate_upstream_pool_idle_connections", "flexgate_retries_total",
                     "flexgate_timeouts_total", "flexgate_circuit_breaker_state",
                     "flexgate_circuit_breaker_transitions_total",
                     "flexgate_ratelimit_decisions_total", "flexgate_auth_failures_total",
                     "flexgate_ssrf_blocked_total", "flexgate_shed_requests_total",
                     "flexgate_config_version", "flexgate_config_generation_swaps_total",
                     "flexgate_config_apply_duration_seconds", "process_cpu_seconds_total",
                     "process_resident_memory_bytes", "process_open_fds"):
            self.assertIn(name, fam)

        # Values the workers publish on their refresh timer (connections, CPU) arrive too.
        def mirrored():
            s, _ = parse(scrape(dp.status_port))
            return (value(s, "flexgate_client_connections_total") >= N_REQUESTS + 1 and
                    value(s, "process_cpu_seconds_total") > 0) or None
        self.c.poll(mirrored, "connections and CPU of both workers in /metrics")

        # A config change: the version gauge follows, each worker counts its swap.
        before, _ = parse(scrape(dp.status_port))
        self.c.api_ok("POST", "/api/v1/routes", {"id": "second", "path": "/second/*",
                                                 "upstream": "backend"}, expect=201)
        version = self.c.config_version()

        def swapped():
            s, _ = parse(scrape(dp.status_port))
            return (value(s, "flexgate_config_version") == version and
                    value(s, "flexgate_config_generation_swaps_total") >=
                    value(before, "flexgate_config_generation_swaps_total") + WORKERS) or None
        self.c.poll(swapped, "config version %d and %d more swaps in /metrics" % (version,
                                                                                   WORKERS))
        r = harness.one_shot(dp.port, "GET", "/second/x")
        self.assertTrue(is_origin_json(r, "A"), r)
        s, _ = parse(scrape(dp.status_port))
        self.assertEqual(value(s, "http_requests_total", method="GET", route="second",
                               status="200"), 1)

    def test_counters_survive_a_worker_restart(self):
        dp = self.start()
        for i in range(N_REQUESTS):
            self.assertTrue(is_origin_json(harness.one_shot(dp.port, "GET", "/r/%d" % i), "A"))

        def connections():
            s, _ = parse(scrape(dp.status_port))
            return value(s, "flexgate_client_connections_total") if \
                value(s, "flexgate_client_connections_total") >= N_REQUESTS else None
        conns = self.c.poll(connections, "accepted connections published")
        kids = children(dp.pid)
        self.assertEqual(len(kids), WORKERS)
        os.kill(kids[0], signal.SIGKILL)
        self.c.poll(lambda: len(children(dp.pid)) == WORKERS and kids[0] not in children(dp.pid),
                    "the master restarts the killed worker")
        self.c.wait_in_sync(["dp-w%d" % (i + 1) for i in range(WORKERS)])
        # The new worker inherits the slot: nothing counted before goes away, and the
        # server counters of the dead process stay in the slot's base.
        for _ in range(4):
            s, _ = parse(scrape(dp.status_port))
            self.assertEqual(value(s, "http_requests_total", method="GET", route="all",
                                   status="200"), N_REQUESTS)
            self.assertGreaterEqual(value(s, "flexgate_client_connections_total"), conns)
        self.expect_error_logs = True  # the master logs the worker's death


class Health(ClusterTest):
    label = "health"

    def test_data_plane_health(self):
        self.start_standard(n_dps=1)
        dp = self.c.dps["dp-a"]
        version = self.c.config_version()
        live = self.c.status(dp, "/health/live")
        self.assertEqual(live.status, 200)
        self.assertEqual(live.json()["status"], "UP")
        ready = self.c.status(dp, "/health/ready")
        self.assertEqual(ready.status, 200)
        doc = ready.json()
        self.assertEqual(doc["status"], "UP")
        self.assertEqual(set(doc["checks"]), {"config", "upstreams", "redis", "control_plane"})
        self.assertEqual(doc["checks"]["config"], "UP")
        self.assertEqual(doc["checks"]["upstreams"], "UP")
        self.assertIn(doc["checks"]["redis"], ("UP", "DOWN", "DISABLED"))
        self.assertEqual(doc["config_version"], version)
        deep = self.c.status(dp, "/health/deep")
        self.assertEqual(deep.status, 200)
        doc = deep.json()
        self.assertEqual(doc["status"], "UP")
        self.assertEqual(doc["config_version"], version)
        targets = doc["upstreams"]["backend"]["targets"]
        self.assertEqual([t["target"] for t in targets], [self.c.origin_url("A")])
        self.assertEqual(doc["upstreams"]["backend"]["status"], "UP")
        for path in ("/health/deep", "/metrics"):
            r = harness.one_shot(dp.status_port, "POST", path)
            self.assertEqual(r.status, 405, path)

    def test_control_plane_health_and_metrics(self):
        self.start_standard(n_dps=1)
        ctl = self.c.ctl
        self.c.api_ok("POST", "/api/v1/routes", {"id": "all", "path": "/*",
                                                 "upstream": "backend"}, expect=201)
        self.c.wait_in_sync(["dp-a"])
        secret_looking = "no-such-route-7f3a9"
        self.assertEqual(self.c.api("GET", "/api/v1/routes/" + secret_looking).status, 404)
        deep = harness.one_shot(ctl.admin_port, "GET", "/health/deep")
        self.assertEqual(deep.status, 200)
        doc = deep.json()
        self.assertEqual(doc["status"], "UP")
        self.assertEqual([d["id"] for d in doc["dataplanes"]], ["dp-a"])
        self.assertEqual(doc["dataplanes"][0]["status"], "in_sync")

        text = scrape(ctl.admin_port)
        check_promtool(self, text)
        self.assertNotIn(secret_looking, text)  # endpoints are templates, never raw paths
        s, _ = parse(text)
        version = self.c.config_version()
        self.assertEqual(value(s, "flexgate_ctl_config_version"), version)
        self.assertEqual(value(s, "flexgate_ctl_admin_requests_total",
                               endpoint="/api/v1/routes", method="POST", status="201"), 1)
        self.assertEqual(value(s, "flexgate_ctl_admin_requests_total",
                               endpoint="/api/v1/routes/{id}", method="GET", status="404"), 1)
        self.assertEqual(value(s, "flexgate_ctl_dataplanes", status="in_sync"), 1)
        self.assertEqual(value(s, "flexgate_ctl_dataplane_config_version", dataplane="dp-a"),
                         version)
        self.assertGreaterEqual(value(s, "flexgate_ctl_publish_duration_seconds_count"), 1)
        self.assertIsNotNone(value(s, "flexgate_ctl_sqlite_errors_total", kind="other"))
        # A conflict is a SQLite constraint error: counted.
        self.assertEqual(self.c.api("POST", "/api/v1/routes", {"id": "all", "path": "/x",
                                                               "upstream": "backend"}).status,
                         409)
        s, _ = parse(scrape(ctl.admin_port))
        self.assertGreaterEqual(value(s, "flexgate_ctl_sqlite_errors_total", kind="constraint"),
                                1)
        # Admin requests move: the scrape itself is counted from the next one on.
        self.assertGreaterEqual(value(s, "flexgate_ctl_admin_requests_total",
                                      endpoint="/metrics", method="GET", status="200"), 1)


class RulesAndDashboard(ClusterTest):
    label = "dashboards"

    def exported_names(self):
        """Every metric name either plane exports (families, plus histogram series)."""
        self.start_standard(n_dps=1)
        dp = self.c.dps["dp-a"]
        names = set()
        for text in (scrape(dp.status_port), scrape(self.c.ctl.admin_port)):
            _, fam = parse(text)
            names |= fam
            for f in fam:
                names |= {f + "_bucket", f + "_sum", f + "_count"}
        return names

    def test_alert_rules_pass_promtool(self):
        p = subprocess.run([promtool(), "check", "rules", ALERTS], capture_output=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, (p.stdout + p.stderr).decode())
        self.assertIn(b"SUCCESS", p.stdout)

    def test_dashboard_and_rules_name_only_exported_metrics(self):
        with open(DASHBOARD) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        self.assertGreaterEqual(len(exprs), 10)
        with open(ALERTS) as f:
            exprs += re.findall(r"expr: (?:\|\n)?((?:.+\n?)+?)(?=\s+for:)", f.read())
        names = self.exported_names()
        used = set()
        for e in exprs:
            used |= set(re.findall(r"\b((?:http|flexgate|process)_[a-z0-9_]+)\b", e))
        self.assertTrue({"http_requests_total", "http_request_duration_seconds_bucket",
                         "flexgate_circuit_breaker_state", "flexgate_ratelimit_decisions_total",
                         "flexgate_ctl_dataplane_config_version"} <= used, used)
        self.assertEqual(sorted(used - names), [], "named but not exported")
        # The panels the issue asks for.
        titles = " / ".join(p["title"].lower() for p in dash["panels"])
        for want in ("request rate", "p99", "error rate", "breaker", "rate-limit",
                     "config version"):
            self.assertIn(want, titles)


if __name__ == "__main__":
    main()
