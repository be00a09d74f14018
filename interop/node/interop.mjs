// Third-party interop client for subgate, written from the specs only
// (README.md, protocols/json-rpc.md, protocols/binary-raw.md and the golden
// wire examples in testdata/golden): `ws` for WebSocket and
// `@msgpack/msgpack` for MessagePack, nothing from the Go code.
//
//   node interop.mjs ws://127.0.0.1:PORT
//
// Prints one line per check and, last, "N passed, M failed". Exits 0 only
// when nothing failed. Every wait has a timeout; a global watchdog ends the
// process if something still hangs.

import WebSocket from "ws";
import { encode as mpEncode, decode as mpDecode } from "@msgpack/msgpack";

const TIMEOUT_MS = 5000;
const WATCHDOG_MS = 50000;

const base = (process.argv[2] || "").replace(/\/+$/, "");
if (!/^wss?:\/\/[^/]+$/.test(base)) {
  console.error("usage: node interop.mjs ws://HOST:PORT");
  process.exit(2);
}

const watchdog = setTimeout(() => {
  console.error(`FATAL: interop.mjs still running after ${WATCHDOG_MS} ms; giving up`);
  process.exit(3);
}, WATCHDOG_MS);
watchdog.unref();

// Client ids and rooms are unique per run: [A-Za-z0-9._-], at most 64 bytes.
const RUN = `${process.pid.toString(36)}${Math.floor(Math.random() * 2 ** 32).toString(36)}`;
const cid = (name) => `node-${name}-${RUN}`;
const room = (name) => `node-${name}-${RUN}`;

// ---------------------------------------------------------------- results

let passed = 0;
let failed = 0;

function ok(name) {
  passed++;
  console.log(`ok   ${name}`);
}

function bad(name, err) {
  failed++;
  console.log(`FAIL ${name}: ${err && err.stack ? err.stack : err}`);
}

// check runs one named step; a failing step throws on, so that the scenario
// that contains it stops (its later steps would only fail in its wake).
async function check(name, fn) {
  try {
    const v = await fn();
    ok(name);
    return v;
  } catch (err) {
    bad(name, err);
    throw new Skip();
  }
}

class Skip extends Error {}

async function scenario(name, fn) {
  const clients = [];
  try {
    await fn(clients);
  } catch (err) {
    if (!(err instanceof Skip)) bad(`${name}: unexpected`, err);
    else console.log(`     (${name}: remaining steps skipped)`);
  } finally {
    for (const c of clients) c.terminate();
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

// canon is JSON with object keys sorted, so that eq ignores key order.
function canon(v) {
  if (Array.isArray(v)) return `[${v.map(canon).join(",")}]`;
  if (v && typeof v === "object" && !(v instanceof Uint8Array)) {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canon(v[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v === undefined ? null : v);
}

function eq(got, want, what) {
  const g = canon(got);
  const w = canon(want);
  if (g !== w) throw new Error(`${what}: got ${g}, want ${w}`);
}

function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

const EPOCH = "9c4e1f0a7b2d8e35"; // the stream epoch of the spec's examples
const hex = (b) => Buffer.from(b).toString("hex").replace(/(..)(?!$)/g, "$1 ");
const unhex = (s) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));

class RPCError extends Error {
  constructor(e) {
    super(`rpc error ${e.code} ${e.message}${e.data ? ` (${e.data})` : ""}`);
    this.code = e.code;
    this.rpcMessage = e.message;
    this.data = e.data;
  }
}

// --------------------------------------------------------- binary-raw codec
// From protocols/binary-raw.md §2 (helpers copied from the spec), §3-§9.

function readUvarint(b, p) {
  let x = 0n,
    shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (p + i >= b.length) throw new Error("truncated");
    const c = b[p + i];
    if (c < 0x80) {
      if (i > 0 && c === 0) throw new Error("non-minimal varint");
      if (i === 9 && c > 1) throw new Error("varint overflows 64 bits");
      return [x | (BigInt(c) << shift), p + i + 1];
    }
    x |= BigInt(c & 0x7f) << shift;
    shift += 7n;
  }
  throw new Error("varint longer than 10 bytes");
}
function writeUvarint(out, x) {
  x = BigInt(x);
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
}
const zigzag = (n) => (n >= 0n ? n << 1n : ((-n) << 1n) - 1n);
const unzigzag = (u) => (u & 1n ? -((u + 1n) >> 1n) : u >> 1n);

const utf8 = new TextEncoder();
const utf8strict = new TextDecoder("utf-8", { fatal: true });

// BinWriter / BinReader implement the primitive types of §2.
class BinWriter {
  constructor() {
    this.out = [];
  }
  byte(v) {
    this.out.push(v & 0xff);
    return this;
  }
  uvarint(v) {
    writeUvarint(this.out, BigInt(v));
    return this;
  }
  varint(v) {
    writeUvarint(this.out, zigzag(BigInt(v)));
    return this;
  }
  string(s) {
    const b = utf8.encode(s);
    this.uvarint(b.length);
    for (const c of b) this.out.push(c);
    return this;
  }
  bytes() {
    return Uint8Array.from(this.out);
  }
}

class BinReader {
  constructor(b, p = 0) {
    this.b = b;
    this.p = p;
  }
  left() {
    return this.b.length - this.p;
  }
  byte() {
    if (this.p >= this.b.length) throw new Error("truncated byte");
    return this.b[this.p++];
  }
  uvarintBig() {
    const [v, p] = readUvarint(this.b, this.p);
    this.p = p;
    return v;
  }
  uvarint() {
    const v = this.uvarintBig();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`uvarint ${v} exceeds 2^53`);
    return Number(v);
  }
  varint() {
    const v = unzigzag(this.uvarintBig());
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`varint ${v} exceeds 2^53`);
    return Number(v);
  }
  bool() {
    const c = this.byte();
    if (c > 1) throw new Error(`bool byte ${c}`);
    return c === 1;
  }
  string() {
    const n = this.uvarint();
    if (n > this.left()) throw new Error(`string length ${n} past the end (${this.left()} left)`);
    const s = utf8strict.decode(this.b.subarray(this.p, this.p + n));
    this.p += n;
    return s;
  }
  rest() {
    const s = utf8strict.decode(this.b.subarray(this.p));
    this.p = this.b.length;
    return s;
  }
  list(minSize, fn) {
    const n = this.uvarint();
    if (n * minSize > this.left()) throw new Error(`list count ${n} cannot fit in ${this.left()} bytes`);
    const out = [];
    for (let i = 0; i < n; i++) out.push(fn(this));
    return out;
  }
  end(what) {
    if (this.left() !== 0) throw new Error(`${this.left()} trailing bytes after ${what}`);
  }
}

