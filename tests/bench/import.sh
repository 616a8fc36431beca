#!/usr/bin/env bash
# import.sh - time a 10,000-route YAML import through the CLI and through the REST API.
#
# Generates a configuration of ROUTES routes (default 10,000) spread over 100 upstreams, each
# route with methods and a rate limit, then measures, ROUNDS times each (default 3):
#   cli-fresh   flexgate-ctl import FILE into an empty database
#   cli-again   the same file again (nothing changes: the diff path, still one new version)
#   rest-fresh  POST /api/v1/import of the same file to a running flexgate-ctl, empty store
#   rest-again  the same POST again
#   export      GET /api/v1/export of the result
# Each figure is wall-clock seconds (best and median of the rounds). Target: < 2 s for the
# 10,000-route import. Build with -DCMAKE_BUILD_TYPE=Release (or RelWithDebInfo) first.
#
# Usage: tests/bench/import.sh [BUILD_DIR]      e.g. ROUTES=50000 ROUNDS=5 tests/bench/import.sh build
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
ctl=$build/flexgate-ctl
[[ -x $ctl ]] || { echo "import.sh: $ctl not found: build first" >&2; exit 1; }
command -v curl >/dev/null || { echo "import.sh: curl is needed" >&2; exit 1; }
routes=${ROUTES:-10000}
rounds=${ROUNDS:-3}
admin_port=${ADMIN_PORT:-18290}

tmp=$(mktemp -d -t fg-bench-import.XXXXXX)
token=bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
ctl_pid=
cleanup() {
  if [[ -n $ctl_pid ]]; then
    kill "$ctl_pid" 2>/dev/null || true
    wait "$ctl_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

python3 - "$tmp/config.yml" "$routes" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    f.write("upstreams:\n")
    for i in range(100):
        f.write('  - name: "svc-%d"\n    url: "http://10.0.%d.%d:8080"\n    timeout: 5000\n'
                '    retries: 1\n' % (i, i // 250, i % 250 + 1))
    f.write("routes:\n")
    for i in range(n):
        f.write('  - path: "/api/v1/svc%d/items/*"\n    upstream: "svc-%d"\n'
                '    methods: [GET, POST]\n    auth: required\n'
                '    rateLimit:\n      max: 100\n      windowMs: 60000\n' % (i, i % 100))
PY
size=$(wc -c <"$tmp/config.yml")

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
declare -A times
record() { times[$1]="${times[$1]:-} $2"; }

for ((r = 1; r <= rounds; r++)); do
  rm -f "$tmp"/cli.db*
  "$ctl" migrate --db "$tmp/cli.db" --log-level warn >/dev/null
  for phase in cli-fresh cli-again; do
    t0=$(now)
    "$ctl" import "$tmp/config.yml" --db "$tmp/cli.db" --log-level warn >"$tmp/$phase.out"
    record "$phase" "$(elapsed "$t0" "$(now)")"
  done
done
grep -q "routes     +$routes added" "$tmp/cli-fresh.out" && grep -q ", 0 changes," "$tmp/cli-again.out" ||
  { echo "import.sh: unexpected CLI output:" >&2; cat "$tmp"/cli-*.out >&2; exit 1; }

api() { curl -fsS -m 60 -H "Authorization: Bearer $token" "$@"; }
for ((r = 1; r <= rounds; r++)); do
  rm -f "$tmp"/rest.db*
  FLEXGATE_ADMIN_TOKEN=$token "$ctl" serve --db "$tmp/rest.db" \
    --admin-listen "127.0.0.1:$admin_port" --socket "unix:$tmp/ctl.sock" --log-level warn \
    >"$tmp/ctl.log" 2>&1 &
  ctl_pid=$!
  for ((i = 0; i < 100; i++)); do
    curl -fsS -m 1 "http://127.0.0.1:$admin_port/health/ready" >/dev/null 2>&1 && break
    kill -0 "$ctl_pid" || { cat "$tmp/ctl.log" >&2; exit 1; }
    sleep 0.1
  done
  for phase in rest-fresh rest-again; do
    t0=$(now)
    api -X POST -H 'Content-Type: application/yaml' --data-binary "@$tmp/config.yml" \
      "http://127.0.0.1:$admin_port/api/v1/import" >"$tmp/rest.json"
    record "$phase" "$(elapsed "$t0" "$(now)")"
  done
  grep -q '"changes":0' "$tmp/rest.json" ||
    { echo "import.sh: unexpected REST answer: $(head -c 300 "$tmp/rest.json")" >&2; exit 1; }
  t0=$(now)
  api "http://127.0.0.1:$admin_port/api/v1/export" >"$tmp/export.yml"
  record export "$(elapsed "$t0" "$(now)")"
  kill "$ctl_pid"
  wait "$ctl_pid" || true
  ctl_pid=
done

stats() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -n |
  awk '{ v[NR] = $1 } END { printf "best %.3f s  median %.3f s", v[1], v[int((NR + 1) / 2)] }'; }
echo "flexgate-ctl import benchmark: $routes routes, 100 upstreams, $size bytes of YAML, $rounds rounds"
echo "build: $build ($(grep -m1 CMAKE_BUILD_TYPE: "$build/CMakeCache.txt" 2>/dev/null | cut -d= -f2))"
for phase in cli-fresh cli-again rest-fresh rest-again export; do
  printf '  %-11s %s\n' "$phase" "$(stats "${times[$phase]}")"
done
