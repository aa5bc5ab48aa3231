"""The official MCP Python SDK against handinger-mcp, in the modes people run it in.

Run by tests/it/python_clients.rs, which starts the fake Handinger API (and, for HTTP, the
bridge) and passes where they are through the environment:

    HANDINGER_MCP_BIN    the handinger-mcp binary (stdio scenarios start it themselves)
    HANDINGER_BASE_URL   the fake Handinger API
    HANDINGER_API_KEY    a key the fake accepts
    MCP_URL              the bridge's /mcp (HTTP scenarios)

Usage: clients.py SCENARIO, one of stdio-legacy, stdio-modern, http-legacy, http-modern,
http-auto. Each scenario starts with one failing POST queued on the fake (a 500 before
Handinger takes the turn), so its first create_task is a tool error. Exits 0 when every
check held, 1 with the failed check otherwise. The SDK validates every structured result
against the tool's output schema itself (with `jsonschema`), so every tool called here also
checks that the schemas describe what the server sends.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
import sys
from typing import Any, Literal

import anyio
from mcp import Client, StdioServerParameters
from mcp.client import ClaimContext, ClientExtension, ResultClaim, advertise
from mcp.types import CallToolResult, Request, RequestParams, Result

TASKS = "io.modelcontextprotocol/tasks"
MODERN = "2026-07-28"
# Generous: it bounds a hang, it is not a speed check.
TIMEOUT_S = 60.0


class TaskHandle(Result):
    """The tasks extension's answer to a tools/call: a task to poll instead of the result."""

    result_type: Literal["task"]
    task_id: str
    status: str
    poll_interval_ms: int | None = None


class GetTaskParams(RequestParams):
    task_id: str


class GetTaskRequest(Request[GetTaskParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: GetTaskParams
    name_param = "taskId"


class TaskState(Result):
    """What tasks/get answers: the task, and its result or error once it ended."""

    model_config = {"extra": "allow"}
    task_id: str
    status: str
    status_message: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class Tasks(ClientExtension):
    """The tasks extension, client side: resolves a task handle by polling tasks/get."""

    identifier = TASKS

    def __init__(self) -> None:
        self.handles: list[TaskHandle] = []
        self.finals: list[TaskState] = []

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=TaskHandle, resolve=self.resolve)]

    async def resolve(self, handle: TaskHandle, ctx: ClaimContext) -> CallToolResult:
        self.handles.append(handle)
        request = GetTaskRequest(params=GetTaskParams(task_id=handle.task_id))
        with anyio.fail_after(TIMEOUT_S):
            while True:
                state = await ctx.session.send_request(request, TaskState)
                if state.status in ("completed", "failed", "cancelled"):
                    break
                await asyncio.sleep((handle.poll_interval_ms or 1000) / 1000 / 10)
        self.finals.append(state)
        check(state.status == "completed", f"task ended {state.status}: {state.error}")
        return CallToolResult.model_validate(state.result)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", "") == "text")


