// subgate client: one ES module, no imports, for browsers and Node 20.
//
// API (the contract; see protocols/*.md for the wire):
//
//   import { connect } from '/client.js';
//   const c = await connect('ws://host:8080/ws/alice', {
//     protocol: 'msgpack',      // 'json-rpc' (default) | 'msgpack' | 'binary-raw'
//     token: 'eyJ...',          // optional: offered as the 'bearer.<token>' subprotocol entry
//     WebSocket,                // optional constructor (default globalThis.WebSocket;
//                               // Node 20: the `ws` package's WebSocket)
//     timeout: 30000,           // optional: ms for the handshake and each call; 0 = none
//   });
//   c.protocol;                                   // the negotiated subprotocol
//   await c.call('chat.join', { room: 'lobby' }); // plain object; rejects with RPCError
//   c.notify('chat.send', { room: 'lobby', message: 'hi' });  // no reply
//   c.on('chat.message', (params) => {});  c.off('chat.message', handler);
//   c.on('close', ({ code, reason }) => {});    // once, when the connection ends
//   c.on('frame', ({ dir, data }) => {});       // every frame: dir 'in'|'out', data string
//                                               // (json-rpc) or Uint8Array (binary)
//   c.on('error', (err) => {});                 // an error reply with a null id (no call
//                                               // to reject: the server could not read a frame)
//   c.close();
//
// Results and push params are plain objects with the same field names in every
// encoding: binary-raw's enum bytes become the strings json-rpc uses ("join",
// "leave"), fields json-rpc omits when empty are omitted, offsets and ts are
// Numbers (a 64-bit integer beyond 2^53 would come as a BigInt).
//
// Errors: an error reply rejects the call with an RPCError, an Error with the
// numeric `code` and the `data` string of the reply. A call still pending when
// the connection closes, or past `timeout`, rejects with an Error whose `code`
// is undefined and whose `closeCode`/`reason` say why.
//
// Decisions:
// - MessagePack is our own encoder/decoder, below: the page loads one file with
//   no build step and nothing fetched from elsewhere, and the ~150 lines are
//   tested against every golden vector in testdata/golden and cross-checked
//   against npm @msgpack/msgpack (interop/node/clientjs.mjs). Extension types
//   are refused, as the server refuses them.
// - Every frame received is validated (envelope and, for the chat methods and
//   pushes, each field's type). A malformed frame, a frame of the wrong type,
//   or a request from the server (v1 servers send none) fails the connection:
//   the client sends close 1000 with the reason (browsers may not send 1002),
//   rejects pending calls, and reports close code 1002 with that reason.
// - binary-raw params that cannot be encoded (a field of the wrong type, an
//   unknown key) reject the call locally with -32602, as the server would in
//   the other encodings; a method outside the table is sent by name (tag 08)
//   with an empty payload, so the server answers -32601 naming it.
// - Pushes with a method id this client does not know are ignored
//   (binary-raw §3: newer servers add pushes).

const utf8 = new TextEncoder();
const utf8strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MAX_ID = (1n << 63n) - 1n;

/** An error reply from the server: numeric code, message and optional data. */
export class RPCError extends Error {
  constructor(code, message, data) {
    super(data ? `${message}: ${data}` : message);
    this.name = 'RPCError';
    this.code = code;
    this.data = data;
  }
}

/** A frame from the server that does not follow the protocol. */
export class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ProtocolError';
  }
}

const fail = (msg) => {
  throw new ProtocolError(msg);
};

function decodeUTF8(bytes, what) {
  try {
    return utf8strict.decode(bytes);
  } catch {
    return fail(`${what}: invalid UTF-8`);
  }
}

// A BigInt as a Number when that is exact.
const narrow = (x) => (x <= MAX_SAFE && x >= -MAX_SAFE ? Number(x) : x);

// ------------------------------------------------------------ chat layouts
//
// One table drives binary-raw's payloads and the field checks of the other
// two encodings. Types: 's' string, 'u' unsigned, 'i' signed, 'b' bool,
// {list: T}, {enum: [names]} (binary-raw: a byte, 1 for the first name), and
// a record: [[field, type, optional]], fields in binary-raw order. Optional
// fields are omitted when empty or 0, as json-rpc omits them.

const S = 's', U = 'u', I = 'i', B = 'b', OPT = true;
const list = (t) => ({ list: t });
const ROOM = ['room', S];
const MethodInfo = [['name', S], ['id', U], ['push', B], ['params', S], ['result', S, OPT]];
const HistoryEntry = [['offset', U], ['from', S], ['message', S], ['ts', I]];
// chat.message's fields in json-rpc order; binary-raw writes it with flags (§9).
const Message = [['room', S, OPT], ['from', S], ['to', S, OPT], ['message', S], ['offset', U, OPT], ['epoch', S, OPT], ['ts', I]];

