#!/usr/bin/env bash
# Installs the Debian packages llmgate needs to build, test and benchmark,
# only those missing. Needs root or sudo. Node.js is taken as it is when
# present (Debian's npm conflicts with a Node that brought its own).
set -euo pipefail

packages=(
  cmake ninja-build g++ ccache pkg-config make
  libboost1.81-dev libboost-json1.81-dev libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev
  libhiredis-dev libgtest-dev libgmock-dev libbenchmark-dev libhowardhinnant-date-dev tzdata libpcre2-dev libutf8proc-dev
  curl wrk nginx-light procps redis-server redis-tools
)
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)

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
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
