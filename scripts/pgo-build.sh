#!/usr/bin/env bash
# A profile-guided build of llmgate (GCC's -fprofile-generate / -fprofile-use):
# `make build-pgo`. The binary is built once instrumented, run on a training
# load on loopback (the instant simulator behind the gateway, driven by
# `llmgate bench`: whole answers and streams, thinking off and on, a limit
# that never triggers and one that refuses nearly everything), and built
# again with what the run counted, so the compiler lays out the hot path
# together and knows which branches are taken. Measured against the default
# build in docs/BENCHMARKS.md ("A profile-guided build").
#
# The two builds share one directory (the profile's file names carry the
# object files' paths); the profile is kept in DIR/profile. Code the
# training never ran is optimized as in the default build
# (-fprofile-partial-training), not for size.
#
# Usage: scripts/pgo-build.sh [DIR]   (default: build-pgo; the binary is DIR/llmgate)
# Needs what `make build` needs, and curl. Stops what it started (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-build-pgo}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
PROFILE="$DIR/profile"
JOBS="${JOBS:-2}"

echo "pgo: 1/3 the instrumented build in $DIR"
rm -rf "$PROFILE"
cmake -S . -B "$DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="-fprofile-generate=$PROFILE -fprofile-update=atomic" \
  -DCMAKE_EXE_LINKER_FLAGS="-fprofile-generate=$PROFILE" >/dev/null
ninja -C "$DIR" -j"$JOBS" llmgate

echo "pgo: 2/3 the training run"
BIN="$DIR/llmgate"
source bench/lib.sh
start_instant_sim
# gateway RULE: a gateway in front of the simulator with a per-client limit
# of RULE requests a second; its port in GW_PORT, its PID in GW.
gateway() {
  local conf="$TMP/gw-$1.yaml"
  printf 'listen: 127.0.0.1:0\nworkers: 1\naccess_log: off\nbackends:\n  - {name: s, url: "http://127.0.0.1:%s", kind: vllm, models: [Qwen3-1.7B]}\nlimits:\n  rules:\n    - {name: per-client, key: client_ip, algorithm: fixed_window, limit: %s/second}\n' \
    "$SIM_PORT" "$1" >"$conf"
  "$BIN" serve -c "$conf" >"$TMP/gw-$1.out" 2>&1 &
  GW=$!
  PIDS+=("$GW")
  GW_PORT=$(wait_listening "$TMP/gw-$1.out" "$GW")
}
load() { "$BIN" bench -q --users 16 --prompt-tokens 16..256 --output-tokens 16 --drain 10 "$@" >/dev/null; }
gateway 1000000
url="http://127.0.0.1:$GW_PORT/v1/chat/completions"
load --no-stream -n 20000 "$url"
load -n 4000 "$url"
load --no-stream --thinking -n 4000 "$url"
load --thinking -n 2000 "$url"
# The gateway's own profile is written when it exits (by SIGTERM, as every
# other process of the run): stopped here, before the next one starts.
stop_pid "$GW"
gateway 10
load --no-stream -n 10000 "http://127.0.0.1:$GW_PORT/v1/chat/completions"
stop_pid "$GW"
for p in "${PIDS[@]}"; do stop_pid "$p"; done
PIDS=()
compgen -G "$PROFILE/*.gcda" >/dev/null || { echo "pgo: the training run wrote no profile in $PROFILE" >&2; exit 1; }

echo "pgo: 3/3 the build that uses the profile"
cmake -S . -B "$DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="-fprofile-use=$PROFILE -fprofile-partial-training -Wno-missing-profile" \
  -DCMAKE_EXE_LINKER_FLAGS="" >/dev/null
ninja -C "$DIR" -j"$JOBS" llmgate
echo "pgo: $DIR/llmgate"