/** The chat methods and pushes: name -> [binary-raw id, params, result (null for pushes)]. */
export const METHODS = {
  'rpc.discover': [0x01, [], [['methods', list(MethodInfo)]]],
  'chat.ping': [0x10, [], [['status', S], ['timestamp', I]]],
  'chat.broadcast': [0x11, [['message', S]], [['status', S], ['delivered', U]]],
  'chat.join': [0x12, [ROOM], [ROOM, ['members', list(S)], ['offset', U], ['epoch', S]]],
  'chat.leave': [0x13, [ROOM], [ROOM]],
  'chat.send': [0x14, [ROOM, ['message', S]], [ROOM, ['offset', U], ['epoch', S]]],
  'chat.direct': [0x15, [['to', S], ['message', S]], [['delivered', U]]],
  'chat.members': [0x16, [ROOM], [ROOM, ['members', list(S)]]],
  'chat.history': [0x17, [ROOM, ['since', U, OPT], ['limit', U, OPT], ['epoch', S, OPT]],
    [ROOM, ['messages', list(HistoryEntry)], ['epoch', S], ['recovered', B]]],
  'chat.message': [0x20, Message, null],
  'chat.presence': [0x21, [ROOM, ['client_id', S], ['event', { enum: ['join', 'leave'] }]], null],
  'gateway.notice': [0x22, [['kind', S], ['message', S]], null],
};
const BY_ID = new Map(Object.entries(METHODS).map(([name, [id]]) => [id, name]));

const isRecord = (v) => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
const isInt = (v) => Number.isSafeInteger(v) || typeof v === 'bigint';

// check throws a ProtocolError unless v has type t (unknown keys are allowed:
// servers may add result keys).
function check(v, t, path) {
  const bad = (want) => fail(`${path}: ${want} expected`);
  if (t === S) typeof v === 'string' || bad('string');
  else if (t === U) (isInt(v) && v >= 0) || bad('unsigned integer');
  else if (t === I) isInt(v) || bad('integer');
  else if (t === B) typeof v === 'boolean' || bad('bool');
  else if (t.list) {
    if (!Array.isArray(v)) bad('array');
    v.forEach((e, i) => check(e, t.list, `${path}[${i}]`));
  } else if (t.enum) t.enum.includes(v) || bad(t.enum.join(' or '));
  else {
    if (!isRecord(v)) bad('object');
    for (const [k, ft, opt] of t) if (!(opt && v[k] === undefined)) check(v[k], ft, `${path}.${k}`);
  }
  return v;
}

// body checks the params or result of a known chat method; others pass.
function checkBody(method, which, v) {
  const m = METHODS[method];
  const t = m && m[which];
  return t ? check(v, t, `${method} ${which === 1 ? 'params' : 'result'}`) : v;
}

// ---------------------------------------------------------------- varints

class Reader {
  constructor(b, p = 0, end = b.length) {
    Object.assign(this, { b, p, end });
  }
  left() {
    return this.end - this.p;
  }
  byte() {
    if (this.p >= this.end) fail('truncated');
    return this.b[this.p++];
  }
  // uvarint (binary-raw §2): minimal, at most 10 bytes; a Number when safe.
  uvarint() {
    const { b, p } = this;
    let n = 0;
    for (; ; n++) {
      if (n === 10) fail('varint longer than 10 bytes');
      if (p + n >= this.end) fail('truncated varint');
      const c = b[p + n];
      if (c < 0x80) {
        if (n > 0 && c === 0) fail('non-minimal varint');
        if (n === 9 && c > 1) fail('varint overflows 64 bits');
        break;
      }
    }
    this.p = p + n + 1;
    if (n < 7) {
      let x = 0;
      for (let i = n; i >= 0; i--) x = x * 128 + (b[p + i] & 0x7f);
      return x;
    }
    let x = 0n;
    for (let i = n; i >= 0; i--) x = (x << 7n) | BigInt(b[p + i] & 0x7f);
    return narrow(x);
  }
  varint() {
    const u = this.uvarint();
    if (typeof u === 'number') return u % 2 ? -(u + 1) / 2 : u / 2;
    return narrow(u & 1n ? -((u + 1n) >> 1n) : u >> 1n);
  }
  bytes(n, what) {
    if (typeof n !== 'number' || n > this.left()) fail(`${what}: length past the end`);
    this.p += n;
    return this.b.subarray(this.p - n, this.p);
  }
  str(what = 'string') {
    return decodeUTF8(this.bytes(this.uvarint(), what), what);
  }
  id() {
    const id = this.uvarint();
    if (typeof id === 'bigint' && id > MAX_ID) fail('id ≥ 2^63');
    return id;
  }
}

