#!/usr/bin/env bash
# Instructions the gateway spends per proxied request, counted by callgrind:
# repeatable whatever else the machine is doing (unlike requests/s on 2 shared
# cores). Starts `llmgate sim --profile instant` and llmgate (1 worker) under
# valgrind on 127.0.0.1, warms it up for a second, zeroes the counters,
# drives it with wrk for a few seconds and divides.
#
# Usage: bench/instructions_per_request.sh [--thinking on|off] [--stream on|off|paced] [--client wrk|openai-node]
#          [--server llmgate|nginx|sim] [--limit none|never|triggers] [--bin PATH] [--seconds S] [--config YAML-LINE]
#          [--prompts same|distinct]
# (CALLGRIND_OPTS: more valgrind options, e.g. "--cache-sim=yes" for simulated cache misses per request;
# --config adds a top-level line to the gateway's config, e.g. "cache: {mode: off}"; --stream on
# asks for SSE: the 16 tokens come as 16 events, each relayed and rewritten, all at once; --stream paced
# counts what streams cost as a model sends them, one event at a time: 500 streams at once (PACED_STREAMS),
# each 20 tokens, through `llmgate sim --profile slow` (a token every 500 ms), sent by `llmgate bench`
# (thinking off), and prints the instructions per stream and per token; --client openai-node
# sends the 17 header fields the openai npm client (5.x) sends, wrk's 3 otherwise; --server nginx
# counts nginx instead, one worker without a master, proxy_pass with upstream keep-alive as in
# bench/peers/run.sh, for the same requests to the same simulator; --server sim counts the simulator
# itself, sent the same requests directly (every peer's benchmark shares its cores with it); --limit
# puts the peers' per-client limit on llmgate or nginx: never = 1,000,000/second, triggers =
# 10/second, where nearly every request is refused, as bench/peers/run.sh sets them; --prompts distinct
# gives every request a prompt of its own, as real traffic has, where wrk repeats one request: the
# response cache is then full and each answer is new to it: the warm-up lasts until llmgate's
# cache holds CACHE_ENTRIES entries (its default 10,000; set it with a --config that changes it).)
# Needs: valgrind (callgrind_control), wrk, curl; nginx for --server nginx. Stops what it started (by PID).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="$HERE/../build/llmgate"
THINKING=on
STREAM=off
CLIENT=wrk
SERVER=llmgate
SECONDS_RUN=6
EXTRA_CONFIG=""
LIMIT=none
PROMPTS=same
while [[ $# -gt 0 ]]; do
  case "$1" in
    --thinking) THINKING="$2"; shift 2 ;;
    --stream) STREAM="$2"; shift 2 ;;
    --client) CLIENT="$2"; shift 2 ;;
    --server) SERVER="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --seconds) SECONDS_RUN="$2"; shift 2 ;;
    --config) EXTRA_CONFIG="$2"; shift 2 ;;
    --limit) LIMIT="$2"; shift 2 ;;
    --prompts) PROMPTS="$2"; shift 2 ;;
    *) sed -n '2,/^[^#]/p' "$0" | sed '$d'; exit 2 ;;
  esac
done
[[ $STREAM == on || $STREAM == off || $STREAM == paced ]] || { echo "--stream on|off|paced" >&2; exit 2; }
[[ $CLIENT == wrk || $CLIENT == openai-node ]] || { echo "--client wrk|openai-node" >&2; exit 2; }
[[ $SERVER == llmgate || $SERVER == nginx || $SERVER == sim ]] || { echo "--server llmgate|nginx|sim" >&2; exit 2; }
[[ $LIMIT == none || $LIMIT == never || $LIMIT == triggers ]] || { echo "--limit none|never|triggers" >&2; exit 2; }
[[ $PROMPTS == same || $PROMPTS == distinct ]] || { echo "--prompts same|distinct" >&2; exit 2; }
[[ $SERVER != nginx || -x /usr/sbin/nginx ]] || { echo "needs nginx (scripts/install-deps.sh --bench)" >&2; exit 3; }
command -v valgrind >/dev/null && command -v wrk >/dev/null || { echo "needs valgrind and wrk" >&2; exit 3; }
source "$HERE/lib.sh"
if [[ $STREAM == paced ]]; then
  [[ $SERVER != sim ]] || { echo "--stream paced counts a proxy: --server llmgate|nginx" >&2; exit 2; }
  PACED_STREAMS="${PACED_STREAMS:-500}"
  "$BIN" sim --host 127.0.0.1 --port 0 --profile slow >"$TMP/sim.out" 2>&1 &
  PIDS+=($!)
  SIM_PORT=$(wait_listening "$TMP/sim.out" $!)
  EXTRA_CONFIG="server: {max_connections: $((PACED_STREAMS + 100)), max_connections_per_client: 0}
$EXTRA_CONFIG"
  export NGINX_CONNECTIONS=$((PACED_STREAMS * 2 + 200))
elif [[ $SERVER != sim ]]; then
  start_instant_sim