// §5 method table; per method: params encoder, result decoder.
const BIN = {
  "rpc.discover": {
    id: 0x01,
    params: () => {},
    result: (r) => ({
      methods: r.list(5, (r) => ({
        name: r.string(),
        id: r.uvarint(),
        push: r.bool(),
        params: r.string(),
        result: r.string(),
      })),
    }),
  },
  "chat.ping": { id: 0x10, params: () => {}, result: (r) => ({ status: r.string(), timestamp: r.varint() }) },
  "chat.broadcast": {
    id: 0x11,
    params: (w, p) => w.string(p.message),
    result: (r) => ({ status: r.string(), delivered: r.uvarint() }),
  },
  "chat.join": {
    id: 0x12,
    params: (w, p) => w.string(p.room),
    result: (r) => ({ room: r.string(), members: r.list(1, (r) => r.string()), offset: r.uvarint(), epoch: r.string() }),
  },
  "chat.leave": { id: 0x13, params: (w, p) => w.string(p.room), result: (r) => ({ room: r.string() }) },
  "chat.send": {
    id: 0x14,
    params: (w, p) => w.string(p.room).string(p.message),
    result: (r) => ({ room: r.string(), offset: r.uvarint(), epoch: r.string() }),
  },
  "chat.direct": {
    id: 0x15,
    params: (w, p) => w.string(p.to).string(p.message),
    result: (r) => ({ delivered: r.uvarint() }),
  },
  "chat.members": {
    id: 0x16,
    params: (w, p) => w.string(p.room),
    result: (r) => ({ room: r.string(), members: r.list(1, (r) => r.string()) }),
  },
  "chat.history": {
    id: 0x17,
    params: (w, p) => w.string(p.room).uvarint(p.since ?? 0).uvarint(p.limit ?? 0).string(p.epoch ?? ""),
    result: (r) => ({
      room: r.string(),
      messages: r.list(4, (r) => ({ offset: r.uvarint(), from: r.string(), message: r.string(), ts: r.varint() })),
      epoch: r.string(),
      recovered: r.bool(),
    }),
  },
};

const BIN_PUSH = {
  0x20: [
    "chat.message",
    (r) => {
      const flags = r.byte();
      if (flags & ~0x0f) throw new Error(`chat.message: reserved flag bits ${flags}`);
      if (!(flags & 0x04) !== !(flags & 0x08)) throw new Error(`chat.message: offset and epoch flags differ in ${flags}`);
      const m = { from: r.string(), message: r.string(), ts: r.varint() };
      if (flags & 0x01) {
        m.room = r.string();
        if (m.room === "") throw new Error("chat.message: room flag with empty room");
      }
      if (flags & 0x02) {
        m.to = r.string();
        if (m.to === "") throw new Error("chat.message: to flag with empty to");
      }
      if (flags & 0x04) {
        m.offset = r.uvarint();
        if (m.offset === 0) throw new Error("chat.message: offset flag with offset 0");
      }
      if (flags & 0x08) {
        m.epoch = r.string();
        if (m.epoch === "") throw new Error("chat.message: epoch flag with empty epoch");
      }
      return m;
    },
  ],
  0x21: [
    "chat.presence",
    (r) => {
      const p = { room: r.string(), client_id: r.string() };
      const ev = r.byte();
      if (ev !== 1 && ev !== 2) throw new Error(`chat.presence: event byte ${ev}`);
      p.event = ev === 1 ? "join" : "leave";
      return p;
    },
  ],
  0x22: ["gateway.notice", (r) => ({ kind: r.string(), message: r.string() })],
};

