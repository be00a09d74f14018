// node clientjs-example.mjs ws://127.0.0.1:8080 binary-raw
// Needs `npm i ws` and the gateway's module next to this file:
// curl -O http://127.0.0.1:8080/client.js
import WebSocket from 'ws';
import { connect } from './client.js';

const [base, protocol = 'json-rpc'] = process.argv.slice(2);
const c = await connect(`${base}/ws/node-${protocol}`, { protocol, WebSocket });
c.on('close', ({ code, reason }) => console.log('closed', code, reason));
c.on('chat.message', (m) => console.log('push chat.message', m.from, m.message, m.offset));
console.log('ping', (await c.call('chat.ping')).status);
console.log('join', JSON.stringify(await c.call('chat.join', { room: 'lobby' })));
console.log('send', JSON.stringify(await c.call('chat.send', { room: 'lobby', message: 'hi' })));
try {
  await c.call('chat.send', { room: 'elsewhere', message: 'x' });
} catch (e) {
  console.log('error', e.code, e.message);
}
c.close();
