# lib.sh - shared pieces of the tests/bench scripts (sourced, not run).
#
# Expects src (the checkout) and build (a build directory) set, and log/die defined; call
# bench_init TAG first, which makes the scratch directory T and installs the exit trap.
# Processes started with bench_start run in their own session and are recorded in
# BENCH_PIDS; the trap stops them and removes T (KEEP_TMP=1 keeps it). OBSERVE=off makes
# bench_template_db's config turn per-request metrics and the access log off (issue 7).

declare -a BENCH_PIDS=()

# bench_init TAG: scratch directory T (fg-TAG.XXXXXX) and the traps that clean up after us.
bench_init() {
  T=$(mktemp -d -t "fg-$1.XXXXXX")
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

bench_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  bench_stop_all
  if [[ ${KEEP_TMP:-0} == 1 ]]; then log "temp dir kept: $T"; else rm -rf "$T"; fi
  exit "$rc"
}

# bench_need TOOL...: install the Debian packages of missing tools (root only).
bench_need() {
  local need=() t
  for t in "$@"; do command -v "$t" >/dev/null || need+=("$t"); done
  ((${#need[@]})) || return 0
  ((EUID == 0)) || die "missing: ${need[*]}; run as root or apt-get install them"
  log "installing ${need[*]} with apt-get"
  DEBIAN_FRONTEND=noninteractive timeout 600 bash -c 'apt-get -o DPkg::Lock::Timeout=60 update -qq &&
    apt-get -o DPkg::Lock::Timeout=60 install -y -qq --no-install-recommends "$@"' _ "${need[@]}" \
    >"$T/apt.log" 2>&1 || { tail -n 20 "$T/apt.log" >&2; die "apt-get install ${need[*]} failed"; }
}

# bench_free_port: a loopback TCP port that was free a moment ago.
bench_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# bench_port_free PORT: true when nothing accepts on 127.0.0.1:PORT.
bench_port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# bench_start NAME CMD...: run CMD in its own session, output to $T/NAME.log; pid in LAST_PID.
bench_start() {
  local name=$1
  shift
  setsid "$@" </dev/null >"$T/$name.log" 2>&1 &
  LAST_PID=$!
  BENCH_PIDS+=("$LAST_PID")
}

bench_stop_all() {
  local i
  for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do kill -TERM -- "-${BENCH_PIDS[i]}" 2>/dev/null || true; done
  for i in "${BENCH_PIDS[@]}"; do
    timeout 10 tail --pid="$i" -f /dev/null 2>/dev/null || kill -KILL -- "-$i" 2>/dev/null || true
  done
}

# bench_origin PORT: nginx answering 200 with a 100-byte body, keep-alive: proxy-bench.sh's origin.
bench_origin() {
  local port=$1 body i
  bench_port_free "$port" || die "127.0.0.1:$port is in use: set ORIGIN_PORT"
  body=$(printf 'origin-ok %.0s' {1..10})
  mkdir -p "$T/origin/tmp"
  cat >"$T/origin/nginx.conf" <<EOF
daemon off;
worker_processes 1;
worker_rlimit_nofile 16384;
pid $T/origin/nginx.pid;
error_log $T/origin/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_timeout 75s;
  keepalive_requests 1000000;
  client_body_temp_path $T/origin/tmp/body;
  proxy_temp_path $T/origin/tmp/proxy;
  fastcgi_temp_path $T/origin/tmp/fastcgi;
  uwsgi_temp_path $T/origin/tmp/uwsgi;
  scgi_temp_path $T/origin/tmp/scgi;
  server {
    listen 127.0.0.1:$port backlog=4096;
    location / { default_type text/plain; return 200 "$body"; }
  }
}
EOF
  bench_start origin nginx -p "$T/origin" -e "$T/origin/error.log" -c "$T/origin/nginx.conf"
  for ((i = 0; i < 100; i++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' -m 1 "http://127.0.0.1:$port/") == 200 ]] && return 0
    sleep 0.1
  done
  cat "$T/origin.log" "$T/origin/error.log" >&2
  die "origin nginx on 127.0.0.1:$port did not start"
}

# bench_nginx_proxy PORT ORIGIN_PORT [RUNNER...]: nginx as proxy-bench.sh configures it (one
# worker, upstream keepalive 64, HTTP/1.1 upstream), for side-by-side counts. Worker pid in
# NGINX_WORKER. With a RUNNER (valgrind ...), nginx runs as one process (master_process off)
# under it, and NGINX_WORKER is that process.
bench_nginx_proxy() {
  local port=$1 origin=$2 i master=on
  shift 2
  (($#)) && master=off
  mkdir -p "$T/nginx/tmp"
  cat >"$T/nginx/nginx.conf" <<EOF
daemon off;
master_process $master;
worker_processes 1;
worker_rlimit_nofile 16384;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  server_tokens off;
  keepalive_timeout 75s;
  keepalive_requests 1000000;
  client_body_temp_path $T/nginx/tmp/body;
  proxy_temp_path $T/nginx/tmp/proxy;
  fastcgi_temp_path $T/nginx/tmp/fastcgi;
  uwsgi_temp_path $T/nginx/tmp/uwsgi;
  scgi_temp_path $T/nginx/tmp/scgi;
  upstream origin { server 127.0.0.1:$origin; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$port backlog=4096;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
  bench_start nginx "$@" nginx -p "$T/nginx" -e "$T/nginx/error.log" -c "$T/nginx/nginx.conf"
  for ((i = 0; i < 300; i++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' -m 1 "http://127.0.0.1:$port/") == 200 ]] && break
    sleep 0.1
  done
  if [[ $master == off ]]; then
    NGINX_WORKER=$LAST_PID
    kill -0 "$NGINX_WORKER" 2>/dev/null || NGINX_WORKER=
  else
    NGINX_WORKER=$(pgrep -P "$LAST_PID" -f 'nginx: worker' | head -1)
  fi
  [[ -n $NGINX_WORKER ]] || die "nginx proxy on 127.0.0.1:$port did not start"
}

# bench_template_db ORIGIN_PORT: a real flexgate-ctl writes $T/ctl.db holding one
# upstream "origin" (the bench origin) and one route "/*", then stops. fake_ctl.py multiplies
# that canonical text into generated configs.
bench_template_db() {
  local origin=$1 admin pid i
  admin=$(bench_free_port)
  FLEXGATE_ADMIN_TOKEN=bench "$build/flexgate-ctl" serve --db "$T/ctl.db" \
    --admin-listen "127.0.0.1:$admin" --socket "unix:$T/ctl.sock" --log-level warn >"$T/ctl.log" 2>&1 &
  pid=$!
  for ((i = 0; i < 100; i++)); do
    curl -fsS -m 1 "http://127.0.0.1:$admin/health/ready" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { cat "$T/ctl.log" >&2; die "flexgate-ctl exited"; }
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null || { cat "$T/ctl.log" >&2; die "flexgate-ctl exited"; }
  curl -fsS -m 10 -H 'Authorization: Bearer bench' -H 'Content-Type: application/json' -o /dev/null \
    -X POST "http://127.0.0.1:$admin/api/v1/upstreams" -d "{\"name\":\"origin\",\"url\":\"http://127.0.0.1:$origin\"}" &&
    curl -fsS -m 10 -H 'Authorization: Bearer bench' -H 'Content-Type: application/json' -o /dev/null \
      -X POST "http://127.0.0.1:$admin/api/v1/routes" -d '{"id":"all","path":"/*","upstream":"origin"}' ||
    { kill "$pid"; die "could not create the template config"; }
  # OBSERVE=off: no per-request metrics (metrics.enabled false) and no access log (its level
  # above every access line). The default config has both on, the access log at sampling 1.
  if [[ ${OBSERVE:-on} == off ]]; then
    curl -fsS -m 10 -H 'Authorization: Bearer bench' -H 'Content-Type: application/json' -o /dev/null \
      -X PUT "http://127.0.0.1:$admin/api/v1/settings/metrics" -d '{"enabled":false}' &&
      curl -fsS -m 10 -H 'Authorization: Bearer bench' -H 'Content-Type: application/json' -o /dev/null \
        -X PUT "http://127.0.0.1:$admin/api/v1/settings/logging" -d '{"level":"error"}' ||
      { kill "$pid"; die "could not turn metrics and access logs off"; }
  fi
  kill "$pid" && wait "$pid" || die "flexgate-ctl did not exit cleanly"
}

# bench_fake_ctl NAME ROUTES [fake_ctl options...]: serve a generated ROUTES-route snapshot on
# $T/NAME.sock; replies are appended to $T/NAME.jsonl.
bench_fake_ctl() {
  local name=$1 n=$2 i
  shift 2
  bench_start "$name" python3 -B "$src/tests/tools/fake_ctl.py" --socket "$T/$name.sock" \
    --db "$T/ctl.db" --routes "$n" --serve --report "$T/$name.jsonl" --timeout "${FAKE_TIMEOUT:-300}" "$@"
  for ((i = 0; i < 300; i++)); do [[ -S $T/$name.sock ]] && return 0; sleep 0.1; done
  cat "$T/$name.log" >&2
  die "fake_ctl $name did not start"
}

# bench_wait_applied NAME PID: wait for the data plane PID to answer fake_ctl NAME's snapshot;
# die unless it was ACKed.
bench_wait_applied() {
  local name=$1 pid=$2 i
  for ((i = 0; i < 3000; i++)); do
    [[ -s $T/$name.jsonl ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ -s $T/$name.jsonl ]] || { tail -n 20 "$T"/*.log >&2; die "no reply to $name's snapshot"; }
  [[ $(jq -r .reply "$T/$name.jsonl" | head -1) == ACK ]] || die "$name: $(head -1 "$T/$name.jsonl")"
}
