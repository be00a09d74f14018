// Tests of gateway/web/client.js, the browser client module, from Node 20:
//
//   node clientjs.mjs [ws://HOST:PORT] [path/to/client.js]
//
// Offline (always): every golden vector in testdata/golden through the
// module's three codecs (decode, re-encode byte for byte, the same logical
// message in every encoding); its MessagePack against npm @msgpack/msgpack on
// many values; malformed frames refused with ProtocolError; the client's
// handling of bad frames, null-id errors and timeouts over a fake WebSocket.
// With a gateway URL: every chat method in every encoding, error codes,
// pushes across encodings, notify, close events.
//
// Prints one line per check and, last, "N passed, M failed"; exits 0 only
// when nothing failed. Every wait has a timeout; a watchdog ends the run.

import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import WebSocket from "ws";
import { encode as refEncode, decode as refDecode } from "@msgpack/msgpack";

const here = dirname(fileURLToPath(import.meta.url));
const TIMEOUT_MS = 5000;
const WATCHDOG_MS = 50000;

const base = (process.argv[2] || "").replace(/\/+$/, "");
const modPath = resolve(process.argv[3] || join(here, "../../gateway/web/client.js"));
if (base && !/^wss?:\/\/[^/]+$/.test(base)) {
  console.error("usage: node clientjs.mjs [ws://HOST:PORT] [client.js]");
  process.exit(2);
}
const watchdog = setTimeout(() => {
  console.error(`FATAL: clientjs.mjs still running after ${WATCHDOG_MS} ms; giving up`);
  process.exit(3);
}, WATCHDOG_MS);
watchdog.unref();

const { connect, codecs, msgpack, METHODS, ProtocolError, RPCError } = await import(pathToFileURL(modPath).href);
const ENCODINGS = ["json-rpc", "msgpack", "binary-raw"];

// ---------------------------------------------------------------- results

