"""Peak memory of the release binary under the hostile shapes of docs/limits.md
("What a shape costs"): a client's own JSON of tiny values, over HTTP and stdio; the same
with the shipped Kubernetes Deployment's flags; the most costly bodies the bounds still
accept; an upstream structured output of millions of zeros; held calls with long request
ids or progress tokens.

    python3 benches/hostile_shapes.py target/release/handinger-mcp [SCENARIO ...]

Each scenario starts a fresh server (and, where it needs one, a fake Handinger API in this
process), reads VmRSS once the server is idle, does its thing, then reads VmHWM (the
process's peak resident size) from /proc/PID/status: it prints the growth over the idle
size and the peak itself. Linux only. Scenarios: http-zeros, http-zeros-x4, k8s-zeros-x8,
http-accepted, http-accepted-x4, k8s-accepted-x8, stdio-zeros, structured,
structured-accepted, k8s-structured, k8s-text, k8s-text-x48, k8s-text-x48-progress,
k8s-text-x48-2026, text,
http-text, held-ids, held-progress.
"""
import http.client, http.server, json, os, socket, subprocess, sys, threading, time

BIN = sys.argv[1]
PORT = 18797
MIB = 1 << 20

K8S_FLAGS = ["--stateless", "--max-connections", "1024", "--probe-connections", "16",
             "--max-concurrent-calls", "48", "--max-response-bytes", "1048576",
             "--max-body-bytes", "1048576", "--max-body-buffer-bytes", "8388608",
             "--max-turns-in-flight", "32", "--max-input-bytes", "262144",
             "--max-retained-bytes", "33554432"]


def status(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024


# --- a fake Handinger API: answers every task POST after `hold` seconds -----------------

class Fake(http.server.BaseHTTPRequestHandler):
    structured = "null"
    text = "ok"
    hold = 0.0

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        time.sleep(Fake.hold)
        body = ('{"id":"wrk_1","status":"completed","output_text":"' + Fake.text + '",'
                '"sources":[],"files":[],"structured_output":' + Fake.structured + '}').encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.send_response(404)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def fake_api():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fake)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def env(base):
    return {"HANDINGER_API_KEY": "hdg_test_key", "HANDINGER_BASE_URL": base,
            "PATH": os.environ["PATH"]}


# --- HTTP mode --------------------------------------------------------------------------

