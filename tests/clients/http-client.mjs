// A real third-party MCP client (the official TypeScript SDK) talking to `emcee serve`
// over Streamable HTTP.
//
// Usage: node http-client.mjs http://127.0.0.1:PORT/mcp
//
// The server must run with `--fixtures conformance` (for test_sampling, test://static-text
// and test_simple_prompt). Driven by tests/it/ts_client.rs. Prints
// `ts-sdk http client: N checks passed` and exits 0 on success; prints the reason to
// stderr and exits 1 on any failure.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { check, checksPassed, checkConcurrentEcho, checkUnknownToolRejects, textOf } from "./common.mjs";

const HARD_TIMEOUT_MS = 30_000;

const [url] = process.argv.slice(2);
if (!url) {
  console.error("usage: node http-client.mjs http://127.0.0.1:PORT/mcp");
  process.exit(1);
}

function fail(reason) {
  console.error(`ts-sdk http client FAILED: ${reason}`);
  process.exit(1);
}

setTimeout(() => fail(`hard timeout: run did not finish within ${HARD_TIMEOUT_MS} ms`), HARD_TIMEOUT_MS).unref();

async function main() {
  const transport = new StreamableHTTPClientTransport(new URL(url));

  const client = new Client(
    { name: "emcee-ts-sdk-http-test", version: "0.0.0" },
    { capabilities: { sampling: {} } },
  );
  // Protocol-level problems the SDK does not throw for (bad SSE events, responses to
  // unknown ids, failed GET streams...) land here; any of them fails the run at the end.
  const protocolErrors = [];
  client.onerror = (e) => protocolErrors.push(e instanceof Error ? e.message : String(e));

  // Server -> client request (sampling/createMessage), answered over a POST to /mcp.
  const samplingRequests = [];
  client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
    samplingRequests.push(request.params);
    return {
      role: "assistant",
      content: { type: "text", text: "sdk says hi" },
      model: "test-model",
    };
  });

  await client.connect(transport);

  // Server identity from the initialize handshake, and the session it assigned.
  const info = client.getServerVersion();
  check(info?.name === "emcee", "serverInfo.name is emcee", info);
  check(client.getServerCapabilities()?.tools !== undefined, "server advertises tools capability",
    client.getServerCapabilities());
  check(typeof transport.sessionId === "string" && /^[A-Za-z0-9_.]{22}$/.test(transport.sessionId),
    "transport has a 22-character Mcp-Session-Id", transport.sessionId);

  // tools/list, following nextCursor across pages.
  const names = [];
  let cursor;
  let pages = 0;
  do {
    const page = await client.listTools(cursor === undefined ? {} : { cursor });
    names.push(...page.tools.map((t) => t.name));
    cursor = page.nextCursor;
    pages += 1;
    if (pages > 100) throw new Error("tools/list pagination did not terminate");
  } while (cursor);
  for (const want of ["echo", "sleep", "kv_set", "kv_get", "test_sampling"]) {
    check(names.includes(want), `tools/list includes ${want}`, names);
  }

  // echo with non-ASCII text.
  const echoed = await client.callTool({ name: "echo", arguments: { text: "héllo" } });
  check(echoed.isError !== true, "echo is not an error", echoed);
  check(textOf(echoed) === "héllo", "echo returns its text unchanged", echoed);

  // kv_set then kv_get.
  const setRes = await client.callTool({ name: "kv_set", arguments: { key: "ts/http", value: "bonjour" } });
  check(setRes.isError !== true, "kv_set is not an error", setRes);
  const getRes = await client.callTool({ name: "kv_get", arguments: { key: "ts/http" } });
  check(getRes.isError !== true, "kv_get is not an error", getRes);
  check(getRes.structuredContent?.value === "bonjour", "kv_get structuredContent.value", getRes);

  // sleep with a progress token: progress arrives on the POST's SSE stream.
  const progress = [];
  const slept = await client.callTool({ name: "sleep", arguments: { ms: 150 } }, undefined, {
    onprogress: (p) => progress.push(p),
  });
  check(textOf(slept) === "slept 150 ms", "sleep result text", slept);
  check(progress.length >= 1, "at least one progress notification received", progress);
  check(progress.every((p) => typeof p.progress === "number"), "progress values are numbers", progress);

  // Sampling: the tool's request reaches the client over SSE, the answer goes back in a POST.
  const sampled = await client.callTool({ name: "test_sampling", arguments: { prompt: "hi" } });
  check(sampled.isError !== true, "test_sampling is not an error", sampled);
  check(textOf(sampled)?.includes("sdk says hi"), "test_sampling relays the client's answer", sampled);
  check(samplingRequests.length === 1, "exactly one sampling/createMessage request reached the client",
    samplingRequests);
  check(samplingRequests[0]?.messages?.[0]?.content?.text === "hi", "sampling request carries the prompt",
    samplingRequests);

  // Resources.
  const resources = await client.listResources();
  const uris = resources.resources.map((r) => r.uri);
  check(uris.includes("test://static-text"), "resources/list includes test://static-text", uris);
  const read = await client.readResource({ uri: "test://static-text" });
  const first = read.contents?.[0];
  check(first?.uri === "test://static-text", "resources/read returns the requested uri", read);
  check(first?.text === "This is the content of the static text resource.", "resources/read text", read);

  // Prompts.
  const prompts = await client.listPrompts();
  const promptNames = prompts.prompts.map((p) => p.name);
  check(promptNames.includes("test_simple_prompt"), "prompts/list includes test_simple_prompt", promptNames);

  await checkConcurrentEcho(client);
  await checkUnknownToolRejects(client);

  // HTTP DELETE of the session; the SDK throws if the server answers anything but 2xx/405.
  await transport.terminateSession();
  check(transport.sessionId === undefined, "terminateSession clears the session id", transport.sessionId);
  await client.close();

  // Known SDK race, not a server fault (see stdio-client.mjs): when the last
  // notifications/progress and the result are handled in the same tick, the result drops
  // the progress handler first and the SDK reports an unknown progress token.
  const unexpected = protocolErrors.filter(
    (m) => !m.includes("Received a progress notification for an unknown token"),
  );
  check(unexpected.length === 0, "no protocol errors reported by the SDK", unexpected);

  console.log(`ts-sdk http client: ${checksPassed()} checks passed`);
}

main().then(
  () => process.exit(0),
  (e) => fail(e instanceof Error ? e.stack ?? e.message : String(e)),
);
