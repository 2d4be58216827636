#!/usr/bin/env python3
"""What a hostile, unauthenticated client can make `emcee serve` hold, with the
default limits: the measured figures of SECURITY.md.

Starts the release binary on 127.0.0.1 with a fresh data dir and no config (the
defaults), runs each scenario, and prints the server's RSS and the data dir's size
after it. Standard library only; about a minute on one core.

    cargo build --release && python3 benches/hostile.py [--bin target/release/emcee] [--only unread]
    python3 benches/hostile.py --combined [--seconds 40]

`--combined` runs every attack at once from four addresses (127.0.0.2-5) for
`--seconds`, while an operator's probe on 127.0.0.1 asks `/health/live` on a new
connection every 100 ms with a 1 s deadline and RSS is sampled every 50 ms; it
prints the peak RSS, the slowest probe and how many probes missed the deadline.
"""

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

OLD = "2025-03-26"  # allows batches: a session's subscriptions in one POST
NEW = "2025-11-25"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def disk_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary):
        self.dir = tempfile.mkdtemp(prefix="emcee-hostile-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, "serve", "--bind", f"127.0.0.1:{self.port}",
             "--data-dir", os.path.join(self.dir, "data"), "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if not k.startswith("EMCEE_")})
        for _ in range(100):
            try:
                if self.request("GET", "/health/live")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        sys.exit("emcee did not start")

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = {"Host": "localhost"}
        if body is not None:
            h.update({"Content-Type": "application/json",
                      "Accept": "application/json, text/event-stream"})
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data

    def post(self, message, session=None, version=NEW, accept=None):
        headers = {}
        if session:
            headers = {"Mcp-Session-Id": session, "MCP-Protocol-Version": version}
        if accept:
            headers["Accept"] = accept
        return self.request("POST", "/mcp", json.dumps(message), headers)

    def session(self, params):
        status, headers, body = self.post(
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params})
        if status != 200:
            return None, status
        sid = headers.get("mcp-session-id")
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, sid,
                  params["protocolVersion"])
        return sid, status

    def raw(self, address="127.0.0.1"):
        return socket.create_connection(("127.0.0.1", self.port), source_address=(address, 0))

    def rss(self):
        return rss_kib(self.proc.pid)

    def disk(self):
        return disk_bytes(os.path.join(self.dir, "data"))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def mib(n):
    return f"{n / (1 << 20):.1f} MiB"


# A session at every per-session limit: its initialize (big capabilities and client
# info) and a batch of 16 subscriptions of 2 KiB URIs.
MAXIMAL_INIT = {"protocolVersion": OLD,
                "capabilities": {"experimental": {"blob": "x" * 13_500}},
                "clientInfo": {"name": "n" * 1000, "version": "v" * 1000}}
MAXIMAL_SUBSCRIPTIONS = [{"jsonrpc": "2.0", "id": 10 + i, "method": "resources/subscribe",
                          "params": {"uri": f"kv://{i:04d}-" + "u" * (2048 - 10)}}
                         for i in range(16)]


def sessions(s, report):
    """Every session at every per-session limit, up to max_sessions."""
    params, batch = MAXIMAL_INIT, MAXIMAL_SUBSCRIPTIONS
    before = s.rss()
    opened = 0
    while True:
        sid, status = s.session(params)
        if sid is None:
            refused = status
            break
        s.post(batch, sid, OLD)
        opened += 1
    after = s.rss()
    report("maximal sessions", f"{opened} opened, the next got {refused}; RSS "
           f"{mib(before * 1024)} -> {mib(after * 1024)} "
           f"({(after - before) / max(opened, 1):.0f} KiB each)")


