#!/usr/bin/env bash
# Side-by-side comparison (issue 5): the same `emcee bench` profiles against
#   emcee  - this repository's server (`emcee serve` / `emcee stdio`),
#   rmcp   - the official Rust SDK (benches/compare: rmcp-echo),
#   floor  - a bare actix-web endpoint answering the same JSON-RPC with no MCP
#            machinery (benches/compare: floor), the "bare HTTP limit".
#
# Usage: bash benches/compare.sh
# Environment (all optional):
#   REQUESTS=200000   measured tools/call requests for call and stdio
#   CHURN=REQUESTS/10 iterations of the churn profile (4 HTTP exchanges each)
#   SESSIONS=10000    sessions opened (and then each called once) by the sessions profile
#   CONCURRENCY=32    requests in flight
#   CHURN_CONCURRENCY=50  clients of the churn profile (the shape published MCP
#                     benchmarks use: 50 clients, each initialize, initialized,
#                     one tools/call, DELETE, again)
#   REPEAT=3          runs per measurement; the table shows medians
#   PROFILES="call call-modern stdio sessions churn"   (call-modern: the call
#                     profile in the sessionless 2026-07-28 revision)
#   SERVERS="emcee rmcp floor"   (add emcee-auth: emcee with a bearer token required,
#                     `[auth] tokens_file`, every request carrying it; HTTP only)
#   AUTH_TOML=        more TOML for emcee-auth's config (e.g. a `[rate]` table)
#   EMCEE_BEFORE=     another emcee binary (say, main's before a change), served as
#                     `emcee-before` exactly as `emcee` is: put it in SERVERS to
#                     compare before and after in one run
#   PORT_BASE=18180   emcee, rmcp, floor, emcee-auth and emcee-before listen on
#                     PORT_BASE, +1, +2, +3, +4
#   RUN_TIMEOUT=300   seconds one bench run may take before it is killed
#   STOP_GRACE=15     seconds a server gets to exit on SIGTERM before SIGKILL
#   OUT=benches/compare/target/results/<time>   raw JSON of every run
#   SKIP_BUILD=1      use the binaries already in target/release
#   LOG_LEVEL=info    emcee's --log-level, the server's default: one line per call
#                     (log_calls); EMCEE_LOG_CALLS=false in the environment turns
#                     those lines off. Every server's stderr is a pipe read by
#                     `cat` appending to $OUT/SERVER.log, as journald reads a
#                     service's stderr (the writes to the file are cat's CPU,
#                     not the server's)
#
# Every server is started fresh for every run (so RSS and memory per session
# are not skewed by earlier runs), pinned to CPU 0 while the load generator
# runs on CPU 1 when `taskset` exists and there are 2+ CPUs. All traffic goes
# to 127.0.0.1; every run is bounded by a request count and RUN_TIMEOUT.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COMPARE="$ROOT/benches/compare"

REQUESTS=${REQUESTS:-200000}
CHURN=${CHURN:-$((REQUESTS >= 10 ? REQUESTS / 10 : 1))}
SESSIONS=${SESSIONS:-10000}
CONCURRENCY=${CONCURRENCY:-32}
CHURN_CONCURRENCY=${CHURN_CONCURRENCY:-50}
REPEAT=${REPEAT:-3}
PROFILES=${PROFILES:-"call call-modern stdio sessions churn"}
SERVERS=${SERVERS:-"emcee rmcp floor"}
PORT_BASE=${PORT_BASE:-18180}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
STOP_GRACE=${STOP_GRACE:-15}
OUT=${OUT:-"$COMPARE/target/results/$(date +%Y%m%d-%H%M%S)"}
LOG_LEVEL=${LOG_LEVEL:-info}

EMCEE="$ROOT/target/release/emcee"
RMCP="$COMPARE/target/release/rmcp-echo"
FLOOR="$COMPARE/target/release/floor"
EMCEE_BEFORE=${EMCEE_BEFORE:-}

log() { echo "compare: $*" >&2; }
die() { log "$*"; exit 1; }

