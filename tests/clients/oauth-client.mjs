// The official TypeScript SDKs authorize against an emcee OAuth resource server with
// their own auth code, then list and call tools, in both eras.
//
// Usage: node oauth-client.mjs   (then one line on stdin: http://127.0.0.1:PORT/mcp)
//
// The script first runs a tiny authorization server on 127.0.0.1 (node:http, keys from
// node:crypto): RFC 8414 metadata, dynamic client registration, an /authorize that
// approves at once (302 back with a code), a /token that checks PKCE and issues an RS256
// JWT whose `aud` is the `resource` asked for, and its JWKS. It prints
// `as-ready <issuer URL>`; the driver (tests/it/ts_client.rs) then starts `emcee serve`
// with `[auth] issuer` = that URL and `jwks_url` = its JWKS, and writes emcee's MCP URL on
// stdin. Then:
//   1. a request without a token gets 401; the SDK's `extractResourceMetadataUrl` reads
//      the challenge and `discoverOAuthProtectedResourceMetadata` fetches the metadata;
//   2. SDK v1 (`@modelcontextprotocol/sdk`, session era): `client.connect` with an
//      OAuthClientProvider runs the SDK's `auth()` flow (discovery, registration,
//      authorization with PKCE and `resource`), `finishAuth(code)`, then connect again,
//      list tools and call one, among them `kv_set`, which needs the scope the 401's
//      challenge named and the SDK asked for;
//   3. SDK v2 (`@modelcontextprotocol/client`, 2026-07-28): the same flow, then list and
//      call.
// Prints `ts-sdk oauth client: N checks passed` and exits 0; on failure prints the reason
// to stderr and exits 1.

import http from "node:http";
import crypto from "node:crypto";
import readline from "node:readline";

import { Client as ClientV1 } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as TransportV1 } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  UnauthorizedError,
  extractResourceMetadataUrl,
  discoverOAuthProtectedResourceMetadata,
} from "@modelcontextprotocol/sdk/client/auth.js";
import {
  Client as ClientV2,
  StreamableHTTPClientTransport as TransportV2,
  UnauthorizedError as UnauthorizedErrorV2,
} from "@modelcontextprotocol/client";
import { check, checksPassed, textOf } from "./common.mjs";

const HARD_TIMEOUT_MS = 60_000;
const label = "ts-sdk oauth client";

function fail(reason) {
  console.error(`${label} FAILED: ${reason}`);
  process.exit(1);
}
setTimeout(() => fail(`hard timeout: run did not finish within ${HARD_TIMEOUT_MS} ms`), HARD_TIMEOUT_MS).unref();

// ---- the authorization server -------------------------------------------------------

