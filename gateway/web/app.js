// The demo chat page. It speaks to the gateway only through /client.js
// (the contract in issue 9): connect, call, on/off, close, and the
// 'frame' event that feeds the frames panel.
import { connect } from '/client.js';

const $ = (id) => document.getElementById(id);

// HISTORY_PAGE is chat.history's largest limit; INITIAL_BACKLOG how many
// of a room's latest messages a first join shows; MAX_PAGES bounds one
// catch-up (MAX_PAGES * HISTORY_PAGE messages); MAX_FRAMES the frames
// kept in the panel, so that a long session stays small.
const HISTORY_PAGE = 100;
const INITIAL_BACKLOG = 50;
const MAX_PAGES = 50;
const MAX_FRAMES = 400;
const HEX_BYTES = 256; // bytes of a binary frame shown in the hex dump

// binary-raw's method table (protocols/binary-raw.md §5), for frame notes.
const BINRAW_METHODS = {
  0x01: 'rpc.discover', 0x10: 'chat.ping', 0x11: 'chat.broadcast', 0x12: 'chat.join',
  0x13: 'chat.leave', 0x14: 'chat.send', 0x15: 'chat.direct', 0x16: 'chat.members',
  0x17: 'chat.history', 0x20: 'chat.message', 0x21: 'chat.presence', 0x22: 'gateway.notice',
};

// Close codes a user may meet, and what they mean here (README
// "Connecting", protocols/json-rpc.md).
const CLOSE_TEXT = {
  1000: 'normal closure', 1001: 'server going away (shutdown or restart)', 1002: 'protocol error',
  1003: 'unsupported data', 1006: 'abnormal closure: no close frame (network failure or refused handshake)',
  1008: 'policy violation (rate limit)', 1009: 'message too big', 1011: 'server error',
  4000: 'too slow: the server dropped this slow consumer', 4001: 'token expired: reconnect with a new token',
};

const state = {
  client: null,
  me: '',
  rooms: new Map(), // name -> {name, members: Set, seen: Set of offsets, last, epoch, items: []}
  inbox: [],        // broadcasts and direct messages, in and out
  view: '',         // the room shown, '' for the inbox
  calls: new Map(), // request id -> method, to annotate binary replies
  frames: 0,
};

// ---- connection ----------------------------------------------------------

function setState(kind, text) {
  const el = $('conn-state');
  el.dataset.state = kind;
  el.textContent = text;
  const on = kind === 'connected';
  $('connect').disabled = on || kind === 'connecting';
  $('disconnect').disabled = !on;
  $('join').disabled = !on;
  $('send').disabled = !on;
  for (const id of ['client-id', 'encoding', 'token']) $(id).disabled = on || kind === 'connecting';
}

// showError shows a headline and an explanation under the connection
// form; showError() hides it.
function showError(head = '', detail = '') {
  const el = $('conn-error');
  el.replaceChildren(el.ownerDocument.createElement('strong'), el.ownerDocument.createElement('span'));
  el.firstChild.textContent = head;
  el.lastChild.textContent = detail;
  el.hidden = !head;
}

function wsURL(id) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/ws/${encodeURIComponent(id)}`;
}

async function doConnect(ev) {
  ev.preventDefault();
  const id = $('client-id').value.trim();
  const protocol = $('encoding').value;
  const token = $('token').value.trim();
  showError();
  setState('connecting', `connecting as ${id} (${protocol})…`);
  let c;
  try {
    c = await connect(wsURL(id), token ? { protocol, token } : { protocol });
  } catch (err) {
    setState('failed', `connection failed (${protocol})`);
    showError(...await explainRefusal(id, token, err));
    return;
  }
  state.client = c;
  state.me = id;
  c.on('frame', logFrame);
  c.on('close', (e) => onClose(c, e));
  c.on('chat.message', onMessage);
  c.on('chat.presence', onPresence);
  c.on('gateway.notice', (n) => addInbox({ kind: 'notice', from: 'gateway', message: `${n.kind}: ${n.message}`, ts: Date.now() }));
  setState('connected', `connected as ${id} · ${c.protocol}`);
  for (const r of state.rooms.values()) await guard(`rejoining ${r.name}`, () => joinRoom(r.name));
}

// explainRefusal says why a handshake failed, as a headline and details. A browser sees only close
// 1006 when the server refuses the upgrade: the HTTP status and body are
// hidden from page scripts. The page asks the gateway itself with a plain
// GET of the same /ws/{id} URL (the token as Authorization: Bearer),
// which goes through the same origin and token checks and, being no
// upgrade, shows their answer.
async function explainRefusal(id, token, err) {
  const why = 'A browser sees only close 1006 when a handshake is refused (the HTTP status and reason are ' +
    'hidden from pages), so the page asked the gateway with a plain request to /ws/' + id + '.';
  let res;
  try {
    res = await fetch(`/ws/${encodeURIComponent(id)}`, {
      cache: 'no-store', headers: token ? { Authorization: `Bearer ${token}` } : {},
    });
  } catch {
    return ['The gateway does not answer: is it running?', `The handshake failed: ${err.message || err}.`];
  }
  const body = (await res.text()).trim();
  switch (res.status) {
    case 401: return [`Refused: ${body} (HTTP 401).`, `Give a token whose sub is "${id}", signed with the gateway's -jwt-secret. ${why}`];
    case 403: return ['Refused: this page\'s origin is not allowed (HTTP 403).', `Start the gateway with -allowed-origins. ${why}`];
    case 503: return [`Refused: ${body} (HTTP 503).`, `The gateway is full or shutting down. ${why}`];
    default:
      if (res.status === 400 && /client id/i.test(body)) return [`Refused: ${body} (HTTP 400).`, why];
      return [`The handshake failed: ${err.message || err}.`,
        `A plain request passes the gateway's checks (HTTP ${res.status}): look for a "refused" line in the gateway's log, or a proxy in between.`];
  }
}

