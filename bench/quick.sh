#!/usr/bin/env bash
# The headline figures in one command (about 12 minutes on 2 cores):
#   1. the proxy path and the refusal path against every peer, 1 and 2 workers
#      (bench/peers/run.sh, 5 s a run);
#   2. the overload experiment at 1×, 2×, 3× the simulated GPU's capacity,
#      direct, behind FastAPI and behind llmgate, with its plot
#      (bench/overload.sh, 30 s a run);
#   3. the CPU per request at the same load (8,000 requests/s) against nginx,
#      one worker, three rounds (bench/cpu_per_request.sh).
# Results go to bench/results/ (peers.md, overload.md, overload.png, cpu_per_request.md).
# Needs: make build, scripts/install-deps.sh --bench.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$HERE/results"
mkdir -p "$OUT"
start=$(date +%s)
"$HERE/peers/run.sh" --workers "1 2" --duration 5 --out "$OUT/peers.md"
"$HERE/overload.sh" --seconds 30 --out "$OUT"
"$HERE/cpu_per_request.sh" --nginx --rounds 3 | tee "$OUT/cpu_per_request.md"
echo "bench/quick.sh: $(( $(date +%s) - start ))s; results in $OUT" >&2
