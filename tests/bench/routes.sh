#!/usr/bin/env bash
# routes.sh - flexgate-dp throughput with 10, 10,000 and 100,000 routes loaded.
#
# One nginx origin (100-byte body, keep-alive, as in ../shared/bench/proxy-bench.sh) and one
# data plane per route count, all running at once. Each data plane is fed one generated
# snapshot straight over the snapshot protocol by tests/tools/fake_ctl.py (no admin API, so
# 100,000 routes load in one version): routes spread over realistic paths
# (/api/v1/svc-K/orders/*, /api/v2/svc-K/carts, ...), ceil(N/20) upstreams, all pointing at
# the origin. The benchmarked path matches the route in the middle of the list, at the same
# depth for every N. wrk (1 thread, --latency) loads the data planes in interleaved rounds
# (the order rotates each round); the report gives medians, per-round ratios against the
# first route count, the time from sending the snapshot to its ACK (decode + validation +
# checksum + generation build, during which the data plane's one loop serves nothing else),
# and RSS after loading and at the end.
#
# Usage: tests/bench/routes.sh [BUILD_DIR] [-- options]
#   options: --routes 10,10000,100000 --rounds 3 --duration 8 --warmup 1 --conns 50
#            --out routes.json
#   e.g. tests/bench/routes.sh /tmp/b-rel -- --rounds 5 --duration 8
# Knobs: ORIGIN_PORT (default 18200; the data planes take free ports), KEEP_TMP=1.
# Installs nginx, wrk and jq with apt-get when missing (as root). Not part of `make test`.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${1:-$src/build}
[[ $# -gt 0 ]] && shift
[[ ${1:-} == -- ]] && shift
build=$(cd "$build" && pwd)

ROUTES=10,10000,100000 ROUNDS=3 DURATION=8 WARMUP=1 CONNS=50 OUT=routes.json
while (($#)); do
  case $1 in
    --routes) ROUTES=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --conns) CONNS=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "routes.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $ROUTES =~ ^[1-9][0-9]{0,5}(,[1-9][0-9]{0,5})*$ ]] || { echo "--routes takes a list like 10,10000" >&2; exit 2; }
[[ $ROUNDS =~ ^[1-9][0-9]?$ && $DURATION =~ ^[1-9][0-9]{0,2}$ && $WARMUP =~ ^[0-9]{1,2}$ &&
   $CONNS =~ ^[1-9][0-9]{0,4}$ ]] || { echo "--rounds 1-99, --duration 1-999, --warmup 0-99, --conns N" >&2; exit 2; }
IFS=, read -ra NS <<<"$ROUTES"

log() { printf '[routes-bench] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ORIGIN_PORT=${ORIGIN_PORT:-18200}
source "$here/lib.sh"
bench_init routes

bench_need nginx wrk jq curl
for t in nginx wrk jq curl python3 timeout setsid; do command -v "$t" >/dev/null || die "$t not found"; done
[[ -x $build/flexgate-dp && -x $build/flexgate-ctl ]] || die "no flexgate-dp/flexgate-ctl in $build"

bench_origin "$ORIGIN_PORT"
bench_template_db "$ORIGIN_PORT"

# ---------------------------------------------------------------- data planes
declare -A DP_PID=() DP_PORT=() PATH_OF=() APPLY_MS=() RSS_LOADED=() BUILD_MS=() TRIM_MS=() ROUTER_KB=()
for n in "${NS[@]}"; do
  port=$(bench_free_port)
  DP_PORT[$n]=$port
  bench_fake_ctl "fake-$n" "$n"
  bench_start "dp-$n" "$build/flexgate-dp" --control "unix:$T/fake-$n.sock" --listen "127.0.0.1:$port" \
    --status-listen "127.0.0.1:$(bench_free_port)" --log-level info --workers 1
  DP_PID[$n]=$LAST_PID
  bench_wait_applied "fake-$n" "${DP_PID[$n]}"
  PATH_OF[$n]=$(jq -r .bench_path "$T/fake-$n.jsonl" | head -1)
  APPLY_MS[$n]=$(jq -r .apply_ms "$T/fake-$n.jsonl" | head -1)
  code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://127.0.0.1:$port${PATH_OF[$n]}")
  [[ $code == 200 ]] || die "$n routes: GET ${PATH_OF[$n]} answered $code"
  RSS_LOADED[$n]=$(awk '/^VmRSS:/ {print $2}' "/proc/${DP_PID[$n]}/status")
  # The data plane's own "config applied" line: generation build and heap trim times.
  applied=$(grep -m1 '"msg":"config applied"' "$T/dp-$n.log" || true)
  BUILD_MS[$n]=$(jq -r '.build_ms // "null"' <<<"${applied:-{\}}")
  TRIM_MS[$n]=$(jq -r '.heap_trim_ms // "null"' <<<"${applied:-{\}}")
  ROUTER_KB[$n]=$(jq -r '.router_kb // "null"' <<<"${applied:-{\}}")
  log "$n routes: applied in ${APPLY_MS[$n]} ms (generation build ${BUILD_MS[$n]} ms, heap trim ${TRIM_MS[$n]} ms), router ${ROUTER_KB[$n]} kB, RSS ${RSS_LOADED[$n]} kB, bench path ${PATH_OF[$n]}"
done

# ---------------------------------------------------------------- measure
cat >"$T/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e, s = summary.errors, summary.duration / 1e6
  local f = assert(io.open(os.getenv("WRK_JSON"), "w"))
  f:write(string.format('{"requests":%d,"duration_s":%.3f,"rps":%.1f,"lat_p50_ms":%.3f,' ..
    '"lat_p99_ms":%.3f,"errors":%d}\n', summary.requests, s, summary.requests / s,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    e.status + e.connect + e.read + e.write + e.timeout))
  f:close()
end
EOF
ticks() { local l; read -r l <"/proc/$1/stat"; set -- ${l##*) }; echo $((${12} + ${13})); }
wrk_run() { # PORT PATH SECONDS JSON
  rm -f "$4"
  WRK_JSON=$4 timeout -k 2 $(($3 + 15)) wrk -t1 -c"$CONNS" -d"$3s" --timeout 2s --latency \
    -s "$T/report.lua" "http://127.0.0.1:$1$2" >"$4.txt" 2>&1 || { cat "$4.txt" >&2; die "wrk failed"; }
  [[ -s $4 ]] || die "wrk wrote no report"
}
HZ=$(getconf CLK_TCK)
: >"$T/runs.jsonl"
k=${#NS[@]}
log "$((ROUNDS * k)) runs of ${WARMUP}+${DURATION} s at c=$CONNS"
for ((r = 1; r <= ROUNDS; r++)); do
  for ((i = 0; i < k; i++)); do
    n=${NS[(i + r - 1) % k]} p=${DP_PORT[${NS[(i + r - 1) % k]}]}
    ((WARMUP > 0)) && wrk_run "$p" "${PATH_OF[$n]}" "$WARMUP" "$T/warm.json"
    t0=$(ticks "${DP_PID[$n]}")
    wrk_run "$p" "${PATH_OF[$n]}" "$DURATION" "$T/run.json"
    t1=$(ticks "${DP_PID[$n]}")
    kill -0 "${DP_PID[$n]}" || die "the $n-route data plane died"
    jq -c --argjson r "$r" --argjson n "$n" --argjson cpu "$((t1 - t0))" --argjson hz "$HZ" \
      '{round: $r, routes: $n} + . + {cpu_us_per_req: ($cpu / $hz * 1e6 / .requests * 10 | round / 10)}' \
      "$T/run.json" >>"$T/runs.jsonl"
    jq -r '"round \(.round) \(.routes) routes: \(.rps | round) req/s, p99 \(.lat_p99_ms) ms, \(.cpu_us_per_req) us/req, errors \(.errors)"' \
      <(tail -n 1 "$T/runs.jsonl") | while read -r line; do log "$line"; done
  done
done

# ---------------------------------------------------------------- report
meta=$(jq -n --arg date "$(date -u +%FT%TZ)" --argjson nproc "$(nproc)" \
  --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
  --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --argjson rounds "$ROUNDS" --argjson dur "$DURATION" \
  --argjson conns "$CONNS" --arg build "$build" \
  '{date: $date, nproc: $nproc, cpu_model: $cpu, loadavg_at_end: $load, rounds: $rounds,
    duration_s: $dur, conns: $conns, wrk_threads: 1, build_dir: $build}')
dps='[]'
for n in "${NS[@]}"; do
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/${DP_PID[$n]}/status")
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/${DP_PID[$n]}/status")
  dps=$(jq -c --argjson n "$n" --arg path "${PATH_OF[$n]}" --argjson apply "${APPLY_MS[$n]}" \
    --argjson build "${BUILD_MS[$n]}" --argjson trim "${TRIM_MS[$n]}" --argjson rkb "${ROUTER_KB[$n]}" \
    --argjson loaded "${RSS_LOADED[$n]}" --argjson rss "$rss" --argjson hwm "$hwm" \
    --argjson bytes "$(jq .payload_bytes "$T/fake-$n.jsonl" | head -1)" \
    '. + [{routes: $n, bench_path: $path, apply_ms: $apply, build_ms: $build, heap_trim_ms: $trim, router_kb: $rkb,
           snapshot_bytes: $bytes,
           rss_loaded_kb: $loaded, rss_end_kb: $rss, rss_peak_kb: $hwm}]' <<<"$dps")
done
first=${NS[0]}
jq -s --argjson meta "$meta" --argjson dps "$dps" --argjson first "$first" '
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
                     else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def r(n): . * pow(10; n) | round / pow(10; n);
  . as $runs
  | {meta: $meta, runs: $runs,
     summary: [$dps[] as $d | ($runs | map(select(.routes == $d.routes))) as $rs | $d + {
       rps_median: ($rs | map(.rps) | median | r(0)),
       rps_min: ($rs | map(.rps) | min | r(0)), rps_max: ($rs | map(.rps) | max | r(0)),
       lat_p50_ms_median: ($rs | map(.lat_p50_ms) | median | r(3)),
       lat_p99_ms_median: ($rs | map(.lat_p99_ms) | median | r(3)),
       cpu_us_per_req_median: ($rs | map(.cpu_us_per_req) | median | r(1)),
       errors: ($rs | map(.errors) | add),
       rps_ratio_per_round: [range(1; $meta.rounds + 1) as $k
         | ($runs | map(select(.round == $k)) | map({(.routes | tostring): .rps}) | add) as $m
         | $m[$d.routes | tostring] / $m[$first | tostring] | r(3)]}
       | .rps_ratio_median = (.rps_ratio_per_round | median | r(3))]}' "$T/runs.jsonl" >"$T/out.json"
mkdir -p "$(dirname "$OUT")"
cp "$T/out.json" "$OUT"

echo
echo "routes-bench: $(jq -r '.meta | "\(.rounds) rounds x \(.duration_s) s, c=\(.conns), wrk 1 thread, \(.nproc) CPUs (\(.cpu_model)), \(.date)"' "$OUT")"
echo "| routes | req/s median | min..max | ratio vs $first (per round) | p50 ms | p99 ms | CPU µs/req | errors | apply ms (build, trim) | RSS loaded | RSS peak |"
echo "| ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
jq -r '.summary[] | "| \(.routes) | \(.rps_median) | \(.rps_min)..\(.rps_max) | \(.rps_ratio_median) (\(.rps_ratio_per_round | map(tostring) | join(", "))) | \(.lat_p50_ms_median) | \(.lat_p99_ms_median) | \(.cpu_us_per_req_median) | \(.errors) | \(.apply_ms) (\(.build_ms), \(.heap_trim_ms)) | \(.rss_loaded_kb / 1024 * 10 | round / 10) MB | \(.rss_peak_kb / 1024 * 10 | round / 10) MB |"' "$OUT"
echo "report: $OUT"