// encodeBinRequest builds a request frame (tag 00) or, with byName, tag 08.
function encodeBinRequest(id, method, params, { byName = false, rawMethodId } = {}) {
  const w = new BinWriter();
  const m = BIN[method];
  if (byName) w.byte(0x08).uvarint(id).string(method);
  else w.byte(0x00).uvarint(id).uvarint(rawMethodId ?? m.id);
  if (m && params !== undefined) m.params(w, params);
  return w.bytes();
}

// decodeBinFrame parses one server frame. methodOf(id) names the method a
// result id answers (a result does not repeat it, §1).
function decodeBinFrame(b, methodOf) {
  const r = new BinReader(b);
  const tag = r.byte();
  switch (tag) {
    case 0x01: {
      const mid = r.uvarint();
      const push = BIN_PUSH[mid];
      if (!push) return { kind: "push", method: `#${mid}`, params: null, unknown: true };
      const params = push[1](r);
      r.end(push[0]);
      return { kind: "push", method: push[0], params };
    }
    case 0x02: {
      const id = r.uvarint();
      const method = methodOf(id);
      if (!method) return { kind: "reply", id, result: null, stray: true };
      const result = BIN[method].result(r);
      r.end(`${method} result`);
      return { kind: "reply", id, result };
    }
    case 0x03:
    case 0x13: {
      const id = tag === 0x03 ? r.uvarint() : null;
      const code = Number(unzigzag(r.uvarintBig()));
      const message = r.string();
      const data = r.rest();
      const error = { code, message };
      if (data !== "") error.data = data;
      return { kind: "reply", id, error };
    }
    case 0x04:
      throw new Error(`unexpected batch frame from the server: ${hex(b)}`);
    default:
      throw new Error(`bad tag byte 0x${tag.toString(16)} in ${hex(b)}`);
  }
}

// ---------------------------------------------------------------- clients

// Client is one WebSocket connection speaking one subprotocol. Replies are
// matched by id; pushes are buffered and taken with waitPush.
class Client {
  constructor(name, proto) {
    this.id = cid(name);
    this.proto = proto;
    this.nextId = 1;
    this.pending = new Map(); // id -> {resolve, reject, method}
    this.pushes = [];
    this.pushWaiters = [];
    this.errors = [];
    this.closed = null;
  }

  connect() {
    const url = `${base}/ws/${this.id}`;
    return withTimeout(
      new Promise((resolve, reject) => {
        const ws = new WebSocket(url, [this.proto], { handshakeTimeout: TIMEOUT_MS });
        ws.binaryType = "nodebuffer";
        this.ws = ws;
        ws.once("open", () => resolve(this));
        ws.once("unexpected-response", (req, res) => {
          // With this listener ws leaves the request to us: abort it.
          req.destroy();
          reject(new Error(`handshake refused: HTTP ${res.statusCode}`));
        });
        ws.on("error", (err) => {
          this.errors.push(err);
          reject(err);
        });
        ws.on("message", (data, isBinary) => this.onMessage(data, isBinary));
        ws.on("close", (code, reason) => {
          this.closed = { code, reason: reason.toString() };
          for (const p of this.pending.values()) p.reject(new Error(`connection closed (${code})`));
          this.pending.clear();
        });
      }),
      TIMEOUT_MS,
      `connect ${url}`,
    );
  }

  onMessage(data, isBinary) {
    let msg;
    try {
      msg = this.decode(data, isBinary);
    } catch (err) {
      this.errors.push(err);
      console.log(`     ${this.id}: undecodable frame: ${err.message}`);
      return;
    }
    if (msg.kind === "reply") {
      const p = this.pending.get(msg.id);
      if (!p) return; // a reply for no call in flight is ignored
      this.pending.delete(msg.id);
      if (msg.error) p.reject(new RPCError(msg.error));
      else p.resolve(msg.result);
      return;
    }
    this.pushes.push(msg);
    this.pumpPushes();
  }

  decode(data, isBinary) {
    switch (this.proto) {
      case "json-rpc": {
        if (isBinary) throw new Error("json-rpc: server sent a binary frame");
        const m = JSON.parse(data.toString("utf8"));
        if (Array.isArray(m)) throw new Error("json-rpc: unexpected batch");
        if (m.jsonrpc !== "2.0") throw new Error(`json-rpc: jsonrpc member ${m.jsonrpc}`);
        if ("method" in m) return { kind: "push", method: m.method, params: m.params };
        return { kind: "reply", id: m.id, result: m.result, error: m.error };
      }
      case "msgpack": {
        if (!isBinary) throw new Error("msgpack: server sent a text frame");
        const m = mpDecode(data);
        if (!Array.isArray(m)) throw new Error("msgpack: message is not an array");
        if (m[0] === 1 && m.length === 4) {
          return { kind: "reply", id: m[1], error: m[2] ?? undefined, result: m[3] };
        }
        if (m[0] === 2 && m.length === 3) {
          // Push params are an array holding one map (named params).
          const params = m[2];
          if (!Array.isArray(params) || params.length !== 1) throw new Error(`msgpack: push params ${JSON.stringify(params)}`);
          return { kind: "push", method: m[1], params: params[0] };
        }
        throw new Error(`msgpack: unexpected message ${JSON.stringify(m)}`);
      }
      case "binary-raw": {
        if (!isBinary) throw new Error("binary-raw: server sent a text frame");
        return decodeBinFrame(new Uint8Array(data), (id) => this.pending.get(id)?.method);
      }
    }
    throw new Error(`unknown proto ${this.proto}`);
  }