def slow_bodies(s, report):
    """256 connections (128 from each of two addresses: the per-address cap) each
    uploading a 4 MiB body and stalling before its last byte."""
    before = s.rss()
    conns, refused = [], 0
    size = 4 * 1024 * 1024
    for i in range(256):
        c = s.raw(("127.0.0.1", "127.0.0.2")[i % 2])
        c.sendall(b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  b"Accept: application/json, text/event-stream\r\n"
                  + f"Content-Length: {size}\r\n\r\n".encode())
        c.settimeout(0.05)
        try:
            if c.recv(12).startswith(b"HTTP/1.1 503"):
                refused += 1
                c.close()
                continue
        except socket.timeout:
            pass
        c.settimeout(None)
        conns.append(c)
    for c in conns:
        try:
            c.sendall(b" " * (size - 1))
        except OSError:
            pass
    time.sleep(1)
    after = s.rss()
    report("stalled 4 MiB uploads", f"{len(conns)} reading, {refused} refused (503); RSS "
           f"{mib(before * 1024)} -> {mib(after * 1024)}")
    for c in conns:
        c.close()


BIG_VALUE = "v" * (2 * 1024 * 1024 - 8192)  # kv_get answers it twice: a ~4 MB result


def big_event(s, sid):
    """A ~4 MB SSE event (just under max_result_bytes) logged for replay; returns
    its stream number."""
    value = BIG_VALUE
    s.post({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "kv_set", "arguments": {"key": "big", "value": value}}}, sid)
    _, _, body = s.post({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                         "params": {"name": "kv_get", "arguments": {"key": "big"}}},
                        sid, accept="text/event-stream")
    first = body.split(b"\n", 1)[0].decode()  # "id: S-0"
    return int(first.split()[1].split("-")[0])


def stalled_replays(s, report):
    """200 clients resuming a stream whose event is ~4 MB, never reading."""
    sid, _ = s.session({"protocolVersion": NEW, "capabilities": {},
                        "clientInfo": {"name": "h", "version": "1"}})
    stream = big_event(s, sid)
    before = s.rss()
    conns = []
    for i in range(200):
        c = s.raw(("127.0.0.1", "127.0.0.2")[i % 2])
        c.sendall(f"GET /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n"
                  f"Mcp-Session-Id: {sid}\r\nMCP-Protocol-Version: {NEW}\r\n"
                  f"Last-Event-ID: {stream}-0\r\n\r\n".encode())
        conns.append(c)
    time.sleep(2)
    after = s.rss()
    report("stalled replays of a 4 MB event", f"200 connections; RSS "
           f"{mib(before * 1024)} -> {mib(after * 1024)}")
    for c in conns:
        c.close()


MODERN = "2026-07-28"
MODERN_META = {"io.modelcontextprotocol/protocolVersion": MODERN,
               "io.modelcontextprotocol/clientCapabilities": {},
               "io.modelcontextprotocol/clientInfo": {"name": "u", "version": "1"}}
ECHO_TEXT = "x" * 4_000_000
_ids = iter(range(1000, 1 << 62))


