#!/usr/bin/python3
"""Third-party interop client for subgate, written from the specs only.

Uses Debian's python3-websockets (asyncio client) and python3-msgpack, and
nothing from the Go code: README.md, protocols/json-rpc.md and the golden
wire examples in testdata/golden are the documentation it follows.

    /usr/bin/python3 interop.py ws://127.0.0.1:PORT

Prints one line per check and, last, "N passed, M failed". Exits 0 only when
nothing failed. Every wait has a timeout, and a watchdog ends the run if
something still hangs.
"""

import asyncio
import itertools
import json
import os
import random
import re
import sys
import time
import traceback

import msgpack
import websockets
import websockets.exceptions

TIMEOUT = 5.0
WATCHDOG = 50.0

RUN = "%x%x" % (os.getpid(), random.getrandbits(32))


def cid(name):
    """A client id unique to this run: [A-Za-z0-9._-], at most 64 bytes."""
    return "py-%s-%s" % (name, RUN)


room = cid

# ------------------------------------------------------------------ results

passed = 0
failed = 0


class Skip(Exception):
    """A step failed: the rest of its scenario is skipped."""


def report_ok(name):
    global passed
    passed += 1
    print("ok   " + name, flush=True)


def report_fail(name, err):
    global failed
    failed += 1
    detail = "".join(traceback.format_exception(type(err), err, err.__traceback__)).rstrip()
    print("FAIL %s: %s" % (name, detail), flush=True)


async def check(name, coro):
    try:
        v = await coro
    except Exception as err:  # noqa: BLE001 - every failure is reported
        report_fail(name, err)
        raise Skip() from err
    report_ok(name)
    return v


async def scenario(name, fn):
    clients = []
    try:
        await fn(clients)
    except Skip:
        print("     (%s: remaining steps skipped)" % name, flush=True)
    except Exception as err:  # noqa: BLE001
        report_fail(name + ": unexpected", err)
    finally:
        for c in clients:
            await c.abort()


def eq(got, want, what):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def check_true(cond, what):
    if not cond:
        raise AssertionError("assertion failed: " + what)


class RPCError(Exception):
    def __init__(self, err):
        self.code = err.get("code")
        self.message = err.get("message")
        self.data = err.get("data")
        super().__init__("rpc error %s %s (%s)" % (self.code, self.message, self.data))


# ------------------------------------------------------------------ clients


