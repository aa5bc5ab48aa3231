"""The MCP Apps task view in a real browser: headless Chromium (Playwright) loads the test
host page (tests/python/app_host.html), which runs the view from the real server in a
sandboxed iframe and proxies its tool calls to the server through the official MCP Python
SDK client, declaring the extension.

Run by tests/it/app_view.rs, which starts the fake Handinger API (with one failing POST
queued) and the bridge over HTTP with a short --max-wait, and passes through the
environment:

    MCP_URL              the bridge's /mcp
    SCREENSHOT_DIR       where to save a PNG of each state, light and dark

Checks, in order: the extension's listing (tools linked, the view listed and read with its
type and CSP); a failed turn shows its error and the advice; a running task shows its
status and elapsed time and becomes the completed answer by itself; the Markdown renders
and the <script> and onerror in the answer do not run; sources and files are listed and a
file opens through the host; following stops and resumes; a follow-up from the box runs as
the task's second turn; the task is archived once the user confirms; a get_task lookup
shows the task record (latest turn, totals, dashboard link); an ask_<name> view follows up
with its own tool.
Prints "app-view: ok TASK_ID" when everything held (the Rust test then counts the fake's
POSTs), or exits 1 naming the failed check.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any

try:
    from mcp import Client
    from mcp.client import advertise
    from playwright.async_api import Page, async_playwright
except ImportError as missing:
    # A venv from before Playwright was pinned: say how to bring it up to date.
    print(f"app-view: FAILED: {missing}: run `bash .ci/python-clients.sh`", file=sys.stderr)
    sys.exit(1)

UI = "io.modelcontextprotocol/ui"
MIME = "text/html;profile=mcp-app"
VIEW = "ui://handinger/task"
HOST_PAGE = Path(__file__).with_name("app_host.html")
# Bounds a hang, not a speed check.
TIMEOUT_MS = 30_000
# The answer echoes the input (the fake answers "answer to: INPUT (turn N)"); sleep= keeps
# the turn running past the bridge's --max-wait, so create_task answers "running" first.
MARKDOWN_INPUT = """sleep=6000

# Findings

