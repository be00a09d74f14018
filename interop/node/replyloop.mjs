// Reply-loop check with a real MessagePack-RPC library: npm's msgpack5rpc.
//
// msgpack5rpc writes responses whose error is a string: its Response.send
// with is_error, and [1, 0, "Invalid message type", null] for a message it
// cannot read. A server that answered such a response with a nil-msgid
// error would crash it: it looks up the handler of msgid null, finds none
// and throws from its stream's data event. protocols/msgpack.md says a
// server never answers a response; this script checks it against the real
// server. It writes malformed responses through the library's encoder, then
// makes a normal call through session.request: subgate answers the messages
// of a connection in order, so if it answered any response, that answer
// would come before the call's result. The check: the library receives
// exactly one frame, the result, and does not crash.
//
// The library's session attaches to a pair of streams; here they carry
// one msgpack-rpc message per WebSocket binary frame (`ws`).
//
//   node replyloop.mjs ws://127.0.0.1:PORT
//
// Prints one line per check and, last, "N passed, M failed"; exits 0 only
// when nothing failed. Every wait has a timeout.

import { PassThrough, Writable } from "node:stream";
import WebSocket from "ws";
import Session from "msgpack5rpc";
import { decode } from "@msgpack/msgpack";

const TIMEOUT_MS = 5000;

const base = (process.argv[2] || "").replace(/\/+$/, "");
if (!/^wss?:\/\/[^/]+$/.test(base)) {
  console.error("usage: node replyloop.mjs ws://HOST:PORT");
  process.exit(2);
}

let passed = 0;
let failed = 0;

function finish(err) {
  if (err) {
    failed++;
    console.log(`FAIL reply-loop scenario: ${err && err.stack ? err.stack : err}`);
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

// A crash of the library (a throw from its stream's data event) ends the run.
process.on("uncaughtException", (err) => finish(new Error(`msgpack5rpc crashed: ${err.stack || err}`)));
setTimeout(() => finish(new Error(`no result within ${TIMEOUT_MS} ms`)), TIMEOUT_MS).unref();

function ok(name) {
  passed++;
  console.log(`ok   ${name}`);
}

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

// attach connects a msgpack5rpc session to ws: each chunk its encoder writes
// (one message) is one binary frame; received frames feed its decoder.
function attach(session, ws, received) {
  const reader = new PassThrough();
  ws.on("message", (data, isBinary) => {
    assert(isBinary, "text frame on msgpack");
    received.push(decode(data));
    reader.write(data);
  });
  const writer = new Writable({
    write(chunk, _enc, done) {
      ws.send(chunk, { binary: true }, done);
    },
  });
  session.attach(writer, reader);
}

async function main() {
  const ws = new WebSocket(`${base}/ws/node-replyloop-${process.pid}`, ["msgpack"]);
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  assert(ws.protocol === "msgpack", `server selected ${ws.protocol}`);
  const received = [];
  const session = new Session();
  attach(session, ws, received);

  // Malformed responses, in msgpack5rpc's own encoder: what it writes for a
  // message it cannot read, what its Response.send(x, true) writes, and
  // worse. Nothing may answer them.
  for (const bad of [
    [1, 0, "Invalid message type", null],
    [1, 5, "a string error", null],
    [1, null, "nil msgid", null],
    [1, 7, [0, "an array error"], null],
    [1, 3],
  ]) {
    session._encoder.write(bad);
  }
  ok("msgpack5rpc wrote 5 malformed responses");

  const result = await new Promise((resolve, reject) => {
    session.request("chat.ping", [], (err, res) => (err ? reject(new Error(`chat.ping: ${JSON.stringify(err)}`)) : resolve(res)));
  });
  assert(result.status === "ok", `chat.ping result ${JSON.stringify(result)}`);
  assert(received.length === 1, `received ${received.length} frames: ${JSON.stringify(received)}`);
  ok(`the library received exactly 1 frame, chat.ping's result (status ${result.status}), and did not crash`);

  await new Promise((resolve) => {
    ws.once("close", resolve);
    ws.close(1000);
  });
  finish();
}

main().catch(finish);
