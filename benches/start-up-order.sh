#!/usr/bin/env bash
# Write src/bin/emcee/start-up.order, the functions LLD places first in the
# `emcee` binary (see build.rs): first those `emcee serve` and `emcee stdio` run
# until ready, then those serving a few calls of each protocol era adds. Taken
# with callgrind from a release build that keeps its symbols (EMCEE_KEEP_SYMBOLS=1:
# the same names as the shipped, linker-stripped build), then the release binary
# is linked again with the new order. Run it after changes that move start-up
# code (new dependencies, a new toolchain); `python3 benches/idle.py` shows the
# effect. Needs valgrind and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in valgrind callgrind_control curl nm; do
    command -v "$tool" >/dev/null || { echo "start-up-order: needs $tool" >&2; exit 1; }
done
order=src/bin/emcee/start-up.order
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
EMCEE_KEEP_SYMBOLS=1 cargo build --release --locked --bin emcee
cp target/release/emcee "$work/emcee"
bin=$work/emcee
grind=(valgrind --tool=callgrind --demangle=no --compress-strings=no --compress-pos=no)
port=${PORT:-18390}

"${grind[@]}" --callgrind-out-file="$work/serve.out" \
    "$bin" serve --bind "127.0.0.1:$port" --data-dir "$work/serve" 2>"$work/serve.err" &
pid=$!
for _ in $(seq 1 200); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/health" && break
    sleep 0.2
done
callgrind_control --dump=ready "$pid" >/dev/null 2>&1
for protocol in legacy modern; do
    target/release/emcee bench --url "http://127.0.0.1:$port/mcp" --protocol "$protocol" \
        --requests 20 --warmup 0 --concurrency 2 --sessions 1 >/dev/null
done
kill -TERM "$pid"
wait "$pid" || true
printf '{"jsonrpc":"2.0","id":1,"method":"ping"}\n' |
    "${grind[@]}" --callgrind-out-file="$work/stdio.out" \
        "$bin" stdio --data-dir "$work/stdio" >/dev/null 2>&1 || true

nm --defined-only "$bin" | awk '$2 ~ /^[tTwW]$/ {print $3}' | sort -u >"$work/symbols"
functions() { grep -h '^fn=' "$@" | sed 's/^fn=//' | sort -u | comm -12 - "$work/symbols"; }
ready=$(ls "$work"/serve.out.*.1 2>/dev/null || ls "$work"/serve.out.1)
functions "$ready" "$work/stdio.out" >"$work/start"
functions "$work"/serve.out* | comm -23 - "$work/start" >"$work/serving"
{
    echo "# Written by benches/start-up-order.sh: what LLD places first in the emcee binary"
    echo "# (build.rs), start-up functions, then serving ones. Generated; do not edit."
    cat "$work/start" "$work/serving"
} >"$order"
echo "start-up-order: $(wc -l <"$work/start") start-up functions, then $(wc -l <"$work/serving") serving ones -> $order"
cargo build --release --locked --bin emcee
