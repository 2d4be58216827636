// A real third-party MCP client (the official TypeScript SDK) talking to `emcee stdio`.
//
// Usage: node stdio-client.mjs /path/to/emcee /path/to/data-dir
//
// Driven by tests/it/ts_client.rs. Prints `ts-sdk stdio client: N checks passed` and
// exits 0 on success; prints the reason to stderr and exits 1 on any failure.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { check, checksPassed, checkConcurrentEcho, checkUnknownToolRejects, textOf } from "./common.mjs";

const HARD_TIMEOUT_MS = 30_000;

const [emcee, dataDir] = process.argv.slice(2);
if (!emcee || !dataDir) {
  console.error("usage: node stdio-client.mjs /path/to/emcee /path/to/data-dir");
  process.exit(1);
}

// Server stderr is collected (not printed) so it can be shown if something fails.
let serverStderr = "";

function fail(reason) {
  console.error(`ts-sdk stdio client FAILED: ${reason}`);
  if (serverStderr) {
    console.error("--- emcee stderr (last 4000 chars) ---");
    console.error(serverStderr.slice(-4000));
  }
  process.exit(1);
}

setTimeout(() => fail(`hard timeout: run did not finish within ${HARD_TIMEOUT_MS} ms`), HARD_TIMEOUT_MS).unref();

async function main() {
  const transport = new StdioClientTransport({
    command: emcee,
    args: ["stdio", "--data-dir", dataDir, "--fixtures", "faults"],
    stderr: "pipe",
  });
  transport.stderr?.on("data", (chunk) => {
    serverStderr += chunk.toString();
  });

  const client = new Client({ name: "emcee-ts-sdk-test", version: "0.0.0" });
  // Protocol-level problems the SDK does not throw for (unparseable lines on stdout,
  // responses to unknown ids...) land here; any of them fails the run at the end.
  const protocolErrors = [];
  client.onerror = (e) => protocolErrors.push(e instanceof Error ? e.message : String(e));
  await client.connect(transport);

  // Server identity from the initialize handshake.
  const info = client.getServerVersion();
  check(info?.name === "emcee", "serverInfo.name is emcee", info);
  check(client.getServerCapabilities()?.tools !== undefined, "server advertises tools capability",
    client.getServerCapabilities());

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
  for (const want of ["echo", "sleep", "kv_set", "kv_get", "kv_delete", "kv_list", "fault_panic"]) {
    check(names.includes(want), `tools/list includes ${want}`, names);
  }

  // echo with non-ASCII text.
  const echoed = await client.callTool({ name: "echo", arguments: { text: "héllo" } });
  check(echoed.isError !== true, "echo is not an error", echoed);
  check(textOf(echoed) === "héllo", "echo returns its text unchanged", echoed);

  // kv_set then kv_get.
  const setRes = await client.callTool({ name: "kv_set", arguments: { key: "ts/greeting", value: "bonjour" } });
  check(setRes.isError !== true, "kv_set is not an error", setRes);
  const getRes = await client.callTool({ name: "kv_get", arguments: { key: "ts/greeting" } });
  check(getRes.isError !== true, "kv_get is not an error", getRes);
  check(getRes.structuredContent?.value === "bonjour", "kv_get structuredContent.value", getRes);

  // sleep with a progress token: the SDK's onprogress must fire.
  const progress = [];
  const slept = await client.callTool({ name: "sleep", arguments: { ms: 200 } }, undefined, {
    onprogress: (p) => progress.push(p),
  });
  check(textOf(slept) === "slept 200 ms", "sleep result text", slept);
  check(progress.length >= 1, "at least one progress notification received", progress);
  check(progress.every((p) => typeof p.progress === "number"), "progress values are numbers", progress);

  // A panicking tool yields isError: true, and the session keeps working.
  const panicked = await client.callTool({ name: "fault_panic", arguments: {} });
  check(panicked.isError === true, "fault_panic result has isError: true", panicked);
  const after = await client.callTool({ name: "echo", arguments: { text: "still alive" } });
  check(textOf(after) === "still alive", "echo works after fault_panic", after);

  await checkConcurrentEcho(client);
  await checkUnknownToolRejects(client);

  await client.close();

  // Known SDK race, not a server fault: the SDK dispatches notifications in a microtask
  // but responses synchronously, so when the last notifications/progress and the result
  // arrive in one read, the result drops the progress handler first and the SDK reports
  // "Received a progress notification for an unknown token". emcee's order is correct.
  const unexpected = protocolErrors.filter(
    (m) => !m.includes("Received a progress notification for an unknown token"),
  );
  check(unexpected.length === 0, "no protocol errors reported by the SDK", unexpected);

  console.log(`ts-sdk stdio client: ${checksPassed()} checks passed`);
}

main().then(
  () => process.exit(0),
  (e) => fail(e instanceof Error ? e.stack ?? e.message : String(e)),
);