function writeUvarint(out, x) {
  if (typeof x === 'bigint') {
    if (x < 0n || x >> 64n) throw new RangeError(`uvarint out of range: ${x}`);
    if (x > MAX_SAFE) {
      for (; x >= 0x80n; x >>= 7n) out.push(Number(x & 0x7fn) | 0x80);
      out.push(Number(x));
      return;
    }
    x = Number(x);
  }
  for (; x >= 0x80; x = Math.floor(x / 128)) out.push((x % 128) | 0x80);
  out.push(x);
}

function writeVarint(out, n) {
  if (typeof n === 'number' && Math.abs(n) <= 2 ** 52) return writeUvarint(out, n >= 0 ? 2 * n : -2 * n - 1);
  n = BigInt(n);
  if (n < -(1n << 63n) || n > MAX_ID) throw new RangeError(`varint out of range: ${n}`);
  writeUvarint(out, n >= 0n ? n << 1n : (-n << 1n) - 1n);
}

function writeBytes(out, bytes) {
  for (const c of bytes) out.push(c);
}

function writeStr(out, s) {
  const b = utf8.encode(s);
  writeUvarint(out, b.length);
  writeBytes(out, b);
}

// ------------------------------------------------------ binary-raw payloads

const ZERO = { [S]: '', [U]: 0, [I]: 0, [B]: false };
const isZero = (v) => v === '' || v === 0 || v === 0n;

// minSize is the fewest bytes a value of type t takes (list count checks).
const minSize = (t) => (Array.isArray(t) ? t.reduce((n, [, ft]) => n + minSize(ft), 0) : 1);

function readValue(r, t, path) {
  if (t === S) return r.str(path);
  if (t === U) return r.uvarint();
  if (t === I) return r.varint();
  if (t === B) {
    const c = r.byte();
    return c <= 1 ? c === 1 : fail(`${path}: bool byte ${c}`);
  }
  if (t.enum) return t.enum[r.byte() - 1] ?? fail(`${path}: enum byte out of range`);
  if (t.list) {
    const n = r.uvarint();
    if (typeof n !== 'number' || n * minSize(t.list) > r.left()) fail(`${path}: list count past the end`);
    return Array.from({ length: n }, (_, i) => readValue(r, t.list, `${path}[${i}]`));
  }
  const o = {};
  for (const [k, ft, opt] of t) {
    const v = readValue(r, ft, `${path}.${k}`);
    if (!(opt && isZero(v))) o[k] = v;
  }
  return o;
}

// writeValue throws an RPCError -32602 for a value that does not fit t.
function writeValue(out, t, v, path) {
  const invalid = (want) => {
    throw new RPCError(-32602, 'Invalid params', `${path}: ${want} expected`);
  };
  if (t === S) typeof v === 'string' ? writeStr(out, v) : invalid('string');
  else if (t === U) isInt(v) && v >= 0 ? writeUvarint(out, v) : invalid('unsigned integer');
  else if (t === I) isInt(v) ? writeVarint(out, v) : invalid('integer');
  else if (t === B) typeof v === 'boolean' ? out.push(v ? 1 : 0) : invalid('bool');
  else if (t.enum) t.enum.includes(v) ? out.push(t.enum.indexOf(v) + 1) : invalid(t.enum.join(' or '));
  else if (t.list) {
    if (!Array.isArray(v)) invalid('array');
    writeUvarint(out, v.length);
    v.forEach((e, i) => writeValue(out, t.list, e, `${path}[${i}]`));
  } else {
    if (!isRecord(v)) invalid('object');
    for (const k of Object.keys(v)) if (!t.some(([f]) => f === k)) invalid(`no field ${JSON.stringify(k)}; a known field`);
    for (const [k, ft] of t) writeValue(out, ft, v[k] ?? ZERO[ft] ?? (ft.list ? [] : v[k]), `${path}.${k}`);
  }
}

// chat.message (§9): flags, from, message, ts, then room, to, offset, epoch
// if flagged. A room message has both offset and epoch, others neither.
const MSG_FLAGS = [['room', 1, S], ['to', 2, S], ['offset', 4, U], ['epoch', 8, S]];
const OFFSET_EPOCH = 4 | 8;

function readMessage(r) {
  const flags = r.byte();
  if (flags & ~15) fail('chat.message: reserved flag bits set');
  const oe = flags & OFFSET_EPOCH;
  if (oe && oe !== OFFSET_EPOCH) fail('chat.message: the offset and epoch flags differ');
  const from = r.str('chat.message.from');
  const message = r.str('chat.message.message');
  const ts = r.varint();
  const opt = {};
  for (const [k, bit, t] of MSG_FLAGS) {
    if (!(flags & bit)) continue;
    opt[k] = readValue(r, t, `chat.message.${k}`);
    if (isZero(opt[k])) fail(`chat.message: flag set for an empty ${k}`);
  }
  const o = {};
  if (opt.room !== undefined) o.room = opt.room;
  o.from = from;
  if (opt.to !== undefined) o.to = opt.to;
  o.message = message;
  if (opt.offset !== undefined) o.offset = opt.offset;
  if (opt.epoch !== undefined) o.epoch = opt.epoch;
  o.ts = ts;
  return o;
}

