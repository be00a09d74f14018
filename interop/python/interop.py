#!/usr/bin/python3
"""Third-party interop client for subgate, written from the specs only.

Uses Debian's python3-websockets (asyncio client) and python3-msgpack, and
nothing from the Go code: README.md, protocols/json-rpc.md,
protocols/binary-raw.md and the golden wire examples in testdata/golden are
the documentation it follows. The binary-raw codec is binraw.py, next to this
file, written from protocols/binary-raw.md alone.

    /usr/bin/python3 interop.py ws://127.0.0.1:PORT

Besides the checks against the server, it checks binraw.py offline against
every hex example in protocols/binary-raw.md and every binary-raw line of
testdata/golden/*.golden (read from this checkout: ../../).

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

sys.dont_write_bytecode = True  # no __pycache__ in the checkout
import binraw  # noqa: E402 - after dont_write_bytecode

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = os.path.join(HERE, "..", "..", "protocols", "binary-raw.md")
GOLDEN = os.path.join(HERE, "..", "..", "testdata", "golden")

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
    """One WebSocket connection speaking json-rpc, msgpack or binary-raw.

    Replies are matched to calls by id; pushes (server notifications) are
    buffered and taken with wait_push. binary-raw clients also keep every
    frame they receive (raw bytes and decoded binraw.Msg) for wait_frame, and
    the batch frames apart in batches.
    """

    def __init__(self, name, proto):
        self.id = cid(name)
        self.proto = proto
        self.ids = itertools.count(1)
        self.pending = {}  # id -> future
        self.methods = {}  # id -> method called (binary-raw results do not repeat it)
        self.pushes = []
        self.frames = []  # binary-raw: (raw frame, binraw.Msg), every frame received
        self.batches = []  # binary-raw: the elements (binraw.Msg) of each batch frame received
        self.unknown_pushes = []  # binary-raw pushes whose id is not in the table (§4: ignored)
        self.event = asyncio.Event()
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
                    msgs = self.decode(frame)
                except Exception as err:  # noqa: BLE001
                    self.errors.append(err)
                    print("     %s: undecodable frame %r: %s" % (self.id, frame, err), flush=True)
                    continue
                for msg in msgs:
                    if msg[0] == "reply":
                        _, mid, result, error = msg
                        fut = self.pending.pop(mid, None)
                        if fut is None or fut.done():
                            continue  # a reply for no call in flight is ignored
                        if error is not None:
                            fut.set_exception(RPCError(error))
                        elif isinstance(result, Exception):
                            self.errors.append(result)
                            fut.set_exception(result)
                        else:
                            fut.set_result(result)
                    else:
                        self.pushes.append((msg[1], msg[2]))
                self.event.set()
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection closed"))
            self.pending.clear()
            self.event.set()

    def decode(self, frame):
        """The replies and pushes in one frame: ("reply", id, result, error) or ("push", method, params)."""
        if self.proto == "json-rpc":
            if not isinstance(frame, str):
                raise ValueError("json-rpc: server sent a binary frame")
            m = json.loads(frame)
            if not isinstance(m, dict) or m.get("jsonrpc") != "2.0":
                raise ValueError("json-rpc: not a 2.0 message: %r" % (m,))
            if "method" in m:
                return [("push", m["method"], m.get("params"))]
            return [("reply", m.get("id"), m.get("result"), m.get("error"))]
        if self.proto == "msgpack":
            if not isinstance(frame, bytes):
                raise ValueError("msgpack: server sent a text frame")
            m = msgpack.unpackb(frame, raw=False)
            if isinstance(m, list) and len(m) == 4 and m[0] == 1:
                return [("reply", m[1], m[3], m[2])]
            if isinstance(m, list) and len(m) == 3 and m[0] == 2:
                params = m[2]
                # Push params are an array holding one map (named params).
                if not isinstance(params, list) or len(params) != 1:
                    raise ValueError("msgpack: push params %r" % (params,))
                return [("push", m[1], params[0])]
            raise ValueError("msgpack: unexpected message %r" % (m,))
        if self.proto == "binary-raw":
            if not isinstance(frame, bytes):
                raise ValueError("binary-raw: server sent a text frame")
            m = binraw.decode(frame)
            self.frames.append((frame, m))
            elements = [m]
            if m.kind == "batch":
                elements = m.elements
                self.batches.append(elements)
            out = []
            for e in elements:
                if e.kind == "result":
                    method = self.methods.get(e.id)
                    # Without a call in flight the payload cannot be read (§1): kept raw.
                    result = e.payload
                    if method is not None:
                        try:
                            result = binraw.decode_result(method, e.payload)
                        except binraw.DecodeError as err:
                            result = err  # fails that call (and the close check), not the whole frame
                    out.append(("reply", e.id, result, None))
                elif e.kind == "error":
                    out.append(("reply", e.id, None, {"code": e.code, "message": e.message, "data": e.data}))
                elif e.kind == "notification":
                    push = binraw.decode_push(e.method, e.payload)
                    if push is None:
                        self.unknown_pushes.append(e)
                    else:
                        out.append(("push",) + push)
                else:
                    raise ValueError("binary-raw: server sent a %s (§1: version 1 has none)" % e.kind)
            return out
        raise ValueError("unknown proto " + self.proto)

    def encode(self, mid, method, params, payload=None):
        if self.proto == "json-rpc":
            return json.dumps({"jsonrpc": "2.0", "method": method, "params": params or {}, "id": mid})
        if self.proto == "binary-raw":
            # payload: raw params bytes, for sending what the layout does not allow.
            if payload is None:
                payload = binraw.encode_params(method, params) if method in binraw.BY_NAME else b""
            return binraw.encode_request(mid, method, payload)
        # msgpack: [0, msgid, method, params]; named params travel as [ {map} ].
        return msgpack.packb([0, mid, method, [] if params is None else [params]], use_bin_type=True)

    def expect(self, mid, method=None):
        """Registers a call in flight: the future its reply resolves."""
        fut = asyncio.get_running_loop().create_future()
        self.pending[mid] = fut
        self.methods[mid] = method
        return fut

    async def reply(self, mid, fut, what):
        try:
            return await asyncio.wait_for(fut, TIMEOUT)
        except asyncio.TimeoutError:
            raise TimeoutError("timeout after %ss waiting for %s %s reply" % (TIMEOUT, self.id, what)) from None
        finally:
            self.pending.pop(mid, None)
            self.methods.pop(mid, None)

    async def call(self, method, params=None, raw=None, mid=None, payload=None):
        if mid is None:
            mid = next(self.ids)
        fut = self.expect(mid, method)
        try:
            await self.ws.send(raw if raw is not None else self.encode(mid, method, params, payload))
        except BaseException:
            self.pending.pop(mid, None)
            self.methods.pop(mid, None)
            raise
        return await self.reply(mid, fut, method)

    async def call_error(self, method, params=None, **kw):
        try:
            res = await self.call(method, params, **kw)
        except RPCError as err:
            return err
        raise AssertionError("%s: want an error, got result %r" % (method, res))

    async def _wait(self, items, pred, what):
        deadline = time.monotonic() + TIMEOUT
        while True:
            for i, item in enumerate(items):
                if pred(*item):
                    del items[i]
                    return item
            left = deadline - time.monotonic()
            if left <= 0 or (self.reader is not None and self.reader.done()):
                seen = "; ".join(" ".join(map(repr, item)) for item in items)
                raise TimeoutError("%s: no %s within %ss; buffered: [%s]" % (self.id, what, TIMEOUT, seen))
            self.event.clear()
            try:
                await asyncio.wait_for(self.event.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def wait_push(self, pred, what):
        return (await self._wait(self.pushes, pred, what))[1]

    def wait_message(self, pred, what):
        return self.wait_push(lambda m, p: m == "chat.message" and pred(p), what)

    def wait_frame(self, pred, what):
        """binary-raw: the first frame received (raw, msg) with pred(raw, msg), taken from the buffer."""
        return self._wait(self.frames, pred, what)

    async def close(self):
        """Closing handshake started by the client; returns the server's code.
        Fails if the server sent a frame this client could not decode."""
        await asyncio.wait_for(self.ws.close(1000, "bye"), TIMEOUT + 1)
        if self.reader is not None:
            await asyncio.wait_for(self.reader, TIMEOUT)
        if self.errors:
            raise AssertionError("%s received %d undecodable frame(s): %r" % (self.id, len(self.errors), self.errors))
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


EPOCH_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def epoch_of(v, what):
    """Checks v's epoch is 1-32 characters of [A-Za-z0-9_-] and returns it."""
    check_true(isinstance(v.get("epoch"), str) and EPOCH_RE.match(v["epoch"]), "%s: epoch %r is 1-32 of [A-Za-z0-9_-]" % (what, v.get("epoch")))
    return v["epoch"]


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

        epochs = []

        async def join_first():
            r = await a.call("chat.join", {"room": lobby})
            epochs.append(epoch_of(r, "join result"))
            eq(r, {"room": lobby, "members": [a.id], "offset": 0, "epoch": epochs[0]}, "join result")

        await check(P("chat.join (first member)"), join_first())

        async def join_second():
            r = await b.call("chat.join", {"room": lobby})
            eq(r, {"room": lobby, "members": sorted([a.id, b.id]), "offset": 0, "epoch": epochs[0]}, "join result")
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
                eq(without_ts(p), {"room": lobby, "from": a.id, "message": text, "offset": r["offset"], "epoch": epochs[0]}, "push at " + c.id)

        await check(P("chat.send → reply offset + chat.message on both"), send())

        async def send2():
            text = "second from %s" % b.id
            r = await b.call("chat.send", {"room": lobby, "message": text})
            eq(r, {"room": lobby, "offset": offs[0] + 1, "epoch": epochs[0]}, "send result")
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
            eq((r["epoch"], r["recovered"]), (epochs[0], offs[0] == 1), "history epoch, recovered (since 0: only if offset 1 is kept)")
            r = await a.call("chat.history", {"room": lobby, "since": offs[0], "epoch": epochs[0]})
            eq([(m["offset"], m["from"], m["message"]) for m in r["messages"]], [(offs[1], b.id, "second from %s" % b.id)], "history since")
            eq((r["epoch"], r["recovered"]), (epochs[0], True), "history since, in the epoch: recovered")
            r = await a.call("chat.history", {"room": lobby, "since": 0, "limit": 1})
            eq([m["offset"] for m in r["messages"]], [offs[0]], "history limit 1 (oldest first)")
            r = await a.call("chat.history", {"room": lobby, "since": offs[1], "epoch": "stale-" + epochs[0][:20]})
            eq(([m["offset"] for m in r["messages"]], r["epoch"], r["recovered"]), (offs, epochs[0], False), "history with a stale epoch: all, not recovered")
            e = await a.call_error("chat.history", {"room": lobby, "epoch": "x" * 33})
            eq(e.code, -32602, "history with a 33-byte epoch")

        await check(P("chat.history (all, since, limit, epoch, recovered)"), history())

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

        # binary-raw has no types or keys on the wire (§7): its counterparts
        # are a payload that ends inside a field and one with bytes left over.
        async def bad_type():
            if proto == "binary-raw":
                # room: 42 written as the varint 42: a string length with no bytes after it.
                e = await a.call_error("chat.join", payload=bytes([42]))
            else:
                e = await a.call_error("chat.join", {"room": 42})
            eq(e.code, -32602, "code")

        await check(P("bad params (truncated payload) → -32602" if proto == "binary-raw" else "bad params (wrong type) → -32602"), bad_type())

        async def bad_key():
            if proto == "binary-raw":
                payload = binraw.encode_params("chat.send", {"room": lobby, "message": "x"}) + binraw.string_bytes("x")
                e = await a.call_error("chat.send", payload=payload)
            else:
                e = await a.call_error("chat.send", {"room": lobby, "text": "x"})
            eq(e.code, -32602, "code")

        await check(P("bad params (bytes after the last field) → -32602" if proto == "binary-raw" else "bad params (unknown key) → -32602"), bad_key())

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
            return tuple([await connect(clients, "x-" + tag, proto) for tag, proto in (("json", "json-rpc"), ("msgpack", "msgpack"), ("binraw", "binary-raw"))])

        js, mp, br = await check("cross: connect json-rpc, msgpack and binary-raw members", conn())
        everyone = (js, mp, br)
        lobby = room("x-room")

        def presence(c, who, event):
            return c.wait_push(lambda m, p: m == "chat.presence" and p.get("client_id") == who.id and p.get("event") == event, "presence %s %s" % (event, who.proto))

        async def join():
            await js.call("chat.join", {"room": lobby})
            r = await br.call("chat.join", {"room": lobby})
            eq(r["members"], sorted([js.id, br.id]), "members in binary-raw's join result")
            eq(await presence(js, br, "join"), {"room": lobby, "client_id": br.id, "event": "join"}, "binary-raw's join at the json-rpc member")
            r = await mp.call("chat.join", {"room": lobby})
            eq(r["members"], sorted(c.id for c in everyone), "members")
            for c in (js, br):
                eq(await presence(c, mp, "join"), {"room": lobby, "client_id": mp.id, "event": "join"}, "msgpack's join at the %s member" % c.proto)

        await check("cross: all three join one room; presence crosses encodings", join())

        sent = []
        for sender in everyone:

            async def deliver(sender=sender):
                text = 'from %s: <ünïcødé & "quotes"> ✓ 😀 \x00 nul' % sender.proto
                r = await sender.call("chat.send", {"room": lobby, "message": text})
                sent.append(sender.id)
                for receiver in everyone:
                    p = await receiver.wait_message(lambda p: p.get("message") == text, "message from " + sender.proto)
                    eq(without_ts(p), {"room": lobby, "from": sender.id, "message": text, "offset": r["offset"], "epoch": r["epoch"]}, "push at the %s member" % receiver.proto)

            others = ", ".join(c.proto for c in everyone if c is not sender)
            await check("cross: chat.send %s → %s (and itself)" % (sender.proto, others), deliver())

        for sender, receiver in ((mp, js), (js, br), (br, mp)):

            async def direct(sender=sender, receiver=receiver):
                text = "dm from %s" % sender.proto
                eq(await sender.call("chat.direct", {"to": receiver.id, "message": text}), {"delivered": 1}, "direct result")
                p = await receiver.wait_message(lambda p: p.get("message") == text, "direct")
                eq(without_ts(p), {"from": sender.id, "to": receiver.id, "message": text}, "direct push")

            await check("cross: %s chat.direct reaches %s" % (sender.proto, receiver.proto), direct())

        async def broadcast():
            text = "broadcast from %s" % js.proto
            r = await js.call("chat.broadcast", {"message": text})
            check_true(r["delivered"] >= 3, "delivered %r >= 3" % r["delivered"])
            for c in everyone:
                p = await c.wait_message(lambda p: p.get("message") == text, "broadcast")
                eq(without_ts(p), {"from": js.id, "message": text}, "broadcast push at the %s member" % c.proto)

        await check("cross: json-rpc chat.broadcast reaches msgpack and binary-raw (no room)", broadcast())

        async def lone_surrogate():
            # binary-raw.md §2: text that reached the server through another
            # encoding is still sent as valid UTF-8 (binraw.py decodes strictly).
            mid = next(js.ids)
            raw = '{"jsonrpc":"2.0","method":"chat.direct","params":{"to":"%s","message":"lone \\ud800 surrogate"},"id":%d}' % (br.id, mid)
            eq(await js.call("chat.direct", raw=raw, mid=mid), {"delivered": 1}, "direct result")
            p = await br.wait_message(lambda p: p.get("message", "").startswith("lone "), "direct with a lone surrogate")
            eq(p["message"], "lone \ufffd surrogate", "message at binary-raw")

        await check("cross: json-rpc text with a lone surrogate \\ud800 reaches binary-raw as valid UTF-8 (U+FFFD)", lone_surrogate())

        async def history():
            for c in everyone:
                r = await c.call("chat.history", {"room": lobby})
                eq([m["from"] for m in r["messages"]], sent, "history senders seen by " + c.proto)

        await check("cross: chat.history agrees in the three encodings", history())

        async def leave():
            eq(await mp.call("chat.leave", {"room": lobby}), {"room": lobby}, "msgpack leave")
            eq(await presence(br, mp, "leave"), {"room": lobby, "client_id": mp.id, "event": "leave"}, "msgpack's leave at binary-raw")
            eq(await br.call("chat.leave", {"room": lobby}), {"room": lobby}, "binary-raw leave")
            for who in (mp, br):
                eq(await presence(js, who, "leave"), {"room": lobby, "client_id": who.id, "event": "leave"}, "%s leave at json-rpc" % who.proto)
            eq(await js.call("chat.members", {"room": lobby}), {"room": lobby, "members": [js.id]}, "members left")

        await check("cross: chat.leave presence crosses encodings (event leave)", leave())

        async def close():
            for c in everyone:
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