class Client:
    """One WebSocket connection speaking json-rpc or msgpack.

    Replies are matched to calls by id; pushes (server notifications) are
    buffered and taken with wait_push.
    """

    def __init__(self, name, proto):
        self.id = cid(name)
        self.proto = proto
        self.ids = itertools.count(1)
        self.pending = {}  # id -> future
        self.pushes = []
        self.push_event = asyncio.Event()
        self.errors = []
        self.ws = None
        self.reader = None

    async def connect(self, offer=None):
        url = "%s/ws/%s" % (BASE, self.id)
        self.ws = await asyncio.wait_for(
            websockets.connect(
                url,
                subprotocols=offer or [self.proto],
                open_timeout=TIMEOUT,
                close_timeout=TIMEOUT,
                ping_interval=None,
            ),
            TIMEOUT,
        )
        self.reader = asyncio.ensure_future(self._read())
        return self

    async def _read(self):
        try:
            async for frame in self.ws:
                try:
                    msg = self.decode(frame)
                except Exception as err:  # noqa: BLE001
                    self.errors.append(err)
                    print("     %s: undecodable frame %r: %s" % (self.id, frame, err), flush=True)
                    continue
                if msg[0] == "reply":
                    _, mid, result, error = msg
                    fut = self.pending.pop(mid, None)
                    if fut is None or fut.done():
                        continue  # a reply for no call in flight is ignored
                    if error is not None:
                        fut.set_exception(RPCError(error))
                    else:
                        fut.set_result(result)
                else:
                    self.pushes.append((msg[1], msg[2]))
                    self.push_event.set()
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection closed"))
            self.pending.clear()
            self.push_event.set()

    def decode(self, frame):
        if self.proto == "json-rpc":
            if not isinstance(frame, str):
                raise ValueError("json-rpc: server sent a binary frame")
            m = json.loads(frame)
            if not isinstance(m, dict) or m.get("jsonrpc") != "2.0":
                raise ValueError("json-rpc: not a 2.0 message: %r" % (m,))
            if "method" in m:
                return ("push", m["method"], m.get("params"))
            return ("reply", m.get("id"), m.get("result"), m.get("error"))
        if self.proto == "msgpack":
            if not isinstance(frame, bytes):
                raise ValueError("msgpack: server sent a text frame")
            m = msgpack.unpackb(frame, raw=False)
            if isinstance(m, list) and len(m) == 4 and m[0] == 1:
                return ("reply", m[1], m[3], m[2])
            if isinstance(m, list) and len(m) == 3 and m[0] == 2:
                params = m[2]
                # Push params are an array holding one map (named params).
                if not isinstance(params, list) or len(params) != 1:
                    raise ValueError("msgpack: push params %r" % (params,))
                return ("push", m[1], params[0])
            raise ValueError("msgpack: unexpected message %r" % (m,))
        raise ValueError("unknown proto " + self.proto)

    def encode(self, mid, method, params):
        if self.proto == "json-rpc":
            return json.dumps({"jsonrpc": "2.0", "method": method, "params": params or {}, "id": mid})
        # msgpack: [0, msgid, method, params]; named params travel as [ {map} ].
        return msgpack.packb([0, mid, method, [] if params is None else [params]], use_bin_type=True)

    async def call(self, method, params=None, raw=None, mid=None):
        if mid is None:
            mid = next(self.ids)
        fut = asyncio.get_running_loop().create_future()
        self.pending[mid] = fut
        try:
            await self.ws.send(raw if raw is not None else self.encode(mid, method, params))
            return await asyncio.wait_for(fut, TIMEOUT)
        except asyncio.TimeoutError:
            raise TimeoutError("timeout after %ss waiting for %s %s reply" % (TIMEOUT, self.id, method)) from None
        finally:
            self.pending.pop(mid, None)

    async def call_error(self, method, params=None, **kw):
        try:
            res = await self.call(method, params, **kw)
        except RPCError as err:
            return err
        raise AssertionError("%s: want an error, got result %r" % (method, res))

    async def wait_push(self, pred, what):
        deadline = time.monotonic() + TIMEOUT
        while True:
            for i, (method, params) in enumerate(self.pushes):
                if pred(method, params):
                    del self.pushes[i]
                    return params
            left = deadline - time.monotonic()
            if left <= 0 or (self.reader is not None and self.reader.done()):
                seen = "; ".join("%s %r" % p for p in self.pushes)
                raise TimeoutError("%s: no %s within %ss; pushes buffered: [%s]" % (self.id, what, TIMEOUT, seen))
            self.push_event.clear()
            try:
                await asyncio.wait_for(self.push_event.wait(), left)
            except asyncio.TimeoutError:
                pass

    def wait_message(self, pred, what):
        return self.wait_push(lambda m, p: m == "chat.message" and pred(p), what)

    async def close(self):
        """Closing handshake started by the client; returns the server's code."""
        await asyncio.wait_for(self.ws.close(1000, "bye"), TIMEOUT + 1)
        if self.reader is not None:
            await asyncio.wait_for(self.reader, TIMEOUT)
        return self.ws.close_code

    async def abort(self):
        if self.ws is not None and not self.ws.closed:
            self.ws.transport.abort()
        if self.reader is not None and not self.reader.done():
            self.reader.cancel()
            try:
                await self.reader
            except BaseException:  # noqa: BLE001 - cancelled on purpose
                pass


async def connect(clients, name, proto):
    c = Client(name, proto)
    clients.append(c)
    await c.connect()
    eq(c.ws.subprotocol, proto, "negotiated Sec-WebSocket-Protocol")
    return c


def without_ts(params):
    check_true(isinstance(params.get("ts"), int), "ts is an integer: %r" % (params,))
    check_true(abs(params["ts"] - time.time() * 1000) < 300000, "ts %r is Unix ms, near now" % params["ts"])
    return {k: v for k, v in params.items() if k != "ts"}


# ---------------------------------------------------------------- scenarios