**Bold claim** and *a nuance*, with `inline code` and [the source](https://example.com/page).
Not a link: [click me](javascript:parent.postMessage({pwned:'href'},'*')).

- first point
- second point

<script>parent.postMessage({pwned: "script"}, "*")</script>

<img src=x onerror="parent.postMessage({pwned: 'onerror'}, '*')">"""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def wire(result: Any) -> dict[str, Any]:
    """A result as the host receives it on the wire (camelCase, no nulls)."""
    return result.model_dump(by_alias=True, exclude_none=True, mode="json")


async def shoot(page: Page, name: str) -> None:
    """The view in light and dark, saved as NAME-light.png and NAME-dark.png."""
    out = Path(os.environ["SCREENSHOT_DIR"])
    out.mkdir(parents=True, exist_ok=True)
    view = page.locator("#view")
    for theme in ("light", "dark"):
        await page.evaluate("theme => window.setTheme(theme)", theme)
        frame = page.frame_locator("#view")
        await frame.locator(f"html[data-theme={theme}]").wait_for(state="attached", timeout=TIMEOUT_MS)
        await view.screenshot(path=str(out / f"task-view-{name}-{theme}.png"))
    await page.evaluate("theme => window.setTheme(theme)", "light")


async def until_state(page: Page, state: str) -> None:
    """Waits for the view's status to reach `state`; fails with what the view says."""
    frame = page.frame_locator("#view")
    try:
        await frame.locator(f"#status[data-state={state}]").wait_for(timeout=TIMEOUT_MS)
    except Exception as e:
        inner = page.frames[1] if len(page.frames) > 1 else None
        try:
            said = await asyncio.wait_for(inner.evaluate("document.body.innerText"), 5) if inner else "(no frame)"
        except asyncio.TimeoutError:
            said = "(nothing: the view's script is stuck)"
        log = await page.evaluate("JSON.stringify(window.hostLog.slice(-3)).slice(0, 2000)")
        raise AssertionError(f"the view did not reach {state}: it shows {said!r}; it sent {log}") from e


async def open_view(browser: Any, client: Client, html: str, csp: dict[str, Any], tool: str) -> Page:
    page = await browser.new_page(viewport={"width": 400, "height": 1600})
    calls: list[tuple[str, dict[str, Any]]] = []

    async def call_tool(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        calls.append((name, arguments))
        return wire(await client.call_tool(name, arguments))

    page.calls = calls  # type: ignore[attr-defined]
    # The view's own errors, shown when a check fails.
    page.on("pageerror", lambda error: print(f"view error: {error}", file=sys.stderr))
    page.on("console", lambda message: print(f"console: {message.text}", file=sys.stderr))
    await page.expose_function("mcpCallTool", call_tool)
    await page.goto(HOST_PAGE.as_uri())
    context = {"theme": "light", "displayMode": "inline", "toolInfo": {"tool": {"name": tool}}}
    await page.evaluate("([html, csp, ctx]) => window.loadView(html, csp, ctx)", [html, csp, context])
    await page.wait_for_function("window.viewReady === true", timeout=TIMEOUT_MS)
    return page


async def listing(client: Client) -> tuple[str, dict[str, Any]]:
    """tools/list, resources/list and resources/read as a client declaring the extension."""
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for name in ("create_task", "get_task", "ask_checker"):
        meta = tools[name].meta or {}
        check(meta.get("ui", {}).get("resourceUri") == VIEW, f"{name} is not linked to the view: {meta}")
    for name in ("archive_task", "delete_worker"):
        check(not (tools[name].meta or {}).get("ui"), f"{name} is linked to the view")
    resources = (await client.list_resources()).resources
    check([r.uri for r in resources] == [VIEW], f"resources/list: {resources}")
    check(resources[0].mime_type == MIME, f"listed type {resources[0].mime_type}")
    read = await client.read_resource(VIEW)
    content = wire(read)["contents"][0]
    check(content["mimeType"] == MIME, f"read type {content['mimeType']}")
    csp = content["_meta"]["ui"]["csp"]
    check(csp == {"connectDomains": [], "resourceDomains": [], "frameDomains": []}, f"csp {csp}")
    html = content["text"]
    check('data-tools="create_task get_task archive_task"' in html, "the page is not told the listed tools")
    return html, csp


async def failed_turn(browser: Any, client: Client, html: str, csp: dict[str, Any]) -> None:
    """The queued 500: the view shows the error and the advice the model got."""
    arguments = {"input": "meets the queued failure"}
    page = await open_view(browser, client, html, csp, "create_task")
    await page.evaluate("args => window.sendToolInput(args)", arguments)
    result = wire(await client.call_tool("create_task", arguments))
    check(result.get("isError") is True, f"expected the queued failure: {result}")
    await page.evaluate("r => window.sendToolResult(r)", result)
    frame = page.frame_locator("#view")
    problem = frame.locator("#problem-text")
    await problem.wait_for(state="visible", timeout=TIMEOUT_MS)
    text = await problem.inner_text()
    check("upstream exploded" in text and "again is safe" in text, f"problem shown: {text!r}")
    check(await frame.locator("#status-word").inner_text() == "Failed", "status is not Failed")
    check(await frame.locator("#input").inner_text() == arguments["input"], "the input asked is not shown")
    await shoot(page, "failed")
    await page.close()


async def live_task(browser: Any, client: Client, html: str, csp: dict[str, Any]) -> str:
    """Running, then completed by itself; Markdown, injection, sources, files, follow-up."""
    page = await open_view(browser, client, html, csp, "create_task")
    frame = page.frame_locator("#view")
    arguments = {"input": MARKDOWN_INPUT}
    await page.evaluate("args => window.sendToolInput(args)", arguments)
    result = wire(await client.call_tool("create_task", arguments))
    data = result.get("structuredContent") or {}
    check(data.get("status") == "running", f"expected running past --max-wait: {result}")
    task_id = data["taskId"]
    await page.evaluate("r => window.sendToolResult(r)", result)

    # Running: the status and a ticking elapsed time, with nobody calling anything.
    status = frame.locator("#status-word")
    await frame.locator("#status[data-state=running]").wait_for(timeout=TIMEOUT_MS)
    check(await status.inner_text() == "Running", f"status {await status.inner_text()!r}")
    elapsed = frame.locator("#elapsed")
    await elapsed.filter(has_text=re.compile(r"· [1-9]\d* s")).wait_for(timeout=TIMEOUT_MS)
    await shoot(page, "running")

    # Stop following, then follow again: the task keeps running meanwhile.
    await frame.get_by_role("button", name="Stop following").click()
    note = await frame.locator("#note").inner_text()
    check("keeps running" in note, f"stopping says {note!r}")
    await frame.get_by_role("button", name="Follow again").click()

    # Completed by itself: the view asked the host for get_task with a wait.
    await until_state(page, "completed")
    calls = page.calls  # type: ignore[attr-defined]
    check(calls and all(name == "get_task" for name, _ in calls), f"the view called {calls}")
    check(all(args.get("taskId") == task_id and args.get("wait", 0) > 0 for _, args in calls), str(calls))

    # The answer's HTML is text: its <script> and onerror neither became elements nor ran.
    answer = frame.locator("#answer")
    text = await answer.inner_text()
    check("<script>" in text and "onerror=" in text, f"the HTML is not shown as text: {text!r}")
    check(await answer.locator("script, img").count() == 0, "the answer's HTML became elements")
    log = await page.evaluate("window.hostLog")
    pwned = [m for m in log if isinstance(m, dict) and "pwned" in m]
    check(not pwned, f"the answer's script ran: {pwned}")

    # Markdown, as DOM: a heading, emphasis, code, a list and a link.
    check(await answer.locator("h3").inner_text() == "Findings", "no heading")
    check(await answer.locator("strong").inner_text() == "Bold claim", "no bold")
    check(await answer.locator("em").inner_text() == "a nuance", "no italic")
    check(await answer.locator("code").inner_text() == "inline code", "no code")
    check(await answer.locator("li").count() == 2, "no list")
    hrefs = await answer.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    check(hrefs == ["https://example.com/page"], f"the answer's links: {hrefs}")
    check("[click me](javascript:" in text, "a javascript: link is not shown as text")
    # Sources with their domains, files with name, size and an open action via the host.
    sources = await frame.locator("#sources li").all_inner_texts()
    check(len(sources) == 2, f"sources {sources}")
    check("Barcelona weather" in sources[0] and "weather.example" in sources[0], sources[0])
    check("news.example" in sources[1], sources[1])
    files = await frame.locator("#files li").all_inner_texts()
    check(len(files) == 1 and "report.csv" in files[0] and "42 B" in files[0], f"files {files}")
    await frame.get_by_role("button", name="Open report.csv").click()
    await page.wait_for_function(
        "() => window.hostLog.some(m => m.method === 'ui/open-link' && m.params.url === 'https://files.example/report.csv')",
        timeout=TIMEOUT_MS,
    )
    # The view reported its size and the host grew the frame to it (from 200 px).
    box = await page.locator("#view").bounding_box()
    check(box is not None and box["height"] > 600, f"the frame was not sized to the view: {box}")
    totals = await frame.locator("#totals").inner_text()
    check("s of work" in totals, f"totals {totals!r}")
    check(await frame.locator("#dashboard a").count() == 1, "no Handinger link")
    await shoot(page, "completed")

    # A follow-up typed in the box: one create_task with the taskId, through the host.
    before = len(calls)
    # With the keyboard: the box is a labelled textbox, Ctrl+Enter sends (as the button does).
    box = frame.get_by_role("textbox", name="Follow-up on this task")
    await box.fill("And tomorrow?")
    check(await frame.get_by_role("button", name="Send follow-up").is_enabled(), "no send button")
    await box.press("Control+Enter")
    await frame.locator("#answer", has_text="(turn 2)").wait_for(timeout=TIMEOUT_MS)
    follow_ups = [(n, a) for n, a in calls[before:] if n != "get_task"]
    check(follow_ups == [("create_task", {"input": "And tomorrow?", "taskId": task_id})], f"follow-up calls {follow_ups}")
    check(await frame.locator("#input").inner_text() == "And tomorrow?", "the follow-up is not shown as asked")
    await shoot(page, "follow-up")

    # Archive, only once confirmed: one archive_task call through the host.
    await frame.get_by_role("button", name="Archive task…").click()
    await frame.get_by_role("button", name="Yes, archive this task").click()
    await frame.locator("#note", has_text="rchived").wait_for(timeout=TIMEOUT_MS)
    archives = [(n, a) for n, a in calls if n == "archive_task"]
    check(archives == [("archive_task", {"taskId": task_id})], f"archive calls {archives}")

    # Nothing more is sent by itself: the view, idle, calls nothing.
    settled = len(calls)
    await page.wait_for_timeout(1500)
    check(len(calls) == settled, f"the view called tools by itself: {calls[settled:]}")
    log = await page.evaluate("window.hostLog")
    pwned = [m for m in log if isinstance(m, dict) and "pwned" in m]
    check(not pwned, f"the answer's script ran: {pwned}")
    await page.close()
    return task_id


async def looked_up(browser: Any, client: Client, html: str, csp: dict[str, Any], task_id: str) -> None:
    """The view of a get_task lookup: the task record's latest turn, totals and dashboard."""
    page = await open_view(browser, client, html, csp, "get_task")
    arguments = {"taskId": task_id}
    await page.evaluate("args => window.sendToolInput(args)", arguments)
    await page.evaluate("r => window.sendToolResult(r)", wire(await client.call_tool("get_task", arguments)))
    await until_state(page, "completed")
    frame = page.frame_locator("#view")
    check(await frame.locator("#input").inner_text() == "And tomorrow?", "the latest turn's input is not shown")
    check("(turn 2)" in await frame.locator("#answer").inner_text(), "the latest answer is not shown")
    totals = await frame.locator("#totals").inner_text()
    check("6 credits" in totals and "2 turns" in totals, f"totals {totals!r}")
    link = frame.get_by_role("link", name="Open the task in the Handinger dashboard")
    check(await link.get_attribute("href") == f"https://v3.handinger.com/task/{task_id}", "no dashboard link")
    check(page.calls == [], f"a lookup's view called {page.calls}")  # type: ignore[attr-defined]
    await page.close()


async def ask_follow_up(browser: Any, client: Client, html: str, csp: dict[str, Any]) -> None:
    """The view of an ask_<name> call sends its follow-up with that same tool."""
    arguments = {"input": "Check this claim"}
    page = await open_view(browser, client, html, csp, "ask_checker")
    await page.evaluate("args => window.sendToolInput(args)", arguments)
    result = wire(await client.call_tool("ask_checker", arguments))
    task_id = (result.get("structuredContent") or {}).get("taskId")
    check(result.get("isError") is not True and task_id, f"ask_checker: {result}")
    await page.evaluate("r => window.sendToolResult(r)", result)
    await until_state(page, "completed")
    frame = page.frame_locator("#view")
    box = frame.get_by_role("textbox", name="Follow-up on this task")
    await box.fill("And the other one?")
    await frame.get_by_role("button", name="Send follow-up").click()
    await frame.locator("#answer", has_text="(turn 2)").wait_for(timeout=TIMEOUT_MS)
    calls = page.calls  # type: ignore[attr-defined]
    expected = [("ask_checker", {"input": "And the other one?", "taskId": task_id})]
    check(calls == expected, f"the ask view's calls {calls}")
    await page.close()


async def main() -> None:
    url = os.environ["MCP_URL"]
    extension = advertise(UI, {"mimeTypes": [MIME]})
    async with Client(url, mode="legacy", extensions=[extension], read_timeout_seconds=60) as client:
        html, csp = await listing(client)
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            try:
                await failed_turn(browser, client, html, csp)
                task_id = await live_task(browser, client, html, csp)
                await looked_up(browser, client, html, csp, task_id)
                await ask_follow_up(browser, client, html, csp)
            finally:
                await browser.close()
    print(f"app-view: ok {task_id}")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except AssertionError as failure:
        print(f"app-view: FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
