// Checks shared by the TypeScript SDK client scripts (stdio-client.mjs, http-client.mjs).

import { McpError } from "@modelcontextprotocol/sdk/types.js";

let passed = 0;

/** Throw naming `what` (and `detail`) unless `cond`; count the check otherwise. */
export function check(cond, what, detail) {
  if (!cond) {
    const extra = detail === undefined ? "" : `: ${JSON.stringify(detail)}`;
    throw new Error(`check failed: ${what}${extra}`);
  }
  passed += 1;
}

/** How many checks passed so far. */
export function checksPassed() {
  return passed;
}

/** The first content block's text, if it is a text block. */
export function textOf(result) {
  const first = result?.content?.[0];
  return first && first.type === "text" ? first.text : undefined;
}

/** 20 concurrent echo calls; every reply must match its own request. */
export async function checkConcurrentEcho(client) {
  const inputs = Array.from({ length: 20 }, (_, i) => `concurrent-${i}-é`);
  const replies = await Promise.all(
    inputs.map((text) => client.callTool({ name: "echo", arguments: { text } })),
  );
  const mismatches = replies
    .map((r, i) => ({ want: inputs[i], got: textOf(r) }))
    .filter(({ want, got }) => want !== got);
  check(mismatches.length === 0, "20 concurrent echo replies match their inputs", mismatches);
}

/** An unknown tool: the SDK must reject with McpError -32602. */
export async function checkUnknownToolRejects(client) {
  let rejection;
  try {
    const unexpected = await client.callTool({ name: "no_such_tool", arguments: {} });
    rejection = { resolved: unexpected };
  } catch (e) {
    rejection = e;
  }
  check(rejection instanceof McpError, "unknown tool call rejects with McpError",
    rejection instanceof Error ? `${rejection.name}: ${rejection.message}` : rejection);
  check(rejection.code === -32602, "unknown tool error code is -32602",
    { code: rejection.code, message: rejection.message });
}
