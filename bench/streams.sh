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
#   - CPU per stream: the gateway's user and system time from the moment the
#     streams are opened until the last has ended, divided by the streams
#     (each one: its request, T token events, its end); per token event, that
#     divided by T.
# --nginx: nginx (Debian's, one worker, no master: proxy_pass with upstream
# keep-alive and proxy_buffering off, as an SSE relay needs) measured the same
# way beside it, in front of the same simulator.
# Each relayed stream holds two descriptors in the gateway (client and
# backend); the bench, the simulator and the gateway are separate processes.
#
# Usage: bench/streams.sh [--streams N] [--tokens T] [--bin PATH] [--nginx]
# STREAMS_EXTRA="YAML line" adds a top-level line to the gateway's config
# (e.g. "cache: {mode: off}").
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
BIN="${LLMGATE_BIN:-$REPO/build/llmgate}"
STREAMS=5000
TOKENS=30 # 15 s a stream
NGINX=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --streams) STREAMS="$2"; shift 2 ;;
    --tokens) TOKENS="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --nginx) NGINX=1; shift ;;
    -h|--help) sed -n '2,/^[^#]/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[[ "$STREAMS" =~ ^[0-9]+$ && "$TOKENS" =~ ^[0-9]+$ ]] || { echo "--streams and --tokens are whole numbers" >&2; exit 2; }
need=$((STREAMS * 2 + 200))
(( $(ulimit -n) >= need )) || ulimit -n "$need" 2>/dev/null ||
  { echo "error: the gateway needs $need descriptors; ulimit -n is $(ulimit -n)" >&2; exit 3; }

(( NGINX == 0 )) || [[ -x /usr/sbin/nginx ]] || { echo "--nginx needs nginx (scripts/install-deps.sh --bench)" >&2; exit 3; }

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

# through NAME PID PORT: the streams held through a proxy (its process PID,
# listening on PORT); its figures go into FIG[NAME.*].
declare -A FIG
through() {
  local name="$1" pid="$2" port="$3" base cpu0 cpu1
  # Warm it (pools, allocator) with a few streams, then take its resting size.
  "$BIN" bench "http://127.0.0.1:$port" --users 8 --requests 16 --output-tokens 2 --quiet >/dev/null
  sleep 1
  FIG[$name.before]="$(rss_kib "$pid")"
  echo "$name: holding $STREAMS streams of $TOKENS tokens, then probing..." >&2
  base="$(sim_ttft | awk '{print $2}')"
  cpu0="$(tree_cpu "$pid")"
  hold "http://127.0.0.1:$port" "$name"
  wait_first_tokens "$base"
  FIG[$name.held]="$(rss_kib "$pid")"
  probe "http://127.0.0.1:$port" "$name"
  FIG[$name.probe]="$PROBE"
  finish_hold "$name"
  cpu1="$(tree_cpu "$pid")"
  # The probe's 40 short requests are counted too: a few ms beside seconds.
  FIG[$name.user]="$(echo "$cpu0 $cpu1" | awk '{print $3 - $1}')"
  FIG[$name.system]="$(echo "$cpu0 $cpu1" | awk '{print $4 - $2}')"
  FIG[$name.peak]="$(hwm_kib "$pid")"
  FIG[$name.after]="$(rss_kib "$pid")"
  FIG[$name.starts]="$(json_field "$TMP/hold-$name.json" 'd["ttft_ms"]["p50"]')"
}

through llmgate "$GW_PID" "$GW_PORT"
names=(llmgate)
if (( NGINX )); then
  NGX_PORT="$(free_port)"
  NGINX_CONNECTIONS=$((STREAMS * 4 + 200)) write_nginx_conf "$TMP/nginx" "$NGX_PORT" 1 off
  /usr/sbin/nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" &
  NGX_PID=$!
  PIDS+=("$NGX_PID")
  wait_http "http://127.0.0.1:$NGX_PORT/health" "$NGX_PID"
  through nginx "$NGX_PID" "$NGX_PORT"
  names+=(nginx)
fi
STARTS_DIRECT_MS="$(json_field "$TMP/hold-direct.json" 'd["ttft_ms"]["p50"]')"

args=("$STREAMS" "$TOKENS" "$TICK" "$DIRECT" "$STARTS_DIRECT_MS")
for n in "${names[@]}"; do
  args+=("$n" "${FIG[$n.before]}" "${FIG[$n.held]}" "${FIG[$n.peak]}" "${FIG[$n.after]}" "${FIG[$n.probe]}"
    "${FIG[$n.starts]}" "${FIG[$n.user]}" "${FIG[$n.system]}")
done
"$PY" - "${args[@]}" <<'EOF'
import sys
a = sys.argv[1:]
n, tokens, tick = int(a[0]), int(a[1]), int(a[2])
direct, start_direct = float(a[3]), float(a[4])
proxies = []
for i in range(5, len(a), 9):
    name, *v = a[i:i + 9]
    before, held, peak, after = (int(x) for x in v[:4])
    probe, starts, user, system = (float(x) for x in v[4:])
    proxies.append((name, before, held, peak, after, probe, starts, user, system))
print(f"{n} concurrent streams of {tokens} tokens (a token every 500 ms), each proxy with one worker:\n")
print("| figure | " + " | ".join(p[0] for p in proxies) + " |")
print("| --- |" + " ---: |" * len(proxies))
def row(label, cells):
    print(f"| {label} | " + " | ".join(cells) + " |")
row("RSS before / with every stream held / peak / after (MiB)",
    [f"{p[1]/1024:.1f} / {p[2]/1024:.1f} / {p[3]/1024:.1f} / {p[4]/1024:.1f}" for p in proxies])
row("**memory per held stream** (held − before)", [f"**{(p[2] - p[1]) / n:.1f} KiB**" for p in proxies])
row(f"time to first token of the {n} streams opened at once, p50 (straight: {start_direct:.0f} ms)",
    [f"{p[6]:.0f} ms" for p in proxies])
row(f"probe while they are held: client TTFT − the simulator's own (straight: {direct*1000:.2f} ms)",
    [f"{p[5]*1000:.2f} ms" for p in proxies])
row("**first-token overhead** (the difference)", [f"**{(p[5] - direct)*1000:.2f} ms**" for p in proxies])
row("CPU per stream, user / system (µs)", [f"{p[7]/tick/n*1e6:.0f} / {p[8]/tick/n*1e6:.0f}" for p in proxies])
row(f"**CPU per token event** (per stream / {tokens})", [f"**{(p[7]+p[8])/tick/n/tokens*1e6:.1f} µs**" for p in proxies])
if len(proxies) == 2:
    g, x = proxies
    mem = (g[2] - g[1]) / (x[2] - x[1]) if x[2] != x[1] else float("nan")
    cpu = (g[7] + g[8]) / (x[7] + x[8]) if x[7] + x[8] else float("nan")
    print(f"\n{g[0]} / {x[0]}: memory per held stream {mem:.2f}, CPU per stream {cpu:.2f}")
EOF
