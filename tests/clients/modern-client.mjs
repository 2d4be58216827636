// A real third-party MCP client, the official TypeScript SDK v2 (`@modelcontextprotocol/client`),
// pinned to protocol revision 2026-07-28 (stateless: `server/discover`, per-request `_meta`,
// `subscriptions/listen`), talking to emcee over stdio or Streamable HTTP.
//
// Usage:
//   node modern-client.mjs stdio /path/to/emcee /path/to/data-dir
//   node modern-client.mjs http  http://127.0.0.1:PORT/mcp
//
// For stdio the script spawns `emcee stdio --data-dir DIR --fixtures conformance` itself; for
// HTTP the server must already run with `--fixtures conformance` (for test://static-text and
// test_simple_prompt) and serve /metrics on the same host (no separate admin bind). Driven by
// tests/it/ts_client.rs. Prints `ts-sdk v2 <transport> client: N checks passed` and exits 0 on
// success; prints the reason to stderr and exits 1 on any failure.

import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import { check, checksPassed, textOf } from "./common.mjs";

const PROTOCOL_VERSION = "2026-07-28";
const HARD_TIMEOUT_MS = 30_000;
/** The slow call that gets cancelled, and when. */
const SLEEP_MS = 10_000;
const ABORT_AFTER_MS = 200;
/** How soon after abort() the call must reject. */
const ABORT_PROMPT_MS = 2_000;
/** How long the server may take to act on the cancellation. */
const CANCEL_SEEN_WITHIN_MS = 3_000;
/** How long a resources/updated notification may take to arrive on the listen stream. */
const UPDATED_WITHIN_MS = 5_000;

const [kind, ...rest] = process.argv.slice(2);
const USAGE =
  "usage: node modern-client.mjs stdio /path/to/emcee /path/to/data-dir\n" +
  "       node modern-client.mjs http http://127.0.0.1:PORT/mcp";
if (!((kind === "stdio" && rest.length === 2) || (kind === "http" && rest.length === 1))) {
  console.error(USAGE);
  process.exit(1);
}
const label = `ts-sdk v2 ${kind} client`;

function fail(reason) {
  console.error(`${label} FAILED: ${reason}`);
  process.exit(1);
}

setTimeout(() => fail(`hard timeout: run did not finish within ${HARD_TIMEOUT_MS} ms`), HARD_TIMEOUT_MS).unref();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll `cond` every 20 ms until it holds or `within` ms pass; true if it held. */
async function waitFor(cond, within) {
  const deadline = Date.now() + within;
  while (!cond()) {
    if (Date.now() >= deadline) return false;
    await sleep(20);
  }
  return true;
}