function writeMessage(out, m) {
  check(m, Message, 'chat.message');
  const set = MSG_FLAGS.filter(([k]) => m[k] !== undefined && !isZero(m[k]));
  const flags = set.reduce((f, [, bit]) => f | bit, 0);
  const oe = flags & OFFSET_EPOCH;
  if (oe && oe !== OFFSET_EPOCH) throw new RPCError(-32602, 'Invalid params', 'chat.message: offset and epoch go together');
  out.push(flags);
  writeStr(out, m.from);
  writeStr(out, m.message);
  writeVarint(out, m.ts);
  for (const [k, , t] of set) writeValue(out, t, m[k], `chat.message.${k}`);
}

// readPayload decodes a known method's params (which 1) or result (2) and
// checks it was consumed exactly (§7).
function readPayload(r, method, which) {
  const layout = METHODS[method][which];
  const v = method === 'chat.message' ? readMessage(r) : readValue(r, layout, method);
  if (r.left()) fail(`${method}: ${r.left()} bytes after the payload`);
  return v;
}

function writePayload(out, method, which, v) {
  const layout = METHODS[method]?.[which];
  if (!layout) return; // a method outside the table: no payload (see Decisions)
  if (method === 'chat.message') writeMessage(out, v);
  else writeValue(out, layout, v ?? {}, method);
}

// ------------------------------------------------------------- the codecs
//
// A codec turns logical messages into frames and back:
//   {kind: 'request', id, method, params}   {kind: 'notification', method, params}
//   {kind: 'result', id, method, result}    {kind: 'error', id (null), error: {code, message, data?}}
// and an array of them for a batch (json-rpc, binary-raw). decode(frame, methodOf)
// takes methodOf(id), the method of the call in flight with that id, to read and
// check results; it throws ProtocolError for a malformed frame.

const binaryRaw = {
  binary: true,
  encode(msg) {
    const out = [];
    if (Array.isArray(msg)) {
      out.push(4);
      writeUvarint(out, msg.length);
      for (const m of msg) {
        const b = binaryRaw.encode(m);
        writeUvarint(out, b.length);
        writeBytes(out, b);
      }
    } else encodeBinRaw(out, msg);
    return new Uint8Array(out);
  },
  decode(bytes, methodOf = () => undefined) {
    const r = new Reader(bytes);
    if (bytes.length && bytes[0] === 4) {
      r.p = 1;
      const n = r.uvarint();
      if (n < 1 || n > 100) fail(`batch of ${n} messages`);
      const msgs = [];
      for (let i = 0; i < n; i++) {
        const len = r.uvarint();
        const el = r.bytes(len, 'batch element');
        if (el[0] === 4) fail('nested batch');
        msgs.push(decodeBinRaw(new Reader(el), methodOf));
      }
      if (r.left()) fail('bytes after the last batch element');
      return msgs;
    }
    return decodeBinRaw(r, methodOf);
  },
};

function encodeBinRaw(out, m) {
  const kind = ['request', 'notification', 'result', 'error'].indexOf(m.kind);
  if (kind < 0) throw new TypeError(`unknown message kind ${m.kind}`);
  const known = kind < 2 && METHODS[m.method];
  const nullID = kind === 3 && m.id == null;
  out.push(kind | (kind < 2 && !known ? 0x08 : 0) | (nullID ? 0x10 : 0));
  if (kind !== 1 && !nullID) writeUvarint(out, m.id);
  if (kind < 2) known ? writeUvarint(out, known[0]) : writeStr(out, m.method);
  if (kind === 0 || kind === 1) writePayload(out, m.method, 1, m.params);
  if (kind === 2) writePayload(out, m.method, 2, m.result);
  if (kind === 3) {
    writeVarint(out, m.error.code);
    writeStr(out, m.error.message);
    if (m.error.data) writeBytes(out, utf8.encode(String(m.error.data)));
  }
}

