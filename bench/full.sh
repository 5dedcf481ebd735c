#!/usr/bin/env bash
# Everything in docs/BENCHMARKS.md (about 35 minutes on 2 cores):
#   the peers at 10 s a run; the overload experiment at 60 s a run with the
#   seed's handler as written as a fourth setup; 5,000 held streams; the
#   limiter's cost as tracked keys grow (and its ns per decision); limit
#   decisions in Redis; instructions per request (callgrind; llmgate and nginx, with wrk's head and the
#   openai client's); the CPU per request at a fixed rate against nginx; coroutine frame sizes; the tokenizer.
# Results go to bench/results/.
# Needs: make build, scripts/install-deps.sh --bench, valgrind.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
OUT="$HERE/results"
mkdir -p "$OUT"
# The tokenizer's measure (last) needs the npm packages: installed first, not found missing after 40 minutes.
(cd "$REPO" && make --no-print-directory node_modules/.package-lock.json) >&2
start=$(date +%s)
"$HERE/peers/run.sh" --workers "1 2" --duration 10 --out "$OUT/peers.md"
"$HERE/overload.sh" --seconds 60 --setups "direct fastapi seed llmgate" --out "$OUT"
"$HERE/streams.sh" --streams 5000 --tokens 60 --nginx | tee "$OUT/streams.md"
"$HERE/frame_sizes.py" >"$OUT/frame_sizes.txt"
(cd "$REPO" && make --no-print-directory bench-limits) | tee "$OUT/limits.txt"
"$HERE/redis_limits.sh" --seconds 6 | tee "$OUT/redis.txt"
{
  for t in on off; do "$HERE/instructions_per_request.sh" --thinking "$t" --seconds 6; done
  for c in wrk openai-node; do
    for s in llmgate nginx; do "$HERE/instructions_per_request.sh" --thinking off --client "$c" --server "$s" --seconds 6; done
  done
} | tee "$OUT/instructions.txt"
"$HERE/cpu_per_request.sh" --nginx --rounds 5 | tee "$OUT/cpu_per_request.md"
node "$HERE/tokenizer_speed.mjs" | tee "$OUT/tokenizer.txt"
echo "bench/full.sh: $(( $(date +%s) - start ))s; results in $OUT" >&2
