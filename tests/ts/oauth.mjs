// The official TypeScript MCP SDK's OAuth client against the server (driven by
// tests/it/oauth.rs): discovery, dynamic client registration, PKCE, the sign-in completed in a
// real headless Chromium (the Playwright helper of tests/python/oauth.py, scenario
// `browser-sign-in`), the token, create_task, a refresh once the access token expired, and
// another call. Prints the tokens it ended with as JSON on its last line.
//
// Env: MCP_URL, USER_KEY, ACCESS_TTL (seconds, with the server's grace after it), PYTHON (the venv with Playwright), SDK_DIR
// (the SDK's package directory).

import { execFileSync } from "node:child_process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { dirname, join } from "node:path";

// The SDK pinned in .ci/node-clients (ES modules do not search NODE_PATH).
const sdk = (path) => import(pathToFileURL(join(process.env.SDK_DIR, "dist/esm", path)).href);
const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
const { UnauthorizedError } = await sdk("client/auth.js");

const here = dirname(fileURLToPath(import.meta.url));
const REDIRECT = "http://127.0.0.1:33418/callback";
const url = new URL(process.env.MCP_URL);

function check(condition, message) {
  if (!condition) throw new Error(message);
}

class MemoryProvider {
  constructor() {
    this.client = undefined;
    this.saved = undefined;
    this.verifier = undefined;
    this.authorizationUrl = undefined;
  }
  get redirectUrl() { return REDIRECT; }
  get clientMetadata() {
    return {
      client_name: "TypeScript SDK test client",
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() { return this.client; }
  saveClientInformation(info) { this.client = info; }
  tokens() { return this.saved; }
  saveTokens(tokens) { this.saved = tokens; }
  redirectToAuthorization(authorizationUrl) { this.authorizationUrl = authorizationUrl; }
  saveCodeVerifier(verifier) { this.verifier = verifier; }
  codeVerifier() { return this.verifier; }
}

function signInInBrowser(authorizationUrl) {
  const out = execFileSync(
    process.env.PYTHON,
    [join(here, "..", "python", "oauth.py"), "browser-sign-in"],
    { env: { ...process.env, AUTH_URL: authorizationUrl.toString() }, encoding: "utf8" },
  );
  return new URL(out.trim().split("\n").pop());
}

const provider = new MemoryProvider();
let transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
let client = new Client({ name: "ts-oauth-test", version: "1.0.0" });
try {
  await client.connect(transport);
  throw new Error("connected without signing in");
} catch (error) {
  if (!(error instanceof UnauthorizedError)) throw error;
}
check(provider.authorizationUrl, "the SDK asked for a sign-in");
const back = signInInBrowser(provider.authorizationUrl);
check(back.searchParams.get("iss") === url.origin, `iss ${back.searchParams.get("iss")}`);
await transport.finishAuth(back.searchParams.get("code"));
transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
client = new Client({ name: "ts-oauth-test", version: "1.0.0" });
await client.connect(transport);
const created = await client.callTool({ name: "create_task", arguments: { input: "ts oauth question" } });
check(!created.isError, JSON.stringify(created));
const first = provider.saved;
check(first && first.refresh_token, "a refresh token was issued");
// Past the access token's life (and the grace the server gives a late request) the next
// request gets 401 and the SDK refreshes.
await new Promise((resolve) => setTimeout(resolve, (Number(process.env.ACCESS_TTL) + 1.5) * 1000));
const looked = await client.callTool({ name: "get_task", arguments: { taskId: created.structuredContent.taskId } });
check(!looked.isError, JSON.stringify(looked));
const second = provider.saved;
check(second.refresh_token !== first.refresh_token, "the refresh token was rotated");
await client.close();
console.log(JSON.stringify({ client_id: provider.client.client_id, access_token: second.access_token }));
console.error("ts-sdk-flow: ok");