function decodeBinRaw(r, methodOf) {
  const tag = r.byte();
  const kind = tag & 7;
  if (tag & 0xe0 || kind > 3) fail(`bad tag byte 0x${tag.toString(16)}`);
  if ((tag & 0x08 && kind > 1) || (tag & 0x10 && kind !== 3)) fail(`bad tag byte 0x${tag.toString(16)}`);
  if (kind === 3) {
    const id = tag & 0x10 ? null : r.id();
    const code = r.varint();
    const message = r.str('error message');
    const data = decodeUTF8(r.bytes(r.left()), 'error data');
    return { kind: 'error', id, error: data ? { code, message, data } : { code, message } };
  }
  const id = kind === 1 ? undefined : r.id();
  if (kind === 2) {
    const method = methodOf(id);
    if (!METHODS[method]?.[2]) return { kind: 'result', id, unknown: true }; // not ours to read
    return { kind: 'result', id, method, result: readPayload(r, method, 2) };
  }
  let method;
  if (tag & 0x08) {
    method = r.str('method name');
    if (!method) fail('empty method name');
  } else {
    const mid = r.uvarint();
    method = BY_ID.get(mid) ?? `#${mid}`;
  }
  const m = kind === 0 ? { kind: 'request', id, method } : { kind: 'notification', method };
  if (!METHODS[method]) return Object.assign(m, { unknown: true });
  m.params = readPayload(r, method, 1);
  return m;
}

const jsonRPC = {
  binary: false,
  encode(msg) {
    if (Array.isArray(msg)) return `[${msg.map(jsonRPC.encode).join(',')}]`;
    const { kind, id, method } = msg;
    if (kind === 'request') return JSON.stringify({ jsonrpc: '2.0', method, params: msg.params ?? {}, id });
    if (kind === 'notification') return JSON.stringify({ jsonrpc: '2.0', method, params: msg.params ?? {} });
    if (kind === 'result') return JSON.stringify({ jsonrpc: '2.0', result: msg.result, id });
    if (kind === 'error') return JSON.stringify({ jsonrpc: '2.0', error: errorObject(msg.error), id: id ?? null });
    throw new TypeError(`unknown message kind ${kind}`);
  },
  decode(text, methodOf = () => undefined) {
    let v;
    try {
      v = JSON.parse(text);
    } catch (e) {
      fail(`not JSON: ${e.message}`);
    }
    if (!Array.isArray(v)) return decodeJSON(v, methodOf);
    if (!v.length) fail('empty batch');
    return v.map((e) => decodeJSON(e, methodOf));
  },
};

function errorObject({ code, message, data }) {
  return data ? { code, message, data } : { code, message };
}

function checkError(e, path) {
  if (!isRecord(e)) fail(`${path}: error object expected`);
  if (!isInt(e.code)) fail(`${path}: integer error code expected`);
  if (typeof e.message !== 'string') fail(`${path}: error message string expected`);
  if (e.data != null && typeof e.data !== 'string') fail(`${path}: error data string expected`);
  return errorObject(e);
}

function decodeJSON(v, methodOf) {
  if (!isRecord(v) || v.jsonrpc !== '2.0') fail('not a JSON-RPC 2.0 object');
  const { id } = v;
  if ('method' in v) {
    if (typeof v.method !== 'string') fail('method is not a string');
    if (v.params !== undefined && typeof v.params !== 'object') fail('params is neither an object nor an array');
    const params = checkBody(v.method, 1, v.params ?? {});
    if (!('id' in v)) return { kind: 'notification', method: v.method, params };
    return { kind: 'request', id, method: v.method, params };
  }
  if (id !== null && typeof id !== 'number' && typeof id !== 'string') fail('id is not a number, string or null');
  if ('error' in v) return { kind: 'error', id, error: checkError(v.error, 'error') };
  if (!('result' in v) || id === null) fail('neither a request, a result nor an error');
  return result(id, methodOf(id), v.result);
}

function result(id, method, value) {
  if (method === undefined) return { kind: 'result', id, result: value, unknown: true };
  return { kind: 'result', id, method, result: checkBody(method, 2, value) };
}

const msgpackRPC = {
  binary: true,
  encode(msg) {
    const { kind, id, method } = msg;
    if (kind === 'request') return mpEncode([0, id, method, namedParams(msg.params)]);
    if (kind === 'notification') return mpEncode([2, method, namedParams(msg.params)]);
    if (kind === 'result') return mpEncode([1, id, null, msg.result]);
    if (kind === 'error') return mpEncode([1, id ?? null, errorObject(msg.error), null]);
    throw new TypeError(`unknown message kind ${kind}`);
  },
  decode(bytes, methodOf = () => undefined) {
    const v = mpDecode(bytes);
    if (!Array.isArray(v) || !v.length) fail('not a MessagePack-RPC array');
    const [type, a, b, c] = v;
    if (v.length !== (type === 2 ? 3 : 4)) fail(`message type ${type} with ${v.length} elements`);
    const msgid = (x) => (isInt(x) ? x : fail('msgid is not an integer'));
    const method = (x) => (typeof x === 'string' ? x : fail('method is not a string'));
    if (type === 0) return { kind: 'request', id: msgid(a), method: method(b), params: checkBody(b, 1, fromNamed(c)) };
    if (type === 2) return { kind: 'notification', method: method(a), params: checkBody(a, 1, fromNamed(b)) };
    if (type !== 1) fail(`unknown message type ${type}`);
    if (b !== null) {
      if (c !== null) fail('response with both an error and a result');
      return { kind: 'error', id: a === null ? null : msgid(a), error: checkError(b, 'error') };
    }
    return result(msgid(a), methodOf(a), c);
  },
};