# ---------------------------------------------------------------- pinning
PIN_SERVER=()
PIN_LOAD=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    PIN_SERVER=(taskset -c 0)
    PIN_LOAD=(taskset -c 1)
else
    log "taskset missing or a single CPU: running unpinned"
fi

# ---------------------------------------------------------------- cleanup
SERVER_PID=""
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/emcee-compare.XXXXXX")

# stop_server: SIGTERM, then SIGKILL if it has not exited after STOP_GRACE s.
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill "$SERVER_PID" 2>/dev/null || true
    local i
    for i in $(seq $((STOP_GRACE * 10))); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        log "server $SERVER_PID still running ${STOP_GRACE}s after SIGTERM: SIGKILL"
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
cleanup() {
    stop_server
    rm -rf "$SCRATCH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- build
if [ -z "${SKIP_BUILD:-}" ]; then
    log "building emcee (release)"
    (cd "$ROOT" && cargo build --release)
    log "building rmcp-echo and floor (release)"
    cargo build --release --manifest-path "$COMPARE/Cargo.toml"
fi
for bin in "$EMCEE" "$RMCP" "$FLOOR"; do
    [ -x "$bin" ] || die "missing $bin (build it, or unset SKIP_BUILD)"
done
"$EMCEE" bench --help >/dev/null 2>&1 || die "$EMCEE has no 'bench' subcommand"
case " $SERVERS " in
    *" emcee-before "*) [ -x "$EMCEE_BEFORE" ] || die "emcee-before needs EMCEE_BEFORE=<an emcee binary>" ;;
esac

# ---------------------------------------------------------------- servers
port_of() {
    case $1 in
        emcee) echo "$PORT_BASE" ;;
        rmcp) echo $((PORT_BASE + 1)) ;;
        floor) echo $((PORT_BASE + 2)) ;;
        emcee-auth) echo $((PORT_BASE + 3)) ;;
        emcee-before) echo $((PORT_BASE + 4)) ;;
    esac
}

# The bearer token of emcee-auth, in the tokens file it serves with and in the
# file `emcee bench --bearer-file` reads.
auth_files() {
    [ -f "$SCRATCH/tokens" ] && return 0
    local token
    token="bench-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
    printf '%s\n' "$token" >"$SCRATCH/tokens"
    printf '%s\n' "$token" >"$SCRATCH/bearer"
}

accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_server NAME: start NAME's HTTP server in the background (SERVER_PID)
# and wait until it accepts connections.
start_server() {
    local name=$1 port
    port=$(port_of "$name")
    accepts "$port" && die "127.0.0.1:$port is already taken (set PORT_BASE)"
    local data="$SCRATCH/data-$name-$RANDOM"
    local log="$OUT/$name.log"
    case $name in
        emcee|emcee-before) # The sessions profile opens more sessions than the default cap.
               printf '[limits]\nmax_sessions = %d\n' $((SESSIONS + 100)) >"$SCRATCH/emcee.toml"
               "${PIN_SERVER[@]}" "$(emcee_bin "$name")" serve --bind "127.0.0.1:$port" \
                   --config "$SCRATCH/emcee.toml" --data-dir "$data" --log-level "$LOG_LEVEL" \
                   2> >(exec cat >>"$log") & ;;
        emcee-auth)
               auth_files
               printf '[limits]\nmax_sessions = %d\n[auth]\ntokens_file = "%s"\n%s\n' \
                   $((SESSIONS + 100)) "$SCRATCH/tokens" "${AUTH_TOML:-}" >"$SCRATCH/emcee-auth.toml"
               "${PIN_SERVER[@]}" "$EMCEE" serve --bind "127.0.0.1:$port" --config "$SCRATCH/emcee-auth.toml" \
                   --data-dir "$data" --log-level "$LOG_LEVEL" 2> >(exec cat >>"$log") & ;;
        rmcp) "${PIN_SERVER[@]}" "$RMCP" http "127.0.0.1:$port" 2> >(exec cat >>"$log") & ;;
        floor) "${PIN_SERVER[@]}" "$FLOOR" "127.0.0.1:$port" 2> >(exec cat >>"$log") & ;;
    esac
    SERVER_PID=$!
    local i
    for i in $(seq 100); do
        accepts "$port" && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || die "$name exited at start (see $OUT/$name.log)"
        sleep 0.1
    done
    die "$name does not accept connections on 127.0.0.1:$port after 10 s"
}