def H(s):
    """Bytes from spaced hex, as the spec and golden files write them."""
    return bytes.fromhex("".join(s.split()))


def hexs(b):
    return b.hex(" ")


def ping_ts_ok(ts, what):
    check_true(isinstance(ts, int) and abs(ts - time.time()) < 300, "%s: timestamp %r is Unix seconds, near now" % (what, ts))


# ------------------------------------------------ binary-raw offline checks
#
# binraw.py against the spec's own hex examples and the golden vectors,
# without a server.


def offline(name, fn):
    try:
        fn()
    except Exception as err:  # noqa: BLE001 - every failure is reported
        report_fail(name, err)
    else:
        report_ok(name)


def eq_hex(got, want, what):
    eq(hexs(got), hexs(want), what)


def ex_request(mid, method, params, by_name=False):
    """A request: encoding (method, params) gives the bytes, decoding gives them back."""

    def chk(b):
        payload = b"" if params is None else binraw.encode_params(method, params)
        eq_hex(binraw.encode_request(mid, method, payload, by_name), b, "encoded request")
        m = binraw.decode(b)
        eq((m.kind, m.id, m.method, m.by_name), ("request", mid, method if isinstance(method, int) or by_name else binraw.BY_NAME[method][0], by_name), "decoded envelope")
        if params is not None:
            eq(binraw.decode_params(method, m.payload), params, "decoded params")

    return chk


