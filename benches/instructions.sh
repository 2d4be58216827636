#!/usr/bin/env bash
# Instructions (and, where a malloc uprobe can be set, allocations) per
# `tools/call` of each emcee binary given: the measure of the call path that the
# machine's noise does not move (benches/README.md, "Third pass").
#
# stdio (the default): callgrind on `emcee stdio` fed SHORT and then LONG echo
# calls on one session; the main thread's instructions of the long run less the
# short run's, divided by the difference in calls, each run counted only when every
# call was answered with a result (start-up and shutdown cancel out; sled's
# threads, which spin under valgrind, are left out). Then, with perf and a
# `probe_libc:malloc` uprobe (made here if it can be), malloc calls the same way.
#
# MODE=http (binaries with symbols: `EMCEE_KEEP_SYMBOLS=1 cargo build --release`,
# the shipped code unstripped, or `cargo build --profile profiling`): callgrind on
# `emcee serve` with one HTTP worker, loaded by `emcee bench` (the first binary's,
# run natively: 4 sessions, 8 in flight) with SHORT and then LONG measured calls in
# PROTOCOL's era; the worker thread's instructions
# (the thread that ran actix-http's dispatcher) the same way, each run counted
# only when every call was answered. actix-http's decoder clears a 3 KB array at
# every decode (`rep stosb`, ~18,600 of these "instructions" a call; cheap in
# time): compare HTTP figures with each other, not with stdio's.
#
# Usage: bash benches/instructions.sh BINARY [BINARY...]
#   env SHORT=5000 LONG=20000 (http: 2000 and 6000) MODE=stdio|http
#       PROTOCOL=legacy|modern (http)
set -euo pipefail
mode=${MODE:-stdio}
protocol=${PROTOCOL:-legacy}
case $mode in
    stdio) short=${SHORT:-5000} long=${LONG:-20000} ;;
    http) short=${SHORT:-2000} long=${LONG:-6000} ;;
    *) echo "instructions: MODE is stdio or http" >&2; exit 2 ;;
esac
command -v valgrind >/dev/null || { echo "instructions: needs valgrind" >&2; exit 1; }
[ $# -gt 0 ] || { echo "usage: bash benches/instructions.sh BINARY [BINARY...]" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# initialize, initialized, then N echo calls.
calls() {
    printf '%s\n' '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"m","version":"1"}}}'
    printf '%s\n' '{"jsonrpc":"2.0","method":"notifications/initialized"}'
    for ((i = 1; i <= $1; i++)); do
        printf '{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}\n' "$i"
    done
}

# Main-thread instructions of BINARY fed FILE of CALLS calls; fails unless every
# call (and the initialize) was answered with a result that is not an error.
main_thread() {
    rm -rf "$work/data" "$work/cg"
    mkdir -p "$work/cg"
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$work/cg/out" \
        "$1" stdio --data-dir "$work/data" <"$2" >"$work/answers" 2>/dev/null
    local ok
    ok=$(grep '"result":' "$work/answers" | grep -vc '"isError":true' || true)
    if [ "$ok" -ne $(($3 + 1)) ]; then
        echo "instructions: $1 answered $ok of $(($3 + 1)) with a result" >&2
        exit 1
    fi
    awk '/^summary:/ {print $2}' "$work/cg/out-01"
}

# Worker-thread instructions of BINARY serving CALLS measured HTTP calls (after
# the load generator's warm-up), or exit 1 unless every call was answered.
http_worker() {
    rm -rf "$work/data" "$work/cg"
    mkdir -p "$work/cg"
    printf '[http]\nworkers = 1\n' >"$work/one-worker.toml"
    local port=$((18700 + RANDOM % 200)) pid
    valgrind --tool=callgrind --separate-threads=yes --compress-strings=no \
        --callgrind-out-file="$work/cg/out" "$1" serve --bind "127.0.0.1:$port" \
        --config "$work/one-worker.toml" --data-dir "$work/data" 2>/dev/null &
    pid=$!
    for _ in $(seq 120); do
        curl -s -o /dev/null "http://127.0.0.1:$port/health/live" && break
        sleep 0.5
    done
    local report ok
    report=$("$client" bench --url "http://127.0.0.1:$port/mcp" --protocol "$protocol" \
        --requests "$2" --sessions 4 --concurrency 8 --json 2>/dev/null || true)
    kill -INT "$pid"
    wait "$pid" 2>/dev/null || true
    ok=$(printf '%s' "$report" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(r["ok"] if r["errors"] == 0 else -1)' 2>/dev/null || echo -1)
    if [ "$ok" -ne "$2" ]; then
        echo "instructions: $1 answered $ok of $2 HTTP calls" >&2
        exit 1
    fi
    # The worker thread is the one that ran actix-http's dispatcher (names written
    # out in each thread's file: --compress-strings=no).
    local f
    for f in "$work"/cg/out-*; do
        if grep -q 'actix_http::h1::dispatcher' "$f"; then
            awk '/^summary:/ {print $2}' "$f"
            return
        fi
    done
    echo "instructions: no HTTP worker thread in $1's profile (MODE=http needs symbols:" \
        "EMCEE_KEEP_SYMBOLS=1 cargo build --release, or the profiling build)" >&2
    exit 1
}

if [ "$mode" = http ]; then
    command -v curl >/dev/null || { echo "instructions: MODE=http needs curl" >&2; exit 1; }
    client=$1
    n=$((long - short))
    printf '%-40s %14s\n' "binary ($protocol, HTTP)" "instr/call"
    for bin in "$@"; do
        a=$(http_worker "$bin" "$short")
        b=$(http_worker "$bin" "$long")
        name=$bin
        [ ${#name} -le 40 ] || name=${name: -40}
        printf '%-40s %14s\n' "$name" "$(((b - a) / n))"
    done
    exit 0
fi

calls "$short" >"$work/short.jsonl"
calls "$long" >"$work/long.jsonl"

probe=false
if command -v perf >/dev/null; then
    if perf stat -e probe_libc:malloc true >/dev/null 2>&1; then
        probe=true
    elif libc=$(ldconfig -p | awk '/libc.so.6 .*x86-64/ {print $NF; exit}') && [ -n "$libc" ] &&
        perf probe -q -x "$libc" malloc 2>/dev/null; then
        probe=true
    fi
fi

# malloc calls of BINARY fed FILE.
mallocs() {
    rm -rf "$work/data"
    perf stat -x, -e probe_libc:malloc "$1" stdio --data-dir "$work/data" <"$2" 2>&1 >/dev/null |
        awk -F, '/probe_libc:malloc/ {print $1}'
}

n=$((long - short))
printf '%-40s %14s %12s\n' binary "instr/call" "allocs/call"
for bin in "$@"; do
    a=$(main_thread "$bin" "$work/short.jsonl" "$short")
    b=$(main_thread "$bin" "$work/long.jsonl" "$long")
    allocs=n/a
    if $probe; then
        ma=$(mallocs "$bin" "$work/short.jsonl")
        mb=$(mallocs "$bin" "$work/long.jsonl")
        allocs=$(awk -v a="$ma" -v b="$mb" -v n="$n" 'BEGIN {printf "%.1f", (b - a) / n}')
    fi
    name=$bin
    [ ${#name} -le 40 ] || name=${name: -40}
    printf '%-40s %14s %12s\n' "$name" "$(((b - a) / n))" "$allocs"
done