function onClose(c, { code, reason }) {
  if (state.client !== c) return;
  state.client = null;
  state.calls.clear();
  const what = CLOSE_TEXT[code] || 'closed';
  setState('closed', `disconnected · close ${code}${reason ? ` “${reason}”` : ''} — ${what}`);
  render();
}

function doDisconnect() {
  state.client?.close();
}

// guard runs a call and reports its failure next to the composer.
async function guard(what, fn) {
  try {
    $('send-error').hidden = true;
    return await fn();
  } catch (err) {
    const code = err.code !== undefined ? ` ${err.code}` : '';
    const data = err.data ? ` (${typeof err.data === 'string' ? err.data : JSON.stringify(err.data)})` : '';
    $('send-error').textContent = `${what} failed:${code} ${err.message}${data}`;
    $('send-error').hidden = false;
    return undefined;
  }
}

// ---- rooms, history and catch-up ------------------------------------------

function roomOf(name) {
  let r = state.rooms.get(name);
  if (!r) {
    r = { name, members: new Set(), seen: new Set(), last: 0, epoch: '', items: [] };
    state.rooms.set(name, r);
  }
  return r;
}

async function doJoin(ev) {
  ev.preventDefault();
  const name = $('room-name').value.trim();
  if (!name) return;
  const ok = await guard(`joining ${name}`, () => joinRoom(name));
  if (ok) {
    $('room-name').value = '';
    state.view = name;
    render();
  }
}

// joinRoom joins (or rejoins after a reconnect) and fills the gap since
// the last offset and epoch seen: chat.history {room, since: last, epoch},
// page by page. Pushes that arrive meanwhile are merged by offset, so
// nothing shows twice. When the server says recovered: false (it lost
// history: a restart, or messages evicted) the room says so.
async function joinRoom(name) {
  const c = state.client;
  const rejoin = state.rooms.has(name);
  const res = await c.call('chat.join', { room: name });
  const r = roomOf(name);
  r.members = new Set(res.members);
  const before = r.seen.size;
  let since = rejoin ? r.last : Math.max(0, res.offset - INITIAL_BACKLOG);
  const epoch = rejoin && r.epoch ? r.epoch : res.epoch;
  let recovered = true;
  for (let page = 0; page < MAX_PAGES; page++) {
    const h = await c.call('chat.history', { room: name, since, limit: HISTORY_PAGE, epoch: page ? r.epoch : epoch });
    if (h.epoch !== r.epoch) newEpoch(r, h.epoch);
    recovered &&= h.recovered;
    for (const m of h.messages) addMessage(r, m);
    if (h.messages.length < HISTORY_PAGE) break;
    since = h.messages[h.messages.length - 1].offset;
  }
  // From here on every message comes as a push, or from the next catch-up.
  if (res.epoch === r.epoch) r.last = Math.max(r.last, res.offset);
  if (rejoin && !recovered) addNote(r, 'history could not be fully recovered: some messages of this room are lost');
  if (rejoin) addNote(r, `rejoined: ${r.seen.size - before} missed messages caught up from history`);
  render();
  return true;
}