function describeError(e) {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** The value of the unlabelled counter `name` in a Prometheus text exposition, or undefined. */
function counterValue(text, name) {
  for (const line of text.split("\n")) {
    const [metric, value] = line.trim().split(/\s+/);
    if (metric === name) return Number(value);
  }
  return undefined;
}

/** `mcp_cancelled_total` from GET /metrics on the MCP endpoint's host (throws if absent). */
async function cancelledTotal(mcpUrl) {
  const res = await fetch(new URL("/metrics", mcpUrl));
  if (!res.ok) throw new Error(`GET /metrics answered HTTP ${res.status}`);
  const value = counterValue(await res.text(), "mcp_cancelled_total");
  if (!Number.isFinite(value)) throw new Error("GET /metrics has no mcp_cancelled_total sample");
  return value;
}

function makeTransport() {
  if (kind === "stdio") {
    const [emcee, dataDir] = rest;
    return new StdioClientTransport({
      command: emcee,
      // The server's "call finished" line (outcome "cancelled") is how we see, on stdio,
      // that it acted on notifications/cancelled.
      args: ["--log-level", "debug", "stdio", "--data-dir", dataDir, "--fixtures", "conformance"],
      // Keep the server's JSON logs out of our stderr unless something fails.
      stderr: "pipe",
    });
  }
  return new StreamableHTTPClientTransport(new URL(rest[0]));
}

async function main() {
  const transport = makeTransport();
  const serverStderr = [];
  if (kind === "stdio") {
    transport.stderr?.on("data", (chunk) => serverStderr.push(chunk.toString()));
  }
  /** The server's stderr so far, as parsed JSON log records (stdio only). */
  const serverLogLines = () =>
    serverStderr.join("").split("\n").flatMap((line) => {
      try {
        const record = JSON.parse(line);
        return record && typeof record === "object" ? [record] : [];
      } catch {
        return [];
      }
    });

  const client = new Client(
    { name: "emcee-ts-sdk-v2-test", version: "0.0.0" },
    { capabilities: { elicitation: {} }, versionNegotiation: { mode: { pin: PROTOCOL_VERSION } } },
  );
  // 2026-07-28 servers send no requests: an elicitation comes back as an input_required
  // result, which the SDK fulfils with this handler and retries (multi-round trip).
  const elicited = [];
  client.setRequestHandler("elicitation/create", async (request) => {
    elicited.push(request.params?.message);
    return { action: "accept", content: { name: "Ada" } };
  });
  // Protocol-level problems the SDK does not throw for land here; any of them fails the run.
  const protocolErrors = [];
  client.onerror = (e) => protocolErrors.push(describeError(e));

  // resources/updated arrives on the listen stream and dispatches to the registered handler.
  const updated = [];
  client.setNotificationHandler("notifications/resources/updated", (notification) => {
    updated.push(notification.params);
  });

  try {
    await run(client, transport);
  } catch (e) {
    if (serverStderr.length > 0) {
      console.error(`--- emcee stdio stderr ---\n${serverStderr.join("")}`);
    }
    throw e;
  } finally {
    await client.close().catch(() => {});
  }

  check(protocolErrors.length === 0, "no protocol errors reported by the SDK", protocolErrors);
  console.log(`${label}: ${checksPassed()} checks passed`);

  async function run(client, transport) {
    // Connect pinned to 2026-07-28: server/discover must offer it, no fallback to initialize.
    await client.connect(transport);
    check(client.getNegotiatedProtocolVersion() === PROTOCOL_VERSION,
      `negotiated protocol version is ${PROTOCOL_VERSION}`, client.getNegotiatedProtocolVersion());
    check(client.getProtocolEra() === "modern", "protocol era is modern", client.getProtocolEra());
    const discovered = client.getDiscoverResult();
    check(discovered?.supportedVersions?.includes(PROTOCOL_VERSION) === true,
      `server/discover lists ${PROTOCOL_VERSION}`, discovered);
    check(client.getServerCapabilities()?.tools !== undefined, "server advertises tools capability",
      client.getServerCapabilities());
    if (kind === "http") {
      check(transport.sessionId === undefined, "no Mcp-Session-Id on a 2026-07-28 connection",
        transport.sessionId);
    }

    // tools/list (the SDK walks every page).
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    for (const want of ["echo", "sleep", "kv_set", "kv_get", "kv_delete", "kv_list", "test_simple_text"]) {
      check(names.includes(want), `tools/list includes ${want}`, names);
    }

    // tools/call echo, non-ASCII text.
    const greeted = await client.callTool({ name: "test_input_required_result_elicitation", arguments: {} });
    check(textOf(greeted) === "Hello, Ada!", "an elicitation completes through input_required and a retry", greeted);
    check(elicited.length === 1 && elicited[0] === "What is your name?",
      "the client's elicitation handler answered the server's question once", elicited);

    const echoed = await client.callTool({ name: "echo", arguments: { text: "héllo v2" } });
    check(echoed.isError !== true, "echo is not an error", echoed);
    check(textOf(echoed) === "héllo v2", "echo returns its text unchanged", echoed);

    // resources/read.
    const read = await client.readResource({ uri: "test://static-text" });
    const first = read.contents?.[0];
    check(first?.uri === "test://static-text", "resources/read returns the requested uri", read);
    check(first?.text === "This is the content of the static text resource.", "resources/read text", read);

    // prompts/get.
    const prompt = await client.getPrompt({ name: "test_simple_prompt" });
    check(Array.isArray(prompt.messages) && prompt.messages.length >= 1,
      "prompts/get test_simple_prompt returns messages", prompt);
    check(prompt.messages.every((m) => m.role === "user" || m.role === "assistant"),
      "prompt messages have user/assistant roles", prompt);

    // Cancellation: abort a 10 s sleep after ~200 ms. On stdio the SDK sends
    // notifications/cancelled; on HTTP it closes the request's stream.
    const before = kind === "http" ? await cancelledTotal(rest[0]) : undefined;
    const controller = new AbortController();
    const started = Date.now();
    const slow = client
      .callTool({ name: "sleep", arguments: { ms: SLEEP_MS } }, { signal: controller.signal })
      .then((result) => ({ resolved: result }), (error) => ({ error }));
    await sleep(ABORT_AFTER_MS);
    const abortedAt = Date.now();
    controller.abort("interop test cancels the slow call");
    const outcome = await slow;
    const settledAfter = Date.now() - abortedAt;
    check(outcome.error !== undefined, "aborted sleep call rejects", outcome.resolved);
    check(settledAfter < ABORT_PROMPT_MS, `aborted call settles within ${ABORT_PROMPT_MS} ms of abort()`,
      { settledAfter, error: describeError(outcome.error) });
    check(Date.now() - started < SLEEP_MS / 2, "aborted call did not wait for the sleep to finish",
      Date.now() - started);

    // The server still serves a following call.
    const after = await client.callTool({ name: "echo", arguments: { text: "still here" } });
    check(textOf(after) === "still here", "server answers a call after the cancellation", after);

    if (kind === "http") {
      // Closing the request's stream is the cancellation; give the server a moment to count it.
      let now = before;
      const deadline = Date.now() + CANCEL_SEEN_WITHIN_MS;
      while (now <= before && Date.now() < deadline) {
        await sleep(50);
        now = await cancelledTotal(rest[0]);
      }
      check(now > before,
        `server counted the cancellation within ${CANCEL_SEEN_WITHIN_MS} ms (mcp_cancelled_total increased)`,
        { before, after: now });
    } else {
      // notifications/cancelled: the server logs the sleep call as cancelled.
      const seen = await waitFor(() => serverLogLines().some((r) =>
        r.msg === "call finished" && r.outcome === "cancelled" && r.tool === "sleep"),
        CANCEL_SEEN_WITHIN_MS);
      check(seen, `server logged the sleep call as cancelled within ${CANCEL_SEEN_WITHIN_MS} ms`,
        serverLogLines().filter((r) => r.tool === "sleep"));
    }

    // subscriptions/listen with a resource subscription, then change that resource.
    const uri = "kv://interop";
    const subscription = await client.listen({ resourceSubscriptions: [uri] });
    check(subscription.honoredFilter?.resourceSubscriptions?.includes(uri),
      `listen acknowledged with resourceSubscriptions [${uri}]`, subscription.honoredFilter);
    const setRes = await client.callTool({ name: "kv_set", arguments: { key: "interop", value: "x" } });
    check(setRes.isError !== true, "kv_set is not an error", setRes);
    const arrived = await waitFor(() => updated.some((p) => p?.uri === uri), UPDATED_WITHIN_MS);
    check(arrived, `notifications/resources/updated for ${uri} arrives within ${UPDATED_WITHIN_MS} ms`,
      updated);
    check(updated.every((p) => p?.uri === uri), "only the subscribed uri is reported", updated);
    const tagged = updated.map((p) => p?._meta?.["io.modelcontextprotocol/subscriptionId"]);
    check(tagged.every((id) => typeof id === "string" || typeof id === "number"),
      "resources/updated carries _meta io.modelcontextprotocol/subscriptionId", updated);

    // The kv value is really there.
    const got = await client.readResource({ uri }, { cacheMode: "bypass" });
    check(got.contents?.[0]?.text === "x", `resources/read ${uri} returns the new value`, got);

    await subscription.close();
    const closed = await Promise.race([subscription.closed, sleep(2_000).then(() => "timeout")]);
    check(closed === "local", "listen subscription closes locally", closed);
  }
}

main().then(
  () => process.exit(0),
  (e) => fail(e instanceof Error ? e.stack ?? e.message : String(e)),
);