// Named params (msgpack.md): an array of one map, [] for none.
const namedParams = (p) => (p === undefined || (isRecord(p) && !Object.keys(p).length) ? [] : [p]);

function fromNamed(p) {
  if (!Array.isArray(p)) fail('params is not an array');
  if (!p.length) return {};
  if (p.length === 1 && isRecord(p[0])) return p[0];
  return fail('params are not one map');
}

/** The three codecs, by subprotocol name (exported for tests and tools). */
export const codecs = { 'json-rpc': jsonRPC, msgpack: msgpackRPC, 'binary-raw': binaryRaw };

// -------------------------------------------------------------- MessagePack
//
// The whole format (github.com/msgpack/msgpack/blob/master/spec.md) except
// extension types, which the protocol refuses. Integers decode to Numbers,
// or BigInts beyond 2^53; maps to plain objects (string keys only); bin to
// Uint8Array. Encoding writes the smallest form, as the server does; floats
// are float64; object keys whose value is undefined are left out.

const MAX_DEPTH = 32;

function mpEncode(value) {
  const out = [];
  encodeValue(out, value, 0);
  return new Uint8Array(out);
}

function head(out, n, small, tags, smallMax) {
  if (n <= smallMax) out.push(small | n);
  else if (n < 0x100 && tags[0]) out.push(tags[0], n);
  else if (n < 0x10000) out.push(tags[1], n >> 8, n & 0xff);
  else out.push(tags[2], n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
}

function pushView(out, tag, size, set) {
  const dv = new DataView(new ArrayBuffer(size));
  set(dv);
  out.push(tag, ...new Uint8Array(dv.buffer));
}

function encodeInt(out, n) {
  if (n >= 0) {
    if (n < 0x80) out.push(Number(n));
    else if (n < 0x100) out.push(0xcc, Number(n));
    else if (n < 0x10000) pushView(out, 0xcd, 2, (d) => d.setUint16(0, Number(n)));
    else if (n < 0x100000000) pushView(out, 0xce, 4, (d) => d.setUint32(0, Number(n)));
    else if (n < 2n ** 64n) pushView(out, 0xcf, 8, (d) => d.setBigUint64(0, BigInt(n)));
    else throw new RangeError(`integer out of MessagePack range: ${n}`);
  } else if (n >= -32) out.push(0x100 + Number(n));
  else if (n >= -0x80) pushView(out, 0xd0, 1, (d) => d.setInt8(0, Number(n)));
  else if (n >= -0x8000) pushView(out, 0xd1, 2, (d) => d.setInt16(0, Number(n)));
  else if (n >= -0x80000000) pushView(out, 0xd2, 4, (d) => d.setInt32(0, Number(n)));
  else if (n >= -(2n ** 63n)) pushView(out, 0xd3, 8, (d) => d.setBigInt64(0, BigInt(n)));
  else throw new RangeError(`integer out of MessagePack range: ${n}`);
}

function encodeValue(out, v, depth) {
  if (depth > MAX_DEPTH) throw new RangeError(`nesting deeper than ${MAX_DEPTH}`);
  if (v === null || v === undefined) out.push(0xc0);
  else if (typeof v === 'boolean') out.push(v ? 0xc3 : 0xc2);
  else if (typeof v === 'bigint' || Number.isSafeInteger(v)) encodeInt(out, v);
  else if (typeof v === 'number') pushView(out, 0xcb, 8, (d) => d.setFloat64(0, v));
  else if (typeof v === 'string') {
    const b = utf8.encode(v);
    head(out, b.length, 0xa0, [0xd9, 0xda, 0xdb], 31);
    writeBytes(out, b);
  } else if (v instanceof Uint8Array || v instanceof ArrayBuffer) {
    const b = new Uint8Array(v);
    head(out, b.length, 0, [0xc4, 0xc5, 0xc6], -1);
    writeBytes(out, b);
  } else if (Array.isArray(v)) {
    head(out, v.length, 0x90, [0, 0xdc, 0xdd], 15);
    for (const e of v) encodeValue(out, e, depth + 1);
  } else if (typeof v === 'object' && isPlain(v)) {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined);
    head(out, keys.length, 0x80, [0, 0xde, 0xdf], 15);
    for (const k of keys) {
      encodeValue(out, k, depth + 1);
      encodeValue(out, v[k], depth + 1);
    }
  } else throw new TypeError(`MessagePack cannot encode ${Object.prototype.toString.call(v)}`);
}

