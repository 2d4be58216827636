#!/usr/bin/env bash
# The Raspberry Pi profile's figures (deploy/README.md, "Raspberry Pi"): emcee serve
# with deploy/pi.toml on one core (taskset -c 0) in a 48 MiB memory cgroup, the load
# generator on another core (taskset -c 1).
#
#   bash benches/pi.sh [path/to/emcee]      (root; default target/release/emcee)
#   RUNS=3 WRITE_S=60 bash benches/pi.sh
#
# Prints, per run: idle RSS, RSS with 1,500 sessions held, echo req/s and p99, and the
# bytes written to the data dir's disk (/proc/PID/io write_bytes) during WRITE_S
# seconds of two fixed loads, extrapolated to an hour: one session calling echo ten
# times a second, then the same plus kv_set once a second; then the median of each
# over the runs. The data dir is under $TMPDIR (default /var/tmp), which must be a
# disk, not a tmpfs (a tmpfs write is never counted in write_bytes).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-${CARGO_TARGET_DIR:-target}/release/emcee}
RUNS=${RUNS:-3}
WRITE_S=${WRITE_S:-60}
MEM=48M
PORT=${PORT:-18480}
ADMIN=${ADMIN:-18481}
WORK=$(mktemp -d -p "${TMPDIR:-/var/tmp}" emcee-pi-bench.XXXXXX)
CG=""
PID=""

cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  [ -n "$CG" ] && rmdir "$CG" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# A memory cgroup: systemd's scope where systemd runs, else cgroup v2, else v1.
start_in_cgroup() {
  if systemd-run --quiet --scope -p MemoryMax=$MEM true >/dev/null 2>&1; then
    systemd-run --quiet --scope -p MemoryMax=$MEM -p MemorySwapMax=0 \
      taskset -c 0 "$@" 2>>"$WORK/emcee.log" &
    PID=$!
    echo "cgroup: systemd-run --scope -p MemoryMax=$MEM" >&2
    return
  fi
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    CG=/sys/fs/cgroup/emcee-pi-bench.$$
    mkdir "$CG"
    echo $MEM >"$CG/memory.max"
    echo 0 >"$CG/memory.swap.max" 2>/dev/null || true
  else
    CG=/sys/fs/cgroup/memory/emcee-pi-bench.$$
    mkdir "$CG"
    echo $MEM >"$CG/memory.limit_in_bytes"
  fi
  echo "cgroup: $CG" >&2
  sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec taskset -c 0 "$@"' sh "$CG" "$@" \
    2>>"$WORK/emcee.log" &
  PID=$!
}

peak() {
  if [ -z "$CG" ]; then echo "?"; return; fi
  if [ -f "$CG/memory.peak" ]; then cat "$CG/memory.peak"; else cat "$CG/memory.max_usage_in_bytes"; fi
}

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
write_bytes() { awk '/^write_bytes/ { print $2 }' "/proc/$1/io"; }

wait_ready() {
  for _ in $(seq 100); do
    "$BIN" healthcheck --bind 127.0.0.1:$ADMIN >/dev/null 2>&1 && return
    sleep 0.05
  done
  echo "emcee did not start: $(tail -3 "$WORK/emcee.log")" >&2
  exit 1
}

# One session: echo ten times a second and, with $2 = kv, kv_set once a second, for
# $1 seconds.
fixed_load() {
  python3 - "$1" "http://127.0.0.1:$PORT/mcp" "${2:-}" <<'PY'
import json, sys, time, urllib.request
seconds, url, kv = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "kv"
base = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
def post(body, headers):
    req = urllib.request.Request(url, json.dumps(body).encode(), headers)
    with urllib.request.urlopen(req) as r:
        return r.headers.get("mcp-session-id"), r.read()
sid, _ = post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "pi-bench", "version": "1"}}}, base)
h = dict(base, **{"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"})
post({"jsonrpc": "2.0", "method": "notifications/initialized"}, h)
start, n = time.monotonic(), 0
for second in range(seconds):
    if kv:
        n += 1
        post({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {
            "name": "kv_set", "arguments": {"key": "k%d" % (second % 100), "value": "v" * 100}}}, h)
    for _ in range(10):
        n += 1
        post({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {
            "name": "echo", "arguments": {"text": "hello"}}}, h)
    time.sleep(max(0.0, start + second + 1 - time.monotonic()))
PY
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

results="$WORK/results"
for run in $(seq "$RUNS"); do
  rm -rf "$WORK/data"
  start_in_cgroup "$BIN" serve --config deploy/pi.toml --data-dir "$WORK/data" \
    --bind 127.0.0.1:$PORT --admin-bind 127.0.0.1:$ADMIN
  wait_ready
  sleep 2
  idle=$(rss_kib $PID)

  sessions=$(taskset -c 1 "$BIN" bench --threads 1 --url http://127.0.0.1:$PORT/mcp --profile sessions \
    --sessions 1500 --concurrency 16 --pid $PID --json)
  held=$(echo "$sessions" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["server"]["rss_after_bytes"]//1024, d["ok"], d["errors"])')

  echo=$(taskset -c 1 "$BIN" bench --threads 1 --url http://127.0.0.1:$PORT/mcp --duration 10s \
    --concurrency 16 --sessions 4 --pid $PID --json)
  call=$(echo "$echo" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["requests_per_s"]), d["latency_us"]["p99"], d["errors"], round(d["server"]["cpu_percent"]), round(d["server"]["cpu_s"] / d["ok"] * 1e6, 1))')

  sleep 1
  before=$(write_bytes $PID)
  fixed_load "$WRITE_S"
  sleep 1
  after=$(write_bytes $PID)
  echo_hour=$(( (after - before) * 3600 / WRITE_S ))
  before=$(write_bytes $PID)
  fixed_load "$WRITE_S" kv
  sleep 1
  after=$(write_bytes $PID)
  per_hour=$(( (after - before) * 3600 / WRITE_S ))
  rss_end=$(rss_kib $PID)
  cg_peak=$(peak)

  kill $PID; wait $PID || { echo "emcee exited $?" >&2; exit 1; }
  PID=""
  [ -n "$CG" ] && rmdir "$CG" 2>/dev/null || true
  read -r held_kib held_ok held_err <<<"$held"
  read -r rps p99 call_err cpu us_req <<<"$call"
  echo "run $run: idle RSS ${idle} KiB; 1,500 sessions held: RSS ${held_kib} KiB (${held_ok} ok, ${held_err} errors); echo ${rps} req/s, p99 ${p99} us (${call_err} errors; server CPU ${cpu}% of its core, ${us_req} us per call); storage writes: echo only ${echo_hour} bytes/hour, echo + kv_set ${per_hour} bytes/hour ($((after - before)) bytes in ${WRITE_S} s); RSS at the end ${rss_end} KiB; cgroup peak ${cg_peak} bytes"
  echo "$idle $held_kib $rps $p99 $echo_hour $per_hour $us_req" >>"$results"
done

col() { awk -v c="$1" '{ print $c }' "$results" | median; }
echo "median of $RUNS runs: idle RSS $(col 1) KiB; 1,500 sessions held $(col 2) KiB; echo $(col 3) req/s, p99 $(col 4) us, $(col 7) us of CPU per call; storage writes: echo only $(col 5) bytes/hour, echo + kv_set $(col 6) bytes/hour"
