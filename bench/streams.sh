#!/usr/bin/env bash
# Holds many concurrent slow SSE streams (5,000 by default) through one
# llmgate (1 worker) in front of `llmgate sim --profile slow` (a token every
# 500 ms for any number of sequences), and reports:
#   - gateway memory per held stream: (RSS with every stream held − RSS before) / streams
#   - first-token overhead: while the streams are held, 40 short requests one
#     after another; (client TTFT − the simulator's own TTFT, from its
#     histogram) through llmgate minus the same straight at the simulator.
#     Subtracting the simulator's own figure removes the wait for its next
#     500 ms step, which would otherwise drown the difference.
# Each relayed stream holds two descriptors in the gateway (client and
# backend); the bench, the simulator and the gateway are separate processes.
#
# Usage: bench/streams.sh [--streams N] [--tokens T] [--bin PATH]
# STREAMS_EXTRA="YAML line" adds a top-level line to the gateway's config
# (e.g. "cache: {mode: off}").
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
BIN="${LLMGATE_BIN:-$REPO/build/llmgate}"
STREAMS=5000
TOKENS=30 # 15 s a stream

while [[ $# -gt 0 ]]; do
  case "$1" in
    --streams) STREAMS="$2"; shift 2 ;;
    --tokens) TOKENS="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[[ "$STREAMS" =~ ^[0-9]+$ && "$TOKENS" =~ ^[0-9]+$ ]] || { echo "--streams and --tokens are whole numbers" >&2; exit 2; }
need=$((STREAMS * 2 + 200))
(( $(ulimit -n) >= need )) || ulimit -n "$need" 2>/dev/null ||
  { echo "error: the gateway needs $need descriptors; ulimit -n is $(ulimit -n)" >&2; exit 3; }

source "$HERE/lib.sh"

# The simulator's own TTFT histogram: "sum count".
sim_ttft() {
  curl -s "http://127.0.0.1:$SIM_PORT/metrics" |
    awk '/^vllm:time_to_first_token_seconds_sum/ {s = $2} /^vllm:time_to_first_token_seconds_count/ {c = $2} END {print s + 0, c + 0}'
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

"$BIN" sim --host 127.0.0.1 --port 0 --profile slow >"$TMP/sim.log" 2>&1 &
SIM_PID=$!
PIDS+=("$SIM_PID")
SIM_PORT="$(wait_listening "$TMP/sim.log" "$SIM_PID")"

cat >"$TMP/llmgate.yaml" <<EOF
listen: 127.0.0.1:0
workers: 1
access_log: off
${STREAMS_EXTRA:-}
server: {max_connections: $((STREAMS + 100)), max_connections_per_client: 0}
backends:
  - {name: sim, url: "http://127.0.0.1:$SIM_PORT", kind: vllm, models: [Qwen3-1.7B]}
models:
  - {name: Qwen3-1.7B}
EOF
start_gateway

# hold URL NAME: N streams at once in the background (each to its end); sets HOLD_PID.
hold() {
  "$BIN" bench "$1" --users "$STREAMS" --requests "$STREAMS" --prompt-tokens 16 --output-tokens "$TOKENS" \
    --timeout 300 --drain 300 --quiet --json "$TMP/hold-$2.json" >"$TMP/hold-$2.txt" &
  HOLD_PID=$!
  PIDS+=("$HOLD_PID")
}
# Waits until the simulator has sent the first token of N more streams than $1 (bounded).
wait_first_tokens() {
  local base="$1" i count
  for ((i = 0; i < 600; i++)); do
    count="$(sim_ttft | awk '{print $2}')"
    (( count - base >= STREAMS )) && return 0
    sleep 0.1
  done
  echo "error: the $STREAMS streams did not all start within 60 s" >&2; return 1
}
# probe URL NAME: 40 short requests one after another while the streams are
# held; sets PROBE (mean client TTFT minus the simulator's own, seconds).
probe() {
  local before after client
  before="$(sim_ttft)"
  "$BIN" bench "$1" --users 1 --requests 40 --prompt-tokens 16 --output-tokens 2 --quiet --json "$TMP/probe-$2.json" >/dev/null
  after="$(sim_ttft)"
  client="$(json_field "$TMP/probe-$2.json" 'd["ttft_ms"]["mean"] / 1000')"
  PROBE="$(echo "$before $after $client" | awk '{ print $5 - ($3 - $1) / (($4 - $2) ? ($4 - $2) : 1) }')"
}
finish_hold() {
  wait "$HOLD_PID"
  local ok
  ok="$(json_field "$TMP/hold-$1.json" 'd["requests"]["ok"]')"
  (( ok == STREAMS )) || { echo "error: $1: only $ok of $STREAMS streams completed" >&2; cat "$TMP/hold-$1.txt" >&2; exit 1; }
}

# Straight at the simulator: the probe's baseline under the same number of streams.
echo "direct: holding $STREAMS streams of $TOKENS tokens, then probing..." >&2
base="$(sim_ttft | awk '{print $2}')"
hold "http://127.0.0.1:$SIM_PORT" direct
wait_first_tokens "$base"
probe "http://127.0.0.1:$SIM_PORT" direct
DIRECT="$PROBE"
finish_hold direct

# Warm the gateway (pools, allocator) with a few streams, then take its resting size.
"$BIN" bench "http://127.0.0.1:$GW_PORT" --users 8 --requests 16 --output-tokens 2 --quiet >/dev/null
sleep 1
RSS_BEFORE="$(rss_kib "$GW_PID")"
echo "llmgate: holding $STREAMS streams of $TOKENS tokens, then probing..." >&2
base="$(sim_ttft | awk '{print $2}')"
hold "http://127.0.0.1:$GW_PORT" llmgate
wait_first_tokens "$base"
RSS_HELD="$(rss_kib "$GW_PID")"
probe "http://127.0.0.1:$GW_PORT" llmgate
VIA="$PROBE"
finish_hold llmgate
RSS_PEAK="$(hwm_kib "$GW_PID")"
RSS_AFTER="$(rss_kib "$GW_PID")"
STARTS_MS="$(json_field "$TMP/hold-llmgate.json" 'd["ttft_ms"]["p50"]')"
STARTS_DIRECT_MS="$(json_field "$TMP/hold-direct.json" 'd["ttft_ms"]["p50"]')"

"$PY" - "$STREAMS" "$TOKENS" "$RSS_BEFORE" "$RSS_HELD" "$RSS_PEAK" "$RSS_AFTER" "$DIRECT" "$VIA" "$STARTS_DIRECT_MS" "$STARTS_MS" <<'EOF'
import sys
n, tokens, before, held, peak, after = (int(x) for x in sys.argv[1:7])
direct, via, start_direct, start_via = (float(x) for x in sys.argv[7:11])
print(f"{n} concurrent streams of {tokens} tokens (a token every 500 ms) through one llmgate worker:\n")
print("| figure | value |")
print("| --- | ---: |")
print(f"| gateway RSS before / with every stream held / peak / after | {before/1024:.1f} / {held/1024:.1f} / {peak/1024:.1f} / {after/1024:.1f} MiB |")
print(f"| **gateway memory per held stream** (held − before) | **{(held - before) / n:.1f} KiB** |")
print(f"| time to first token of the {n} streams opened at once, p50: straight / through llmgate | {start_direct:.0f} / {start_via:.0f} ms |")
print(f"| probe while they are held: client TTFT − the simulator's own, straight / through llmgate | {direct*1000:.2f} / {via*1000:.2f} ms |")
print(f"| **first-token overhead of the gateway** (the difference) | **{(via - direct)*1000:.2f} ms** |")
EOF
