#!/usr/bin/env bash
# llmgate vs nginx as a plain reverse proxy in front of the same `llmgate sim`.
#
# Starts `llmgate sim --profile instant`, llmgate (`workers: W`) and nginx
# (`worker_processes W`, upstream keepalive) in front of it, all on 127.0.0.1,
# then runs wrk (POST of a small non-streaming chat completion) against each,
# alternating llmgate, nginx, llmgate, nginx, and prints a markdown table with
# requests/s, p50, p99 and the ratio llmgate/nginx.
#
# Usage: bench/proxy_vs_nginx.sh [--workers N] [--duration S] [--connections C]
#                                [--threads T] [--rounds R] [--warmup S]
#                                [--thinking on|off] [--bin PATH] [--keep-logs]
# --thinking off asks the simulator not to think (chat_template_kwargs), so the
# answer has no <think> block for llmgate to split: the pure proxying cost.
# Needs: wrk and nginx (apt-get install wrk nginx-light), curl, python3 or node.
# Installs nothing. Stops every process it started (by PID) on exit.

set -euo pipefail

WORKERS=1
DURATION=10
CONNECTIONS=64
THREADS=2
ROUNDS=2
WARMUP=2
KEEP_LOGS=0
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
BIN="${LLMGATE_BIN:-$REPO/build/llmgate}"
NGINX="${NGINX_BIN:-/usr/sbin/nginx}"
WRK="${WRK_BIN:-$(command -v wrk || true)}"
MODEL="Qwen3-1.7B"
THINKING=on

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --workers) WORKERS="$2"; shift 2 ;;
    --duration) DURATION="${2%s}"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --warmup) WARMUP="${2%s}"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --thinking) THINKING="$2"; shift 2 ;;
    --keep-logs) KEEP_LOGS=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$THINKING" in
  on) BODY='{"model":"Qwen3-1.7B","messages":[{"role":"user","content":"hi"}],"max_tokens":16}' ;;
  off) BODY='{"model":"Qwen3-1.7B","messages":[{"role":"user","content":"hi"}],"max_tokens":16,"chat_template_kwargs":{"enable_thinking":false}}' ;;
  *) echo "--thinking must be on or off, got '$THINKING'" >&2; exit 2 ;;
esac
for v in WORKERS DURATION CONNECTIONS THREADS ROUNDS WARMUP; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "--${v,,} must be a whole number, got '${!v}'" >&2; exit 2; }
done
(( WORKERS >= 1 && DURATION >= 1 && CONNECTIONS >= 1 && THREADS >= 1 && ROUNDS >= 1 )) || { echo "values must be >= 1" >&2; exit 2; }
(( THREADS <= CONNECTIONS )) || THREADS=$CONNECTIONS

