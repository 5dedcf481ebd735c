#!/usr/bin/env bash
# Overload: `llmgate sim` with its calibrated profile (Qwen3-1.7B on one L4
# under vLLM: 256 sequences at most, 15 ms a token alone, prefill 85 µs a
# prompt token) offered 1×, 2× and 3× what it can serve, as an open loop of
# Poisson arrivals (`llmgate bench --rate`), streaming, prompt 128 and output
# 64 tokens. Each setup sees the same offered load:
#   direct   the clients talk to the model server itself
#   fastapi  the seed-style stack done fairly (bench/peers/fastapi_proxy.py:
#            FastAPI + uvicorn, async httpx, python3-limits fixed window at
#            the measured capacity per second)
#   seed     the seed's handler as written (blocking call in async def,
#            same limit); --setups to include it
#   llmgate  llmgate with the backend's slots (max_in_flight: 256, vLLM's
#            max-num-seqs) and a line in front of them whose timeout is
#            the SLO minus the backend's own TTFT at a full batch (up to
#            ~1.2 s here, when a cohort of sequences joins at once): 500 ms
# Capacity is measured first: a closed loop of 256 users straight at the
# simulator, counted by the simulator's own vllm:generation_tokens_total
# over a steady window (after a 10 s warm-up). Not by the closed loop's
# answers: its users move in cohorts (all 256 start together and, the
# simulator being deterministic, finish together), so its answers come in
# whole cohorts of 256 — 4 or 5 in a 30 s window when the truth is 4.5.
# Reported per setup and load: the requests admitted, refused, and left
# unanswered when the drain ended (or failed), the share of requests sent
# whose first token came within the SLO (2 s), the share of admitted (200)
# requests within it, and the useful output tokens/s (of answers within
# the SLO) as a share of capacity. The runs are counted by `llmgate bench --steady`: the requests
# sent in a steady window (after a warm-up, until sending stops), answered
# during the drain if need be, per second of the window — none cut at the
# end, none diluted by the drain. Poisson arrivals have no cohorts. Writes a
# markdown table, a TSV and a PNG plot (gnuplot) into --out DIR.
#
# Usage: bench/overload.sh [--seconds S] [--factors "1 2 3"]
#          [--setups "direct fastapi llmgate"] [--queue-timeout 500ms]
#          [--capacity-from tokens|answers] [--out DIR] [--bin PATH]
# --capacity-from answers counts capacity from the calibration's answers
# instead, as the runs are counted (`llmgate bench --steady`); a window of a
# whole number of cohorts is needed for it to be right.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
BIN="${LLMGATE_BIN:-$REPO/build/llmgate}"
SECONDS_PER_RUN=40
FACTORS="1 2 3"
SETUPS="direct fastapi llmgate"
OUT="$REPO/bench/results"
PROMPT=128
OUTPUT=64
SLO=2
QUEUE_TIMEOUT=500ms
CAPACITY_FROM=tokens

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) SECONDS_PER_RUN="${2%s}"; shift 2 ;;
    --factors) FACTORS="$2"; shift 2 ;;
    --setups) SETUPS="$2"; shift 2 ;;
    --queue-timeout) QUEUE_TIMEOUT="$2"; shift 2 ;;
    --capacity-from) CAPACITY_FROM="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
[[ "$CAPACITY_FROM" == answers || "$CAPACITY_FROM" == tokens ]] ||
  { echo "--capacity-from is answers or tokens, got '$CAPACITY_FROM'" >&2; exit 2; }
source "$HERE/lib.sh"
[[ -x "$BIN" ]] || { echo "error: no llmgate at $BIN (make build, or --bin)" >&2; exit 3; }
command -v gnuplot >/dev/null || { echo "error: no gnuplot: scripts/install-deps.sh --bench" >&2; exit 3; }
if [[ " $SETUPS " == *" fastapi "* || " $SETUPS " == *" seed "* ]]; then
  "$PY" -c 'import fastapi, uvicorn, httpx, limits, requests' 2>/dev/null ||
    { echo "error: the FastAPI stack is missing: scripts/install-deps.sh --bench" >&2; exit 3; }
fi
mkdir -p "$OUT"