fi
if [[ $SERVER == sim ]]; then
  valgrind --tool=callgrind ${CALLGRIND_OPTS:-} --callgrind-out-file="$TMP/cg.out" "$BIN" sim --host 127.0.0.1 --port 0 --profile instant \
    >"$TMP/gw.out" 2>/dev/null & GW=$!
  GW_PORT=$(wait_port "$TMP/gw.out")
elif [[ $SERVER == llmgate ]]; then
  printf 'listen: 127.0.0.1:0\nworkers: 1\naccess_log: off\nbackends:\n  - {name: s, url: "http://127.0.0.1:%s", kind: vllm, models: [Qwen3-1.7B]}\n%s\n' "$SIM_PORT" "$EXTRA_CONFIG" >"$TMP/gw.yaml"
  [[ $LIMIT == none ]] || printf 'limits:\n  rules:\n    - {name: per-client, key: client_ip, algorithm: fixed_window, limit: %s/second}\n' "$(limit_rate "$LIMIT")" >>"$TMP/gw.yaml"
  valgrind --tool=callgrind ${CALLGRIND_OPTS:-} --callgrind-out-file="$TMP/cg.out" "$BIN" serve -c "$TMP/gw.yaml" >"$TMP/gw.out" 2>/dev/null & GW=$!
  GW_PORT=$(wait_port "$TMP/gw.out")
else
  GW_PORT=$(free_port)
  write_nginx_conf "$TMP/nginx" "$GW_PORT" 1 off "$LIMIT"
  valgrind --tool=callgrind ${CALLGRIND_OPTS:-} --callgrind-out-file="$TMP/cg.out" /usr/sbin/nginx -p "$TMP/nginx/" \
    -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" >"$TMP/gw.out" 2>&1 & GW=$!
  for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$GW_PORT/health" && break; sleep 0.1; done
fi

# cache_events PROFILE N WHAT: every event callgrind counted with a
# simulation on (cache misses of its simulated caches, mispredicted
# branches), per WHAT.
cache_events() {
  local events totals
  events=$(awk '/^events:/{sub(/^events: /,""); print; exit}' "$1")
  totals=$(awk '/^(totals|summary):/{sub(/^(totals|summary): /,""); print; exit}' "$1")
  paste <(tr ' ' '\n' <<<"$events") <(tr ' ' '\n' <<<"$totals") |
    awk -v r="$2" -v w="$3" '{printf "%s=%.1f ", $1, $2 / r} END{print "(per " w ")"}'
}

if [[ $STREAM == paced ]]; then
  # The prompt's length is fixed so that every stream costs the same to read.
  paced() { "$BIN" bench "http://127.0.0.1:$GW_PORT" -u "$1" -n "$1" --output-tokens 20 --prompt-tokens 16 -q \
    --timeout 300 --drain 300 "${@:2}"; }
  paced 20 >/dev/null
  callgrind_control -z "$GW" >/dev/null
  paced "$PACED_STREAMS" --json "$TMP/paced.json" >"$TMP/paced.out"
  requests=$(json_field "$TMP/paced.json" 'd["requests"]["ok"]')
  (( requests == PACED_STREAMS )) || { echo "only $requests of $PACED_STREAMS streams completed:" >&2; cat "$TMP/paced.out" >&2; exit 1; }
  # Counted up to here (a dump, cg.out.1): the exit's clean-up (mimalloc
  # gives its memory back) would add ~14k a stream over so few streams.
  callgrind_control -d "$GW" >/dev/null
  kill "$GW"; wait "$GW" 2>/dev/null || true
  [[ -n "${KEEP_PROFILE:-}" ]] && cp "$TMP/cg.out.1" "$KEEP_PROFILE"
  total=$(callgrind_annotate "$TMP/cg.out.1" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
  echo "server=$SERVER limit=$LIMIT stream=paced streams=$requests instructions=$total per_stream=$((total / requests)) per_token=$((total / requests / 20))"
  [[ ${CALLGRIND_OPTS:-} == *-sim=yes* ]] && cache_events "$TMP/cg.out.1" "$requests" stream
  exit 0
fi

extra=""
[[ $THINKING == off ]] && extra=',"chat_template_kwargs":{"enable_thinking":false}'
[[ $STREAM == on ]] && extra="$extra"',"stream":true'
cat >"$TMP/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"Qwen3-1.7B","messages":[{"role":"user","content":"hi"}],"max_tokens":16$extra}'
wrk.headers["Content-Type"] = "application/json"
LUA
# Distinct prompts: a counter, after a salt of each wrk run's own (the
# warm-up's prompts are not asked again).
[[ $PROMPTS == distinct ]] && cat >>"$TMP/post.lua" <<LUA
local salt = os.getenv("WRK_SALT") or ""
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, '{"model":"Qwen3-1.7B","messages":[{"role":"user","content":"hi ' .. salt .. ' ' .. n .. '"}],"max_tokens":16$extra}')
end
LUA
# What the openai npm client sends besides Host, Content-Length and
# Content-Type (captured from openai 5.12 against a plain Node server).
[[ $CLIENT == openai-node ]] && cat >>"$TMP/post.lua" <<'LUA'
wrk.headers["Connection"] = "keep-alive"
wrk.headers["Accept"] = "application/json"
wrk.headers["User-Agent"] = "OpenAI/JS 5.12.2"
wrk.headers["X-Stainless-Retry-Count"] = "0"
wrk.headers["X-Stainless-Lang"] = "js"
wrk.headers["X-Stainless-Package-Version"] = "5.12.2"
wrk.headers["X-Stainless-OS"] = "Linux"
wrk.headers["X-Stainless-Arch"] = "x64"
wrk.headers["X-Stainless-Runtime"] = "node"
wrk.headers["X-Stainless-Runtime-Version"] = "v20.20.2"
wrk.headers["Authorization"] = "Bearer sk-test"
wrk.headers["accept-language"] = "*"
wrk.headers["sec-fetch-mode"] = "cors"
wrk.headers["accept-encoding"] = "gzip, deflate"
LUA
# Requests served: llmgate's own count; nginx has none, so wrk's (a
# request in flight when wrk stops is served but not counted: one in
# thousands).
served() { curl -s "http://127.0.0.1:$GW_PORT/metrics" | awk '/^llmgate_requests_total/{s+=$2} END{print s+0}'; }
# A second of warm-up, then the counters are zeroed: start-up, the first
# connections and the warm-up are left out, so the figure is the cost of a
# request in a running gateway (before 2026-12-05 start-up was included,
# which made it ~2-5% higher and dependent on how many requests ran).
WRK_SALT=warm-up wrk -t1 -c8 -d1s -s "$TMP/post.lua" "http://127.0.0.1:$GW_PORT/v1/chat/completions" >/dev/null
if [[ $PROMPTS == distinct && $SERVER == llmgate ]]; then
  # Until the response cache is full (its default 10,000 entries), at most
  # a minute; at once when it stopped growing (a smaller max_entries, or the
  # cache off).
  entries() { curl -s "http://127.0.0.1:$GW_PORT/metrics" | awk '/^llmgate_cache_entries /{v = $2} END{print v + 0}'; }
  had=-1
  for round in $(seq 30); do
    now=$(entries)
    (( now >= ${CACHE_ENTRIES:-10000} || now == had )) && break
    had=$now
    WRK_SALT="warm-up $round" wrk -t1 -c8 -d2s -s "$TMP/post.lua" "http://127.0.0.1:$GW_PORT/v1/chat/completions" >/dev/null
  done
