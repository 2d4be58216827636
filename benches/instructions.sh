#!/usr/bin/env bash
# Instructions (and, where a malloc uprobe can be set, allocations) per stdio
# `tools/call` of each emcee binary given: the measure of the call path that the
# machine's noise does not move (benches/README.md, "Third pass").
#
# For each binary: callgrind on `emcee stdio` fed SHORT and then LONG echo calls on
# one session; the main thread's instructions of the long run less the short run's,
# divided by the difference in calls, each run counted only when every call was
# answered with a result (start-up and shutdown cancel out; sled's
# threads, which spin under valgrind, are left out). Then, with perf and a
# `probe_libc:malloc` uprobe (made here if it can be), malloc calls the same way.
#
# Usage: bash benches/instructions.sh BINARY [BINARY...]
#   env SHORT=5000 LONG=20000
set -euo pipefail
short=${SHORT:-5000}
long=${LONG:-20000}
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
calls "$short" >"$work/short.jsonl"
calls "$long" >"$work/long.jsonl"

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
