// npm rpc-websockets as a subgate json-rpc client. Its Node `Client` cannot
// offer a subprotocol, so build a `CommonClient` with a WebSocket factory
// that offers `json-rpc`. Pushes arrive as events without `subscribe()`.
//
//   npm install rpc-websockets ws && node rpcwebsockets.mjs ws://127.0.0.1:8080
import { CommonClient } from 'rpc-websockets';
import WebSocket from 'ws';

const base = process.argv[2] ?? 'ws://127.0.0.1:8080';
const factory = (address, options) => new WebSocket(address, 'json-rpc', options);
const client = new CommonClient(factory, `${base}/ws/rpcws-example`, { reconnect: false });

const pushed = new Promise((resolve) => client.once('chat.message', resolve));
client.on('open', async () => {
  try {
    console.log('ping', JSON.stringify(await client.call('chat.ping', {})));
    console.log('join', JSON.stringify(await client.call('chat.join', { room: 'lobby' })));
    console.log('send', JSON.stringify(await client.call('chat.send', { room: 'lobby', message: 'hello from rpc-websockets' })));
    console.log('push chat.message', JSON.stringify(await pushed));
    await client.call('chat.send', { room: 'elsewhere', message: 'hi' })
      .catch((e) => console.log('error', e.code, e.message)); // rejects with the error object
  } finally {
    client.close(1000);
  }
});
client.on('error', (err) => { console.error(err.message); process.exitCode = 1; });