# A fresh simulator for every run: no backlog from the run before.
start_sim() {
  "$BIN" sim --host 127.0.0.1 --port 0 --profile default >"$TMP/sim.log" 2>&1 &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  SIM_PORT="$(wait_listening "$TMP/sim.log" "$SIM_PID")"
}

# The first 10 s are the closed loop's ramp (all 256 start at once, their
# prefills in one step): left out, so that capacity is the steady state.
echo "calibrating: 256 users straight at the simulator for $((SECONDS_PER_RUN + 10))s (10s warm-up)..." >&2
start_sim
sim_tokens() { curl -s "http://127.0.0.1:$SIM_PORT/metrics" | awk '/^vllm:generation_tokens_total/ {print $2}'; }
"$BIN" bench "http://127.0.0.1:$SIM_PORT" --users 256 --duration "$((SECONDS_PER_RUN + 10))s" --warmup 10 --steady \
  --prompt-tokens "$PROMPT" --output-tokens "$OUTPUT" --drain 60 --quiet --json "$TMP/capacity.json" >/dev/null &
CAL_PID=$!
PIDS+=("$CAL_PID")
sleep 10
tokens_before="$(sim_tokens)"
sleep "$SECONDS_PER_RUN"
tokens_after="$(sim_tokens)"
wait "$CAL_PID"
stop_pid "$SIM_PID"
ANSWERS_RPS="$(json_field "$TMP/capacity.json" 'round(d["throughput"]["requests_per_s"], 2)')"
ANSWERS_TOKENS="$(json_field "$TMP/capacity.json" 'round(d["throughput"]["output_tokens_per_s"], 1)')"
SIM_TOKENS="$(awk -v a="$tokens_before" -v b="$tokens_after" -v s="$SECONDS_PER_RUN" 'BEGIN { printf "%.1f", (b - a) / s }')"
case "$CAPACITY_FROM" in
  answers)
    CAP_RPS="$ANSWERS_RPS"
    CAP_TOKENS="$ANSWERS_TOKENS"
    CAP_HOW="the closed loop's answers" ;;
  tokens)
    CAP_TOKENS="$SIM_TOKENS"
    CAP_RPS="$(awk -v t="$CAP_TOKENS" -v o="$OUTPUT" 'BEGIN { printf "%.2f", t / o }')"
    CAP_HOW="the simulator's output tokens" ;;
esac
echo "capacity: $CAP_RPS req/s, $CAP_TOKENS output tokens/s (the simulator's tokens: $SIM_TOKENS/s; the closed loop's answers: $ANSWERS_RPS req/s, $ANSWERS_TOKENS tokens/s)" >&2
awk -v c="$CAP_RPS" 'BEGIN { exit !(c > 0) }' ||
  { echo "error: the calibration measured nothing; give more --seconds (a request takes about 7 s)" >&2; exit 1; }
LIMIT_PER_SECOND="$("$PY" -c "import math; print(max(1, math.floor($CAP_RPS)))")"

ROWS=()
for factor in $FACTORS; do
  rate="$("$PY" -c "print(round($factor * $CAP_RPS, 2))")"
  for setup in $SETUPS; do
    start_sim
    case "$setup" in
      direct) url="http://127.0.0.1:$SIM_PORT" ;;
      llmgate)
        cat >"$TMP/llmgate.yaml" <<EOF
listen: 127.0.0.1:0
workers: 1
access_log: off
backends:
  - {name: gpu, url: "http://127.0.0.1:$SIM_PORT", kind: vllm, models: [Qwen3-1.7B],
     max_in_flight: 256, queue: {max: 1024, timeout: $QUEUE_TIMEOUT}}
models:
  - {name: Qwen3-1.7B}