// newEpoch starts the room's stream over: the offsets seen belonged to a
// history the server no longer has, so the messages shown from it stay, as
// earlier history, outside the new offset order.
function newEpoch(r, epoch) {
  if (r.epoch) r.items = r.items.map((x) => (x.kind === 'msg' ? { ...x, kind: 'earlier', offset: undefined } : x));
  r.epoch = epoch;
  r.seen = new Set();
  r.last = 0;
}

async function leaveRoom(name) {
  if (state.client) {
    const ok = await guard(`leaving ${name}`, () => state.client.call('chat.leave', { room: name }).then(() => true));
    if (!ok) return;
  }
  state.rooms.delete(name);
  if (state.view === name) state.view = '';
  render();
}

function addMessage(r, m) {
  if (state.rooms.get(r.name) !== r || r.seen.has(m.offset)) return;
  r.seen.add(m.offset);
  r.last = Math.max(r.last, m.offset);
  const item = { kind: 'msg', offset: m.offset, from: m.from, message: m.message, ts: m.ts };
  // Catch-up brings older messages after newer pushes: keep offset order.
  const i = r.items.findIndex((x) => x.kind === 'msg' && x.offset > m.offset);
  if (i < 0) r.items.push(item);
  else r.items.splice(i, 0, item);
}

function addNote(r, text) {
  r.items.push({ kind: 'note', message: text, ts: Date.now() });
}

function onMessage(m) {
  if (m.room) {
    const r = state.rooms.get(m.room);
    if (r) addMessage(r, m);
  } else {
    addInbox({ kind: m.to ? 'direct' : 'broadcast', from: m.from, to: m.to, message: m.message, ts: m.ts });
  }
  render();
}

function onPresence(p) {
  const r = state.rooms.get(p.room);
  if (!r) return;
  if (p.event === 'join') r.members.add(p.client_id);
  else r.members.delete(p.client_id);
  addNote(r, `${p.client_id} ${p.event === 'join' ? 'joined' : 'left'}`);
  render();
}

function addInbox(item) {
  state.inbox.push(item);
  render();
}

// ---- sending --------------------------------------------------------------

async function doSend(ev) {
  ev.preventDefault();
  const c = state.client;
  const text = $('message').value;
  if (!c || !text) return;
  const target = $('target').value;
  let ok;
  if (target === 'room') {
    if (!state.view) return sendError('Choose a room first (or send to everyone or to a client).');
    ok = await guard('chat.send', () => c.call('chat.send', { room: state.view, message: text }));
  } else if (target === 'broadcast') {
    ok = await guard('chat.broadcast', () => c.call('chat.broadcast', { message: text }));
  } else {
    const to = $('recipient').value.trim();
    if (!to) return sendError('Give the recipient\'s client id.');
    const res = await guard('chat.direct', () => c.call('chat.direct', { to, message: text }));
    ok = res;
    if (res) {
      addInbox({ kind: 'direct', out: true, from: state.me, to, message: text, ts: Date.now(), delivered: res.delivered });
    }
  }
  if (ok) $('message').value = '';
  $('message').focus({ preventScroll: true });
}

function sendError(text) {
  $('send-error').textContent = text;
  $('send-error').hidden = false;
}

function onTarget() {
  const direct = $('target').value === 'direct';
  $('recipient').hidden = !direct;
  if (direct) $('recipient').focus();
}

// ---- rendering ------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-') || k.startsWith('aria-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

const clock = (ts) => new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });

function render() {
  renderRooms();
  renderMembers();
  renderMessages();
}

function renderRooms() {
  const list = $('rooms');
  list.replaceChildren(roomButton('', 'Inbox', `${state.inbox.length} messages`));
  for (const r of state.rooms.values()) {
    const li = roomButton(r.name, `# ${r.name}`, `${r.members.size} members`);
    li.append(el('button', { type: 'button', class: 'icon', textContent: '×', title: `Leave ${r.name}`, 'aria-label': `Leave ${r.name}`, onclick: () => leaveRoom(r.name) }));
    list.append(li);
  }
}

function roomButton(name, label, meta) {
  const current = state.view === name;
  return el('li', { class: current ? 'current' : '' },
    el('button', { type: 'button', class: 'room', 'aria-current': current ? 'true' : 'false', onclick: () => { state.view = name; render(); } },
      el('span', { class: 'room-name', textContent: label }), el('span', { class: 'hint', textContent: meta })));
}

function renderMembers() {
  const r = state.rooms.get(state.view);
  $('members-room').textContent = r ? `in #${r.name}` : '';
  const list = $('members');
  list.replaceChildren();
  if (!r) {
    list.append(el('li', { class: 'hint', textContent: 'Choose a room to see who is there.' }));
    return;
  }
  for (const m of [...r.members].sort()) {
    list.append(el('li', { class: m === state.me ? 'me' : '' }, el('span', { class: 'dot', 'aria-hidden': 'true' }),
      el('span', { class: 'name', textContent: m }), m === state.me ? el('span', { class: 'hint', textContent: '(you)' }) : null));
  }
}