missing=()
[[ -n "$WRK" && -x "$WRK" ]] || missing+=(wrk)
[[ -x "$NGINX" ]] || missing+=(nginx)
command -v curl >/dev/null || missing+=(curl)
if (( ${#missing[@]} )); then
  echo "error: missing ${missing[*]}. Install with: apt-get install wrk nginx-light curl" >&2
  exit 3
fi
if [[ ! -x "$BIN" ]]; then
  echo "error: llmgate binary not found at $BIN (build it first, or pass --bin / set LLMGATE_BIN)" >&2
  exit 3
fi
if command -v python3 >/dev/null; then
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
elif command -v node >/dev/null; then
  free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
else
  echo "error: need python3 or node to pick a free port" >&2; exit 3
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/llmgate-bench.XXXXXX")"
PIDS=()

stop_pid() {  # stop_pid PID: SIGTERM, wait up to 5 s, then SIGKILL
  local pid="$1" i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
  if (( KEEP_LOGS )) || (( rc != 0 )); then
    echo "logs kept in $TMP" >&2
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_line FILE REGEX PID SECONDS: print the first line of FILE matching REGEX.
wait_line() {
  local file="$1" re="$2" pid="$3" secs="$4" i line
  for ((i = 0; i < secs * 20; i++)); do
    line="$(grep -m1 -E "$re" "$file" 2>/dev/null || true)"
    if [[ -n "$line" ]]; then echo "$line"; return 0; fi
    kill -0 "$pid" 2>/dev/null || { echo "error: process $pid exited; its output:" >&2; tail -n 30 "$file" >&2; return 1; }
    sleep 0.05
  done
  echo "error: timed out waiting for /$re/ in $file" >&2; tail -n 30 "$file" >&2
  return 1
}

# wait_http URL SECONDS: wait until a POST of BODY to URL answers 200.
wait_http() {
  local url="$1" secs="$2" i code
  for ((i = 0; i < secs * 10; i++)); do
    code="$(curl -s -o /dev/null -w '%{http_code}' -m 2 -H 'content-type: application/json' -d "$BODY" "$url" || true)"
    [[ "$code" == 200 ]] && return 0
    sleep 0.1
  done
  echo "error: $url did not answer 200 (last: $code)" >&2
  return 1
}

echo "# llmgate vs nginx: workers=$WORKERS duration=${DURATION}s connections=$CONNECTIONS threads=$THREADS rounds=$ROUNDS" >&2

# --- the simulated backend -------------------------------------------------
"$BIN" sim --host 127.0.0.1 --port 0 --model "$MODEL" --profile instant >"$TMP/sim.log" 2>&1 &
PIDS+=($!)
SIM_PID=$!
line="$(wait_line "$TMP/sim.log" '^llmgate sim listening on 127\.0\.0\.1:[0-9]+' "$SIM_PID" 15)"
SIM_PORT="${line##*:}"
SIM_PORT="${SIM_PORT%%[^0-9]*}"
echo "sim        pid $SIM_PID on 127.0.0.1:$SIM_PORT" >&2

# --- llmgate -----------------------------------------------------------------
cat >"$TMP/llmgate.yaml" <<EOF
listen: 127.0.0.1:0
workers: $WORKERS
access_log: off # as nginx's below
backends:
  - {name: sim, url: "http://127.0.0.1:$SIM_PORT", kind: vllm, models: [$MODEL]}
models:
  - {name: $MODEL}
EOF
"$BIN" serve -c "$TMP/llmgate.yaml" >"$TMP/llmgate.log" 2>&1 &
PIDS+=($!)
GW_PID=$!
line="$(wait_line "$TMP/llmgate.log" '^llmgate listening on 127\.0\.0\.1:[0-9]+' "$GW_PID" 15)"
GW_PORT="${line##*:}"
GW_PORT="${GW_PORT%%[^0-9]*}"
echo "llmgate    pid $GW_PID on 127.0.0.1:$GW_PORT" >&2

# --- nginx -------------------------------------------------------------------
NGINX_PORT="$(free_port)"
mkdir -p "$TMP/nginx/logs" "$TMP/nginx/temp"
NGINX_USER=""
(( EUID == 0 )) && NGINX_USER="user root root;"
cat >"$TMP/nginx/nginx.conf" <<EOF
$NGINX_USER
daemon off;
master_process on;
worker_processes $WORKERS;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events {
  worker_connections 4096;
}
http {
  access_log off;
  client_body_temp_path $TMP/nginx/temp/client_body;
  proxy_temp_path $TMP/nginx/temp/proxy;
  fastcgi_temp_path $TMP/nginx/temp/fastcgi;
  uwsgi_temp_path $TMP/nginx/temp/uwsgi;
  scgi_temp_path $TMP/nginx/temp/scgi;
  keepalive_requests 1000000;
  upstream sim {
    server 127.0.0.1:$SIM_PORT;
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://sim;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
    }
  }
}
EOF
"$NGINX" -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" >"$TMP/nginx/stdout.log" 2>&1 &
PIDS+=($!)
NGINX_PID=$!
echo "nginx      pid $NGINX_PID on 127.0.0.1:$NGINX_PORT" >&2

GW_URL="http://127.0.0.1:$GW_PORT/v1/chat/completions"
NGINX_URL="http://127.0.0.1:$NGINX_PORT/v1/chat/completions"
wait_http "$GW_URL" 10
wait_http "$NGINX_URL" 10 || { cat "$TMP/nginx/logs/error.log" "$TMP/nginx/stdout.log" >&2 || true; exit 1; }
kill -0 "$NGINX_PID" 2>/dev/null || { echo "error: nginx exited" >&2; cat "$TMP/nginx/logs/error.log" >&2; exit 1; }

cat >"$TMP/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer EMPTY"
EOF

# to_ms VALUE-WITH-UNIT (wrk prints us, ms, s, m)
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
    printf "%.3f", n }'
}

# run_wrk NAME URL SECONDS: run wrk (in the background, so that a signal to
# this script is handled at once), set RESULT="rps p50ms p99ms non2xx errors"
RESULT=""
run_wrk() {
  local name="$1" url="$2" secs="$3" out wpid rc=0
  out="$TMP/wrk-$name-$RANDOM.txt"
  timeout $((secs + 60)) "$WRK" -t "$THREADS" -c "$CONNECTIONS" -d "${secs}s" --latency -s "$TMP/post.lua" "$url" >"$out" 2>&1 &
  wpid=$!
  PIDS+=("$wpid")
  wait "$wpid" || rc=$?
  unset 'PIDS[${#PIDS[@]}-1]'
  if (( rc != 0 )); then echo "error: wrk against $name failed:" >&2; cat "$out" >&2; return 1; fi
  local rps p50 p99 non2xx errors
  rps="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
  p50="$(awk '$1 == "50%" {print $2}' "$out")"
  p99="$(awk '$1 == "99%" {print $2}' "$out")"
  non2xx="$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")"
  errors="$(awk '/Socket errors:/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' "$out")"
  [[ -n "$rps" && -n "$p50" && -n "$p99" ]] || { echo "error: could not parse wrk output:" >&2; cat "$out" >&2; return 1; }
  RESULT="$rps $(to_ms "$p50") $(to_ms "$p99") ${non2xx:-0} ${errors:-0}"
}