  encode(id, method, params) {
    switch (this.proto) {
      case "json-rpc":
        return JSON.stringify({ jsonrpc: "2.0", method, params: params ?? {}, id });
      case "msgpack":
        // [0, msgid, method, params]; named params travel as [ {map} ].
        return mpEncode([0, id, method, params === undefined ? [] : [params]]);
      case "binary-raw":
        return encodeBinRequest(id, method, params);
    }
  }

  // call sends a request and waits for its reply (rejects with RPCError).
  call(method, params, { raw, id = this.nextId++ } = {}) {
    const frame = raw ? raw(id) : this.encode(id, method, params);
    const p = new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, method });
    });
    this.ws.send(frame);
    return withTimeout(p, TIMEOUT_MS, `${this.id} ${method} reply`).finally(() => this.pending.delete(id));
  }

  // callError expects an error reply and returns it.
  async callError(method, params, opts) {
    try {
      const res = await this.call(method, params, opts);
      throw new Error(`${method}: want an error, got result ${JSON.stringify(res)}`);
    } catch (err) {
      if (err instanceof RPCError) return err;
      throw err;
    }
  }

  pumpPushes() {
    for (let i = 0; i < this.pushWaiters.length; i++) {
      const w = this.pushWaiters[i];
      const j = this.pushes.findIndex(w.pred);
      if (j >= 0) {
        const [m] = this.pushes.splice(j, 1);
        this.pushWaiters.splice(i--, 1);
        w.resolve(m);
      }
    }
  }

  // waitPush resolves with the first buffered or future push that pred accepts.
  waitPush(pred, what) {
    const p = new Promise((resolve) => {
      this.pushWaiters.push({ pred, resolve });
      this.pumpPushes();
    });
    return withTimeout(p, TIMEOUT_MS, `${this.id}: ${what}`).catch((err) => {
      this.pushWaiters = this.pushWaiters.filter((w) => w.pred !== pred);
      const seen = this.pushes.map((m) => `${m.method} ${JSON.stringify(m.params)}`).join("; ");
      throw new Error(`${err.message}; pushes buffered: [${seen}]`);
    });
  }

  waitMessage(pred, what) {
    return this.waitPush((m) => m.method === "chat.message" && pred(m.params), what);
  }

  // close performs the closing handshake and resolves with the server's code.
  close() {
    if (this.closed) return Promise.resolve(this.closed);
    const p = new Promise((resolve) => this.ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
    this.ws.close(1000, "bye");
    return withTimeout(p, TIMEOUT_MS, `${this.id} close handshake`);
  }

  terminate() {
    if (!this.closed && this.ws) this.ws.terminate();
  }
}

async function connect(clients, name, proto) {
  const c = new Client(name, proto);
  clients.push(c);
  await c.connect();
  eq(c.ws.protocol, proto, "negotiated Sec-WebSocket-Protocol");
  return c;
}

// ------------------------------------------------------------ scenarios

