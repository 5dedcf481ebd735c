#!/usr/bin/env bash
# Installs the Debian packages llmgate needs to build, test and benchmark,
# only those missing. Needs root or sudo. Node.js is taken as it is when
# present (Debian's npm conflicts with a Node that brought its own).
#   scripts/install-deps.sh          what `make run` and `make test` need
#   scripts/install-deps.sh --bench  also the peers bench/peers/ compares with
#                                    (HAProxy, FastAPI's stack) and gnuplot
#   scripts/install-deps.sh --fuzz   also clang and libFuzzer (make fuzz)
set -euo pipefail

packages=(
  cmake ninja-build g++ ccache pkg-config make
  libboost1.81-dev libboost-json1.81-dev libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev
  libhiredis-dev libgtest-dev libgmock-dev libbenchmark-dev libhowardhinnant-date-dev tzdata libpcre2-dev libutf8proc-dev libssl-dev openssl libmimalloc-dev
  curl wrk nginx-light procps redis-server redis-tools prometheus chromium
)
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)
case "${1:-}" in
  --bench) packages+=(haproxy python3 python3-fastapi python3-uvicorn python3-httpx python3-limits python3-requests python3-uvloop python3-httptools gnuplot-nox linux-perf) ;;
  --fuzz) packages+=(clang-14 libclang-rt-14-dev) ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# Several packages bring a service (prometheus, wanted only for promtool;
# nginx, haproxy and redis, which the tests and benches start themselves on
# ports of their own): while installing, a policy-rc.d keeps every service
# from starting, and afterwards those are disabled, so nothing is left
# running or starting at boot.
policy_added=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT # removed however this script ends
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  policy_added=1
fi
status=0
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
[ "$policy_added" = 1 ] && $sudo rm -f /usr/sbin/policy-rc.d
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  for service in prometheus nginx haproxy redis-server; do
    [[ " ${missing[*]} " == *" ${service/nginx/nginx-light} "* ]] && $sudo systemctl disable --now "$service.service" >/dev/null 2>&1 || true
  done
  true
fi
exit "$status"
