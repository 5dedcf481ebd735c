#!/usr/bin/env bash
# Limit decisions per second one gateway gets from one Redis (pipelined
# connections, the admit script), p50/p99 at half that rate, and Redis memory
# per key per algorithm — beside the seed's ZSET script in the same run.
# Usage: bench/redis_limits.sh [--connections N] [--concurrency C] [--seconds S]
# Needs redis-server (make deps). Starts it on a free port, stops it by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
ninja -C build -j2 redis_bench >&2 # its output on stderr: stdout is the figures
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning >"$TMP/redis.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
./build/redis_bench "$PORT" "$@"
