#!/usr/bin/env bash
# install-deps.sh - install the Debian packages FlexGate's build, tests and `make run` need.
#
# Installs only what is missing, so a second run does nothing and needs no network.
# Usage: deploy/install-deps.sh [--check]   (--check: list what is missing, install nothing)
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config clang
  # libFuzzer and the sanitizer runtimes for clang 14 (`make test-fuzz`)
  libclang-rt-14-dev
  # libraries (DESIGN.md §2); llhttp's C sources come from node-llhttp
  libmicrohttpd-dev libevent-dev node-llhttp libsqlite3-dev libhiredis-dev
  libssl-dev libcjson-dev libyaml-dev libcmocka-dev
  # tests and `make run`: integration drivers, test origin, Redis, HTTP conversations
  python3 curl redis-server varnish openssl procps iproute2
  # test_ssrf runs in a network namespace of its own (unshare, mount)
  util-linux mount
  # test_conformance/test_import read YAML with a second parser (PyYAML); tests of
  # docs/admin-api.yaml validate schemas (Python)
  python3-yaml python3-jsonschema
  # test_metrics runs promtool (`check metrics`, `check rules`): Debian ships it only in the
  # prometheus package (~19 MB download; under systemd it also starts a Prometheus server on
  # :9090, which the tests neither need nor touch)
  prometheus
)
# test_ui drives the admin console in Debian's headless Chromium (playwright-core from npm,
# installed by the test into the build tree, downloads no browser of its own). Optional:
# where it cannot be installed, test_ui skips saying so and nothing else needs it.
OPTIONAL=(chromium)
# test_openapi fetches @redocly/cli and test_ui playwright-core with npm. A machine may
# already have Node.js from elsewhere (NodeSource's nodejs bundles npm and conflicts with
# Debian's npm package): only when there is no npm at all do we install Debian's.
command -v npm >/dev/null 2>&1 || PACKAGES+=(nodejs npm)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }
missing=() missing_optional=()
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
for p in "${OPTIONAL[@]}"; do installed "$p" || missing_optional+=("$p"); done

if [[ ${1:-} == --check ]]; then
  ((${#missing_optional[@]})) && printf 'optional, missing: %s\n' "${missing_optional[*]}"
  ((${#missing[@]})) && { printf 'missing: %s\n' "${missing[*]}"; exit 1; }
  echo "all dependencies installed"; exit 0
fi
((${#missing[@]} + ${#missing_optional[@]})) || exit 0

if ((EUID != 0)); then
  command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
else
  SUDO=
fi
echo "install-deps: installing ${missing[*]} ${missing_optional[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=120 update -qq
if ((${#missing[@]})); then
  $SUDO apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends "${missing[@]}"
fi
if ((${#missing_optional[@]})); then
  $SUDO apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends \
    "${missing_optional[@]}" ||
    echo "install-deps: could not install ${missing_optional[*]}: test_ui will skip" >&2
fi
# Debian starts redis-server as a service on install; our tests start their own on free ports.