def metric(s, series):
    """One series of /metrics (0 when absent)."""
    _, _, body = s.request("GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


ANSWERED = 'mcp_requests_total{method="tools/call",outcome="ok"}'
REFUSED = ['mcp_rejected_total{reason="%s"}' % r
           for r in ("answer_budget", "body_budget", "connection_limit", "in_flight_session")]


def unread_answers(s, report, kind, addresses=("127.0.0.1",)):
    """128 connections per address (the per-address cap), each POSTing a
    `tools/call echo` of a 4,000,000-byte text (every request its own id) and never
    reading the answer. `kind`: `json` or `sse` (2026-07-28, by `Accept`), or
    `session` (the session era, one session). Reports RSS with the answers waiting
    and after the sockets close, and what became of the calls: answered by the tool
    (`mcp_requests_total`), refused and why (`mcp_rejected_total`), and the HTTP
    status each connection got (200 = an answer under way; SSE streams begin with
    200 before the answer, so a refused SSE answer shows as 200 then a close)."""
    sid = None
    if kind == "session":
        sid, _ = s.session({"protocolVersion": NEW, "capabilities": {},
                            "clientInfo": {"name": "u", "version": "1"}})
    before = s.rss()
    counts = {series: metric(s, series) for series in [ANSWERED] + REFUSED}
    conns = []
    for i in range(128 * len(addresses)):
        rid = next(_ids)
        if kind == "session":
            body = {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": ECHO_TEXT}}}
            head = (f"Accept: application/json, text/event-stream\r\nMcp-Session-Id: {sid}\r\n"
                    f"MCP-Protocol-Version: {NEW}\r\n")
        else:
            body = {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": ECHO_TEXT},
                               "_meta": MODERN_META}}
            accept = "application/json" if kind == "json" else "text/event-stream"
            head = (f"Accept: {accept}\r\nMCP-Protocol-Version: {MODERN}\r\n"
                    f"Mcp-Method: tools/call\r\nMcp-Name: echo\r\n")
        data = json.dumps(body).encode()
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.bind((addresses[i % len(addresses)], 0))
        c.connect(("127.0.0.1", s.port))
        try:
            c.sendall(f"POST /mcp HTTP/1.1\r\nHost: localhost\r\n"
                      f"Content-Type: application/json\r\n{head}"
                      f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        except OSError:
            pass  # refused and closed before the body was all sent
        conns.append(c)
    time.sleep(3)
    peak = s.rss()
    statuses = {}
    for c in conns:
        c.settimeout(0.05)
        try:
            line = c.recv(12)
            status = line[9:12].decode() if line.startswith(b"HTTP/1.1 ") else "closed"
        except socket.timeout:
            status = "nothing yet"
        except OSError:
            status = "reset"
        statuses[status] = statuses.get(status, 0) + 1
    delta = {k: int(metric(s, k) - v) for k, v in counts.items()}
    for c in conns:
        c.close()
    time.sleep(2)
    after = s.rss()
    refused = ", ".join(f"{k.split(chr(34))[1]} {v}" for k, v in delta.items()
                        if k != ANSWERED and v)
    report(f"unread 4 MB answers ({kind}, {len(conns)} connections from "
           f"{len(addresses)} address{'es' if len(addresses) > 1 else ''})",
           f"RSS {mib(before * 1024)} -> {mib(peak * 1024)}, "
           f"{mib(after * 1024)} once closed; calls answered {delta[ANSWERED]}, "
           f"refused: {refused or 'none'}; HTTP statuses {statuses}")


def disk_flood(s, report):
    """Fill every disk bound: replay events (150 big SSE answers over 30 sessions),
    the kv store (until it refuses)."""
    for _ in range(30):
        sid, _ = s.session({"protocolVersion": NEW, "capabilities": {},
                            "clientInfo": {"name": "d", "version": "1"}})
        for _ in range(5):
            s.post({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                    "params": {"name": "kv_get", "arguments": {"key": "big"}}},
                   sid, accept="text/event-stream")
    time.sleep(2)  # the replay log is trimmed every second
    sid, _ = s.session({"protocolVersion": NEW, "capabilities": {},
                        "clientInfo": {"name": "d", "version": "1"}})
    value = "k" * (1 << 20)
    for i in range(200):
        _, _, body = s.post({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                             "params": {"name": "kv_set",
                                        "arguments": {"key": f"fill{i}", "value": value}}}, sid)
        if b"limits.kv_max_bytes" in body:
            break
    report("disk after 150 x 4 MB replay events + kv filled",
           f"kv refused after {i} MiB; data dir {mib(s.disk())}; RSS {mib(s.rss() * 1024)}")


TWO = ("127.0.0.1", "127.0.0.2")
UNREAD = [("json", TWO), ("sse", TWO), ("session", TWO),
          ("json", TWO + ("127.0.0.3", "127.0.0.4"))]


ATTACKERS = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")


def connect_from(s, address):
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.settimeout(5)
    c.bind((address, 0))
    c.connect(("127.0.0.1", s.port))
    return c


def modern_post(method, params, accept, rid, name=None):
    body = json.dumps({"jsonrpc": "2.0", "id": rid, "method": method,
                       "params": dict(params, _meta=MODERN_META)}).encode()
    head = (f"POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Accept: {accept}\r\nMCP-Protocol-Version: {MODERN}\r\nMcp-Method: {method}\r\n"
            + (f"Mcp-Name: {name}\r\n" if name else "")
            + f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


class Combined:
    """Every attack at once from four addresses; see the module's doc."""

    def __init__(self, s, seconds):
        self.s, self.until = s, time.time() + seconds
        self.lock = threading.Lock()
        self.held = []  # sockets the attacks keep open until the end
        self.counts = {}

    def count(self, what, n=1):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n

    def hold(self, c):
        with self.lock:
            self.held.append(c)

    def running(self):
        return time.time() < self.until

    def send(self, address, data, what):
        try:
            c = connect_from(self.s, address)
            c.sendall(data)
            self.hold(c)
            self.count(what)
        except OSError:
            self.count(what + " refused at connect/send")

    def unread(self, address):
        """128 unread 4 MB answers per address, 2026-07-28 JSON and SSE alternately."""
        for i in range(128):
            if not self.running():
                return
            accept = "application/json" if i % 2 else "text/event-stream"
            self.send(address, modern_post("tools/call", {"name": "echo", "arguments":
                      {"text": ECHO_TEXT}}, accept, next(_ids), "echo"), "unread answers")

    def listens(self, address):
        """Listen streams past the per-address share, never read."""
        for _ in range(128):
            if not self.running():
                return
            self.send(address, modern_post("subscriptions/listen", {"notifications":
                      {"toolsListChanged": True}}, "application/json, text/event-stream",
                      next(_ids)), "listen streams")

    def churn(self, address):
        """connect, POST `sleep 20000` (JSON only), close: as fast as it goes."""
        while self.running():
            try:
                c = connect_from(self.s, address)
                c.sendall(modern_post("tools/call", {"name": "sleep", "arguments":
                          {"ms": 20000}}, "application/json", next(_ids), "sleep"))
                c.close()
                self.count("churned sleep calls")
            except OSError:
                self.count("churned sleep calls refused")
                time.sleep(0.01)

    def idle(self, address):
        """Connections that never send a byte, renewed as the server drops them."""
        while self.running():
            try:
                self.hold(connect_from(self.s, address))
                self.count("idle connections")
            except OSError:
                self.count("idle connections refused")
            time.sleep(0.02)

    def uploads(self, address):
        """Stalled 4 MiB uploads: all but the last byte, then nothing."""
        size = 4 * 1024 * 1024
        for _ in range(32):
            if not self.running():
                return
            try:
                c = connect_from(self.s, address)
                c.sendall(b"POST /mcp HTTP/1.1\r\nHost: localhost\r\n"
                          b"Content-Type: application/json\r\n"
                          b"Accept: application/json, text/event-stream\r\n"
                          + f"Content-Length: {size}\r\n\r\n".encode())
                c.settimeout(1)
                c.sendall(b" " * (size - 1))
                self.hold(c)
                self.count("stalled uploads")
            except OSError:
                self.count("stalled uploads refused")

    def sessions(self, address):
        """Session-era sessions at every per-session limit, until refused."""
        params, batch = MAXIMAL_INIT, MAXIMAL_SUBSCRIPTIONS
        while self.running():
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.s.port, timeout=5,
                                               source_address=(address, 0))
                h = {"Host": "localhost", "Content-Type": "application/json",
                     "Accept": "application/json, text/event-stream"}
                c.request("POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 1,
                          "method": "initialize", "params": params}), h)
                r = c.getresponse()
                r.read()
                sid = r.getheader("mcp-session-id")
                if r.status != 200 or not sid:
                    self.count(f"sessions refused {r.status}")
                    c.close()
                    time.sleep(0.05)
                    continue
                h.update({"Mcp-Session-Id": sid, "MCP-Protocol-Version": OLD})
                c.request("POST", "/mcp", json.dumps(batch), h)
                c.getresponse().read()
                c.close()
                self.count("sessions")
            except (OSError, http.client.HTTPException):
                self.count("sessions failed")
                time.sleep(0.05)


