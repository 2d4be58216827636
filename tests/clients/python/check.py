"""Interop check: the official MCP Python SDK (`mcp`, pinned in requirements.txt) against emcee.

Three SDK clients connect in turn, each over the same transport:

* `mode="auto"`: probes `server/discover` and must settle on protocol revision 2026-07-28;
* `mode="2026-07-28"`: adopts 2026-07-28 directly, without a probe;
* `mode="legacy"`: the session-era `initialize` handshake, which must settle on 2025-11-25.

Each one checks the negotiated protocol version, that tools/list has `echo`, `kv_set` and
`test_simple_text`, that tools/call `echo` returns its input, resources/read
`test://static-text`, and prompts/get `test_simple_prompt`. Before that the script checks
that the installed `mcp` is the version pinned in requirements.txt.

Usage (with the venv's Python, after `pip install -r requirements.txt`):

    python check.py stdio /path/to/emcee /path/to/data-dir   # spawns `emcee stdio ... --fixtures conformance`
    python check.py http http://127.0.0.1:PORT/mcp           # server runs with `--fixtures conformance`
    add -v to dump the JSON-RPC (and HTTP) wire log to stderr even when everything passes

Run by tests/it/py_client.rs, which creates the venv (tests/clients/python/.venv) itself.

Output: stdout carries only one `PASS ...`/`FAIL ...` line per check and, on success, a final
`python-sdk <transport> client: N checks passed`; the script then exits 0. On any failure it
prints the reason, a traceback if there was one and the wire log to stderr, and exits 1. The
whole run is bounded by a hard 30 s timeout (exit 1 too); every client by a shorter one.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

MODERN = "2026-07-28"
LEGACY = "2025-11-25"
# (mode, the protocol version that mode must negotiate)
CLIENTS = [("auto", MODERN), (MODERN, MODERN), ("legacy", LEGACY)]

HARD_TIMEOUT_S = 30.0
"""The whole run; enforced by a watchdog thread even if the event loop is stuck."""
CLIENT_TIMEOUT_S = 8.0
"""One client's connect and checks; 3 x 8 s stays under the hard timeout."""
REQUEST_TIMEOUT_S = 5.0
"""One request's answer (the SDK's read timeout)."""

REQUIRED_TOOLS = {"echo", "kv_set", "test_simple_text"}
ECHO_TEXT = "hello from python-sdk, h\u00e9llo"
RESOURCE_URI = "test://static-text"
PROMPT = "test_simple_prompt"

USAGE = (
    "usage: check.py stdio /path/to/emcee /path/to/data-dir [-v]\n"
    "       check.py http http://127.0.0.1:PORT/mcp [-v]"
)


