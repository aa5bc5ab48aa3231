"""Drives an installed handinger-mcp over stdio the way an MCP client does.

Used by the packaging checks (.ci/check_npm.sh, .ci/check_mcpb.sh) on what a user would
run: `npx handinger-mcp` from the npm tarballs, or the binary inside an unpacked MCPB
bundle. Against a fake Handinger API served from this script (one POST /api/tasks
endpoint, on loopback), it checks:

- `initialize` answers with the server's name and the tools capability;
- `tools/list` lists create_task and get_task;
- one `create_task` comes back with the fake's answer and a tsk_ taskId, after exactly one
  POST that carried the key in its Authorization header (--calls skips it and the fake);
- closing stdin ends the process with exit code 0 (the client quitting);
- with --signals: SIGTERM to the process (once the server answered a request, so it is
  past start-up) ends it with exit code 0, leaving no process behind;
- with --exit-code: a bad flag comes back as the binary's own exit code 2 and message.

Usage: mcp_stdio_smoke.py [--initialize-only] [--signals] [--exit-code] -- COMMAND [ARGS...]
The command runs with HANDINGER_API_KEY and HANDINGER_BASE_URL set (and the rest of this
environment). Exits 1 with what went wrong.
"""

import http.server
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

KEY = "hdg_live_smoke_0000000000"
TIMEOUT = 60  # seconds for any one answer; only bounds a hang (npx may start slowly)
ANSWER = "The smoke test worked."


class Failure(Exception):
    pass


class FakeHandinger(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        FakeHandinger.received.append(
            {"path": self.path, "authorization": self.headers.get("Authorization"), "body": body}
        )
        if self.path != "/api/tasks":
            return self.reply(404, {"error": "not found"})
        answer = {
            "id": "wrk_smoke-1", "object": "worker", "status": "completed", "running": False,
            "output_text": ANSWER, "sources": [], "files": [], "usage": {"durationMs": 5},
            "url": "https://handinger.example/worker/wrk_smoke-1",
        }
        self.reply(200, answer)

    def do_GET(self):  # noqa: N802
        self.reply(404, {"error": "this fake knows only POST /api/tasks"})

    def reply(self, status: int, value) -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # quiet: the check prints its own lines
        pass


class Server:
    """The command under test with a JSON-RPC conversation over its stdin and stdout."""

    def __init__(self, command: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
            start_new_session=True,  # its own process group, to look for leftovers
        )
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.next_id = 1

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, message: dict) -> None:
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def request(self, method: str, params: dict) -> dict:
        request_id = self.next_id
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise Failure(f"no answer to {method} within {TIMEOUT} s") from None
            if line is None:
                raise Failure(f"stdout closed before the answer to {method} (exit {self.proc.wait()})")
            message = json.loads(line)
            if message.get("id") == request_id and "method" not in message:
                if "error" in message:
                    raise Failure(f"{method} failed: {message['error']}")
                return message["result"]

    def wait(self, what: str) -> int:
        try:
            return self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Failure(f"the process did not exit after {what}") from None

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def leftovers(self) -> list[str]:
        """Processes still in the command's process group (a binary the launcher orphaned)."""
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.getpgid(int(pid)) == self.proc.pid:
                    found.append(open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode())
            except (ProcessLookupError, PermissionError, FileNotFoundError):
                continue
        return found


def initialize(server: Server) -> dict:
    result = server.request("initialize", {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "handinger-mcp-smoke", "version": "1"},
    })
    server.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    name = result.get("serverInfo", {}).get("name")
    if name != "handinger-mcp" or "tools" not in result.get("capabilities", {}):
        raise Failure(f"unexpected initialize result: {result}")
    print(f"  initialize: {name} {result['serverInfo'].get('version')}, protocol {result.get('protocolVersion')}")
    return result


def conversation(command: list[str], env: dict[str, str], initialize_only: bool) -> None:
    server = Server(command, env)
    try:
        initialize(server)
        if not initialize_only:
            tools = [t["name"] for t in server.request("tools/list", {})["tools"]]
            if not {"create_task", "get_task"} <= set(tools):
                raise Failure(f"tools/list lists {tools}")
            print(f"  tools/list: {', '.join(tools)}")
            result = server.request("tools/call", {"name": "create_task", "arguments": {"input": "Say it worked."}})
            text = " ".join(c.get("text", "") for c in result.get("content", []))
            task_id = (result.get("structuredContent") or {}).get("taskId", "")
            if result.get("isError") or ANSWER not in text or not task_id.startswith("tsk_"):
                raise Failure(f"create_task returned {json.dumps(result)[:600]}")
            posts = [r for r in FakeHandinger.received if r["path"] == "/api/tasks"]
            if len(posts) != 1 or posts[0]["authorization"] != f"Bearer {KEY}":
                raise Failure(f"the fake got {len(posts)} POST /api/tasks (expected one, with the key)")
            print(f"  create_task: {task_id}, one POST /api/tasks with the key")
        server.proc.stdin.close()
        code = server.wait("stdin closed")
        if code != 0:
            raise Failure(f"exit code {code} after stdin closed (expected 0)")
        print("  stdin closed: exit 0")
    finally:
        server.kill()


def signals(command: list[str], env: dict[str, str]) -> None:
    server = Server(command, env)
    try:
        initialize(server)
        server.request("ping", {})  # the server loop (and its signal handler) is running
        os.kill(server.proc.pid, signal.SIGTERM)
        code = server.wait("SIGTERM")
        if code != 0:
            raise Failure(f"exit code {code} after SIGTERM (expected 0: the server's own graceful stop)")
        left = server.leftovers()
        if left:
            raise Failure(f"processes left after SIGTERM: {left}")
        print("  SIGTERM: passed on, exit 0, nothing left running")
    finally:
        server.kill()


def exit_code(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command + ["--max-wait", "soon"], env=env, capture_output=True, timeout=TIMEOUT)
    if done.returncode != 2 or b"max-wait" not in done.stderr:
        raise Failure(f"a bad flag gave exit {done.returncode} and {done.stderr[-300:]!r} (expected clap's exit 2)")
    print("  bad flag: the binary's exit code 2 and message came through")


def main() -> int:
    args = sys.argv[1:]
    if "--" not in args:
        print(__doc__, file=sys.stderr)
        return 2
    split = args.index("--")
    options, command = args[:split], args[split + 1 :]
    fake = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeHandinger)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    env = dict(os.environ, HANDINGER_API_KEY=KEY, HANDINGER_BASE_URL=f"http://127.0.0.1:{fake.server_port}",
               RUST_LOG="warn")
    print(f"smoke: {' '.join(command)}")
    try:
        conversation(command, env, "--initialize-only" in options)
        if "--signals" in options:
            signals(command, env)
        if "--exit-code" in options:
            exit_code(command, env)
    except Failure as e:
        print(f"smoke: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        fake.shutdown()
    print("smoke: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