KINDS = ("unread", "listens", "churn", "idle", "uploads", "sessions")


def combined(s, seconds, report, kinds=KINDS):
    attack = Combined(s, seconds)
    probes, misses, slowest, rss = [], 0, 0.0, [s.rss()]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            rss.append(s.rss())
            time.sleep(0.05)

    def probe():
        nonlocal misses, slowest
        while not stop.is_set():
            started = time.time()
            try:
                c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=1)
                c.request("GET", "/health/live", headers={"Host": "localhost"})
                ok = c.getresponse().status == 200
                c.close()
            except (OSError, http.client.HTTPException):
                ok = False
            took = time.time() - started
            probes.append(took)
            slowest = max(slowest, took)
            if not ok or took > 1:
                misses += 1
                print(f"  probe at +{started - attack.until + seconds:.1f} s: "
                      f"{'slow' if ok else 'failed'} after {took * 1000:.0f} ms", flush=True)
            time.sleep(0.1)

    watchers = [threading.Thread(target=sample), threading.Thread(target=probe)]
    for t in watchers:
        t.start()
    threads = [threading.Thread(target=getattr(attack, kind), args=(a,), daemon=True)
               for a in ATTACKERS
               for kind in kinds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0, attack.until - time.time()) + 10)
    time.sleep(max(0, attack.until - time.time()))  # what the attacks hold, held to the end
    stop.set()
    for t in watchers:
        t.join()
    peak = max(rss)
    held = len(attack.held)
    for c in attack.held:
        c.close()
    time.sleep(3)
    probes.sort()
    report(f"combined, {seconds} s from {len(ATTACKERS)} addresses",
           f"RSS peak {mib(peak * 1024)}, {mib(s.rss() * 1024)} 3 s after the "
           f"{held} held sockets closed; /health/live probes {len(probes)}, "
           f"median {probes[len(probes) // 2] * 1000:.0f} ms, slowest {slowest * 1000:.0f} ms, "
           f"missed the 1 s deadline {misses}; {dict(sorted(attack.counts.items()))}")
    return misses


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="target/release/emcee")
    ap.add_argument("--only", choices=["unread"],
                    help="run only the unread-answers scenarios")
    ap.add_argument("--combined", action="store_true",
                    help="run every attack at once from four addresses (see above)")
    ap.add_argument("--seconds", type=int, default=40)
    ap.add_argument("--attacks", default=",".join(KINDS),
                    help="with --combined: which of " + ", ".join(KINDS))
    args = ap.parse_args()

    def report(name, text):
        print(f"{name}: {text}", flush=True)

    if args.combined:
        s = Server(args.bin)
        print(f"idle: RSS {mib(s.rss() * 1024)}")
        try:
            misses = combined(s, args.seconds, report, args.attacks.split(","))
        finally:
            s.stop()
        sys.exit(1 if misses else 0)

    # Each unread-answers scenario on a server of its own: its figures do not depend
    # on what an earlier one left in the allocator.
    for kind, addresses in UNREAD:
        u = Server(args.bin)
        try:
            unread_answers(u, report, kind, addresses)
        finally:
            u.stop()
    if args.only == "unread":
        return
    s = Server(args.bin)
    print(f"idle: RSS {mib(s.rss() * 1024)}, data dir {mib(s.disk())}")
    try:
        stalled_replays(s, report)
        slow_bodies(s, report)
        disk_flood(s, report)
        sessions(s, report)
        print(f"at the end: RSS {mib(s.rss() * 1024)}, data dir {mib(s.disk())}")
    finally:
        s.stop()


if __name__ == "__main__":
    main()
