#!/usr/bin/env bash
# run.sh - `make run`: a demo origin, a control plane and two data planes, in the foreground.
#
# Usage: deploy/run.sh [BUILD_DIR]        (default: build; `make run` passes $(BUILD))
#
# Fixed loopback addresses (README.md's walk-through uses them):
#   admin API (flexgate-ctl)   http://127.0.0.1:9080   /api/v1/..., /health/{live,ready}
#   snapshot socket            unix:./var/flexgate.sock
#   data plane dp-1            http://127.0.0.1:8080   status http://127.0.0.1:9101
#   data plane dp-2            http://127.0.0.1:8082   status http://127.0.0.1:9102
#   demo origin                http://127.0.0.1:8081   (tests/tools/origin.py --name demo)
# State lives in ./var/: flexgate.db (SQLite), admin.token, dp.secret, *.log.
# Admin token: $FLEXGATE_ADMIN_TOKEN if set, else the one flexgate-ctl generates on first
# start into var/admin.token (mode 0600).
# Data plane secret (the control plane refuses a data plane whose HELLO lacks it):
# $FLEXGATE_DP_SECRET if set (both planes read it), else the one flexgate-ctl generates on
# first start into var/dp.secret (mode 0600), passed to the data planes with --dp-secret-file.
#
# The demo configuration is deploy/examples/flexgate.yml (upstream "demo" -> the origin,
# route "api": /api/* -> demo), imported with `flexgate-ctl import --mode merge` before the
# control plane starts: a later run restores the demo entities and keeps everything else
# you created.
# Ctrl-C or SIGTERM stops every child (data planes first) and exits.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
[[ $build = /* ]] || build=$root/$build
cd "$root"

ADMIN=127.0.0.1:9080
SOCKET=unix:./var/flexgate.sock
ORIGIN=127.0.0.1:8081
DP1=127.0.0.1:8080 DP1_STATUS=127.0.0.1:9101
DP2=127.0.0.1:8082 DP2_STATUS=127.0.0.1:9102
READY_TRIES=150 # x 0.1 s

ctl_bin=$build/flexgate-ctl
dp_bin=$build/flexgate-dp
for b in "$ctl_bin" "$dp_bin"; do
  [[ -x $b ]] || { echo "run.sh: $b not found: build first (make)" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "run.sh: curl is needed (deploy/install-deps.sh)" >&2; exit 1; }

port_busy() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
for a in "$ADMIN" "$ORIGIN" "$DP1" "$DP1_STATUS" "$DP2" "$DP2_STATUS"; do
  if port_busy "$a"; then
    echo "run.sh: $a is already in use (another \`make run\`?); stop it first" >&2
    exit 1
  fi
done

mkdir -p var
pids=() names=()
stopping=0

stop_all() {
  ((stopping)) && return 0
  stopping=1
  local i pid
  # Data planes first, then the control plane, then the origin: reverse start order.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
  done
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[i]}
    for ((t = 0; t < 50; t++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "run.sh: ${names[i]} (pid $pid) ignored SIGTERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
trap 'echo; echo "stopping..."; stop_all; exit 0' INT TERM
trap stop_all EXIT

# Each child runs in its own session, so a Ctrl-C reaches only this script, whose trap then
# stops the children in order. (Were they in the terminal's process group, they would exit
# on the SIGINT themselves, and bash ignores a SIGINT that its children survived by
# handling it, so the trap would never run.)
start() { # name logfile cmd...
  local name=$1 log=$2
  shift 2
  setsid "$@" >>"$log" 2>&1 </dev/null &
  pids+=($!)
  names+=("$name")
}

fail() {
  echo "run.sh: $1" >&2
  [[ -n ${2:-} && -f $2 ]] && { echo "--- last lines of $2:" >&2; tail -n 20 "$2" >&2; }
  exit 1
}

wait_http() { # what url logfile pid
  local i
  for ((i = 0; i < READY_TRIES; i++)); do
    curl -fsS -m 1 -o /dev/null "$2" 2>/dev/null && return 0
    kill -0 "$4" 2>/dev/null || fail "$1 exited" "$3"
    sleep 0.1
  done
  fail "$1 not ready at $2 after $((READY_TRIES / 10)) s" "$3"
}

# 1. The demo origin.
start origin var/origin.log python3 -B tests/tools/origin.py --listen "$ORIGIN" --name demo
wait_http "demo origin" "http://$ORIGIN/" var/origin.log "${pids[-1]}"

# 2. The demo configuration, imported straight into the database (one transaction).
EXAMPLE=deploy/examples/flexgate.yml
"$ctl_bin" import "$EXAMPLE" --db var/flexgate.db --mode merge --log-level warn \
  >var/import.log 2>&1 || fail "importing $EXAMPLE failed" var/import.log
echo "imported   $EXAMPLE -> $(sed -n '1s/.*: \(config version [0-9]*\).*/\1/p' var/import.log)"

# 3. The control plane (generates var/admin.token and var/dp.secret on first start; neither
#    value is written to var/ctl.log).
start flexgate-ctl var/ctl.log "$ctl_bin" serve --db var/flexgate.db --admin-listen "$ADMIN" \
  --socket "$SOCKET"
wait_http flexgate-ctl "http://$ADMIN/health/ready" var/ctl.log "${pids[-1]}"
if [[ -n ${FLEXGATE_ADMIN_TOKEN:-} ]]; then
  token_from='$FLEXGATE_ADMIN_TOKEN'
else
  [[ -s var/admin.token ]] || fail "var/admin.token was not created" var/ctl.log
  token_from=var/admin.token
fi

# 4. Two data planes, with the data plane secret.
secret_args=()
if [[ -z ${FLEXGATE_DP_SECRET:-} ]]; then
  [[ -s var/dp.secret ]] || fail "var/dp.secret was not created" var/ctl.log
  secret_args=(--dp-secret-file var/dp.secret)
fi
start dp-1 var/dp-1.log "$dp_bin" --control "$SOCKET" --listen "$DP1" --status-listen "$DP1_STATUS" --id dp-1 "${secret_args[@]}"
start dp-2 var/dp-2.log "$dp_bin" --control "$SOCKET" --listen "$DP2" --status-listen "$DP2_STATUS" --id dp-2 "${secret_args[@]}"
wait_http dp-1 "http://$DP1_STATUS/health/ready" var/dp-1.log "${pids[-2]}"
wait_http dp-2 "http://$DP2_STATUS/health/ready" var/dp-2.log "${pids[-1]}"

cat <<EOF

FlexGate is running (state and logs in ./var/):
  admin API     http://$ADMIN        token from $token_from
  data plane    dp-1 http://$DP1  (status http://$DP1_STATUS)
  data plane    dp-2 http://$DP2  (status http://$DP2_STATUS)
  demo origin   http://$ORIGIN  (upstream "demo", route "api": /api/* -> demo)
  socket        $SOCKET

Try, in another terminal (from $(pwd)):
  TOKEN=\${FLEXGATE_ADMIN_TOKEN:-\$(cat var/admin.token)}
  curl -s http://$DP1/api/hello
  curl -s http://$DP2/api/hello
  curl -s -H "Authorization: Bearer \$TOKEN" http://$ADMIN/api/v1/dataplanes
  curl -s -H "Authorization: Bearer \$TOKEN" http://$ADMIN/api/v1/routes
  curl -s http://$DP1_STATUS/health/ready
More in README.md. Ctrl-C stops everything.
EOF

# 5. Stay in the foreground until a signal, or until a child dies on its own.
set +e
wait -n "${pids[@]}"
rc=$?
for i in "${!pids[@]}"; do
  if ! kill -0 "${pids[i]}" 2>/dev/null; then
    echo "run.sh: ${names[i]} exited (status $rc); stopping the rest" >&2
    log=var/${names[i]#flexgate-}.log
    [[ -f $log ]] && tail -n 20 "$log" >&2
  fi
done
stop_all
exit 1
