// /client.js in Chromium, loaded by the page's own origin with a dynamic
// import and driven through page.evaluate: every method, notify, pushes
// with on/off, errors with their numeric codes, the frame and close events,
// in each of the three encodings. Only the contract of issue 9 is assumed.
//
//   node clientjs.mjs ws://127.0.0.1:PORT
import { ENCODINGS, check, finish, httpBase, launch, scenario } from './lib.mjs';

const base = httpBase(process.argv[2]);
const browser = await launch();
try {
  await scenario('the client.js test', async () => {
    const page = await browser.newPage();
    await page.goto(`${base}/`);
    for (const enc of ENCODINGS) {
      const results = await page.evaluate(exercise, enc);
      for (const [name, ok, detail] of results) check(`${enc}: ${name}`, ok, detail);
    }
  });
} finally {
  await browser.close();
  finish();
}

// exercise runs in the page. It returns [name, ok, detail] triples; an
// exception ends it with a failed triple.
async function exercise(enc) {
  const out = [];
  const ok = (name, cond, detail) => { out.push([name, !!cond, cond ? '' : JSON.stringify(detail)]); };
  const keys = (o) => Object.keys(o || {}).sort().join(',');
  const within = (p, what) => Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`no ${what} within 5s`)), 5000))]);
  const nextPush = (c, method, pred = () => true) => within(new Promise((resolve) => {
    const h = (p) => { if (pred(p)) { c.off(method, h); resolve(p); } };
    c.on(method, h);
  }), method);
  const fails = async (what, p) => {
    try {
      const r = await within(p, `reply to ${what}`);
      return { resolved: r };
    } catch (err) {
      return err;
    }
  };
  try {
    const { connect } = await import('/client.js');
    const sfx = Math.random().toString(36).slice(2, 8);
    const ida = `a-${enc}-${sfx}`;
    const idb = `b-${enc}-${sfx}`;
    const url = (id) => `ws://${location.host}/ws/${id}`;
    const a = await connect(url(ida), { protocol: enc });
    const frames = [];
    a.on('frame', (f) => frames.push(f));
    const b = await connect(url(idb), { protocol: enc });
    ok('connect negotiates the protocol asked for', a.protocol === enc && b.protocol === enc, [a.protocol, b.protocol]);

    const ping = await a.call('chat.ping', {});
    ok('chat.ping -> {status: "ok", timestamp: number}', ping.status === 'ok' && Number.isSafeInteger(ping.timestamp) && keys(ping) === 'status,timestamp', ping);
    const disc = await a.call('rpc.discover', {});
    const send = disc.methods?.find((m) => m.name === 'chat.send');
    ok('rpc.discover lists chat.send with id 0x14', send && send.id === 0x14 && send.push === false && disc.methods.length >= 12, disc);
    const f0 = frames.find((f) => f.dir === 'out');
    const f1 = frames.find((f) => f.dir === 'in');
    if (enc === 'json-rpc') {
      ok('frame events carry the JSON text in and out', typeof f0?.data === 'string' && JSON.parse(f0.data).method === 'chat.ping' && typeof f1?.data === 'string', [f0, f1]);
    } else {
      const first = f0?.data instanceof Uint8Array ? f0.data[0] : -1;
      ok('frame events carry the bytes in and out', f0?.data instanceof Uint8Array && f1?.data instanceof Uint8Array && first === (enc === 'msgpack' ? 0x94 : 0x00), [first]);
    }

    const room = `r-${enc}-${sfx}`;
    const ja = await a.call('chat.join', { room });
    ok('chat.join -> {room, members, offset, epoch}', ja.room === room && ja.members.join() === ida && Number.isSafeInteger(ja.offset) &&
      /^[A-Za-z0-9_-]{1,32}$/.test(ja.epoch) && keys(ja) === 'epoch,members,offset,room', ja);
    const epoch = ja.epoch;
    const base = ja.offset; // a new room's offsets start where the node's deleted rooms ended
    const pres = nextPush(a, 'chat.presence');
    const jb = await b.call('chat.join', { room });
    ok('chat.join returns both members', jb.members.join() === [ida, idb].sort().join(), jb);
    const p = await pres;
    ok('chat.presence push {room, client_id, event: "join"}', p.room === room && p.client_id === idb && p.event === 'join' && keys(p) === 'client_id,event,room', p);
    const mem = await a.call('chat.members', { room });
    ok('chat.members', mem.room === room && mem.members.join() === [ida, idb].sort().join(), mem);

    const text = 'héllo ✓ 😀';
    const pa = nextPush(a, 'chat.message');
    const pb = nextPush(b, 'chat.message');
    const s = await a.call('chat.send', { room, message: text });
    ok('chat.send -> {room, offset, epoch}', s.room === room && s.offset === base + 1 && s.epoch === epoch && keys(s) === 'epoch,offset,room', s);
    for (const [who, m] of [['sender', await pa], ['member', await pb]]) {
      ok(`chat.message push to the ${who} {room, from, message, offset, epoch, ts}`, m.room === room && m.from === ida && m.message === text &&
        m.offset === s.offset && m.epoch === epoch && Number.isSafeInteger(m.ts) && keys(m) === 'epoch,from,message,offset,room,ts', m);
    }

    const pn = nextPush(b, 'chat.message');
    a.notify('chat.send', { room, message: 'by notification' });
    const n = await pn;
    ok('notify sends without a reply and the push arrives', n.message === 'by notification' && n.offset === base + 2, n);

    const h = await b.call('chat.history', { room });
    ok('chat.history from the start', h.room === room && h.messages.map((m) => m.message).join('|') === `${text}|by notification` &&
      h.messages.every((m, i) => m.offset === base + i + 1 && m.from === ida && Number.isSafeInteger(m.ts) && keys(m) === 'from,message,offset,ts'), h);
    const h2 = await b.call('chat.history', { room, since: base + 1, limit: 5 });
    ok('chat.history since an offset', h2.messages.length === 1 && h2.messages[0].offset === base + 2 && h2.epoch === epoch && h2.recovered === true, h2);
    const h3 = await b.call('chat.history', { room, since: base + 2, epoch: 'stale' });
    ok('chat.history with a stale epoch: everything, recovered false', h3.messages.length === 2 && h3.epoch === epoch && h3.recovered === false, h3);

    const pd = nextPush(b, 'chat.message');
    const d = await a.call('chat.direct', { to: idb, message: 'direct' });
    ok('chat.direct -> {delivered: 1}', d.delivered === 1 && keys(d) === 'delivered', d);
    const dm = await pd;
    ok('direct chat.message push {from, to, message, ts}', dm.from === ida && dm.to === idb && dm.message === 'direct' && keys(dm) === 'from,message,to,ts', dm);

    const pbc = nextPush(b, 'chat.message', (m) => m.message === 'to all');
    const bc = await a.call('chat.broadcast', { message: 'to all' });
    ok('chat.broadcast -> {status, delivered}', bc.status === 'ok' && bc.delivered >= 2 && keys(bc) === 'delivered,status', bc);
    const bm = await pbc;
    ok('broadcast chat.message push {from, message, ts}', bm.from === ida && keys(bm) === 'from,message,ts', bm);

    let offCalls = 0;
    const counted = () => { offCalls++; };
    b.on('chat.message', counted);
    b.off('chat.message', counted);
    const after = nextPush(b, 'chat.message');
    await a.call('chat.send', { room, message: 'after off' });
    await after;
    ok('off removes a handler', offCalls === 0, offCalls);

    for (const [what, method, params, code] of [
      ['unknown method', 'chat.nope', {}, -32601],
      ['invalid room name', 'chat.join', { room: 'no spaces allowed' }, -32003],
      ['send to a room not joined', 'chat.send', { room: `other-${sfx}`, message: 'x' }, -32001],
      ['direct to nobody', 'chat.direct', { to: `nobody-${sfx}`, message: 'x' }, -32002],
      ['empty message', 'chat.send', { room, message: '' }, -32005],
    ]) {
      const err = await fails(method, a.call(method, params));
      ok(`${what}: rejects with an Error whose code is ${code}`, err instanceof Error && err.code === code && typeof err.message === 'string', err instanceof Error ? { code: err.code, message: err.message, data: err.data } : err);
    }
    const still = await a.call('chat.ping', {});
    ok('the connection still works after errors', still.status === 'ok', still);

    const pl = nextPush(a, 'chat.presence', (x) => x.event === 'leave');
    const lv = await b.call('chat.leave', { room });
    ok('chat.leave -> {room}', lv.room === room && keys(lv) === 'room', lv);
    const left = await pl;
    ok('chat.presence push {event: "leave"}', left.client_id === idb && left.room === room, left);

    for (const [who, c] of [['a', a], ['b', b]]) {
      const closed = within(new Promise((resolve) => c.on('close', resolve)), 'close event');
      c.close();
      const ev = await closed;
      ok(`close() ends with a close event {code: 1000} (${who})`, ev.code === 1000 && typeof ev.reason === 'string', ev);
    }
  } catch (err) {
    ok('the exercise ran to the end', false, String(err && err.stack ? err.stack : err));
  }
  return out;
}
