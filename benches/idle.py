#!/usr/bin/env python3
"""Start-up time and idle memory of `emcee serve` and `emcee stdio` (issue 22).

For each binary given (say, main's before a change and after it), RUNS times each:
- `serve --bind 127.0.0.1:PORT`: milliseconds from exec to the "serving http" log
  line, then, 1.5 s after start, VmRSS, RssAnon and RssFile from /proc/PID/status;
- `stdio`: milliseconds from exec to the answer of a `ping` written at once, then
  the same memory figures 1.5 s after start.
Each run has a fresh data directory (sled open, as served). Prints medians.

Usage: python3 benches/idle.py [--runs 15] [--max-file-kb KB] BINARY [BINARY...]

With --max-file-kb it exits 1 when a median RssFile is above KB: CI's check that
the start-up order (build.rs, src/bin/emcee/start-up.order) still matches the
build's symbols. A stale list (after a dependency or toolchain change renames
every symbol) leaves ~8 MB of code resident instead of ~5 MB.
"""

import argparse
import os
import select
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

SETTLE_S = 1.5
TIMEOUT_S = 10.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory(pid):
    found = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                found[key] = int(value.split()[0])
    return found


def read_until(stream, needle, started):
    """Bytes of `stream` until a line holding `needle`; the time it came."""
    buf = b""
    while needle not in buf:
        left = TIMEOUT_S - (time.monotonic() - started)
        if left <= 0 or not select.select([stream], [], [], left)[0]:
            raise RuntimeError(f"no {needle!r} within {TIMEOUT_S} s: {buf[-500:]!r}")
        chunk = os.read(stream.fileno(), 65536)
        if not chunk:
            raise RuntimeError(f"stream closed before {needle!r}: {buf[-500:]!r}")
        buf += chunk
    return time.monotonic()


def one(binary, mode):
    data = tempfile.mkdtemp(prefix="emcee-idle-")
    try:
        if mode == "serve":
            args = [binary, "serve", "--bind", f"127.0.0.1:{free_port()}", "--data-dir", data]
            started = time.monotonic()
            p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
            ready = read_until(p.stderr, b'"serving http"', started)
        else:
            args = [binary, "stdio", "--data-dir", data]
            started = time.monotonic()
            p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL)
            p.stdin.write(b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n')
            p.stdin.flush()
            ready = read_until(p.stdout, b'"id":1', started)
        time.sleep(max(0.0, SETTLE_S - (time.monotonic() - started)))
        mem = memory(p.pid)
        p.terminate()
        try:
            p.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        return (ready - started) * 1000.0, mem
    finally:
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--max-file-kb", type=int)
    ap.add_argument("binaries", nargs="+")
    a = ap.parse_args()
    over = []
    print(f"{'binary':<40} {'mode':<6} {'bytes':>10} {'ready ms p50/max':>17} "
          f"{'RSS kB':>7} {'anon kB':>8} {'file kB':>8}")
    for mode in ("serve", "stdio"):
        for binary in a.binaries:
            # Alternate nothing: runs of one binary back to back, binaries in turn.
            runs = [one(binary, mode) for _ in range(a.runs)]
            ready = [r for r, _ in runs]
            med = lambda k: statistics.median(m[k] for _, m in runs)
            print(f"{binary[-40:]:<40} {mode:<6} {os.path.getsize(binary):>10,} "
                  f"{statistics.median(ready):>8.1f}/{max(ready):<8.1f} "
                  f"{med('VmRSS'):>7,.0f} {med('RssAnon'):>8,.0f} {med('RssFile'):>8,.0f}")
            if a.max_file_kb is not None and med("RssFile") > a.max_file_kb:
                over.append(f"{binary} {mode}: {med('RssFile'):,.0f} kB of file pages")
    if over:
        print(f"idle: above --max-file-kb {a.max_file_kb:,}: " + "; ".join(over)
              + " (is src/bin/emcee/start-up.order stale? run benches/start-up-order.sh)")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
