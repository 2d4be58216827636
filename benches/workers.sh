#!/usr/bin/env bash
# Server CPU per request with one HTTP worker and with two (issue 22's target: two
# cost at most 1.05x of one), alternating, unpinned: `emcee serve` with
# `[http] workers = 1` then `2`, loaded by `emcee bench --profile call --sessions 8
# --concurrency 32` with `--pid` (CPU time from /proc over the measured phase).
# A run counts only when every call was answered.
#
# Usage: bash benches/workers.sh BINARY [legacy|modern]
#   env REQUESTS=100000 ROUNDS=3 PORT=19600
set -euo pipefail
bin=${1:?usage: bash benches/workers.sh BINARY [legacy|modern]}
protocol=${2:-legacy}
requests=${REQUESTS:-100000}
rounds=${ROUNDS:-3}
port=${PORT:-19600}
work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

for round in $(seq "$rounds"); do
    for workers in 1 2; do
        rm -rf "$work/data"
        printf '[http]\nworkers = %d\n' "$workers" >"$work/config.toml"
        "$bin" serve --bind "127.0.0.1:$port" --config "$work/config.toml" \
            --data-dir "$work/data" 2>/dev/null &
        pid=$!
        for _ in $(seq 100); do
            curl -s -o /dev/null "http://127.0.0.1:$port/health/live" && break
            sleep 0.1
        done
        report=$("$bin" bench --url "http://127.0.0.1:$port/mcp" --protocol "$protocol" \
            --profile call --sessions 8 --concurrency 32 --requests "$requests" \
            --pid "$pid" --json 2>/dev/null || true)
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=
        printf '%s' "$report" | python3 -c '
import json, sys
round_, workers, requests = sys.argv[1:4]
try:
    r = json.load(sys.stdin)
except ValueError:
    sys.exit("workers: round %s, %s worker(s): no report" % (round_, workers))
ok, protocol = r["ok"], r["protocol"]
if ok != int(requests) or r["errors"]:
    sys.exit("workers: round %s, %s worker(s): %s of %s answered" % (round_, workers, ok, requests))
cpu_us = r["server"]["cpu_s"] * 1e6 / ok
rate, p99 = r["requests_per_s"], r["latency_us"]["p99"]
print("round %s  workers=%s  %s  ok=%d  req/s=%.0f  p99=%.0f us  cpu=%.1f us/req"
      % (round_, workers, protocol, ok, rate, p99, cpu_us))
' "$round" "$workers" "$requests"
    done
done