def ex_notification(method, params):
    def chk(b):
        eq_hex(binraw.encode_notification(method, binraw.encode_params(method, params)), b, "encoded notification")
        m = binraw.decode(b)
        eq((m.kind, binraw.method_name(m.method)), ("notification", method), "decoded envelope")
        eq(binraw.decode_params(method, m.payload), params, "decoded params")

    return chk


def ex_result(mid, method, value):
    """A result: decoding gives the values the text states, encoding them gives the bytes back."""

    def chk(b):
        m = binraw.decode(b)
        eq((m.kind, m.id), ("result", mid), "decoded envelope")
        eq(binraw.decode_result(method, m.payload), value, "decoded %s result" % method)
        eq_hex(binraw.encode_result_frame(mid, binraw.encode_result(method, value)), b, "re-encoded")

    return chk


def ex_error(mid, code, message, data):
    def chk(b):
        m = binraw.decode(b)
        eq((m.kind, m.id, m.code, m.message, m.data), ("error", mid, code, message, data), "decoded error")
        eq_hex(binraw.encode_error(mid, code, message, data), b, "re-encoded")

    return chk


def ex_push(method, value):
    def chk(b):
        m = binraw.decode(b)
        eq(m.kind, "notification", "kind")
        eq(binraw.decode_push(m.method, m.payload), (method, value), "decoded push")
        eq_hex(binraw.encode_notification(method, binraw.encode_params(method, value)), b, "re-encoded")

    return chk


def ex_batch(*elements):
    def chk(b):
        m = binraw.decode(b)
        eq((m.kind, len(m.elements)), ("batch", len(elements)), "decoded batch")
        for e, c in zip(m.elements, elements):
            c(binraw.encode(e))
        eq_hex(binraw.encode(m), b, "re-encoded")

    return chk


def ex_varint(n):
    def chk(b):
        r = binraw.Reader(b)
        eq(r.varint(), n, "varint")
        r.end()
        eq_hex(binraw.varint_bytes(n), b, "encoded varint %d" % n)

    return chk


TS = 1764000000123  # the ts of §8's first history entry and of §9's messages: f6 a1 bf e9 d6 66
PING = {"status": "ok", "timestamp": 1764000000}
AB = ["alice", "bob"]
EPOCH = "9c4e1f0a7b2d8e35"  # the stream epoch of the examples
DISCOVER_EXAMPLE = {
    "methods": [
        {"name": "chat.ping", "id": 0x10, "push": False, "params": "{}", "result": "{status:string, timestamp:int}"},
        {"name": "chat.presence", "id": 0x21, "push": True, "params": "{room:string, client_id:string, event:string}", "result": ""},
    ]
}