async def chat_scenario(proto, tag):
    async def run(clients):
        def P(s):
            return "%s: %s" % (proto, s)

        a = await check(P("connect a"), connect(clients, tag + "-a", proto))
        b = await check(P("connect b"), connect(clients, tag + "-b", proto))
        lobby = room(tag + "-room")

        async def ping():
            r = await a.call("chat.ping", {})
            eq(r["status"], "ok", "status")
            check_true(isinstance(r["timestamp"], int), "timestamp is an integer")
            check_true(abs(r["timestamp"] - time.time()) < 300, "timestamp %r is Unix seconds, near now" % r["timestamp"])

        await check(P("chat.ping"), ping())

        async def join_first():
            eq(await a.call("chat.join", {"room": lobby}), {"room": lobby, "members": [a.id], "offset": 0}, "join result")

        await check(P("chat.join (first member)"), join_first())

        async def join_second():
            r = await b.call("chat.join", {"room": lobby})
            eq(r, {"room": lobby, "members": sorted([a.id, b.id]), "offset": 0}, "join result")
            p = await a.wait_push(lambda m, p: m == "chat.presence" and p.get("client_id") == b.id, "chat.presence join")
            eq(p, {"room": lobby, "client_id": b.id, "event": "join"}, "presence params")

        await check(P("chat.join (second member) + chat.presence push to the first"), join_second())

        offs = []

        async def send():
            text = "hello from %s" % a.id
            r = await a.call("chat.send", {"room": lobby, "message": text})
            eq(r["room"], lobby, "send result room")
            check_true(isinstance(r["offset"], int) and r["offset"] >= 1, "offset %r >= 1" % r["offset"])
            offs.append(r["offset"])
            for c in (a, b):
                p = await c.wait_message(lambda p: p.get("message") == text, "chat.message")
                eq(without_ts(p), {"room": lobby, "from": a.id, "message": text, "offset": r["offset"]}, "push at " + c.id)

        await check(P("chat.send → reply offset + chat.message on both"), send())

        async def send2():
            text = "second from %s" % b.id
            r = await b.call("chat.send", {"room": lobby, "message": text})
            eq(r, {"room": lobby, "offset": offs[0] + 1}, "send result")
            offs.append(r["offset"])
            p = await a.wait_message(lambda p: p.get("message") == text, "chat.message")
            eq(p["from"], b.id, "from")

        await check(P("second chat.send gets the next offset"), send2())

        async def direct():
            text = "psst %s" % b.id
            eq(await a.call("chat.direct", {"to": b.id, "message": text}), {"delivered": 1}, "direct result")
            p = await b.wait_message(lambda p: p.get("message") == text, "direct chat.message")
            eq(without_ts(p), {"from": a.id, "to": b.id, "message": text}, "direct push (no room, no offset)")

        await check(P("chat.direct to the other id"), direct())

        async def direct_unknown():
            e = await a.call_error("chat.direct", {"to": cid(tag + "-nobody"), "message": "x"})
            eq(e.code, -32002, "code")

        await check(P("chat.direct to an unknown id → -32002"), direct_unknown())

        async def members():
            eq(await b.call("chat.members", {"room": lobby}), {"room": lobby, "members": sorted([a.id, b.id])}, "members result")

        await check(P("chat.members"), members())

        async def history():
            r = await a.call("chat.history", {"room": lobby})
            eq(r["room"], lobby, "room")
            eq([(m["offset"], m["from"]) for m in r["messages"]], [(offs[0], a.id), (offs[1], b.id)], "history")
            r = await a.call("chat.history", {"room": lobby, "since": offs[0]})
            eq([(m["offset"], m["from"], m["message"]) for m in r["messages"]], [(offs[1], b.id, "second from %s" % b.id)], "history since")
            r = await a.call("chat.history", {"room": lobby, "since": 0, "limit": 1})
            eq([m["offset"] for m in r["messages"]], [offs[0]], "history limit 1 (oldest first)")

        await check(P("chat.history (all, since, limit)"), history())

        async def broadcast():
            text = "broadcast %s" % a.id
            r = await a.call("chat.broadcast", {"message": text})
            eq(r["status"], "ok", "status")
            check_true(r["delivered"] >= 2, "delivered %r >= 2" % r["delivered"])
            for c in (a, b):
                p = await c.wait_message(lambda p: p.get("message") == text, "broadcast chat.message")
                eq(without_ts(p), {"from": a.id, "message": text}, "broadcast push at " + c.id)

        await check(P("chat.broadcast → chat.message on both (no room)"), broadcast())

        async def unknown():
            e = await a.call_error("chat.nope", {})
            eq((e.code, e.message, e.data), (-32601, "Method not found", "chat.nope"), "error")

        await check(P("unknown method → -32601"), unknown())

        async def bad_type():
            eq((await a.call_error("chat.join", {"room": 42})).code, -32602, "code")

        await check(P("bad params (wrong type) → -32602"), bad_type())

        async def bad_key():
            eq((await a.call_error("chat.send", {"room": lobby, "text": "x"})).code, -32602, "code")

        await check(P("bad params (unknown key) → -32602"), bad_key())

        async def not_member():
            eq((await a.call_error("chat.send", {"room": room(tag + "-other"), "message": "x"})).code, -32001, "code")

        await check(P("chat.send to a room not joined → -32001"), not_member())

        async def leave():
            eq(await b.call("chat.leave", {"room": lobby}), {"room": lobby}, "leave result")
            p = await a.wait_push(lambda m, p: m == "chat.presence" and p.get("event") == "leave", "presence leave")
            eq(p, {"room": lobby, "client_id": b.id, "event": "leave"}, "presence params")

        await check(P("chat.leave → presence leave to the other"), leave())

        async def close():
            for c in (a, b):
                eq(await c.close(), 1000, c.id + " close code")

        await check(P("close cleanly (1000)"), close())

    await scenario(proto + " chat", run)