def start_http(args, base="http://127.0.0.1:9"):
    p = subprocess.Popen([BIN, "http", "--listen", f"127.0.0.1:{PORT}", "--rate-limit", "0",
                          "--address-rate-limit", "0", *args],
                         env=env(base), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", PORT)).close()
            break
        except OSError:
            time.sleep(0.05)
    time.sleep(0.5)
    return p


def post(body, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=120)
    h = {"content-type": "application/json", "accept": "application/json, text/event-stream",
         "mcp-protocol-version": "2025-11-25"}
    h.update(headers or {})
    c.request("POST", "/mcp", body, h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def zeros_ping(size):
    """A ping whose params are `{"x":[0,0,…]}`, `size` bytes in all."""
    head, tail = '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":[', "0]}}"
    count = (size - len(head) - len(tail)) // 2
    return (head + "0," * count + tail).encode()


def strings_ping(size, values):
    """A ping of `values` strings (the most values the default bounds accept), `size`
    bytes in all: the costliest body of that size that is not refused."""
    head, tail = '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":[', "]}}"
    n = values - 11  # the envelope's own values
    each = max(1, (size - len(head) - len(tail)) // n - 3)
    return (head + ",".join(['"' + "x" * each + '"'] * n) + tail).encode()


def concurrently(bodies, headers=None):
    results = [None] * len(bodies)
    def send(i):
        results[i] = post(bodies[i], headers)[0]
    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def http_case(args, bodies):
    p = start_http(args)
    base = status(p.pid, "VmRSS")
    statuses = concurrently(bodies)
    time.sleep(0.3)
    peak = status(p.pid, "VmHWM")
    p.terminate()
    p.wait()
    return base, peak, statuses


# --- stdio mode -------------------------------------------------------------------------

def start_stdio(args, base="http://127.0.0.1:9"):
    p = subprocess.Popen([BIN, "stdio", *args], env=env(base), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    send(p, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "m", "version": "1"}}})
    answer(p, 1)
    send(p, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    time.sleep(0.3)
    return p


def send(p, message):
    line = message if isinstance(message, bytes) else json.dumps(message).encode()
    p.stdin.write(line + b"\n")
    p.stdin.flush()


def answer(p, id):
    while True:
        line = p.stdout.readline()
        if not line:
            raise SystemExit("the server closed stdout")
        message = json.loads(line)
        if message.get("id") == id or ("error" in message and "id" not in message):
            return message


def stdio_case(args, line, id, base="http://127.0.0.1:9"):
    p = start_stdio(args, base)
    rss = status(p.pid, "VmRSS")
    send(p, line)
    got = answer(p, id)
    peak = status(p.pid, "VmHWM")
    p.stdin.close()
    p.wait()
    outcome = got.get("error", {}).get("code") or "answered"
    return rss, peak, outcome


# --- the scenarios ----------------------------------------------------------------------

def report(name, base, peak, outcome):
    print(f"{name}: +{(peak - base) / MIB:.1f} MiB over idle {base / MIB:.1f} MiB "
          f"(peak {peak / MIB:.1f} MiB); {outcome}", flush=True)


def held_ids(field):
    """Eight held create_task calls (stateless), each with a 3.5 MB request id or progress
    token: growth per held call."""
    Fake.hold = 6.0
    base_url = fake_api()
    p = start_http(["--stateless"], base_url)
    rss = status(p.pid, "VmRSS")
    long = "i" * 3_500_000
    statuses = []
    def call(n):
        message = {"jsonrpc": "2.0", "id": n, "method": "tools/call",
                   "params": {"name": "create_task", "arguments": {"input": f"x{n}"}}}
        if field == "id":
            message["id"] = f"{long}{n}"
        else:
            message["params"]["_meta"] = {"progressToken": f"{long}{n}"}
        statuses.append(post(json.dumps(message).encode())[0])
    threads = [threading.Thread(target=call, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    time.sleep(3.0)  # all eight held (or refused), none answered yet
    held = status(p.pid, "VmRSS")
    for t in threads:
        t.join()
    p.terminate()
    p.wait()
    Fake.hold = 0.0
    print(f"held-{field}: +{(held - rss) / 8 / MIB:.2f} MiB per held call with a 3.5 MB "
          f"{field} (8 held; RSS {rss / MIB:.1f} -> {held / MIB:.1f} MiB); "
          f"statuses {sorted(set(statuses))}", flush=True)


SCENARIOS = {
    "http-zeros": lambda: report("http-zeros (one 4 MiB ping of zeros)",
                                 *http_case([], [zeros_ping(4 * MIB)])),
    "http-zeros-x4": lambda: report("http-zeros-x4 (four at once)",
                                    *http_case(["--max-body-buffer-bytes", str(16 * MIB)],
                                               [zeros_ping(4 * MIB)] * 4)),
    "k8s-zeros-x8": lambda: report("k8s-zeros-x8 (Deployment flags, eight 1 MiB at once)",
                                   *http_case(K8S_FLAGS, [zeros_ping(MIB)] * 8)),
    "http-accepted": lambda: report(
        "http-accepted (one 4 MiB ping of 10,000 strings)",
        *http_case([], [strings_ping(4 * MIB - 64, 10_000)])),
    "http-accepted-x4": lambda: report(
        "http-accepted-x4 (four at once)",
        *http_case([], [strings_ping(4 * MIB - 64, 10_000)] * 4)),
    "k8s-accepted-x8": lambda: report(
        "k8s-accepted-x8 (Deployment flags, eight 1 MiB pings of 10,000 strings)",
        *http_case(K8S_FLAGS, [strings_ping(MIB - 64, 10_000)] * 8)),
    "stdio-zeros": lambda: report("stdio-zeros (one 15 MB line of zeros)",
                                  *stdio_case([], zeros_ping(15_000_000), 1)),
    "structured": lambda: structured(),
    "held-ids": lambda: (held_ids("id"), held_ids("progressToken")),
}


def structured():
    """stdio create_task whose answer's structured output is 7.5 million zeros (15 MB)."""
    Fake.structured = "[" + "0," * 7_499_999 + "0]"
    base_url = fake_api()
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "create_task", "arguments": {"input": "zeros"}}}
    report("structured (a 15 MB structured output of zeros, stdio)",
           *stdio_case(["--max-response-bytes", "20000000"], call, 2, base_url))
    Fake.structured = "null"


def structured_accepted(kind):
    """The costliest structured outputs still passed as structured data (100,000 values,
    the default --max-structured-values): 99,999 zeros, or 15 MB of 99,999 strings."""
    if kind == "zeros":
        Fake.structured = "[" + "0," * 99_998 + "0]"
    else:
        Fake.structured = "[" + ",".join(['"' + "x" * 148 + '"'] * 99_999) + "]"
    base_url = fake_api()
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "create_task", "arguments": {"input": "zeros"}}}
    report(f"structured-accepted-{kind} ({len(Fake.structured)} bytes, 100,000 values, "
           "stdio)", *stdio_case(["--max-response-bytes", "20000000"], call, 2, base_url))
    Fake.structured = "null"


