#!/usr/bin/env bash
# Requests/s of the 429 path against the proxied path, side by side in one run:
# llmgate (1 worker) in front of `llmgate sim --profile instant`, once with a
# limit that never triggers and once with one that refuses everything.
# Refusing must cost far less than proxying.
# Usage: bench/refusal_path.sh [--duration S] [--bin PATH]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="$HERE/../build/llmgate"
DURATION=8
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    *) sed -n '2,7p' "$0"; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 3; }
source "$HERE/lib.sh"
start_instant_sim
SIM=$SIM_PORT
cat >"$TMP/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"Qwen3-1.7B","messages":[{"role":"user","content":"hi"}],"max_tokens":16}'
wrk.headers["Content-Type"] = "application/json"
LUA
run() { # name limit
  printf 'listen: 127.0.0.1:0\nworkers: 1\naccess_log: off\nbackends:\n  - {name: s, url: "http://127.0.0.1:%s", kind: vllm, models: [Qwen3-1.7B]}\nlimits:\n  rules:\n    - {name: r, key: global, algorithm: token_bucket, limit: %s}\n' "$SIM" "$2" >"$TMP/$1.yaml"
  "$BIN" serve -c "$TMP/$1.yaml" >"$TMP/$1.out" 2>/dev/null & local pid=$!
  PIDS+=($pid)
  local port; port=$(wait_port "$TMP/$1.out")
  # The refusing rule admits its burst of 1 first; everything after is a 429.
  curl -s -o /dev/null "http://127.0.0.1:$port/v1/chat/completions" -H 'content-type: application/json' \
    -d '{"model":"Qwen3-1.7B","messages":[{"role":"user","content":"hi"}]}'
  local out; out=$(wrk -t2 -c64 -d"${DURATION}s" --latency -s "$TMP/post.lua" "http://127.0.0.1:$port/v1/chat/completions")
  local rps non2xx
  rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/{print $5}')
  echo "| $1 | $rps | ${non2xx:-0} |"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
echo "| path | req/s | non-2xx |"
echo "| --- | ---: | ---: |"
run proxied 100000000/second
run refused 1/day