// chatScenario: the full chat flow between two clients of one encoding.
async function chatScenario(proto, tag) {
  await scenario(`${proto} chat`, async (clients) => {
    const P = (s) => `${proto}: ${s}`;
    const a = await check(P("connect a"), () => connect(clients, `${tag}-a`, proto));
    const b = await check(P("connect b"), () => connect(clients, `${tag}-b`, proto));
    const lobby = room(`${tag}-room`);

    await check(P("chat.ping"), async () => {
      const r = await a.call("chat.ping", {});
      eq(r.status, "ok", "status");
      assert(Number.isInteger(r.timestamp), `timestamp ${r.timestamp} is an integer`);
      assert(Math.abs(r.timestamp - Date.now() / 1000) < 300, `timestamp ${r.timestamp} is Unix seconds, near now`);
    });

    let epoch;
    await check(P("chat.join (first member)"), async () => {
      const r = await a.call("chat.join", { room: lobby });
      epoch = r.epoch;
      assert(/^[A-Za-z0-9_-]{1,32}$/.test(epoch), `epoch ${epoch} is 1-32 of [A-Za-z0-9_-]`);
      eq(r, { room: lobby, members: [a.id], offset: 0, epoch }, "join result");
    });

    await check(P("chat.join (second member) + chat.presence push to the first"), async () => {
      const presence = a.waitPush((m) => m.method === "chat.presence" && m.params.client_id === b.id, "chat.presence join");
      const r = await b.call("chat.join", { room: lobby });
      eq(r, { room: lobby, members: [a.id, b.id].sort(), offset: 0, epoch }, "join result");
      const m = await presence;
      eq(m.params, { room: lobby, client_id: b.id, event: "join" }, "presence params");
    });

    let off1;
    await check(P("chat.send → reply offset + chat.message on both"), async () => {
      const text = `hello from ${a.id}`;
      const pa = a.waitMessage((p) => p.room === lobby && p.message === text, "chat.message (sender)");
      const pb = b.waitMessage((p) => p.room === lobby && p.message === text, "chat.message (peer)");
      const r = await a.call("chat.send", { room: lobby, message: text });
      eq(r.room, lobby, "send result room");
      assert(Number.isInteger(r.offset) && r.offset >= 1, `offset ${r.offset} >= 1`);
      off1 = r.offset;
      for (const m of [await pa, await pb]) {
        const { ts, ...rest } = m.params;
        eq(rest, { room: lobby, from: a.id, message: text, offset: r.offset, epoch }, "chat.message params");
        assert(Number.isInteger(ts) && Math.abs(ts - Date.now()) < 300000, `ts ${ts} is Unix ms, near now`);
      }
    });

    let off2;
    await check(P("second chat.send gets the next offset"), async () => {
      const text = `second from ${b.id}`;
      const pa = a.waitMessage((p) => p.message === text, "chat.message");
      const r = await b.call("chat.send", { room: lobby, message: text });
      eq(r, { room: lobby, offset: off1 + 1, epoch }, "send result");
      off2 = r.offset;
      eq((await pa).params.from, b.id, "from");
    });

    await check(P("chat.direct to the other id"), async () => {
      const text = `psst ${b.id}`;
      const pb = b.waitMessage((p) => p.message === text, "direct chat.message");
      const r = await a.call("chat.direct", { to: b.id, message: text });
      eq(r, { delivered: 1 }, "direct result");
      const { ts, ...rest } = (await pb).params;
      eq(rest, { from: a.id, to: b.id, message: text }, "direct push params (no room, no offset)");
      assert(Number.isInteger(ts), "ts");
    });

    await check(P("chat.direct to an unknown id → -32002"), async () => {
      const e = await a.callError("chat.direct", { to: cid(`${tag}-nobody`), message: "x" });
      eq(e.code, -32002, "code");
    });

    await check(P("chat.members"), async () => {
      const r = await b.call("chat.members", { room: lobby });
      eq(r, { room: lobby, members: [a.id, b.id].sort() }, "members result");
    });

    await check(P("chat.history (all, then since; epoch and recovered)"), async () => {
      const all = await a.call("chat.history", { room: lobby });
      eq(all.room, lobby, "room");
      eq(all.messages.map((m) => [m.offset, m.from]), [[off1, a.id], [off2, b.id]], "history (offset, from)");
      for (const m of all.messages) assert(Number.isInteger(m.ts), "entry ts");
      eq([all.epoch, all.recovered], [epoch, off1 === 1], "history epoch, recovered (since 0: only if offset 1 is kept)");
      const since = await a.call("chat.history", { room: lobby, since: off1, epoch });
      eq(since.messages.map((m) => [m.offset, m.from, m.message]), [[off2, b.id, `second from ${b.id}`]], "history since");
      eq([since.epoch, since.recovered], [epoch, true], "history since in the epoch: recovered");
      const stale = await a.call("chat.history", { room: lobby, since: off2, epoch: `old-${epoch}`.slice(0, 32) });
      eq([stale.messages.map((m) => m.offset), stale.recovered], [[off1, off2], false], "a stale epoch: everything, not recovered");
      const lim = await a.call("chat.history", { room: lobby, since: 0, limit: 1 });
      eq(lim.messages.map((m) => m.offset), [off1], "history limit 1 (oldest first)");
    });

    await check(P("chat.broadcast → chat.message on both (no room)"), async () => {
      const text = `broadcast ${a.id}`;
      const pa = a.waitMessage((p) => p.message === text, "broadcast chat.message (sender)");
      const pb = b.waitMessage((p) => p.message === text, "broadcast chat.message (peer)");
      const r = await a.call("chat.broadcast", { message: text });
      eq(r.status, "ok", "status");
      assert(Number.isInteger(r.delivered) && r.delivered >= 2, `delivered ${r.delivered} >= 2`);
      for (const m of [await pa, await pb]) {
        const { ts, ...rest } = m.params;
        eq(rest, { from: a.id, message: text }, "broadcast push params");
      }
    });

    await check(P("unknown method → -32601"), async () => {
      const e = await a.callError("chat.nope", {});
      eq([e.code, e.rpcMessage], [-32601, "Method not found"], "error");
      eq(e.data, "chat.nope", "error data names the method");
    });

    await check(P("bad params (wrong type) → -32602"), async () => {
      const e = await a.callError("chat.join", { room: 42 });
      eq(e.code, -32602, "code");
    });

    await check(P("bad params (unknown key) → -32602"), async () => {
      const e = await a.callError("chat.send", { room: lobby, text: "x" });
      eq(e.code, -32602, "code");
    });

    await check(P("chat.send to a room not joined → -32001"), async () => {
      const e = await a.callError("chat.send", { room: room(`${tag}-other`), message: "x" });
      eq(e.code, -32001, "code");
    });

    await check(P("chat.leave → presence leave to the other"), async () => {
      const pa = a.waitPush((m) => m.method === "chat.presence" && m.params.event === "leave", "presence leave");
      eq(await b.call("chat.leave", { room: lobby }), { room: lobby }, "leave result");
      eq((await pa).params, { room: lobby, client_id: b.id, event: "leave" }, "presence params");
    });

    await check(P("close cleanly (1000)"), async () => {
      for (const c of [a, b]) {
        const { code } = await c.close();
        eq(code, 1000, `${c.id} close code`);
      }
    });
  });
}

