"""One address against everyone (docs/limits.md, docs/security.md): the floods of issue 21
against a binary, and what the other clients got.

    python3 benches/one_address.py target/debug/handinger-mcp 18941 [lockout|sessions|guesses]

- lockout: 127.0.0.2 opens connections at 60/s (then 250/s) and sends half a `GET /healthz`
  head on each, against `--max-connections 200 --probe-connections 4` (then the defaults);
  after 5 s, 127.0.0.3 sends 50 authorized `initialize` and 50 `/healthz`.
- sessions: 100 authorized `initialize` from each of 127.0.0.2-11, then 5 from 127.0.0.20.
- guesses: 1,500 wrong bearer tokens from 127.0.0.2.

Prints the statuses the other clients (or the guesser) got. Linux (127/8 is loopback).
"""
import socket, subprocess, time, sys, os, json, threading
from collections import Counter
BIN=sys.argv[1]; PORT=int(sys.argv[2])
TOKEN="measure-token-0123456789abcdef"
env=dict(HANDINGER_API_KEY="hdg_test", HANDINGER_BASE_URL="http://127.0.0.1:9", PATH=os.environ["PATH"], RUST_LOG="warn")
def start(extra):
    p=subprocess.Popen([BIN,"http","--listen",f"127.0.0.1:{PORT}","--auth-token",TOKEN]+extra,env=env,stderr=subprocess.DEVNULL)
    for _ in range(100):
        try: socket.create_connection(("127.0.0.1",PORT),timeout=1).close(); return p
        except OSError: time.sleep(0.1)
    raise SystemExit("server did not start")
def conn(src, timeout=2):
    s=socket.socket(); s.settimeout(timeout); s.bind((src,0)); s.connect(("127.0.0.1",PORT)); return s
INIT=json.dumps({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"m","version":"1"}}}).encode()
def req(src, method, path, body=b"", auth=None):
    try:
        s=conn(src)
        h=f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{PORT}\r\nconnection: close\r\naccept: application/json, text/event-stream\r\ncontent-type: application/json\r\n"
        if auth: h+=f"authorization: Bearer {auth}\r\n"
        h+=f"content-length: {len(body)}\r\n\r\n"
        s.sendall(h.encode()+body); d=s.recv(200); s.close()
        return int(d.split(b" ")[1]) if d else "closed"
    except (OSError, IndexError, ValueError) as e: return type(e).__name__

def flood(rate, seconds, stop, held):
    t0=time.time(); n=0
    while not stop.is_set() and time.time()-t0 < seconds:
        try:
            s=conn("127.0.0.2", timeout=0.5)
            s.sendall(f"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1:{PORT}\r\n".encode())
            held.append(s)
        except OSError: pass
        n+=1
        time.sleep(max(0, t0+n/rate-time.time()))

def lockout(extra, rate, label):
    p=start(extra); stop=threading.Event(); held=[]
    th=threading.Thread(target=flood,args=(rate,25,stop,held)); th.start()
    time.sleep(5)
    mcp=Counter(); health=Counter()
    for _ in range(50):
        mcp[req("127.0.0.3","POST","/mcp",INIT,TOKEN)]+=1
        health[req("127.0.0.3","GET","/healthz")]+=1
        time.sleep(0.1)
    stop.set(); th.join(); [s.close() for s in held]; p.kill(); p.wait()
    print(f"{label}: /mcp {dict(mcp)}  /healthz {dict(health)}")

def sessions(extra, label):
    p=start(extra)
    for last in range(2,12):
        for _ in range(100): req(f"127.0.0.{last}","POST","/mcp",INIT,TOKEN)
    print(f"{label}: newcomer initialize -> {dict(Counter(req('127.0.0.20','POST','/mcp',INIT,TOKEN) for _ in range(5)))}")
    p.kill(); p.wait()

def guesses(extra, label):
    p=start(extra)
    c=Counter(req("127.0.0.2","POST","/mcp",INIT,f"guess-{i}-0123456789abcdef") for i in range(1500))
    print(f"{label}: 1500 wrong tokens -> {dict(c)}")
    p.kill(); p.wait()

mode=sys.argv[3] if len(sys.argv)>3 else "all"
if mode in ("all","lockout"):
    lockout(["--max-connections","200","--probe-connections","4"], 60, "60/s vs --max-connections 200, 4 probe connections")
    lockout([], 250, "250/s vs the defaults")
if mode in ("all","sessions"): sessions([], "100 initialize from each of 127.0.0.2-11")
if mode in ("all","guesses"): guesses([], "token guessing")