# emcee_bin NAME: the binary NAME (emcee or emcee-before) runs.
emcee_bin() {
    if [ "$1" = emcee-before ]; then echo "$EMCEE_BEFORE"; else echo "$EMCEE"; fi
}

# stdio_cmd NAME: the command line `emcee bench --cmd` spawns, or nothing.
stdio_cmd() {
    local data="$SCRATCH/stdio-$1-$RANDOM"
    case $1 in
        emcee|emcee-before)
            echo "${PIN_SERVER[*]} $(emcee_bin "$1") stdio --data-dir $data --log-level $LOG_LEVEL" ;;
        rmcp) echo "${PIN_SERVER[*]} $RMCP stdio" ;;
        *) ;;
    esac
}

# ---------------------------------------------------------------- runs
# bench OUTFILE ARGS...: one `emcee bench --json` run, bounded by RUN_TIMEOUT.
bench() {
    local out=$1
    shift
    if timeout "$RUN_TIMEOUT" "${PIN_LOAD[@]}" "$EMCEE" bench --json "$@" \
        >"$out" 2>"${out%.json}.err"; then
        return 0
    fi
    log "run failed: $(basename "$out") (see ${out%.json}.err)"
    rm -f "$out"
    touch "${out%.json}.failed"
}

# measure SERVER PROFILE REP: one run of PROFILE against SERVER, saved as
# $OUT/SERVER.PROFILE.REP.json. Returns 1 when the pair does not apply.
measure() {
    local name=$1 profile=$2 rep=$3
    local out="$OUT/$name.$profile.$rep.json" url
    url="http://127.0.0.1:$(port_of "$name")/mcp"
    local common=(--concurrency "$CONCURRENCY")
    [ "$profile" = churn ] && common=(--concurrency "$CHURN_CONCURRENCY")
    [ "$name" = emcee-auth ] && common+=(--bearer-file "$SCRATCH/bearer")
    case $profile in
        stdio)
            local cmd
            cmd=$(stdio_cmd "$name")
            [ -n "$cmd" ] || return 1
            bench "$out" --profile stdio --cmd "$cmd" --requests "$REQUESTS" "${common[@]}"
            return 0
            ;;
    esac
    start_server "$name"
    case $profile in
        call) bench "$out" --url "$url" --protocol legacy --profile call --sessions 8 \
                  --requests "$REQUESTS" --pid "$SERVER_PID" "${common[@]}" ;;
        call-modern) bench "$out" --url "$url" --protocol modern --profile call \
                  --requests "$REQUESTS" --pid "$SERVER_PID" "${common[@]}" ;;
        sessions) bench "$out" --url "$url" --protocol legacy --profile sessions \
                  --sessions "$SESSIONS" --pid "$SERVER_PID" "${common[@]}" ;;
        churn) bench "$out" --url "$url" --protocol legacy --profile churn \
                  --requests "$CHURN" --pid "$SERVER_PID" "${common[@]}" ;;
        *) stop_server; die "unknown profile $profile" ;;
    esac
    stop_server
}