// Spec examples (protocols/binary-raw.md) through this client's codec.
async function binarySpecExamples() {
  await scenario("binary-raw spec examples", async () => {
    await check("binary-raw: encoder reproduces the spec's request examples", () => {
      eq(hex(encodeBinRequest(1, "chat.ping", {})), "00 01 10", "ping");
      eq(hex(encodeBinRequest(1, "chat.ping", {}, { byName: true })), "08 01 09 63 68 61 74 2e 70 69 6e 67", "ping by name");
      eq(hex(encodeBinRequest(5, "chat.send", { room: "lobby", message: "hi all" })), "00 05 14 05 6c 6f 62 62 79 06 68 69 20 61 6c 6c", "send");
      eq(hex(encodeBinRequest(8, "chat.history", { room: "lobby", since: 40, limit: 2, epoch: EPOCH })), "00 08 17 05 6c 6f 62 62 79 28 02 10 39 63 34 65 31 66 30 61 37 62 32 64 38 65 33 35", "history");
      eq(hex(encodeBinRequest(9, "chat.history", { room: "lobby" })), "00 09 17 05 6c 6f 62 62 79 00 00 00", "history defaults");
      eq(hex(encodeBinRequest(6, "chat.direct", { to: "bob", message: "psst" })), "00 06 15 03 62 6f 62 04 70 73 73 74", "direct");
      const w = [];
      writeUvarint(w, zigzag(-32601n));
      eq(hex(w), "b1 fd 03", "zigzag -32601");
    });
    await check("binary-raw: decoder reads the spec's reply and push examples", () => {
      const methods = { 1: "chat.ping", 3: "chat.join", 5: "chat.send", 8: "chat.history" };
      const d = (s) => decodeBinFrame(unhex(s), (id) => methods[id]);
      eq(d("02 01 02 6f 6b 80 84 a4 92 0d").result, { status: "ok", timestamp: 1764000000 }, "ping result");
      eq(d("02 03 05 6c 6f 62 62 79 02 05 61 6c 69 63 65 03 62 6f 62 29 10 39 63 34 65 31 66 30 61 37 62 32 64 38 65 33 35").result, { room: "lobby", members: ["alice", "bob"], offset: 41, epoch: EPOCH }, "join result");
      eq(
        d("02 08 05 6c 6f 62 62 79 02 29 05 61 6c 69 63 65 05 66 69 72 73 74 f6 a1 bf e9 d6 66 2a 03 62 6f 62 06 73 65 63 6f 6e 64 f8 a1 bf e9 d6 66 10 39 63 34 65 31 66 30 61 37 62 32 64 38 65 33 35 01").result,
        {
          room: "lobby",
          messages: [
            { offset: 41, from: "alice", message: "first", ts: 1764000000123 },
            { offset: 42, from: "bob", message: "second", ts: 1764000000124 },
          ],
          epoch: EPOCH,
          recovered: true,
        },
        "history result",
      );
      eq(d("01 20 0d 05 61 6c 69 63 65 06 68 69 20 61 6c 6c f6 a1 bf e9 d6 66 05 6c 6f 62 62 79 2a 10 39 63 34 65 31 66 30 61 37 62 32 64 38 65 33 35").params, { from: "alice", message: "hi all", ts: 1764000000123, room: "lobby", offset: 42, epoch: EPOCH }, "chat.message push");
      eq(d("01 21 05 6c 6f 62 62 79 03 62 6f 62 01").params, { room: "lobby", client_id: "bob", event: "join" }, "presence push");
      eq(d("03 0b b1 fd 03 10 4d 65 74 68 6f 64 20 6e 6f 74 20 66 6f 75 6e 64 63 68 61 74 2e 6e 6f 70 65"), { kind: "reply", id: 11, error: { code: -32601, message: "Method not found", data: "chat.nope" } }, "error");
    });
  });
}

