// STAND-IN for the demo branch: a json-rpc-only implementation of the
// client.js contract (issue 9), so that the demo page can be built and
// tested before the real module lands. The real gateway/web/client.js
// (json-rpc, msgpack and binary-raw) replaces this file at merge.

class Client {
  constructor(ws) {
    this.ws = ws;
    this.protocol = ws.protocol || 'json-rpc';
    this.nextId = 1;
    this.pending = new Map();
    this.handlers = new Map();
    ws.onmessage = (ev) => this.#receive(ev.data);
    ws.onclose = (ev) => {
      for (const p of this.pending.values()) p.reject(Object.assign(new Error('connection closed'), { code: ev.code }));
      this.pending.clear();
      this.#emit('close', { code: ev.code, reason: ev.reason });
    };
  }

  call(method, params) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.#send({ jsonrpc: '2.0', id, method, params });
    });
  }

  notify(method, params) { this.#send({ jsonrpc: '2.0', method, params }); }

  on(event, handler) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event).add(handler);
  }

  off(event, handler) { this.handlers.get(event)?.delete(handler); }

  close() { this.ws.close(1000); }

  #send(msg) {
    const text = JSON.stringify(msg);
    this.#emit('frame', { dir: 'out', data: text });
    this.ws.send(text);
  }

  #emit(event, arg) {
    for (const h of this.handlers.get(event) || []) h(arg);
  }

  #receive(text) {
    this.#emit('frame', { dir: 'in', data: text });
    const msgs = [].concat(JSON.parse(text));
    for (const m of msgs) {
      if (m.method) { this.#emit(m.method, m.params); continue; }
      const p = this.pending.get(m.id);
      if (!p) continue;
      this.pending.delete(m.id);
      if (m.error) p.reject(Object.assign(new Error(m.error.message), { code: m.error.code, data: m.error.data }));
      else p.resolve(m.result);
    }
  }
}

export function connect(url, { protocol = 'json-rpc', token, WebSocket: WS = globalThis.WebSocket } = {}) {
  if (protocol !== 'json-rpc') return Promise.reject(new Error('stand-in client.js: only json-rpc'));
  const offer = token ? [protocol, 'bearer.' + token] : [protocol];
  return new Promise((resolve, reject) => {
    const ws = new WS(url, offer);
    ws.onopen = () => resolve(new Client(ws));
    ws.onclose = (ev) => reject(Object.assign(new Error(`connection refused (close ${ev.code})`), { code: ev.code, reason: ev.reason }));
  });
}
