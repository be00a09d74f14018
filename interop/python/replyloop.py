#!/usr/bin/python3
"""Reply-loop check with a real MessagePack-RPC library: Debian's pynvim.

pynvim.msgpack_rpc (python3-pynvim) answers any message it cannot handle,
a response whose msgid it is not waiting for included, with an error
response of its own, [1, 0, "<traceback>", None], whose error is a string.
A server that answered such a response with a nil-msgid error would be
answered again, forever (subgate once did, at 10,000-20,000 frames/s).
protocols/msgpack.md says a server never answers a response; this script
checks it against the real server:

  1. it sends a frame subgate cannot read (0xc1): subgate answers with one
     nil-msgid -32700, which pynvim answers with its string error;
  2. it sends, through pynvim's stream, more malformed responses;
  3. it makes a normal call, chat.ping, through pynvim's AsyncSession.

subgate answers the messages of a connection in order, so if it answered
any response, that answer would come before the ping's result. The check:
the library receives exactly two frames, the -32700 and the result.

pynvim's sessions run on its own event loops (stdio, tcp, unix socket or a
child process); WebSocketLoop below is the small adapter that gives its
MsgpackStream the same interface over a WebSocket (Debian's
python3-websockets), one msgpack-rpc message per binary frame.

    /usr/bin/python3 replyloop.py ws://127.0.0.1:PORT

Prints one line per check and, last, "N passed, M failed"; exits 0 only
when nothing failed. Every wait has a timeout and the exchange is bounded
in frames.
"""

import asyncio
import os
import sys
import traceback

import msgpack
import websockets
from pynvim.msgpack_rpc import AsyncSession, MsgpackStream

TIMEOUT = 5.0
MAX_FRAMES = 50  # a loop would go past this at once

passed = 0
failed = 0


def report(name, err=None):
    global passed, failed
    if err is None:
        passed += 1
        print("ok   " + name, flush=True)
        return
    failed += 1
    print("FAIL %s: %s" % (name, "".join(traceback.format_exception(err)).rstrip()), flush=True)


class WebSocketLoop:
    """The part of pynvim's BaseEventLoop that MsgpackStream uses (send,
    run, stop, close, threadsafe_call), over one WebSocket connection.

    run() drives a private asyncio loop until stop() is called, or until
    stop_after frames have been received in all; every frame received is
    kept in `received` and every frame sent in `sent`.
    """

    def __init__(self, url):
        self.aloop = asyncio.new_event_loop()

        async def connect():  # websockets binds to the loop it is created on
            return await websockets.connect(url, subprotocols=["msgpack"], open_timeout=TIMEOUT)
        self.ws = self.aloop.run_until_complete(asyncio.wait_for(connect(), TIMEOUT))
        if self.ws.subprotocol != "msgpack":
            raise AssertionError("server selected %r" % self.ws.subprotocol)
        self.out = []
        self.sent = []
        self.received = []
        self.stop_after = None
        self._stopped = False

    def send(self, data):
        self.out.append(data)  # written, in order, by the running pump

    def threadsafe_call(self, fn):
        fn()

    def stop(self):
        self._stopped = True

    def close(self):
        self.aloop.run_until_complete(asyncio.wait_for(self.ws.close(), TIMEOUT))
        self.aloop.close()

    def run(self, data_cb):
        self._stopped = False
        self.aloop.run_until_complete(self._pump(data_cb))

    async def _flush(self):
        while self.out:
            data = self.out.pop(0)
            await asyncio.wait_for(self.ws.send(data), TIMEOUT)
            self.sent.append(data)

    async def _pump(self, data_cb):
        while not self._stopped and len(self.received) != self.stop_after:
            await self._flush()
            frame = await asyncio.wait_for(self.ws.recv(), TIMEOUT)
            if isinstance(frame, str):
                raise AssertionError("text frame on msgpack: %r" % frame)
            self.received.append(frame)
            if len(self.received) > MAX_FRAMES:
                raise AssertionError("reply loop: more than %d frames received: %r ..."
                                     % (MAX_FRAMES, [msgpack.unpackb(f) for f in self.received[:6]]))
            data_cb(frame)
        await self._flush()


def no_request(method, args, response):
    raise AssertionError("the server sent a request: %r %r" % (method, args))


def no_notification(method, args):
    raise AssertionError("unexpected push %r %r" % (method, args))


def main(url):
    loop = WebSocketLoop(url + "/ws/py-replyloop-%d" % os.getpid())
    stream = MsgpackStream(loop)
    session = AsyncSession(stream)
    try:
        # 1. A frame subgate cannot read: one nil-msgid -32700, which
        # pynvim fails to match (KeyError: None) and answers.
        loop.send(b"\xc1")
        loop.stop_after = 1
        session.run(no_request, no_notification)
        err = msgpack.unpackb(loop.received[0])
        assert err[0] == 1 and err[1] is None and err[2]["code"] == -32700 and err[3] is None, err
        assert len(loop.sent) == 2, "pynvim sent %d frames, want the 0xc1 and its answer" % len(loop.sent)
        answer = msgpack.unpackb(loop.sent[1])
        assert answer[:2] == [1, 0] and isinstance(answer[2], str), answer
        report("pynvim answers subgate's nil-msgid -32700 with a string-error response %r" % (answer[2].splitlines()[-1],))

        # 2. More malformed responses, written by pynvim's stream.
        for bad in ([1, 0, "a string error, as Neovim and pynvim send", None],
                    [1, 7, [0, "an array error"], None],
                    [1, None, "nil msgid", None],
                    [1, 3],
                    [1, 4, None, None, "extra"]):
            stream.send(bad)

        # 3. A normal call: the next frame must be its result.
        got = []

        def on_ping(error, result):
            got.append((error, result))
            session.stop()

        loop.stop_after = None
        session.request("chat.ping", [], on_ping)
        session.run(no_request, no_notification)
        assert len(got) == 1 and got[0][0] is None and got[0][1]["status"] == "ok", got
        assert len(loop.received) == 2, [msgpack.unpackb(f) for f in loop.received]
        assert len(loop.sent) == 8, "pynvim sent %d frames, want 8" % len(loop.sent)
        report("after %d frames from pynvim (6 of them responses) the library received exactly 2: "
               "the -32700 and chat.ping's result %r" % (len(loop.sent), got[0][1]["status"]))
    finally:
        loop.close()


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].startswith("ws://"):
        print("usage: replyloop.py ws://HOST:PORT", file=sys.stderr)
        sys.exit(2)
    try:
        main(sys.argv[1].rstrip("/"))
    except Exception as e:  # reported, then counted
        report("reply-loop scenario", e)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(0 if failed == 0 and passed > 0 else 1)