function isPlain(v) {
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

function mpDecode(bytes) {
  const r = new Reader(bytes);
  r.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const v = decodeValue(r, 1);
  if (r.left()) fail(`${r.left()} bytes after the MessagePack value`);
  return v;
}

// fixed reads an n-byte big-endian field through the DataView.
function fixed(r, n, get) {
  if (r.left() < n) fail('truncated');
  r.p += n;
  return get(r.view, r.p - n);
}

const uint = (r, n) => fixed(r, n, (d, p) => (n === 1 ? d.getUint8(p) : n === 2 ? d.getUint16(p) : d.getUint32(p)));

function decodeValue(r, depth) {
  const c = r.byte();
  if (c < 0x80) return c;
  if (c >= 0xe0) return c - 0x100;
  if (c < 0x90) return decodeMap(r, c & 0x0f, depth);
  if (c < 0xa0) return decodeArray(r, c & 0x0f, depth);
  if (c < 0xc0) return decodeUTF8(r.bytes(c & 0x1f, 'str'), 'str');
  switch (c) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xc4: case 0xc5: case 0xc6:
      return r.bytes(uint(r, 1 << (c - 0xc4)), 'bin').slice();
    case 0xca: return fixed(r, 4, (d, p) => d.getFloat32(p));
    case 0xcb: return fixed(r, 8, (d, p) => d.getFloat64(p));
    case 0xcc: case 0xcd: case 0xce:
      return uint(r, 1 << (c - 0xcc));
    case 0xcf: return narrow(fixed(r, 8, (d, p) => d.getBigUint64(p)));
    case 0xd0: return fixed(r, 1, (d, p) => d.getInt8(p));
    case 0xd1: return fixed(r, 2, (d, p) => d.getInt16(p));
    case 0xd2: return fixed(r, 4, (d, p) => d.getInt32(p));
    case 0xd3: return narrow(fixed(r, 8, (d, p) => d.getBigInt64(p)));
    case 0xd9: case 0xda: case 0xdb:
      return decodeUTF8(r.bytes(uint(r, 1 << (c - 0xd9)), 'str'), 'str');
    case 0xdc: case 0xdd:
      return decodeArray(r, uint(r, 2 << (c - 0xdc)), depth);
    case 0xde: case 0xdf:
      return decodeMap(r, uint(r, 2 << (c - 0xde)), depth);
    case 0xc1: return fail('byte 0xc1 is never used');
    default: return fail(`extension type 0x${c.toString(16)} refused`); // c7-c9, d4-d8
  }
}

function decodeArray(r, n, depth) {
  if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH}`);
  if (n > r.left()) fail('array count past the end');
  const a = new Array(n);
  for (let i = 0; i < n; i++) a[i] = decodeValue(r, depth + 1);
  return a;
}

function decodeMap(r, n, depth) {
  if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH}`);
  if (n * 2 > r.left()) fail('map count past the end');
  const o = {};
  for (let i = 0; i < n; i++) {
    const k = decodeValue(r, depth + 1);
    if (typeof k !== 'string') fail('map key is not a string');
    const v = decodeValue(r, depth + 1);
    if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
    else o[k] = v;
  }
  return o;
}

/** MessagePack encode (value -> Uint8Array) and decode (Uint8Array -> value). */
export const msgpack = { encode: mpEncode, decode: mpDecode };

// ------------------------------------------------------------------ client

const PROTOCOLS = Object.keys(codecs);

/**
 * connect opens a WebSocket to url (ws://host/ws/{client_id}) offering one
 * subprotocol and resolves with a Client once it is open.
 */
export function connect(url, { protocol = 'json-rpc', token, WebSocket: WS = globalThis.WebSocket, timeout = 30000 } = {}) {
  if (!PROTOCOLS.includes(protocol)) return Promise.reject(new TypeError(`protocol must be one of ${PROTOCOLS.join(', ')}`));
  if (!WS) return Promise.reject(new TypeError('no WebSocket: pass options.WebSocket (Node: the ws package)'));
  return new Promise((resolve, reject) => {
    const ws = new WS(url, token ? [protocol, `bearer.${token}`] : [protocol]);
    ws.binaryType = 'arraybuffer';
    const timer = timeout ? setTimeout(() => done(new Error(`subgate: no handshake with ${url} after ${timeout} ms`)), timeout) : 0;
    const onOpen = () => {
      if (ws.protocol !== protocol) return done(new Error(`subgate: server chose subprotocol "${ws.protocol}", not ${protocol}`));
      done(null, new Client(ws, protocol, timeout));
    };
    // A refused handshake shows as close 1006 only: browsers hide the HTTP status.
    const onClose = (ev) => done(Object.assign(new Error(`subgate: cannot connect to ${url}: close ${ev.code}${ev.reason ? ` ${ev.reason}` : ''} (a refused handshake shows as 1006)`), { closeCode: ev.code, reason: ev.reason }));
    const noop = () => {}; // the close event follows; Node's ws throws an unheard 'error'
    function done(err, client) {
      clearTimeout(timer);
      ws.removeEventListener('open', onOpen);
      ws.removeEventListener('close', onClose);
      if (!err) return resolve(client);
      if (ws.readyState < 2) ws.close();
      reject(err);
    }
    ws.addEventListener('open', onOpen);
    ws.addEventListener('close', onClose);
    ws.addEventListener('error', noop);
  });
}

