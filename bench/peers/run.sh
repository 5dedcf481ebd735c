#!/usr/bin/env bash
# llmgate against the gateways its users would pick instead, side by side in
# one run, each in front of the same `llmgate sim --profile instant`:
#   llmgate   (workers: W; a fixed_window rule on the client address)
#   nginx     (worker_processes W; upstream keep-alive; limit_req)
#   haproxy   (nbthread W; http-reuse; stick-table http_req_rate)
#   express   (W processes via node:cluster; express-rate-limit; keep-alive agent)
#   fastapi   (uvicorn --workers W, uvloop+httptools; async httpx; python3-limits fixed window)
#   seed      (the same FastAPI app calling the backend with a blocking
#              requests.post inside `async def`, as the seed guide's handler does)
# For each worker count, two limits: one that never triggers (the cost of the
# proxy path) and one that refuses nearly everything (10/second per client:
# the cost of the refusal path). wrk POSTs a small non-streaming chat
# completion (max_tokens 16, thinking off) with the same threads and
# connections for every peer. Prints a markdown table: req/s, p50, p99, the
# CPU the peer's processes used per request (user and system microseconds,
# from /proc/PID/stat of the peer and its children around the wrk run) and
# each peer's ratio to llmgate. A last line gives the harness alone: wrk
# straight to the simulator, and the CPU each uses per request.
# --syscalls: also count each peer's system calls during the run, per request
# by name, and the recvfrom calls that found nothing (EAGAIN): with perf
# (linux-perf; the kernel's syscall tracepoints, counted in the kernel, which
# barely slows the peer) or else strace -c, which slows the peer so much that
# a backend's answer is always there when it reads (no EAGAIN shows) and its
# req/s and latencies are not comparable.
# --rounds N: run every peer N times, round after round (the peers' order
# turned by one each round, so none always goes first), and print each
# figure's median over the rounds; the ratio is the median of the rounds'
# paired ratios (llmgate's req/s over the peer's in the same round, run
# seconds apart), with every round's ratio beside it. One run on the shared
# cores moves by ±20%; the median of paired rounds is what to quote.
# --pin-peer, --pin-sim, --pin-wrk CPUS: run the peer, the simulator or wrk
# on those CPUs only (taskset -c): with one worker, where the proxy's thread
# lands (alone on a core, or beside the simulator) moves its rate by a
# quarter, more than most changes to its code.
#
# Usage: bench/peers/run.sh [--workers "1 2"] [--duration S] [--connections C]
#          [--peers "llmgate nginx haproxy express fastapi seed"]
#          [--limits "never triggers"] [--bin PATH] [--out FILE] [--syscalls] [--rounds N]
#          [--pin-peer CPUS] [--pin-sim CPUS] [--pin-wrk CPUS]
# Needs: scripts/install-deps.sh --bench (nginx, haproxy, wrk, FastAPI stack),
# node and npm (npm ci in bench/peers on first use). Stops what it started.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
BIN="${LLMGATE_BIN:-$REPO/build/llmgate}"
WORKER_COUNTS="1 2"
DURATION=8
CONNECTIONS=64
THREADS=2
PEERS="llmgate nginx haproxy express fastapi seed"
LIMITS="never triggers"
OUT=""
SYSCALLS=0
ROUNDS=1
PIN_PEER=() PIN_SIM=() PIN_WRK=() # taskset -c CPUS, or nothing

