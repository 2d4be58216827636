#!/usr/bin/env bash
# Redis against sled (issue 19): `emcee bench` (call profile, 2025-11-25) of
# tools/call echo (never touches storage), kv_set and kv_get, against one `emcee
# serve` on sled and one on a Valkey server on the same host, in one run; then idle
# RSS of both. Valkey is the tests' (tests/clients/valkey/.venv, made by `cargo test
# --test it fleet`, or VALKEY=/path/to/valkey-server). Servers are pinned to CPU 0
# and the load generator to CPU 1 when taskset exists.
#
# Usage: cargo build --release && bash benches/fleet.sh
# Environment: REQUESTS=20000 CONCURRENCY=32 DURABILITY=none (none|aof|fsync)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/emcee}
REQUESTS=${REQUESTS:-20000}
CONCURRENCY=${CONCURRENCY:-32}
DURABILITY=${DURABILITY:-none}
VALKEY=${VALKEY:-$(find "$ROOT/tests/clients/valkey/.venv" -name valkey-server -type f | head -n 1)}
[ -x "$VALKEY" ] || { echo "no valkey-server: run cargo test --test it fleet first, or set VALKEY" >&2; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
# CPU pinning prefixes (empty without taskset or with one CPU); the servers are
# started with `exec` semantics (no shell in between), so $! is their pid.
server_cpu=() client_cpu=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  server_cpu=(taskset -c 0) client_cpu=(taskset -c 1)
fi

aof=()
[ "$DURABILITY" = none ] || aof=(--appendonly yes --appendfsync everysec)
"${server_cpu[@]}" "$VALKEY" --bind 127.0.0.1 --port 18390 --save "" --dir "$work" "${aof[@]}" --loglevel warning >/dev/null &
pids+=($!)
for _ in $(seq 100); do (echo PING >/dev/tcp/127.0.0.1/18390) 2>/dev/null && break; sleep 0.05; done

start() { # name port [extra flags...]
  local name=$1 port=$2
  shift 2
  printf '[storage]\nredis_durability = "%s"\n' "$DURABILITY" >"$work/$name.toml"
  EMCEE_LOG=warning "${server_cpu[@]}" "$BIN" serve --bind "127.0.0.1:$port" --data-dir "$work/$name-data" \
    --config "$work/$name.toml" --limit max_sessions=100000 "$@" 2>"$work/$name.log" &
  pids+=($!)
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/health/live" >/dev/null 2>&1 && return; sleep 0.05; done
  echo "$name did not start" >&2; cat "$work/$name.log" >&2; exit 1
}
start sled 18391
sled_pid=${pids[-1]}
start redis 18392 --storage-url redis://127.0.0.1:18390/0
redis_pid=${pids[-1]}
sleep 1
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$1/status"; }
echo "idle RSS: sled $(rss "$sled_pid"), redis $(rss "$redis_pid") (DURABILITY=$DURABILITY)"

printf '%-8s %-7s %10s %9s %9s %8s\n' tool storage req/s p50_ms p99_ms errors
for tool in echo kv_set kv_get; do
  case $tool in
    echo) args='{"text":"hello"}' ;;
    kv_set) args='{"key":"bench","value":"v"}' ;;
    kv_get) args='{"key":"bench"}' ;;
  esac
  for name in sled redis; do
    port=18391; pid=$sled_pid
    [ "$name" = redis ] && { port=18392; pid=$redis_pid; }
    out=$("${client_cpu[@]}" "$BIN" bench --url "http://127.0.0.1:$port/mcp" --requests "$REQUESTS" \
      --warmup 500 --concurrency "$CONCURRENCY" --tool "$tool" --args "$args" --pid "$pid" --json)
    python3 - "$tool" "$name" "$out" <<'PY'
import json, sys
tool, name, out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
lat = out["latency_us"]
print(f"{tool:<8} {name:<7} {out['requests_per_s']:>10.0f} {lat['p50'] / 1000:>9.2f} "
      f"{lat['p99'] / 1000:>9.2f} {out['errors']:>8}  ok={out['ok']}")
PY
  done
done
