"""The resident cost of an idle connection and of an open session (docs/limits.md).

    python3 benches/limits_memory.py target/bench-release/release/handinger-mcp [CONNECTIONS] [SESSIONS]

Starts `handinger-mcp http` on 127.0.0.1:18787 (bounds raised to let the test in), reads
VmRSS at rest, opens CONNECTIONS sockets that send nothing, then make them send half a
request head, then (in a second server) opens SESSIONS Streamable HTTP sessions, and prints
the growth per connection and per session. Linux only (/proc).
"""
import json, os, socket, subprocess, sys, time, http.client
BIN = sys.argv[1]
def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
def start(args):
    p = subprocess.Popen([BIN, "http", "--listen", "127.0.0.1:18787", "--rate-limit", "0",
                          "--address-rate-limit", "0", *args],
                         env={"HANDINGER_API_KEY": "k", "HANDINGER_BASE_URL": "http://127.0.0.1:9",
                              "PATH": os.environ["PATH"]},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", 18787)).close(); break
        except OSError:
            time.sleep(0.05)
    time.sleep(0.5)
    return p
N = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
# All from one address: its own bounds (per address, half-open) are raised with the cap.
p = start(["--max-connections", str(N + 100), "--max-connections-per-client", str(N + 100),
           "--max-pending-connections-per-client", str(N + 100), "--header-read-timeout", "600"])
base = rss(p.pid)
socks = [socket.create_connection(("127.0.0.1", 18787)) for _ in range(N)]
time.sleep(1.0)
idle = rss(p.pid)
for s in socks:
    s.send(b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\n")
time.sleep(1.0)
partial = rss(p.pid)
for s in socks: s.close()
p.terminate(); p.wait()
print(f"idle RSS {base/2**20:.1f} MiB; per idle connection {(idle-base)/N/1024:.1f} KiB; "
      f"per connection with a partial head {(partial-base)/N/1024:.1f} KiB")
S = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
# Sessions that are opened and never used are closed after --session-first-request-timeout:
# keep them for the measurement.
p = start(["--max-sessions", str(S + 10), "--max-sessions-per-client", str(S + 10),
           "--session-first-request-timeout", "1800"])
base = rss(p.pid)
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "m", "version": "1"}}})
for i in range(S):
    c = http.client.HTTPConnection("127.0.0.1", 18787)
    c.request("POST", "/mcp", body, {"content-type": "application/json",
              "accept": "application/json, text/event-stream"})
    r = c.getresponse(); r.read(); c.close()
    assert r.status == 200, r.status
time.sleep(1.0)
after = rss(p.pid)
p.terminate(); p.wait()
print(f"per open session {(after-base)/S/1024:.1f} KiB ({S} sessions, idle RSS {base/2**20:.1f} MiB)")