if (( WARMUP > 0 )); then
  echo "warming up (${WARMUP}s each)..." >&2
  run_wrk llmgate-warmup "$GW_URL" "$WARMUP"
  run_wrk nginx-warmup "$NGINX_URL" "$WARMUP"
fi

ROWS=()
for ((r = 1; r <= ROUNDS; r++)); do
  for target in llmgate nginx; do
    if [[ $target == llmgate ]]; then url="$GW_URL"; else url="$NGINX_URL"; fi
    echo "round $r: $target (${DURATION}s)..." >&2
    run_wrk "$target" "$url" "$DURATION"
    ROWS+=("$r $target $RESULT")
    kill -0 "$GW_PID" 2>/dev/null || { echo "error: llmgate died during the run" >&2; tail -n 30 "$TMP/llmgate.log" >&2; exit 1; }
  done
done

printf '%s\n' "${ROWS[@]}" | awk -v workers="$WORKERS" -v thinking="$THINKING" -v dur="$DURATION" -v conns="$CONNECTIONS" -v threads="$THREADS" '
  {
    round = $1; t = $2; rps = $3; p50 = $4; p99 = $5; bad = $6; err = $7
    rows[NR] = sprintf("| %d | %s | %.0f | %.3f | %.3f | %d | %d |", round, t, rps, p50, p99, bad, err)
    n[t]++; sr[t] += rps; s50[t] += p50; s99[t] += p99; sbad[t] += bad; serr[t] += err
  }
  END {
    printf "## llmgate vs nginx (reverse proxy to llmgate sim, profile instant)\n\n"
    printf "workers=%s, wrk -t%s -c%s -d%ss, POST /v1/chat/completions (non-streaming, max_tokens 16, thinking %s)\n\n", workers, threads, conns, dur, thinking
    print "| round | proxy | req/s | p50 ms | p99 ms | non-2xx | socket errors |"
    print "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"
    for (i = 1; i <= NR; i++) print rows[i]
    print ""
    print "| proxy | mean req/s | mean p50 ms | mean p99 ms |"
    print "| --- | ---: | ---: | ---: |"
    split("llmgate nginx", order, " ")
    for (k = 1; k <= 2; k++) { t = order[k]; if (n[t]) printf "| %s | %.0f | %.3f | %.3f |\n", t, sr[t]/n[t], s50[t]/n[t], s99[t]/n[t] }
    print ""
    if (n["nginx"] && sr["nginx"] > 0) {
      printf "**req/s ratio llmgate/nginx: %.2f**", (sr["llmgate"]/n["llmgate"]) / (sr["nginx"]/n["nginx"])
      if (s50["nginx"] > 0) printf " (p50 ratio %.2f, p99 ratio %.2f)", s50["llmgate"]/s50["nginx"], s99["llmgate"]/s99["nginx"]
      printf "\n"
    }
    if (sbad["llmgate"] + sbad["nginx"] + serr["llmgate"] + serr["nginx"] > 0)
      print "\nWARNING: some responses were not 2xx or had socket errors; the numbers above are suspect."
  }'