async def cross_scenario():
    async def run(clients):
        async def conn():
            return (await connect(clients, "x-json", "json-rpc"), await connect(clients, "x-msgpack", "msgpack"))

        js, mp = await check("cross: connect json-rpc and msgpack members", conn())
        lobby = room("x-room")

        async def join():
            await js.call("chat.join", {"room": lobby})
            r = await mp.call("chat.join", {"room": lobby})
            eq(r["members"], sorted([js.id, mp.id]), "members")
            p = await js.wait_push(lambda m, p: m == "chat.presence" and p.get("client_id") == mp.id, "presence")
            eq(p, {"room": lobby, "client_id": mp.id, "event": "join"}, "presence at the json-rpc member")

        await check("cross: both join one room; presence crosses encodings", join())

        for sender, receiver, label in ((js, mp, "json-rpc → msgpack"), (mp, js, "msgpack → json-rpc")):

            async def deliver(sender=sender, receiver=receiver, label=label):
                text = 'from %s: <ünïcødé & "quotes"> ✓' % sender.proto
                r = await sender.call("chat.send", {"room": lobby, "message": text})
                p = await receiver.wait_message(lambda p: p.get("message") == text, "message " + label)
                eq(without_ts(p), {"room": lobby, "from": sender.id, "message": text, "offset": r["offset"]}, "push")

            await check("cross: chat.send %s" % label, deliver())

        async def direct():
            eq(await mp.call("chat.direct", {"to": js.id, "message": "dm"}), {"delivered": 1}, "direct result")
            p = await js.wait_message(lambda p: p.get("to") == js.id, "direct")
            eq(without_ts(p), {"from": mp.id, "to": js.id, "message": "dm"}, "direct push")

        await check("cross: msgpack chat.direct reaches json-rpc", direct())

        async def history():
            r = await js.call("chat.history", {"room": lobby})
            eq([m["from"] for m in r["messages"]], [js.id, mp.id], "history senders")

        await check("cross: json-rpc sees msgpack's message in chat.history", history())

        async def close():
            for c in (js, mp):
                eq(await c.close(), 1000, c.proto + " close code")

        await check("cross: close cleanly", close())

    await scenario("cross-encoding", run)


