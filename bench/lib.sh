# Shared by the bench scripts (source it): a temp dir, processes stopped by
# PID on exit (the logs kept when the script fails), free ports, waiting for
# a process's "listening on HOST:PORT" line, and reading JSON summaries.
# Set BIN (the llmgate binary) before calling start_instant_sim.
PY=/usr/bin/python3 # Debian's: where the FastAPI stack of --bench is installed
[[ -x "$PY" ]] || PY=python3
TMP="$(mktemp -d "${TMPDIR:-/tmp}/llmgate-bench.XXXXXX")"
PIDS=()

# stop_pid PID: SIGTERM, up to 5 s, then SIGKILL.
stop_pid() {
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$? p
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  if (( rc == 0 )) || [[ -z "$(ls -A "$TMP" 2>/dev/null)" ]]; then rm -rf "$TMP"; else echo "logs kept in $TMP" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# wait_listening FILE [PID]: prints the port of the first "listening on HOST:PORT" line (bounded wait).
wait_listening() {
  local i
  for ((i = 0; i < 200; i++)); do
    grep -q 'listening on' "$1" 2>/dev/null && { grep -o 'listening on [0-9.]*:[0-9]*' "$1" | head -1 | grep -o '[0-9]*$'; return; }
    [[ -z "${2:-}" ]] || kill -0 "$2" 2>/dev/null || break
    sleep 0.05
  done
  echo "error: no listening line in $1" >&2; cat "$1" >&2; return 1
}
wait_port() { wait_listening "$@"; } # the older name

# wait_http URL PID: until URL answers at all (bounded), or the process exits.
wait_http() {
  local i
  for ((i = 0; i < 150; i++)); do
    kill -0 "$2" 2>/dev/null || { echo "error: $1: its process exited" >&2; return 1; }
    curl -s -o /dev/null -m 1 "$1" && return 0
    sleep 0.1
  done
  echo "error: $1 never answered" >&2; return 1
}

# json_field FILE EXPR: EXPR evaluated with the parsed file as d.
json_field() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$@"; }

# start_gateway: `llmgate serve -c $TMP/llmgate.yaml`; sets GW_PID and GW_PORT.
start_gateway() {
  "$BIN" serve -c "$TMP/llmgate.yaml" >"$TMP/llmgate.log" 2>&1 &
  GW_PID=$!
  PIDS+=("$GW_PID")
  GW_PORT="$(wait_listening "$TMP/llmgate.log" "$GW_PID")"
}

# Starts `llmgate sim --profile instant` on a free port; sets SIM_PORT.
start_instant_sim() {
  "$BIN" sim --host 127.0.0.1 --port 0 --profile instant >"$TMP/sim.out" 2>&1 &
  PIDS+=($!)
  SIM_PORT=$(wait_listening "$TMP/sim.out" $!)
}

# limit_rate never|triggers: the per-client requests/second of the peers'
# two limits: one that never triggers, one that refuses nearly everything.
limit_rate() { if [[ "$1" == never ]]; then echo 1000000; else echo 10; fi; }

# write_nginx_conf DIR PORT WORKERS MASTER(on|off) [LIMIT]: an nginx config in
# DIR/nginx.conf proxying 127.0.0.1:PORT to the simulator ($SIM_PORT) with
# upstream keep-alive, as the peers and the instruction count run it; with
# LIMIT never or triggers, a limit_req of limit_rate's rate per client
# address (none, or no LIMIT: no limit). NGINX_CONNECTIONS: its
# worker_connections (8192 unless set); descriptors allowed: twice that,
# within the hard limit (20,000 here), and the connections no more than
# the descriptors (else nginx warns).
write_nginx_conf() {
  local dir="$1" port="$2" workers="$3" master="$4" limit="${5:-}" user="" zone="" limit_line=""
  local connections="${NGINX_CONNECTIONS:-8192}" nofile hard
  nofile=$((2 * connections))
  hard="$(ulimit -Hn)"
  [[ $hard == unlimited ]] || (( nofile <= hard )) || nofile=$hard
  (( connections <= nofile )) || connections=$nofile
  mkdir -p "$dir/logs" "$dir/temp"
  (( EUID == 0 )) && user="user root root;"
  if [[ -n "$limit" && "$limit" != none ]]; then
    zone="limit_req_zone \$binary_remote_addr zone=perclient:10m rate=$(limit_rate "$limit")r/s; limit_req_status 429;"
    # limit_req counts in milliseconds: without a burst, even 1,000,000r/s
    # refuses a second request within the same millisecond.
    local burst=""
    [[ "$limit" == never ]] && burst=" burst=1000000 nodelay"
    limit_line="limit_req zone=perclient$burst;"
  fi
  cat >"$dir/nginx.conf" <<EOF
$user
daemon off;
master_process $master;
worker_processes $workers;
worker_rlimit_nofile $nofile;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections $connections; }
http {
  access_log off;
  client_body_temp_path $dir/temp/client_body;
  proxy_temp_path $dir/temp/proxy;
  fastcgi_temp_path $dir/temp/fastcgi;
  uwsgi_temp_path $dir/temp/uwsgi;
  scgi_temp_path $dir/temp/scgi;
  keepalive_requests 1000000;
  $zone
  upstream sim { server 127.0.0.1:$SIM_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$port;
    location / {
      $limit_line
      proxy_pass http://sim;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
}

# tree_pids PID: the process and its descendants.
tree_pids() {
  local p
  echo "$1"
  for p in $(pgrep -P "$1" || true); do tree_pids "$p"; done
}
# tree_cpu PID: clock ticks of user and system time of the process and its descendants.
tree_cpu() {
  local u=0 s=0 p f
  for p in $(tree_pids "$1"); do
    f=($(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null || echo "0 0"))
    u=$((u + f[0])) s=$((s + f[1]))
  done
  echo "$u $s"
}
TICK="$(getconf CLK_TCK)"
# us_per_request TICKS REQUESTS: CPU clock ticks as microseconds per request.
us_per_request() { awk -v d="$1" -v n="$2" -v t="$TICK" 'BEGIN { printf "%.1f", (n > 0 ? d / t / n * 1e6 : 0) }'; }

# System calls counted by perf on the kernel's syscall tracepoints (linux-perf):
# in the kernel, barely slowing the process, where strace slows it so much
# that what it reads is always there when it reads.
perf_syscalls_available() { perf stat -e 'syscalls:sys_enter_read' -- true >/dev/null 2>&1; }
# count_syscalls FILE PID...: counts every system call of those processes (all
# their threads) into FILE, the recvfrom calls that returned EAGAIN, and the
# epoll_wait calls that did not block (timeout 0: Asio polls so when handlers
# are waiting to run), in the background; sets SYSCALLS_PID (stop it with
# kill -INT, then wait). Sleeps a moment so that counting has begun when it
# returns.
count_syscalls() {
  local out="$1"
  shift
  perf stat -x, -o "$out" -e 'syscalls:sys_enter_*' -e syscalls:sys_exit_recvfrom --filter 'ret == -11' \
    -e syscalls:sys_enter_epoll_wait --filter 'timeout == 0' -p "$(IFS=,; echo "$*")" 2>/dev/null &
  SYSCALLS_PID=$!
  sleep 0.5
}
# syscalls_per_request FILE REQUESTS: count_syscalls' result as "name calls-per-request"
# lines, recvfrom(EAGAIN) and epoll_wait(0) among them (perf stat -x,:
# count,unit,event,...; the filtered epoll_wait is the event's second line).
syscalls_per_request() {
  awk -F, -v n="$2" '$1 ~ /^[0-9]+$/ {
    e = $3
    if (e == "syscalls:sys_exit_recvfrom") e = "recvfrom(EAGAIN)"
    else if (e == "syscalls:sys_enter_epoll_wait" && seen[e]++) e = "epoll_wait(0)"
    else sub(/^syscalls:sys_enter_/, "", e)
    printf "%s %.2f\n", e, $1 / n }' "$1"
}
# syscall_summary: such lines on stdin as one line, the busiest first, those
# under 0.01 a request left out (recvfrom(EAGAIN) and epoll_wait(0) always kept).
syscall_summary() {
  sort -k2 -rn | awk '$2 >= 0.01 || $1 == "recvfrom(EAGAIN)" || $1 == "epoll_wait(0)" { printf "%s%s %s", (n++ ? ", " : ""), $1, $2 } END { print "" }'
}
