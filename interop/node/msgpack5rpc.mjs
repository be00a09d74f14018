// npm msgpack5rpc as a subgate msgpack client, over the `ws` package's
// createWebSocketStream: each message the library writes goes out as one
// binary WebSocket frame. Named params travel as one map in the args array.
//
//   npm install msgpack5rpc ws && node msgpack5rpc.mjs ws://127.0.0.1:8080
import Session from 'msgpack5rpc';
import WebSocket, { createWebSocketStream } from 'ws';

const base = process.argv[2] ?? 'ws://127.0.0.1:8080';
const ws = new WebSocket(`${base}/ws/msgpack5rpc-example`, 'msgpack');
const stream = createWebSocketStream(ws);
const session = new Session();
session.attach(stream, stream);

const call = (method, params = {}) => new Promise((resolve, reject) =>
  session.request(method, [params], (err, res) => (err ? reject(err) : resolve(res))));
const pushed = new Promise((resolve) => session.on('notification', (method, args) => {
  if (method === 'chat.message') resolve(args[0]); // [2, method, [payload]]
}));

ws.on('open', async () => {
  try {
    console.log('ping', JSON.stringify(await call('chat.ping')));
    console.log('join', JSON.stringify(await call('chat.join', { room: 'lobby' })));
    console.log('send', JSON.stringify(await call('chat.send', { room: 'lobby', message: 'hello from msgpack5rpc' })));
    console.log('push chat.message', JSON.stringify(await pushed));
    await call('chat.send', { room: 'elsewhere', message: 'hi' })
      .catch((e) => console.log('error', e.code, e.message)); // the error map {code, message, data}
  } finally {
    ws.close(1000);
  }
});
ws.on('error', (err) => { console.error(err.message); process.exitCode = 1; });