async def msgpack_extras():
    async def run(clients):
        c = await check("msgpack: connect", connect(clients, "mp-x", "msgpack"))

        async def positional():
            r = await c.call("chat.join", raw=msgpack.packb([0, 500, "chat.join", [room("mp-x")]]), mid=500)
            eq(r["room"], room("mp-x"), "room")

        await check("msgpack: positional params [room] for chat.join", positional())

        async def ids():
            for mid in (2**40, -1):
                r = await c.call("chat.ping", raw=msgpack.packb([0, mid, "chat.ping", []]), mid=mid)
                eq(r["status"], "ok", "ping with msgid %d" % mid)

        await check("msgpack: large and negative integer msgids echoed", ids())

        async def invalid(frame, what):
            # The reply to a frame whose msgid cannot be read has msgid nil.
            fut = asyncio.get_running_loop().create_future()
            c.pending[None] = fut
            try:
                await c.ws.send(frame)
                await asyncio.wait_for(fut, TIMEOUT)
            except RPCError as err:
                eq(err.code, -32600, "code for " + what)
                return
            except asyncio.TimeoutError:
                raise TimeoutError("no null-msgid error for %s within %ss" % (what, TIMEOUT)) from None
            finally:
                c.pending.pop(None, None)
            raise AssertionError("%s: want an error" % what)

        await check("msgpack: string msgid → -32600 with nil msgid", invalid(msgpack.packb([0, "req-1", "chat.ping", []]), "a string msgid"))
        await check("msgpack: params as a bare map → -32600", invalid(msgpack.packb([0, 99, "chat.join", {"room": "x"}]), "bare-map params"))

        async def close():
            eq(await c.close(), 1000, "close code")

        await check("msgpack: close cleanly", close())

    await scenario("msgpack extras", run)


def status_of(err):
    """The HTTP status of a refused handshake, across websockets versions."""
    # websockets <= 13 (legacy client): InvalidStatusCode.status_code;
    # websockets >= 14: InvalidStatus.response.status_code.
    if hasattr(err, "status_code"):
        return err.status_code
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


async def negotiation_scenario():
    async def run(clients):
        async def refused():
            refusals = tuple(
                getattr(websockets.exceptions, n)
                for n in ("InvalidStatusCode", "InvalidStatus")
                if hasattr(websockets.exceptions, n)
            )
            try:
                ws = await asyncio.wait_for(
                    websockets.connect("%s/ws/%s" % (BASE, cid("neg-bad")), subprotocols=["xml-rpc"], open_timeout=TIMEOUT),
                    TIMEOUT,
                )
            except refusals as err:
                eq(status_of(err), 400, "HTTP status of the refusal (%s)" % type(err).__name__)
                return
            await ws.close()
            raise AssertionError("handshake succeeded with subprotocol %r" % ws.subprotocol)

        await check("negotiation: offer [xml-rpc] → HTTP 400", refused())

        async def order():
            c = Client("neg-order", "msgpack")
            clients.append(c)
            await c.connect(offer=["xml-rpc", "msgpack", "json-rpc"])
            eq(c.ws.subprotocol, "msgpack", "negotiated protocol")
            eq((await c.call("chat.ping"))["status"], "ok", "ping over msgpack")
            eq(await c.close(), 1000, "close code")

        await check("negotiation: offer [xml-rpc, msgpack, json-rpc] → msgpack (client's order)", order())

    await scenario("negotiation", run)


async def main():
    print(
        "subgate interop (python %s, websockets %s, msgpack %s) against %s, run %s"
        % (sys.version.split()[0], websockets.__version__, ".".join(map(str, msgpack.version)), BASE, RUN),
        flush=True,
    )
    await chat_scenario("json-rpc", "json")
    await chat_scenario("msgpack", "mp")
    await cross_scenario()
    await msgpack_extras()
    await negotiation_scenario()


if __name__ == "__main__":
    if len(sys.argv) != 2 or not re.match(r"^wss?://[^/]+/?$", sys.argv[1]):
        print("usage: /usr/bin/python3 interop.py ws://HOST:PORT", file=sys.stderr)
        sys.exit(2)
    BASE = sys.argv[1].rstrip("/")
    try:
        asyncio.run(asyncio.wait_for(main(), WATCHDOG))
    except asyncio.TimeoutError:
        report_fail("watchdog", TimeoutError("interop.py still running after %ss" % WATCHDOG))
    except Exception as err:  # noqa: BLE001
        report_fail("fatal", err)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(0 if failed == 0 and passed > 0 else 1)