# Every hex example of protocols/binary-raw.md (3 bytes or more), with the
# values its text gives. spec_examples() checks that this list and the
# document hold the same examples.
SPEC_EXAMPLES = {
    "00 01 10": ("chat.ping request, id 1", ex_request(1, "chat.ping", {})),
    "08 01 09 63 68 61 74 2e 70 69 6e 67": ("chat.ping by name, id 1", ex_request(1, "chat.ping", {}, by_name=True)),
    "01 11 0f 66 69 72 65 20 61 6e 64 20 66 6f 72 67 65 74": ("chat.broadcast notification", ex_notification("chat.broadcast", {"message": "fire and forget"})),
    "02 01 02 6f 6b 80 84 a4 92 0d": ("chat.ping result", ex_result(1, "chat.ping", PING)),
    "b1 fd 03": ("-32601", ex_varint(-32601)),
    "03 0b b1 fd 03 10 4d 65 74 68 6f 64 20 6e 6f 74 20 66 6f 75 6e 64 63 68 61 74 2e 6e 6f 70 65": ("method not found, id 11", ex_error(11, -32601, "Method not found", "chat.nope")),
    "13 f7 fe 03 0b 50 61 72 73 65 20 65 72 72 6f 72 72 65 73 65 72 76 65 64 20 74 61 67 20 62 69 74 73 20 73 65 74": (
        "null-id parse error",
        ex_error(None, -32700, "Parse error", "reserved tag bits set"),
    ),
    "04 02 03 00 01 10 05 01 11 02 68 69": ("batch: ping id 1 + broadcast notification", ex_batch(ex_request(1, "chat.ping", {}), ex_notification("chat.broadcast", {"message": "hi"}))),
    "04 01 0a 02 01 02 6f 6b 80 84 a4 92 0d": ("the batch's reply", ex_batch(ex_result(1, "chat.ping", PING))),
    "f7 fe 03": ("-32700", ex_varint(-32700)),
    "af fd 03": ("-32600", ex_varint(-32600)),
    "b3 fd 03": ("-32602", ex_varint(-32602)),
    "b5 fd 03": ("-32603", ex_varint(-32603)),
    "ff f3 03": ("-32000", ex_varint(-32000)),
    "c5 f5 03": ("-32099", ex_varint(-32099)),
    "00 0a 01": ("rpc.discover request, id 10", ex_request(10, "rpc.discover", {})),
    "02 0a 02 09 63 68 61 74 2e 70 69 6e 67 10 00 02 7b 7d 1e 7b 73 74 61 74 75 73 3a 73 74 72 69 6e 67 2c 20 74 69 6d 65 73 74 61 6d 70 3a 69 6e 74 7d "
    "0d 63 68 61 74 2e 70 72 65 73 65 6e 63 65 21 01 2d 7b 72 6f 6f 6d 3a 73 74 72 69 6e 67 2c 20 63 6c 69 65 6e 74 5f 69 64 3a 73 74 72 69 6e 67 2c 20 65 76 65 6e 74 3a 73 74 72 69 6e 67 7d 00": (
        "rpc.discover result",
        ex_result(10, "rpc.discover", DISCOVER_EXAMPLE),
    ),
    "00 02 11 05 68 65 6c 6c 6f": ("chat.broadcast request", ex_request(2, "chat.broadcast", {"message": "hello"})),
    "02 02 02 6f 6b 03": ("chat.broadcast result", ex_result(2, "chat.broadcast", {"status": "ok", "delivered": 3})),
    "00 03 12 05 6c 6f 62 62 79": ("chat.join request", ex_request(3, "chat.join", {"room": "lobby"})),
    "02 03 05 6c 6f 62 62 79 02 05 61 6c 69 63 65 03 62 6f 62 29 10 39 63 34 65 31 66 30 61 37 62 32 64 38 65 33 35": (
        "chat.join result",
        ex_result(3, "chat.join", {"room": "lobby", "members": AB, "offset": 41, "epoch": EPOCH}),
    ),
    "00 04 13 05 6c 6f 62 62 79": ("chat.leave request", ex_request(4, "chat.leave", {"room": "lobby"})),
    "02 04 05 6c 6f 62 62 79": ("chat.leave result", ex_result(4, "chat.leave", {"room": "lobby"})),
    "00 05 14 05 6c 6f 62 62 79 06 68 69 20 61 6c 6c": ("chat.send request", ex_request(5, "chat.send", {"room": "lobby", "message": "hi all"})),
    "02 05 05 6c 6f 62 62 79 2a 10 39 63 34 65 31 66 30 61 37 62 32 64 38 65 33 35": ("chat.send result", ex_result(5, "chat.send", {"room": "lobby", "offset": 42, "epoch": EPOCH})),
    "00 06 15 03 62 6f 62 04 70 73 73 74": ("chat.direct request", ex_request(6, "chat.direct", {"to": "bob", "message": "psst"})),
    "02 06 02": ("chat.direct result", ex_result(6, "chat.direct", {"delivered": 2})),
    "00 07 16 05 6c 6f 62 62 79": ("chat.members request", ex_request(7, "chat.members", {"room": "lobby"})),
    "02 07 05 6c 6f 62 62 79 02 05 61 6c 69 63 65 03 62 6f 62": ("chat.members result", ex_result(7, "chat.members", {"room": "lobby", "members": AB})),
    "00 08 17 05 6c 6f 62 62 79 28 02 10 39 63 34 65 31 66 30 61 37 62 32 64 38 65 33 35": (
        "chat.history request",
        ex_request(8, "chat.history", {"room": "lobby", "since": 40, "limit": 2, "epoch": EPOCH}),
    ),
    "00 09 17 05 6c 6f 62 62 79 00 00 00": ("chat.history request, defaults", ex_request(9, "chat.history", {"room": "lobby"})),
    "02 08 05 6c 6f 62 62 79 02 29 05 61 6c 69 63 65 05 66 69 72 73 74 f6 a1 bf e9 d6 66 2a 03 62 6f 62 06 73 65 63 6f 6e 64 f8 a1 bf e9 d6 66 10 39 63 34 65 31 66 30 61 37 62 32 64 38 65 33 35 01": (
        "chat.history result",
        ex_result(
            8,
            "chat.history",
            {
                "room": "lobby",
                "messages": [
                    {"offset": 41, "from": "alice", "message": "first", "ts": TS},
                    {"offset": 42, "from": "bob", "message": "second", "ts": TS + 1},
                ],
                "epoch": EPOCH,
                "recovered": True,
            },
        ),
    ),
    "f6 a1 bf e9 d6 66": ("ts of the chat.message examples", ex_varint(TS)),
    "01 20 00 05 61 6c 69 63 65 05 68 65 6c 6c 6f f6 a1 bf e9 d6 66": ("chat.message from chat.broadcast", ex_push("chat.message", {"from": "alice", "message": "hello", "ts": TS})),
    "01 20 0d 05 61 6c 69 63 65 06 68 69 20 61 6c 6c f6 a1 bf e9 d6 66 05 6c 6f 62 62 79 2a 10 39 63 34 65 31 66 30 61 37 62 32 64 38 65 33 35": (
        "chat.message from chat.send",
        ex_push("chat.message", {"from": "alice", "message": "hi all", "ts": TS, "room": "lobby", "offset": 42, "epoch": EPOCH}),
    ),
    "01 20 02 05 61 6c 69 63 65 04 70 73 73 74 f6 a1 bf e9 d6 66 03 62 6f 62": ("chat.message from chat.direct", ex_push("chat.message", {"from": "alice", "message": "psst", "ts": TS, "to": "bob"})),
    "01 21 05 6c 6f 62 62 79 03 62 6f 62 01": ("chat.presence join", ex_push("chat.presence", {"room": "lobby", "client_id": "bob", "event": "join"})),
    "01 21 05 6c 6f 62 62 79 03 62 6f 62 02": ("chat.presence leave", ex_push("chat.presence", {"room": "lobby", "client_id": "bob", "event": "leave"})),
    "01 22 08 64 72 61 69 6e 69 6e 67 14 73 65 72 76 65 72 20 73 68 75 74 74 69 6e 67 20 64 6f 77 6e": (
        "gateway.notice draining",
        ex_push("gateway.notice", {"kind": "draining", "message": "server shutting down"}),
    ),
    "00 06 7f": ("request id 6 for method 0x7f", ex_request(6, 0x7F, None)),
    "03 06 b1 fd 03 10 4d 65 74 68 6f 64 20 6e 6f 74 20 66 6f 75 6e 64 23 31 32 37": ("its error", ex_error(6, -32601, "Method not found", "#127")),
    "20 07 10": ("a reserved tag bit", lambda b: expect_decode_error(b, -32700)),
    # §11 cuts the data off ("..."): what it shows is a null-id parse error with no data.
    "13 f7 fe 03 0b 50 61 72 73 65 20 65 72 72 6f 72": ("null-id parse error (data cut off)", ex_error(None, -32700, "Parse error", None)),
}


