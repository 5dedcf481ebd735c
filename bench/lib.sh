# Shared by the bench scripts: a temp dir, processes stopped by PID on exit,
# and waiting for a process's "listening on HOST:PORT" line.
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
# Prints the port from the listening line in file $1 (bounded wait).
wait_port() { for _ in $(seq 100); do grep -q 'listening on' "$1" 2>/dev/null && { grep -o '[0-9]*$' "$1" | head -1; return; }; sleep 0.1; done; echo "no listening line in $1" >&2; exit 1; }
# Starts `llmgate sim --profile instant` on a free port; sets SIM_PORT.
start_instant_sim() { "$BIN" sim --port 0 --profile instant >"$TMP/sim.out" 2>&1 & PIDS+=($!); SIM_PORT=$(wait_port "$TMP/sim.out"); }
