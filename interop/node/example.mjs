// A complete subgate client in plain Node.js with the npm package ws,
// speaking json-rpc (JSON-RPC 2.0 in text frames). Run a gateway, then:
//
//   cd interop/node && npm ci && node example.mjs ws://127.0.0.1:8080
import WebSocket from 'ws';

const base = process.argv[2] ?? 'ws://127.0.0.1:8080';
const ws = new WebSocket(`${base}/ws/node-example`, 'json-rpc');

// Replies are matched to calls by id; messages without an id are pushes.
let nextId = 1;
const pending = new Map();
function call(method, params = {}) {
  const id = nextId++;
  ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}
ws.on('message', (data) => {
  const msg = JSON.parse(data.toString());
  if (msg.id !== undefined && pending.has(msg.id)) {
    const { resolve, reject } = pending.get(msg.id);
    pending.delete(msg.id);
    if (msg.error) reject(new Error(`${msg.error.code} ${msg.error.message}`));
    else resolve(msg.result);
  } else if (msg.method) {
    console.log('push', msg.method, JSON.stringify(msg.params));
  }
});

ws.on('open', async () => {
  try {
    console.log('ping', JSON.stringify(await call('chat.ping')));
    console.log('join', JSON.stringify(await call('chat.join', { room: 'lobby' })));
    console.log('send', JSON.stringify(await call('chat.send', { room: 'lobby', message: 'hello from node' })));
    await call('chat.send', { room: 'elsewhere', message: 'hi' }).catch((e) => console.log('error', e.message));
  } finally {
    ws.close(1000);
  }
});
ws.on('error', (err) => { console.error(err.message); process.exitCode = 1; });