// binary-raw against the server: ping, join + send, decode the push.
async function binaryScenario() {
  await scenario("binary-raw chat", async (clients) => {
    const P = (s) => `binary-raw: ${s}`;
    const a = await check(P("connect"), () => connect(clients, "bin-a", "binary-raw"));
    const lobby = room("bin-room");

    await check(P("chat.ping"), async () => {
      const r = await a.call("chat.ping", {});
      eq(r.status, "ok", "status");
      assert(Math.abs(r.timestamp - Date.now() / 1000) < 300, `timestamp ${r.timestamp} near now`);
    });

    await check(P("chat.ping with the method by name (tag 08)"), async () => {
      const r = await a.call("chat.ping", {}, { raw: (id) => encodeBinRequest(id, "chat.ping", {}, { byName: true }) });
      eq(r.status, "ok", "status");
    });

    let epoch;
    await check(P("chat.join"), async () => {
      const r = await a.call("chat.join", { room: lobby });
      epoch = r.epoch;
      eq(r, { room: lobby, members: [a.id], offset: 0, epoch }, "join result");
    });

    await check(P("chat.send + chat.message push decoded"), async () => {
      const text = "hi from binary-raw ✓";
      const push = a.waitMessage((p) => p.message === text, "chat.message");
      const r = await a.call("chat.send", { room: lobby, message: text });
      eq(r, { room: lobby, offset: 1, epoch }, "send result");
      const { ts, ...rest } = (await push).params;
      eq(rest, { from: a.id, message: text, room: lobby, offset: 1, epoch }, "push");
      assert(Math.abs(ts - Date.now()) < 300000, `ts ${ts} near now`);
    });

    await check(P("chat.history"), async () => {
      const r = await a.call("chat.history", { room: lobby, since: 0, limit: 0 });
      eq(r.messages.map((m) => [m.offset, m.from, m.message]), [[1, a.id, "hi from binary-raw ✓"]], "history");
    });

    await check(P("rpc.discover lists the spec's method ids"), async () => {
      const r = await a.call("rpc.discover", {});
      const ids = Object.fromEntries(r.methods.map((m) => [m.name, [m.id, m.push]]));
      for (const [name, m] of Object.entries(BIN)) eq(ids[name], [m.id, false], name);
      for (const [id, [name]] of Object.entries(BIN_PUSH)) eq(ids[name], [Number(id), true], name);
    });

    await check(P("unknown method id 0x7f → -32601 with data #127"), async () => {
      const e = await a.callError("#127", undefined, { raw: (id) => encodeBinRequest(id, "#127", undefined, { rawMethodId: 0x7f }) });
      eq([e.code, e.data], [-32601, "#127"], "error");
    });

    await check(P("truncated params → -32602"), async () => {
      // chat.join with a room length of 5 but only 2 bytes.
      const e = await a.callError("chat.join", undefined, { raw: (id) => new BinWriter().byte(0).uvarint(id).uvarint(0x12).byte(5).byte(0x61).byte(0x62).bytes() });
      eq(e.code, -32602, "code");
    });

    await check(P("close cleanly (1000)"), async () => eq((await a.close()).code, 1000, "close code"));
  });
}

// Cross-encoding delivery: a room with one member of each encoding.
async function crossScenario() {
  await scenario("cross-encoding", async (clients) => {
    const j = await check("cross: connect json-rpc, msgpack and binary-raw members", async () => {
      const j = await connect(clients, "x-json", "json-rpc");
      const m = await connect(clients, "x-msgpack", "msgpack");
      const b = await connect(clients, "x-bin", "binary-raw");
      return [j, m, b];
    });
    const [json, mp, bin] = j;
    const lobby = room("x-room");
    await check("cross: all three join one room; presence crosses encodings", async () => {
      await json.call("chat.join", { room: lobby });
      const pj = json.waitPush((m) => m.method === "chat.presence" && m.params.client_id === mp.id, "presence of msgpack member");
      await mp.call("chat.join", { room: lobby });
      eq((await pj).params, { room: lobby, client_id: mp.id, event: "join" }, "presence at json member");
      const pm = mp.waitPush((m) => m.method === "chat.presence" && m.params.client_id === bin.id, "presence of binary-raw member");
      const r = await bin.call("chat.join", { room: lobby });
      eq(r.members, [json.id, mp.id, bin.id].sort(), "members");
      eq((await pm).params, { room: lobby, client_id: bin.id, event: "join" }, "presence at msgpack member");
    });
    for (const [sender, label] of [
      [json, "json-rpc"],
      [mp, "msgpack"],
      [bin, "binary-raw"],
    ]) {
      await check(`cross: ${label} chat.send reaches the other two encodings`, async () => {
        const text = `from ${label}: <ünïcødé & "quotes">`;
        const others = [json, mp, bin].filter((c) => c !== sender);
        const waits = others.map((c) => c.waitMessage((p) => p.message === text, `message from ${label}`));
        const r = await sender.call("chat.send", { room: lobby, message: text });
        for (const w of waits) {
          const { ts, ...rest } = (await w).params;
          eq(rest, { room: lobby, from: sender.id, message: text, offset: r.offset, epoch: r.epoch }, "push params");
          assert(Number.isInteger(ts), "ts");
        }
      });
    }
    await check("cross: json-rpc chat.direct reaches msgpack and binary-raw", async () => {
      for (const to of [mp, bin]) {
        const w = to.waitMessage((p) => p.to === to.id, "direct");
        eq(await json.call("chat.direct", { to: to.id, message: "dm" }), { delivered: 1 }, "direct result");
        const { ts, ...rest } = (await w).params;
        eq(rest, { from: json.id, to: to.id, message: "dm" }, "direct push");
      }
    });
    await check("cross: close cleanly", async () => {
      for (const c of [json, mp, bin]) eq((await c.close()).code, 1000, `${c.proto} close code`);
    });
  });
}