usage() { sed -n '2,/^[^#]/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --workers) WORKER_COUNTS="$2"; shift 2 ;;
    --duration) DURATION="${2%s}"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --peers) PEERS="$2"; shift 2 ;;
    --limits) LIMITS="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --syscalls) SYSCALLS=1; shift ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --pin-peer) PIN_PEER=(taskset -c "$2"); shift 2 ;;
    --pin-sim) PIN_SIM=(taskset -c "$2"); shift 2 ;;
    --pin-wrk) PIN_WRK=(taskset -c "$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
[[ "$DURATION" =~ ^[0-9]+$ && "$CONNECTIONS" =~ ^[0-9]+$ && "$ROUNDS" =~ ^[1-9][0-9]*$ ]] ||
  { echo "--duration, --connections and --rounds are whole numbers" >&2; exit 2; }
source "$HERE/../lib.sh"
[[ -x "$BIN" ]] || { echo "error: no llmgate at $BIN (make build, or --bin)" >&2; exit 3; }
missing=()
for c in wrk curl; do command -v "$c" >/dev/null || missing+=("$c"); done
for p in $PEERS; do
  case "$p" in
    nginx) [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light) ;;
    haproxy) command -v haproxy >/dev/null || missing+=(haproxy) ;;
    express) command -v node >/dev/null || missing+=(nodejs) ;;
    fastapi|seed) "$PY" -c 'import fastapi, uvicorn, httpx, limits, requests' 2>/dev/null || missing+=(python3-fastapi) ;;
    llmgate) ;;
    *) echo "unknown peer: $p" >&2; exit 2 ;;
  esac
done
(( ${#missing[@]} == 0 )) || { echo "error: missing ${missing[*]}: run scripts/install-deps.sh --bench" >&2; exit 3; }
if [[ " $PEERS " == *" express "* && ! -d "$HERE/node_modules/express-rate-limit" ]]; then
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
fi

BODY='{"model":"Qwen3-1.7B","messages":[{"role":"user","content":"hi"}],"max_tokens":16,"chat_template_kwargs":{"enable_thinking":false}}'
cat >"$TMP/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
EOF

# wait_ready URL PID: until a POST answers 200 or 429 (bounded).
wait_ready() {
  local url="$1" pid="$2" i code=""
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || { echo "error: $url: its process exited" >&2; return 1; }
    code="$(curl -s -o /dev/null -w '%{http_code}' -m 2 -H 'content-type: application/json' -d "$BODY" "$url" || true)"
    [[ "$code" == 200 || "$code" == 429 ]] && return 0
    sleep 0.1
  done
  echo "error: $url never answered (last status: $code)" >&2
  return 1
}

"${PIN_SIM[@]}" "$BIN" sim --host 127.0.0.1 --port 0 --profile instant >"$TMP/sim.log" 2>&1 &
SIM_PID=$!
PIDS+=("$SIM_PID")
for ((i = 0; i < 100; i++)); do grep -q 'listening on' "$TMP/sim.log" && break; sleep 0.05; done
SIM_PORT="$(grep -o '[0-9]*$' "$TMP/sim.log" | head -1)"
[[ -n "$SIM_PORT" ]] || { echo "error: the simulator did not start" >&2; exit 1; }
UPSTREAM="http://127.0.0.1:$SIM_PORT"

# start_peer NAME WORKERS LIMIT PORT: starts it in the background; sets PEER_PID.
start_peer() {
  local name="$1" w="$2" limit="$3" port="$4" rate
  rate=$(limit_rate "$limit")
  local log="$TMP/$name-$w-$limit.log"
  case "$name" in
    llmgate)
      cat >"$TMP/llmgate.yaml" <<EOF
listen: 127.0.0.1:$port
workers: $w
access_log: off
backends:
  - {name: sim, url: "$UPSTREAM", kind: vllm, models: [Qwen3-1.7B]}
models:
  - {name: Qwen3-1.7B}
limits:
  rules:
    - {name: per-client, key: client_ip, algorithm: fixed_window, limit: $rate/second}
EOF
      "${PIN_PEER[@]}" "$BIN" serve -c "$TMP/llmgate.yaml" >"$log" 2>&1 & ;;
    nginx)
      write_nginx_conf "$TMP/nginx" "$port" "$w" on "$limit"
      "${PIN_PEER[@]}" /usr/sbin/nginx -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" >"$log" 2>&1 & ;;
    haproxy)
      cat >"$TMP/haproxy.cfg" <<EOF
global
  nbthread $w
  maxconn 8000
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 600s
  timeout server 600s
frontend fe
  bind 127.0.0.1:$port
  stick-table type ip size 1m expire 10s store http_req_rate(1s)
  http-request track-sc0 src
  http-request deny deny_status 429 if { sc_http_req_rate(0) gt $rate }
  default_backend be
backend be
  http-reuse always
  server sim 127.0.0.1:$SIM_PORT maxconn 256
EOF
      "${PIN_PEER[@]}" haproxy -db -f "$TMP/haproxy.cfg" >"$log" 2>&1 & ;;
    express)
      UPSTREAM="$UPSTREAM" PORT="$port" WORKERS="$w" LIMIT="$rate" WINDOW_MS=1000 \
        "${PIN_PEER[@]}" node "$HERE/express_proxy.mjs" >"$log" 2>&1 & ;;
    fastapi|seed)
      local mode=fair
      [[ "$name" == seed ]] && mode=seed
      UPSTREAM="$UPSTREAM" PEER_MODE="$mode" LIMIT="$rate/second" \
        "${PIN_PEER[@]}" "$PY" -m uvicorn --app-dir "$HERE" fastapi_proxy:app --host 127.0.0.1 --port "$port" --workers "$w" \
        --no-access-log --log-level warning >"$log" 2>&1 & ;;
  esac
  PEER_PID=$!
  PIDS+=("$PEER_PID")
}