def expect_decode_error(b, code):
    try:
        m = binraw.decode(b)
    except binraw.DecodeError as err:
        eq(err.code, code, "error code for %s (%s)" % (hexs(b), err.detail))
        return
    raise AssertionError("%s decoded as %r, want error %d" % (hexs(b), m, code))


HEX_PAIR = re.compile(r"^[0-9a-f]{2}$")


def spec_hex(text):
    """(section, hex) of every hex example in the spec: inline `..` spans of
    3 bytes or more, and the frames in code blocks without a language (a
    frame is the run of hex pairs at the start of consecutive lines; an arrow
    → or ← starts a new one)."""
    out = []
    section = ""
    block = None  # language of the code block we are in
    frame = []

    def flush():
        if frame:
            out.append((section, " ".join(frame)))
            del frame[:]

    for line in text.split("\n"):
        if line.startswith("```"):
            if block is None:
                block = line[3:].strip()
            else:
                flush()
                block = None
            continue
        if block is None:
            if line.startswith("#"):
                section = line.lstrip("#").strip()
            for m in re.finditer(r"`([0-9a-f]{2}(?: [0-9a-f]{2}){2,})`", line):
                out.append((section, m.group(1)))
            continue
        if block:
            continue  # js, c
        toks = line.split()
        if toks[:1] in (["→"], ["←"]):
            flush()
            toks = toks[1:]
        for t in toks:
            if not HEX_PAIR.match(t):
                break
            frame.append(t)
    return out