fi
[[ $SERVER == llmgate ]] && before=$(served)
callgrind_control -z "$GW" >/dev/null
WRK_SALT=counted wrk -t1 -c8 -d"${SECONDS_RUN}s" -s "$TMP/post.lua" "http://127.0.0.1:$GW_PORT/v1/chat/completions" >"$TMP/wrk.out"
if [[ $SERVER == llmgate ]]; then
  requests=$(($(served) - before))
  cache_line=$(curl -s "http://127.0.0.1:$GW_PORT/metrics" |
    awk '/^llmgate_cache_(entries|stores_total|declined_total)/{sub(/^llmgate_/,""); printf "%s=%s ", $1, $2}')
else
  requests=$(awk '/requests in/{print $1}' "$TMP/wrk.out")
  [[ $LIMIT == triggers ]] || ! grep -q "Non-2xx" "$TMP/wrk.out" || { echo "nginx answered errors:" >&2; cat "$TMP/wrk.out" >&2; exit 1; }
fi
kill "$GW"; wait "$GW" 2>/dev/null || true
[[ -n "${KEEP_PROFILE:-}" ]] && cp "$TMP/cg.out" "$KEEP_PROFILE"
total=$(callgrind_annotate "$TMP/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
echo "server=$SERVER limit=$LIMIT thinking=$THINKING stream=$STREAM client=$CLIENT prompts=$PROMPTS requests=$requests instructions=$total per_request=$((total / requests))"
# With CALLGRIND_OPTS="--cache-sim=yes" (or --branch-sim=yes): every event
# callgrind counted (cache misses of its simulated caches, mispredicted
# branches), per request.
[[ ${CALLGRIND_OPTS:-} == *-sim=yes* ]] && cache_events "$TMP/cg.out" "$requests" request
[[ $SERVER == llmgate ]] || exit 0
[[ -z $cache_line ]] || echo "response cache at the end (stores since start-up): $cache_line"
# The share spent keeping metrics: self cost of llmgate::observe:: (counters,
# gauges, histograms, their label lookups), the one /metrics scrape above aside.
metrics=$(callgrind_annotate --inclusive=no --threshold=100 "$TMP/cg.out" 2>/dev/null |
  awk '/llmgate::observe::/ && !/expose|format_|access_log/ {gsub(",","",$1); s+=$1} END{print s+0}')
awk -v m="$metrics" -v t="$total" -v r="$requests" \
  'BEGIN{printf "metrics: %d instructions per request, %.1f%% of the total\n", m / r, 100 * m / t}'