let passed = 0;
let failed = 0;

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}: ${err && err.stack ? err.stack : err}`);
  }
}

const hex = (s) => Uint8Array.from(s.trim().split(/\s+/).filter(Boolean), (h) => parseInt(h, 16));
const toHex = (b) => Array.from(b, (c) => c.toString(16).padStart(2, "0")).join(" ");

// throwsProtocol asserts fn throws a ProtocolError (never another error).
function throwsProtocol(fn, what) {
  try {
    fn();
  } catch (err) {
    if (err instanceof ProtocolError) return;
    throw new Error(`${what}: threw ${err && err.name} instead of ProtocolError: ${err && err.message}`);
  }
  throw new Error(`${what}: accepted`);
}

// ---------------------------------------------------------------- golden

const goldenDir = join(here, "../../testdata/golden");
const RESULT_OF = { ping: "chat.ping", discover: "rpc.discover" };
const methodOfVector = (name) => {
  const prefix = name.split(".")[0];
  return RESULT_OF[prefix] ?? `chat.${prefix}`;
};

function loadGolden() {
  const out = [];
  for (const f of readdirSync(goldenDir).filter((f) => f.endsWith(".golden")).sort()) {
    const wire = {};
    for (const line of readFileSync(join(goldenDir, f), "utf8").split("\n")) {
      if (!line || line.startsWith("#")) continue;
      const sp = line.indexOf(" ");
      const enc = line.slice(0, sp);
      wire[enc] = enc === "json-rpc" ? line.slice(sp + 1) : hex(line.slice(sp + 1));
    }
    out.push({ name: f.replace(/\.golden$/, ""), wire });
  }
  return out;
}

async function goldenChecks() {
  const vectors = loadGolden();
  await check(`golden: ${vectors.length} vectors loaded`, () => assert.ok(vectors.length >= 30));
  for (const { name, wire } of vectors) {
    const method = methodOfVector(name);
    await check(`golden ${name}: ${Object.keys(wire).join(", ")}`, () => {
      const decoded = {};
      for (const [enc, w] of Object.entries(wire)) {
        const msg = codecs[enc].decode(w, () => method);
        decoded[enc] = msg;
        const again = codecs[enc].encode(msg);
        if (typeof w === "string") assert.equal(again, w, `${enc} re-encoded`);
        else assert.equal(toHex(again), toHex(w), `${enc} re-encoded`);
        if (enc === "msgpack") {
          assert.deepEqual(msgpack.decode(w), refDecode(w), "msgpack value vs @msgpack/msgpack");
          assert.equal(toHex(refEncode(refDecode(w))), toHex(w), "@msgpack/msgpack re-encodes the vector");
        }
      }
      const [first, ...rest] = Object.keys(decoded);
      for (const enc of rest) assert.deepEqual(decoded[enc], decoded[first], `${enc} decodes like ${first}`);
    });
  }
  await check("golden: every binary-raw prefix of a non-error vector is refused with ProtocolError", () => {
    for (const { name, wire } of vectors) {
      const w = wire["binary-raw"];
      if (!w || name.startsWith("error.")) continue;
      for (let n = 0; n < w.length; n++) {
        throwsProtocol(() => codecs["binary-raw"].decode(w.subarray(0, n), () => methodOfVector(name)), `${name}[:${n}]`);
      }
    }
  });
  await check("golden: every msgpack prefix is refused with ProtocolError", () => {
    for (const { name, wire } of vectors) {
      const w = wire.msgpack;
      for (let n = 0; w && n < w.length; n++) throwsProtocol(() => codecs.msgpack.decode(w.subarray(0, n)), `${name}[:${n}]`);
    }
  });
}

// ------------------------------------------------------ msgpack cross-check

// A small deterministic PRNG, so that a failure can be replayed.
function prng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INTS = [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1,
  -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 53 - 1)];
const FLOATS = [0.5, -1.25, 1e300, -1e-300, Math.PI, NaN, Infinity, -Infinity, 2 ** 53, -(2 ** 60)];

function randomValue(rnd, depth = 0) {
  const pick = (a) => a[Math.floor(rnd() * a.length)];
  const len = () => pick([0, 1, 15, 16, 31, 32, 255, 256]);
  // No leading U+FEFF: @msgpack/msgpack drops it from long strings (see the BOM check).
  const str = (n) => Array.from({ length: n }, () => pick(["a", "é", "€", "😀", "\u0000", "\ufeff"])).join("").replace(/^\ufeff/, "a");
  switch (Math.floor(rnd() * (depth < 3 ? 9 : 7))) {
    case 0: return pick([null, true, false]);
    case 1: return pick(INTS);
    case 2: return Math.floor(rnd() * 2 ** 40) - 2 ** 39;
    case 3: return pick(FLOATS);
    case 4: return str(len());
    case 5: return Uint8Array.from({ length: len() }, () => Math.floor(rnd() * 256));
    case 6: return str(Math.floor(rnd() * 5));
    case 7: return Array.from({ length: pick([0, 1, 3, 15, 16]) }, () => randomValue(rnd, depth + 1));
    default: {
      const o = {};
      for (let i = pick([0, 1, 3, 15, 16]); i > 0; i--) o[`k${i}${str(1)}`] = randomValue(rnd, depth + 1);
      return o;
    }
  }
}

async function msgpackChecks() {
  await check("msgpack: boundary values encode byte for byte like @msgpack/msgpack and decode alike", () => {
    const big = (n, ch = "x") => ch.repeat(n);
    const values = [null, true, false, ...INTS, ...FLOATS, "", big(31), big(32), big(255), big(256), big(65535), big(65536),
      big(100, "€"), new Uint8Array(0), new Uint8Array(255), new Uint8Array(256), new Uint8Array(65536),
      new Array(15).fill(1), new Array(16).fill(1), new Array(65536).fill(0),
      Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, i])),
      Object.fromEntries(Array.from({ length: 65536 }, (_, i) => [`k${i}`, i]))];
    for (const v of values) crossCheck(v);
  });
  await check("msgpack: 3000 random values encode byte for byte like @msgpack/msgpack and decode alike", () => {
    const rnd = prng(20260901);
    for (let i = 0; i < 3000; i++) crossCheck(randomValue(rnd));
  });
  await check("msgpack: 64-bit integers beyond 2^53 are BigInt both ways", () => {
    for (const v of [2n ** 53n, 2n ** 63n, 2n ** 64n - 1n, -(2n ** 53n) - 1n, -(2n ** 63n)]) {
      const mine = msgpack.encode(v);
      assert.equal(refDecode(mine, { useBigInt64: true }), v);
      assert.equal(msgpack.decode(mine), v);
      assert.equal(msgpack.decode(refEncode(v, { useBigInt64: true })), v);
    }
    assert.equal(msgpack.decode(hex("cf 00 00 00 00 00 00 00 05")), 5, "uint64 5 is a Number");
    assert.equal(msgpack.decode(hex("d3 ff ff ff ff ff ff ff ff")), -1, "int64 -1 is a Number");
    assert.throws(() => msgpack.encode(2n ** 64n), RangeError);
  });
  await check("msgpack: a leading U+FEFF is kept, short and long (@msgpack/msgpack 3.1.3 drops it from strings over 200 bytes)", () => {
    for (const s of ["\ufeffx", `\ufeff${"x".repeat(300)}`]) {
      assert.equal(msgpack.decode(msgpack.encode(s)), s);
      assert.equal(toHex(msgpack.encode(s)), toHex(refEncode(s)));
    }
    assert.equal(codecs["binary-raw"].decode(hex("02 01 03 ef bb bf 00"), () => "chat.ping").result.status, "\ufeff");
  });
  await check("msgpack: float32, str8/16/32 and bin/array/map 32-bit headers in non-minimal form decode", () => {
    assert.equal(msgpack.decode(hex("ca 3f c0 00 00")), 1.5);
    assert.equal(msgpack.decode(hex("db 00 00 00 02 68 69")), "hi");
    assert.equal(msgpack.decode(hex("da 00 02 68 69")), "hi");
    assert.deepEqual(msgpack.decode(hex("c6 00 00 00 01 07")), Uint8Array.of(7));
    assert.deepEqual(msgpack.decode(hex("dd 00 00 00 01 c0")), [null]);
    assert.deepEqual(msgpack.decode(hex("df 00 00 00 01 a1 61 01")), { a: 1 });
    assert.deepEqual(msgpack.decode(hex("81 a9 5f 5f 70 72 6f 74 6f 5f 5f 01")), JSON.parse('{"__proto__":1}'));
  });
  await check("msgpack: extension types, 0xc1, trailing bytes, lying counts, non-string keys, depth 33 refused", () => {
    const bad = ["c7 01 01 00", "c8 00 01 01 00", "c9 00 00 00 01 01 00", "d4 01 00", "d5 01 00 00", "d6 ff 00 00 00 00",
      "d7 01 00 00 00 00 00 00 00 00", "d8 01" + " 00".repeat(16), "c1", "c0 c0", "dc ff ff 01 02 03",
      "dd ff ff ff ff", "c6 ff ff ff ff", "de 00 02 a1 61 01", "81 01 02", "a2 c3 28", "91 ".repeat(33) + "c0"];
    for (const b of bad) throwsProtocol(() => msgpack.decode(hex(b)), b);
    msgpack.decode(hex("91 ".repeat(32) + "c0")); // 32 levels are fine
    assert.throws(() => msgpack.encode(new Date()), TypeError);
  });
  await check("hostile vectors: every frame decodes or is refused with ProtocolError", () => {
    for (const enc of ["msgpack", "binary-raw"]) {
      const dir = join(here, "../../testdata/hostile", enc);
      for (const f of readdirSync(dir)) {
        const text = readFileSync(join(dir, f), "utf8").split("\n").filter((l) => !l.startsWith("#")).join(" ");
        try {
          codecs[enc].decode(hex(text), () => "chat.ping");
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw new Error(`${enc}/${f}: ${err.name}: ${err.message}`);
        }
      }
    }
  });
}

function crossCheck(v) {
  const mine = msgpack.encode(v);
  const ref = refEncode(v);
  assert.equal(toHex(mine), toHex(ref), `encoding of ${describe(v)}`);
  assert.deepEqual(msgpack.decode(ref), refDecode(ref), `decoding of ${describe(v)}`);
}

const describe = (v) => {
  const s = typeof v === "object" && v ? Object.prototype.toString.call(v) : String(v);
  return s.length > 60 ? `${s.slice(0, 60)}...` : s;
};

// ---------------------------------------------------- binary-raw specifics

async function binaryRawChecks() {
  const br = codecs["binary-raw"];
  await check("binary-raw: varint and id boundaries round-trip (Number when safe, else BigInt)", () => {
    const ids = [0, 1, 127, 128, 2 ** 53 - 1, 2n ** 53n, 2n ** 63n - 1n];
    const codes = [0, -1, 1, -32601, 2 ** 52, -(2 ** 52), 2 ** 53 - 1, -(2 ** 53 - 1), 2n ** 63n - 1n, -(2n ** 63n)];
    for (const id of ids) {
      for (const code of codes) {
        const m = { kind: "error", id, error: { code, message: "m" } };
        const back = br.decode(br.encode(m));
        assert.equal(back.id, typeof id === "bigint" && id <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(id) : id);
        assert.equal(back.error.code, code);
      }
    }
  });
  await check("binary-raw: malformed server frames refused with ProtocolError", () => {
    const ping = () => "chat.ping";
    const bad = {
      "reserved tag bit": "22 01 02 6f 6b 00",
      "reserved kind": "05",
      "M on a result": "0a 01 02 6f 6b 00",
      "N on a request": "10 01 10",
      "non-minimal id": "02 81 00 02 6f 6b 00",
      "11-byte varint": "02 80 80 80 80 80 80 80 80 80 80 01",
      "10th byte 02": "02 80 80 80 80 80 80 80 80 80 02",
      "id 2^63": "02 80 80 80 80 80 80 80 80 80 01 02 6f 6b 00",
      "string past the end": "02 01 05 6f 6b 00",
      "invalid UTF-8": "02 01 02 c3 28 00",
      "surrogate in UTF-8": "02 01 03 ed a0 80 00",
      "bytes after the payload": "02 01 02 6f 6b 00 00",
      "presence event 3": "01 21 01 72 01 62 03",
      "presence event 0": "01 21 01 72 01 62 00",
      "message reserved flag": "01 20 10 01 61 01 62 00",
      "message offset flag without epoch flag": "01 20 04 01 61 01 62 00 01",
      "message epoch flag without offset flag": "01 20 08 01 61 01 62 00 01 65",
      "message flag with empty epoch": "01 20 0c 01 61 01 62 00 01 00",
      "message flag with empty room": "01 20 01 01 61 01 62 00 00",
      "message flag with offset 0": "01 20 0c 01 61 01 62 00 00 01 65",
      "empty batch": "04 00",
      "batch of 101": "04 65",
      "nested batch": "04 01 03 04 01 00",
      "bytes after a batch": "04 01 03 02 01 00 00",
      "empty method name": "09 00",
      "bool byte 2 in rpc.discover": "02 01 01 01 61 01 02 00 00",
      "list count past the end": "02 01 01 05 61",
    };
    for (const [what, h] of Object.entries(bad)) {
      throwsProtocol(() => br.decode(hex(h), what.includes("discover") || what.includes("list") ? () => "rpc.discover" : ping), what);
    }
  });
  await check("binary-raw: unknown push ids and results for unknown calls are marked unknown, not refused", () => {
    assert.equal(br.decode(hex("01 7f 01 02 03")).unknown, true);
    assert.equal(br.decode(hex("02 09 01 02"), () => undefined).unknown, true);
    assert.deepEqual(br.decode(hex("13 af fd 03 0f 49 6e 76 61 6c 69 64 20 52 65 71 75 65 73 74")),
      { kind: "error", id: null, error: { code: -32600, message: "Invalid Request" } });
  });
  await check("binary-raw: params that do not fit the layout are RPCError -32602 before sending", () => {
    for (const params of [{ room: 5 }, { room: "r", extra: 1 }, { room: "r", since: -1 }, { room: "r", limit: 1.5 }]) {
      const err = catchSync(() => br.encode({ kind: "request", id: 1, method: "chat.history", params }));
      assert.ok(err instanceof RPCError, `${JSON.stringify(params)}: ${err}`);
      assert.equal(err.code, -32602);
    }
    assert.equal(toHex(br.encode({ kind: "request", id: 1, method: "chat.nope", params: { x: 1 } })),
      "08 01 09 63 68 61 74 2e 6e 6f 70 65", "unknown method by name, no payload");
  });
}

function catchSync(fn) {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return null;
}

// -------------------------------------------------- the client, faked socket

// FakeWS stands in for a WebSocket: the test plays the server.
class FakeWS extends EventTarget {
  static last;
  static choose = (offer) => offer[0];
  constructor(url, offer) {
    super();
    Object.assign(this, { url, offer, readyState: 0, protocol: "", sent: [], closedWith: null });
    FakeWS.last = this;
    queueMicrotask(() => {
      this.readyState = 1;
      this.protocol = FakeWS.choose(offer);
      this.dispatchEvent(new Event("open"));
    });
  }
  send(data) {
    this.sent.push(data);
  }
  close(code = 1005, reason = "") {
    if (this.readyState >= 2) return;
    this.readyState = 3;
    this.closedWith = { code, reason };
    queueMicrotask(() => this.dispatchEvent(Object.assign(new Event("close"), { code, reason })));
  }
  receive(data) {
    this.dispatchEvent(Object.assign(new Event("message"), { data }));
  }
}

const asFrame = (enc, msg) => {
  const f = codecs[enc].encode(msg);
  return typeof f === "string" ? f : f.buffer.slice(f.byteOffset, f.byteOffset + f.byteLength);
};

async function fakeChecks() {
  for (const enc of ENCODINGS) {
    await check(`fake ${enc}: token offered as bearer entry; a bad frame closes (1002, reason) and rejects pending calls`, async () => {
      const c = await connect("ws://fake/ws/a", { protocol: enc, token: "t0k", WebSocket: FakeWS });
      const ws = FakeWS.last;
      assert.deepEqual(ws.offer, [enc, "bearer.t0k"]);
      assert.equal(ws.binaryType, "arraybuffer");
      const closed = new Promise((res) => c.on("close", res));
      const pending = c.call("chat.ping");
      ws.receive(enc === "json-rpc" ? "{not json" : new Uint8Array([0xc1]).buffer);
      const err = await pending.then(() => null, (e) => e);
      assert.equal(err?.closeCode, 1002, String(err));
      const ev = await closed;
      assert.equal(ev.code, 1002);
      assert.match(ev.reason, /bad frame from the server/);
      assert.equal(ws.closedWith.code, 1000);
      await assert.rejects(c.call("chat.ping"), (e) => e.closeCode === 1002);
    });
    await check(`fake ${enc}: wrong frame type, a server request and a bad chat.message field each close with 1002`, async () => {
      const bads = [
        enc === "json-rpc" ? new Uint8Array([1]).buffer : "{}",
        asFrame(enc, { kind: "request", id: 1, method: "chat.ping", params: {} }),
        enc === "binary-raw" ? Uint8Array.of(0x01, 0x20, 0x00, 0x01, 0x61).buffer
          : enc === "json-rpc" ? '{"jsonrpc":"2.0","method":"chat.message","params":{"from":"a","message":"m","ts":"x"}}'
          : msgpack.encode([2, "chat.message", [{ from: "a", message: "m", ts: "x" }]]).buffer,
      ];
      for (const frame of bads) {
        const c = await connect("ws://fake/ws/a", { protocol: enc, WebSocket: FakeWS });
        let got = null;
        c.on("close", (ev) => (got = ev));
        c.on("chat.message", () => assert.fail("handler called for a bad push"));
        FakeWS.last.receive(frame);
        assert.equal(got?.code, 1002, `frame ${describe(frame)}`);
      }
    });
    await check(`fake ${enc}: results for unknown ids are ignored, null-id errors go to 'error', replies resolve by id`, async () => {
      const c = await connect("ws://fake/ws/a", { protocol: enc, WebSocket: FakeWS });
      const ws = FakeWS.last;
      const errors = [];
      c.on("error", (e) => errors.push(e));
      const p1 = c.call("chat.ping");
      const p2 = c.call("chat.leave", { room: "r" });
      ws.receive(asFrame(enc, { kind: "result", id: 99, method: "chat.ping", result: { status: "ok", timestamp: 1 } }));
      ws.receive(asFrame(enc, { kind: "error", id: null, error: { code: -32700, message: "Parse error", data: "x" } }));
      ws.receive(asFrame(enc, { kind: "error", id: 2, error: { code: -32001, message: "Not a member of the room" } }));
      ws.receive(asFrame(enc, { kind: "result", id: 1, method: "chat.ping", result: { status: "ok", timestamp: 7 } }));
      assert.deepEqual(await p1, { status: "ok", timestamp: 7 });
      const err = await p2.then(() => null, (e) => e);
      assert.ok(err instanceof RPCError && err.code === -32001 && err.data === undefined, String(err));
      assert.equal(errors.length, 1);
      assert.equal(errors[0].code, -32700);
      assert.equal(errors[0].data, "x");
      assert.equal(ws.sent.length, 2);
      c.close();
    });
  }
  await check("fake: a call past its timeout rejects; a server choosing another subprotocol fails connect", async () => {
    const c = await connect("ws://fake/ws/a", { WebSocket: FakeWS, timeout: 20 });
    await assert.rejects(c.call("chat.ping"), /no reply after 20 ms/);
    FakeWS.choose = () => "";
    try {
      await assert.rejects(connect("ws://fake/ws/a", { protocol: "msgpack", WebSocket: FakeWS }), /chose subprotocol/);
    } finally {
      FakeWS.choose = (offer) => offer[0];
    }
    await assert.rejects(connect("ws://fake/ws/a", { protocol: "xml", WebSocket: FakeWS }), TypeError);
  });
}

// ---------------------------------------------------------- live gateway

const RUN = `${process.pid.toString(36)}${Math.floor(Math.random() * 2 ** 32).toString(36)}`;

// waitFor resolves with the params of the next `event` that pred accepts.
function waitFor(c, event, pred = () => true, ms = TIMEOUT_MS) {
  return new Promise((res, rej) => {
    const timer = setTimeout(() => {
      c.off(event, h);
      rej(new Error(`no ${event} within ${ms} ms`));
    }, ms);
    const h = (p) => {
      if (!pred(p)) return;
      clearTimeout(timer);
      c.off(event, h);
      res(p);
    };
    c.on(event, h);
  });
}

async function rpcError(promise) {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof Error && typeof err.code === "number", `not an error with a code: ${err}`);
    return err;
  }
  throw new Error("call succeeded, an error was expected");
}

async function live(enc, peerEnc) {
  const A = `js-a-${enc}-${RUN}`;
  const B = `js-b-${peerEnc}-${RUN}`;
  const room = `js-${enc}-${RUN}`;
  const clients = [];
  const open = async (id, protocol) => {
    const c = await connect(`${base}/ws/${id}`, { protocol, WebSocket, timeout: TIMEOUT_MS });
    clients.push(c);
    return c;
  };
  const t = (what) => `live ${enc} (peer ${peerEnc}): ${what}`;
  try {
    let a, b, epoch;
    const frames = [];
    await check(t("connect both, protocol negotiated"), async () => {
      a = await open(A, enc);
      a.on("frame", (f) => frames.push(f));
      b = await open(B, peerEnc);
      assert.equal(a.protocol, enc);
      assert.equal(b.protocol, peerEnc);
    });
    if (!a || !b) return;
    await check(t("chat.ping"), async () => {
      const r = await a.call("chat.ping");
      assert.deepEqual(Object.keys(r), ["status", "timestamp"]);
      assert.equal(r.status, "ok");
      assert.ok(Number.isSafeInteger(r.timestamp) && r.timestamp > 1.7e9 && r.timestamp < 1e11, `seconds: ${r.timestamp}`);
    });
    await check(t("rpc.discover lists the method table"), async () => {
      const { methods } = await a.call("rpc.discover", {});
      assert.deepEqual(methods.map((m) => m.name), Object.keys(METHODS));
      for (const m of methods) {
        assert.equal(m.id, METHODS[m.name][0], m.name);
        assert.equal(m.push, METHODS[m.name][2] === null, m.name);
        assert.equal("result" in m, !m.push, `${m.name}: result key only for methods`);
      }
    });
    await check(t("chat.join, presence join pushed to the other encoding, chat.members"), async () => {
      const ja = await a.call("chat.join", { room });
      epoch = ja.epoch;
      assert.match(epoch, /^[A-Za-z0-9_-]{1,32}$/);
      assert.deepEqual(ja, { room, members: [A], offset: 0, epoch });
      const pres = waitFor(a, "chat.presence", (p) => p.client_id === B);
      assert.deepEqual(await b.call("chat.join", { room }), { room, members: [A, B], offset: 0, epoch });
      assert.deepEqual(await pres, { room, client_id: B, event: "join" });
      assert.deepEqual(await b.call("chat.members", { room }), { room, members: [A, B] });
    });
    const m1 = `hello from ${enc} ✓`;
    await check(t("chat.send: result and chat.message to both members"), async () => {
      const pa = waitFor(a, "chat.message", (p) => p.message === m1);
      const pb = waitFor(b, "chat.message", (p) => p.message === m1);
      assert.deepEqual(await a.call("chat.send", { room, message: m1 }), { room, offset: 1, epoch });
      for (const p of [await pa, await pb]) {
        assert.ok(Number.isSafeInteger(p.ts) && p.ts > 1.7e12, `ts in ms: ${p.ts}`);
        assert.deepEqual(p, { room, from: A, message: m1, offset: 1, epoch, ts: p.ts });
      }
    });
    const m2 = `notified from ${enc}`;
    await check(t("notify chat.send: no reply, the push arrives, history since 1 has it"), async () => {
      const pb = waitFor(b, "chat.message", (p) => p.message === m2);
      const before = frames.filter((f) => f.dir === "in").length;
      a.notify("chat.send", { room, message: m2 });
      assert.equal((await pb).offset, 2);
      const h = await a.call("chat.history", { room, since: 1 });
      assert.equal(h.room, room);
      assert.deepEqual(h.messages.map(({ offset, from, message }) => ({ offset, from, message })), [{ offset: 2, from: A, message: m2 }]);
      assert.ok(Number.isSafeInteger(h.messages[0].ts));
      // In: a's own push of m2 and the history reply; the notification got none.
      assert.equal(frames.filter((f) => f.dir === "in").length - before, 2);
    });
    await check(t("chat.history: defaults, limit, since past the end"), async () => {
      const all = await b.call("chat.history", { room });
      assert.deepEqual(all.messages.map((m) => m.offset), [1, 2]);
      assert.deepEqual((await b.call("chat.history", { room, limit: 1 })).messages.map((m) => m.message), [m1]);
      assert.deepEqual(await b.call("chat.history", { room, since: 2 }), { room, messages: [], epoch, recovered: true });
      assert.deepEqual(await b.call("chat.history", { room, since: 2, epoch }), { room, messages: [], epoch, recovered: true });
      const stale = await b.call("chat.history", { room, since: 2, epoch: "stale" });
      assert.deepEqual([stale.messages.map((m) => m.offset), stale.epoch, stale.recovered], [[1, 2], epoch, false]);
    });
    await check(t("chat.broadcast: result and a push without room"), async () => {
      const text = `broadcast ${enc} ${RUN}`;
      const pb = waitFor(b, "chat.message", (p) => p.message === text);
      const r = await a.call("chat.broadcast", { message: text });
      assert.equal(r.status, "ok");
      assert.ok(Number.isSafeInteger(r.delivered) && r.delivered >= 2, `delivered ${r.delivered}`);
      const p = await pb;
      assert.deepEqual(p, { from: A, message: text, ts: p.ts });
    });
    await check(t("chat.direct: result and a push with to"), async () => {
      const pb = waitFor(b, "chat.message", (p) => p.to === B);
      assert.deepEqual(await a.call("chat.direct", { to: B, message: "psst" }), { delivered: 1 });
      const p = await pb;
      assert.deepEqual(p, { from: A, to: B, message: "psst", ts: p.ts });
    });
    await check(t("error codes: -32601 -32602 -32001 -32002 -32003 -32004 -32005"), async () => {
      const nope = await rpcError(a.call("chat.nope", {}));
      assert.equal(nope.code, -32601);
      assert.equal(nope.data, "chat.nope");
      assert.ok(nope instanceof RPCError);
      for (const params of [{ room, limit: 101 }, { room: 5 }, { room, bogus: 1 }]) {
        assert.equal((await rpcError(a.call("chat.history", params))).code, -32602, JSON.stringify(params));
      }
      assert.equal((await rpcError(a.call("chat.send", { room: `${room}-x`, message: "m" }))).code, -32001);
      assert.equal((await rpcError(a.call("chat.direct", { to: `nobody-${RUN}`, message: "m" }))).code, -32002);
      assert.equal((await rpcError(a.call("chat.join", { room: "bad room!" }))).code, -32003);
      assert.equal((await rpcError(a.call("chat.send", { room, message: "x".repeat(4097) }))).code, -32004);
      assert.equal((await rpcError(a.call("chat.send", { room, message: "" }))).code, -32005);
      assert.deepEqual(await a.call("chat.ping").then((r) => r.status), "ok", "still usable");
    });
    await check(t("chat.leave: result and presence leave to the other member"), async () => {
      const pa = waitFor(a, "chat.presence", (p) => p.event === "leave");
      assert.deepEqual(await b.call("chat.leave", { room }), { room });
      assert.deepEqual(await pa, { room, client_id: B, event: "leave" });
    });
    await check(t("frame events: every frame in and out, typed for the encoding"), () => {
      const type = enc === "json-rpc" ? "string" : "Uint8Array";
      assert.ok(frames.some((f) => f.dir === "in") && frames.some((f) => f.dir === "out"));
      for (const f of frames) assert.equal(typeof f.data === "string" ? "string" : f.data.constructor.name, type);
    });
    await check(t("close(): close event 1000, later calls reject"), async () => {
      const ev = waitFor(a, "close");
      a.close();
      assert.equal((await ev).code, 1000);
      await assert.rejects(a.call("chat.ping"), (e) => e.closeCode === 1000);
    });
  } finally {
    for (const c of clients) c.close();
  }
}

async function liveEdges() {
  await check("live: a refused handshake (invalid client id) rejects connect with close 1006", async () => {
    await assert.rejects(connect(`${base}/ws/bad%20id`, { WebSocket, timeout: TIMEOUT_MS }), (e) => e.closeCode === 1006);
  });
  for (const enc of ENCODINGS) {
    // Over the default rate limit (100/s, burst 200) 400 pipelined pings get
    // -32006 and, after 50 refusals in a row, close 1008; the rest reject.
    // (A frame over the size limit is not used: the server closes with 1009
    // while the client is still writing it, and the client may see 1006.)
    await check(`live ${enc}: over the rate limit: -32006, then close 1008 with its reason, pending calls rejected`, async () => {
      const c = await connect(`${base}/ws/js-rate-${RUN}`, { protocol: enc, WebSocket, timeout: TIMEOUT_MS });
      const ev = waitFor(c, "close");
      const res = await Promise.allSettled(Array.from({ length: 400 }, () => c.call("chat.ping")));
      assert.deepEqual(await ev, { code: 1008, reason: "rate limit exceeded" });
      const count = (pred) => res.filter(pred).length;
      const limited = count((r) => r.reason instanceof RPCError && r.reason.code === -32006);
      const closed = count((r) => r.reason?.closeCode === 1008 && r.reason.reason === "rate limit exceeded");
      assert.ok(limited >= 50 && closed >= 1, `limited ${limited}, closed ${closed}`);
      assert.equal(count((r) => r.status === "fulfilled") + limited + closed, 400);
    });
  }
}

// -------------------------------------------------------------------- main

await goldenChecks();
await msgpackChecks();
await binaryRawChecks();
await fakeChecks();
if (base) {
  for (let i = 0; i < ENCODINGS.length; i++) await live(ENCODINGS[i], ENCODINGS[(i + 1) % ENCODINGS.length]);
  await liveEdges();
} else console.log("     (no gateway URL: live checks not run)");
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
