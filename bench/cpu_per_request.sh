#!/usr/bin/env bash
# The CPU a proxy uses per request at the same offered load: user and system
# time of its processes (/proc/PID/stat) over a fixed-rate run, divided by the
# requests answered. Unlike requests/s at saturation (bench/peers/run.sh),
# where every process fights for the two cores and where each one lands moves
# the rate by a quarter, every server here gets the same open-loop load
# (`llmgate bench --rate`, Poisson arrivals, non-streaming, 16 output tokens)
# in front of the same `llmgate sim --profile instant`, so the figure is what
# a user's hardware pays per request, kernel time included (system calls,
# the loopback's TCP and the wake-ups of the processes it talks to). Servers
# take turns, round after round, and each server's median is printed.
#
# Usage: bench/cpu_per_request.sh [--rate R] [--seconds S] [--rounds N]
#          [--bin PATH]... [--config YAML-LINE]... [--nginx] [--thinking on|off] [--workers N] [--syscalls]
# --bin: an llmgate build to measure (repeat to compare builds; default
# build/llmgate); --config: a top-level line added to llmgate's config, e.g.
# "cache: {mode: off}"; repeat it to compare configs (each --config is a
# server of its own, with every --bin; "" is the default config); --nginx: nginx too (one worker, proxy_pass with upstream
# keep-alive, as bench/peers/run.sh runs it). --workers: each server's
# worker count (llmgate's workers, nginx's worker_processes; default 1).
# --syscalls: also count each server's system calls per request in each
# round, by name (perf stat on the kernel's syscall tracepoints; needs
# linux-perf), with recvfrom(EAGAIN) for the reads that found nothing and
# epoll_wait(0) for the polls that did not block (among the epoll_wait calls);
# counting costs the server CPU, so that run's CPU figures are not comparable.
# Needs: curl, python3; nginx for --nginx. Stops what it started (by PID).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RATE=8000
SECONDS_RUN=10
ROUNDS=5
BINS=()
CONFIGS=()
NGINX=0
THINKING=off
WORKERS=1
SYSCALLS=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rate) RATE="$2"; shift 2 ;;
    --seconds) SECONDS_RUN="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --bin) BINS+=("$(realpath "$2")"); shift 2 ;;
    --config) CONFIGS+=("$2"); shift 2 ;;
    --nginx) NGINX=1; shift ;;
    --thinking) THINKING="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --syscalls) SYSCALLS=1; shift ;;
    *) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