def spec_checks():
    try:
        with open(SPEC, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        report_fail("spec: read protocols/binary-raw.md", err)
        return
    # Inline examples may wrap: join each line break inside a `..` span.
    text = re.sub(r"`([0-9a-f ]+)\n([0-9a-f ]+)`", r"`\1 \2`", text)
    found = spec_hex(text)

    def coverage():
        missing = sorted({"§%s: %s" % sh for sh in found if sh[1] not in SPEC_EXAMPLES})
        eq(missing, [], "hex examples in the spec that this script does not check")
        stale = sorted(set(SPEC_EXAMPLES) - {h for _, h in found})
        eq(stale, [], "examples this script checks that the spec no longer has")

    offline("spec: every hex example of binary-raw.md (%d, %d distinct) is checked below" % (len(found), len(SPEC_EXAMPLES)), coverage)
    sections = {}
    for section, h in found:
        sections.setdefault(h, section)
    for h, (what, chk) in SPEC_EXAMPLES.items():
        short = h if len(h) <= 36 else h[:36] + "…"
        offline("spec %s: %s: %s" % (sections.get(h, "?").split(" (")[0].strip("`"), what, short), lambda chk=chk, h=h: chk(H(h)))

    def primitives():
        # §2: zigzag, the varint rules, strings.
        for n, h in ((0, "00"), (-1, "01"), (1, "02"), (-2, "03"), (2, "04"), (1764000000, "80 84 a4 92 0d"), (-(2**63), "ff ff ff ff ff ff ff ff ff 01"), (2**63 - 1, "fe ff ff ff ff ff ff ff ff 01")):
            ex_varint(n)(H(h))
        eq_hex(binraw.uvarint_bytes(3528000000), H("80 84 a4 92 0d"), "§11: zigzag 3528000000")
        eq(binraw.Reader(H("ff ff ff ff ff ff ff ff ff 01")).uvarint(), 2**64 - 1, "10th byte 01")
        for h in ("80 00", "81 00", "ff ff ff ff ff ff ff ff ff 02", "ff ff ff ff ff ff ff ff ff 7f", "80 80 80 80 80 80 80 80 80 80 01", "80", ""):
            try:
                v = binraw.Reader(H(h)).uvarint()
            except binraw.DecodeError:
                continue
            raise AssertionError("uvarint %r decoded as %d, want invalid" % (h, v))
        eq(binraw.Reader(H("03 61 00 62")).string(), "a\x00b", "NUL is a valid character")
        for h in ("02 c0 80", "03 ed a0 80", "04 f4 90 80 80", "02 e2 82", "05 61 62"):
            try:
                v = binraw.Reader(H(h)).string()
            except binraw.DecodeError:
                continue
            raise AssertionError("string %r decoded as %r, want invalid" % (h, v))
        # §8: the smallest records, which bound a list's count (§2).
        eq((binraw.METHOD_INFO.min, binraw.HISTORY_ENTRY.min), (5, 4), "smallest MethodInfo and HistoryEntry")
        # §3: exactly these tags are valid.
        valid = sorted(t for t in range(256) if _tag_ok(t))
        eq(["%02x" % t for t in valid], ["00", "01", "02", "03", "04", "08", "09", "13"], "valid tags")

    offline("spec §2/§3: zigzag and varint examples, varint and UTF-8 rules, the 8 valid tags", primitives)

    def message_flags():
        # §9: the epoch flag (08) goes with the offset flag (04); bits 4-7 are reserved.
        for h in ("04 00 00 00 01", "08 00 00 00 01 65", "0c 00 00 00 01 00", "10 00 00 00"):
            try:
                v = binraw.decode_push(0x20, H(h))
            except binraw.DecodeError:
                continue
            raise AssertionError("chat.message payload %s decoded as %r, want invalid" % (h, v))
        eq(binraw.decode_push(0x20, H("0c 00 00 00 01 01 65")), ("chat.message", {"from": "", "message": "", "ts": 0, "offset": 1, "epoch": "e"}), "offset 1, epoch e")

    offline("spec §9: chat.message's offset and epoch flags go together", message_flags)


def _tag_ok(tag):
    try:
        binraw.check_tag(tag)
    except binraw.DecodeError:
        return False
    return True


def golden_checks():
    """Each testdata/golden vector's binary-raw line decodes to the message
    its json-rpc line holds, and encodes back to the same bytes."""
    try:
        names = sorted(n for n in os.listdir(GOLDEN) if n.endswith(".golden"))
    except OSError as err:
        report_fail("golden: list testdata/golden", err)
        return
    vectors = []
    for n in names:
        lines = {}
        with open(os.path.join(GOLDEN, n), encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line and not line.startswith("#"):
                    enc, _, rest = line.partition(" ")
                    lines[enc] = rest
        if "binary-raw" in lines:
            vectors.append((n[: -len(".golden")], json.loads(lines["json-rpc"]), H(lines["binary-raw"])))
    # A result does not name its method (§1): the golden requests' ids say it.
    methods = {}
    for _, js, _ in vectors:
        for m in js if isinstance(js, list) else [js]:
            if "method" in m and "id" in m:
                methods[m["id"]] = m["method"]

    def as_jsonrpc(m):
        """A decoded binary-raw message as the json-rpc message it carries."""
        if m.kind == "batch":
            return [as_jsonrpc(e) for e in m.elements]
        out = {"jsonrpc": "2.0"}
        if m.kind in ("request", "notification"):
            name = binraw.method_name(m.method)
            out["method"] = name
            out["params"] = binraw.decode_params(name, m.payload)
        elif m.kind == "result":
            out["result"] = binraw.decode_result(methods[m.id], m.payload)
        else:
            out["error"] = {"code": m.code, "message": m.message}
            if m.data is not None:
                out["error"]["data"] = m.data
        if m.kind != "notification":
            out["id"] = m.id
        return out

    def normal(js):
        """json-rpc's optional fields as binary-raw writes them: params {} when absent;
        rpc.discover omits a push's empty result shape."""
        if isinstance(js, list):
            return [normal(e) for e in js]
        js = json.loads(json.dumps(js))
        if "method" in js:
            js.setdefault("params", {})
        if isinstance(js.get("result"), dict):
            for info in js["result"].get("methods", []):
                info.setdefault("result", "")
        return js

    for name, js, wire in vectors:

        def chk(js=js, wire=wire):
            m = binraw.decode(wire)
            eq(as_jsonrpc(m), normal(js), "binary-raw decoded vs the json-rpc line")
            eq_hex(binraw.encode(m), wire, "re-encoded envelope")
            for e in m.elements if m.kind == "batch" else [m]:
                if e.kind in ("request", "notification"):
                    n = binraw.method_name(e.method)
                    eq_hex(binraw.encode_params(n, binraw.decode_params(n, e.payload)), e.payload, "re-encoded params")
                elif e.kind == "result":
                    eq_hex(binraw.encode_result(methods[e.id], binraw.decode_result(methods[e.id], e.payload)), e.payload, "re-encoded result")

        offline("golden %s: binary-raw %s" % (name, hexs(wire) if len(wire) <= 12 else hexs(wire[:12]) + " …"), chk)

    eq_count = len(vectors)
    offline("golden: %d of %d vectors have a binary-raw line" % (eq_count, len(names)), lambda: check_true(eq_count == len(names) and eq_count > 0, "every vector has binary-raw"))


async def binraw_extras():
    async def run(clients):
        c = await check("binary-raw: connect", connect(clients, "br-x", "binary-raw"))

        async def exchange(frame, pred, what):
            """Sends a raw frame and returns the first frame received after it (raw, Msg) that pred accepts."""
            c.frames.clear()
            await c.ws.send(frame)
            return await c.wait_frame(pred, what)

        def reply_to(mid):
            return lambda raw, m: m.kind in ("result", "error") and m.id == mid

        def null_error(raw, m):
            return m.kind == "error" and m.id is None

        def is_batch(raw, m):
            return m.kind == "batch"

        async def unanswered(frames, what, clear=True):
            """Sends frames, then a ping; calls are answered in order (§1), so
            any reply or error to the frames arrives before the ping's reply.
            clear=False also counts the frames already received."""
            if clear:
                c.frames.clear()
            mid = next(c.ids)
            for f in frames + [binraw.encode_request(mid, "chat.ping")]:
                await c.ws.send(f)
            await c.wait_frame(reply_to(mid), "ping after " + what)
            got = [hexs(raw) for raw, m in c.frames if m.kind != "notification"]
            eq(got, [], "frames answering " + what)

        # -------- the spec's example frames, answered byte for byte

        async def ping_example():
            raw, m = await exchange(H("00 01 10"), reply_to(1), "§4 ping reply")
            ts = binraw.decode_result("chat.ping", m.payload)["timestamp"]
            ping_ts_ok(ts, "ping")
            eq(hexs(raw), hexs(H("02 01 02 6f 6b") + binraw.varint_bytes(ts)), "reply (§4: 02 01 02 6f 6b + varint timestamp)")
            raw2, _ = await exchange(H("08 01 09 63 68 61 74 2e 70 69 6e 67"), reply_to(1), "§4 ping-by-name reply")
            check_true(raw2.startswith(H("02 01 02 6f 6b")), "reply by name %s has the same form" % hexs(raw2))

        await check("binary-raw: §4 chat.ping 00 01 10 and by name 08 01 09 … → 02 01 02 6f 6b <ts>", ping_example())

        async def errors_example():
            raw, _ = await exchange(H("00 06 7f"), reply_to(6), "§11 reply to method 0x7f")
            eq(hexs(raw), "03 06 b1 fd 03 10 4d 65 74 68 6f 64 20 6e 6f 74 20 66 6f 75 6e 64 23 31 32 37", "§11 error frame")
            raw, _ = await exchange(binraw.encode_request(11, "chat.nope", by_name=True), reply_to(11), "§4 method not found")
            eq(hexs(raw), "03 0b b1 fd 03 10 4d 65 74 68 6f 64 20 6e 6f 74 20 66 6f 75 6e 64 63 68 61 74 2e 6e 6f 70 65", "§4 error frame")
            raw, _ = await exchange(H("20 07 10"), null_error, "§11 reply to a reserved tag bit")
            eq(hexs(raw), "13 f7 fe 03 0b 50 61 72 73 65 20 65 72 72 6f 72 72 65 73 65 72 76 65 64 20 74 61 67 20 62 69 74 73 20 73 65 74", "§4 null-id error frame")

        await check("binary-raw: §4/§11 errors byte for byte (method 0x7f → #127, chat.nope by name, tag 20 → null id)", errors_example())

        async def batch_example():
            raw, m = await exchange(H("04 02 03 00 01 10 05 01 11 02 68 69"), is_batch, "§4 batch reply")
            eq(len(m.elements), 1, "elements in the reply batch")
            ts = binraw.decode_result("chat.ping", m.elements[0].payload)["timestamp"]
            ping_ts_ok(ts, "batch ping")
            eq(hexs(raw), hexs(H("04 01 0a 02 01 02 6f 6b") + binraw.varint_bytes(ts)), "reply (§4: 04 01 0a 02 01 02 6f 6b …)")
            p = await c.wait_message(lambda p: p["message"] == "hi", "the batch's broadcast")
            eq(without_ts(p), {"from": c.id, "message": "hi"}, "push")

        await check("binary-raw: §4 batch example → one batch reply 04 01 0a …, and the broadcast runs", batch_example())

        async def notification_example():
            await unanswered([H("01 11 0f 66 69 72 65 20 61 6e 64 20 66 6f 72 67 65 74")], "a notification")
            p = await c.wait_message(lambda p: p["message"] == "fire and forget", "the notification's broadcast")
            eq(without_ts(p), {"from": c.id, "message": "fire and forget"}, "push (flags 00: no room, to or offset)")

        await check("binary-raw: §4 chat.broadcast notification → push, no reply", notification_example())

        async def discover():
            raw, m = await exchange(H("00 0a 01"), reply_to(10), "rpc.discover reply")
            methods = binraw.decode_result("rpc.discover", m.payload)["methods"]
            got = sorted((e["id"], e["name"], e["push"]) for e in methods)
            eq(got, sorted(row[:3] for row in binraw.TABLE), "rpc.discover (id, name, push) vs the §5 table")
            for e in methods:
                check_true(bool(e["params"]), "%s has a params shape" % e["name"])
                check_true(bool(e["result"]) != e["push"], "%s: result shape %r (empty exactly for pushes)" % (e["name"], e["result"]))
            # §8's two example entries, byte for byte inside the server's result.
            for entry in (
                "09 63 68 61 74 2e 70 69 6e 67 10 00 02 7b 7d 1e 7b 73 74 61 74 75 73 3a 73 74 72 69 6e 67 2c 20 74 69 6d 65 73 74 61 6d 70 3a 69 6e 74 7d",
                "0d 63 68 61 74 2e 70 72 65 73 65 6e 63 65 21 01 2d 7b 72 6f 6f 6d 3a 73 74 72 69 6e 67 2c 20 63 6c 69 65 6e 74 5f 69 64 3a 73 74 72 69 6e 67 2c 20 65 76 65 6e 74 3a 73 74 72 69 6e 67 7d 00",
            ):
                check_true(H(entry) in raw, "§8 entry %s… is in the server's result" % entry[:40])

        await check("binary-raw: rpc.discover 00 0a 01 returns the §5 table (and §8's entries byte for byte)", discover())

        # -------- ids and method ids

        async def ids():
            for mid, enc in ((0, "00"), (2**63 - 1, "ff ff ff ff ff ff ff ff 7f")):
                raw, _ = await exchange(binraw.encode_request(mid, "chat.ping"), reply_to(mid), "reply to id %d" % mid)
                check_true(raw.startswith(H("02 " + enc + " 02 6f 6b")), "id %d echoed as %s: %s" % (mid, enc, hexs(raw)))

        await check("binary-raw: ids 0 and 2^63-1 echoed", ids())

        async def method_ids():
            for method, data in ((0, "#0"), (2**64 - 1, "#18446744073709551615")):
                _, m = await exchange(binraw.encode_request(30, method), reply_to(30), "reply to method %d" % method)
                eq((m.kind, m.code, m.message, m.data), ("error", -32601, "Method not found", data), "method id %d" % method)

        await check("binary-raw: reserved method id 0 and id 2^64-1 → -32601 #N", method_ids())

        # -------- frames that are not binary-raw: -32700 with null id

        for frame, what in (
            (b"", "empty frame"),
            (H("05 01"), "reserved kind 5"),
            (H("40 01 10"), "reserved tag bit 0x40"),
            (H("10 01 10"), "N bit on a request"),
            (H("00 81 00 10"), "non-minimal id varint 81 00"),
            (H("00 80 80 80 80 80 80 80 80 80 80 01 10"), "11-byte id varint"),
            (H("00 ff ff ff ff ff ff ff ff ff 02 10"), "10th varint byte 02"),
            (H("00 80 80 80 80 80 80 80 80 80 01 10"), "id 2^63"),
            (H("00 80"), "truncated id"),
            (H("08 05 05 63 68 61"), "method name past the end"),
            (H("08 05 02 ff fe"), "method name not UTF-8"),
            (H("09 02 c0 80"), "notification name overlong UTF-8"),
        ):

            async def parse_error(frame=frame, what=what):
                _, m = await exchange(frame, null_error, "null-id error for " + what)
                eq((m.code, m.message), (-32700, "Parse error"), "error")

            await check("binary-raw: %s (%s) → -32700, null id" % (what, hexs(frame) or "0 bytes"), parse_error())

        async def empty_name():
            _, m = await exchange(H("08 05 00"), null_error, "error for an empty method name")
            eq((m.code, m.message, m.data), (-32600, "Invalid Request", "empty method name"), "error")
            _, m = await exchange(H("09 00"), null_error, "error for a notification with an empty method name")
            eq((m.code, m.message), (-32600, "Invalid Request"), "notification error")

        await check("binary-raw: empty method name (request 08 05 00, notification 09 00) → -32600, null id", empty_name())

        async def results_ignored():
            await unanswered([H("02 01 02 6f 6b 00"), H("03 01 01 00"), H("13 01 00")], "results and errors from the client")

        await check("binary-raw: results and errors sent to the server are ignored (§1)", results_ignored())

        async def malformed_replies_ignored():
            await unanswered(
                [H("0a 01"), H("12 01"), H("83 01 00 00"), H("02"), H("03 01 b1 fd 03 02 ff fe"), binraw.encode_batch([H("0a 01"), H("13 01 00")])],
                "malformed results and errors from the client",
            )

        await check("binary-raw: malformed results and errors (M bit on a result, reserved bit, no id, message not UTF-8, in a batch) are never answered (§1)", malformed_replies_ignored())

        async def silent():
            await unanswered(
                [H("01 7f"), binraw.encode_notification("chat.nope", by_name=True), H("01 10 00"), H("01 12 2a"), binraw.encode_notification("chat.send", binraw.encode_params("chat.send", {"room": room("br-x-none"), "message": "x"}))],
                "notifications with an unknown method, bad params or a failing call",
            )

        await check("binary-raw: notifications are never answered (unknown id/name, bad params, -32001)", silent())

        # -------- payloads: -32602 with the id; limits after decoding

        for method, payload, what in (
            ("chat.ping", H("00"), "a byte in an empty layout"),
            ("chat.history", binraw.string_bytes("lobby"), "chat.history without since and limit"),
            ("chat.join", H("02 ff fe"), "invalid UTF-8 in a string"),
            ("chat.join", H("80 00"), "a non-minimal string length"),
            ("chat.history", binraw.encode_params("chat.history", {"room": "r", "limit": 1001}), "chat.history limit 1001"),
            ("chat.direct", binraw.encode_params("chat.direct", {"to": "not an id!", "message": "x"}), "chat.direct to an invalid client id"),
        ):

            async def bad(method=method, payload=payload):
                e = await c.call_error(method, payload=payload)
                eq((e.code, e.message), (-32602, "Invalid params"), "error")

            await check("binary-raw: %s → -32602" % what, bad())

        for method, params, code, what in (
            ("chat.join", {"room": "r" * 65}, -32003, "a 65-byte room name"),
            ("chat.join", {"room": ""}, -32003, "an empty room name"),
            ("chat.broadcast", {"message": "x" * 4097}, -32004, "a 4097-byte message"),
            ("chat.broadcast", {"message": ""}, -32005, "an empty message"),
        ):

            async def limit(method=method, params=params, code=code):
                eq((await c.call_error(method, params)).code, code, "code (json-rpc.md)")

            await check("binary-raw: %s → %d (§7: a chat limit, not -32602)" % (what, code), limit())

        # -------- batches

        async def batch_mixed():
            lobby = room("br-x")
            calls = {40: ("chat.join", {"room": lobby}), 41: ("chat.members", {"room": lobby}), 42: ("chat.nope", {}), 43: ("chat.ping", {})}
            futs = {mid: c.expect(mid, method) for mid, (method, _) in calls.items()}
            elements = [c.encode(mid, method, params) for mid, (method, params) in calls.items()]
            elements.insert(2, binraw.encode_notification("chat.broadcast", binraw.encode_params("chat.broadcast", {"message": "in a batch"})))
            c.batches.clear()
            await c.ws.send(binraw.encode_batch(elements))
            got = {}
            for mid, fut in futs.items():
                try:
                    got[mid] = await c.reply(mid, fut, calls[mid][0])
                except RPCError as err:
                    got[mid] = err.code
            eq(got[40], {"room": lobby, "members": [c.id], "offset": 0, "epoch": epoch_of(got[40], "join")}, "join")
            eq(got[41], {"room": lobby, "members": [c.id]}, "members")
            eq(got[42], -32601, "unknown method")
            eq(got[43]["status"], "ok", "ping")
            eq([sorted(e.id for e in b) for b in c.batches], [[40, 41, 42, 43]], "reply batches (ids)")
            await c.wait_message(lambda p: p["message"] == "in a batch", "the batch's broadcast")

        await check("binary-raw: batch of 4 calls + 1 notification → one batch of 4 replies, matched by id", batch_mixed())

        async def batch_bad_elements():
            c.batches.clear()
            frame = binraw.encode_batch([binraw.encode_request(50, "chat.ping"), binraw.encode_batch([binraw.encode_request(51, "chat.ping")]), b"", H("20 07 10"), binraw.encode_request(52, "chat.ping")])
            _, m = await exchange(frame, is_batch, "reply batch")
            got = sorted((e.kind, e.id, e.code) for e in m.elements if e.kind == "result") + sorted((e.kind, e.code, e.data) for e in m.elements if e.kind == "error")
            eq(
                got,
                [("result", 50, None), ("result", 52, None), ("error", -32700, "empty message"), ("error", -32700, "reserved tag bits set"), ("error", -32600, "nested batch")],
                "replies (null-id errors for the failing elements, the others processed)",
            )
            check_true(all(e.id is None for e in m.elements if e.kind == "error"), "errors have null ids")

        await check("binary-raw: batch with nested, empty and bad-tag elements → per-element null-id errors", batch_bad_elements())

        async def batch_max():
            futs = {mid: c.expect(mid, "chat.ping") for mid in range(1000, 1100)}
            c.batches.clear()
            await c.ws.send(binraw.encode_batch([binraw.encode_request(mid, "chat.ping") for mid in futs]))
            for mid, fut in futs.items():
                eq((await c.reply(mid, fut, "chat.ping"))["status"], "ok", "ping %d" % mid)
            eq([len(b) for b in c.batches], [100], "reply batch sizes")

        await check("binary-raw: batch of 100 (MaxBatch) → one batch of 100 results", batch_max())

        for frame, code, what in (
            (H("04 00"), -32600, "a batch of 0"),
            (binraw.encode_batch([binraw.encode_request(2000 + i, "chat.ping") for i in range(101)]), -32600, "a batch of 101"),
            (H("04 65 03 00 01 10"), -32600, "a count of 101 with 1 element"),
            (binraw.encode_batch([binraw.encode_request(60, "chat.ping")]) + H("00"), -32700, "bytes after the last element"),
            (H("04 01 05 00 3d 10"), -32700, "an element length past the end"),
            (H("04 02 03 00 3e 10"), -32700, "a count of 2 with 1 element"),
            (H("04"), -32700, "a truncated count"),
        ):

            async def bad_batch(frame=frame, code=code, what=what):
                _, m = await exchange(frame, null_error, "error for " + what)
                eq(m.code, code, "code")
                await unanswered([], what + " (nothing in it runs)", clear=False)

            await check("binary-raw: %s → %d, null id, nothing runs" % (what, code), bad_batch())

        async def batch_notifications():
            await unanswered([binraw.encode_batch([binraw.encode_notification("chat.broadcast", binraw.encode_params("chat.broadcast", {"message": "batched notification"}))])], "a batch of notifications")
            await c.wait_message(lambda p: p["message"] == "batched notification", "its broadcast")

        await check("binary-raw: batch of notifications only → runs, no reply frame", batch_notifications())

        async def close():
            eq(await c.close(), 1000, "close code")
            eq(c.unknown_pushes, [], "pushes with ids not in the table")

        await check("binary-raw: close cleanly", close())

        async def text_frame():
            t = await connect(clients, "br-text", "binary-raw")
            await t.ws.send("chat.ping")
            await asyncio.wait_for(t.reader, TIMEOUT)
            eq(t.ws.close_code, 1003, "close code for a text frame")

        await check("binary-raw: a text frame → close 1003 (§1)", text_frame())

    await scenario("binary-raw extras", run)


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

        for offer in (["xml-rpc", "msgpack", "json-rpc"], ["xml-rpc", "binary-raw", "msgpack", "json-rpc"]):
            proto = offer[1]

            async def order(offer=offer, proto=proto):
                c = Client("neg-order", proto)
                clients.append(c)
                await c.connect(offer=offer)
                eq(c.ws.subprotocol, proto, "negotiated protocol")
                eq((await c.call("chat.ping"))["status"], "ok", "ping over " + proto)
                eq(await c.close(), 1000, "close code")

            await check("negotiation: offer [%s] → %s (client's order)" % (", ".join(offer), proto), order())

    await scenario("negotiation", run)


async def main():
    print(
        "subgate interop (python %s, websockets %s, msgpack %s) against %s, run %s"
        % (sys.version.split()[0], websockets.__version__, ".".join(map(str, msgpack.version)), BASE, RUN),
        flush=True,
    )
    spec_checks()
    golden_checks()
    await chat_scenario("json-rpc", "json")
    await chat_scenario("msgpack", "mp")
    await chat_scenario("binary-raw", "br")
    await cross_scenario()
    await msgpack_extras()
    await binraw_extras()
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
