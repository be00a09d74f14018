#!/usr/bin/python3
"""A complete subgate client in Python with Debian's python3-websockets,
speaking json-rpc (JSON-RPC 2.0 in text frames). Run a gateway, then:

    /usr/bin/python3 interop/python/example_jsonrpc.py ws://127.0.0.1:8080
"""
import asyncio
import itertools
import json
import sys

import websockets


async def main(base):
    url = base + "/ws/python-jsonrpc"
    async with websockets.connect(url, subprotocols=["json-rpc"]) as ws:
        ids = itertools.count(1)

        async def call(method, **params):
            msgid = next(ids)
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": msgid, "method": method, "params": params}))
            while True:
                msg = json.loads(await ws.recv())
                if "id" not in msg:  # a push: {"jsonrpc", "method", "params"}
                    print("push", msg["method"], msg["params"])
                elif msg["id"] == msgid:
                    if "error" in msg:
                        raise RuntimeError("%(code)d %(message)s" % msg["error"])
                    return msg["result"]

        print("ping", await call("chat.ping"))
        print("join", await call("chat.join", room="lobby"))
        print("send", await call("chat.send", room="lobby", message="hello from python"))
        try:
            await call("chat.send", room="elsewhere", message="hi")
        except RuntimeError as e:
            print("error", e)


asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8080"))