(( ${#BINS[@]} > 0 )) || BINS=("$(realpath "$HERE/../build/llmgate")")
(( ${#CONFIGS[@]} > 0 )) || CONFIGS=("")
(( NGINX == 0 )) || [[ -x /usr/sbin/nginx ]] || { echo "needs nginx (scripts/install-deps.sh)" >&2; exit 3; }
BIN="${BINS[0]}" # the simulator and the load generator: the same for every server
source "$HERE/lib.sh"
(( SYSCALLS == 0 )) || perf_syscalls_available || { echo "--syscalls needs perf (linux-perf) with the kernel's syscall tracepoints" >&2; exit 3; }
start_instant_sim

load() { # load PORT SECONDS RATE [JSON]
  local args=(-q -r "$3" -d "$2s" --no-stream --output-tokens 16 --prompt-tokens 16)
  [[ $THINKING == on ]] && args+=(--thinking)
  [[ -z "${4:-}" ]] || args+=(--json "$4")
  "$BIN" bench "${args[@]}" "http://127.0.0.1:$1" >/dev/null
}

servers=() # kind:path:config line
for b in "${BINS[@]}"; do
  for c in "${CONFIGS[@]}"; do servers+=("llmgate:$b:$c"); done
done
(( NGINX == 0 )) || servers+=("nginx::")
declare -A figures users p50s p99s
for ((round = 1; round <= ROUNDS; round++)); do
  for s in "${servers[@]}"; do
    kind="${s%%:*}" rest="${s#*:}"
    path="${rest%%:*}" extra="${rest#*:}"
    port="$(free_port)"
    if [[ $kind == llmgate ]]; then
      printf 'listen: 127.0.0.1:%s\nworkers: %s\naccess_log: off\nbackends:\n  - {name: s, url: "http://127.0.0.1:%s", kind: vllm, models: [Qwen3-1.7B]}\n' \
        "$port" "$WORKERS" "$SIM_PORT" >"$TMP/gw.yaml"
      [[ -z $extra ]] || echo "$extra" >>"$TMP/gw.yaml"
      "$path" serve -c "$TMP/gw.yaml" >"$TMP/gw.out" 2>&1 &
    else
      write_nginx_conf "$TMP/nginx" "$port" "$WORKERS" "$( ((WORKERS > 1)) && echo on || echo off)"
      /usr/sbin/nginx -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" >"$TMP/gw.out" 2>&1 &
    fi
    pid=$!
    PIDS+=("$pid")
    wait_http "http://127.0.0.1:$port/health" "$pid"
    load "$port" 2 "$((RATE / 4))" # warm-up: connections opened, caches filled
    if (( SYSCALLS )); then
      count_syscalls "$TMP/syscalls.txt" $(tree_pids "$pid")
    fi
    before=($(tree_cpu "$pid"))
    load "$port" "$SECONDS_RUN" "$RATE" "$TMP/run.json"
    after=($(tree_cpu "$pid"))
    if (( SYSCALLS )); then kill -INT "$SYSCALLS_PID"; wait "$SYSCALLS_PID" || true; fi
    ok="$(json_field "$TMP/run.json" 'd["requests"]["ok"]')"
    sent="$(json_field "$TMP/run.json" 'd["requests"]["sent"]')"
    stop_pid "$pid"
    (( ok * 100 >= sent * 99 )) || { echo "error: $s answered $ok of $sent requests" >&2; exit 1; }
    us="$(us_per_request $((after[0] + after[1] - before[0] - before[1])) "$ok")"
    user="$(us_per_request $((after[0] - before[0])) "$ok")"
    users[$s]+="$user "
    p50="$(json_field "$TMP/run.json" 'd["e2e_ms"]["p50"]')"
    p99="$(json_field "$TMP/run.json" 'd["e2e_ms"]["p99"]')"
    figures[$s]+="$us "
    p50s[$s]+="$p50 "
    p99s[$s]+="$p99 "
    echo "round $round: ${kind} ${path:+$path }${extra:+[$extra] }$us µs/request, $user of it user time ($ok requests; latency p50 $p50 ms, p99 $p99 ms)" >&2
    if (( SYSCALLS )); then
      echo "  system calls per request: $(syscalls_per_request "$TMP/syscalls.txt" "$ok" | syscall_summary)" >&2
    fi
  done
done

echo "CPU per request at $RATE requests/s offered (open loop, ${SECONDS_RUN}s, $ROUNDS rounds, thinking $THINKING, $WORKERS worker(s)), user + system of the server's processes:"
echo
echo "| server | CPU µs per request, each round | median | user time, median | latency p50 / p99 ms, median of the rounds |"
echo "| --- | --- | ---: | ---: | ---: |"
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
for s in "${servers[@]}"; do
  kind="${s%%:*}" rest="${s#*:}"
  path="${rest%%:*}" extra="${rest#*:}"
  echo "| $kind${path:+ ($path)}${extra:+, $extra} | ${figures[$s]% } | $(median "${figures[$s]}") | $(median "${users[$s]}") | $(median "${p50s[$s]}") / $(median "${p99s[$s]}") |"
done
# With nginx: each server's CPU per request over nginx's in the same round,
# and the median of those paired ratios (a round's load on the shared cores
# moves both; the medians of the columns above can pair a good round of one
# with a bad round of the other).
if (( NGINX )); then
  echo
  echo "| server | / nginx, each round | median of the paired ratios |"
  echo "| --- | --- | ---: |"
  for s in "${servers[@]}"; do
    [[ $s == nginx::* ]] && continue
    kind="${s%%:*}" rest="${s#*:}"
    path="${rest%%:*}" extra="${rest#*:}"
    ratios=$(paste -d' ' <(tr ' ' '\n' <<<"${figures[$s]}" | grep .) <(tr ' ' '\n' <<<"${figures[nginx::]}" | grep .) |
      awk '{ printf "%.2f ", $1 / $2 }')
    echo "| $kind${path:+ ($path)}${extra:+, $extra} | ${ratios% } | **$(median "$ratios")** |"
  done
fi
