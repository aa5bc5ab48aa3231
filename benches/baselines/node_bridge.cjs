// A minimal Handinger bridge written with the official TypeScript MCP SDK
// (@modelcontextprotocol/sdk on npm): what a user would write in twenty lines instead of
// installing handinger-mcp. One create_task tool that POSTs to the Handinger API and
// returns the answer text. The benchmark (benches/bridge.rs) runs it over stdio.
const { McpServer } = require("@modelcontextprotocol/sdk/server/mcp.js");
const { StdioServerTransport } = require("@modelcontextprotocol/sdk/server/stdio.js");
const { z } = require("zod");

const baseUrl = process.env.HANDINGER_BASE_URL ?? "https://handinger.com";
const headers = {
  authorization: `Bearer ${process.env.HANDINGER_API_KEY}`,
  "content-type": "application/json",
};

const server = new McpServer({ name: "handinger-node", version: "0.0.0" });
server.registerTool(
  "create_task",
  {
    description: "Give a task to a Handinger AI worker and wait for its answer.",
    inputSchema: { input: z.string(), budget: z.string().optional(), taskId: z.string().optional() },
  },
  async ({ input, budget, taskId }) => {
    const body = JSON.stringify({ input, budget: budget ?? "standard", taskId });
    const response = await fetch(`${baseUrl}/api/tasks`, { method: "POST", headers, body });
    if (!response.ok) {
      return { isError: true, content: [{ type: "text", text: `HTTP ${response.status}` }] };
    }
    const answer = await response.json();
    return { content: [{ type: "text", text: answer.output_text ?? "" }] };
  },
);

server.connect(new StdioServerTransport());
