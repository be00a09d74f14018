"""Smoke checks of the benchmark peers, run by smoke.sh (which starts and
stops the servers): python3 smoke.py naive|seed|centrifugo PORT.

Each check talks to a peer already listening on 127.0.0.1:PORT, asserts the
exact frames the harness relies on, and exits non-zero with a line saying
what failed. Every wait is bounded. Needs Debian's python3-websockets (run
with /usr/bin/python3).
"""
import asyncio
import json
import sys
import time

import websockets

WAIT = 5.0  # seconds: bound of every receive
START = 15.0  # seconds: bound of waiting for the server to listen


class Failed(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Failed(what)


async def connect(url, **kw):
    """Connects, retrying while the server is still starting."""
    deadline = time.monotonic() + START
    while True:
        try:
            return await websockets.connect(url, open_timeout=WAIT, **kw)
        except (OSError, asyncio.TimeoutError):
            if time.monotonic() > deadline:
                raise Failed(f"nothing listening at {url} after {START}s")
            await asyncio.sleep(0.1)


async def recv(ws, what):
    try:
        return await asyncio.wait_for(ws.recv(), WAIT)
    except asyncio.TimeoutError:
        raise Failed(f"no frame within {WAIT}s: waiting for {what}")
    except websockets.ConnectionClosed as e:
        raise Failed(f"connection closed ({e.code} {e.reason!r}) waiting for {what}")


async def recv_json(ws, what):
    return json.loads(await recv(ws, what))


# --- json-rpc peers (naive, seed) ---

async def rpc(ws, rid, method, params, pushes):
    """Calls method and returns its reply; pushes that come first go to pushes."""
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))
    while True:
        m = await recv_json(ws, f"the reply to {method}")
        if "id" in m:
            expect(m["id"] == rid, f"{method}: reply id {m['id']!r}, want {rid}")
            return m
        pushes.append(m)


async def push(ws, pushes, what):
    return pushes.pop(0) if pushes else await recv_json(ws, what)


async def check_jsonrpc(port, broadcast_result, unknown_code):
    base = f"ws://127.0.0.1:{port}/ws/"
    a = await connect(base + "100001", subprotocols=["json-rpc"])
    b = await connect(base + "100002", subprotocols=["json-rpc"])
    expect(a.subprotocol == "json-rpc", f"subprotocol {a.subprotocol!r}, want 'json-rpc'")
    pa, pb = [], []

    before = int(time.time())
    r = await rpc(a, 1, "chat.ping", {}, pa)
    res = r.get("result", {})
    expect(res.get("status") == "ok" and before <= res.get("timestamp", 0) <= time.time(),
           f"chat.ping: {r}, want status ok and a timestamp")

    r = await rpc(a, 2, "chat.broadcast", {"message": "smoke"}, pa)
    expect(r.get("result") == broadcast_result, f"chat.broadcast: {r}, want result {broadcast_result}")
    want = {"jsonrpc": "2.0", "method": "chat.message", "params": {"message": "smoke"}}
    for name, ws, q in (("sender", a, pa), ("other", b, pb)):
        got = await push(ws, q, f"the chat.message push on the {name}")
        expect(got == want, f"push on the {name}: {got}, want {want}")

    r = await rpc(a, 3, "chat.nosuch", {}, pa)
    expect(r.get("error", {}).get("code") == unknown_code, f"unknown method: {r}, want code {unknown_code}")

    pong = await a.ping(b"smoke")
    await asyncio.wait_for(pong, WAIT)  # raises on timeout: no pong
    await a.close()
    await b.close()
    expect(a.close_code == 1000, f"close handshake: code {a.close_code}, want 1000 echoed")


async def refused(url, what, **kw):
    try:
        ws = await connect(url, **kw)
    except websockets.InvalidStatusCode as e:
        return e.status_code
    await ws.close()
    raise Failed(f"{what}: accepted, want a refusal")


async def check_naive(port):
    await check_jsonrpc(port, {"delivered": 2}, -32601)
    code = await refused(f"ws://127.0.0.1:{port}/ws/1", "msgpack offered", subprotocols=["msgpack"])
    expect(code == 400, f"msgpack offered: HTTP {code}, want 400")