def k8s_structured(kind, extra, calls=32, progress=False, revision=None):
    """The Deployment's flags, 32 calls at once (its --max-turns-in-flight), each answered
    with a 1,000,000-byte structured output (zeros, or 10,000 strings) or text; `calls`
    and `extra` flags for more at once. With `progress`, each call asks for progress and
    its worker runs past one tick (--progress-interval 1), so the answer ends an event
    stream."""
    if kind == "zeros":
        Fake.structured = "[" + "0," * 499_999 + "0]"
    elif kind == "strings":
        Fake.structured = "[" + ",".join(['"' + "x" * 97 + '"'] * 9_999) + "]"
    else:
        Fake.text = "x" * 1_000_000
    Fake.hold = 1.5 if progress else 1.0  # so that the answers arrive together
    base_url = fake_api()
    flags = list(K8S_FLAGS)
    if progress:
        extra = [*extra, "--progress-interval", "1"]
    for flag, value in zip(extra[::2], extra[1::2]):  # an extra flag overrides the Deployment's
        if flag in flags:
            flags[flags.index(flag) + 1] = value
        else:
            flags += [flag, value]
    p = start_http(flags, base_url)
    rss = status(p.pid, "VmRSS")
    def body(n):
        params = {"name": "create_task", "arguments": {"input": f"x{n}"}}
        if progress:
            params["_meta"] = {"progressToken": n}
        if revision:
            params["_meta"] = {"io.modelcontextprotocol/protocolVersion": revision,
                               "io.modelcontextprotocol/clientCapabilities": {},
                               "io.modelcontextprotocol/clientInfo": {"name": "bench",
                                                                      "version": "1"}}
        return json.dumps({"jsonrpc": "2.0", "id": n, "method": "tools/call",
                           "params": params}).encode()
    statuses = concurrently([body(n) for n in range(calls)],
                            {"mcp-protocol-version": revision, "mcp-method": "tools/call",
                             "mcp-name": "create_task"} if revision else None)
    time.sleep(0.3)
    peak = status(p.pid, "VmHWM")
    p.terminate()
    p.wait()
    Fake.hold = 0.0
    Fake.structured = "null"
    Fake.text = "ok"
    name = f"k8s-{kind}-x{calls}{'-progress' if progress else ''}{'-' + revision if revision else ''}"
    report(f"{name} {' '.join(extra)}", rss, peak, sorted(set(statuses)))


def text_answer():
    """stdio create_task answered with a 15 MB text (no structured output): the constant
    `a` of an ordinary large answer."""
    Fake.text = "x" * 15_000_000
    base_url = fake_api()
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "create_task", "arguments": {"input": "text"}}}
    report("text (a 15 MB text answer, stdio)",
           *stdio_case(["--max-response-bytes", "20000000"], call, 2, base_url))
    Fake.text = "ok"


def http_text():
    """`http --stateless` create_task answered with a 15 MB text: the same over HTTP."""
    Fake.text = "x" * 15_000_000
    base_url = fake_api()
    p = start_http(["--stateless", "--max-response-bytes", "20000000"], base_url)
    rss = status(p.pid, "VmRSS")
    code, data = post(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                  "params": {"name": "create_task",
                                             "arguments": {"input": "text"}}}).encode())
    peak = status(p.pid, "VmHWM")
    p.terminate()
    p.wait()
    Fake.text = "ok"
    report("http-text (a 15 MB text answer, http --stateless)", rss, peak,
           f"{code}, {len(data)} bytes")


def held_progress(calls=500):
    """`http --stateless`: `calls` create_task calls with a progress token held at once
    (their workers take 8 s): what one held call costs."""
    Fake.hold = 8.0
    base_url = fake_api()
    p = start_http(["--stateless", "--max-concurrent-calls", "2000", "--max-turns-in-flight",
                    "2000", "--max-connections", "4000", "--progress-interval", "600"], base_url)
    rss = status(p.pid, "VmRSS")
    def body(n):
        return json.dumps({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {
            "name": "create_task", "arguments": {"input": f"x{n}"},
            "_meta": {"progressToken": n}}}).encode()
    threads = [threading.Thread(target=post, args=(body(n),), daemon=True)
               for n in range(calls)]
    for t in threads:
        t.start()
    time.sleep(5)
    held = status(p.pid, "VmRSS")
    for t in threads:
        t.join()
    p.terminate()
    p.wait()
    Fake.hold = 0.0
    print(f"held-progress: {calls} calls held: +{(held - rss) / 2**20:.1f} MiB, "
          f"{(held - rss) / calls / 1024:.1f} KiB a call")


SCENARIOS["held-progress"] = held_progress
SCENARIOS["text"] = text_answer
SCENARIOS["http-text"] = http_text
# Every call the Deployment admits (--max-concurrent-calls 48) answered with 1 MB of text
# at the same moment: its turn bound raised to 48 so that none is refused.
SCENARIOS["k8s-text-x48"] = lambda: k8s_structured("text", ["--max-turns-in-flight", "48"],
                                                   calls=48)
# The same with a progress token on every call: answers at the end of event streams.
SCENARIOS["k8s-text-x48-progress"] = lambda: k8s_structured(
    "text", ["--max-turns-in-flight", "48"], calls=48, progress=True)
# The same of protocol revision 2026-07-28, whose calls rmcp answers itself.
SCENARIOS["k8s-text-x48-2026"] = lambda: k8s_structured(
    "text", ["--max-turns-in-flight", "48"], calls=48, revision="2026-07-28")
SCENARIOS["k8s-structured"] = lambda: (k8s_structured("zeros", []),
                                       k8s_structured("strings", []))
SCENARIOS["k8s-text"] = lambda: k8s_structured("text", [])
SCENARIOS["structured-accepted"] = lambda: (structured_accepted("zeros"),
                                            structured_accepted("strings"))

for name in sys.argv[2:] or SCENARIOS:
    SCENARIOS[name]()