/** A connection to a subgate gateway; made by connect(). */
class Client {
  #ws;
  #codec;
  #timeout;
  #nextID = 1;
  #pending = new Map(); // id -> {method, resolve, reject, timer}
  #handlers = new Map(); // event -> Set of functions
  #closed = null; // {code, reason} once closed

  constructor(ws, protocol, timeout) {
    this.#ws = ws;
    this.#codec = codecs[protocol];
    this.#timeout = timeout;
    this.protocol = protocol;
    ws.addEventListener('message', (ev) => this.#receive(ev.data));
    ws.addEventListener('close', (ev) => this.#finish(ev.code, ev.reason));
  }

  /** call sends a request and resolves with its result. */
  call(method, params = {}) {
    return new Promise((resolve, reject) => {
      if (this.#closed) return reject(this.#closedError());
      const id = this.#nextID++;
      const frame = this.#codec.encode({ kind: 'request', id, method, params });
      const timer = this.#timeout ? setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`subgate: ${method}: no reply after ${this.#timeout} ms`));
      }, this.#timeout) : 0;
      this.#pending.set(id, { method, resolve, reject, timer });
      this.#send(frame);
    });
  }

  /** notify sends a notification: no reply, not even an error. */
  notify(method, params = {}) {
    if (this.#closed) throw this.#closedError();
    this.#send(this.#codec.encode({ kind: 'notification', method, params }));
  }

  /** on adds a handler: a push method name, 'close', 'frame' or 'error'. */
  on(event, fn) {
    if (!this.#handlers.has(event)) this.#handlers.set(event, new Set());
    this.#handlers.get(event).add(fn);
    return this;
  }

  off(event, fn) {
    this.#handlers.get(event)?.delete(fn);
    return this;
  }

  /** close closes the connection; the 'close' event follows. */
  close(code = 1000, reason = '') {
    this.#ws.close(code, reason);
  }

  #emit(event, arg) {
    for (const fn of [...(this.#handlers.get(event) ?? [])]) {
      try {
        fn(arg);
      } catch (err) {
        queueMicrotask(() => {
          throw err; // reported like any uncaught error, without breaking dispatch
        });
      }
    }
  }

  #send(frame) {
    this.#emit('frame', { dir: 'out', data: frame });
    this.#ws.send(frame);
  }

  #receive(data) {
    if (this.#closed) return;
    const binary = typeof data !== 'string';
    const frame = binary ? new Uint8Array(data) : data;
    this.#emit('frame', { dir: 'in', data: frame });
    if (binary !== this.#codec.binary) return this.#fail(`${binary ? 'binary' : 'text'} frame on ${this.protocol}`);
    let msgs;
    try {
      msgs = this.#codec.decode(frame, (id) => this.#pending.get(id)?.method);
    } catch (err) {
      return this.#fail(`bad frame from the server: ${err.message}`);
    }
    for (const m of Array.isArray(msgs) ? msgs : [msgs]) this.#dispatch(m);
  }

  #dispatch(m) {
    if (m.kind === 'request') return this.#fail(`the server sent a request (${m.method})`);
    if (m.kind === 'notification') return m.unknown || this.#emit(m.method, m.params);
    const e = m.error && new RPCError(m.error.code, m.error.message, m.error.data);
    if (m.id === null) return this.#emit('error', e);
    const call = this.#pending.get(m.id);
    if (!call) return; // not waiting for it (binary-raw §1): ignored
    this.#pending.delete(m.id);
    clearTimeout(call.timer);
    if (e) call.reject(e);
    else call.resolve(m.result);
  }

  // fail ends the connection because of a bad server frame.
  #fail(reason) {
    this.#ws.close(1000, truncate(reason, 123));
    this.#finish(1002, reason);
  }

  #finish(code, reason) {
    if (this.#closed) return;
    this.#closed = { code, reason };
    for (const call of this.#pending.values()) {
      clearTimeout(call.timer);
      call.reject(this.#closedError());
    }
    this.#pending.clear();
    this.#emit('close', { code, reason });
  }

  #closedError() {
    const { code, reason } = this.#closed;
    return Object.assign(new Error(`subgate: connection closed (${code}${reason ? ` ${reason}` : ''})`), { closeCode: code, reason });
  }
}

// truncate cuts s to at most n UTF-8 bytes (a close reason's limit is 123).
function truncate(s, n) {
  while (utf8.encode(s).length > n) s = s.slice(0, -1);
  return s;
}
