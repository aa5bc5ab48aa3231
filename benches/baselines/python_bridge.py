"""A minimal Handinger bridge written with the official Python MCP SDK (`mcp` on PyPI).

What a user would write in twenty lines instead of installing handinger-mcp: one
`create_task` tool that POSTs to the Handinger API and returns the answer text. The
benchmark (benches/bridge.rs) runs it over stdio beside the Rust bridge.
"""

import os

import httpx2 as httpx  # the HTTP client mcp 2.x itself depends on
from mcp.server.mcpserver import MCPServer

BASE_URL = os.environ.get("HANDINGER_BASE_URL", "https://handinger.com")
HEADERS = {"Authorization": f"Bearer {os.environ['HANDINGER_API_KEY']}"}

mcp = MCPServer("handinger-python")
http = httpx.AsyncClient(base_url=BASE_URL, headers=HEADERS, timeout=None)


@mcp.tool()
async def create_task(input: str, budget: str = "standard", taskId: str | None = None) -> str:
    """Give a task to a Handinger AI worker and wait for its answer."""
    body = {"input": input, "budget": budget}
    if taskId:
        body["taskId"] = taskId
    response = await http.post("/api/tasks", json=body)
    response.raise_for_status()
    return response.json().get("output_text") or ""


if __name__ == "__main__":
    mcp.run()
