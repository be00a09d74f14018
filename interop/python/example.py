#!/usr/bin/python3
"""A complete subgate client in Python with Debian's python3-websockets and
python3-msgpack, speaking msgpack (MessagePack-RPC in binary frames).
Run a gateway, then:

    /usr/bin/python3 interop/python/example.py ws://127.0.0.1:8080
"""
import asyncio
import itertools
import sys

import msgpack
import websockets


async def main(base):
    url = base + "/ws/python-example"
    async with websockets.connect(url, subprotocols=["msgpack"]) as ws:
        ids = itertools.count(1)

        async def call(method, **params):
            msgid = next(ids)
            # Named params travel as one map inside the params array.
            await ws.send(msgpack.packb([0, msgid, method, [params]]))
            while True:
                msg = msgpack.unpackb(await ws.recv())
                if msg[0] == 2:  # [2, method, [payload]]: a push
                    print("push", msg[1], msg[2][0])
                elif msg[0] == 1 and msg[1] == msgid:  # [1, msgid, error, result]
                    if msg[2] is not None:
                        raise RuntimeError("%(code)d %(message)s" % msg[2])
                    return msg[3]

        print("ping", await call("chat.ping"))
        print("join", await call("chat.join", room="lobby"))
        print("send", await call("chat.send", room="lobby", message="hello from python"))
        try:
            await call("chat.send", room="elsewhere", message="hi")
        except RuntimeError as e:
            print("error", e)


asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8080"))