async def check_seed(port):
    # The tutorial answers unknown methods with -32000 "Method not found: ...".
    await check_jsonrpc(port, {"status": "ok", "message": "Message broadcasted"}, -32000)
    code = await refused(f"ws://127.0.0.1:{port}/ws/abc", "non-integer client id", subprotocols=["json-rpc"])
    expect(code == 403, f"non-integer client id: HTTP {code}, want 403")


# --- centrifugo (its own JSON protocol) ---

async def lines(ws, what):
    """One frame's messages: Centrifugo joins several with newlines."""
    return [json.loads(s) for s in (await recv(ws, what)).split("\n") if s]


async def command(ws, cmd, inbox):
    """Sends cmd and returns its reply; other messages go to inbox."""
    await ws.send(json.dumps(cmd))
    while True:
        for m in await lines(ws, f"the reply to {cmd}"):
            if m.get("id") == cmd["id"]:
                return m
            inbox.append(m)


async def next_message(ws, inbox, what):
    while not inbox:
        inbox.extend(await lines(ws, what))
    return inbox.pop(0)


async def check_centrifugo(port, ping_interval):
    url = f"ws://127.0.0.1:{port}/connection/websocket"
    a, b = await connect(url), await connect(url)
    ia, ib = [], []
    for ws, q in ((a, ia), (b, ib)):
        r = await command(ws, {"id": 1, "connect": {}}, q)
        c = r.get("connect", {})
        expect("client" in c and c.get("pong") is True and c.get("ping") == ping_interval,
               f"connect: {r}, want client, ping {ping_interval} and pong true")
        r = await command(ws, {"id": 2, "subscribe": {"channel": "bench"}}, q)
        expect(r == {"id": 2, "subscribe": {}}, f"subscribe: {r}, want {{'id': 2, 'subscribe': {{}}}}")

    # App-level keepalive: the server sends {} every ping seconds and closes
    # with 3012 "no pong" unless {} comes back within pong_timeout. Answer
    # two pings: the connection must outlive the first pong timeout.
    for _ in range(2):
        for ws, q in ((a, ia), (b, ib)):
            m = await next_message(ws, q, "the server's {} ping")
            expect(m == {}, f"waiting for the ping: {m}, want {{}}")
            await ws.send("{}")

    data = {"message": "smoke", "ts": 1}
    r = await command(a, {"id": 3, "publish": {"channel": "bench", "data": data}}, ia)
    expect(r == {"id": 3, "publish": {}}, f"publish: {r}, want {{'id': 3, 'publish': {{}}}}")
    for name, ws, q in (("publisher", a, ia), ("other", b, ib)):
        m = await next_message(ws, q, f"the push on the {name}")
        pub = m.get("push", {}).get("pub", {})
        expect(m.get("push", {}).get("channel") == "bench" and pub.get("data") == data,
               f"push on the {name}: {m}, want channel bench and data {data}")
    await a.close()
    await b.close()
    expect(a.close_code == 1000, f"close handshake: code {a.close_code}, want 1000 echoed")


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: smoke.py naive|seed|centrifugo PORT [PING_INTERVAL_S]")
    peer, port = sys.argv[1], int(sys.argv[2])
    checks = {
        "naive": lambda: check_naive(port),
        "seed": lambda: check_seed(port),
        "centrifugo": lambda: check_centrifugo(port, int(sys.argv[3]) if len(sys.argv) > 3 else 25),
    }
    if peer not in checks:
        sys.exit(f"smoke.py: unknown peer {peer!r}")
    try:
        asyncio.run(asyncio.wait_for(checks[peer](), 60))
    except Failed as e:
        sys.exit(f"FAIL {peer}: {e}")
    except Exception as e:  # anything unexpected is a failure too, said plainly
        sys.exit(f"FAIL {peer}: {type(e).__name__}: {e}")
    print(f"ok   {peer}")


if __name__ == "__main__":
    main()