const { publicKey, privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
const KID = "as-key-1";
const jwk = { ...publicKey.export({ format: "jwk" }), kid: KID, alg: "RS256", use: "sig" };
const b64url = (buf) => Buffer.from(buf).toString("base64url");

/** code → what /authorize was asked. */
const codes = new Map();
/** What /token issued (scopes asked), for the checks. */
const issued = [];
let registrations = 0;

function signJwt(claims) {
  const header = b64url(JSON.stringify({ alg: "RS256", typ: "at+jwt", kid: KID }));
  const payload = b64url(JSON.stringify(claims));
  const signature = crypto.sign("sha256", Buffer.from(`${header}.${payload}`), privateKey);
  return `${header}.${payload}.${b64url(signature)}`;
}

async function body(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString();
}

function json(res, status, value) {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(JSON.stringify(value));
}

const as = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    if (url.pathname === "/.well-known/oauth-authorization-server") {
      return json(res, 200, {
        issuer,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        registration_endpoint: `${issuer}/register`,
        jwks_uri: `${issuer}/jwks`,
        response_types_supported: ["code"],
        grant_types_supported: ["authorization_code"],
        code_challenge_methods_supported: ["S256"],
        token_endpoint_auth_methods_supported: ["none"],
        scopes_supported: ["kv:write"],
      });
    }
    if (url.pathname === "/jwks") return json(res, 200, { keys: [jwk] });
    if (url.pathname === "/register" && req.method === "POST") {
      registrations += 1;
      const meta = JSON.parse(await body(req));
      return json(res, 201, {
        ...meta,
        client_id: `client-${registrations}`,
        client_id_issued_at: Math.floor(Date.now() / 1000),
        token_endpoint_auth_method: "none",
      });
    }
    if (url.pathname === "/authorize") {
      const p = url.searchParams;
      if (p.get("response_type") !== "code" || p.get("code_challenge_method") !== "S256") {
        return json(res, 400, { error: "invalid_request" });
      }
      const code = crypto.randomBytes(16).toString("hex");
      codes.set(code, {
        challenge: p.get("code_challenge"),
        resource: p.get("resource"),
        scope: p.get("scope") ?? "",
        redirect: p.get("redirect_uri"),
      });
      const back = new URL(p.get("redirect_uri"));
      back.searchParams.set("code", code);
      if (p.get("state")) back.searchParams.set("state", p.get("state"));
      back.searchParams.set("iss", issuer);
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (url.pathname === "/token" && req.method === "POST") {
      const form = new URLSearchParams(await body(req));
      const grant = codes.get(form.get("code"));
      codes.delete(form.get("code"));
      const verifier = form.get("code_verifier") ?? "";
      if (!grant || b64url(crypto.createHash("sha256").update(verifier).digest()) !== grant.challenge) {
        return json(res, 400, { error: "invalid_grant" });
      }
      const resource = form.get("resource") ?? grant.resource;
      issued.push({ resource, scope: grant.scope });
      const now = Math.floor(Date.now() / 1000);
      const token = signJwt({
        iss: issuer, sub: "ts-sdk-user", aud: resource, exp: now + 300, iat: now,
        scope: grant.scope, client_id: form.get("client_id"),
      });
      return json(res, 200, { access_token: token, token_type: "Bearer", expires_in: 300, scope: grant.scope });
    }
    json(res, 404, { error: "not_found" });
  } catch (e) {
    json(res, 500, { error: "server_error", error_description: String(e) });
  }
});
await new Promise((resolve) => as.listen(0, "127.0.0.1", resolve));
const issuer = `http://127.0.0.1:${as.address().port}`;
console.log(`as-ready ${issuer}`);

const mcpUrl = await new Promise((resolve) => {
  const rl = readline.createInterface({ input: process.stdin });
  rl.once("line", (line) => {
    rl.close();
    resolve(line.trim());
  });
});

// ---- the client side -----------------------------------------------------------------

