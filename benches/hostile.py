#!/usr/bin/env python3
"""What a hostile, unauthenticated client can make `emcee serve` hold, with the
default limits: the measured figures of SECURITY.md.

Starts the release binary on 127.0.0.1 with a fresh data dir and no config (the
defaults), runs each scenario, and prints the server's RSS and the data dir's size
after it. Standard library only; about a minute on one core.

    cargo build --release && python3 benches/hostile.py [--bin target/release/emcee] [--only unread]
"""

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
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

    def raw(self):
        return socket.create_connection(("127.0.0.1", self.port))

    def rss(self):
        return rss_kib(self.proc.pid)

    def disk(self):
        return disk_bytes(os.path.join(self.dir, "data"))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def mib(n):
    return f"{n / (1 << 20):.1f} MiB"


def sessions(s, report):
    """Every session at every per-session limit, up to max_sessions."""
    params = {"protocolVersion": OLD,
              "capabilities": {"experimental": {"blob": "x" * 13_500}},
              "clientInfo": {"name": "n" * 1000, "version": "v" * 1000}}
    batch = [{"jsonrpc": "2.0", "id": 10 + i, "method": "resources/subscribe",
              "params": {"uri": f"kv://{i:04d}-" + "u" * (2048 - 10)}} for i in range(16)]
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
    """256 connections (the per-address cap) each uploading a 4 MiB body and
    stalling before its last byte."""
    before = s.rss()
    conns, refused = [], 0
    size = 4 * 1024 * 1024
    for _ in range(256):
        c = s.raw()
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
    for _ in range(200):
        c = s.raw()
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
    """256 connections per address (the per-address cap), each POSTing a
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
    for i in range(256 * len(addresses)):
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


UNREAD = [("json", ("127.0.0.1",)), ("sse", ("127.0.0.1",)), ("session", ("127.0.0.1",)),
          ("json", ("127.0.0.1", "127.0.0.2"))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="target/release/emcee")
    ap.add_argument("--only", choices=["unread"],
                    help="run only the unread-answers scenarios")
    args = ap.parse_args()

    def report(name, text):
        print(f"{name}: {text}", flush=True)

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