class Checks:
    """Counts checks; prints one line per check on stdout and keeps the wire log for stderr."""

    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0
        self.wire: list[str] = []

    def check(self, ok: bool, what: str, detail: str = "") -> None:
        suffix = f"  ({detail})" if detail else ""
        print(f"{'PASS' if ok else 'FAIL'}  {what}{suffix}", flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1

    def log(self, line: str) -> None:
        self.wire.append(line[:1500])


def eprint(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def dump(item: Any) -> str:
    """A transport item (SessionMessage or Exception) as one line of JSON, if it is a message."""
    message = getattr(item, "message", item)
    try:
        return message.model_dump_json(by_alias=True, exclude_unset=True)
    except Exception:  # an Exception item, or something not a pydantic model
        return repr(item)


class TapRead:
    """A transport read stream that logs every item it hands to the SDK."""

    def __init__(self, inner: Any, tag: str, checks: Checks) -> None:
        self.inner, self.tag, self.checks = inner, tag, checks

    async def receive(self) -> Any:
        item = await self.inner.receive()
        self.checks.log(f"{self.tag} <- {dump(item)}")
        return item

    def __aiter__(self) -> TapRead:
        return self

    async def __anext__(self) -> Any:
        item = await self.inner.__anext__()
        self.checks.log(f"{self.tag} <- {dump(item)}")
        return item

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> TapRead:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        return await self.inner.__aexit__(*exc)

    def __getattr__(self, name: str) -> Any:  # e.g. `last_context`
        return getattr(self.inner, name)


class TapWrite:
    """A transport write stream that logs every message the SDK sends."""

    def __init__(self, inner: Any, tag: str, checks: Checks) -> None:
        self.inner, self.tag, self.checks = inner, tag, checks

    async def send(self, item: Any) -> None:
        self.checks.log(f"{self.tag} -> {dump(item)}")
        await self.inner.send(item)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> TapWrite:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        return await self.inner.__aexit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@asynccontextmanager
async def transport(kind: str, target: list[str], tag: str, checks: Checks) -> AsyncIterator[Any]:
    """The SDK's own stdio or Streamable HTTP transport, with both streams tapped."""
    if kind == "stdio":
        binary, data_dir = target
        params = StdioServerParameters(
            command=binary,
            args=["stdio", "--data-dir", data_dir, "--fixtures", "conformance"],
        )
        async with stdio_client(params, errlog=sys.stderr) as (read, write):
            yield TapRead(read, tag, checks), TapWrite(write, tag, checks)
        return

    def wanted(name: str) -> bool:
        name = name.lower()
        return name.startswith("mcp") or name in ("accept", "content-type")

    async def on_request(request: httpx2.Request) -> None:
        headers = {k: v for k, v in request.headers.items() if wanted(k)}
        body = request.content.decode(errors="replace") if request.content else ""
        checks.log(f"{tag} HTTP {request.method} {request.url.path} {headers} {body}")

    async def on_response(response: httpx2.Response) -> None:
        headers = {k: v for k, v in response.headers.items() if wanted(k)}
        checks.log(f"{tag} HTTP <- {response.status_code} {headers}")

    async with httpx2.AsyncClient(
        timeout=httpx2.Timeout(REQUEST_TIMEOUT_S, read=CLIENT_TIMEOUT_S),
        event_hooks={"request": [on_request], "response": [on_response]},
    ) as http:
        async with streamable_http_client(target[0], http_client=http) as (read, write):
            yield TapRead(read, tag, checks), TapWrite(write, tag, checks)


def describe(error: BaseException) -> str:
    """`Type: message` of the innermost exception, looking through (nested) exception groups."""
    while getattr(error, "exceptions", None):
        error = error.exceptions[0]  # type: ignore[attr-defined]
    return f"{type(error).__name__}: {error}"


def text_of(blocks: Any) -> str:
    return " ".join(getattr(block, "text", "") or "" for block in blocks)


async def exercise(client: Client, tag: str, expect_version: str, checks: Checks) -> None:
    """The checks one connected client runs."""
    got = client.protocol_version
    info = client.server_info
    server = f"{info.name} {info.version}" if info else "no server_info"
    checks.check(
        got == expect_version,
        f"{tag} negotiated protocol version {expect_version}",
        f"got {got}; {server}",
    )

    tools = await client.list_tools()
    names = {tool.name for tool in tools.tools}
    missing = sorted(REQUIRED_TOOLS - names)
    checks.check(
        not missing,
        f"{tag} tools/list has {', '.join(sorted(REQUIRED_TOOLS))}",
        f"{len(names)} tools" + (f"; missing {missing}" if missing else ""),
    )

    result = await client.call_tool("echo", {"text": ECHO_TEXT})
    text = text_of(result.content)
    checks.check(
        not result.is_error and text == ECHO_TEXT,
        f"{tag} tools/call echo returns its input",
        f"isError={result.is_error} text={text!r}",
    )

    read = await client.read_resource(RESOURCE_URI)
    uris = [str(item.uri) for item in read.contents]
    body = text_of(read.contents)
    checks.check(
        uris == [RESOURCE_URI] and bool(body),
        f"{tag} resources/read {RESOURCE_URI}",
        f"uris={uris} text={body[:50]!r}",
    )

    prompt = await client.get_prompt(PROMPT)
    first = text_of([prompt.messages[0].content]) if prompt.messages else ""
    checks.check(
        bool(prompt.messages) and bool(first),
        f"{tag} prompts/get {PROMPT}",
        f"{len(prompt.messages)} messages, first={first[:50]!r}",
    )


async def run_client(
    kind: str, target: list[str], mode: str, expect_version: str, checks: Checks, verbose: bool
) -> None:
    """Connect one SDK client in `mode`, run its checks, and dump its wire log if it failed."""
    tag = f"[{kind}/{mode}]"
    first_wire_line = len(checks.wire)
    failed_before = checks.failed
    try:
        with anyio.fail_after(CLIENT_TIMEOUT_S):
            async with Client(
                transport(kind, target, tag, checks),
                mode=mode,
                read_timeout_seconds=REQUEST_TIMEOUT_S,
            ) as client:
                await exercise(client, tag, expect_version, checks)
    except TimeoutError:
        checks.check(False, f"{tag} client finished within {CLIENT_TIMEOUT_S:g} s")
    except Exception as e:
        checks.check(False, f"{tag} client ran without an exception", describe(e))
        traceback.print_exc(file=sys.stderr)
    if checks.failed > failed_before or verbose:
        eprint(f"---- wire log {tag} ----")
        for line in checks.wire[first_wire_line:]:
            eprint("   ", line)


def pinned_mcp_version() -> str | None:
    """The `mcp==X` pin in the requirements.txt next to this script."""
    requirements = Path(__file__).resolve().with_name("requirements.txt")
    for line in requirements.read_text(encoding="utf-8").splitlines():
        name, sep, pin = line.split("#", 1)[0].strip().partition("==")
        if sep and name.strip().lower() == "mcp":
            return pin.strip()
    return None


async def main(kind: str, target: list[str], verbose: bool) -> int:
    label = f"python-sdk {kind} client"
    checks = Checks()
    pin = pinned_mcp_version()
    installed = version("mcp")
    checks.check(
        installed == pin,
        f"[{kind}] installed mcp is the pinned {pin}",
        f"mcp {installed}, mcp-types {version('mcp-types')}, Python {sys.version.split()[0]}",
    )
    for mode, expect_version in CLIENTS:
        await run_client(kind, target, mode, expect_version, checks, verbose)
    if checks.failed:
        total = checks.passed + checks.failed
        eprint(f"{label} FAILED: {checks.failed} of {total} checks failed (see FAIL lines on stdout)")
        return 1
    print(f"{label}: {checks.passed} checks passed", flush=True)
    return 0


def watchdog(label: str) -> None:
    """Exit 1 after HARD_TIMEOUT_S whatever the event loop is doing. A stdio server child
    sees its stdin close when this process dies, and exits."""

    def expire() -> None:
        eprint(f"{label} FAILED: hard timeout: the run did not finish within {HARD_TIMEOUT_S:g} s")
        os._exit(1)

    timer = threading.Timer(HARD_TIMEOUT_S, expire)
    timer.daemon = True
    timer.start()


if __name__ == "__main__":
    argv = sys.argv[1:]
    verbose = "-v" in argv
    argv = [arg for arg in argv if arg != "-v"]
    if not ((argv[:1] == ["stdio"] and len(argv) == 3) or (argv[:1] == ["http"] and len(argv) == 2)):
        eprint(USAGE)
        sys.exit(2)
    watchdog(f"python-sdk {argv[0]} client")
    sys.exit(asyncio.run(main(argv[0], argv[1:], verbose)))