function renderMessages() {
  const r = state.rooms.get(state.view);
  $('view-title').textContent = r ? `# ${r.name}` : 'Inbox';
  $('view-meta').textContent = r ? (r.last ? `last offset ${r.last}` : 'no messages yet') : 'broadcasts, direct messages and notices';
  const items = r ? r.items : state.inbox;
  const list = $('messages');
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.replaceChildren(...items.map(messageItem));
  if (!items.length) list.append(el('li', { class: 'empty', textContent: r ? 'No messages yet. Say hello!' : 'Nothing here yet.' }));
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function messageItem(m) {
  if (m.kind === 'note') return el('li', { class: 'note', textContent: m.message });
  const mine = m.from === state.me;
  let tag = null;
  if (m.kind === 'broadcast') tag = 'broadcast';
  if (m.kind === 'notice') tag = 'notice';
  if (m.kind === 'earlier') tag = 'earlier history';
  if (m.kind === 'direct') tag = m.out ? `to ${m.to}${m.delivered === 0 ? ' · not delivered' : ''}` : 'direct';
  const props = { class: `msg${mine ? ' mine' : ''}` };
  if (m.offset !== undefined) props['data-offset'] = String(m.offset);
  return el('li', props,
    el('div', { class: 'meta' }, el('span', { class: 'from', textContent: m.from }),
      tag ? el('span', { class: 'tag', textContent: tag }) : null,
      el('time', { textContent: clock(m.ts) }),
      m.offset !== undefined ? el('span', { class: 'offset', textContent: `#${m.offset}` }) : null),
    el('p', { class: 'text', textContent: m.message }));
}

// ---- the frames panel -----------------------------------------------------

function logFrame({ dir, data }) {
  const text = typeof data === 'string';
  const bytes = text ? new TextEncoder().encode(data).length : data.length;
  const note = text ? jsonNote(data, dir) : binaryNote(data, dir);
  const body = text ? el('pre', { class: 'json', textContent: data }) : el('pre', { class: 'hex', textContent: hexDump(data) });
  const li = el('li', { class: `frame ${dir}` },
    el('div', { class: 'frame-head' },
      el('span', { class: 'dir', textContent: dir === 'out' ? '→ out' : '← in' }),
      el('span', { class: 'note', textContent: note }),
      el('span', { class: 'hint', textContent: `${bytes} B · ${clock(Date.now())}` })),
    body);
  const list = $('frames');
  const follow = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(li);
  while (list.childElementCount > MAX_FRAMES) list.firstElementChild.remove();
  $('frames-count').textContent = String(++state.frames);
  if (follow) list.scrollTop = list.scrollHeight;
}

function remember(dir, id, method) {
  if (dir === 'out' && id !== undefined && id !== null && method) state.calls.set(id, method);
}

// replyNote names a reply by the method of the request it answers.
function replyNote(id, what, shown = String(id)) {
  const method = state.calls.get(id);
  state.calls.delete(id);
  return `${what} #${shown}${method ? ` ${method}` : ''}`;
}

const hexID = (id) => `0x${id.toString(16)}`;

function jsonNote(text, dir) {
  let v;
  try { v = JSON.parse(text); } catch { return 'json-rpc: not JSON'; }
  if (Array.isArray(v)) return `json-rpc batch of ${v.length}`;
  if (v.method) {
    remember(dir, v.id, v.method);
    if (v.id === undefined) return `json-rpc ${dir === 'in' ? 'push' : 'notification'} ${v.method}`;
    return `json-rpc request #${v.id} ${v.method}`;
  }
  if (v.error) return `${replyNote(v.id, 'json-rpc error')}: ${v.error.code} ${v.error.message}`;
  return replyNote(v.id, 'json-rpc result');
}

function hexDump(b) {
  const lines = [];
  const n = Math.min(b.length, HEX_BYTES);
  for (let off = 0; off < n; off += 16) {
    const row = b.subarray(off, Math.min(off + 16, n));
    const hex = [...row].map((x) => x.toString(16).padStart(2, '0')).join(' ');
    const ascii = [...row].map((x) => (x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : '·')).join('');
    lines.push(`${off.toString(16).padStart(4, '0')}  ${hex.padEnd(47)}  ${ascii}`);
  }
  if (b.length > n) lines.push(`… ${b.length - n} more bytes`);
  return lines.join('\n');
}

// A Reader reads the few leading fields a note needs; any error makes the
// note say the frame could not be annotated (the client decides validity).
class Reader {
  constructor(b) { this.b = b; this.p = 0; }
  byte() {
    if (this.p >= this.b.length) throw new Error('truncated');
    return this.b[this.p++];
  }
  uvarint() {
    let x = 0;
    for (let shift = 0; shift < 63; shift += 7) {
      const c = this.byte();
      x += (c & 0x7f) * 2 ** shift;
      if (c < 0x80) return x;
    }
    throw new Error('long varint');
  }
  varint() {
    const u = this.uvarint();
    return u % 2 ? -(u + 1) / 2 : u / 2;
  }
  bytes(n) {
    if (this.p + n > this.b.length) throw new Error('truncated');
    const s = this.b.subarray(this.p, this.p + n);
    this.p += n;
    return s;
  }
  string() { return new TextDecoder().decode(this.bytes(this.uvarint())); }
  // MessagePack: a non-negative integer and a string.
  mpUint() {
    const t = this.byte();
    if (t < 0x80) return t;
    const size = { 0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8 }[t];
    if (!size) throw new Error('not a uint');
    return [...this.bytes(size)].reduce((x, c) => x * 256 + c, 0);
  }
  mpStr() {
    const t = this.byte();
    let n;
    if (t >= 0xa0 && t <= 0xbf) n = t - 0xa0;
    else if (t === 0xd9) n = this.byte();
    else if (t === 0xda) n = this.byte() * 256 + this.byte();
    else throw new Error('not a str');
    return new TextDecoder().decode(this.bytes(n));
  }
}

function binaryNote(b, dir) {
  const proto = state.client?.protocol || $('encoding').value;
  try {
    return proto === 'msgpack' ? msgpackNote(new Reader(b), dir) : binrawNote(new Reader(b), dir);
  } catch (err) {
    return `${proto}: ${err.message}`;
  }
}

function binrawNote(r, dir) {
  const tag = r.byte();
  const kind = tag & 7;
  const byName = (tag & 0x08) !== 0;
  const method = () => (byName ? r.string() : (BINRAW_METHODS[r.uvarint()] ?? 'unknown method'));
  switch (kind) {
    case 0: {
      const id = r.uvarint();
      const m = method();
      remember(dir, id, m);
      return `binary-raw request #${hexID(id)} ${m}`;
    }
    case 1: return `binary-raw ${dir === 'in' ? 'push' : 'notification'} ${method()}`;
    case 2: {
      const id = r.uvarint();
      return replyNote(id, 'binary-raw result', hexID(id));
    }
    case 3: {
      if (tag & 0x10) return `binary-raw error (null id) ${r.varint()} ${r.string()}`;
      const id = r.uvarint();
      return `${replyNote(id, 'binary-raw error', hexID(id))}: ${r.varint()} ${r.string()}`;
    }
    case 4: return `binary-raw batch of ${r.uvarint()}`;
    default: return `binary-raw: reserved kind ${kind}`;
  }
}

function msgpackNote(r, dir) {
  const head = r.byte();
  if (head < 0x90 || head > 0x9f) return 'msgpack: not a message array';
  const type = r.mpUint();
  if (type === 0) {
    const id = r.mpUint();
    const m = r.mpStr();
    remember(dir, id, m);
    return `msgpack request #${id} ${m}`;
  }
  if (type === 2) return `msgpack ${dir === 'in' ? 'push' : 'notification'} ${r.mpStr()}`;
  if (type === 1) {
    const id = r.mpUint();
    return replyNote(id, r.byte() === 0xc0 ? 'msgpack result' : 'msgpack error');
  }
  return `msgpack: message type ${type}`;
}

// ---- start ----------------------------------------------------------------

function randomID() {
  const words = ['otter', 'heron', 'lynx', 'wren', 'koi', 'ibis', 'puma', 'yak'];
  const n = crypto.getRandomValues(new Uint16Array(2));
  return `${words[n[0] % words.length]}-${(n[1] % 9000) + 1000}`;
}

$('client-id').value = new URLSearchParams(location.search).get('id') || randomID();
$('connect-form').addEventListener('submit', doConnect);
$('disconnect').addEventListener('click', doDisconnect);
$('join-form').addEventListener('submit', doJoin);
$('send-form').addEventListener('submit', doSend);
$('target').addEventListener('change', onTarget);
$('clear-frames').addEventListener('click', () => { $('frames').replaceChildren(); state.frames = 0; $('frames-count').textContent = '0'; });
setState('idle', 'not connected');
render();