EOF
        start_gateway
        url="http://127.0.0.1:$GW_PORT" ;;
      fastapi|seed)
        port="$(free_port)"
        mode=fair
        [[ "$setup" == seed ]] && mode=seed
        UPSTREAM="http://127.0.0.1:$SIM_PORT" PEER_MODE="$mode" LIMIT="$LIMIT_PER_SECOND/second" \
          "$PY" -m uvicorn --app-dir "$HERE/peers" fastapi_proxy:app --host 127.0.0.1 --port "$port" --workers 1 \
          --no-access-log --log-level warning >"$TMP/fastapi.log" 2>&1 &
        GW_PID=$!
        PIDS+=("$GW_PID")
        wait_http "http://127.0.0.1:$port/docs" "$GW_PID"
        url="http://127.0.0.1:$port" ;;
      *) echo "unknown setup: $setup" >&2; exit 2 ;;
    esac
    echo "${factor}x ($rate req/s) $setup, ${SECONDS_PER_RUN}s..." >&2
    json="$OUT/overload-$setup-${factor}x.json"
    # The first 5 s (lines and batches filling) are left out; what was sent after is counted whole.
    "$BIN" bench "$url" --rate "$rate" --duration "$((SECONDS_PER_RUN + 5))s" --warmup 5 --steady --prompt-tokens "$PROMPT" \
      --output-tokens "$OUTPUT" --slo-ttft "$SLO" --drain 60 --timeout 120 --quiet --json "$json" >/dev/null
    [[ "$setup" == direct ]] || stop_pid "$GW_PID"
    stop_pid "$SIM_PID"
    ROWS+=("$setup $factor $(json_field "$json" '" ".join(str(x) for x in [d["requests"]["sent"], d["requests"]["ok"], d["goodput"]["met"], round(d["goodput"]["output_tokens_per_s"], 1), round(d["ttft_ms"]["p99"]), d["requests"]["rate_limited"] + d["requests"]["busy"], d["requests"]["unfinished"] + d["requests"]["errors"] + d["requests"]["other_status"]])')")
  done
done

# setup factor sent ok met useful_tokens_per_s ttft_p99_ms refused unanswered
printf '%s\n' "${ROWS[@]}" >"$TMP/rows.txt"
# For the plot: one block per setup (factor, % of sent within SLO, % of admitted, % of capacity).
for setup in $SETUPS; do
  echo "# $setup"
  awk -v s="$setup" -v cap="$CAP_TOKENS" '$1 == s { printf "%s\t%.1f\t%.1f\t%.1f\n", $2, 100*$5/($3?$3:1), 100*$5/($4?$4:1), 100*$6/cap }' "$TMP/rows.txt"
  printf '\n\n'
done >"$OUT/overload.tsv"
{
  echo "Capacity (256 users straight at the simulator, counted from $CAP_HOW): $CAP_RPS req/s, $CAP_TOKENS output tokens/s (the simulator generated $SIM_TOKENS tokens/s; the closed loop's answers came to $ANSWERS_RPS req/s). Open loop at 1×, 2×, 3× that, ${SECONDS_PER_RUN} s each, streaming, prompt $PROMPT and output $OUTPUT tokens, SLO: first token within ${SLO} s."
  echo
  echo "| setup | load | sent | admitted (200) | refused (429/503) | unanswered or failed | within SLO, of sent | within SLO, of admitted | TTFT p99 ms | useful tokens/s | of capacity |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  awk -v cap="$CAP_TOKENS" '{ printf "| %s | %s× | %d | %d | %d | %d | %.1f%% | %.1f%% | %d | %.0f | %.1f%% |\n",
    $1, $2, $3, $4, $8, $9, 100*$5/($3?$3:1), 100*$5/($4?$4:1), $7, $6, 100*$6/cap }' "$TMP/rows.txt"
} | tee "$OUT/overload.md"

gnuplot <<EOF
set terminal pngcairo size 1100,420 font "DejaVu Sans,10"
set output "$OUT/overload.png"
set datafile separator "\t"
set multiplot layout 1,2 title "Qwen3-1.7B simulator offered 1x-3x its capacity (open loop, streaming, SLO: first token within ${SLO} s)"
set xrange [0.8:3.2]
set style data linespoints
set xtics ("1x" 1, "2x" 2, "3x" 3)
set yrange [0:*]
set grid
set key bottom left
set title "requests sent whose first token came within the SLO"
set ylabel "% of requests sent"
plot for [i=1:words("$SETUPS")] "$OUT/overload.tsv" index (i-1) using 1:2 with linespoints lw 2 pt 7 title word("$SETUPS", i)
set title "useful output tokens/s (answers within the SLO)"
set ylabel "% of the backend's capacity"
plot for [i=1:words("$SETUPS")] "$OUT/overload.tsv" index (i-1) using 1:4 with linespoints lw 2 pt 7 title word("$SETUPS", i)
unset multiplot
EOF
echo "wrote $OUT/overload.md, $OUT/overload.tsv, $OUT/overload.png" >&2
