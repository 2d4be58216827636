#!/usr/bin/env bash
# The slow suite: every fuzz target for a bounded time (not part of `cargo test`,
# which replays the committed corpus and past crashes instead; CI runs neither).
#
#   fuzz/run.sh                  every target, 30 s each
#   FUZZ_SECONDS=300 fuzz/run.sh message dispatch
#   fuzz/run.sh --merge          then fold what was found into fuzz/corpus/ (cmin)
#
# Installs cargo-fuzz if it is missing. Builds on stable (`-s none`: no sanitizer;
# libFuzzer's coverage only). New inputs go to a scratch folder, the committed
# corpus is read as seeds; a crash is written to fuzz/artifacts/TARGET/ and the run
# stops with its status: commit it there with the fix (`cargo test` replays it).
set -euo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-30}
merge=false
targets=()
for arg in "$@"; do
  case $arg in
    --merge) merge=true ;;
    *) targets+=("$arg") ;;
  esac
done

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# Fails if Cargo.lock is not up to date with Cargo.toml (cargo fuzz has no --locked).
cargo fetch --locked --quiet
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  echo "== $t: ${seconds}s"
  mkdir -p "$scratch/$t" "corpus/$t"
  # One job: the machine's cores are shared with whatever else runs.
  status=0
  cargo fuzz run -s none "$t" "$scratch/$t" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 >"$scratch/$t.log" 2>&1 || status=$?
  grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|SUMMARY)' \
    "$scratch/$t.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$scratch/$t.log" >&2
    echo "$t failed (status $status): see fuzz/artifacts/$t/" >&2
    exit "$status"
  fi
  if $merge; then
    cargo fuzz cmin -s none "$t" "corpus/$t" -- "$scratch/$t" >/dev/null 2>&1
  fi
done
