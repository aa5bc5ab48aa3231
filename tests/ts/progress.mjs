// The official TypeScript MCP SDK's client asking for progress (driven by
// tests/it/papercuts.rs): CALLS create_task calls over one transport, each with an
// `onprogress` handler, on a server whose progress tick and answer leave together. The SDK
// reports a tick for a request it has already seen answered as "unknown token" through
// `onerror`; the script counts those and the ticks, and prints them as JSON on its last line.
//
// Env: MCP_BASE (the server, without a path), TRANSPORT (`sse`, `streamable` or
// `stateless`), CALLS, AT_ONCE (how many run together), SDK_DIR (the SDK's package directory).

import { join } from "node:path";
import { pathToFileURL } from "node:url";

const sdk = (path) => import(pathToFileURL(join(process.env.SDK_DIR, "dist/esm", path)).href);
const { Client } = await sdk("client/index.js");
const { SSEClientTransport } = await sdk("client/sse.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");

const base = process.env.MCP_BASE;
const kind = process.env.TRANSPORT;
let unknown = 0;
let stalled = 0;
let other = [];
let ticks = 0;
let answers = 0;

// The server keeps 200 ms between a tick and the answer after it, so only a client that
// reads nothing for about that long can see the two in one read: an event loop that ran
// no timer for STALL_MS (the process descheduled on a loaded machine, or busy) is such a
// stall. An unknown token seen during one, or just after, is counted apart as `stalled`.
const STALL_MS = 150;
const stalls = [];
let lastTimer = performance.now();
const monitor = setInterval(() => {
  const now = performance.now();
  if (now - lastTimer > STALL_MS) stalls.push([lastTimer, now]);
  lastTimer = now;
}, 10);
const duringStall = (at) => stalls.some(([from, to]) => from <= at && at <= to + 50);
// Each call has its own client and connection, so the race between a tick and its answer
// is the same whether the calls run one after another or AT_ONCE at a time, which takes a
// fraction of the time.
async function call(i) {
  const client = new Client({ name: "progress-order", version: "1" });
  client.onerror = (error) => {
    const text = String(error);
    if (text.includes("unknown token")) {
      // Decided after the timer has had its turn to record the stall this read ended.
      const at = performance.now();
      setTimeout(() => (duringStall(at) ? stalled++ : unknown++), 20);
    }
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
let next = 0;
async function worker() {
  while (next < Number(process.env.CALLS)) await call(next++);
}
await Promise.all(Array.from({ length: Number(process.env.AT_ONCE) }, worker));
await new Promise((resolve) => setTimeout(resolve, 50));
clearInterval(monitor);
console.log(JSON.stringify({ unknown, stalled, stalls: stalls.length, other, ticks, answers }));