SYSCALL_TOOL=""
if (( SYSCALLS )); then
  if perf_syscalls_available; then SYSCALL_TOOL=perf
  elif command -v strace >/dev/null; then SYSCALL_TOOL=strace
  else echo "error: --syscalls needs perf (linux-perf, with the kernel's syscall tracepoints) or strace" >&2; exit 3; fi
fi

# to_ms VALUE-WITH-UNIT (wrk prints us, ms, s)
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
  if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000; printf "%.2f", n }'; }

ROWS=()
SYSROWS=()
read -r -a PEER_LIST <<<"$PEERS"
for ((round = 1; round <= ROUNDS; round++)); do
for w in $WORKER_COUNTS; do
  for limit in $LIMITS; do
    for ((k = 0; k < ${#PEER_LIST[@]}; k++)); do
      name="${PEER_LIST[(k + round - 1) % ${#PEER_LIST[@]}]}"
      port="$(free_port)"
      start_peer "$name" "$w" "$limit" "$port"
      url="http://127.0.0.1:$port/v1/chat/completions"
      wait_ready "$url" "$PEER_PID" || { tail -n 20 "$TMP"/*.log >&2; exit 1; }
      echo "$( ((ROUNDS > 1)) && echo "round $round of $ROUNDS: ")workers $w, limit $limit: $name (${DURATION}s)..." >&2
      out="$TMP/wrk-$name-$w-$limit.txt"
      trace=""
      if (( SYSCALLS )); then
        trace="$TMP/$SYSCALL_TOOL-$name-$w-$limit.txt"
        if [[ $SYSCALL_TOOL == perf ]]; then
          count_syscalls "$trace" $(tree_pids "$PEER_PID")
        else
          strace -f -c -o "$trace" $(tree_pids "$PEER_PID" | sed 's/^/-p /') 2>/dev/null &
          SYSCALLS_PID=$!
          sleep 1 # attached before the load starts
        fi
      fi
      cpu_before=($(tree_cpu "$PEER_PID"))
      sim_before=($(tree_cpu "$SIM_PID"))
      timeout $((DURATION + 60)) "${PIN_WRK[@]}" wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --latency -s "$TMP/post.lua" "$url" >"$out" 2>&1
      cpu_after=($(tree_cpu "$PEER_PID"))
      sim_after=($(tree_cpu "$SIM_PID"))
      if [[ -n "$trace" ]]; then kill -INT "$SYSCALLS_PID"; wait "$SYSCALLS_PID" || true; fi
      stop_pid "$PEER_PID"
      rps="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
      p50="$(awk '$1 == "50%" {print $2}' "$out")"
      p99="$(awk '$1 == "99%" {print $2}' "$out")"
      total="$(awk '/requests in/ {print $1}' "$out")"
      non2xx="$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")"
      errors="$(awk '/Socket errors:/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' "$out")"
      [[ -n "$rps" && -n "$p50" ]] || { echo "error: no wrk figures for $name:" >&2; cat "$out" >&2; exit 1; }
      user_us="$(us_per_request $((cpu_after[0] - cpu_before[0])) "${total:-0}")"
      sys_us="$(us_per_request $((cpu_after[1] - cpu_before[1])) "${total:-0}")"
      sim_us="$(us_per_request $((sim_after[0] + sim_after[1] - sim_before[0] - sim_before[1])) "${total:-0}")"
      ROWS+=("$w $limit $name $rps $(to_ms "$p50") $(to_ms "$p99") ${total:-0} ${non2xx:-0} ${errors:-0} $user_us $sys_us $sim_us $round")
      if [[ -n "$trace" ]]; then
        if [[ $SYSCALL_TOOL == perf ]]; then
          calls="$(syscalls_per_request "$trace" "${total:-1}")"
        else
          # strace -c's table: calls in column 4, the name last.
          calls="$(awk -v n="${total:-1}" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" { printf "%s %.2f\n", $NF, $4 / n }' "$trace")"
        fi
        SYSROWS+=("| $w | $limit | $name | $(syscall_summary <<<"$calls") |")
      fi
    done
  done
done
done

table="$(printf '%s\n' "${ROWS[@]}" | awk -v dur="$DURATION" -v conns="$CONNECTIONS" -v threads="$THREADS" -v rounds="$ROUNDS" '
  # median of the space-separated numbers in s
  function median(s,    v, n, i, j, t) {
    n = split(s, v, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j] + 0 < v[j - 1] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  { k = $1 " " $2 " " $3
    if (!(k in seen)) { seen[k] = 1; keys[++nk] = k; w[k] = $1; lim[k] = $2; name[k] = $3 }
    rps[k] = rps[k] " " $4; p50[k] = p50[k] " " $5; p99[k] = p99[k] " " $6; usr[k] = usr[k] " " $10; sys[k] = sys[k] " " $11; sim[k] = sim[k] " " $12
    tot[k] += $7; bad[k] += $8; err[k] += $9
    one[k, $13] = $4 }
  END {
    printf "wrk -t%s -c%s -d%ss, POST /v1/chat/completions (non-streaming, max_tokens 16, thinking off) to each peer in front of `llmgate sim --profile instant`; limit `never` = 1,000,000/second per client, `triggers` = 10/second per client.", threads, conns, dur
    if (rounds > 1) printf " %d rounds: each figure is the median over the rounds; the ratio is the median of the rounds'"'"' paired ratios (each round'"'"'s in brackets).", rounds
    printf "\n\n"
    print "| workers | limit | peer | req/s | p50 ms | p99 ms | refused or failed | socket errors | CPU µs/request (user / system) | simulator CPU µs/request | **llmgate / peer (req/s)** |"
    print "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for (i = 1; i <= nk; i++) {
      k = keys[i]; b = w[k] " " lim[k] " llmgate"
      ratio = "-"
      if (b in seen) {
        rs = ""; each = ""
        for (r = 1; r <= rounds; r++)
          if ((b, r) in one && (k, r) in one && one[k, r] > 0) { x = one[b, r] / one[k, r]; rs = rs " " x; each = each (each == "" ? "" : ", ") sprintf("%.2f", x) }
        if (rs != "") ratio = sprintf("**%.2f**", median(rs)) (rounds > 1 ? " (" each ")" : "")
      }
      share = tot[k] > 0 ? sprintf("%.1f%%", 100 * bad[k] / tot[k]) : "-"
      printf "| %s | %s | %s | %.0f | %.2f | %.2f | %s | %d | %s / %s | %s | %s |\n", w[k], lim[k], name[k], median(rps[k]), median(p50[k]), median(p99[k]), share, err[k], median(usr[k]), median(sys[k]), median(sim[k]), ratio
    }
  }')"
if (( SYSCALLS )); then
  if [[ $SYSCALL_TOOL == perf ]]; then
    table+=$'\n\n'"System calls per request (perf stat on the kernel's syscall tracepoints of the peer's processes; recvfrom(EAGAIN): the recvfrom calls among them that found nothing; epoll_wait(0): the epoll_wait calls among them that did not block):"$'\n\n'
  else
    table+=$'\n\n'"System calls per request (strace -c -f on the peer's processes; strace slows them, so req/s above is not comparable, and a backend's answer is always there when it is read):"$'\n\n'
  fi
  table+="| workers | limit | peer | calls per request, by name |"$'\n'"| ---: | --- | --- | --- |"
  for r in "${SYSROWS[@]}"; do table+=$'\n'"$r"; done
fi
pins=""
(( ${#PIN_PEER[@]} == 0 )) || pins+=" the peer on CPUs ${PIN_PEER[2]};"
(( ${#PIN_SIM[@]} == 0 )) || pins+=" the simulator on CPUs ${PIN_SIM[2]};"
(( ${#PIN_WRK[@]} == 0 )) || pins+=" wrk on CPUs ${PIN_WRK[2]};"
[[ -z "$pins" ]] || table="Pinned with taskset:${pins%;}."$'\n\n'"$table"
# The harness alone: wrk straight to the simulator, no proxy, and the CPU the
# simulator and wrk use per request. Every peer shares the two cores with
# both, so their cost bounds what any proxy can reach on this machine.
if (( ! SYSCALLS )); then
  echo "the harness alone: wrk straight to the simulator (${DURATION}s)..." >&2
  out="$TMP/wrk-direct.txt"
  sim_before=($(tree_cpu "$SIM_PID"))
  # wrk's own CPU: the run's child, from getrusage.
  wrk_cpu=($("$PY" -c 'import resource, subprocess, sys
with open(sys.argv[1], "w") as f: subprocess.run(sys.argv[2:], stdout=f, stderr=subprocess.STDOUT)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(round(r.ru_utime * 1e6), round(r.ru_stime * 1e6))' "$out" timeout $((DURATION + 60)) "${PIN_WRK[@]}" wrk -t "$THREADS" -c "$CONNECTIONS" \
    -d "${DURATION}s" --latency -s "$TMP/post.lua" "http://127.0.0.1:$SIM_PORT/v1/chat/completions"))
  sim_after=($(tree_cpu "$SIM_PID"))
  rps="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
  total="$(awk '/requests in/ {print $1}' "$out")"
  [[ -n "$rps" && "${total:-0}" -gt 0 ]] || { echo "error: no wrk figures for the simulator alone:" >&2; cat "$out" >&2; exit 1; }
  table+=$'\n\n'"$(printf 'The harness alone (wrk straight to the simulator, no proxy): %.0f req/s; per request the simulator used %s / %s µs of CPU (user / system) and wrk %s / %s.' \
    "$rps" "$(us_per_request $((sim_after[0] - sim_before[0])) "$total")" "$(us_per_request $((sim_after[1] - sim_before[1])) "$total")" \
    "$(awk -v c="${wrk_cpu[0]}" -v n="$total" 'BEGIN { printf "%.1f", c / n }')" "$(awk -v c="${wrk_cpu[1]}" -v n="$total" 'BEGIN { printf "%.1f", c / n }')")"
fi
echo "$table"
[[ -z "$OUT" ]] || echo "$table" >"$OUT"