// Negotiation: the server picks the first supported name in the client's
// order, and refuses an offer with none with HTTP 400.
async function negotiationScenario() {
  await scenario("negotiation", async (clients) => {
    await check("negotiation: offer [xml-rpc] → HTTP 400", async () => {
      const url = `${base}/ws/${cid("neg-bad")}`;
      const status = await withTimeout(
        new Promise((resolve, reject) => {
          const ws = new WebSocket(url, ["xml-rpc"], { handshakeTimeout: TIMEOUT_MS });
          ws.once("unexpected-response", (req, res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (c) => (body += c));
            res.on("end", () => {
              req.destroy(); // ws leaves an unexpected response to us
              resolve({ code: res.statusCode, body });
            });
            res.on("error", reject);
          });
          ws.once("open", () => {
            ws.terminate();
            reject(new Error(`handshake succeeded with protocol "${ws.protocol}"`));
          });
          ws.on("error", (err) => reject(err));
        }),
        TIMEOUT_MS,
        "handshake refusal",
      );
      eq(status.code, 400, "status code");
      assert(/json-rpc/.test(status.body) && /msgpack/.test(status.body) && /binary-raw/.test(status.body), `body lists the supported names: ${JSON.stringify(status.body)}`);
    });
    await check("negotiation: offer [xml-rpc, msgpack, json-rpc] → msgpack (client's order)", async () => {
      const c = new Client("neg-order", "msgpack");
      clients.push(c);
      await withTimeout(
        new Promise((resolve, reject) => {
          c.ws = new WebSocket(`${base}/ws/${c.id}`, ["xml-rpc", "msgpack", "json-rpc"], { handshakeTimeout: TIMEOUT_MS });
          c.ws.on("message", (d, isBinary) => c.onMessage(d, isBinary));
          c.ws.once("open", resolve);
          c.ws.once("error", reject);
          c.ws.once("unexpected-response", (req, res) => {
            req.destroy();
            reject(new Error(`HTTP ${res.statusCode}`));
          });
        }),
        TIMEOUT_MS,
        "connect",
      );
      eq(c.ws.protocol, "msgpack", "negotiated protocol");
      eq((await c.call("chat.ping", {})).status, "ok", "ping over msgpack");
      eq((await c.close()).code, 1000, "close code");
    });
  });
}

// msgpack specifics that the json-rpc flow does not show.
async function msgpackExtras() {
  await scenario("msgpack extras", async (clients) => {
    const c = await check("msgpack: connect", () => connect(clients, "mp-x", "msgpack"));
    await check("msgpack: positional params [room] for chat.join", async () => {
      const r = await c.call("chat.join", undefined, { raw: (id) => mpEncode([0, id, "chat.join", [room("mp-x")]]) });
      eq(r.room, room("mp-x"), "room");
    });
    // Frames that are MessagePack but not valid messages: the server answers
    // [1, nil, {code: -32600, ...}, nil] (msgid nil: it could not be read).
    const invalid = async (frame, what) => {
      const got = new Promise((resolve) => {
        const h = (data) => {
          const m = mpDecode(data);
          if (m[0] === 1 && m[1] === null) {
            c.ws.off("message", h);
            resolve(m);
          }
        };
        c.ws.on("message", h);
      });
      c.ws.send(frame);
      const m = await withTimeout(got, TIMEOUT_MS, `null-msgid error for ${what}`);
      eq([m.length, m[2].code, m[3]], [4, -32600, null], `reply to ${what}`);
    };
    await check("msgpack: string msgid → -32600 with nil msgid", () => invalid(mpEncode([0, "req-1", "chat.ping", []]), "a string msgid"));
    await check("msgpack: params as a bare map → -32600", () => invalid(mpEncode([0, 99, "chat.join", { room: "x" }]), "bare-map params"));
    await check("msgpack: large and negative integer msgids echoed", async () => {
      for (const id of [2 ** 40, -1]) {
        const r = await c.call("chat.ping", undefined, { raw: () => mpEncode([0, id, "chat.ping", []]), id });
        eq(r.status, "ok", `ping with msgid ${id}`);
      }
    });
    await check("msgpack: close cleanly", async () => eq((await c.close()).code, 1000, "close code"));
  });
}

// ------------------------------------------------------------------ main

async function main() {
  console.log(`subgate interop (node ${process.version}, ws, @msgpack/msgpack) against ${base}, run ${RUN}`);
  await chatScenario("json-rpc", "json");
  await chatScenario("msgpack", "mp");
  await binarySpecExamples();
  await binaryScenario();
  await crossScenario();
  await msgpackExtras();
  await negotiationScenario();
  console.log(`${passed} passed, ${failed} failed`);
  // Exit now: a socket left open by a bug must not keep the process alive
  // (stdout is written synchronously to files and pipes on Linux).
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

main().catch((err) => {
  console.log(`FATAL: ${err && err.stack ? err.stack : err}`);
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
});