# ---------------------------------------------------------------- summary
# summarize: medians over the repeats of every (server, profile), a table and
# the emcee/rmcp and emcee/floor ratios.
summarize() {
    python3 - "$OUT" "$PROFILES" "$SERVERS" <<'PY'
import glob, json, os, statistics, sys

out, profiles, servers = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()

def runs(server, profile):
    found = []
    for path in sorted(glob.glob(os.path.join(out, f"{server}.{profile}.*.json"))):
        with open(path) as f:
            found.append(json.load(f))
    return found

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None

def failed(server, profile):
    return len(glob.glob(os.path.join(out, f"{server}.{profile}.*.failed")))

def cpu_us_per_req(r):
    s = r.get("server") or {}
    if s.get("cpu_s") is None or not r.get("requests"):
        return None
    return s["cpu_s"] * 1e6 / r["requests"]

def ok_per_s(r):
    # Successful requests per second: a run whose requests all failed is 0.
    return r["ok"] / r["duration_s"] if r.get("duration_s") else r["requests_per_s"]

def summary(rs):
    server = [r.get("server") or {} for r in rs]
    return {
        "n": len(rs),
        "cpu_req": median(cpu_us_per_req(r) for r in rs),
        "rps": median(ok_per_s(r) for r in rs),
        "p50": median(r["latency_us"]["p50"] for r in rs if r["ok"]),
        "p99": median(r["latency_us"]["p99"] for r in rs if r["ok"]),
        "rss": median(s.get("rss_after_bytes") for s in server),
        "cpu": median(s.get("cpu_percent") for s in server),
        "per_session": median(r.get("memory_per_session_bytes") for r in rs),
        "errors": sum(r["errors"] for r in rs),
    }

def fmt(v, unit=""):
    if v is None:
        return "-"
    if unit == "MiB":
        return f"{v / 1048576:.1f}"
    if unit == "KiB":
        return f"{v / 1024:.1f}"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"

head = ("server", "profile", "runs", "ok req/s", "p50 us", "p99 us", "RSS MiB",
        "CPU %", "CPU us/req", "KiB/sess", "errors")
rows, table = [], {}
for profile in profiles:
    for server in servers:
        rs, bad = runs(server, profile), failed(server, profile)
        runs_col = f"{len(rs)}" + (f" +{bad} failed" if bad else "")
        if not rs:
            if bad:
                rows.append((server, profile, runs_col) + ("-",) * (len(head) - 3))
            continue
        s = table[(server, profile)] = summary(rs)
        rows.append((server, profile, runs_col, fmt(s["rps"]), fmt(s["p50"]),
                     fmt(s["p99"]), fmt(s["rss"], "MiB"), fmt(s["cpu"]),
                     fmt(s["cpu_req"]), fmt(s["per_session"], "KiB"), str(s["errors"])))

widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
line = lambda r: "  ".join(c.rjust(w) if i > 1 else c.ljust(w)
                           for i, (c, w) in enumerate(zip(r, widths)))
print(line(head))
print(line(tuple("-" * w for w in widths)))
for r in rows:
    print(line(r))

print()
print("ratios (emcee / other): req/s higher is better; p99, RSS and CPU us/req lower")
for profile in profiles:
    for me in ("emcee", "emcee-auth"):
        mine = table.get((me, profile))
        if not mine:
            continue
        for other in ("rmcp", "floor", "emcee-before"):
            theirs = table.get((other, profile))
            if not theirs:
                continue
            def ratio(key):
                a, b = mine[key], theirs[key]
                return f"{a / b:.2f}x" if a and b else "-"
            extra = f"  mem/session {ratio('per_session')}" if profile == "sessions" else ""
            print(f"  {profile:<11} {me + '/' + other:<16}  req/s {ratio('rps'):>6}  "
                  f"p99 {ratio('p99'):>6}  RSS {ratio('rss'):>6}  "
                  f"CPU us/req {ratio('cpu_req'):>6}{extra}")
PY
}

# ---------------------------------------------------------------- main
mkdir -p "$OUT"
log "results in $OUT"
log "REQUESTS=$REQUESTS CHURN=$CHURN SESSIONS=$SESSIONS CONCURRENCY=$CONCURRENCY CHURN_CONCURRENCY=$CHURN_CONCURRENCY REPEAT=$REPEAT LOG_LEVEL=$LOG_LEVEL EMCEE_LOG_CALLS=${EMCEE_LOG_CALLS:-}"
for profile in $PROFILES; do
    for name in $SERVERS; do
        for rep in $(seq "$REPEAT"); do
            measure "$name" "$profile" "$rep" || break # n/a: floor has no stdio
            if [ -s "$OUT/$name.$profile.$rep.json" ]; then
                log "done $name $profile #$rep"
            fi
        done
    done
done
summarize | tee "$OUT/summary.txt"
