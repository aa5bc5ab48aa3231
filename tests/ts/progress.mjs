// The official TypeScript MCP SDK's client asking for progress (driven by
// tests/it/papercuts.rs): CALLS create_task calls over one transport, each with an
// `onprogress` handler, on a server whose progress tick and answer leave together. The SDK
// reports a tick for a request it has already seen answered as "unknown token" through
// `onerror`; the script counts those and the ticks, and prints them as JSON on its last line.
//
// Env: MCP_BASE (the server, without a path), TRANSPORT (`sse`, `streamable` or
// `stateless`), CALLS, SDK_DIR (the SDK's package directory).

import { join } from "node:path";
import { pathToFileURL } from "node:url";

const sdk = (path) => import(pathToFileURL(join(process.env.SDK_DIR, "dist/esm", path)).href);
const { Client } = await sdk("client/index.js");
const { SSEClientTransport } = await sdk("client/sse.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");

const base = process.env.MCP_BASE;
const kind = process.env.TRANSPORT;
let unknown = 0;
let other = [];
let ticks = 0;
let answers = 0;
// Each call has its own client and connection, so the race between a tick and its answer
// is the same whether the calls run one after another or together; together they take
// the time of one.
async function call(i) {
  const client = new Client({ name: "progress-order", version: "1" });
  client.onerror = (error) => {
    const text = String(error);
    if (text.includes("unknown token")) unknown++;
    else if (!text.includes("AbortError") && !text.includes("SSE stream disconnected")) other.push(text);
  };
  const transport =
    kind === "sse"
      ? new SSEClientTransport(new URL(`${base}/sse`))
      : new StreamableHTTPClientTransport(new URL(`${base}/mcp`));
  await client.connect(transport);
  const result = await client.callTool(
    { name: "create_task", arguments: { input: `call ${i}` } },
    undefined,
    { onprogress: () => ticks++, timeout: 60000 },
  );
  if (!result.isError) answers++;
  // Anything still on its way for this call arrives before the client goes.
  await new Promise((resolve) => setTimeout(resolve, 100));
  await client.close();
}
await Promise.all(Array.from({ length: Number(process.env.CALLS) }, (_, i) => call(i)));
console.log(JSON.stringify({ unknown, other, ticks, answers }));