class Warnings(logging.Handler):
    """Collects what the SDK logs at warning level or above (a failed session close, say)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()}")


def stdio_server(*args: str) -> StdioServerParameters:
    env = {
        "HANDINGER_API_KEY": os.environ["HANDINGER_API_KEY"],
        "HANDINGER_BASE_URL": os.environ["HANDINGER_BASE_URL"],
        "RUST_LOG": "warn",
    }
    return StdioServerParameters(command=os.environ["HANDINGER_MCP_BIN"], args=list(args), env=env)


async def first_call_is_a_tool_error(client: Client) -> None:
    """The queued 500: an error result that says resending is safe, under any protocol."""
    failed = await client.call_tool("create_task", {"input": "meets the queued failure"})
    check(failed.is_error is True, f"expected a tool error, got {failed}")
    check("again is safe" in text(failed), text(failed))


async def task_round(client: Client, prefix: str) -> str:
    """create_task then get_task; returns the taskId."""
    created = await client.call_tool("create_task", {"input": f"{prefix} question"})
    check(created.is_error is not True, text(created))
    data = created.structured_content or {}
    check(data.get("outputText") == f"answer to: {prefix} question (turn 1)", str(data))
    check(data.get("structuredOutput") == {"verdict": "sunny"}, str(data))
    task_id = data["taskId"]
    looked_up = await client.call_tool("get_task", {"taskId": task_id})
    check(looked_up.is_error is not True, text(looked_up))
    turns = (looked_up.structured_content or {}).get("turns") or []
    check(turns and turns[0].get("input") == f"{prefix} question", str(looked_up.structured_content))
    return task_id


async def every_toolset(client: Client) -> None:
    """One call to each tool of the optional toolsets: their output schemas get validated."""
    worker = await client.call_tool(
        "create_worker",
        {"instructions": "Check claims.", "title": "Checker", "outputSchema": {"type": "object"}},
    )
    check(worker.is_error is not True, text(worker))
    worker_id = (worker.structured_content or {})["workerId"]
    for name, arguments in [
        ("get_worker", {"workerId": worker_id}),
        ("update_worker", {"workerId": worker_id, "outputSchema": None}),
        ("create_schedule", {"workerId": worker_id, "input": "daily check", "when": {"type": "interval", "intervalSeconds": 86400}}),
        ("list_schedules", {"workerId": worker_id}),
    ]:
        result = await client.call_tool(name, arguments)
        check(result.is_error is not True, f"{name}: {text(result)}")
    schedules = (result.structured_content or {}).get("schedules") or []
    check(len(schedules) == 1, str(result.structured_content))
    cancelled = await client.call_tool(
        "cancel_schedule", {"workerId": worker_id, "scheduleId": schedules[0]["scheduleId"]}
    )
    check(cancelled.is_error is not True, text(cancelled))
    task_id = await task_round(client, "admin")
    for name, arguments in [("archive_task", {"taskId": task_id}), ("delete_worker", {"workerId": worker_id})]:
        result = await client.call_tool(name, arguments)
        check(result.is_error is not True, f"{name}: {text(result)}")


async def legacy(server: Any, toolsets: bool) -> None:
    """A 2025-11-25 session whose initialize lists the tasks extension (as MCP Inspector's
    does): plain tool results all along, never a task handle."""
    async with Client(server, mode="legacy", extensions=[advertise(TASKS)], read_timeout_seconds=TIMEOUT_S) as client:
        check(client.protocol_version == "2025-11-25", client.protocol_version)
        await first_call_is_a_tool_error(client)
        await task_round(client, "legacy")
        if toolsets:
            await every_toolset(client)


async def modern(server: Any, mode: str) -> None:
    """2026-07-28 with the tasks extension: create_task answers with a task, polled to its
    result; the failed POST is a completed task carrying the error result."""
    tasks = Tasks()
    async with Client(server, mode=mode, extensions=[tasks], read_timeout_seconds=TIMEOUT_S) as client:
        check(client.protocol_version == MODERN, client.protocol_version)
        await first_call_is_a_tool_error(client)
        check(len(tasks.handles) == 1, "the failing call came back as a task")
        check(tasks.finals[0].status == "completed", "a tool error completes the task")
        task_id = await task_round(client, "modern")
        check(len(tasks.handles) == 2, "create_task came back as a task")
        check(tasks.handles[1].task_id == task_id, "the MCP task id is the taskId")


async def main(scenario: str) -> None:
    warnings = Warnings()
    logging.getLogger().addHandler(warnings)
    url = os.environ.get("MCP_URL", "")
    if scenario == "stdio-legacy":
        await legacy(stdio_server("--toolsets", "all,admin"), toolsets=True)
    elif scenario == "stdio-modern":
        await modern(stdio_server(), MODERN)
    elif scenario == "http-legacy":
        await legacy(url, toolsets=False)
    elif scenario == "http-modern":
        await modern(url, MODERN)
    elif scenario == "http-auto":
        # auto probes server/discover and settles on the newest version both speak.
        await modern(url, "auto")
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    # A session's close (DELETE /mcp over HTTP) must not be logged as a failure, nor
    # anything else the SDK found wrong.
    check(not warnings.records, "the SDK logged warnings:\n" + "\n".join(warnings.records))
    print(f"{scenario}: ok (mcp {importlib.metadata.version('mcp')})")


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1]))
    except AssertionError as failure:
        print(f"{sys.argv[1]}: FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