/** An OAuthClientProvider whose "browser" follows the authorization URL itself. */
class TestProvider {
  constructor(name) {
    this.name = name;
    this._client = undefined;
    this._tokens = undefined;
    this._verifier = undefined;
    this.code = undefined;
    this.redirects = 0;
  }
  get redirectUrl() { return "http://127.0.0.1:1/callback"; }
  get clientMetadata() {
    return {
      client_name: `emcee ${this.name} test`,
      redirect_uris: [this.redirectUrl],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() { return this._client; }
  saveClientInformation(info) { this._client = info; }
  tokens() { return this._tokens; }
  saveTokens(tokens) { this._tokens = tokens; }
  saveCodeVerifier(v) { this._verifier = v; }
  codeVerifier() { return this._verifier; }
  async redirectToAuthorization(authorizationUrl) {
    this.redirects += 1;
    const res = await fetch(authorizationUrl, { redirect: "manual" });
    check(res.status === 302, `${this.name}: /authorize approves (302)`, res.status);
    const back = new URL(res.headers.get("location"));
    this.code = back.searchParams.get("code");
  }
}

async function discovery() {
  const res = await fetch(mcpUrl, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
  });
  check(res.status === 401, "no token: 401", res.status);
  const metadataUrl = extractResourceMetadataUrl(res);
  const expected = new URL(mcpUrl);
  expected.pathname = "/.well-known/oauth-protected-resource/mcp";
  check(metadataUrl?.href === expected.href, "the SDK reads resource_metadata from the challenge",
    metadataUrl?.href);
  const metadata = await discoverOAuthProtectedResourceMetadata(mcpUrl, { resourceMetadataUrl: metadataUrl });
  check(metadata.resource === mcpUrl, "metadata resource is the MCP URL", metadata);
  check(JSON.stringify(metadata.authorization_servers) === JSON.stringify([issuer]),
    "metadata names the authorization server", metadata);
  check(metadata.scopes_supported?.includes("kv:write"), "metadata lists the scopes", metadata);
}

/** Connect: the first attempt runs the SDK's auth flow up to the redirect, then
 * finishAuth(code) and connect again. */
async function connectWithOAuth(name, makeClient, makeTransport, Unauthorized) {
  const provider = new TestProvider(name);
  let transport = makeTransport(provider);
  let client = makeClient();
  let refused;
  try {
    await client.connect(transport);
  } catch (e) {
    refused = e;
  }
  check(refused instanceof Unauthorized || refused?.name === "UnauthorizedError",
    `${name}: the first connect needs authorization`, String(refused));
  check(provider.code !== undefined, `${name}: the SDK sent the user to /authorize`);
  await transport.finishAuth(provider.code);
  check(provider.tokens()?.access_token?.split(".").length === 3, `${name}: the SDK got a JWT`);
  transport = makeTransport(provider);
  client = makeClient();
  await client.connect(transport);
  return { client, provider };
}

async function useTools(name, client) {
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  check(names.includes("echo"), `${name}: tools/list shows echo`, names);
  const echoed = await client.callTool({ name: "echo", arguments: { text: `hi from ${name}` } });
  check(textOf(echoed) === `hi from ${name}`, `${name}: tools/call echo`, echoed);
  return names;
}

async function main() {
  await discovery();

  // SDK v1, session era.
  const v1 = await connectWithOAuth(
    "sdk v1",
    () => new ClientV1({ name: "emcee-oauth-v1", version: "0.0.0" }),
    (provider) => new TransportV1(new URL(mcpUrl), { authProvider: provider }),
    UnauthorizedError,
  );
  check(issued[0]?.resource === mcpUrl, "sdk v1: the token was asked for this resource (RFC 8707)", issued);
  check(issued[0]?.scope === "kv:write", "sdk v1: the SDK asked the scope the 401 named", issued);
  const v1names = await useTools("sdk v1", v1.client);
  check(v1names.includes("kv_set"), "sdk v1: kv_set (needs kv:write) is listed with the scope", v1names);
  const set = await v1.client.callTool({ name: "kv_set", arguments: { key: "oauth", value: "ok" } });
  check(set.isError !== true, "sdk v1: kv_set called with the scope", set);
  await v1.client.close();

  // SDK v2, 2026-07-28.
  const v2 = await connectWithOAuth(
    "sdk v2",
    () => new ClientV2(
      { name: "emcee-oauth-v2", version: "0.0.0" },
      { capabilities: {}, versionNegotiation: { mode: { pin: "2026-07-28" } } },
    ),
    (provider) => new TransportV2(new URL(mcpUrl), { authProvider: provider }),
    UnauthorizedErrorV2,
  );
  check(v2.client.getNegotiatedProtocolVersion() === "2026-07-28", "sdk v2: 2026-07-28 negotiated",
    v2.client.getNegotiatedProtocolVersion());
  await useTools("sdk v2", v2.client);
  await v2.client.close();

  console.log(`${label}: ${checksPassed()} checks passed`);
  as.close();
  process.exit(0);
}

main().catch((e) => fail(e?.stack ?? String(e)));
